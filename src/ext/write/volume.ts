/**
 * The writer's view of one ext2/3/4 filesystem on a BlockDevice: superblock and descriptor copies,
 * a block cache, dirty tracking by class, allocation bitmaps, and an ordered flush.
 *
 * Nothing reaches the device before flush(). flush() writes in the kernel's dependency order
 * (ext4-brief §10.8): file data, directory blocks, inodes, tree/indirect/xattr blocks, bitmaps, group
 * descriptors (primary GDT), superblock (primary) last, then dev.sync(). A crash part-way leaves at
 * most leaks that e2fsck can fix; with JournaledDevice the undo log restores everything.
 *
 * Counters: group counters are adjusted as bits flip; the superblock free counts are recomputed from
 * the descriptor sums at flush (ext4-brief §10.1). Checksums are recomputed in dependency order:
 * bitmap csums -> descriptor csum -> superblock csum.
 */
import type { BlockDevice } from '../../image/blockdev.js';
import { UlfsError, hex } from '../../errors.js';
import { isZero, le16, le32, setLe16, setLe32 } from '../../binary/bytes.js';
import {
  blockBitmapCsum,
  inodeBitmapCsum,
  setBitmapCsum,
  setGroupDescCsum,
  setDirLeafCsum,
  setInodeCsum,
  setSuperblockCsum,
  I_GENERATION,
} from '../checksums.js';
import {
  clearBit,
  decodeGroupLocs,
  loadBlockBitmap,
  loadInodeBitmap,
  testBit,
  type GroupLocs,
} from '../bitmaps.js';
import {
  BG_BLOCK_UNINIT,
  BG_FLAGS,
  BG_FREE_BLOCKS_COUNT_HI,
  BG_FREE_BLOCKS_COUNT_LO,
  BG_FREE_INODES_COUNT_HI,
  BG_FREE_INODES_COUNT_LO,
  BG_USED_DIRS_COUNT_HI,
  BG_USED_DIRS_COUNT_LO,
  decodeGeometry,
  descCount,
  gdtBlockNumber,
  S_FREE_BLOCKS_COUNT_HI,
  S_FREE_BLOCKS_COUNT_LO,
  S_FREE_INODES_COUNT,
  type Geometry,
} from './geometry.js';

export const SB_OFFSET = 1024;
export const SB_SIZE = 1024;
const ITABLE_READAHEAD = 16;

/** Flush order: lower first. */
export type BlockClass = 'data' | 'dir' | 'inode' | 'tree' | 'bitmap';
const ORDER: BlockClass[] = ['data', 'dir', 'inode', 'tree', 'bitmap'];

export interface FlushStats {
  blocksWritten: number;
  writes: number;
}

export class Volume {
  readonly geo: Geometry;
  readonly sb: Buffer;
  /** All primary descriptor blocks back to back. */
  readonly gdt: Buffer;
  readonly locs: GroupLocs[];
  private readonly cache = new Map<number, Buffer>();
  private readonly dirty = new Map<number, BlockClass>();
  private readonly bbm = new Map<number, Buffer>();
  private readonly ibm = new Map<number, Buffer>();
  private readonly dirtyBbm = new Set<number>();
  private readonly dirtyIbm = new Set<number>();
  private readonly dirtyGroups = new Set<number>();
  private readonly dirtyInodes = new Set<number>();
  /** Directory leaf blocks to re-checksum at flush: block -> owning directory inode. */
  private readonly dirLeaves = new Map<number, number>();
  /** File data staged for the first flush phase: [first block, bytes (whole blocks)]. */
  private readonly dataWrites: [number, Buffer][] = [];

  /** Told of every run of blocks freed (prune zeroes those later without reading them first). */
  onFree: ((first: number, count: number) => void) | undefined;

