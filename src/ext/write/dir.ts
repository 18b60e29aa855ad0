/**
 * Directory entries for the writer: parse a directory's blocks once into a name index, remove
 * entries in place, and resolve paths (ext4-brief §6, §10.5).
 *
 * ext4_dir_entry_2: inode u32 @0, rec_len u16 @4, name_len u8 @6, file_type u8 @7, name @8 (without
 * the filetype feature name_len is u16). htree directories are read linearly: dx root/node blocks
 * hold no live entries ("." / ".." plus one fake empty entry covering the index), which is the design;
 * deleting an entry never changes the index (hash ranges stay valid).
 *
 * Removal (kernel ext4_generic_delete_entry since 5.14): the previous live entry in the same block
 * absorbs rec_len and the removed entry is wiped; an entry at offset 0 gets inode 0 and its
 * name_len..end zeroed. The 12-byte checksum tail is never touched; the leaf checksum is recomputed.
 */
import { le16, le32, setLe16, setLe32 } from '../../binary/bytes.js';
import { UlfsError, hex } from '../../errors.js';
import { hasDirTail } from '../checksums.js';
import {
  fileType,
  flags,
  FL_ENCRYPT,
  FL_INLINE_DATA,
  FL_CASEFOLD,
  hasBlockMap,
  I_BLOCK,
  inodeSize,
  isFastSymlink,
  mapInode,
  S_IFDIR,
  S_IFLNK,
} from './mapping.js';
import type { Volume } from './volume.js';

export interface DirSlot {
  /** Physical block holding the entry. */
  block: number;
  /** Byte offset of the entry in the block. */
  off: number;
  ino: number;
}

export interface DirIndex {
  ino: number;
  /** name (latin1, i.e. exact bytes) -> slot, without "." and "..". */
  entries: Map<string, DirSlot>;
  parent: number;
}

const MAX_SYMLINK_HOPS = 40;
const ASCII = /^[\x00-\x7f]*$/;
const MAX_PATH_COMPONENTS = 4096;

function recLenFromDisk(v: number, bs: number): number {
  return (v === 0 || v === 65535) && bs === 65536 ? 65536 : v;
}

function badDirent(dir: number, block: number, off: number, msg: string): UlfsError {
  return new UlfsError(
    'EXT_BAD_DIRENT',
    `directory ${dir}, block ${hex(block)}, offset ${hex(off)}: ${msg}`,
    {
      dir,
      block,
      off,
    },
  );
}

export interface RawEntry {
  off: number;
  ino: number;
  recLen: number;
  nameLen: number;
  name: string;
}

/** Every entry of one directory block (live and deleted), validated. */
export function parseDirBlock(
  block: Uint8Array,
  bs: number,
  filetype: boolean,
  dirIno: number,
  blockNr: number,
): RawEntry[] {
  const out: RawEntry[] = [];
  const b = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  let off = 0;
  // bounded: each step advances by rec_len >= 8
  while (off < bs) {
    if (off + 8 > bs) throw badDirent(dirIno, blockNr, off, 'entry header crosses the block end');
    const ino = le32(b, off);
    const recLen = recLenFromDisk(le16(b, off + 4), bs);
    const nameLen = filetype ? b[off + 6]! : le16(b, off + 6);
    if (recLen < 8 || recLen & 3 || off + recLen > bs)
      throw badDirent(dirIno, blockNr, off, `rec_len ${recLen} is invalid`);
    if (nameLen + 8 > recLen)
      throw badDirent(dirIno, blockNr, off, `name_len ${nameLen} overruns rec_len ${recLen}`);
    out.push({
      off,
      ino,
      recLen,
      nameLen,
      name: b.toString('latin1', off + 8, off + 8 + nameLen),
    });
    off += recLen;
  }
  return out;
}

/** Physical blocks of a directory, in logical order (holes skipped). */
export function dirBlocks(vol: Volume, ino: number, raw: Uint8Array): number[] {
  if (!hasBlockMap(raw, vol.bs, vol.geo.hugeFile)) return [];
  const { runs } = mapInode(vol, ino, raw);
  runs.sort((a, b) => a.logical - b.logical);
  const size = inodeSize(raw, (vol.geo.incompat & 0x4000) !== 0);
  const nBlocks = Math.ceil(size / vol.bs);
  const out: number[] = [];
  for (const r of runs) {
    if (r.unwritten) continue;
    for (let k = 0; k < r.length && r.logical + k < nBlocks; k++) out.push(r.physical + k);
  }
  return out;
}

