/**
 * ExtFs: a read-only view of an ext2/3/4 filesystem on a BlockDevice (byte 0 of the device is byte 0
 * of the filesystem; use a SliceDevice for a partition).
 *
 * Open: superblock (validated, checksum verified with metadata_csum), then the whole group
 * descriptor table (classic or meta_bg placement, checksums verified). Everything else is read on
 * demand through a small LRU block cache: inodes, extent trees / block maps, directories (linear;
 * htree index blocks are recognised and skipped), symlinks (fast, slow, inline), file data (streamed
 * in large contiguous reads, holes and unwritten extents as zeros).
 *
 * Caches: the writer (src/ext/write) changes the device behind our back; it must call
 * invalidateCache() after writing blocks, and reload() after changing the superblock or descriptors.
 */
import { Readable } from 'node:stream';
import { isZero } from '../binary/bytes.js';
import type { ChunkPool } from '../binary/chunk-pool.js';
import { UlfsError, bound, hex } from '../errors.js';
import type { BlockDevice } from '../image/blockdev.js';
import * as csum from './checksums.js';
import { decodeDirBlock, hasDirTail, DIR_TAIL_SIZE, type DirEntry } from './dirent.js';
import { walkBlockMap } from './blockmap.js';
import { walkExtents, extentTailOffset } from './extents.js';
import { COMPAT, INCOMPAT, RO_COMPAT, classifyFs, featureNames } from './features.js';
import {
  type GroupDesc,
  BG_INODE_UNINIT,
  checkGroupDesc,
  decodeGroupDesc,
  descriptorBlockLocation,
  descsPerBlock,
  gdtBlockCount,
} from './groupdesc.js';
import { dxCountLimit } from './htree.js';
import {
  type Inode,
  type Stat,
  INODE_FLAGS,
  JOURNAL_INO,
  ROOT_INO,
  decodeInode,
  dirSize,
  inodeSectors,
  modeType,
} from './inode.js';
import { decodeJournalSuperblock } from './journal.js';
import type { Extent, MapContext, Mapping } from './mapping.js';
import {
  type Superblock,
  OS_LINUX,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  decodeSuperblock,
  validateSuperblock,
} from './superblock.js';
import { MAX_SYMLINK_HOPS, SYMLINK_MAX, isFastSymlink } from './symlink.js';
import { walkTree, walkTypes, type TypedEntry, type WalkEntry } from './walk.js';
import { decodeInodeXattrs } from './xattr.js';

export type { Extent, Mapping } from './mapping.js';
export type { WalkEntry } from './walk.js';
export type { DirEntry } from './dirent.js';
export type { Inode, Stat } from './inode.js';
export type { Superblock } from './superblock.js';
export type { GroupDesc } from './groupdesc.js';

export interface ExtFsOptions {
  /** Verify metadata checksums on read (metadata_csum / gdt_csum). Default true. */
  verifyChecksums?: boolean;
  /** Blocks kept in the LRU cache. Default 1024. */
  cacheBlocks?: number;
}

export interface JournalState {
  kind: 'none' | 'internal' | 'external';
  /** incompat RECOVER: the journal must be replayed before the metadata can be trusted. */
  needsRecovery: boolean;
  /** jsb.s_start == 0 (always true for 'none'; for 'external' we can only go by needsRecovery). */
  logEmpty: boolean;
  /** jsb.s_errno (0 = no error). */
  errno: number;
}

/** Most groups we are willing to keep descriptors for (4 Mi groups = 512 TiB at 4 KiB blocks). */
export const MAX_GROUPS = 1 << 22;
/** Default cap for readFile(). */
export const READ_FILE_MAX = 256 << 20;
/** Default chunk size for fileChunks(). */
export const CHUNK_SIZE = 1 << 20;
/** A directory larger than this is refused (the kernel caps them at 2 GiB without largedir). */
export const MAX_DIR_BYTES = 1 << 30;

export class ExtFs {
  readonly dev: BlockDevice;
  readonly verifyChecksums: boolean;
  private _sb!: Superblock;
  private _groups!: GroupDesc[];
  private _csumSeed: number | null = null;
  private readonly cache = new Map<number, Buffer>();
  private readonly cacheMax: number;

