/**
 * Filesystem geometry for the writer: the superblock fields it needs, decoded from the raw 1024
 * bytes, plus group layout rules (ext4-brief §2, §3.2; e2fsprogs closefs.c ext2fs_bg_has_super,
 * openfs.c ext2fs_descriptor_block_loc2, alloc_sb.c ext2fs_reserve_super_and_bgd).
 *
 * The writer keeps its own view of the metadata (rather than the reader's caches) because it must
 * re-read what it patches and write it back in a fixed order; this file is the shared vocabulary.
 */
import { le16, le32, hiLo } from '../../binary/bytes.js';
import { UlfsError, hex } from '../../errors.js';
import { fsSeed, hasGroupDescCsum, hasMetadataCsum } from '../checksums.js';

// Superblock offsets (ext4-brief §2).
export const S_INODES_COUNT = 0x00;
export const S_BLOCKS_COUNT_LO = 0x04;
export const S_FREE_BLOCKS_COUNT_LO = 0x0c;
export const S_FREE_INODES_COUNT = 0x10;
export const S_FIRST_DATA_BLOCK = 0x14;
export const S_LOG_BLOCK_SIZE = 0x18;
export const S_LOG_CLUSTER_SIZE = 0x1c;
export const S_BLOCKS_PER_GROUP = 0x20;
export const S_CLUSTERS_PER_GROUP = 0x24;
export const S_INODES_PER_GROUP = 0x28;
export const S_MAGIC = 0x38;
export const S_STATE = 0x3a;
export const S_CREATOR_OS = 0x48;
export const S_REV_LEVEL = 0x4c;
export const S_FIRST_INO = 0x54;
export const S_INODE_SIZE = 0x58;
export const S_FEATURE_COMPAT = 0x5c;
export const S_FEATURE_INCOMPAT = 0x60;
export const S_FEATURE_RO_COMPAT = 0x64;
export const S_RESERVED_GDT_BLOCKS = 0xce;
export const S_JOURNAL_INUM = 0xe0;
export const S_LAST_ORPHAN = 0xe8;
export const S_DESC_SIZE = 0xfe;
export const S_FIRST_META_BG = 0x104;
export const S_BLOCKS_COUNT_HI = 0x150;
export const S_FREE_BLOCKS_COUNT_HI = 0x158;
export const S_LOG_GROUPS_PER_FLEX = 0x174;
export const S_CHECKSUM_TYPE = 0x175;
export const S_BACKUP_BGS = 0x24c;
export const S_LPF_INO = 0x268;
export const S_ORPHAN_FILE_INUM = 0x280;

export const EXT_MAGIC = 0xef53;

// Feature bits (ext4-brief §2.1).
export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_RESIZE_INODE = 0x10;
export const COMPAT_SPARSE_SUPER2 = 0x200;
export const COMPAT_FAST_COMMIT = 0x400;
export const COMPAT_ORPHAN_FILE = 0x1000;
export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_RECOVER = 0x4;
export const INCOMPAT_JOURNAL_DEV = 0x8;
export const INCOMPAT_META_BG = 0x10;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_64BIT = 0x80;
export const INCOMPAT_LARGEDIR = 0x4000;
export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_HUGE_FILE = 0x8;
export const RO_COMPAT_BIGALLOC = 0x200;

// Group descriptor offsets (ext4-brief §3.1).
export const BG_BLOCK_BITMAP_LO = 0x00;
export const BG_INODE_BITMAP_LO = 0x04;
export const BG_INODE_TABLE_LO = 0x08;
export const BG_FREE_BLOCKS_COUNT_LO = 0x0c;
export const BG_FREE_INODES_COUNT_LO = 0x0e;
export const BG_USED_DIRS_COUNT_LO = 0x10;
export const BG_FLAGS = 0x12;
export const BG_ITABLE_UNUSED_LO = 0x1c;
export const BG_BLOCK_BITMAP_HI = 0x20;
export const BG_INODE_BITMAP_HI = 0x24;
export const BG_INODE_TABLE_HI = 0x28;
export const BG_FREE_BLOCKS_COUNT_HI = 0x2c;
export const BG_FREE_INODES_COUNT_HI = 0x2e;
export const BG_USED_DIRS_COUNT_HI = 0x30;
export const BG_ITABLE_UNUSED_HI = 0x32;
export const BG_INODE_UNINIT = 0x1;
export const BG_BLOCK_UNINIT = 0x2;

