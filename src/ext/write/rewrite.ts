/**
 * Rewrite a regular file in place with contents no larger than what is allocated to it
 * (ext4-brief §10.7): overwrite through the existing mapping, zero the tail of the last block, free
 * every block past the new end, compact the extent tree the way e2fsck wants it (no "could be
 * shorter/narrower"), and update i_size, i_blocks, mtime/ctime. Inode number, owner, mode and
 * xattrs stay. No allocation ever happens: content that needs an unmapped block is EXT_TOO_LARGE.
 *
 * Extent tree rebuild after trimming (leaf capacity C = (bs−12)/12):
 *   ≤ 4 extents        -> in the root, depth 0; every tree block freed
 *   ≤ 4·C extents      -> depth 1 with ceil(n/C) leaves reusing existing tree blocks (index
 *                         ei_block = the leaf's first ee_block); the other tree blocks freed
 *   ≤ 4·C·C extents    -> depth 2 (leaves, then ≤ 4 index nodes), still reusing tree blocks
 *   more, or more tree blocks than the file has -> EXT_UNSUPPORTED (no allocation)
 * Block maps: pointers at or past the end zeroed, indirect blocks that become empty freed.
 */
import { le32, setLe16, setLe32 } from '../../binary/bytes.js';
import { UlfsError } from '../../errors.js';
import { setExtentBlockCsum } from '../checksums.js';
import {
  EXT_INIT_MAX_LEN,
  EXT_MAGIC,
  fileType,
  flags,
  FL_APPEND,
  FL_ENCRYPT,
  FL_EXTENTS,
  FL_IMMUTABLE,
  FL_INLINE_DATA,
  FL_VERITY,
  generation,
  I_BLOCK,
  I_BLOCK_SIZE,
  I_CTIME,
  I_MTIME,
  I_SIZE_HIGH,
  I_SIZE_LO,
  iBlocks512,
  inodeSize,
  mapInode,
  S_IFREG,
  setIBlocks512,
  type FileMap,
  type Run,
} from './mapping.js';
import type { Volume } from './volume.js';

const ZERO_BLOCK = Buffer.alloc(65536);
/** Data is written in pieces of at most this many bytes. */
const WRITE_CHUNK = 1 << 20;

export interface RewriteReport {
  oldSize: number;
  newSize: number;
  blocksFreed: number;
  /**
   * With `reserveHead`: the old blocks right before the new content's first block that it left free,
   * [first block, count] (null when the file could not be rotated or the content filled them).
   */
  headFree?: [number, number] | null;
}

/** Per-inode refusals for rewrite (ext4-brief §15). */
export function checkRewritable(vol: Volume, ino: number): Buffer {
  if (ino < vol.geo.firstIno) throw new UlfsError('EXT_INODE_PROTECTED', `inode ${ino} is reserved`, { ino });
  const raw = vol.inode(ino);
  if (fileType(raw) !== S_IFREG)
    throw new UlfsError('EXT_NOT_A_FILE', `inode ${ino} is not a regular file`, { ino });
  const f = flags(raw);
  if (f & (FL_IMMUTABLE | FL_APPEND))
    throw new UlfsError('EXT_INODE_PROTECTED', `inode ${ino} is immutable or append-only`, { ino });
  if (f & FL_INLINE_DATA) throw new UlfsError('EXT_INLINE_DATA', `inode ${ino} has inline data`, { ino });
  if (f & (FL_ENCRYPT | FL_VERITY))
    throw new UlfsError('EXT_UNSUPPORTED', `inode ${ino} is encrypted or has fs-verity`, { ino });
  return raw;
}

/** Finds the run holding logical block `l` (runs sorted by logical). */
function runAt(runs: Run[], l: number): Run | undefined {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = runs[mid]!;
    if (l < r.logical) hi = mid - 1;
    else if (l >= r.logical + r.length) lo = mid + 1;
    else return r;
  }
  return undefined;
}

/**
 * Writes `data` (whole blocks, starting at logical block `firstLogical`) through the mapping.
 * Zero blocks may stay holes/unwritten; anything else must land in an initialized mapped block.
 * With `stage`, data is staged in the Volume (nothing written until flush); otherwise it goes to the
 * device now (streaming). Throws before writing the first block that has nowhere to go.
 */