  constructor(readonly dev: BlockDevice) {
    if (dev.size < SB_OFFSET + SB_SIZE) {
      throw new UlfsError('IMAGE_TRUNCATED', `${dev.name} is too small to hold an ext superblock`);
    }
    this.sb = dev.read(SB_OFFSET, SB_SIZE);
    this.geo = decodeGeometry(this.sb);
    const g = this.geo;
    if (g.blocksCount * g.bs > dev.size) {
      throw new UlfsError(
        'IMAGE_TRUNCATED',
        `filesystem of ${g.blocksCount} blocks of ${g.bs} bytes does not fit in ${dev.name} (${hex(dev.size)} bytes)`,
      );
    }
    this.gdt = Buffer.alloc(g.gdtBlocks * g.bs);
    for (let m = 0; m < g.gdtBlocks; m++) {
      const b = gdtBlockNumber(g, m);
      this.checkBlock(b, 'descriptor block');
      dev.readInto(this.gdt.subarray(m * g.bs, (m + 1) * g.bs), b * g.bs);
    }
    this.locs = [];
    for (let i = 0; i < g.groupCount; i++) this.locs.push(decodeGroupLocs(g, this.desc(i)));
  }

  get bs(): number {
    return this.geo.bs;
  }

  checkBlock(b: number, what: string): void {
    if (!Number.isSafeInteger(b) || b < this.geo.firstDataBlock || b >= this.geo.blocksCount) {
      throw new UlfsError(
        'EXT_BLOCK_OUT_OF_RANGE',
        `${what} ${hex(b)} is outside the filesystem (${hex(this.geo.blocksCount)} blocks)`,
        {
          block: b,
        },
      );
    }
  }

  desc(g: number): Buffer {
    const ds = this.geo.descSize;
    return this.gdt.subarray(g * ds, (g + 1) * ds);
  }

  /** The cached, mutable copy of a block (read on first use). */
  block(b: number, what = 'block'): Buffer {
    let buf = this.cache.get(b);
    if (!buf) {
      this.checkBlock(b, what);
      buf = this.dev.read(b * this.geo.bs, this.geo.bs);
      this.cache.set(b, buf);
    }
    return buf;
  }

  /** Replaces a block's content wholesale (file data) without reading it first. */
  setBlock(b: number, data: Buffer, cls: BlockClass): void {
    this.checkBlock(b, 'block');
    this.cache.set(b, data);
    this.dirty.set(b, cls);
  }

  /** Reads a block without caching it (bulk scans). */
  readUncached(b: number): Buffer {
    const c = this.cache.get(b);
    if (c) return c;
    this.checkBlock(b, 'block');
    return this.dev.read(b * this.geo.bs, this.geo.bs);
  }

  markDirty(b: number, cls: BlockClass): void {
    const prev = this.dirty.get(b);
    // a block keeps the earliest class it was dirtied with (never happens across classes in practice)
    if (!prev) this.dirty.set(b, cls);
  }

  hasPendingWrites(): boolean {
    return this.dirty.size > 0 || this.dirtyGroups.size > 0 || this.dataWrites.length > 0;
  }

  /** Marks a directory leaf block (with a checksum tail) for re-checksumming at flush. */
  dirtyDirLeaf(block: number, dirIno: number): void {
    this.dirLeaves.set(block, dirIno);
  }

  /** Stages file data (whole blocks from `first`), written before any metadata at flush. */
  stageData(first: number, data: Buffer): void {
    const n = data.length / this.geo.bs;
    if (!Number.isInteger(n))
      throw new UlfsError('INTERNAL', `staged data of ${data.length} bytes is not whole blocks`);
    this.checkBlock(first, 'data block');
    this.checkBlock(first + n - 1, 'data block');
    this.dataWrites.push([first, data]);
  }

  // ---- inodes ----

  inodeLocation(ino: number): { block: number; offset: number } {
    const g = this.geo;
    if (!Number.isInteger(ino) || ino < 1 || ino > g.inodesCount) {
      throw new UlfsError('EXT_BAD_INODE', `inode number ${ino} is out of range 1..${g.inodesCount}`, {
        ino,
      });
    }
    const grp = Math.floor((ino - 1) / g.ipg);
    const idx = (ino - 1) % g.ipg;
    const byte = idx * g.inodeSize;
    return { block: this.locs[grp]!.inodeTable + Math.floor(byte / g.bs), offset: byte % g.bs };
  }

