/**
 * Linear directory entries (struct ext4_dir_entry_2) and the metadata_csum leaf tail.
 * Source: linux Documentation/filesystems/ext4/directory.rst, e2fsprogs lib/ext2fs/ext2_fs.h;
 * ext4-brief §6.1.
 *
 *  0x0 u32 inode (0 = unused)   0x4 u16 rec_len   0x6 u8 name_len   0x7 u8 file_type   0x8 name
 * Without incompat filetype, name_len is a u16 at 0x6 and there is no type byte.
 * rec_len is a multiple of 4, at least (8 + name_len + 3) & ~3, and never crosses the block.
 * Tail (metadata_csum), the last 12 bytes of a leaf block: u32 0, u16 rec_len 12, u8 0, u8 0xDE,
 * u32 checksum.
 */
import { le16, le32 } from '../binary/bytes.js';
import { UlfsError } from '../errors.js';

export const DE = { inode: 0x0, recLen: 0x4, nameLen: 0x6, fileType: 0x7, name: 0x8 } as const;
export const DIRENT_HEADER_SIZE = 8;
export const DIR_TAIL_SIZE = 12;
export const DIR_TAIL_FT = 0xde;
export const DIR_TAIL_CSUM = 8;

export const FT = { UNKNOWN: 0, REG: 1, DIR: 2, CHRDEV: 3, BLKDEV: 4, FIFO: 5, SOCK: 6, SYMLINK: 7 } as const;

export interface DirEntry {
  name: string;
  /** The raw name bytes (names are bytes on disk; `name` is their UTF-8 decoding). */
  nameBytes: Buffer;
  ino: number;
  fileType: number;
  /** Logical block of the directory that holds the entry. */
  block: number;
  /** Byte offset of the entry in that block. */
  offset: number;
  recLen: number;
}

/** Minimal rec_len for a name of `nameLen` bytes. */
export const dirRecLen = (nameLen: number): number => (DIRENT_HEADER_SIZE + nameLen + 3) & ~3;

/** rec_len as stored -> bytes (64 KiB blocks store 65536 as 0 or 65535: ext4_rec_len_from_disk). */
export function recLenFromDisk(v: number, blockSize: number): number {
  if (blockSize < 65536) return v;
  if (v === 65535 || v === 0) return blockSize;
  return (v & 65532) | ((v & 3) << 16);
}

/** Is there a checksum tail at the end of this block? (shape test, as libext2fs does) */
export function hasDirTail(block: Uint8Array, blockSize: number): boolean {
  const t = blockSize - DIR_TAIL_SIZE;
  return (
    le32(block, t) === 0 &&
    le16(block, t + 4) === DIR_TAIL_SIZE &&
    block[t + 6] === 0 &&
    block[t + 7] === DIR_TAIL_FT
  );
}

/**
 * Parses the entries of one directory block. `end` is where entries stop (blockSize, or
 * blockSize - 12 when the block has a checksum tail). Entries with inode 0 are skipped; the
 * rec_len chain is checked all the same.
 */
export function decodeDirBlock(
  data: Uint8Array,
  end: number,
  logicalBlock: number,
  dirIno: number,
  hasFileType: boolean,
  blockSize: number,
  out: DirEntry[],
  maxIno = 0xffffffff,
): void {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  // Each iteration advances by >= 8 bytes, so at most end/8 iterations.
  while (off < end) {
    const fail = (why: string): never => {
      throw new UlfsError(
        'EXT_BAD_DIRENT',
        `directory inode ${dirIno}, logical block ${logicalBlock}, offset ${off}: ${why}`,
        { ino: dirIno, block: logicalBlock, offset: off },
      );
    };
    if (off + DIRENT_HEADER_SIZE > end) fail(`entry header runs past the end of the block (${end})`);
    const ino = le32(buf, off + DE.inode);
    const recLen = recLenFromDisk(le16(buf, off + DE.recLen), blockSize);
    const nameLen = hasFileType ? buf[off + DE.nameLen]! : le16(buf, off + DE.nameLen);
    const fileType = hasFileType ? buf[off + DE.fileType]! : FT.UNKNOWN;
    if (recLen < DIRENT_HEADER_SIZE || recLen % 4 !== 0)
      fail(`rec_len ${recLen} is not a multiple of 4 and >= 8`);
    if (off + recLen > end) fail(`rec_len ${recLen} runs past the end of the block (${end})`);
    if (ino !== 0 && recLen < dirRecLen(nameLen))
      fail(`rec_len ${recLen} is too small for a ${nameLen}-byte name`);
    if (ino !== 0) {
      if (nameLen === 0) fail('entry has an empty name');
      if (ino > maxIno) fail(`inode ${ino} is beyond s_inodes_count ${maxIno}`);
      const nameBytes = Buffer.from(buf.subarray(off + DE.name, off + DE.name + nameLen));
      out.push({
        name: nameBytes.toString('utf8'),
        nameBytes,
        ino,
        fileType,
        block: logicalBlock,
        offset: off,
        recLen,
      });
    }
    off += recLen;
  }
}