function writeThrough(
  vol: Volume,
  ino: number,
  runs: Run[],
  firstLogical: number,
  data: Buffer,
  stage: boolean,
): void {
  const bs = vol.bs;
  const nBlocks = data.length / bs;
  // first pass: check every block has a home (so nothing of this piece is written on failure)
  for (let i = 0; i < nBlocks; i++) {
    const l = firstLogical + i;
    const r = runAt(runs, l);
    if (r && !r.unwritten) continue;
    const piece = data.subarray(i * bs, (i + 1) * bs);
    if (piece.equals(ZERO_BLOCK.subarray(0, bs))) continue;
    const last = runs.length ? runs[runs.length - 1]!.logical + runs[runs.length - 1]!.length : 0;
    throw new UlfsError(
      'EXT_TOO_LARGE',
      r
        ? `inode ${ino}: logical block ${l} is an unwritten extent; rewriting it would need an extent split`
        : l >= last
          ? `inode ${ino}: new content needs block ${l}, past the ${last} allocated blocks (growing a file is not supported)`
          : `inode ${ino}: new content puts data in hole at logical block ${l} (allocation is not supported)`,
      { ino, logical: l },
    );
  }
  // second pass: write contiguous physical runs
  let i = 0;
  while (i < nBlocks) {
    const l = firstLogical + i;
    const r = runAt(runs, l);
    if (!r || r.unwritten) {
      i++;
      continue;
    }
    const n = Math.min(r.logical + r.length - l, nBlocks - i, WRITE_CHUNK / bs);
    const phys = r.physical + (l - r.logical);
    const piece = data.subarray(i * bs, (i + n) * bs);
    if (stage) vol.stageData(phys, Buffer.from(piece));
    else {
      vol.checkBlock(phys + n - 1, 'data block');
      vol.dev.write(phys * bs, piece);
    }
    i += n;
  }
}

export function encodeLeafEntries(node: Buffer, runs: Run[]): void {
  runs.forEach((r, k) => {
    const e = 12 + 12 * k;
    setLe32(node, e, r.logical);
    setLe16(node, e + 4, r.unwritten ? r.length + EXT_INIT_MAX_LEN : r.length);
    setLe16(node, e + 6, Math.floor(r.physical / 0x1_0000_0000));
    setLe32(node, e + 8, r.physical % 0x1_0000_0000);
  });
}

export function encodeHeader(node: Buffer, entries: number, max: number, depth: number): void {
  setLe16(node, 0, EXT_MAGIC);
  setLe16(node, 2, entries);
  setLe16(node, 4, max);
  setLe16(node, 6, depth);
  setLe32(node, 8, 0);
}

/** Entries of an extent tree block (leaf or index): 12-byte header, 12-byte entries. */
function leafCapacity(bs: number): number {
  return Math.floor((bs - 12) / 12);
}

/**
 * The compact tree truncateExtents builds for `extents` leaf entries: up to 4 in the inode itself
 * (no tree block); else full leaf blocks, under the inode (depth 1) or under index blocks (depth 2).
 */
function treeShape(extents: number, bs: number): { leaves: number; indexes: number } {
  if (extents <= 4) return { leaves: 0, indexes: 0 };
  const cap = leafCapacity(bs);
  const leaves = Math.ceil(extents / cap);
  return { leaves, indexes: leaves <= 4 ? 0 : Math.ceil(leaves / cap) };
}

/** Whether that tree fits in the `treeBlocks` blocks the file already has (and in depth 2). */
function treeFits(extents: number, bs: number, treeBlocks: number): boolean {
  const { leaves, indexes } = treeShape(extents, bs);
  return indexes <= 4 && leaves + indexes <= treeBlocks;
}

/**
 * Frees blocks past `nBlocks` and rebuilds the extent tree compactly (also when nothing is freed but
 * `remapped`). Returns blocks freed.
 */