  /** The inode's raw bytes, a live view into the cached inode-table block. */
  inode(ino: number): Buffer {
    const { block, offset } = this.inodeLocation(ino);
    if (!this.cache.has(block)) this.readAheadItable(ino, block);
    return this.block(block, 'inode table block').subarray(offset, offset + this.geo.inodeSize);
  }

  /** Reads up to 16 inode-table blocks from `block` in one call (neighbouring inodes come next). */
  private readAheadItable(ino: number, block: number): void {
    const g = Math.floor((ino - 1) / this.geo.ipg);
    const tableEnd = this.locs[g]!.inodeTable + this.geo.itableBlocks;
    let n = 1;
    while (n < ITABLE_READAHEAD && block + n < tableEnd && !this.cache.has(block + n)) n++;
    this.checkBlock(block, 'inode table block');
    this.checkBlock(block + n - 1, 'inode table block');
    const bs = this.geo.bs;
    const buf = this.dev.read(block * bs, n * bs);
    for (let i = 0; i < n; i++) this.cache.set(block + i, buf.subarray(i * bs, (i + 1) * bs));
  }

  /** Schedules the inode's table block; its checksum is recomputed at flush. */
  writeInode(ino: number): void {
    const { block } = this.inodeLocation(ino);
    this.dirtyInodes.add(ino);
    this.markDirty(block, 'inode');
  }

  // ---- bitmaps and counters ----

  private readBlockForBitmap = (n: number): Uint8Array => this.block(n, 'bitmap block');

  blockBitmap(g: number): Buffer {
    let bm = this.bbm.get(g);
    if (!bm) {
      bm = loadBlockBitmap(this.geo, g, this.locs, this.readBlockForBitmap);
      this.bbm.set(g, bm);
    }
    return bm;
  }

  inodeBitmap(g: number): Buffer {
    let bm = this.ibm.get(g);
    if (!bm) {
      bm = loadInodeBitmap(this.geo, g, this.locs, this.readBlockForBitmap);
      this.ibm.set(g, bm);
    }
    return bm;
  }

  groupOfBlock(b: number): number {
    return Math.floor((b - this.geo.firstDataBlock) / this.geo.bpg);
  }

  isBlockUsed(b: number): boolean {
    const g = this.groupOfBlock(b);
    return testBit(this.blockBitmap(g), b - this.geo.firstDataBlock - g * this.geo.bpg);
  }

  /** Frees one block (ext2fs_block_alloc_stats2(-1)): the bit must be set. */
  freeBlock(b: number): void {
    this.freeRun(b, 1);
  }

  /**
   * Frees blocks [start, start+count) (split at group boundaries): every bit must be set. One counter
   * update per group touched, however many blocks.
   */
  freeRun(start: number, count: number): void {
    if (count <= 0) return;
    this.updateRun(start, count, false);
    this.onFree?.(start, count);
  }

  /**
   * Allocates blocks [start, start+count) (ext2fs_block_alloc_stats_range(+1)), split at group
   * boundaries: every bit must be clear. The caller chose the run (there is no search here).
   */
  allocRun(start: number, count: number): void {
    if (count <= 0) return;
    this.updateRun(start, count, true);
  }

