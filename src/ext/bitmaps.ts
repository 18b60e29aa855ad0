/**
 * Block and inode allocation bitmaps (ext4-brief §3.3, §12).
 *
 * Block bitmap bit i of group g <-> block first_data_block + g·bpg + i; inode bitmap bit i <-> inode
 * g·ipg + i + 1. Bits are little-endian within a byte. The checksummed part is cpg/8 (ipg/8) bytes; the
 * rest of the block is padding that must be 0xFF, and in the last group the bits past blocks_count
 * are set.
 *
 * BLOCK_UNINIT (honoured only with gdt_csum/metadata_csum): the on-disk bitmap is not read. The used
 * blocks are the group's superblock/GDT/reserved-GDT copies (or meta_bg descriptor block) plus any
 * group's bitmaps and inode table lying inside it (e2fsprogs rw_bitmaps.c mark_uninit_bg_group_blocks,
 * alloc_sb.c ext2fs_reserve_super_and_bgd; kernel ext4_init_block_bitmap). INODE_UNINIT: all zero.
 */
import { UlfsError, hex } from '../errors.js';
import {
  BG_BLOCK_BITMAP_HI,
  BG_BLOCK_BITMAP_LO,
  BG_BLOCK_UNINIT,
  BG_FLAGS,
  BG_INODE_BITMAP_HI,
  BG_INODE_BITMAP_LO,
  BG_INODE_TABLE_HI,
  BG_INODE_TABLE_LO,
  BG_INODE_UNINIT,
  descBlockField,
  groupBlockCount,
  groupFirstBlock,
  superAndGdtRuns,
  type Geometry,
} from './write/geometry.js';
import { le16 } from '../binary/bytes.js';

export interface GroupLocs {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  flags: number;
}

export function decodeGroupLocs(geo: Geometry, d: Uint8Array): GroupLocs {
  return {
    blockBitmap: descBlockField(geo, d, BG_BLOCK_BITMAP_LO, BG_BLOCK_BITMAP_HI),
    inodeBitmap: descBlockField(geo, d, BG_INODE_BITMAP_LO, BG_INODE_BITMAP_HI),
    inodeTable: descBlockField(geo, d, BG_INODE_TABLE_LO, BG_INODE_TABLE_HI),
    flags: le16(d, BG_FLAGS),
  };
}

export const testBit = (b: Uint8Array, i: number): boolean => (b[i >>> 3]! & (1 << (i & 7))) !== 0;
export function setBit(b: Uint8Array, i: number): void {
  b[i >>> 3]! |= 1 << (i & 7);
}
export function clearBit(b: Uint8Array, i: number): void {
  b[i >>> 3]! &= ~(1 << (i & 7));
}
/** Sets bits [start, end). */
export function setBitRange(b: Uint8Array, start: number, end: number): void {
  let i = start;
  for (; i < end && i & 7; i++) setBit(b, i);
  const fullEnd = end & ~7;
  if (i < fullEnd) {
    b.fill(0xff, i >>> 3, fullEnd >>> 3);
    i = fullEnd;
  }
  for (; i < end; i++) setBit(b, i);
}

const POP = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) t[i] = (i & 1) + t[i >>> 1]!;
  return t;
})();

/** Number of clear bits among the first n. */
export function countZeroBits(b: Uint8Array, n: number): number {
  let set = 0;
  const full = n >>> 3;
  for (let i = 0; i < full; i++) set += POP[b[i]!]!;
  for (let i = full << 3; i < n; i++) if (testBit(b, i)) set++;
  return n - set;
}

/** Whether block bitmaps of BLOCK_UNINIT groups must be synthesized (flags only count with a gdt checksum). */
export function isBlockUninit(geo: Geometry, locs: GroupLocs): boolean {
  return geo.gdtCsum && (locs.flags & BG_BLOCK_UNINIT) !== 0;
}
export function isInodeUninit(geo: Geometry, locs: GroupLocs): boolean {
  return geo.gdtCsum && (locs.flags & BG_INODE_UNINIT) !== 0;
}

/** Marks in `bm` (group g's bitmap) every block of `run` that lies inside group g. */
function markRun(geo: Geometry, g: number, bm: Uint8Array, start: number, count: number): void {
  const first = groupFirstBlock(geo, g);
  const n = groupBlockCount(geo, g);
  const s = Math.max(start, first);
  const e = Math.min(start + count, first + n);
  if (s < e) setBitRange(bm, s - first, e - first);
}

