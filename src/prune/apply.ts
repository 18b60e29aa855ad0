/**
 * prune, step 2: carry out a plan.
 *
 * Order (every step before "commit" is covered by the undo log, IMAGE.ulfs-undo):
 *   1. safety gate on every filesystem we will touch (dirty journal, orphans, unsafe features);
 *   2. root fs: delete the module files and the directories they leave empty, delete the capture file,
 *      rewrite the module index files in place;
 *   3. each initramfs: stream it through the cpio filter (decompress, drop entries, replace indexes,
 *      recompress) and write the result over the old file's blocks as it comes, never past what the
 *      filter has read (behindTheReader). Unless the plan listed it, the entries are decided as they
 *      stream (InitramfsPruner). A result larger than the old allocation (PRUNE_WONT_FIT), a malformed
 *      archive, or one that cannot be decided while streaming (PRUNE_INITRAMFS_ORDER: prune() then
 *      starts again with a listing) makes prune() restore the image from the undo log;
 *   4. verify: the full consistency check of every changed fs, on the result; a finding (the fs was
 *      inconsistent before, or became so) is EXT_INCONSISTENT and restores the image;
 *   5. sync (undo log first, then the image, both fsynced) and commit (remove the undo log);
 *   6. zero the free blocks of every changed fs and the log of its (clean) journal (not logged: they
 *      carry nothing, and the metadata is durable by now, so a crash here leaves a complete, valid
 *      prune);
 *   7. check the changed filesystems.
 */
import { JournaledDevice } from '../image/journaled.js';
import { SliceDevice, type BlockDevice } from '../image/blockdev.js';
import { CHUNK_SIZE, ExtFs } from '../ext/fs.js';
import { ChunkPool } from '../binary/chunk-pool.js';
import {
  assertConsistent,
  assertWritable,
  removePaths,
  rewriteFile,
  headRotation,
  relocateFiles,
  rewriteFileFromChunks,
  zeroFree,
  sumZeroReports,
  checkFs,
  type CheckReport,
  type ZeroReport,
} from '../ext/write/index.js';
import { filterInitramfs, type CpioEntryInfo, type Decision } from '../initramfs/index.js';
import { UlfsError } from '../errors.js';
import { inInitramfs, recordDecisions, type PrunePlan, type PruneOptions } from './plan.js';
import { InitramfsPruner, treePrefixOf } from './initramfs-pruner.js';
import type { FsEntry } from './discover.js';

export interface ApplyResult {
  rootfs: { removedFiles: number; removedDirs: number; bytesFreed: number; indexFilesWritten: number };
  initramfs: {
    path: string;
    partition: number;
    compression: string;
    sizeBefore: number;
    sizeAfter: number;
    modulesBefore: number;
    modulesAfter: number;
  }[];
  /** Free blocks and the clean journal's log, summed over the changed filesystems. */
  zero: ZeroReport | null;
  check: { clean: boolean; findings: string[] };
  durations: Record<string, number>;
}

function timer(durations: Record<string, number>) {
  return async <T>(phase: string, fn: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      durations[phase] = Math.round(performance.now() - t0) / 1000 + (durations[phase] ?? 0);
    }
  };
}

/** Undo-logged writes are flushed to the image at least this often while an initramfs is rewritten. */
const SYNC_EVERY = 8 << 20;

/**
 * The filter's output, handed on no further than the filter has read its input. The new content is
 * written over the old file's own blocks, so a byte may be overwritten only once it has been read;
 * what runs ahead (an uncompressed output outruns a compressed input) waits here, in memory. A
 * pruned initramfs is mostly dropped modules, so the output trails the input and little waits.
 * Refuses (PRUNE_WONT_FIT) once the output passes `limit`, the space the old file had.
 */
async function* behindTheReader(
  output: AsyncIterable<Buffer>,
  bytesRead: () => number,
  limit: number,
  what: string,
  onPassed: (bytes: number) => void,
): AsyncGenerator<Buffer> {
  const held: Buffer[] = [];
  let passed = 0;
  let total = 0;
  for await (const chunk of output) {
    total += chunk.length;
    if (total > limit) {
      throw new UlfsError(
        'PRUNE_WONT_FIT',
        `${what}: the new initramfs is larger than the space the old one had (${limit} bytes); ` +
          'try --initramfs-compression keep (or a stronger one), or --no-initramfs',
        { limit },
      );
    }
    held.push(chunk);
    let room = bytesRead() - passed;
    while (held.length > 0 && room > 0) {
      const c = held[0]!;
      const piece = c.length <= room ? c : c.subarray(0, room);
      if (piece === c) held.shift();
      else held[0] = c.subarray(room);
      passed += piece.length;
      room -= piece.length;
      onPassed(piece.length);
      yield piece;
    }
  }
  // The filter is done: it reads nothing more, so the rest may go anywhere.
  for (const c of held) {
    onPassed(c.length);
    yield c;
  }
}

/** Bytes allocated to a file: what an in-place rewrite may use. */
function allocatedBytes(fs: ExtFs, ino: number): number {
  const inode = fs.readInode(ino);
  let blocks = 0;
  for (const e of fs.mapFile(inode)) if (!e.unwritten) blocks += e.length;
  return blocks * fs.blockSize;
}