  /** Sets (allocate) or clears the bits of [start, start+count) and the free counts, group by group. */
  private updateRun(start: number, count: number, allocate: boolean): void {
    const what = allocate ? 'allocated block' : 'freed block';
    this.checkBlock(start, what);
    this.checkBlock(start + count - 1, what);
    const geo = this.geo;
    let b = start;
    const end = start + count;
    // bounded: each pass consumes at least one block
    while (b < end) {
      const g = this.groupOfBlock(b);
      const groupEnd = geo.firstDataBlock + (g + 1) * geo.bpg;
      const n = Math.min(end, groupEnd) - b;
      const bm = this.blockBitmap(g);
      const bit0 = b - geo.firstDataBlock - g * geo.bpg;
      // every bit checked before any is changed
      for (let i = bit0; i < bit0 + n; i++) {
        if (((bm[i >>> 3]! & (1 << (i & 7))) !== 0) === allocate) {
          const block = b + i - bit0;
          throw new UlfsError(
            'EXT_BITMAP_MISMATCH',
            allocate
              ? `block ${hex(block)} is not free`
              : `block ${hex(block)} is in use by an inode but free in the bitmap of group ${g}`,
            { block, group: g },
          );
        }
      }
      for (let i = bit0; i < bit0 + n; i++) {
        const mask = 1 << (i & 7);
        bm[i >>> 3] = allocate ? bm[i >>> 3]! | mask : bm[i >>> 3]! & ~mask;
      }
      const d = this.desc(g);
      this.setDescCount(
        d,
        BG_FREE_BLOCKS_COUNT_LO,
        BG_FREE_BLOCKS_COUNT_HI,
        this.descCount(d, BG_FREE_BLOCKS_COUNT_LO, BG_FREE_BLOCKS_COUNT_HI) + (allocate ? -n : n),
      );
      if (geo.gdtCsum && le16(d, BG_FLAGS) & BG_BLOCK_UNINIT) {
        // the synthesized bitmap becomes real: it must be written and the flag cleared
        setLe16(d, BG_FLAGS, le16(d, BG_FLAGS) & ~BG_BLOCK_UNINIT);
        this.locs[g]!.flags &= ~BG_BLOCK_UNINIT;
      }
      this.dirtyBbm.add(g);
      this.dirtyGroups.add(g);
      b += n;
    }
  }

  /** Frees one inode (ext2fs_inode_alloc_stats2(-1)). Does not touch itable_unused or INODE_UNINIT. */
  freeInode(ino: number, isDir: boolean): void {
    const g = Math.floor((ino - 1) / this.geo.ipg);
    const bm = this.inodeBitmap(g);
    const bit = (ino - 1) % this.geo.ipg;
    if (!testBit(bm, bit)) {
      throw new UlfsError(
        'EXT_BITMAP_MISMATCH',
        `inode ${ino} is in use but free in the inode bitmap of group ${g}`,
        { ino },
      );
    }
    clearBit(bm, bit);
    const d = this.desc(g);
    this.setDescCount(
      d,
      BG_FREE_INODES_COUNT_LO,
      BG_FREE_INODES_COUNT_HI,
      this.descCount(d, BG_FREE_INODES_COUNT_LO, BG_FREE_INODES_COUNT_HI) + 1,
    );
    if (isDir) {
      const used = this.descCount(d, BG_USED_DIRS_COUNT_LO, BG_USED_DIRS_COUNT_HI);
      if (used > 0) this.setDescCount(d, BG_USED_DIRS_COUNT_LO, BG_USED_DIRS_COUNT_HI, used - 1);
    }
    this.dirtyIbm.add(g);
    this.dirtyGroups.add(g);
  }

  descCount(d: Uint8Array, lo: number, hi: number): number {
    return descCount(this.geo, d, lo, hi);
  }
  setDescCount(d: Uint8Array, lo: number, hi: number, v: number): void {
    setLe16(d, lo, v & 0xffff);
    if (this.geo.descSize >= 64) setLe16(d, hi, v >>> 16);
  }

  // ---- flush ----