/**
 * The block bitmap group g would have if it were BLOCK_UNINIT: a full block, padding set.
 * `all` are every group's metadata locations (flex_bg puts them in other groups).
 */
export function synthesizeBlockBitmap(geo: Geometry, g: number, all: readonly GroupLocs[]): Buffer {
  const bm = Buffer.alloc(geo.bs);
  setBitRange(bm, groupBlockCount(geo, g), geo.bs * 8);
  for (const [s, c] of superAndGdtRuns(geo, g)) markRun(geo, g, bm, s, c);
  const first = groupFirstBlock(geo, g);
  const last = first + groupBlockCount(geo, g);
  for (const l of all) {
    // cheap range filter before marking: most groups' metadata is elsewhere
    if (l.blockBitmap >= first && l.blockBitmap < last) markRun(geo, g, bm, l.blockBitmap, 1);
    if (l.inodeBitmap >= first && l.inodeBitmap < last) markRun(geo, g, bm, l.inodeBitmap, 1);
    if (l.inodeTable < last && l.inodeTable + geo.itableBlocks > first)
      markRun(geo, g, bm, l.inodeTable, geo.itableBlocks);
  }
  return bm;
}

/** Checks a bitmap location before reading it. */
export function checkBitmapBlock(geo: Geometry, g: number, block: number, what: string): void {
  if (block < geo.firstDataBlock || block >= geo.blocksCount) {
    throw new UlfsError(
      'EXT_BAD_GROUP_DESC',
      `group ${g} ${what} at block ${hex(block)} is outside the filesystem`,
      {
        group: g,
        block,
      },
    );
  }
}

/**
 * Group g's block bitmap as a private, mutable, full-block copy: read from disk, or synthesized for
 * BLOCK_UNINIT groups. `readBlock` returns the block's bytes.
 */
export function loadBlockBitmap(
  geo: Geometry,
  g: number,
  all: readonly GroupLocs[],
  readBlock: (n: number) => Uint8Array,
): Buffer {
  const l = all[g]!;
  if (isBlockUninit(geo, l)) return synthesizeBlockBitmap(geo, g, all);
  checkBitmapBlock(geo, g, l.blockBitmap, 'block bitmap');
  return Buffer.from(readBlock(l.blockBitmap));
}

/** Group g's inode bitmap (all zero for INODE_UNINIT, padding set). */
export function loadInodeBitmap(
  geo: Geometry,
  g: number,
  all: readonly GroupLocs[],
  readBlock: (n: number) => Uint8Array,
): Buffer {
  const l = all[g]!;
  if (isInodeUninit(geo, l)) {
    const bm = Buffer.alloc(geo.bs);
    setBitRange(bm, geo.ipg, geo.bs * 8);
    return bm;
  }
  checkBitmapBlock(geo, g, l.inodeBitmap, 'inode bitmap');
  return Buffer.from(readBlock(l.inodeBitmap));
}

/**
 * Free runs in a group bitmap: [firstBlock, count] in filesystem block numbers, for bits [0, nbits).
 * Scans a byte at a time, skipping 0xFF bytes, so full groups cost little.
 */
export function freeRuns(bm: Uint8Array, nbits: number, base: number): [number, number][] {
  const runs: [number, number][] = [];
  let runStart = -1;
  let i = 0;
  while (i < nbits) {
    if ((i & 7) === 0 && i + 8 <= nbits) {
      const byte = bm[i >>> 3]!;
      if (byte === 0xff) {
        if (runStart >= 0) {
          runs.push([base + runStart, i - runStart]);
          runStart = -1;
        }
        i += 8;
        continue;
      }
      if (byte === 0) {
        if (runStart < 0) runStart = i;
        i += 8;
        continue;
      }
    }
    if (testBit(bm, i)) {
      if (runStart >= 0) {
        runs.push([base + runStart, i - runStart]);
        runStart = -1;
      }
    } else if (runStart < 0) runStart = i;
    i++;
  }
  if (runStart >= 0) runs.push([base + runStart, nbits - runStart]);
  return runs;
}
