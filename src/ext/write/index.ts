/**
 * Public API of the ext writer. Every function takes the filesystem as an ExtFs (anything with a
 * `dev: BlockDevice`) or a bare BlockDevice positioned on the filesystem (a SliceDevice for a
 * partition). Writes go only through that device, in the safe order, ending with dev.sync().
 *
 * The writer keeps its own metadata view (re-read from the device on every call), so it never
 * trusts a reader cache; after a write it calls ExtFs.reload() (superblock, descriptors and block cache re-read).
 */
import type { BlockDevice } from '../../image/blockdev.js';
import { UlfsError } from '../../errors.js';
import { Volume } from './volume.js';
import { assertWritableVolume, type GatePurpose } from './safety.js';
import { Remover, type RemoveOptions, type RemoveReport } from './remove.js';
import { checkVolume, type CheckReport } from './check.js';
import { zeroFreeInVolume, type ZeroOptions, type ZeroReport } from './zero.js';
import { headToReserve, rewriteInVolume, rewriteStreamInVolume, type RewriteReport } from './rewrite.js';
import { relocateInVolume, type RelocateReport } from './relocate.js';

export type FsLike = BlockDevice | { readonly dev: BlockDevice };

/** Called with each run of blocks a write frees, as (first block, count). */
export type OnFree = (first: number, count: number) => void;

export function deviceOf(fs: FsLike): BlockDevice {
  // a BlockDevice (including wrappers such as JournaledDevice, which also has a `dev` field) is used
  // as is; anything else is a reader (ExtFs) whose `dev` is the device
  const d = fs as Partial<BlockDevice>;
  if (typeof d.read === 'function' && typeof d.write === 'function' && typeof d.sync === 'function')
    return fs as BlockDevice;
  return (fs as { dev: BlockDevice }).dev;
}

/** Tells a reader (ExtFs) that the device changed under it, when it offers a way to. */
export function afterWrite(fs: FsLike): void {
  const f = fs as { reload?: () => void; invalidateCache?: () => void };
  if (typeof f.reload === 'function') f.reload();
  else if (typeof f.invalidateCache === 'function') f.invalidateCache();
}

export function openVolume(fs: FsLike): Volume {
  return new Volume(deviceOf(fs));
}

/** Throws EXT_JOURNAL_DIRTY / EXT_ORPHANS / EXT_FS_NOT_CLEAN / EXT_UNSAFE_FEATURE unless writes are safe. */
export function assertWritable(fs: FsLike, purpose: GatePurpose = 'write'): void {
  assertWritableVolume(openVolume(fs), purpose);
}

/**
 * Removes `paths` (files, symlinks, special files; directories when empty or with `recursive`), then
 * with `pruneEmptyDirs` every directory the removals left empty. One flush for the whole batch.
 * With `dryRun` nothing is written and the report says what would be freed.
 */
export function removePaths(
  fs: FsLike,
  paths: string[],
  opts: RemoveOptions & { dryRun?: boolean; onFree?: OnFree } = {},
): RemoveReport {
  const vol = openVolume(fs);
  assertWritableVolume(vol, 'write');
  vol.onFree = opts.onFree;
  const rem = new Remover(vol, opts.now);
  for (const p of paths) rem.removePath(p, opts);
  if (opts.pruneEmptyDirs) rem.pruneEmpty();
  if (!opts.dryRun) {
    vol.flush();
    afterWrite(fs);
  }
  return rem.report;
}

/**
 * Rewrites regular file `ino` in place with `content` (not larger than its allocated blocks; else
 * EXT_TOO_LARGE before anything is written). Frees the tail and compacts the mapping.
 */
export function rewriteFile(
  fs: FsLike,
  ino: number,
  content: Buffer,
  opts: { now?: number; onFree?: OnFree } = {},
): RewriteReport {
  const vol = openVolume(fs);
  assertWritableVolume(vol, 'write');
  vol.onFree = opts.onFree;
  const r = rewriteInVolume(vol, ino, content, nowOf(opts.now));
  vol.flush();
  afterWrite(fs);
  return r;
}