function truncateExtents(
  vol: Volume,
  ino: number,
  raw: Buffer,
  map: FileMap,
  nBlocks: number,
  remapped = false,
): number {
  let freed = 0;
  let changed = remapped;
  const kept: Run[] = [];
  for (const r of map.runs) {
    if (r.logical >= nBlocks) {
      vol.freeRun(r.physical, r.length);
      freed += r.length;
      changed = true;
    } else if (r.logical + r.length > nBlocks) {
      const keep = nBlocks - r.logical;
      vol.freeRun(r.physical + keep, r.length - keep);
      freed += r.length - keep;
      kept.push({ ...r, length: keep });
      changed = true;
    } else kept.push(r);
  }
  if (!changed) return 0;
  kept.sort((a, b) => a.logical - b.logical);
  const cap = leafCapacity(vol.bs);
  const root = Buffer.alloc(I_BLOCK_SIZE);
  const tree = map.treeBlocks;
  let reused = 0;
  if (kept.length <= 4) {
    encodeHeader(root, kept.length, 4, 0);
    encodeLeafEntries(root, kept);
  } else {
    const { leaves, indexes } = treeShape(kept.length, vol.bs);
    if (!treeFits(kept.length, vol.bs, tree.length)) {
      throw new UlfsError(
        'EXT_UNSUPPORTED',
        `inode ${ino}: ${kept.length} extents would need ${leaves + indexes} tree blocks at depth ${indexes ? 2 : 1}, ` +
          `more than the ${tree.length} it has (or a depth-3 tree)`,
        { ino, extents: kept.length },
      );
    }
    const gen = generation(raw);
    const writeNode = (blk: number, node: Buffer): void => {
      if (vol.geo.metadataCsum) setExtentBlockCsum(vol.geo.seed, ino, gen, node);
      vol.setBlock(blk, node, 'tree');
    };
    const setIndex = (node: Buffer, k: number, logical: number, child: number): void => {
      const e = 12 + 12 * k;
      setLe32(node, e, logical);
      setLe32(node, e + 4, child % 0x1_0000_0000);
      setLe16(node, e + 8, Math.floor(child / 0x1_0000_0000));
    };
    // leaves, each filled to capacity but the last (no "could be narrower")
    const leafFirst: { logical: number; blk: number }[] = [];
    for (let j = 0; j < leaves; j++) {
      const part = kept.slice(j * cap, (j + 1) * cap);
      const node = Buffer.alloc(vol.bs);
      encodeHeader(node, part.length, cap, 0);
      encodeLeafEntries(node, part);
      writeNode(tree[j]!, node);
      leafFirst.push({ logical: part[0]!.logical, blk: tree[j]! });
    }
    if (indexes === 0) {
      encodeHeader(root, leaves, 4, 1);
      leafFirst.forEach((l, k) => setIndex(root, k, l.logical, l.blk));
    } else {
      encodeHeader(root, indexes, 4, 2);
      for (let j = 0; j < indexes; j++) {
        const part = leafFirst.slice(j * cap, (j + 1) * cap);
        const node = Buffer.alloc(vol.bs);
        encodeHeader(node, part.length, cap, 1);
        part.forEach((l, k) => setIndex(node, k, l.logical, l.blk));
        const blk = tree[leaves + j]!;
        writeNode(blk, node);
        setIndex(root, j, part[0]!.logical, blk);
      }
    }
    reused = leaves + indexes;
  }
  for (let j = reused; j < tree.length; j++) vol.freeBlock(tree[j]!);
  freed += tree.length - reused;
  root.copy(raw, I_BLOCK);
  return freed;
}

/** Frees block-map entries at or past `nBlocks`; empty indirect blocks are freed too. */
function truncateBlockMap(vol: Volume, ino: number, raw: Buffer, nBlocks: number): number {
  const per = vol.bs / 4;
  let freed = 0;
  const freeTree = (blk: number, level: number): void => {
    if (level > 0) {
      const b = vol.block(blk, 'indirect block');
      for (let i = 0; i < per; i++) {
        const p = le32(b, 4 * i);
        if (p) freeTree(p, level - 1);
      }
    }
    vol.freeBlock(blk);
    freed++;
  };
  /** Trims the subtree under `blk` (level ≥ 1) whose first logical block is `base`; true if now empty. */
  const trim = (blk: number, level: number, base: number): boolean => {
    const b = vol.block(blk, 'indirect block');
    const span = per ** (level - 1);
    let dirty = false;
    let live = 0;
    for (let i = 0; i < per; i++) {
      const p = le32(b, 4 * i);
      if (!p) continue;
      const childBase = base + i * span;
      if (childBase >= nBlocks) {
        freeTree(p, level - 1);
        setLe32(b, 4 * i, 0);
        dirty = true;
      } else if (level > 1 && childBase + span > nBlocks && trim(p, level - 1, childBase)) {
        vol.freeBlock(p);
        freed++;
        setLe32(b, 4 * i, 0);
        dirty = true;
      } else live++;
    }
    if (dirty && live > 0) vol.markDirty(blk, 'tree');
    return live === 0;
  };
  for (let i = 0; i < 12; i++) {
    const p = le32(raw, I_BLOCK + 4 * i);
    if (p && i >= nBlocks) {
      vol.freeBlock(p);
      freed++;
      setLe32(raw, I_BLOCK + 4 * i, 0);
    }
  }
  const starts = [12, 12 + per, 12 + per + per * per];
  for (let level = 1; level <= 3; level++) {
    const off = I_BLOCK + 4 * (11 + level);
    const p = le32(raw, off);
    if (!p) continue;
    const base = starts[level - 1]!;
    if (base >= nBlocks) {
      freeTree(p, level);
      setLe32(raw, off, 0);
    } else if (trim(p, level, base)) {
      vol.freeBlock(p);
      freed++;
      setLe32(raw, off, 0);
    }
  }
  return freed;
}

