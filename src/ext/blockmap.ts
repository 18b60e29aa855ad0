/**
 * Classic block map (ext2/ext3; inodes without EXTENTS_FL). Source: linux
 * Documentation/filesystems/ext4/blockmap.rst, e2fsprogs lib/ext2fs/block.c; ext4-brief §5.2.
 *
 * i_block[0..11] are direct block numbers, i_block[12] the single-indirect block, [13] the double-,
 * [14] the triple-indirect block. An indirect block holds bs/4 little-endian u32 block numbers;
 * 0 is a hole. Indirect blocks carry no checksum, even with metadata_csum.
 */
import { le32 } from '../binary/bytes.js';
import { UlfsError } from '../errors.js';
import { type Extent, type Mapping, type MapContext, pushRun } from './mapping.js';

export const N_DIRECT = 12;
export const IND_BLOCK = 12;
export const DIND_BLOCK = 13;
export const TIND_BLOCK = 14;

/**
 * Walks the block map in `iBlock` and returns the data runs and the indirect blocks. Only logical
 * blocks below `maxLogical` are walked (pass 2^32 for all).
 */
export function walkBlockMap(
  ctx: MapContext,
  iBlock: Uint8Array,
  ino: number,
  maxLogical = 0x1_0000_0000,
): Mapping {
  const extents: Extent[] = [];
  const metaBlocks: number[] = [];
  const visited = new Set<number>();
  const perBlock = ctx.blockSize / 4;

  const check = (blk: number, what: string): void => {
    if (blk < ctx.firstDataBlock || blk >= ctx.blocksCount) {
      throw new UlfsError(
        'EXT_BLOCK_OUT_OF_RANGE',
        `inode ${ino}: ${what} block ${blk} is outside the filesystem (${ctx.blocksCount} blocks)`,
        { ino, block: blk },
      );
    }
  };

  // level 0 = data block; level n = block of pointers covering perBlock^n... blocks.
  const walk = (blk: number, level: number, logical: number): void => {
    if (logical >= maxLogical) return;
    if (level === 0) {
      check(blk, 'data');
      pushRun(extents, logical, blk, 1, false);
      return;
    }
    check(blk, 'indirect');
    if (visited.has(blk)) {
      throw new UlfsError('EXT_BAD_BLOCK_MAP', `inode ${ino}: indirect block ${blk} is referenced twice`, {
        ino,
        block: blk,
      });
    }
    visited.add(blk);
    metaBlocks.push(blk);
    const data = ctx.readBlock(blk);
    const span = perBlock ** (level - 1);
    for (let i = 0; i < perBlock; i++) {
      const child = le32(data, i * 4);
      if (child !== 0) walk(child, level - 1, logical + i * span);
    }
  };

  for (let i = 0; i < N_DIRECT; i++) {
    const b = le32(iBlock, i * 4);
    if (b !== 0) walk(b, 0, i);
  }
  let base = N_DIRECT;
  for (let level = 1; level <= 3; level++) {
    const b = le32(iBlock, (N_DIRECT + level - 1) * 4);
    if (b !== 0) walk(b, level, base);
    base += perBlock ** level;
  }
  return { extents, metaBlocks };
}