/**
 * Streaming rewrite: chunks are written through the existing mapping as they arrive; fails with
 * EXT_TOO_LARGE before writing past the allocated blocks. Metadata is written once at the end.
 * `reserveHead: g` starts the content g blocks into the old allocation when it can (rewrite.ts,
 * rotatedRuns) and reports the free blocks left right before it (`headFree`). The old content must
 * then have been read g blocks ahead of what is written. headRotation picks g.
 */
export async function rewriteFileFromChunks(
  fs: FsLike,
  ino: number,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: { now?: number; onFree?: OnFree; reserveHead?: number } = {},
): Promise<RewriteReport> {
  const vol = openVolume(fs);
  assertWritableVolume(vol, 'write');
  vol.onFree = opts.onFree;
  const r = await rewriteStreamInVolume(vol, ino, chunks, nowOf(opts.now), {
    reserveHead: opts.reserveHead,
  });
  vol.flush();
  afterWrite(fs);
  return r;
}

/**
 * The `reserveHead` that leaves `blocks` contiguous old blocks free right before a rewritten file's
 * content (0: none can be left).
 */
export function headRotation(fs: FsLike, ino: number, blocks: number): number {
  return headToReserve(openVolume(fs), ino, blocks);
}

/**
 * Moves the data of regular files `inos` (in this order) into one free run that ends at block
 * `end`, each file contiguous, the last one ending at `end - 1`; files that do not fit in `room`
 * blocks before `end`, or cannot be moved, stay where they are. Contents, sizes and times do not
 * change. See relocate.ts.
 */
export function relocateFiles(
  fs: FsLike,
  inos: number[],
  end: number,
  room: number,
  opts: { onFree?: OnFree } = {},
): RelocateReport {
  const vol = openVolume(fs);
  assertWritableVolume(vol, 'write');
  vol.onFree = opts.onFree;
  const r = relocateInVolume(vol, inos, end, room);
  vol.flush();
  afterWrite(fs);
  return r;
}

/**
 * Overwrites with zeros every free block that is not already zero (zerofree semantics), optionally
 * also the log of a clean journal. Refuses when the journal needs recovery or orphans exist.
 */
export function zeroFree(fs: FsLike, opts: ZeroOptions = {}): ZeroReport {
  const vol = openVolume(fs);
  assertWritableVolume(vol, 'zero');
  return zeroFreeInVolume(vol, opts);
}

/** Read-only consistency check: recomputed bitmaps, counters, link counts and every checksum. */
export function checkFs(fs: FsLike): CheckReport {
  return checkVolume(openVolume(fs));
}

/**
 * Throws EXT_INCONSISTENT unless checkFs finds nothing. Writers call it first: deleting on an
 * inconsistent fs can destroy kept data (a block claimed by a deleted and a kept file gets freed).
 */
export function assertConsistent(fs: FsLike, what: string): void {
  const r = checkFs(fs);
  if (r.clean) return;
  const n = r.findings.length;
  throw new UlfsError(
    'EXT_INCONSISTENT',
    `${what} is inconsistent (${n} problem${n > 1 ? 's' : ''}, first: ${r.findings[0]!.message}); repair it with e2fsck -f first`,
    { findings: r.findings.slice(0, 20) },
  );
}

function nowOf(now?: number): number {
  return (now ?? Math.floor(Date.now() / 1000)) >>> 0;
}

export type { CheckReport, CheckFinding } from './check.js';
export type { ZeroOptions, ZeroReport } from './zero.js';
export type { RewriteReport } from './rewrite.js';
export type { RelocateReport } from './relocate.js';
export type { RemoveOptions, RemoveReport } from './remove.js';
export type { GatePurpose } from './safety.js';
export { Volume } from './volume.js';
export { sumZeroReports } from './zero.js';
