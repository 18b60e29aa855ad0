/**
 * Moving file data to a chosen free run (what e4defrag does, without the kernel). prune uses it to
 * put the root fs copies of the modules an uncompressed initramfs holds right before that
 * initramfs: an image-level xz (8 MiB window) then stores their bytes once instead of twice.
 *
 * Per file: the new blocks are allocated (ext2fs_block_alloc_stats_range), the data is copied block
 * for block (holes and unwritten extents become written zero blocks: the copy is dense, so its bytes
 * on disk are the file's bytes), the old data and extent tree blocks are freed, and i_block becomes a
 * depth-0 tree with one extent (ext4-brief §6: at most EXT_INIT_MAX_LEN blocks). i_blocks changes by
 * the blocks moved; i_size, times, owner, mode and xattrs stay. Only extent-mapped regular files
 * with no FL_HUGE_FILE qualify; others are skipped.
 */
import { UlfsError } from '../../errors.js';
import {
  EXT_INIT_MAX_LEN,
  flags,
  FL_EXTENTS,
  FL_HUGE_FILE,
  I_BLOCK,
  I_BLOCK_SIZE,
  iBlocks512,
  inodeSize,
  mapInode,
  setIBlocks512,
} from './mapping.js';
import { checkRewritable, encodeHeader, encodeLeafEntries } from './rewrite.js';
import type { Volume } from './volume.js';

export interface RelocateReport {
  /** Inodes moved, in placement order. */
  moved: number[];
  /** Inodes left where they were (did not fit, or cannot be moved). */
  skipped: number[];
  blocksMoved: number;
  /** The run the moved files now fill: [first block, count]. */
  run: [number, number] | null;
}

/** Copies are made in pieces of at most this many bytes. */
const COPY_CHUNK = 1 << 20;

/** Blocks a file needs as one dense extent, or 0 when it cannot be moved. */
function movableBlocks(vol: Volume, ino: number): number {
  let raw: Buffer;
  try {
    raw = checkRewritable(vol, ino);
  } catch (e) {
    if (e instanceof UlfsError) return 0;
    throw e;
  }
  if (!(flags(raw) & FL_EXTENTS) || flags(raw) & FL_HUGE_FILE) return 0;
  const k = Math.ceil(inodeSize(raw) / vol.bs);
  return k > 0 && k <= EXT_INIT_MAX_LEN ? k : 0;
}

export function relocateInVolume(vol: Volume, inos: number[], end: number, room: number): RelocateReport {
  const moved: number[] = [];
  const skipped: number[] = [];
  // Which files go: in order, as long as they fit; the placement then ends exactly at `end`.
  const take: { ino: number; k: number }[] = [];
  let total = 0;
  for (const ino of inos) {
    const k = movableBlocks(vol, ino);
    if (k === 0 || total + k > room) skipped.push(ino);
    else {
      take.push({ ino, k });
      total += k;
    }
  }
  if (total === 0) return { moved, skipped, blocksMoved: 0, run: null };
  const first = end - total;
  vol.allocRun(first, total);
  let at = first;
  for (const { ino, k } of take) {
    moveFile(vol, ino, k, at);
    moved.push(ino);
    at += k;
  }
  return { moved, skipped, blocksMoved: total, run: [first, total] };
}

/** Copies inode `ino`'s first `k` blocks to [dest, dest+k) (already allocated) and remaps it there. */
function moveFile(vol: Volume, ino: number, k: number, dest: number): void {
  const bs = vol.bs;
  const raw = vol.inode(ino);
  const map = mapInode(vol, ino, raw);
  map.runs.sort((a, b) => a.logical - b.logical);
  // Copy: mapped blocks from their old place, everything else (holes, unwritten) as zeros.
  let l = 0;
  const zeros = Buffer.alloc(Math.min(COPY_CHUNK, k * bs));
  const writeZeros = (from: number, to: number): void => {
    // bounded: each pass writes at least one block
    for (let b = from; b < to;) {
      const n = Math.min(to - b, COPY_CHUNK / bs);
      vol.dev.write((dest + b) * bs, zeros.subarray(0, n * bs));
      b += n;
    }
  };
  for (const r of map.runs) {
    if (r.logical >= k) break;
    if (r.unwritten) continue;
    if (r.logical > l) writeZeros(l, r.logical);
    const stop = Math.min(k, r.logical + r.length);
    for (let b = r.logical; b < stop;) {
      const n = Math.min(stop - b, COPY_CHUNK / bs);
      const data = vol.dev.read((r.physical + (b - r.logical)) * bs, n * bs);
      vol.dev.write((dest + b) * bs, data);
      b += n;
    }
    l = stop;
  }
  if (l < k) writeZeros(l, k);
  // Free the old blocks (data past k too: preallocation) and the old tree.
  let oldBlocks = 0;
  for (const r of map.runs) {
    vol.freeRun(r.physical, r.length);
    oldBlocks += r.length;
  }
  for (const t of map.treeBlocks) vol.freeBlock(t);
  oldBlocks += map.treeBlocks.length;
  // One extent in the inode.
  const root = Buffer.alloc(I_BLOCK_SIZE);
  encodeHeader(root, 1, 4, 0);
  encodeLeafEntries(root, [{ logical: 0, physical: dest, length: k, unwritten: false }]);
  root.copy(raw, I_BLOCK);
  setIBlocks512(
    raw,
    bs,
    vol.geo.hugeFile,
    iBlocks512(raw, bs, vol.geo.hugeFile) + (k - oldBlocks) * (bs / 512),
  );
  vol.writeInode(ino);
}