/** Frees the tail past `newSize`, compacts the mapping, updates size/i_blocks/times. Staged, not flushed. */
function finishTruncate(
  vol: Volume,
  ino: number,
  raw: Buffer,
  map: FileMap,
  newSize: number,
  now: number,
  remapped = false,
): number {
  const nBlocks = Math.ceil(newSize / vol.bs);
  const freed =
    flags(raw) & FL_EXTENTS
      ? truncateExtents(vol, ino, raw, map, nBlocks, remapped)
      : truncateBlockMap(vol, ino, raw, nBlocks);
  const huge = vol.geo.hugeFile;
  const old512 = iBlocks512(raw, vol.bs, huge);
  const new512 = old512 - freed * (vol.bs / 512);
  if (new512 < 0)
    throw new UlfsError('EXT_BAD_INODE', `inode ${ino}: i_blocks ${old512} is less than the blocks it maps`, {
      ino,
    });
  setIBlocks512(raw, vol.bs, huge, new512);
  setLe32(raw, I_SIZE_LO, newSize % 0x1_0000_0000);
  setLe32(raw, I_SIZE_HIGH, Math.floor(newSize / 0x1_0000_0000));
  setLe32(raw, I_MTIME, now);
  setLe32(raw, I_CTIME, now);
  vol.writeInode(ino);
  return freed;
}

function padToBlocks(data: Buffer, bs: number): Buffer {
  const n = Math.ceil(data.length / bs) * bs;
  if (n === data.length) return data;
  const out = Buffer.alloc(n);
  data.copy(out);
  return out;
}

/**
 * Whether the mapping can be rotated: an extent-mapped file whose allocation covers [0, A) with no
 * holes or unwritten extents. Returns A, or 0.
 */
function rotatable(raw: Buffer, map: FileMap): number {
  if (!(flags(raw) & FL_EXTENTS)) return 0;
  let a = 0;
  for (const r of map.runs) {
    if (r.unwritten || r.logical !== a) return 0;
    a += r.length;
  }
  return a;
}

/**
 * The mapping rotated by `g` blocks: logical block i goes where old block (i + g) mod A was, A the
 * blocks allocated. New content then starts g blocks into the old allocation, and the first g old
 * blocks are used last (only by content longer than A - g), so they stay free for something the
 * caller wants placed right before the file. Undefined when the file cannot be rotated (see
 * rotatable) or the rotated runs would not fit in the extent tree it has.
 */
function rotatedRuns(vol: Volume, raw: Buffer, map: FileMap, g: number): Run[] | undefined {
  const a = rotatable(raw, map);
  if (g <= 0 || g >= a) return undefined;
  const out: Run[] = [];
  for (const r of map.runs) {
    const end = r.logical + r.length;
    if (r.logical < g) out.push({ ...r, logical: r.logical + a - g, length: Math.min(end, g) - r.logical });
    if (end > g) {
      const from = Math.max(r.logical, g);
      out.push({ ...r, logical: from - g, physical: r.physical + (from - r.logical), length: end - from });
    }
  }
  out.sort((x, y) => x.logical - y.logical);
  // The content may fill every rotated run, so the tree truncateExtents builds must hold them all.
  return treeFits(out.length, vol.bs, map.treeBlocks.length) ? out : undefined;
}

