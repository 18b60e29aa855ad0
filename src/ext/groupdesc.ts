/**
 * Block group descriptors: 32 bytes, or s_desc_size (>= 64) bytes with the 64bit feature.
 * Layout: e2fsprogs lib/ext2fs/ext2_fs.h (struct ext4_group_desc); placement: openfs.c
 * (ext2fs_descriptor_block_loc2), closefs.c (ext2fs_bg_has_super); ext4-brief §3.
 *
 *  0x00 u32 bg_block_bitmap_lo      0x20 u32 bg_block_bitmap_hi
 *  0x04 u32 bg_inode_bitmap_lo      0x24 u32 bg_inode_bitmap_hi
 *  0x08 u32 bg_inode_table_lo       0x28 u32 bg_inode_table_hi
 *  0x0C u16 bg_free_blocks_count_lo 0x2C u16 bg_free_blocks_count_hi
 *  0x0E u16 bg_free_inodes_count_lo 0x2E u16 bg_free_inodes_count_hi
 *  0x10 u16 bg_used_dirs_count_lo   0x30 u16 bg_used_dirs_count_hi
 *  0x12 u16 bg_flags                0x32 u16 bg_itable_unused_hi
 *  0x14 u32 bg_exclude_bitmap_lo    0x34 u32 bg_exclude_bitmap_hi
 *  0x18 u16 bg_block_bitmap_csum_lo 0x38 u16 bg_block_bitmap_csum_hi
 *  0x1A u16 bg_inode_bitmap_csum_lo 0x3A u16 bg_inode_bitmap_csum_hi
 *  0x1C u16 bg_itable_unused_lo     0x3C u32 bg_reserved
 *  0x1E u16 bg_checksum
 */
import { le16, le32, hiLo } from '../binary/bytes.js';
import { UlfsError } from '../errors.js';
import { INCOMPAT, RO_COMPAT, COMPAT } from './features.js';
import type { Superblock } from './superblock.js';

export const GD = {
  blockBitmapLo: 0x00,
  inodeBitmapLo: 0x04,
  inodeTableLo: 0x08,
  freeBlocksCountLo: 0x0c,
  freeInodesCountLo: 0x0e,
  usedDirsCountLo: 0x10,
  flags: 0x12,
  excludeBitmapLo: 0x14,
  blockBitmapCsumLo: 0x18,
  inodeBitmapCsumLo: 0x1a,
  itableUnusedLo: 0x1c,
  checksum: 0x1e,
  blockBitmapHi: 0x20,
  inodeBitmapHi: 0x24,
  inodeTableHi: 0x28,
  freeBlocksCountHi: 0x2c,
  freeInodesCountHi: 0x2e,
  usedDirsCountHi: 0x30,
  itableUnusedHi: 0x32,
  excludeBitmapHi: 0x34,
  blockBitmapCsumHi: 0x38,
  inodeBitmapCsumHi: 0x3a,
} as const;

export const BG_INODE_UNINIT = 0x1;
export const BG_BLOCK_UNINIT = 0x2;
export const BG_INODE_ZEROED = 0x4;

export interface GroupDesc {
  group: number;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocksCount: number;
  freeInodesCount: number;
  usedDirsCount: number;
  flags: number;
  excludeBitmap: number;
  /** 32-bit when the descriptor has the _hi half (desc_size >= 0x3A/0x3C), else the 16-bit lo. */
  blockBitmapCsum: number;
  inodeBitmapCsum: number;
  itableUnused: number;
  checksum: number;
  /** Byte offset of this descriptor from the start of the filesystem. */
  offset: number;
  /** Descriptor size in bytes (32 or s_desc_size). */
  size: number;
  /** The raw descriptor bytes (a copy). */
  raw: Buffer;
}

/** Decodes one descriptor. `hiHalf` = 64bit and size >= 64. */
export function decodeGroupDesc(
  raw: Uint8Array,
  group: number,
  offset: number,
  size: number,
  is64bit: boolean,
): GroupDesc {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const hiHalf = is64bit && size >= 64;
  const h32 = (off: number): number => (hiHalf ? le32(b, off) : 0);
  const h16 = (off: number): number => (hiHalf ? le16(b, off) : 0);
  return {
    group,
    blockBitmap: hiLo(h32(GD.blockBitmapHi), le32(b, GD.blockBitmapLo)),
    inodeBitmap: hiLo(h32(GD.inodeBitmapHi), le32(b, GD.inodeBitmapLo)),
    inodeTable: hiLo(h32(GD.inodeTableHi), le32(b, GD.inodeTableLo)),
    freeBlocksCount: h16(GD.freeBlocksCountHi) * 0x10000 + le16(b, GD.freeBlocksCountLo),
    freeInodesCount: h16(GD.freeInodesCountHi) * 0x10000 + le16(b, GD.freeInodesCountLo),
    usedDirsCount: h16(GD.usedDirsCountHi) * 0x10000 + le16(b, GD.usedDirsCountLo),
    flags: le16(b, GD.flags),
    excludeBitmap: hiLo(h32(GD.excludeBitmapHi), le32(b, GD.excludeBitmapLo)),
    blockBitmapCsum:
      (is64bit && size >= GD.blockBitmapCsumHi + 2 ? le16(b, GD.blockBitmapCsumHi) * 0x10000 : 0) +
      le16(b, GD.blockBitmapCsumLo),
    inodeBitmapCsum:
      (is64bit && size >= GD.inodeBitmapCsumHi + 2 ? le16(b, GD.inodeBitmapCsumHi) * 0x10000 : 0) +
      le16(b, GD.inodeBitmapCsumLo),
    itableUnused: h16(GD.itableUnusedHi) * 0x10000 + le16(b, GD.itableUnusedLo),
    checksum: le16(b, GD.checksum),
    offset,
    size,
    raw: Buffer.from(b.subarray(0, size)),
  };
}

