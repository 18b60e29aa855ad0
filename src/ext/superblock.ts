/**
 * The ext2/3/4 superblock: 1024 bytes at byte 1024 of the filesystem, whatever the block size.
 * Layout: e2fsprogs lib/ext2fs/ext2_fs.h (struct ext2_super_block), linux
 * Documentation/filesystems/ext4/super.rst; ext4-brief §2. All fields little-endian.
 *
 * decodeSuperblock() only decodes; validateSuperblock() applies the sanity rules (magic, block size,
 * per-group counts, group count vs. device size) and throws UlfsError with a stable code.
 */
import { le16, le32, hiLo, uuidString, cString } from '../binary/bytes.js';
import { UlfsError, hex } from '../errors.js';
import { INCOMPAT, KNOWN_INCOMPAT, RO_COMPAT } from './features.js';

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;

/** Byte offsets inside the superblock (names from ext2_fs.h). */
export const SB = {
  inodesCount: 0x000,
  blocksCountLo: 0x004,
  rBlocksCountLo: 0x008,
  freeBlocksCountLo: 0x00c,
  freeInodesCount: 0x010,
  firstDataBlock: 0x014,
  logBlockSize: 0x018,
  logClusterSize: 0x01c,
  blocksPerGroup: 0x020,
  clustersPerGroup: 0x024,
  inodesPerGroup: 0x028,
  mtime: 0x02c,
  wtime: 0x030,
  mntCount: 0x034,
  maxMntCount: 0x036,
  magic: 0x038,
  state: 0x03a,
  errors: 0x03c,
  minorRevLevel: 0x03e,
  lastcheck: 0x040,
  checkinterval: 0x044,
  creatorOs: 0x048,
  revLevel: 0x04c,
  defResuid: 0x050,
  defResgid: 0x052,
  firstIno: 0x054,
  inodeSize: 0x058,
  blockGroupNr: 0x05a,
  featureCompat: 0x05c,
  featureIncompat: 0x060,
  featureRoCompat: 0x064,
  uuid: 0x068,
  volumeName: 0x078,
  lastMounted: 0x088,
  algorithmUsageBitmap: 0x0c8,
  preallocBlocks: 0x0cc,
  preallocDirBlocks: 0x0cd,
  reservedGdtBlocks: 0x0ce,
  journalUuid: 0x0d0,
  journalInum: 0x0e0,
  journalDev: 0x0e4,
  lastOrphan: 0x0e8,
  hashSeed: 0x0ec,
  defHashVersion: 0x0fc,
  jnlBackupType: 0x0fd,
  descSize: 0x0fe,
  defaultMountOpts: 0x100,
  firstMetaBg: 0x104,
  mkfsTime: 0x108,
  jnlBlocks: 0x10c,
  blocksCountHi: 0x150,
  rBlocksCountHi: 0x154,
  freeBlocksCountHi: 0x158,
  minExtraIsize: 0x15c,
  wantExtraIsize: 0x15e,
  flags: 0x160,
  raidStride: 0x164,
  mmpUpdateInterval: 0x166,
  mmpBlock: 0x168,
  raidStripeWidth: 0x170,
  logGroupsPerFlex: 0x174,
  checksumType: 0x175,
  kbytesWritten: 0x178,
  usrQuotaInum: 0x240,
  grpQuotaInum: 0x244,
  overheadClusters: 0x248,
  backupBgs: 0x24c,
  lpfIno: 0x268,
  prjQuotaInum: 0x26c,
  checksumSeed: 0x270,
  encoding: 0x27c,
  orphanFileInum: 0x280,
  checksum: 0x3fc,
} as const;

