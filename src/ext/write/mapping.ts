/**
 * Inode fields and block mappings as the writer needs them: which data runs and which tree blocks
 * (extent index/leaf blocks, IND/DIND/TIND blocks) an inode owns.
 *
 * Extent node (ext4-brief §5.1): 12-byte header {magic 0xF30A, entries, max, depth, generation},
 * then 12-byte entries: leaf {ee_block u32, ee_len u16 (>32768 = unwritten), ee_start_hi u16,
 * ee_start_lo u32}, index {ei_block u32, ei_leaf_lo u32, ei_leaf_hi u16, unused u16}.
 * Block map (§5.2): i_block[0..11] direct, [12] IND, [13] DIND, [14] TIND; bs/4 u32 per indirect block.
 * Walks are bounded: depth ≤ 5, entries ≤ max, blocks in range, no tree block visited twice.
 */
import { le16, le32, hiLo, setLe16, setLe32 } from '../../binary/bytes.js';
import { UlfsError, hex } from '../../errors.js';
import type { Volume } from './volume.js';

// Inode offsets (ext4-brief §4).
export const I_MODE = 0x00;
export const I_SIZE_LO = 0x04;
export const I_ATIME = 0x08;
export const I_CTIME = 0x0c;
export const I_MTIME = 0x10;
export const I_DTIME = 0x14;
export const I_LINKS_COUNT = 0x1a;
export const I_BLOCKS_LO = 0x1c;
export const I_FLAGS = 0x20;
export const I_BLOCK = 0x28;
export const I_BLOCK_SIZE = 60;
export const I_GENERATION = 0x64;
export const I_FILE_ACL_LO = 0x68;
export const I_SIZE_HIGH = 0x6c;
export const I_BLOCKS_HI = 0x74;
export const I_FILE_ACL_HIGH = 0x76;
export const I_EXTRA_ISIZE = 0x80;

export const S_IFMT = 0xf000;
export const S_IFREG = 0x8000;
export const S_IFDIR = 0x4000;
export const S_IFLNK = 0xa000;

export const FL_IMMUTABLE = 0x10;
export const FL_APPEND = 0x20;
export const FL_ENCRYPT = 0x800;
export const FL_INDEX = 0x1000;
export const FL_HUGE_FILE = 0x40000;
export const FL_EXTENTS = 0x80000;
export const FL_VERITY = 0x100000;
export const FL_EA_INODE = 0x200000;
export const FL_INLINE_DATA = 0x10000000;
export const FL_CASEFOLD = 0x40000000;

export const EXT_MAGIC = 0xf30a;
export const EXT_INIT_MAX_LEN = 32768;
export const MAX_EXTENT_DEPTH = 5;

export const mode = (raw: Uint8Array): number => le16(raw, I_MODE);
export const fileType = (raw: Uint8Array): number => le16(raw, I_MODE) & S_IFMT;
export const flags = (raw: Uint8Array): number => le32(raw, I_FLAGS);
export const links = (raw: Uint8Array): number => le16(raw, I_LINKS_COUNT);
export const generation = (raw: Uint8Array): number => le32(raw, I_GENERATION);

export function fileAcl(raw: Uint8Array): number {
  return hiLo(le16(raw, I_FILE_ACL_HIGH), le32(raw, I_FILE_ACL_LO));
}
/** i_size; i_size_high only for regular files and (largedir) directories, like the kernel's ext4_isize. */
export function inodeSize(raw: Uint8Array, largedir = false): number {
  const t = fileType(raw);
  if (t === S_IFREG || (t === S_IFDIR && largedir)) return hiLo(le32(raw, I_SIZE_HIGH), le32(raw, I_SIZE_LO));
  return le32(raw, I_SIZE_LO);
}
/** i_blocks in 512-byte units (huge_file + HUGE_FILE_FL: in fs blocks). */
export function iBlocks512(raw: Uint8Array, bs: number, hugeFile: boolean): number {
  const v = hugeFile ? hiLo(le16(raw, I_BLOCKS_HI), le32(raw, I_BLOCKS_LO)) : le32(raw, I_BLOCKS_LO);
  return hugeFile && flags(raw) & FL_HUGE_FILE ? v * (bs / 512) : v;
}

/** Sets i_blocks from a count in 512-byte units (the inverse of iBlocks512). */
export function setIBlocks512(raw: Uint8Array, bs: number, hugeFile: boolean, v512: number): void {
  const stored = hugeFile && flags(raw) & FL_HUGE_FILE ? v512 / (bs / 512) : v512;
  setLe32(raw, I_BLOCKS_LO, stored % 0x1_0000_0000);
  if (hugeFile) setLe16(raw, I_BLOCKS_HI, Math.floor(stored / 0x1_0000_0000));
}

/** Kernel ext4_inode_is_fast_symlink: a symlink whose i_blocks, less the xattr block, are zero. */
export function isFastSymlink(raw: Uint8Array, bs: number, hugeFile: boolean): boolean {
  if (fileType(raw) !== S_IFLNK || flags(raw) & FL_INLINE_DATA) return false;
  const ea = fileAcl(raw) ? bs / 512 : 0;
  return iBlocks512(raw, bs, hugeFile) - ea === 0;
}

/** Only regular files, directories and slow symlinks have block mappings (valid_blk.c). */
export function hasBlockMap(raw: Uint8Array, bs: number, hugeFile: boolean): boolean {
  const t = fileType(raw);
  if (t === S_IFLNK) return !isFastSymlink(raw, bs, hugeFile);
  return (t === S_IFREG || t === S_IFDIR) && !(flags(raw) & FL_INLINE_DATA);
}