/** True if `n` is a power of `base` (1 counts: base^0). */
function isPowerOf(n: number, base: number): boolean {
  while (n > 1 && n % base === 0) n /= base;
  return n === 1;
}

/** Does group `g` hold a superblock copy (ext2fs_bg_has_super)? */
export function bgHasSuper(sb: Superblock, g: number): boolean {
  if (g === 0) return true;
  if (sb.featureCompat & COMPAT.SPARSE_SUPER2) return g === sb.backupBgs[0] || g === sb.backupBgs[1];
  if (g <= 1 || !(sb.featureRoCompat & RO_COMPAT.SPARSE_SUPER)) return true;
  if (!(g & 1)) return false;
  return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

/** First block of group `g`. */
export function groupFirstBlock(sb: Superblock, g: number): number {
  return sb.firstDataBlock + g * sb.blocksPerGroup;
}

/** Number of blocks in group `g` (the last group may be short). */
export function groupBlockCount(sb: Superblock, g: number): number {
  if (g === sb.groupCount - 1) return sb.blocksCount - sb.firstDataBlock - g * sb.blocksPerGroup;
  return sb.blocksPerGroup;
}

export function descsPerBlock(sb: Superblock): number {
  return sb.blockSize / sb.groupDescSize;
}

/** Number of blocks the descriptor table needs. */
export function gdtBlockCount(sb: Superblock): number {
  return Math.ceil(sb.groupCount / descsPerBlock(sb));
}

/**
 * Block that holds descriptor block `i` of the primary table (ext2fs_descriptor_block_loc2 with the
 * primary superblock): classic placement right after the superblock, or with meta_bg (for i >=
 * s_first_meta_bg) the first block of group i*descPerBlock, after its superblock copy if it has one.
 */
export function descriptorBlockLocation(sb: Superblock, i: number): number {
  // With 1 KiB blocks and first_data_block 0 (bigalloc), block 1 is the superblock itself.
  const adjust = sb.blockSize === 1024 && sb.firstDataBlock === 0 ? 1 : 0;
  if (!(sb.featureIncompat & INCOMPAT.META_BG) || i < sb.firstMetaBg) {
    return sb.firstDataBlock + 1 + i + adjust;
  }
  const g = i * descsPerBlock(sb);
  return groupFirstBlock(sb, g) + (bgHasSuper(sb, g) ? 1 : 0) + (g === 0 ? adjust : 0);
}

/** Checks that a descriptor's metadata locations lie inside the filesystem. */
export function checkGroupDesc(sb: Superblock, gd: GroupDesc): void {
  const inRange = (blk: number, n: number): boolean => blk >= sb.firstDataBlock && blk + n <= sb.blocksCount;
  const where = { group: gd.group, offset: gd.offset };
  if (!inRange(gd.blockBitmap, 1)) {
    throw new UlfsError(
      'EXT_BAD_GROUP_DESC',
      `group ${gd.group}: block bitmap at block ${gd.blockBitmap} is outside the filesystem`,
      where,
    );
  }
  if (!inRange(gd.inodeBitmap, 1)) {
    throw new UlfsError(
      'EXT_BAD_GROUP_DESC',
      `group ${gd.group}: inode bitmap at block ${gd.inodeBitmap} is outside the filesystem`,
      where,
    );
  }
  if (!inRange(gd.inodeTable, sb.inodeTableBlocks)) {
    throw new UlfsError(
      'EXT_BAD_GROUP_DESC',
      `group ${gd.group}: inode table at block ${gd.inodeTable} (+${sb.inodeTableBlocks}) is outside the filesystem`,
      where,
    );
  }
  if (gd.itableUnused > sb.inodesPerGroup || gd.freeInodesCount > sb.inodesPerGroup) {
    throw new UlfsError(
      'EXT_BAD_GROUP_DESC',
      `group ${gd.group}: inode counts exceed s_inodes_per_group`,
      where,
    );
  }
}
