/**
 * Symlinks. Source: e2fsprogs lib/ext2fs/symlink.c, linux fs/ext4/inode.c
 * (ext4_inode_is_fast_symlink); ext4-brief §7.
 * A fast symlink keeps its target in i_block (size < 60, no EXTENTS_FL, no data blocks besides an
 * xattr block). A slow symlink has one data block holding the target; i_size is its length.
 */
import { INODE_FLAGS, I_BLOCK_SIZE, type Inode } from './inode.js';

/** Linux PATH_MAX: a longer target is corrupt. */
export const SYMLINK_MAX = 4096;
/** Hops allowed while resolving a path (linux MAXSYMLINKS). */
export const MAX_SYMLINK_HOPS = 40;

export function isFastSymlink(inode: Inode, blockSize: number, roCompatSectors: number): boolean {
  if (inode.flags & (INODE_FLAGS.EXTENTS | INODE_FLAGS.INLINE_DATA)) return false;
  if (inode.size === 0 || inode.size >= I_BLOCK_SIZE) return false;
  const eaSectors = inode.fileAcl !== 0 ? blockSize / 512 : 0;
  return roCompatSectors - eaSectors <= 0;
}