/**
 * Where the root fs copies of an uncompressed initramfs's modules go: right before the initramfs,
 * so that an image-level xz (8 MiB window) finds each module's second copy and stores it as a match
 * (measured on the bench image: 0.87 MB less xz). Only when the rewritten initramfs is uncompressed
 * and on the root fs. The rewrite starts `rotation` blocks into the old file's blocks, leaving a
 * contiguous run before it as large as every kept module (which of them the archive holds is known
 * only once it has streamed); the modules moved there are the kept ones the archive holds, in
 * archive order.
 */
function placement(
  plan: PrunePlan,
  ip: PrunePlan['initramfs'][number],
  fs: ExtFs,
  ino: number,
  opts: PruneOptions,
): { rotation: number; seen: (name: string) => void; modules: () => number[] } | null {
  const out = opts.initramfsCompression ?? 'keep';
  if (out !== 'none' && !(out === 'keep' && ip.compression === 'none')) return null;
  if (ip.fs.number !== plan.root.number || opts.placeModules === false) return null;
  let blocks = 0;
  const kept = new Set<string>();
  for (const k of plan.modules.kept) {
    kept.add(k.path);
    blocks += Math.ceil(plan.tree.sizeOf(k.path) / fs.blockSize);
  }
  const rotation = headRotation(fs, ino, blocks);
  if (rotation === 0) return null;
  const inArchive: string[] = [];
  return {
    rotation,
    seen: (name) => {
      // Where the pruner finds the kernel's tree (lib/modules/V/ or usr/lib/modules/V/).
      const prefix = treePrefixOf(name, ip.version);
      if (prefix === null) return;
      const rel = name.slice(prefix.length);
      if (kept.has(rel)) inArchive.push(rel);
    },
    modules: () =>
      [...new Set(inArchive)].flatMap((rel) => {
        const ino = plan.tree.inodes.get(rel);
        return ino === undefined ? [] : [ino];
      }),
  };
}

