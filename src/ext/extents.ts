/**
 * Extent trees (inode flag EXTENTS_FL 0x80000). Source: e2fsprogs lib/ext2fs/ext3_extents.h,
 * extent.c; linux Documentation/filesystems/ext4/dynamic.rst; ext4-brief §5.1.
 *
 * Node header (12 bytes): 0x0 u16 eh_magic 0xF30A, 0x2 u16 eh_entries, 0x4 u16 eh_max,
 *   0x6 u16 eh_depth (0 = leaf), 0x8 u32 eh_generation.
 * Leaf entry (12 bytes): 0x0 u32 ee_block, 0x4 u16 ee_len (> 32768: unwritten, len - 32768),
 *   0x6 u16 ee_start_hi, 0x8 u32 ee_start_lo.
 * Index entry (12 bytes): 0x0 u32 ei_block, 0x4 u32 ei_leaf_lo, 0x8 u16 ei_leaf_hi, 0xA u16 unused.
 * The root lives in i_block (60 bytes, eh_max 4); tree blocks hold (bs-12)/12 entries and a u32
 * checksum tail at 12 + 12*eh_max.
 */
import { le16, le32 } from '../binary/bytes.js';
import { UlfsError, hex } from '../errors.js';
import { type Extent, type Mapping, type MapContext, pushRun } from './mapping.js';

export const EXTENT_MAGIC = 0xf30a;
export const EXTENT_HEADER_SIZE = 12;
export const EXTENT_ENTRY_SIZE = 12;
/** e2fsck's MAX_EXTENT_DEPTH_COUNT. */
export const MAX_EXTENT_DEPTH = 5;
export const EXT_INIT_MAX_LEN = 32768;

export const EH = { magic: 0x0, entries: 0x2, max: 0x4, depth: 0x6, generation: 0x8 } as const;
export const EE = { block: 0x0, len: 0x4, startHi: 0x6, startLo: 0x8 } as const;
export const EI = { block: 0x0, leafLo: 0x4, leafHi: 0x8 } as const;

export interface ExtentHeader {
  magic: number;
  entries: number;
  max: number;
  depth: number;
  generation: number;
}

export function decodeExtentHeader(b: Uint8Array, off = 0): ExtentHeader {
  return {
    magic: le16(b, off + EH.magic),
    entries: le16(b, off + EH.entries),
    max: le16(b, off + EH.max),
    depth: le16(b, off + EH.depth),
    generation: le32(b, off + EH.generation),
  };
}

/** Maximum entries of a node of `bytes` bytes (the root: 60 bytes -> 4). */
export const extentCapacity = (bytes: number): number =>
  Math.floor((bytes - EXTENT_HEADER_SIZE) / EXTENT_ENTRY_SIZE);

/** Byte offset of the checksum tail in an extent tree block. */
export const extentTailOffset = (ehMax: number): number => EXTENT_HEADER_SIZE + EXTENT_ENTRY_SIZE * ehMax;

/**
 * Walks the extent tree rooted in `iBlock` (the inode's 60-byte i_block) and returns the leaf
 * extents (sorted) and every index/leaf block below the root.
 */
export function walkExtents(ctx: MapContext, iBlock: Uint8Array, ino: number): Mapping {
  const extents: Extent[] = [];
  const metaBlocks: number[] = [];
  const visited = new Set<number>();
  const fail = (
    code: 'EXT_BAD_EXTENT' | 'EXT_EXTENT_DEPTH' | 'EXT_EXTENT_LOOP',
    msg: string,
    data = {},
  ): never => {
    throw new UlfsError(code, `inode ${ino}: ${msg}`, { ino, ...data });
  };

  const checkHeader = (
    h: ExtentHeader,
    capacity: number,
    where: string,
    expectDepth: number | null,
  ): void => {
    if (h.magic !== EXTENT_MAGIC)
      fail('EXT_BAD_EXTENT', `extent header at ${where} has magic ${hex(h.magic)}, expected 0xf30a`);
    if (h.depth > MAX_EXTENT_DEPTH) {
      fail('EXT_EXTENT_DEPTH', `extent tree depth ${h.depth} at ${where} exceeds ${MAX_EXTENT_DEPTH}`, {
        depth: h.depth,
      });
    }
    if (expectDepth !== null && h.depth !== expectDepth) {
      fail('EXT_BAD_EXTENT', `extent node at ${where} has depth ${h.depth}, expected ${expectDepth}`);
    }
    if (h.max > capacity || h.entries > h.max) {
      fail(
        'EXT_BAD_EXTENT',
        `extent node at ${where} has ${h.entries} entries, max ${h.max}, capacity ${capacity}`,
      );
    }
  };

  const walkNode = (node: Uint8Array, h: ExtentHeader, where: string, lo: number, hi: number): void => {
    let prevEnd = lo;
    for (let i = 0; i < h.entries; i++) {
      const e = EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE;
      const first = le32(node, e);
      if (first < prevEnd || first >= hi) {
        fail(
          'EXT_BAD_EXTENT',
          `extent entry ${i} at ${where} starts at logical ${first}, outside [${prevEnd}, ${hi})`,
        );
      }
      if (h.depth === 0) {
        const raw = le16(node, e + EE.len);
        const unwritten = raw > EXT_INIT_MAX_LEN;
        const len = unwritten ? raw - EXT_INIT_MAX_LEN : raw;
        const phys = le16(node, e + EE.startHi) * 0x1_0000_0000 + le32(node, e + EE.startLo);
        if (len === 0) fail('EXT_BAD_EXTENT', `zero-length extent ${i} at ${where}`);
        if (first + len > hi) fail('EXT_BAD_EXTENT', `extent ${i} at ${where} runs past logical ${hi}`);
        if (phys < ctx.firstDataBlock || phys + len > ctx.blocksCount) {
          throw new UlfsError(
            'EXT_BLOCK_OUT_OF_RANGE',
            `inode ${ino}: extent ${i} at ${where} maps to blocks ${phys}..${phys + len - 1}, outside the filesystem (${ctx.blocksCount} blocks)`,
            { ino, block: phys, length: len },
          );
        }
        pushRun(extents, first, phys, len, unwritten);
        prevEnd = first + len;
      } else {
        const child = le16(node, e + EI.leafHi) * 0x1_0000_0000 + le32(node, e + EI.leafLo);
        const next = i + 1 < h.entries ? le32(node, e + EXTENT_ENTRY_SIZE) : hi;
        if (child < ctx.firstDataBlock || child >= ctx.blocksCount) {
          throw new UlfsError(
            'EXT_BLOCK_OUT_OF_RANGE',
            `inode ${ino}: extent index ${i} at ${where} points to block ${child}, outside the filesystem`,
            { ino, block: child },
          );
        }
        if (visited.has(child))
          fail('EXT_EXTENT_LOOP', `extent tree block ${child} is referenced twice`, { block: child });
        visited.add(child);
        metaBlocks.push(child);
        const data = ctx.readBlock(child);
        const ch = decodeExtentHeader(data);
        checkHeader(ch, extentCapacity(ctx.blockSize), `block ${child}`, h.depth - 1);
        ctx.verifyExtentBlock?.(child, data, ino);
        walkNode(data, ch, `block ${child}`, first, Math.max(first, next));
        prevEnd = first;
      }
    }
  };

  const root = decodeExtentHeader(iBlock);
  checkHeader(root, extentCapacity(60), 'the inode root', null);
  walkNode(iBlock, root, 'the inode root', 0, 0x1_0000_0000);
  return { extents, metaBlocks };
}