  private constructor(dev: BlockDevice, opts: ExtFsOptions) {
    this.dev = dev;
    this.verifyChecksums = opts.verifyChecksums ?? true;
    this.cacheMax = Math.max(16, opts.cacheBlocks ?? 1024);
  }

  static open(dev: BlockDevice, opts: ExtFsOptions = {}): ExtFs {
    const fs = new ExtFs(dev, opts);
    fs.reload();
    return fs;
  }

  get sb(): Superblock {
    return this._sb;
  }
  get groups(): GroupDesc[] {
    return this._groups;
  }
  get blockSize(): number {
    return this._sb.blockSize;
  }
  get groupCount(): number {
    return this._sb.groupCount;
  }
  get fsType(): 'ext2' | 'ext3' | 'ext4' {
    return classifyFs(this._sb.featureCompat, this._sb.featureIncompat, this._sb.featureRoCompat);
  }
  /** metadata_csum seed S, or null without metadata_csum. */
  get csumSeed(): number | null {
    return this._csumSeed;
  }
  get hasMetadataCsum(): boolean {
    return (this._sb.featureRoCompat & RO_COMPAT.METADATA_CSUM) !== 0;
  }
  private get hasFileType(): boolean {
    return (this._sb.featureIncompat & INCOMPAT.FILETYPE) !== 0;
  }
  private get largedir(): boolean {
    return (this._sb.featureIncompat & INCOMPAT.LARGEDIR) !== 0;
  }

  /** (Re-)reads the superblock and the descriptor table and drops every cached block. */
  reload(): void {
    this.cache.clear();
    if (this.dev.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
      throw new UlfsError(
        'IMAGE_TRUNCATED',
        `${this.dev.name} is ${this.dev.size} bytes, too small to hold an ext superblock`,
        { size: this.dev.size },
      );
    }
    const raw = this.dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
    const sb = decodeSuperblock(raw);
    validateSuperblock(sb, this.dev.size);
    bound(sb.groupCount, MAX_GROUPS, 'group count', 'EXT_BAD_SUPERBLOCK');
    const metadataCsum = (sb.featureRoCompat & RO_COMPAT.METADATA_CSUM) !== 0;
    if (metadataCsum && sb.checksumType !== 1) {
      throw new UlfsError('EXT_UNSUPPORTED', `unknown metadata checksum type ${sb.checksumType}`);
    }
    if (metadataCsum && this.verifyChecksums && !csum.verifySuperblockCsum(raw)) {
      throw new UlfsError(
        'EXT_BAD_CHECKSUM',
        `superblock checksum ${hex(sb.checksum)} at 0x7fc does not match ${hex(csum.superblockCsum(raw))}`,
        { what: 'superblock', offset: SUPERBLOCK_OFFSET },
      );
    }
    this._sb = sb;
    this._csumSeed = metadataCsum ? csum.fsSeed(raw) : null;
    this._groups = this.readGroupDescs();
  }

  /** Drops cached blocks (call after writing to the device). */
  invalidateCache(): void {
    this.cache.clear();
  }

  private readGroupDescs(): GroupDesc[] {
    const sb = this._sb;
    const bs = sb.blockSize;
    const dsz = sb.groupDescSize;
    const dpb = descsPerBlock(sb);
    const verify = this.verifyChecksums && csum.hasGroupDescCsum(sb.raw);
    const groups: GroupDesc[] = [];
    const nBlocks = gdtBlockCount(sb);
    for (let i = 0; i < nBlocks; i++) {
      const blk = descriptorBlockLocation(sb, i);
      if (blk >= sb.blocksCount) {
        throw new UlfsError(
          'EXT_BAD_GROUP_DESC',
          `descriptor block ${i} at block ${blk} is outside the filesystem`,
          {
            block: blk,
          },
        );
      }
      const data = this.dev.read(blk * bs, bs);
      for (let j = 0; j < dpb && groups.length < sb.groupCount; j++) {
        const g = groups.length;
        const rawDesc = data.subarray(j * dsz, (j + 1) * dsz);
        const offset = blk * bs + j * dsz;
        if (verify && !csum.verifyGroupDescCsum(sb.raw, this._csumSeed ?? 0, g, rawDesc)) {
          throw new UlfsError(
            'EXT_BAD_CHECKSUM',
            `group ${g} descriptor at ${hex(offset)}: checksum mismatch`,
            { what: 'group descriptor', group: g, offset },
          );
        }
        const gd = decodeGroupDesc(rawDesc, g, offset, dsz, sb.is64bit);
        checkGroupDesc(sb, gd);
        groups.push(gd);
      }
    }
    return groups;
  }