export const STATE_VALID_FS = 0x1;
export const STATE_ERROR_FS = 0x2;
export const STATE_ORPHAN_FS = 0x4;
export const OS_LINUX = 0;

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  rBlocksCount: number;
  freeBlocksCount: number;
  freeInodesCount: number;
  firstDataBlock: number;
  logBlockSize: number;
  logClusterSize: number;
  blocksPerGroup: number;
  clustersPerGroup: number;
  inodesPerGroup: number;
  mtime: number;
  wtime: number;
  magic: number;
  state: number;
  errors: number;
  creatorOs: number;
  revLevel: number;
  firstIno: number;
  inodeSize: number;
  blockGroupNr: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  uuid: string;
  uuidBytes: Buffer;
  volumeName: string;
  reservedGdtBlocks: number;
  journalUuid: string;
  journalInum: number;
  journalDev: number;
  lastOrphan: number;
  hashSeed: [number, number, number, number];
  defHashVersion: number;
  jnlBackupType: number;
  descSize: number;
  firstMetaBg: number;
  minExtraIsize: number;
  wantExtraIsize: number;
  flags: number;
  mmpBlock: number;
  logGroupsPerFlex: number;
  checksumType: number;
  backupBgs: [number, number];
  lpfIno: number;
  checksumSeed: number;
  encoding: number;
  orphanFileInum: number;
  checksum: number;
  // Derived values.
  blockSize: number;
  is64bit: boolean;
  /** Group descriptor size actually used: s_desc_size with 64bit, else 32. */
  groupDescSize: number;
  groupCount: number;
  /** Blocks of inode table per group. */
  inodeTableBlocks: number;
  /** The 1024 raw bytes (a copy). */
  raw: Buffer;
}

/** Decodes the 1024 superblock bytes; no validation beyond what decoding itself needs. */
export function decodeSuperblock(raw: Uint8Array): Superblock {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (b.length < SUPERBLOCK_SIZE) {
    throw new UlfsError('IMAGE_TRUNCATED', `superblock is ${b.length} bytes, expected ${SUPERBLOCK_SIZE}`);
  }
  const incompat = le32(b, SB.featureIncompat);
  const is64bit = (incompat & INCOMPAT.BIT64) !== 0;
  const hi = (off: number): number => (is64bit ? le32(b, off) : 0);
  const revLevel = le32(b, SB.revLevel);
  const logBlockSize = le32(b, SB.logBlockSize);
  const blockSize = logBlockSize <= 16 ? 1024 * 2 ** logBlockSize : 0;
  const descSizeRaw = le16(b, SB.descSize);
  const sb: Superblock = {
    inodesCount: le32(b, SB.inodesCount),
    blocksCount: hiLo(hi(SB.blocksCountHi), le32(b, SB.blocksCountLo)),
    rBlocksCount: hiLo(hi(SB.rBlocksCountHi), le32(b, SB.rBlocksCountLo)),
    freeBlocksCount: hiLo(hi(SB.freeBlocksCountHi), le32(b, SB.freeBlocksCountLo)),
    freeInodesCount: le32(b, SB.freeInodesCount),
    firstDataBlock: le32(b, SB.firstDataBlock),
    logBlockSize,
    logClusterSize: le32(b, SB.logClusterSize),
    blocksPerGroup: le32(b, SB.blocksPerGroup),
    clustersPerGroup: le32(b, SB.clustersPerGroup),
    inodesPerGroup: le32(b, SB.inodesPerGroup),
    mtime: le32(b, SB.mtime),
    wtime: le32(b, SB.wtime),
    magic: le16(b, SB.magic),
    state: le16(b, SB.state),
    errors: le16(b, SB.errors),
    creatorOs: le32(b, SB.creatorOs),
    revLevel,
    firstIno: revLevel === 0 ? 11 : le32(b, SB.firstIno),
    inodeSize: revLevel === 0 ? 128 : le16(b, SB.inodeSize),
    blockGroupNr: le16(b, SB.blockGroupNr),
    featureCompat: le32(b, SB.featureCompat),
    featureIncompat: incompat,
    featureRoCompat: le32(b, SB.featureRoCompat),
    uuid: uuidString(b, SB.uuid),
    uuidBytes: Buffer.from(b.subarray(SB.uuid, SB.uuid + 16)),
    volumeName: cString(b, SB.volumeName, 16),
    reservedGdtBlocks: le16(b, SB.reservedGdtBlocks),
    journalUuid: uuidString(b, SB.journalUuid),
    journalInum: le32(b, SB.journalInum),
    journalDev: le32(b, SB.journalDev),
    lastOrphan: le32(b, SB.lastOrphan),
    hashSeed: [
      le32(b, SB.hashSeed),
      le32(b, SB.hashSeed + 4),
      le32(b, SB.hashSeed + 8),
      le32(b, SB.hashSeed + 12),
    ],
    defHashVersion: b[SB.defHashVersion]!,
    jnlBackupType: b[SB.jnlBackupType]!,
    descSize: descSizeRaw,
    firstMetaBg: le32(b, SB.firstMetaBg),
    minExtraIsize: le16(b, SB.minExtraIsize),
    wantExtraIsize: le16(b, SB.wantExtraIsize),
    flags: le32(b, SB.flags),
    mmpBlock: hiLo(le32(b, SB.mmpBlock + 4), le32(b, SB.mmpBlock)),
    logGroupsPerFlex: b[SB.logGroupsPerFlex]!,
    checksumType: b[SB.checksumType]!,
    backupBgs: [le32(b, SB.backupBgs), le32(b, SB.backupBgs + 4)],
    lpfIno: le32(b, SB.lpfIno),
    checksumSeed: le32(b, SB.checksumSeed),
    encoding: le16(b, SB.encoding),
    orphanFileInum: le32(b, SB.orphanFileInum),
    checksum: le32(b, SB.checksum),
    blockSize,
    is64bit,
    groupDescSize: is64bit ? descSizeRaw : 32,
    groupCount: 0,
    inodeTableBlocks: 0,
    raw: Buffer.from(b.subarray(0, SUPERBLOCK_SIZE)),
  };
  if (sb.blocksPerGroup > 0 && sb.blocksCount > sb.firstDataBlock) {
    sb.groupCount = Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
  }
  if (blockSize > 0) sb.inodeTableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / blockSize);
  return sb;
}