/** Checks that an inode is a directory we can parse. */
export function checkDirInode(vol: Volume, ino: number): Uint8Array {
  const raw = vol.inode(ino);
  if (fileType(raw) !== S_IFDIR)
    throw new UlfsError('EXT_NOT_A_DIRECTORY', `inode ${ino} is not a directory`, { ino });
  const f = flags(raw);
  if (f & FL_INLINE_DATA)
    throw new UlfsError('EXT_INLINE_DATA', `directory inode ${ino} has inline data`, { ino });
  if (f & (FL_ENCRYPT | FL_CASEFOLD))
    throw new UlfsError('EXT_UNSUPPORTED', `directory inode ${ino} is encrypted or casefolded`, { ino });
  return raw;
}

export function loadDir(vol: Volume, ino: number): DirIndex {
  const raw = checkDirInode(vol, ino);
  const entries = new Map<string, DirSlot>();
  let parent = 0;
  for (const blk of dirBlocks(vol, ino, raw)) {
    const b = vol.block(blk, 'directory block');
    for (const e of parseDirBlock(b, vol.bs, vol.geo.hasFiletype, ino, blk)) {
      if (!e.ino) continue;
      if (e.name === '.') continue;
      if (e.name === '..') {
        parent = e.ino;
        continue;
      }
      entries.set(e.name, { block: blk, off: e.off, ino: e.ino });
    }
  }
  return { ino, entries, parent };
}

/** Removes `name` from directory `dir` in place; re-checksums the leaf. */
export function removeEntry(vol: Volume, dir: DirIndex, name: string): DirSlot {
  const slot = dir.entries.get(name);
  if (!slot)
    throw new UlfsError('EXT_NOT_FOUND', `no entry '${name}' in directory ${dir.ino}`, {
      dir: dir.ino,
      name,
    });
  const bs = vol.bs;
  const b = vol.block(slot.block, 'directory block');
  // find the previous entry in the same block
  let prev = -1;
  let off = 0;
  while (off < slot.off) {
    const rl = recLenFromDisk(le16(b, off + 4), bs);
    if (rl < 8) throw badDirent(dir.ino, slot.block, off, `rec_len ${rl} is invalid`);
    prev = off;
    off += rl;
  }
  if (off !== slot.off) throw badDirent(dir.ino, slot.block, slot.off, 'entry is not on the rec_len chain');
  const recLen = recLenFromDisk(le16(b, slot.off + 4), bs);
  if (prev >= 0) {
    const prevLen = recLenFromDisk(le16(b, prev + 4), bs);
    setLe16(b, prev + 4, (prevLen + recLen) & 0xffff);
    b.fill(0, slot.off, slot.off + recLen);
  } else {
    setLe32(b, slot.off, 0);
    b.fill(0, slot.off + 6, slot.off + recLen);
  }
  // the leaf checksum is recomputed once at flush, however many entries the batch removes
  if (vol.geo.metadataCsum && hasDirTail(b)) vol.dirtyDirLeaf(slot.block, dir.ino);
  vol.markDirty(slot.block, 'dir');
  dir.entries.delete(name);
  return slot;
}

/** Symlink target bytes (fast: in i_block; slow: first data block). */
export function readLink(vol: Volume, ino: number): string {
  const raw = vol.inode(ino);
  if (fileType(raw) !== S_IFLNK)
    throw new UlfsError('EXT_NOT_A_FILE', `inode ${ino} is not a symlink`, { ino });
  const size = inodeSize(raw);
  if (size > vol.bs) throw new UlfsError('EXT_BAD_INODE', `symlink ${ino} has size ${size}`, { ino });
  if (isFastSymlink(raw, vol.bs, vol.geo.hugeFile)) {
    if (size > 60) throw new UlfsError('EXT_BAD_INODE', `fast symlink ${ino} has size ${size}`, { ino });
    return Buffer.from(raw.subarray(I_BLOCK, I_BLOCK + size)).toString('latin1');
  }
  if (flags(raw) & FL_INLINE_DATA)
    throw new UlfsError('EXT_INLINE_DATA', `symlink ${ino} has inline data`, { ino });
  const { runs } = mapInode(vol, ino, raw);
  const first = runs.find((r) => r.logical === 0 && !r.unwritten);
  if (!first) return '';
  return vol.block(first.physical).subarray(0, size).toString('latin1');
}