  // ---- blocks ----

  private checkBlock(block: number, what = 'block'): void {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this._sb.blocksCount) {
      throw new UlfsError(
        'EXT_BLOCK_OUT_OF_RANGE',
        `${what} ${block} is outside the filesystem (${this._sb.blocksCount} blocks)`,
        { block, blocksCount: this._sb.blocksCount },
      );
    }
  }

  /** A cached block; callers must not modify it. */
  private cachedBlock(block: number): Buffer {
    let b = this.cache.get(block);
    if (b) {
      this.cache.delete(block);
      this.cache.set(block, b);
      return b;
    }
    this.checkBlock(block);
    b = this.dev.read(block * this._sb.blockSize, this._sb.blockSize);
    if (this.cache.size >= this.cacheMax) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(block, b);
    return b;
  }

  /** Reads one block (a fresh copy the caller may modify). */
  readBlock(block: number): Buffer {
    return Buffer.from(this.cachedBlock(block));
  }

  // ---- inodes ----

  /** Byte offset of inode `ino` from the start of the filesystem. */
  inodeOffset(ino: number): number {
    const sb = this._sb;
    if (!Number.isInteger(ino) || ino < 1 || ino > sb.inodesCount) {
      throw new UlfsError('EXT_BAD_INODE', `inode number ${ino} is out of range 1..${sb.inodesCount}`, {
        ino,
      });
    }
    const g = Math.floor((ino - 1) / sb.inodesPerGroup);
    const idx = (ino - 1) % sb.inodesPerGroup;
    return this._groups[g]!.inodeTable * sb.blockSize + idx * sb.inodeSize;
  }

  /** True when the inode's slot was never initialised (INODE_UNINIT group, or past bg_itable_unused). */
  private inodeSlotUnused(ino: number): boolean {
    const sb = this._sb;
    if (!(sb.featureRoCompat & (RO_COMPAT.GDT_CSUM | RO_COMPAT.METADATA_CSUM))) return false;
    const g = Math.floor((ino - 1) / sb.inodesPerGroup);
    const idx = (ino - 1) % sb.inodesPerGroup;
    const gd = this._groups[g]!;
    return (gd.flags & BG_INODE_UNINIT) !== 0 || idx >= sb.inodesPerGroup - gd.itableUnused;
  }

  /**
   * Reads and decodes an inode. Slots that were never initialised (uninit_bg / metadata_csum
   * lazy init) read as all zeros, as e2fsck treats them. With metadata_csum the checksum is verified.
   */
  readInode(ino: number): Inode {
    const sb = this._sb;
    const offset = this.inodeOffset(ino);
    const bs = sb.blockSize;
    let raw: Buffer;
    if (this.inodeSlotUnused(ino)) {
      raw = Buffer.alloc(sb.inodeSize);
    } else {
      const blk = Math.floor(offset / bs);
      const within = offset - blk * bs;
      raw = Buffer.from(this.cachedBlock(blk).subarray(within, within + sb.inodeSize));
      if (
        this._csumSeed !== null &&
        this.verifyChecksums &&
        sb.creatorOs === OS_LINUX &&
        !isZero(raw.subarray(0, 128)) &&
        !csum.verifyInodeCsum(this._csumSeed, ino, raw, sb.inodeSize)
      ) {
        throw new UlfsError('EXT_BAD_CHECKSUM', `inode ${ino} at ${hex(offset)}: checksum mismatch`, {
          what: 'inode',
          ino,
          offset,
        });
      }
    }
    return decodeInode(raw, ino, offset, sb.featureRoCompat);
  }

  stat(ino: number): Stat {
    return this.statOf(this.readInode(ino));
  }

  private statOf(inode: Inode): Stat {
    const type = modeType(inode.mode);
    return {
      ino: inode.ino,
      type,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      size: type === 'dir' ? dirSize(inode, this.largedir) : inode.size,
      links: inode.linksCount,
      mtime: inode.mtime,
      flags: inode.flags,
    };
  }

  // ---- block mapping ----

  private mapContext(inode: Inode): MapContext {
    const sb = this._sb;
    const seed = this._csumSeed;
    const verify = seed !== null && this.verifyChecksums;
    return {
      blockSize: sb.blockSize,
      firstDataBlock: sb.firstDataBlock,
      blocksCount: sb.blocksCount,
      readBlock: (b) => this.cachedBlock(b),
      verifyExtentBlock: verify
        ? (block, data, ino) => {
            if (!csum.verifyExtentBlockCsum(seed, ino, inode.generation, data)) {
              throw new UlfsError(
                'EXT_BAD_CHECKSUM',
                `inode ${ino}: extent tree block ${block} checksum mismatch (tail at ${extentTailOffset(data.readUInt16LE(4))})`,
                { what: 'extent block', ino, block },
              );
            }
          }
        : undefined,
    };
  }

  /** Does this inode's i_block hold a block map / extent root (ext2fs_inode_has_valid_blocks2)? */
  private hasBlocks(inode: Inode): boolean {
    if (inode.flags & INODE_FLAGS.INLINE_DATA) return false;
    const t = modeType(inode.mode);
    if (t === 'file' || t === 'dir') return true;
    if (t === 'symlink') return !this.isFast(inode);
    return false;
  }

  private isFast(inode: Inode): boolean {
    return isFastSymlink(
      inode,
      this._sb.blockSize,
      inodeSectors(inode, this._sb.featureRoCompat, this._sb.blockSize),
    );
  }

  /** Data runs and tree blocks of an inode (empty for inline, fast-symlink and special inodes). */
  mapping(inode: Inode): Mapping {
    if (!this.hasBlocks(inode)) return { extents: [], metaBlocks: [] };
    const ctx = this.mapContext(inode);
    if (inode.flags & INODE_FLAGS.EXTENTS) return walkExtents(ctx, inode.block, inode.ino);
    return walkBlockMap(ctx, inode.block, inode.ino);
  }

  /** Data extents sorted by logical block (unwritten ones flagged). */
  mapFile(inode: Inode): Extent[] {
    return this.mapping(inode).extents;
  }

  /** Extent index/leaf blocks or IND/DIND/TIND blocks (freed by a delete besides the data). */
  metadataBlocks(inode: Inode): number[] {
    return this.mapping(inode).metaBlocks;
  }

  // ---- inline data ----

  /** Full contents of an inline-data inode: i_block then the "system.data" xattr value. */
  private inlineData(inode: Inode): Buffer {
    const attrs = decodeInodeXattrs(inode.raw, inode.extraIsize, inode.ino);
    const extra = attrs.find((a) => a.nameIndex === 7 && a.name === 'data')?.value ?? Buffer.alloc(0);
    const all = Buffer.concat([inode.block, extra]);
    return all.subarray(0, Math.min(all.length, inode.size));
  }

  // ---- directories ----

  /**
   * All live entries of a directory, in on-disk order, including "." and "..". htree directories
   * are read linearly: dx root/node blocks contribute only "." and "..".
   */
  readDir(ino: number): DirEntry[] {
    const inode = this.readInode(ino);
    if (modeType(inode.mode) !== 'dir') {
      throw new UlfsError('EXT_NOT_A_DIRECTORY', `inode ${ino} is not a directory`, { ino });
    }
    const out: DirEntry[] = [];
    const sb = this._sb;
    const bs = sb.blockSize;
    if (inode.flags & INODE_FLAGS.INLINE_DATA) {
      const data = this.inlineData(inode);
      const parent = data.length >= 4 ? data.readUInt32LE(0) : 0;
      out.push({ name: '.', nameBytes: Buffer.from('.'), ino, fileType: 2, block: 0, offset: 0, recLen: 0 });
      out.push({
        name: '..',
        nameBytes: Buffer.from('..'),
        ino: parent,
        fileType: 2,
        block: 0,
        offset: 0,
        recLen: 0,
      });
      const inI = Math.min(data.length, 60);
      if (inI > 4)
        decodeDirBlock(data.subarray(4, inI), inI - 4, 0, ino, this.hasFileType, bs, out, sb.inodesCount);
      if (data.length > 60)
        decodeDirBlock(
          data.subarray(60),
          data.length - 60,
          1,
          ino,
          this.hasFileType,
          bs,
          out,
          sb.inodesCount,
        );
      return out;
    }
    const size = bound(
      dirSize(inode, this.largedir),
      MAX_DIR_BYTES,
      `directory ${ino} size`,
      'EXT_BAD_INODE',
    );
    const nBlocks = Math.ceil(size / bs);
    const htree = (inode.flags & INODE_FLAGS.INDEX) !== 0;
    const seed = this._csumSeed;
    const verify = seed !== null && this.verifyChecksums;
    for (const e of this.mapFile(inode)) {
      if (e.unwritten) continue;
      for (let k = 0; k < e.length && e.logical + k < nBlocks; k++) {
        const lblk = e.logical + k;
        const pblk = e.physical + k;
        const data = this.cachedBlock(pblk);
        const dx = htree ? dxCountLimit(data, bs) : null;
        if (dx) {
          if (verify && !csum.verifyDxCsum(seed, ino, inode.generation, data, dx.countOffset)) {
            throw new UlfsError(
              'EXT_BAD_CHECKSUM',
              `directory inode ${ino}: htree ${dx.kind} block (logical ${lblk}, block ${pblk}) checksum mismatch`,
              { what: 'dx block', ino, block: pblk, logical: lblk },
            );
          }
          // The root holds "." and ".." (whose rec_len covers the index); a node holds no entries.
          if (dx.kind === 'root')
            decodeDirBlock(data, bs, lblk, ino, this.hasFileType, bs, out, sb.inodesCount);
          continue;
        }
        let end = bs;
        if (seed !== null) {
          if (hasDirTail(data, bs)) {
            end = bs - DIR_TAIL_SIZE;
            if (verify && !csum.verifyDirLeafCsum(seed, ino, inode.generation, data)) {
              throw new UlfsError(
                'EXT_BAD_CHECKSUM',
                `directory inode ${ino}: leaf block (logical ${lblk}, block ${pblk}) checksum mismatch`,
                { what: 'dir block', ino, block: pblk, logical: lblk },
              );
            }
          } else if (verify) {
            throw new UlfsError(
              'EXT_BAD_CHECKSUM',
              `directory inode ${ino}: leaf block (logical ${lblk}, block ${pblk}) has no checksum tail`,
              { what: 'dir block', ino, block: pblk, logical: lblk },
            );
          }
        }
        decodeDirBlock(data, end, lblk, ino, this.hasFileType, bs, out, sb.inodesCount);
      }
    }
    return out;
  }

  /** Finds `name` (exact bytes) in directory `dirIno`; 0 if absent. */
  private findEntry(dirIno: number, name: string): number {
    const want = Buffer.from(name, 'utf8');
    for (const e of this.readDir(dirIno)) if (e.nameBytes.equals(want)) return e.ino;
    return 0;
  }

  /**
   * Resolves an absolute (or root-relative) path to an inode number. Symlinks in the middle are
   * always followed, the last component only with follow (default true). Symlink targets resolve
   * inside this filesystem: absolute ones from its root; ".." at the root stays at the root.
   */
  lookup(path: string, opts: { follow?: boolean } = {}): number {
    const follow = opts.follow ?? true;
    const parts = (p: string): string[] => p.split('/').filter((c) => c !== '' && c !== '.');
    // Components still to resolve, next one last (so push/pop work at the front of the path).
    const todo = parts(path).reverse();
    const stack: number[] = [ROOT_INO]; // directories from the root to the current one
    let hops = 0;
    while (todo.length > 0) {
      const name = todo.pop()!;
      const cur = stack[stack.length - 1]!;
      if (name === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const curInode = this.readInode(cur);
      if (modeType(curInode.mode) !== 'dir') {
        throw new UlfsError(
          'EXT_NOT_A_DIRECTORY',
          `${path}: a component before "${name}" is not a directory`,
          {
            path,
          },
        );
      }
      const ino = this.findEntry(cur, name);
      if (ino === 0) throw new UlfsError('EXT_NOT_FOUND', `${path}: "${name}" not found`, { path, name });
      const inode = this.readInode(ino);
      const type = modeType(inode.mode);
      if (type === 'symlink' && (todo.length > 0 || follow)) {
        if (++hops > MAX_SYMLINK_HOPS) {
          throw new UlfsError('EXT_SYMLINK_LOOP', `${path}: more than ${MAX_SYMLINK_HOPS} symlinks`, {
            path,
          });
        }
        const target = this.readlinkInode(inode);
        if (target.startsWith('/')) stack.length = 1;
        for (const c of parts(target).reverse()) todo.push(c);
        continue;
      }
      stack.push(ino);
    }
    return stack[stack.length - 1]!;
  }

  readlink(ino: number): string {
    return this.readlinkInode(this.readInode(ino));
  }

  private readlinkInode(inode: Inode): string {
    if (modeType(inode.mode) !== 'symlink') {
      throw new UlfsError('EXT_NOT_A_FILE', `inode ${inode.ino} is not a symlink`, { ino: inode.ino });
    }
    const size = bound(inode.size, SYMLINK_MAX, `symlink inode ${inode.ino} size`, 'EXT_BAD_INODE');
    let bytes: Buffer;
    if (inode.flags & INODE_FLAGS.INLINE_DATA) bytes = this.inlineData(inode);
    else if (this.isFast(inode)) bytes = inode.block.subarray(0, size);
    else bytes = this.readData(inode, size);
    return bytes.subarray(0, size).toString('utf8');
  }

  // ---- file data ----

  /** Reads the first `len` bytes of an inode's data (len <= size), holes as zeros. */
  private readData(inode: Inode, len: number): Buffer {
    const chunks: Buffer[] = [];
    // One chunk of whole blocks covering len (a chunk size rounded down would split off the last block).
    const bs = this._sb.blockSize;
    for (const c of this.chunksOf(inode, Math.max(1, Math.ceil(len / bs)) * bs, len)) chunks.push(c);
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  private regularFile(ino: number): Inode {
    const inode = this.readInode(ino);
    const t = modeType(inode.mode);
    if (t === 'dir') throw new UlfsError('EXT_IS_A_DIRECTORY', `inode ${ino} is a directory`, { ino });
    if (t !== 'file' && t !== 'symlink') {
      throw new UlfsError('EXT_NOT_A_FILE', `inode ${ino} is not a regular file (${t})`, { ino });
    }
    // A size the mapping cannot address is corrupt (and would stream zeros for ever).
    const bs = this._sb.blockSize;
    const a = bs / 4;
    const maxBlocks = inode.flags & INODE_FLAGS.EXTENTS ? 2 ** 32 : 12 + a + a * a + a * a * a;
    if (inode.size > maxBlocks * bs) {
      throw new UlfsError(
        'EXT_BAD_INODE',
        `inode ${ino}: size ${hex(inode.size)} is beyond what its mapping can address`,
        {
          ino,
          size: inode.size,
        },
      );
    }
    return inode;
  }

  /** Whole contents of a (small) file; LIMIT_EXCEEDED past maxBytes. */
  readFile(ino: number, maxBytes = READ_FILE_MAX): Buffer {
    const inode = this.regularFile(ino);
    bound(inode.size, maxBytes, `file inode ${ino} size`);
    if (inode.flags & INODE_FLAGS.INLINE_DATA) return this.inlineData(inode);
    if (modeType(inode.mode) === 'symlink') return Buffer.from(this.readlinkInode(inode), 'utf8');
    return this.readData(inode, inode.size);
  }

  /**
   * File contents in chunks of about `chunkSize` bytes (rounded to blocks), holes as zeros. With a
   * pool whose buffers are exactly a chunk (chunkSize a multiple of the block size) the full chunks
   * are read into its buffers: hand each back when done. The last, shorter chunk, inline data and
   * symlink targets are fresh buffers (the pool ignores them when they come back).
   */
  *fileChunks(ino: number, chunkSize = CHUNK_SIZE, pool?: ChunkPool): Generator<Buffer> {
    const inode = this.regularFile(ino);
    if (inode.flags & INODE_FLAGS.INLINE_DATA) {
      yield this.inlineData(inode);
      return;
    }
    if (modeType(inode.mode) === 'symlink') {
      yield Buffer.from(this.readlinkInode(inode), 'utf8');
      return;
    }
    yield* this.chunksOf(inode, chunkSize, inode.size, pool);
  }

  private *chunksOf(inode: Inode, chunkSize: number, size: number, pool?: ChunkPool): Generator<Buffer> {
    const bs = this._sb.blockSize;
    const cb = Math.max(1, Math.floor(chunkSize / bs)); // blocks per chunk
    const nBlocks = Math.ceil(size / bs);
    const exts = this.mapFile(inode);
    let ei = 0;
    for (let l = 0; l < nBlocks; l += cb) {
      const n = Math.min(cb, nBlocks - l);
      while (ei < exts.length && exts[ei]!.logical + exts[ei]!.length <= l) ei++;
      // Which extents overlap [l, l+n)? Allocate uninitialised only when they cover it all.
      let covered = 0;
      let j = ei;
      for (; j < exts.length && exts[j]!.logical < l + n; j++) {
        const e = exts[j]!;
        if (!e.unwritten) covered += Math.min(l + n, e.logical + e.length) - Math.max(l, e.logical);
      }
      const buf = pool?.size === n * bs ? pool.get() : Buffer.allocUnsafe(n * bs);
      if (covered < n) buf.fill(0);
      for (let k = ei; k < j; k++) {
        const e = exts[k]!;
        if (e.unwritten) continue;
        const s = Math.max(l, e.logical);
        const t = Math.min(l + n, e.logical + e.length);
        this.dev.readInto(buf.subarray((s - l) * bs, (t - l) * bs), (e.physical + (s - e.logical)) * bs);
      }
      const bytes = Math.min(n * bs, size - l * bs);
      yield bytes < buf.length ? buf.subarray(0, bytes) : buf;
    }
  }

  /**
   * The file as a stream of Buffers, one per chunk. Object mode, so that a consumer iterating it gets
   * each chunk as read (a byte-mode Readable concatenates whatever it has buffered: one more copy).
   */
  createReadStream(ino: number, chunkSize = CHUNK_SIZE, pool?: ChunkPool): Readable {
    return Readable.from(this.fileChunks(ino, chunkSize, pool), { objectMode: true, highWaterMark: 2 });
  }

  // ---- trees ----

  /** Depth-first walk from `path` (followed if a symlink): the start itself, then everything below. */
  walk(path: string): Generator<WalkEntry> {
    const ino = this.lookup(path, { follow: true });
    return walkTree(this, path, ino);
  }

  /** walk() with the type of each entry but no inode read where the directory entry gives it. */
  walkTypes(path: string): Generator<TypedEntry> {
    const ino = this.lookup(path, { follow: true });
    return walkTypes(this, path, ino);
  }

  // ---- state ----

  journalState(): JournalState {
    const sb = this._sb;
    const needsRecovery = (sb.featureIncompat & INCOMPAT.RECOVER) !== 0;
    if (!(sb.featureCompat & COMPAT.HAS_JOURNAL))
      return { kind: 'none', needsRecovery, logEmpty: true, errno: 0 };
    if (sb.journalInum === 0) return { kind: 'external', needsRecovery, logEmpty: !needsRecovery, errno: 0 };
    const inode = this.readInode(sb.journalInum);
    const first = this.mapFile(inode).find((e) => e.logical === 0);
    if (!first || first.unwritten) {
      throw new UlfsError('EXT_BAD_JOURNAL', `journal inode ${sb.journalInum} has no block 0`, {
        ino: sb.journalInum,
      });
    }
    const jsb = decodeJournalSuperblock(this.cachedBlock(first.physical));
    return { kind: 'internal', needsRecovery, logEmpty: jsb.start === 0, errno: jsb.errno };
  }

  /** Feature names as dumpe2fs prints them. */
  usedFeatures(): string[] {
    return featureNames(this._sb.featureCompat, this._sb.featureIncompat, this._sb.featureRoCompat);
  }
}

export { JOURNAL_INO, ROOT_INO };
