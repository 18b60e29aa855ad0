/**
 * Every ext2/3/4 metadata checksum, as pure functions over raw on-disk bytes.
 *
 * Recipes (ext4-brief §9; e2fsprogs lib/ext2fs/csum.c, linux fs/ext4/{super,inode,bitmap,namei,
 * extents,xattr}.c, Documentation/filesystems/ext4/checksums.rst):
 *
 *   primitive     crc32cRaw = reflected CRC-32C update, no final inversion (ext2fs_crc32c_le)
 *   fs seed S     incompat CSUM_SEED ? s_checksum_seed (0x270) : crc32cRaw(~0, s_uuid[16])
 *   inode seed    Si(ino) = crc32cRaw(crc32cRaw(S, le32 ino), le32 i_generation)
 *   superblock    crc32cRaw(~0, sb[0 .. 0x3FC))                                  -> le32 @0x3FC
 *   group desc    metadata_csum: crc32cRaw(S, le32 group) over desc with bg_checksum zeroed, low 16
 *                 gdt_csum:      crc16(~0, uuid ‖ le32 group ‖ desc[0..0x1E) ‖ desc[0x20..size))
 *   bitmaps       crc32cRaw(S, block bitmap[0 .. clusters_per_group/8)) / inode bitmap[0 .. ipg/8)
 *   inode         crc32cRaw(Si, inode[0 .. inode_size)) with i_checksum_lo (0x7C) and, when present,
 *                 i_checksum_hi (0x82) zeroed
 *   dir leaf      crc32cRaw(Si(dir), block[0 .. bs-12))                           -> le32 @bs-4
 *   dx root/node  crc32cRaw(Si(dir), block[0 .. countOff + 8*count)) ‖ dt_reserved ‖ 4 zero bytes
 *   extent block  crc32cRaw(Si(file), block[0 .. 12 + 12*eh_max))               -> le32 there
 *   xattr block   crc32cRaw(S, le64 blocknr) over the block with h_checksum (0x10) zeroed
 *
 * All functions return unsigned 32-bit values (or 16-bit where the recipe truncates).
 */
import { crc32cRaw } from '../binary/crc32c.js';
import { crc16 } from '../binary/crc16.js';
import { le16, le32, setLe16, setLe32 } from '../binary/bytes.js';

// Superblock offsets used here.
export const SB_UUID = 0x68;
export const SB_FEATURE_COMPAT = 0x5c;
export const SB_FEATURE_INCOMPAT = 0x60;
export const SB_FEATURE_RO_COMPAT = 0x64;
export const SB_CHECKSUM_SEED = 0x270;
export const SB_CHECKSUM = 0x3fc;
export const INCOMPAT_CSUM_SEED = 0x2000;
export const RO_COMPAT_GDT_CSUM = 0x10;
export const RO_COMPAT_METADATA_CSUM = 0x400;

// Group descriptor.
export const BG_CHECKSUM = 0x1e;
export const BG_BLOCK_BITMAP_CSUM_LO = 0x18;
export const BG_INODE_BITMAP_CSUM_LO = 0x1a;
export const BG_BLOCK_BITMAP_CSUM_HI = 0x38;
export const BG_INODE_BITMAP_CSUM_HI = 0x3a;

// Inode.
export const I_GENERATION = 0x64;
export const I_CHECKSUM_LO = 0x7c;
export const I_EXTRA_ISIZE = 0x80;
export const I_CHECKSUM_HI = 0x82;
const GOOD_OLD_INODE_SIZE = 128;
/** i_extra_isize must reach past i_checksum_hi (0x82 + 2 − 128) for the hi half to exist. */
const CSUM_HI_EXTRA_END = 4;

// xattr block.
export const XATTR_H_CHECKSUM = 0x10;

const ZERO4 = new Uint8Array(4);
const ONES = 0xffffffff;

