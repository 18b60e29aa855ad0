/**
 * htree (dir_index) interior blocks, which a linear reader skips. Source: linux
 * Documentation/filesystems/ext4/directory.rst, e2fsprogs lib/ext2fs/csum.c (__get_dx_countlimit);
 * ext4-brief §6.2.
 *
 * dx_root (logical block 0): "." (rec_len 12), ".." (rec_len bs-12), then at 0x18 dx_root_info
 *   {u32 reserved_zero, u8 hash_version, u8 info_length = 8, u8 indirect_levels, u8 unused_flags},
 *   at 0x20 u16 limit, u16 count, u32 block, then {u32 hash, u32 block} pairs.
 * dx_node: a fake dirent {inode 0, rec_len bs, name_len 0}, at 0x08 u16 limit, u16 count, ...
 * dx_tail (metadata_csum), at count_offset + 8*limit: u32 dt_reserved, u32 dt_checksum.
 */
import { le16, le32 } from '../binary/bytes.js';
import { recLenFromDisk } from './dirent.js';

export const DX_ROOT_INFO = 0x18;
export const DX_ROOT_COUNT_OFFSET = 0x20;
export const DX_NODE_COUNT_OFFSET = 0x08;
export const DX_ENTRY_SIZE = 8;
export const DX_TAIL_SIZE = 8;

export interface DxCountLimit {
  /** Offset of the u16 limit (count follows at +2). */
  countOffset: number;
  limit: number;
  count: number;
  kind: 'root' | 'node';
  /** dx_root only: indirect_levels. */
  levels: number;
}

/**
 * If `block` looks like a dx_root or dx_node (the libext2fs shape test), returns its limit/count;
 * otherwise null (an ordinary leaf block).
 */
export function dxCountLimit(block: Uint8Array, blockSize: number): DxCountLimit | null {
  const rl0 = recLenFromDisk(le16(block, 4), blockSize);
  if (rl0 === blockSize && block[6] === 0 && le32(block, 0) === 0) {
    return {
      countOffset: DX_NODE_COUNT_OFFSET,
      limit: le16(block, 8),
      count: le16(block, 10),
      kind: 'node',
      levels: 0,
    };
  }
  if (rl0 === 12) {
    const rl1 = recLenFromDisk(le16(block, 12 + 4), blockSize);
    if (rl1 === blockSize - 12 && le32(block, DX_ROOT_INFO) === 0 && block[DX_ROOT_INFO + 5] === 8) {
      return {
        countOffset: DX_ROOT_COUNT_OFFSET,
        limit: le16(block, DX_ROOT_COUNT_OFFSET),
        count: le16(block, DX_ROOT_COUNT_OFFSET + 2),
        kind: 'root',
        levels: block[DX_ROOT_INFO + 6]!,
      };
    }
  }
  return null;
}
