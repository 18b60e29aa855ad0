/**
 * On-disk inode (struct ext2_inode_large), s_inode_size bytes (128, 256, ...).
 * Layout: e2fsprogs lib/ext2fs/ext2_fs.h, linux Documentation/filesystems/ext4/inodes.rst;
 * ext4-brief §4. Location: group = (ino-1)/ipg, index = (ino-1)%ipg,
 * byte = inode_table(group)*bs + index*inode_size.
 */
import { le16, le32, hiLo } from '../binary/bytes.js';
import { RO_COMPAT } from './features.js';

export const INO = {
  mode: 0x00,
  uidLo: 0x02,
  sizeLo: 0x04,
  atime: 0x08,
  ctime: 0x0c,
  mtime: 0x10,
  dtime: 0x14,
  gidLo: 0x18,
  linksCount: 0x1a,
  blocksLo: 0x1c,
  flags: 0x20,
  osd1: 0x24,
  block: 0x28,
  generation: 0x64,
  fileAclLo: 0x68,
  sizeHigh: 0x6c,
  blocksHi: 0x74,
  fileAclHigh: 0x76,
  uidHigh: 0x78,
  gidHigh: 0x7a,
  checksumLo: 0x7c,
  extraIsize: 0x80,
  checksumHi: 0x82,
  ctimeExtra: 0x84,
  mtimeExtra: 0x88,
  atimeExtra: 0x8c,
  crtime: 0x90,
  crtimeExtra: 0x94,
  versionHi: 0x98,
  projid: 0x9c,
} as const;

/** Size of i_block (the extent root, block map, fast symlink text or inline data). */
export const I_BLOCK_SIZE = 60;
export const GOOD_OLD_INODE_SIZE = 128;

export const S_IFMT = 0xf000;
export const S_IFIFO = 0x1000;
export const S_IFCHR = 0x2000;
export const S_IFDIR = 0x4000;
export const S_IFBLK = 0x6000;
export const S_IFREG = 0x8000;
export const S_IFLNK = 0xa000;
export const S_IFSOCK = 0xc000;

export const INODE_FLAGS = {
  SECRM: 0x1,
  IMMUTABLE: 0x10,
  APPEND: 0x20,
  ENCRYPT: 0x800,
  INDEX: 0x1000,
  JOURNAL_DATA: 0x4000,
  HUGE_FILE: 0x40000,
  EXTENTS: 0x80000,
  VERITY: 0x100000,
  EA_INODE: 0x200000,
  INLINE_DATA: 0x10000000,
  PROJINHERIT: 0x20000000,
  CASEFOLD: 0x40000000,
} as const;

export const ROOT_INO = 2;
export const JOURNAL_INO = 8;

/** 'unknown': the i_mode type bits are not a valid type (a free or corrupt inode). */
export type FileType = 'file' | 'dir' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock' | 'unknown';

export function modeType(mode: number): FileType {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'chr';
    case S_IFBLK:
      return 'blk';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'sock';
    default:
      return 'unknown';
  }
}

export interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  /** i_size_lo | i_size_high<<32 (regular files; for dirs see dirSize()). */
  size: number;
  sizeLo: number;
  sizeHigh: number;
  atime: number;
  ctime: number;
  mtime: number;
  dtime: number;
  linksCount: number;
  /** i_blocks as stored (lo + hi<<32 with huge_file), in 512-byte units unless HUGE_FILE flag. */
  blocksRaw: number;
  flags: number;
  generation: number;
  fileAcl: number;
  extraIsize: number;
  checksumLo: number;
  checksumHi: number;
  /** i_block[15], 60 bytes (a view into raw). */
  block: Buffer;
  /** The whole on-disk inode (s_inode_size bytes, a copy). */
  raw: Buffer;
  /** Byte offset of the inode from the start of the filesystem. */
  offset: number;
}

/** Decodes an on-disk inode. `hugeFile` = ro_compat huge_file (i_blocks_hi is meaningful). */
export function decodeInode(raw: Buffer, ino: number, offset: number, roCompat: number): Inode {
  const b = raw;
  const large = b.length > GOOD_OLD_INODE_SIZE;
  const extraIsize = large ? le16(b, INO.extraIsize) : 0;
  const hasExtra = (field: number, size: number): boolean =>
    large && GOOD_OLD_INODE_SIZE + extraIsize >= field + size && field + size <= b.length;
  const sizeLo = le32(b, INO.sizeLo);
  const sizeHigh = le32(b, INO.sizeHigh);
  const hugeFile = (roCompat & RO_COMPAT.HUGE_FILE) !== 0;
  const sext = (lo: number, extraOff: number): number => {
    // Seconds: signed 32-bit, plus epoch bits (low 2 bits of the _extra field) when present.
    const s = lo | 0;
    return hasExtra(extraOff, 4) ? s + (le32(b, extraOff) & 3) * 0x1_0000_0000 : s;
  };
  return {
    ino,
    mode: le16(b, INO.mode),
    uid: le16(b, INO.uidLo) | (le16(b, INO.uidHigh) << 16),
    gid: le16(b, INO.gidLo) | (le16(b, INO.gidHigh) << 16),
    size: hiLo(sizeHigh, sizeLo),
    sizeLo,
    sizeHigh,
    atime: sext(le32(b, INO.atime), INO.atimeExtra),
    ctime: sext(le32(b, INO.ctime), INO.ctimeExtra),
    mtime: sext(le32(b, INO.mtime), INO.mtimeExtra),
    dtime: le32(b, INO.dtime),
    linksCount: le16(b, INO.linksCount),
    blocksRaw: (hugeFile ? le16(b, INO.blocksHi) : 0) * 0x1_0000_0000 + le32(b, INO.blocksLo),
    flags: le32(b, INO.flags),
    generation: le32(b, INO.generation),
    fileAcl: le16(b, INO.fileAclHigh) * 0x1_0000_0000 + le32(b, INO.fileAclLo),
    extraIsize,
    checksumLo: le16(b, INO.checksumLo),
    checksumHi: hasExtra(INO.checksumHi, 2) ? le16(b, INO.checksumHi) : 0,
    block: b.subarray(INO.block, INO.block + I_BLOCK_SIZE),
    raw: b,
    offset,
  };
}

/** i_blocks in 512-byte sectors (converting from fs blocks when the inode has HUGE_FILE_FL). */
export function inodeSectors(inode: Inode, roCompat: number, blockSize: number): number {
  if (roCompat & RO_COMPAT.HUGE_FILE && inode.flags & INODE_FLAGS.HUGE_FILE)
    return inode.blocksRaw * (blockSize / 512);
  return inode.blocksRaw;
}

/** Directory size: i_size_high counts only with largedir (kernel ext4_isize). */
export function dirSize(inode: Inode, largedir: boolean): number {
  return largedir ? inode.size : inode.sizeLo;
}

/** What stat() reports about an inode. */
export interface Stat {
  ino: number;
  type: FileType;
  /** Full i_mode (type and permission bits). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  /** Seconds since the epoch. */
  mtime: number;
  flags: number;
}