  /** Writes everything dirty in the safe order and syncs. Returns what was written. */
  flush(): FlushStats {
    const geo = this.geo;
    const stats: FlushStats = { blocksWritten: 0, writes: 0 };
    if (!this.hasPendingWrites()) return stats;
    if (geo.metadataCsum) {
      // leaf checksums first (they read the directory inode's generation), then the inodes
      for (const [blk, dirIno] of this.dirLeaves) {
        setDirLeafCsum(geo.seed, dirIno, le32(this.inode(dirIno), I_GENERATION), this.block(blk));
      }
      for (const ino of this.dirtyInodes) {
        const raw = this.inode(ino);
        // a freed, wiped inode stays all zero, like an unused one from mke2fs (e2fsck accepts it)
        if (!isZero(raw)) setInodeCsum(geo.seed, ino, raw, geo.inodeSize);
      }
    }
    // bitmaps: copy into the cached bitmap blocks, checksum into the descriptors
    for (const g of this.dirtyBbm) {
      const bm = this.bbm.get(g)!;
      const b = this.locs[g]!.blockBitmap;
      this.checkBlock(b, 'block bitmap');
      this.cache.set(b, bm);
      this.dirty.set(b, 'bitmap');
      if (geo.metadataCsum) setBitmapCsum(this.desc(g), 'block', blockBitmapCsum(geo.seed, bm, geo.cpg));
    }
    for (const g of this.dirtyIbm) {
      const bm = this.ibm.get(g)!;
      const b = this.locs[g]!.inodeBitmap;
      this.checkBlock(b, 'inode bitmap');
      this.cache.set(b, bm);
      this.dirty.set(b, 'bitmap');
      if (geo.metadataCsum) setBitmapCsum(this.desc(g), 'inode', inodeBitmapCsum(geo.seed, bm, geo.ipg));
    }
    for (const [first, data] of this.dataWrites) {
      this.dev.write(first * geo.bs, data);
      stats.blocksWritten += data.length / geo.bs;
      stats.writes++;
    }
    this.dataWrites.length = 0;
    for (const cls of ORDER) this.writeClass(cls, stats);
    // descriptors
    const gdtDirty = new Set<number>();
    for (const g of this.dirtyGroups) {
      if (geo.gdtCsum) setGroupDescCsum(this.sb, geo.seed, g, this.desc(g));
      gdtDirty.add(Math.floor(g / geo.descPerBlock));
    }
    for (const m of [...gdtDirty].sort((a, b) => a - b)) {
      this.dev.write(gdtBlockNumber(geo, m) * geo.bs, this.gdt.subarray(m * geo.bs, (m + 1) * geo.bs));
      stats.blocksWritten++;
      stats.writes++;
    }
    // superblock: free counts from the descriptor sums
    let freeBlocks = 0;
    let freeInodes = 0;
    for (let g = 0; g < geo.groupCount; g++) {
      const d = this.desc(g);
      freeBlocks += this.descCount(d, BG_FREE_BLOCKS_COUNT_LO, BG_FREE_BLOCKS_COUNT_HI);
      freeInodes += this.descCount(d, BG_FREE_INODES_COUNT_LO, BG_FREE_INODES_COUNT_HI);
    }
    setLe32(this.sb, S_FREE_BLOCKS_COUNT_LO, freeBlocks % 0x1_0000_0000);
    if (geo.is64) setLe32(this.sb, S_FREE_BLOCKS_COUNT_HI, Math.floor(freeBlocks / 0x1_0000_0000));
    setLe32(this.sb, S_FREE_INODES_COUNT, freeInodes);
    if (geo.metadataCsum) setSuperblockCsum(this.sb);
    this.dev.write(SB_OFFSET, this.sb);
    stats.writes++;
    this.dev.sync();
    this.dirty.clear();
    this.dirtyBbm.clear();
    this.dirtyIbm.clear();
    this.dirtyGroups.clear();
    this.dirtyInodes.clear();
    this.dirLeaves.clear();
    return stats;
  }

  private writeClass(cls: BlockClass, stats: FlushStats): void {
    const blocks: number[] = [];
    for (const [b, c] of this.dirty) if (c === cls) blocks.push(b);
    blocks.sort((a, b) => a - b);
    // coalesce consecutive blocks into one write (bounded at 256 blocks per write)
    let i = 0;
    while (i < blocks.length) {
      let j = i + 1;
      while (j < blocks.length && blocks[j] === blocks[j - 1]! + 1 && j - i < 256) j++;
      const first = blocks[i]!;
      const data =
        j - i === 1
          ? this.cache.get(first)!
          : Buffer.concat(blocks.slice(i, j).map((b) => this.cache.get(b)!));
      this.dev.write(first * this.geo.bs, data);
      stats.blocksWritten += j - i;
      stats.writes++;
      i = j;
    }
  }

  /** The superblock's current free counts (as on disk, before flush recomputes them). */
  superFree(): { blocks: number; inodes: number } {
    const blocks = this.geo.is64
      ? le32(this.sb, S_FREE_BLOCKS_COUNT_HI) * 0x1_0000_0000 + le32(this.sb, S_FREE_BLOCKS_COUNT_LO)
      : le32(this.sb, S_FREE_BLOCKS_COUNT_LO);
    return { blocks, inodes: le32(this.sb, S_FREE_INODES_COUNT) };
  }
}