const bad = (msg: string, data: Record<string, unknown> = {}): UlfsError =>
  new UlfsError('EXT_BAD_SUPERBLOCK', msg, data);

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/**
 * Sanity rules (after e2fsprogs openfs.c and linux ext4_fill_super). `deviceSize` is the size in
 * bytes of the device holding the filesystem (the partition).
 */
export function validateSuperblock(sb: Superblock, deviceSize: number): void {
  if (sb.magic !== EXT_MAGIC) {
    throw new UlfsError(
      'EXT_BAD_MAGIC',
      `no ext2/3/4 superblock: magic ${hex(sb.magic)} at 0x438, expected 0xef53`,
      {
        magic: sb.magic,
      },
    );
  }
  const unknown = (sb.featureIncompat & ~KNOWN_INCOMPAT) >>> 0;
  if (unknown) {
    throw new UlfsError('EXT_UNKNOWN_INCOMPAT', `unknown incompatible feature bits ${hex(unknown)}`, {
      bits: unknown,
    });
  }
  if (sb.featureIncompat & INCOMPAT.JOURNAL_DEV) {
    throw new UlfsError('EXT_UNSUPPORTED', 'this is an external journal device, not a filesystem');
  }
  if (sb.featureIncompat & INCOMPAT.COMPRESSION) {
    throw new UlfsError('EXT_UNSUPPORTED', 'the compression feature (incompat 0x1) is not supported');
  }
  if (sb.featureIncompat & INCOMPAT.DIRDATA) {
    throw new UlfsError('EXT_UNSUPPORTED', 'the dirdata feature (incompat 0x1000) is not supported');
  }
  if (sb.logBlockSize > 6) {
    throw bad(`s_log_block_size ${sb.logBlockSize} is out of range 0..6`, { logBlockSize: sb.logBlockSize });
  }
  const bs = sb.blockSize;
  if (sb.revLevel > 1) throw bad(`unknown revision level ${sb.revLevel}`);
  // 1 with 1 KiB blocks (the superblock sits in block 1), else 0; bigalloc with 1 KiB blocks uses 0.
  if (sb.firstDataBlock !== (bs === 1024 && !(sb.featureRoCompat & RO_COMPAT.BIGALLOC) ? 1 : 0)) {
    throw bad(`s_first_data_block ${sb.firstDataBlock} is wrong for ${bs}-byte blocks`);
  }
  if (!isPow2(sb.inodeSize) || sb.inodeSize < 128 || sb.inodeSize > bs) {
    throw bad(`inode size ${sb.inodeSize} is not a power of 2 between 128 and the block size ${bs}`);
  }
  // A bitmap block covers 8*bs clusters; a cluster is 2^(log_cluster_size - log_block_size) blocks.
  const bigalloc = (sb.featureRoCompat & RO_COMPAT.BIGALLOC) !== 0;
  if (bigalloc && (sb.logClusterSize < sb.logBlockSize || sb.logClusterSize - sb.logBlockSize > 16)) {
    throw bad(
      `s_log_cluster_size ${sb.logClusterSize} is out of range for s_log_block_size ${sb.logBlockSize}`,
    );
  }
  const ratio = bigalloc ? 2 ** (sb.logClusterSize - sb.logBlockSize) : 1;
  if (
    sb.clustersPerGroup === 0 ||
    sb.clustersPerGroup > 8 * bs ||
    sb.blocksPerGroup !== sb.clustersPerGroup * ratio
  ) {
    throw bad(
      `s_blocks_per_group ${sb.blocksPerGroup} / s_clusters_per_group ${sb.clustersPerGroup} are inconsistent or out of range`,
    );
  }
  if (sb.blocksPerGroup % 8 !== 0)
    throw bad(`s_blocks_per_group ${sb.blocksPerGroup} is not a multiple of 8`);
  if (sb.inodesPerGroup === 0 || sb.inodesPerGroup > 8 * bs) {
    throw bad(`s_inodes_per_group ${sb.inodesPerGroup} is out of range 1..${8 * bs}`);
  }
  if (sb.blocksCount <= sb.firstDataBlock) {
    throw bad(`s_blocks_count ${sb.blocksCount} is not above s_first_data_block ${sb.firstDataBlock}`);
  }
  // ipg * groups must equal inodes_count (checked as numbers, no 32-bit overflow).
  if (sb.inodesPerGroup * sb.groupCount !== sb.inodesCount) {
    throw bad(
      `s_inodes_count ${sb.inodesCount} != s_inodes_per_group ${sb.inodesPerGroup} x ${sb.groupCount} groups`,
      { inodesCount: sb.inodesCount, inodesPerGroup: sb.inodesPerGroup, groupCount: sb.groupCount },
    );
  }
  if (sb.is64bit && (sb.descSize < 64 || sb.descSize > 1024 || !isPow2(sb.descSize))) {
    throw bad(`s_desc_size ${sb.descSize} is invalid for a 64bit filesystem`);
  }
  if (sb.firstIno < 11 || sb.firstIno > sb.inodesCount) {
    throw bad(`s_first_ino ${sb.firstIno} is out of range 11..${sb.inodesCount}`);
  }
  if (sb.freeInodesCount > sb.inodesCount) {
    throw bad(`s_free_inodes_count ${sb.freeInodesCount} exceeds s_inodes_count ${sb.inodesCount}`);
  }
  if (
    sb.featureIncompat & INCOMPAT.META_BG &&
    sb.firstMetaBg > Math.ceil(sb.groupCount / (bs / sb.groupDescSize))
  ) {
    throw bad(`s_first_meta_bg ${sb.firstMetaBg} exceeds the number of descriptor blocks`);
  }
  const bytes = sb.blocksCount * bs;
  if (bytes > deviceSize) {
    throw new UlfsError(
      'IMAGE_TRUNCATED',
      `filesystem is ${hex(bytes)} bytes (${sb.blocksCount} blocks of ${bs}) but the device holds only ${hex(deviceSize)}`,
      { blocksCount: sb.blocksCount, blockSize: bs, deviceSize },
    );
  }
}