export interface Geometry {
  bs: number;
  firstDataBlock: number;
  blocksCount: number;
  bpg: number;
  cpg: number;
  ipg: number;
  inodesCount: number;
  inodeSize: number;
  groupCount: number;
  descSize: number;
  descPerBlock: number;
  gdtBlocks: number;
  reservedGdtBlocks: number;
  firstIno: number;
  compat: number;
  incompat: number;
  roCompat: number;
  metadataCsum: boolean;
  /** metadata_csum or gdt_csum: descriptors carry a checksum, UNINIT flags are honoured. */
  gdtCsum: boolean;
  seed: number;
  is64: boolean;
  hasFiletype: boolean;
  hugeFile: boolean;
  sparseSuper: boolean;
  sparseSuper2: boolean;
  backupBgs: [number, number];
  metaBg: boolean;
  firstMetaBg: number;
  itableBlocks: number;
  journalInum: number;
  lastOrphan: number;
  state: number;
  creatorOs: number;
  lpfIno: number;
}

export function decodeGeometry(sb: Uint8Array): Geometry {
  if (le16(sb, S_MAGIC) !== EXT_MAGIC) {
    throw new UlfsError('EXT_BAD_MAGIC', `superblock magic is ${hex(le16(sb, S_MAGIC))}, not 0xef53`);
  }
  const logBs = le32(sb, S_LOG_BLOCK_SIZE);
  if (logBs > 6) throw new UlfsError('EXT_BAD_SUPERBLOCK', `s_log_block_size ${logBs} is over 6`);
  const bs = 1024 << logBs;
  const incompat = le32(sb, S_FEATURE_INCOMPAT);
  const roCompat = le32(sb, S_FEATURE_RO_COMPAT);
  const compat = le32(sb, S_FEATURE_COMPAT);
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const descSize = is64 ? le16(sb, S_DESC_SIZE) : 32;
  if (descSize < 32 || descSize > bs || (descSize & (descSize - 1)) !== 0) {
    throw new UlfsError(
      'EXT_BAD_SUPERBLOCK',
      `descriptor size ${descSize} is not a power of 2 in [32, ${bs}]`,
    );
  }
  const blocksCount = is64
    ? hiLo(le32(sb, S_BLOCKS_COUNT_HI), le32(sb, S_BLOCKS_COUNT_LO))
    : le32(sb, S_BLOCKS_COUNT_LO);
  const firstDataBlock = le32(sb, S_FIRST_DATA_BLOCK);
  const bpg = le32(sb, S_BLOCKS_PER_GROUP);
  const cpg = le32(sb, S_CLUSTERS_PER_GROUP) || bpg;
  const ipg = le32(sb, S_INODES_PER_GROUP);
  const rev = le32(sb, S_REV_LEVEL);
  const inodeSize = rev === 0 ? 128 : le16(sb, S_INODE_SIZE);
  if (
    bpg === 0 ||
    cpg === 0 ||
    cpg > bs * 8 ||
    bpg % cpg !== 0 ||
    ipg === 0 ||
    ipg > bs * 8 ||
    (ipg & 7) !== 0
  ) {
    throw new UlfsError(
      'EXT_BAD_SUPERBLOCK',
      `blocks per group ${bpg} / clusters per group ${cpg} / inodes per group ${ipg} are out of range`,
    );
  }
  if (inodeSize < 128 || inodeSize > bs || (inodeSize & (inodeSize - 1)) !== 0) {
    throw new UlfsError('EXT_BAD_SUPERBLOCK', `inode size ${inodeSize} is invalid`);
  }
  if (blocksCount <= firstDataBlock) {
    throw new UlfsError(
      'EXT_BAD_SUPERBLOCK',
      `blocks count ${blocksCount} is not past first data block ${firstDataBlock}`,
    );
  }
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / bpg);
  const inodesCount = le32(sb, S_INODES_COUNT);
  if (groupCount * ipg !== inodesCount) {
    throw new UlfsError('EXT_BAD_SUPERBLOCK', `inodes count ${inodesCount} != ${groupCount} groups × ${ipg}`);
  }
  const descPerBlock = bs / descSize;
  return {
    bs,
    firstDataBlock,
    blocksCount,
    bpg,
    cpg,
    ipg,
    inodesCount,
    inodeSize,
    groupCount,
    descSize,
    descPerBlock,
    gdtBlocks: Math.ceil(groupCount / descPerBlock),
    reservedGdtBlocks: compat & COMPAT_RESIZE_INODE ? le16(sb, S_RESERVED_GDT_BLOCKS) : 0,
    firstIno: rev === 0 ? 11 : le32(sb, S_FIRST_INO),
    compat,
    incompat,
    roCompat,
    metadataCsum: hasMetadataCsum(sb),
    gdtCsum: hasGroupDescCsum(sb),
    seed: fsSeed(sb),
    is64,
    hasFiletype: (incompat & INCOMPAT_FILETYPE) !== 0,
    hugeFile: (roCompat & RO_COMPAT_HUGE_FILE) !== 0,
    sparseSuper: (roCompat & RO_COMPAT_SPARSE_SUPER) !== 0,
    sparseSuper2: (compat & COMPAT_SPARSE_SUPER2) !== 0,
    backupBgs: [le32(sb, S_BACKUP_BGS), le32(sb, S_BACKUP_BGS + 4)],
    metaBg: (incompat & INCOMPAT_META_BG) !== 0,
    firstMetaBg: le32(sb, S_FIRST_META_BG),
    itableBlocks: Math.ceil((ipg * inodeSize) / bs),
    journalInum: compat & COMPAT_HAS_JOURNAL ? le32(sb, S_JOURNAL_INUM) : 0,
    lastOrphan: le32(sb, S_LAST_ORPHAN),
    state: le16(sb, S_STATE),
    creatorOs: le32(sb, S_CREATOR_OS),
    lpfIno: le32(sb, S_LPF_INO),
  };
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  for (let i = 0; i < 40 && x <= n; i++) {
    if (x === n) return true;
    x *= base;
  }
  return false;
}