export interface Run {
  logical: number;
  physical: number;
  length: number;
  unwritten: boolean;
}

export interface TreeNode {
  /** Physical block, or -1 for the root in i_block. */
  block: number;
  depth: number;
}

export interface FileMap {
  runs: Run[];
  /** Extent index/leaf blocks, or IND/DIND/TIND blocks: freed with the file. */
  treeBlocks: number[];
  extents: boolean;
}

function badExtent(ino: number, msg: string, data: Record<string, unknown> = {}): UlfsError {
  return new UlfsError('EXT_BAD_EXTENT', `inode ${ino}: ${msg}`, { ino, ...data });
}

/** Checks an extent node header; returns {entries, max, depth}. */
export function extentHeader(
  node: Uint8Array,
  ino: number,
  where: string,
): { entries: number; max: number; depth: number } {
  if (le16(node, 0) !== EXT_MAGIC)
    throw badExtent(ino, `extent header at ${where} has magic ${hex(le16(node, 0))}`);
  const entries = le16(node, 2);
  const max = le16(node, 4);
  const depth = le16(node, 6);
  if (entries > max || 12 + 12 * max > node.length)
    throw badExtent(ino, `extent header at ${where}: ${entries} entries, max ${max}`);
  if (depth > MAX_EXTENT_DEPTH)
    throw new UlfsError(
      'EXT_EXTENT_DEPTH',
      `inode ${ino}: extent depth ${depth} is over ${MAX_EXTENT_DEPTH}`,
      { ino },
    );
  return { entries, max, depth };
}

export const leafStart = (node: Uint8Array, e: number): number => hiLo(le16(node, e + 6), le32(node, e + 8));
export const indexLeaf = (node: Uint8Array, e: number): number => hiLo(le16(node, e + 8), le32(node, e + 4));

/** All runs and tree blocks of an inode (which must have a block map). */
export function mapInode(vol: Volume, ino: number, raw: Uint8Array): FileMap {
  if (flags(raw) & FL_EXTENTS) return mapExtents(vol, ino, raw);
  return mapBlockMap(vol, ino, raw);
}

function mapExtents(vol: Volume, ino: number, raw: Uint8Array): FileMap {
  const runs: Run[] = [];
  const treeBlocks: number[] = [];
  const seen = new Set<number>();
  const walk = (node: Uint8Array, expectDepth: number, where: string): void => {
    const h = extentHeader(node, ino, where);
    if (expectDepth >= 0 && h.depth !== expectDepth)
      throw badExtent(ino, `extent node at ${where} has depth ${h.depth}, expected ${expectDepth}`);
    for (let k = 0; k < h.entries; k++) {
      const e = 12 + 12 * k;
      if (h.depth === 0) {
        const rawLen = le16(node, e + 4);
        const unwritten = rawLen > EXT_INIT_MAX_LEN;
        const length = unwritten ? rawLen - EXT_INIT_MAX_LEN : rawLen;
        const physical = leafStart(node, e);
        if (length === 0) continue;
        vol.checkBlock(physical, `inode ${ino} extent start`);
        vol.checkBlock(physical + length - 1, `inode ${ino} extent end`);
        runs.push({ logical: le32(node, e), physical, length, unwritten });
      } else {
        const child = indexLeaf(node, e);
        vol.checkBlock(child, `inode ${ino} extent node`);
        if (seen.has(child))
          throw new UlfsError('EXT_EXTENT_LOOP', `inode ${ino}: extent block ${hex(child)} visited twice`, {
            ino,
          });
        seen.add(child);
        treeBlocks.push(child);
        walk(vol.block(child, 'extent block'), h.depth - 1, `block ${hex(child)}`);
      }
    }
  };
  walk(raw.subarray(I_BLOCK, I_BLOCK + I_BLOCK_SIZE), -1, 'i_block');
  return { runs, treeBlocks, extents: true };
}

function mapBlockMap(vol: Volume, ino: number, raw: Uint8Array): FileMap {
  const runs: Run[] = [];
  const treeBlocks: number[] = [];
  const per = vol.bs / 4;
  const push = (logical: number, physical: number): void => {
    const last = runs[runs.length - 1];
    if (last && last.logical + last.length === logical && last.physical + last.length === physical)
      last.length++;
    else runs.push({ logical, physical, length: 1, unwritten: false });
  };
  const walk = (block: number, level: number, base: number): void => {
    vol.checkBlock(block, `inode ${ino} indirect block`);
    treeBlocks.push(block);
    const b = vol.block(block, 'indirect block');
    const span = per ** (level - 1);
    for (let i = 0; i < per; i++) {
      const p = le32(b, 4 * i);
      if (!p) continue;
      if (level === 1) {
        vol.checkBlock(p, `inode ${ino} data block`);
        push(base + i, p);
      } else walk(p, level - 1, base + i * span);
    }
  };
  for (let i = 0; i < 12; i++) {
    const p = le32(raw, I_BLOCK + 4 * i);
    if (!p) continue;
    vol.checkBlock(p, `inode ${ino} data block`);
    push(i, p);
  }
  const starts = [12, 12 + per, 12 + per + per * per];
  for (let level = 1; level <= 3; level++) {
    const p = le32(raw, I_BLOCK + 4 * (11 + level));
    if (p) walk(p, level, starts[level - 1]!);
  }
  return { runs, treeBlocks, extents: false };
}