/** True when the superblock carries metadata_csum. */
export function hasMetadataCsum(sbRaw: Uint8Array): boolean {
  return (le32(sbRaw, SB_FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM) !== 0;
}

/** True when group descriptors are checksummed (metadata_csum or gdt_csum/uninit_bg). */
export function hasGroupDescCsum(sbRaw: Uint8Array): boolean {
  return (le32(sbRaw, SB_FEATURE_RO_COMPAT) & (RO_COMPAT_METADATA_CSUM | RO_COMPAT_GDT_CSUM)) !== 0;
}

/** The filesystem checksum seed S. */
export function fsSeed(sbRaw: Uint8Array): number {
  if (le32(sbRaw, SB_FEATURE_INCOMPAT) & INCOMPAT_CSUM_SEED) return le32(sbRaw, SB_CHECKSUM_SEED);
  return crc32cRaw(ONES, sbRaw, SB_UUID, SB_UUID + 16);
}

const SCRATCH8 = new Uint8Array(8);

/** The per-inode seed Si(ino) used for inodes, directory blocks and extent blocks. */
export function inodeSeed(seed: number, ino: number, generation: number): number {
  setLe32(SCRATCH8, 0, ino);
  setLe32(SCRATCH8, 4, generation);
  return crc32cRaw(seed, SCRATCH8, 0, 8);
}

// ---- superblock ----

export function superblockCsum(sbRaw: Uint8Array): number {
  return crc32cRaw(ONES, sbRaw, 0, SB_CHECKSUM);
}
export function verifySuperblockCsum(sbRaw: Uint8Array): boolean {
  return superblockCsum(sbRaw) === le32(sbRaw, SB_CHECKSUM);
}
export function setSuperblockCsum(sbRaw: Uint8Array): void {
  setLe32(sbRaw, SB_CHECKSUM, superblockCsum(sbRaw));
}

// ---- group descriptors ----

/**
 * bg_checksum of one descriptor (`desc` = its descSize raw bytes, or a view of them).
 * metadata_csum wins over gdt_csum; with neither the caller should not call this.
 */
export function groupDescCsum(sbRaw: Uint8Array, seed: number, group: number, desc: Uint8Array): number {
  const size = desc.length;
  if (hasMetadataCsum(sbRaw)) {
    setLe32(SCRATCH8, 0, group);
    let c = crc32cRaw(seed, SCRATCH8, 0, 4);
    c = crc32cRaw(c, desc, 0, BG_CHECKSUM);
    c = crc32cRaw(c, ZERO4, 0, 2);
    if (size > BG_CHECKSUM + 2) c = crc32cRaw(c, desc, BG_CHECKSUM + 2, size);
    return c & 0xffff;
  }
  let c = crc16(0xffff, sbRaw, SB_UUID, SB_UUID + 16);
  const g = new Uint8Array(4);
  setLe32(g, 0, group);
  c = crc16(c, g);
  c = crc16(c, desc, 0, BG_CHECKSUM);
  if (size > BG_CHECKSUM + 2) c = crc16(c, desc, BG_CHECKSUM + 2, size);
  return c;
}
export function verifyGroupDescCsum(
  sbRaw: Uint8Array,
  seed: number,
  group: number,
  desc: Uint8Array,
): boolean {
  return groupDescCsum(sbRaw, seed, group, desc) === le16(desc, BG_CHECKSUM);
}
export function setGroupDescCsum(sbRaw: Uint8Array, seed: number, group: number, desc: Uint8Array): void {
  setLe16(desc, BG_CHECKSUM, groupDescCsum(sbRaw, seed, group, desc));
}

// ---- bitmaps ----

/** Block bitmap checksum over clusters_per_group/8 bytes. */
export function blockBitmapCsum(seed: number, bitmap: Uint8Array, clustersPerGroup: number): number {
  return crc32cRaw(seed, bitmap, 0, clustersPerGroup >>> 3);
}
/** Inode bitmap checksum over inodes_per_group/8 bytes. */
export function inodeBitmapCsum(seed: number, bitmap: Uint8Array, inodesPerGroup: number): number {
  return crc32cRaw(seed, bitmap, 0, inodesPerGroup >>> 3);
}
/** Stored bitmap checksum from a descriptor: lo 16 bits, plus hi when the descriptor is big enough. */
export function storedBitmapCsum(
  desc: Uint8Array,
  kind: 'block' | 'inode',
): { value: number; bits: 16 | 32 } {
  const loOff = kind === 'block' ? BG_BLOCK_BITMAP_CSUM_LO : BG_INODE_BITMAP_CSUM_LO;
  const hiOff = kind === 'block' ? BG_BLOCK_BITMAP_CSUM_HI : BG_INODE_BITMAP_CSUM_HI;
  const lo = le16(desc, loOff);
  if (desc.length >= hiOff + 2) return { value: ((le16(desc, hiOff) << 16) | lo) >>> 0, bits: 32 };
  return { value: lo, bits: 16 };
}
export function verifyBitmapCsum(desc: Uint8Array, kind: 'block' | 'inode', csum: number): boolean {
  const s = storedBitmapCsum(desc, kind);
  return s.bits === 32 ? s.value === csum >>> 0 : s.value === (csum & 0xffff);
}
/** Stores a bitmap checksum in a descriptor (both halves when present). Does not redo bg_checksum. */
export function setBitmapCsum(desc: Uint8Array, kind: 'block' | 'inode', csum: number): void {
  const loOff = kind === 'block' ? BG_BLOCK_BITMAP_CSUM_LO : BG_INODE_BITMAP_CSUM_LO;
  const hiOff = kind === 'block' ? BG_BLOCK_BITMAP_CSUM_HI : BG_INODE_BITMAP_CSUM_HI;
  setLe16(desc, loOff, csum & 0xffff);
  if (desc.length >= hiOff + 2) setLe16(desc, hiOff, csum >>> 16);
}

// ---- inodes ----

function inodeHasCsumHi(raw: Uint8Array, inodeSize: number): boolean {
  return inodeSize > GOOD_OLD_INODE_SIZE && le16(raw, I_EXTRA_ISIZE) >= CSUM_HI_EXTRA_END;
}

/** Full 32-bit inode checksum of `raw` (inodeSize bytes; the checksum fields are treated as zero). */
export function inodeCsum(seed: number, ino: number, raw: Uint8Array, inodeSize: number): number {
  const gen = le32(raw, I_GENERATION);
  let c = inodeSeed(seed, ino, gen);
  c = crc32cRaw(c, raw, 0, I_CHECKSUM_LO);
  c = crc32cRaw(c, ZERO4, 0, 2);
  c = crc32cRaw(c, raw, I_CHECKSUM_LO + 2, GOOD_OLD_INODE_SIZE);
  if (inodeSize > GOOD_OLD_INODE_SIZE) {
    if (inodeHasCsumHi(raw, inodeSize)) {
      c = crc32cRaw(c, raw, GOOD_OLD_INODE_SIZE, I_CHECKSUM_HI);
      c = crc32cRaw(c, ZERO4, 0, 2);
      c = crc32cRaw(c, raw, I_CHECKSUM_HI + 2, inodeSize);
    } else {
      c = crc32cRaw(c, raw, GOOD_OLD_INODE_SIZE, inodeSize);
    }
  }
  return c >>> 0;
}
export function verifyInodeCsum(seed: number, ino: number, raw: Uint8Array, inodeSize: number): boolean {
  const c = inodeCsum(seed, ino, raw, inodeSize);
  if ((c & 0xffff) !== le16(raw, I_CHECKSUM_LO)) return false;
  if (inodeHasCsumHi(raw, inodeSize) && c >>> 16 !== le16(raw, I_CHECKSUM_HI)) return false;
  return true;
}
export function setInodeCsum(seed: number, ino: number, raw: Uint8Array, inodeSize: number): void {
  const c = inodeCsum(seed, ino, raw, inodeSize);
  setLe16(raw, I_CHECKSUM_LO, c & 0xffff);
  if (inodeHasCsumHi(raw, inodeSize)) setLe16(raw, I_CHECKSUM_HI, c >>> 16);
}

// ---- directory leaf blocks ----

export const DIR_TAIL_SIZE = 12;
export const DIR_TAIL_FT = 0xde;

/** True when the block ends in the 12-byte checksum tail {0, 12, 0, 0xDE, csum}. */
export function hasDirTail(block: Uint8Array): boolean {
  const t = block.length - DIR_TAIL_SIZE;
  return (
    le32(block, t) === 0 &&
    le16(block, t + 4) === DIR_TAIL_SIZE &&
    block[t + 6] === 0 &&
    block[t + 7] === DIR_TAIL_FT
  );
}
export function dirLeafCsum(seed: number, dirIno: number, dirGen: number, block: Uint8Array): number {
  return crc32cRaw(inodeSeed(seed, dirIno, dirGen), block, 0, block.length - DIR_TAIL_SIZE);
}
export function verifyDirLeafCsum(seed: number, dirIno: number, dirGen: number, block: Uint8Array): boolean {
  return dirLeafCsum(seed, dirIno, dirGen, block) === le32(block, block.length - 4);
}
export function setDirLeafCsum(seed: number, dirIno: number, dirGen: number, block: Uint8Array): void {
  setLe32(block, block.length - 4, dirLeafCsum(seed, dirIno, dirGen, block));
}

// ---- htree index blocks ----

/** Where count/limit live in a dx block: 0x20 in the root, 0x08 in a node. */
export const DX_ROOT_COUNT_OFFSET = 0x20;
export const DX_NODE_COUNT_OFFSET = 0x08;

/**
 * Shape test for dx blocks (libext2fs `__get_dx_countlimit`): a node starts with a fake dirent of
 * rec_len = bs and name_len 0; a root starts with "." (rec_len 12) then ".." whose rec_len is bs−12,
 * reserved_zero 0 and info_length 8. Returns the count offset, or null when it is not a dx block.
 */
export function dxCountOffset(block: Uint8Array): number | null {
  const bs = block.length;
  let recLen = le16(block, 4);
  if (recLen === 0 || recLen === 65535) recLen = 65536;
  if (recLen === bs && le16(block, 6) === 0 && le32(block, 0) === 0) return DX_NODE_COUNT_OFFSET;
  if (recLen === 12) {
    let r2 = le16(block, 12 + 4);
    if (r2 === 0 || r2 === 65535) r2 = 65536;
    if (r2 === bs - 12 && le32(block, 0x18) === 0 && block[0x1d] === 8) return DX_ROOT_COUNT_OFFSET;
  }
  return null;
}

/** dx checksum, given the count offset (0x20 root / 0x08 node). Null when limit/count are insane. */
export function dxCsum(
  seed: number,
  dirIno: number,
  dirGen: number,
  block: Uint8Array,
  countOffset: number,
): number | null {
  const limit = le16(block, countOffset);
  const count = le16(block, countOffset + 2);
  const tail = countOffset + 8 * limit;
  if (count > limit || tail + 8 > block.length) return null;
  let c = crc32cRaw(inodeSeed(seed, dirIno, dirGen), block, 0, countOffset + 8 * count);
  c = crc32cRaw(c, block, tail, tail + 4);
  c = crc32cRaw(c, ZERO4);
  return c >>> 0;
}
export function verifyDxCsum(
  seed: number,
  dirIno: number,
  dirGen: number,
  block: Uint8Array,
  countOffset: number,
): boolean {
  const c = dxCsum(seed, dirIno, dirGen, block, countOffset);
  if (c === null) return false;
  return c === le32(block, countOffset + 8 * le16(block, countOffset) + 4);
}
export function setDxCsum(
  seed: number,
  dirIno: number,
  dirGen: number,
  block: Uint8Array,
  countOffset: number,
): void {
  const c = dxCsum(seed, dirIno, dirGen, block, countOffset);
  if (c !== null) setLe32(block, countOffset + 8 * le16(block, countOffset) + 4, c);
}

// ---- extent tree blocks ----

/** Offset of the extent tail checksum: 12 + 12*eh_max. */
export function extentTailOffset(block: Uint8Array): number {
  return 12 + 12 * le16(block, 4);
}
export function extentBlockCsum(seed: number, ino: number, gen: number, block: Uint8Array): number {
  return crc32cRaw(inodeSeed(seed, ino, gen), block, 0, Math.min(extentTailOffset(block), block.length - 4));
}
export function verifyExtentBlockCsum(seed: number, ino: number, gen: number, block: Uint8Array): boolean {
  const t = extentTailOffset(block);
  if (t + 4 > block.length) return false;
  return extentBlockCsum(seed, ino, gen, block) === le32(block, t);
}
export function setExtentBlockCsum(seed: number, ino: number, gen: number, block: Uint8Array): void {
  const t = extentTailOffset(block);
  if (t + 4 <= block.length) setLe32(block, t, extentBlockCsum(seed, ino, gen, block));
}

// ---- xattr blocks ----

export function xattrBlockCsum(seed: number, blockNr: number, block: Uint8Array): number {
  const nr = new Uint8Array(8);
  setLe32(nr, 0, blockNr % 0x1_0000_0000);
  setLe32(nr, 4, Math.floor(blockNr / 0x1_0000_0000));
  let c = crc32cRaw(seed, nr);
  c = crc32cRaw(c, block, 0, XATTR_H_CHECKSUM);
  c = crc32cRaw(c, ZERO4);
  c = crc32cRaw(c, block, XATTR_H_CHECKSUM + 4, block.length);
  return c >>> 0;
}
export function verifyXattrBlockCsum(seed: number, blockNr: number, block: Uint8Array): boolean {
  return xattrBlockCsum(seed, blockNr, block) === le32(block, XATTR_H_CHECKSUM);
}
export function setXattrBlockCsum(seed: number, blockNr: number, block: Uint8Array): void {
  setLe32(block, XATTR_H_CHECKSUM, xattrBlockCsum(seed, blockNr, block));
}