/**
 * The smallest rotation g that leaves `n` old blocks, physically contiguous, right before where the
 * new content starts: the first run of at least n blocks, entered n blocks deep. 0 when there is
 * none or the file cannot be rotated.
 */
export function headToReserve(vol: Volume, ino: number, n: number): number {
  const raw = checkRewritable(vol, ino);
  const map = mapInode(vol, ino, raw);
  map.runs.sort((a, b) => a.logical - b.logical);
  const a = rotatable(raw, map);
  if (n <= 0 || a === 0) return 0;
  for (const r of map.runs) if (r.length >= n) return r.logical + n < a ? r.logical + n : 0;
  return 0;
}

/**
 * After a rewrite rotated by g: the old blocks right before the content's first block that are
 * still free, as [first, count] (content longer than A - g wraps into the old head from its start).
 */
function freeBeforeContent(old: Run[], g: number, newBlocks: number, a: number): [number, number] | null {
  const r = runAt(old, g);
  if (!r || r.logical === g) return null;
  const wrapped = Math.max(0, newBlocks - (a - g));
  const from = Math.max(wrapped, r.logical);
  return from < g ? [r.physical + (from - r.logical), g - from] : null;
}

/** Rewrites inode `ino` with `content` (staged in `vol`; the caller flushes). */
export function rewriteInVolume(vol: Volume, ino: number, content: Buffer, now: number): RewriteReport {
  const raw = checkRewritable(vol, ino);
  const oldSize = inodeSize(raw);
  const map = mapInode(vol, ino, raw);
  map.runs.sort((a, b) => a.logical - b.logical);
  writeThrough(vol, ino, map.runs, 0, padToBlocks(content, vol.bs), true);
  const blocksFreed = finishTruncate(vol, ino, raw, map, content.length, now);
  return { oldSize, newSize: content.length, blocksFreed };
}

/**
 * Streaming rewrite: data is written through the mapping as it arrives (in pieces of up to 1 MiB),
 * metadata staged in `vol` for the caller's flush. Fails with EXT_TOO_LARGE before writing the first
 * block that has no allocated home; blocks written before that are already on the device (the undo
 * log, when the device is a JournaledDevice, restores them).
 */
export async function rewriteStreamInVolume(
  vol: Volume,
  ino: number,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  now: number,
  opts: { reserveHead?: number } = {},
): Promise<RewriteReport> {
  const raw = checkRewritable(vol, ino);
  const oldSize = inodeSize(raw);
  const map = mapInode(vol, ino, raw);
  map.runs.sort((a, b) => a.logical - b.logical);
  const g = opts.reserveHead ?? 0;
  const old = map.runs;
  const rotated = g > 0 ? rotatedRuns(vol, raw, map, g) : undefined;
  if (rotated) map.runs = rotated;
  const bs = vol.bs;
  const pending: Buffer[] = [];
  let pendingLen = 0;
  let logical = 0;
  let total = 0;
  const drain = (final: boolean): void => {
    const whole = final ? pendingLen : Math.floor(pendingLen / bs) * bs;
    if (whole === 0) return;
    const all = Buffer.concat(pending, pendingLen);
    const piece = padToBlocks(all.subarray(0, whole), bs);
    writeThrough(vol, ino, map.runs, logical, piece, false);
    logical += piece.length / bs;
    pending.length = 0;
    pendingLen = 0;
    if (whole < all.length) {
      pending.push(Buffer.from(all.subarray(whole)));
      pendingLen = all.length - whole;
    }
  };
  for await (const c of chunks as AsyncIterable<Uint8Array>) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    if (b.length === 0) continue;
    pending.push(Buffer.from(b));
    pendingLen += b.length;
    total += b.length;
    if (pendingLen >= WRITE_CHUNK) drain(false);
  }
  drain(true);
  const blocksFreed = finishTruncate(vol, ino, raw, map, total, now, rotated !== undefined);
  if (!opts.reserveHead) return { oldSize, newSize: total, blocksFreed };
  const a = old.reduce((n, r) => n + r.length, 0);
  const headFree = rotated ? freeBeforeContent(old, g, Math.ceil(total / bs), a) : null;
  return { oldSize, newSize: total, blocksFreed, headFree };
}
