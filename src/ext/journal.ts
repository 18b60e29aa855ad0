/**
 * JBD2 journal superblock (big-endian), for detection only. Source: e2fsprogs
 * lib/ext2fs/kernel-jbd.h, linux Documentation/filesystems/ext4/journal.rst; ext4-brief §13.
 *
 *  0x00 be32 h_magic 0xC03B3998   0x04 be32 h_blocktype (3 = sb v1, 4 = sb v2)   0x08 be32 h_sequence
 *  0x0C be32 s_blocksize   0x10 be32 s_maxlen   0x14 be32 s_first   0x18 be32 s_sequence
 *  0x1C be32 s_start (0 = log empty)   0x20 be32 s_errno   0x24/0x28/0x2C feature compat/incompat/ro
 *  0x30 uuid[16]   0x40 be32 s_nr_users   0x50 u8 s_checksum_type   0x54 be32 s_num_fc_blks
 *  0xFC be32 s_checksum
 */
import { be32 } from '../binary/bytes.js';
import { UlfsError, hex } from '../errors.js';

export const JBD2_MAGIC = 0xc03b3998;
export const JBD2_SUPERBLOCK_V1 = 3;
export const JBD2_SUPERBLOCK_V2 = 4;

export const JSB = {
  magic: 0x00,
  blocktype: 0x04,
  blocksize: 0x0c,
  maxlen: 0x10,
  first: 0x14,
  sequence: 0x18,
  start: 0x1c,
  errno: 0x20,
  featureCompat: 0x24,
  featureIncompat: 0x28,
  featureRoCompat: 0x2c,
  uuid: 0x30,
  nrUsers: 0x40,
  checksumType: 0x50,
  numFcBlocks: 0x54,
  checksum: 0xfc,
} as const;

export interface JournalSuperblock {
  blocktype: number;
  blockSize: number;
  maxLen: number;
  first: number;
  sequence: number;
  start: number;
  /** Signed (the kernel stores -errno). */
  errno: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  nrUsers: number;
}

export function decodeJournalSuperblock(b: Uint8Array): JournalSuperblock {
  const magic = be32(b, JSB.magic);
  const blocktype = be32(b, JSB.blocktype);
  if (magic !== JBD2_MAGIC || (blocktype !== JBD2_SUPERBLOCK_V1 && blocktype !== JBD2_SUPERBLOCK_V2)) {
    throw new UlfsError('EXT_BAD_JOURNAL', `journal superblock has magic ${hex(magic)} type ${blocktype}`, {
      magic,
      blocktype,
    });
  }
  const v2 = blocktype === JBD2_SUPERBLOCK_V2;
  return {
    blocktype,
    blockSize: be32(b, JSB.blocksize),
    maxLen: be32(b, JSB.maxlen),
    first: be32(b, JSB.first),
    sequence: be32(b, JSB.sequence),
    start: be32(b, JSB.start),
    errno: be32(b, JSB.errno) | 0,
    featureCompat: v2 ? be32(b, JSB.featureCompat) : 0,
    featureIncompat: v2 ? be32(b, JSB.featureIncompat) : 0,
    featureRoCompat: v2 ? be32(b, JSB.featureRoCompat) : 0,
    nrUsers: v2 ? be32(b, JSB.nrUsers) : 1,
  };
}