export async function applyPlan(
  imageDev: BlockDevice,
  plan: PrunePlan,
  opts: PruneOptions,
): Promise<ApplyResult> {
  const durations: Record<string, number> = {};
  const time = timer(durations);
  const touched = new Map<number, FsEntry>();
  touched.set(plan.root.number, plan.root);
  for (const i of plan.initramfs) touched.set(i.fs.number, i.fs);
  for (const f of touched.values()) assertWritable(f.ext!);
  const jdev = new JournaledDevice(imageDev);
  // One ExtFs per touched partition, reading and writing through the journaled device.
  const open = new Map<number, ExtFs>();
  const extOf = (f: FsEntry): ExtFs => {
    let fs = open.get(f.number);
    if (!fs) {
      fs = ExtFs.open(new SliceDevice(jdev, f.partition.start, f.partition.size));
      open.set(f.number, fs);
    }
    return fs;
  };

  // Blocks each filesystem frees, by partition number: they held data, so zeroing writes them
  // without reading them first (377 MiB of module files on the bench image).
  const freed = new Map<number, [number, number][]>();
  const onFreeIn =
    (f: FsEntry) =>
    (first: number, count: number): void => {
      let runs = freed.get(f.number);
      if (!runs) freed.set(f.number, (runs = []));
      runs.push([first, count]);
    };

  let committed = false;
  try {
    const rootFs = extOf(plan.root);
    const rootfs = await time('rootfs', () => {
      const onFree = onFreeIn(plan.root);
      const r = removePaths(rootFs, plan.removeFiles, { pruneEmptyDirs: true, onFree });
      plan.removeBytes = r.bytesRemoved;
      if (plan.usedInImage) {
        // On its own and without pruning: its directory (/root) stays even when it held nothing else.
        const c = removePaths(rootFs, [plan.usedInImage], { onFree });
        r.removedFiles += c.removedFiles;
        r.bytesFreed += c.bytesFreed;
      }
      let written = 0;
      for (const [path, data] of plan.indexWrites) {
        rewriteFile(rootFs, rootFs.lookup(path), data, { onFree });
        written++;
      }
      jdev.sync();
      return {
        removedFiles: r.removedFiles,
        removedDirs: r.removedDirs,
        bytesFreed: r.bytesFreed,
        indexFilesWritten: written,
      };
    });

    const initramfs: ApplyResult['initramfs'] = [];
    for (const ip of plan.initramfs) {
      const recompress =
        (opts.initramfsCompression && opts.initramfsCompression !== 'keep') ||
        opts.initramfsLevel !== undefined;
      if (ip.listed && ip.drop.size === 0 && ip.replace.size === 0 && !recompress) {
        // Nothing in it changes (an initramfs holding only kept modules, e.g. MODULES=dep): leave the
        // file alone rather than rewrite the same archive.
        initramfs.push({
          path: ip.info.path,
          partition: ip.info.partition,
          compression: ip.compression,
          sizeBefore: ip.info.size,
          sizeAfter: ip.info.size,
          modulesBefore: ip.modulesBefore,
          modulesAfter: ip.modulesAfter,
        });
        continue;
      }
      await time('initramfs', async () => {
        const fs = extOf(ip.fs);
        const ino = fs.lookup(ip.info.path);
        const limit = allocatedBytes(fs, ino);
        let bytesRead = 0;
        // Read into reused buffers, which the filter hands back once it has read past them.
        const inputPool = new ChunkPool(CHUNK_SIZE);
        const source = fs.createReadStream(ino, CHUNK_SIZE, inputPool);
        const counted = async function* (): AsyncGenerator<Buffer> {
          for await (const c of source as AsyncIterable<Buffer>) {
            bytesRead += c.length;
            yield c;
          }
        };
        // Not listed yet: decide while streaming, and learn the counts on the way.
        const pruner = ip.listed ? null : new InitramfsPruner(ip.version, ip.keepNames, true);
        const decide: (e: CpioEntryInfo) => Decision =
          pruner?.decide ??
          ((e) => {
            if (ip.drop.has(e.name)) return 'drop';
            const r = ip.replace.get(e.name);
            return r ? { replace: r } : 'keep';
          });
        const place = placement(plan, ip, fs, ino, opts);
        const { output, done } = filterInitramfs(counted(), {
          decide: place ? (e) => (place.seen(e.name), decide(e)) : decide,
          onArchiveEnd: pruner?.end,
          compression: opts.initramfsCompression ?? 'keep',
          level: opts.initramfsLevel,
          recycleInput: (b) => inputPool.put(b),
        });
        // Undo-logged writes wait in memory until a sync: flush them as the rewrite goes.
        let unsynced = 0;
        const passed = (n: number): void => {
          unsynced += n;
          if (unsynced >= SYNC_EVERY) {
            jdev.sync();
            unsynced = 0;
          }
        };
        // With a reserved head the content starts that far into the old file: stay that far behind.
        const ahead = (place?.rotation ?? 0) * fs.blockSize;
        const newContent = behindTheReader(
          output as AsyncIterable<Buffer>,
          () => bytesRead - ahead,
          limit,
          ip.info.path,
          passed,
        );
        let rewritten, report;
        try {
          [rewritten, report] = await Promise.all([
            rewriteFileFromChunks(fs, ino, newContent, {
              onFree: onFreeIn(ip.fs),
              reserveHead: place?.rotation,
            }),
            done,
          ]);
        } catch (e) {
          throw inInitramfs(e, ip.info.path);
        }
        if (place && rewritten.headFree) {
          const [first, room] = rewritten.headFree;
          relocateFiles(fs, place.modules(), first + room, room, { onFree: onFreeIn(ip.fs) });
        }
        jdev.sync();
        if (pruner) recordDecisions(ip, pruner, report.segments);
        initramfs.push({
          path: ip.info.path,
          partition: ip.info.partition,
          compression:
            opts.initramfsCompression && opts.initramfsCompression !== 'keep'
              ? opts.initramfsCompression
              : ip.compression,
          sizeBefore: ip.info.size,
          sizeAfter: rewritten.newSize,
          modulesBefore: ip.modulesBefore,
          modulesAfter: ip.modulesAfter,
        });
      });
    }

    // Deleting on an inconsistent filesystem can destroy what it keeps (a block claimed by a deleted
    // and a kept file is freed, then zeroed). The full check runs on the result, before the commit:
    // a filesystem that was inconsistent before stays so after (and one our writes spoiled would be
    // caught too), and refusing now puts the image back from the undo log. One check instead of a
    // check before writing, on warm caches.
    await time('verify', () => {
      for (const f of touched.values()) assertConsistent(extOf(f), f.label);
    });

    await time('commit', () => jdev.commit());
    committed = true;

    // Zeroing and checking go straight to the image: the change is complete and durable.
    let zero: ApplyResult['zero'] = null;
    if (opts.zero !== false) {
      zero = await time('zero', () => {
        const reports: ZeroReport[] = [];
        for (const f of touched.values()) {
          const fs = ExtFs.open(new SliceDevice(imageDev, f.partition.start, f.partition.size));
          // The log of a clean journal is as dead as a free block (the gate above refused any other
          // journal), and after a VM has run it is full of old metadata that would go into the xz.
          const z = zeroFree(fs, {
            journal: true,
            dirty: freed.get(f.number),
            onProgress:
              opts.onProgress && ((done: number, all: number) => opts.onProgress!('zero', done, all)),
          });
          reports.push(z);
        }
        imageDev.sync();
        return sumZeroReports(reports);
      });
    }

    const check = await time('check', () => {
      const findings: string[] = [];
      for (const f of touched.values()) {
        const r: CheckReport = checkFs(
          ExtFs.open(new SliceDevice(imageDev, f.partition.start, f.partition.size)),
        );
        for (const x of r.findings) findings.push(`${f.label}: ${x.message}`);
      }
      return { clean: findings.length === 0, findings };
    });

    return { rootfs, initramfs, zero, check, durations };
  } finally {
    if (!committed) jdev.close(); // leaves the undo log: `ulfs-offline undo IMAGE` restores the image
  }
}