/** Does group g hold a superblock (primary or backup)? (ext2fs_bg_has_super) */
export function groupHasSuper(geo: Geometry, g: number): boolean {
  if (g === 0) return true;
  if (geo.sparseSuper2) return g === geo.backupBgs[0] || g === geo.backupBgs[1];
  if (g <= 1 || !geo.sparseSuper) return true;
  if (!(g & 1)) return false;
  return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

export function groupFirstBlock(geo: Geometry, g: number): number {
  return geo.firstDataBlock + g * geo.bpg;
}

/** Number of blocks in group g (the last group may be short). */
export function groupBlockCount(geo: Geometry, g: number): number {
  if (g === geo.groupCount - 1) return geo.blocksCount - geo.firstDataBlock - g * geo.bpg;
  return geo.bpg;
}

/** Block number of primary descriptor block m (meta_bg aware). */
export function gdtBlockNumber(geo: Geometry, m: number): number {
  if (!geo.metaBg || m < geo.firstMetaBg) return geo.firstDataBlock + 1 + m;
  const g = m * geo.descPerBlock;
  return groupFirstBlock(geo, g) + (groupHasSuper(geo, g) ? 1 : 0);
}

/**
 * Blocks of group g used by superblock + descriptor copies + reserved GDT (the part of
 * ext2fs_reserve_super_and_bgd that concerns one group), as [start, count] runs.
 */
export function superAndGdtRuns(geo: Geometry, g: number): [number, number][] {
  const runs: [number, number][] = [];
  const first = groupFirstBlock(geo, g);
  const has = groupHasSuper(geo, g);
  if (has) runs.push([first, 1]);
  const oldDescBlocks = geo.metaBg ? geo.firstMetaBg : geo.gdtBlocks + geo.reservedGdtBlocks;
  if (has && oldDescBlocks > 0) runs.push([first + 1, Math.min(oldDescBlocks, groupBlockCount(geo, g) - 1)]);
  if (geo.metaBg) {
    const metaGroup = Math.floor(g / geo.descPerBlock);
    const pos = g % geo.descPerBlock;
    if (metaGroup >= geo.firstMetaBg && (pos === 0 || pos === 1 || pos === geo.descPerBlock - 1)) {
      runs.push([first + (has ? 1 : 0), 1]);
    }
  }
  return runs;
}

/** Reads u32 lo + (64-byte descriptors) u32 hi. */
export function descBlockField(geo: Geometry, d: Uint8Array, lo: number, hi: number): number {
  return geo.descSize >= 64 ? hiLo(le32(d, hi), le32(d, lo)) : le32(d, lo);
}
export function descCount(geo: Geometry, d: Uint8Array, lo: number, hi: number): number {
  return geo.descSize >= 64 ? ((le16(d, hi) << 16) | le16(d, lo)) >>> 0 : le16(d, lo);
}