/** Caches directory indexes and resolves paths like the kernel (symlinks in the middle followed). */
export class Namespace {
  readonly dirs = new Map<number, DirIndex>();
  /** For directories met during resolution: where their entry lives. */
  readonly parentOf = new Map<number, { parent: number; name: string }>();
  /** Directory path -> inode, for batches of paths in the same directories. */
  private readonly dirCache = new Map<string, number>();

  constructor(readonly vol: Volume) {}

  dir(ino: number): DirIndex {
    let d = this.dirs.get(ino);
    if (!d) {
      d = loadDir(this.vol, ino);
      this.dirs.set(ino, d);
    }
    return d;
  }

  /**
   * Resolves `path` (absolute within the fs; relative means from the root). Returns the final inode,
   * the directory holding its entry and the entry name. `followLast` follows a final symlink.
   */
  resolve(path: string, followLast = false): { ino: number; parent: number; name: string } {
    // batch fast path: the parent directory of many paths is the same; resolve it once
    const slash = path.lastIndexOf('/');
    const base = path.slice(slash + 1);
    if (slash > 0 && base !== '' && base !== '.' && base !== '..' && ASCII.test(base)) {
      const dirPath = path.slice(0, slash);
      let dirIno = this.dirCache.get(dirPath);
      if (dirIno === undefined) {
        dirIno = this.resolveSlow(dirPath, true).ino;
        this.dirCache.set(dirPath, dirIno);
      }
      const d = this.dirs.get(dirIno) ?? this.dir(dirIno);
      const slot = d.entries.get(base);
      if (slot && (!followLast || fileType(this.vol.inode(slot.ino)) !== S_IFLNK)) {
        if (!this.parentOf.has(slot.ino) && fileType(this.vol.inode(slot.ino)) === S_IFDIR) {
          this.parentOf.set(slot.ino, { parent: dirIno, name: base });
        }
        return { ino: slot.ino, parent: dirIno, name: base };
      }
    }
    return this.resolveSlow(path, followLast);
  }

  /** Forgets cached directory paths (after a directory is removed). */
  forgetPaths(): void {
    this.dirCache.clear();
  }

  private resolveSlow(path: string, followLast: boolean): { ino: number; parent: number; name: string } {
    let hops = 0;
    const stack = path.split('/').filter((c) => c !== '' && c !== '.');
    if (stack.length > MAX_PATH_COMPONENTS)
      throw new UlfsError('LIMIT_EXCEEDED', `path has too many components`, { path });
    let cur = 2;
    let parent = 2;
    let name = '/';
    const todo = stack.reverse();
    let steps = 0;
    while (todo.length) {
      if (++steps > 64 * MAX_PATH_COMPONENTS)
        throw new UlfsError('EXT_SYMLINK_LOOP', `path ${path} does not resolve`, { path });
      const comp = todo.pop()!;
      const d = this.dir(cur);
      if (comp === '..') {
        parent = cur;
        name = '..';
        cur = d.parent || 2;
        continue;
      }
      // names are stored as bytes; the index keys are those bytes as latin1 (ASCII is unchanged)
      const key = ASCII.test(comp) ? comp : Buffer.from(comp, 'utf8').toString('latin1');
      const slot = d.entries.get(key);
      if (!slot) throw new UlfsError('EXT_NOT_FOUND', `${path}: no such file or directory`, { path });
      const raw = this.vol.inode(slot.ino);
      const t = fileType(raw);
      if (t === S_IFLNK && (todo.length > 0 || followLast)) {
        if (++hops > MAX_SYMLINK_HOPS)
          throw new UlfsError('EXT_SYMLINK_LOOP', `too many symlinks in ${path}`, { path });
        const target = Buffer.from(readLink(this.vol, slot.ino), 'latin1').toString('utf8');
        const parts = target.split('/').filter((c) => c !== '' && c !== '.');
        for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]!);
        if (target.startsWith('/')) cur = 2;
        continue;
      }
      if (todo.length > 0 && t !== S_IFDIR)
        throw new UlfsError('EXT_NOT_A_DIRECTORY', `${path}: '${comp}' is not a directory`, { path });
      if (t === S_IFDIR && !this.parentOf.has(slot.ino))
        this.parentOf.set(slot.ino, { parent: cur, name: key });
      parent = cur;
      name = key;
      cur = slot.ino;
    }
    return { ino: cur, parent, name };
  }
}
