/**
 * unlink, rmdir, rm -r and the batch "remove these paths, then every directory they leave empty"
 * (ext4-brief §10.3–§10.6), done in memory on a Volume and flushed once: one pass of bitmap,
 * descriptor and superblock writes for the whole batch.
 *
 * Freeing an inode: blocks (data, extent-tree or indirect) freed, the xattr block released by
 * refcount, the inode bit cleared, and the whole inode record wiped to zeros. (The kernel's
 * ext4_evict_inode instead leaves the old record with links 0 and a dtime; an all-zero record is what
 * mke2fs leaves in an unused slot, and what a pruned image should carry: nothing of the removed files.)
 */
import { le32, setLe16, setLe32 } from '../../binary/bytes.js';
import { UlfsError, hex } from '../../errors.js';
import { setXattrBlockCsum } from '../checksums.js';
import { Namespace, removeEntry, type DirIndex } from './dir.js';
import {
  fileAcl,
  fileType,
  flags,
  FL_APPEND,
  FL_ENCRYPT,
  FL_IMMUTABLE,
  FL_INLINE_DATA,
  hasBlockMap,
  I_CTIME,
  I_LINKS_COUNT,
  I_MTIME,
  inodeSize,
  links,
  mapInode,
  S_IFDIR,
} from './mapping.js';
import type { Volume } from './volume.js';

export const XATTR_MAGIC = 0xea020000;
const XATTR_REFCOUNT = 0x4;
const ROOT_INO = 2;
const MAX_TREE_DEPTH = 4096;
const LOST_FOUND = 'lost+found';

export interface RemoveReport {
  removedFiles: number;
  removedDirs: number;
  /** Inodes actually freed (hard links to survivors are not). */
  inodesFreed: number;
  blocksFreed: number;
  bytesFreed: number;
  /** Sum of the sizes (i_size) of the non-directories unlinked. */
  bytesRemoved: number;
}

export interface RemoveOptions {
  /** Remove directories and everything below them (rm -r). */
  recursive?: boolean;
  /** After the removals, remove every directory they left empty, walking upwards. */
  pruneEmptyDirs?: boolean;
  /** Paths that are already gone are skipped instead of failing (batch use). */
  missingOk?: boolean;
  /** Seconds since the epoch for the ctime/mtime of the directories that change (default: now). */
  now?: number;
}

/** The batch remover: holds the namespace cache and the counters; call flush via the Volume. */
export class Remover {
  readonly ns: Namespace;
  readonly report: RemoveReport = {
    removedFiles: 0,
    removedDirs: 0,
    inodesFreed: 0,
    blocksFreed: 0,
    bytesFreed: 0,
    bytesRemoved: 0,
  };
  readonly now: number;
  /** Directories an entry was removed from (candidates for pruning). */
  readonly touched = new Set<number>();

  constructor(
    readonly vol: Volume,
    now?: number,
  ) {
    this.ns = new Namespace(vol);
    this.now = (now ?? Math.floor(Date.now() / 1000)) >>> 0;
  }

  private protectedCheck(ino: number, path: string): void {
    const geo = this.vol.geo;
    if (ino < geo.firstIno)
      throw new UlfsError('EXT_INODE_PROTECTED', `${path}: inode ${ino} is reserved`, { ino, path });
    if (geo.lpfIno && ino === geo.lpfIno)
      throw new UlfsError('EXT_INODE_PROTECTED', `${path}: lost+found is kept`, { ino, path });
    const f = flags(this.vol.inode(ino));
    if (f & (FL_IMMUTABLE | FL_APPEND))
      throw new UlfsError('EXT_INODE_PROTECTED', `${path}: inode ${ino} is immutable or append-only`, {
        ino,
        path,
      });
    if (f & FL_INLINE_DATA)
      throw new UlfsError('EXT_INLINE_DATA', `${path}: inode ${ino} has inline data`, { ino, path });
    if (f & FL_ENCRYPT)
      throw new UlfsError('EXT_UNSUPPORTED', `${path}: inode ${ino} is encrypted`, { ino, path });
  }

  private touchDir(dirIno: number): void {
    const raw = this.vol.inode(dirIno);
    setLe32(raw, I_MTIME, this.now);
    setLe32(raw, I_CTIME, this.now);
    this.vol.writeInode(dirIno);
    this.touched.add(dirIno);
  }

  /** Releases an inode's blocks, xattr block, and the inode itself (links must already be 0). */
  freeInodeAndBlocks(ino: number): void {
    const vol = this.vol;
    const raw = vol.inode(ino);
    const isDir = fileType(raw) === S_IFDIR;
    let freed = 0;
    if (hasBlockMap(raw, vol.bs, vol.geo.hugeFile)) {
      const map = mapInode(vol, ino, raw);
      for (const r of map.runs) vol.freeRun(r.physical, r.length);
      for (const b of map.treeBlocks) vol.freeBlock(b);
      freed += map.runs.reduce((s, r) => s + r.length, 0) + map.treeBlocks.length;
    }
    const acl = fileAcl(raw);
    if (acl) freed += this.releaseXattrBlock(ino, acl);
    // Wiped to zeros, the state mke2fs leaves an unused inode in: no name, size, times or block
    // pointers of the removed file stay behind, and the inode table compresses like a fresh one.
    // e2fsck takes an all-zero record as valid without a checksum; flush leaves it all zero.
    raw.fill(0);
    vol.writeInode(ino);
    vol.freeInode(ino, isDir);
    this.report.inodesFreed++;
    this.report.blocksFreed += freed;
    this.report.bytesFreed += freed * vol.bs;
  }

  /** Drops one reference to an xattr block; frees it at refcount 1. Returns blocks freed. */
  private releaseXattrBlock(ino: number, acl: number): number {
    const vol = this.vol;
    vol.checkBlock(acl, `inode ${ino} xattr block`);
    const b = vol.block(acl, 'xattr block');
    if (le32(b, 0) !== XATTR_MAGIC) {
      throw new UlfsError(
        'EXT_BAD_XATTR',
        `inode ${ino}: xattr block ${hex(acl)} has magic ${hex(le32(b, 0))}`,
        { ino, block: acl },
      );
    }
    const ref = le32(b, XATTR_REFCOUNT);
    if (ref > 1) {
      setLe32(b, XATTR_REFCOUNT, ref - 1);
      if (this.vol.geo.metadataCsum) setXattrBlockCsum(vol.geo.seed, acl, b);
      vol.markDirty(acl, 'tree');
      return 0;
    }
    vol.freeBlock(acl);
    return 1;
  }

  /** unlink of a non-directory entry. */
  unlink(dir: DirIndex, name: string, path: string): void {
    const slot = dir.entries.get(name);
    if (!slot) throw new UlfsError('EXT_NOT_FOUND', `${path}: no such file`, { path });
    this.protectedCheck(slot.ino, path);
    const raw = this.vol.inode(slot.ino);
    if (fileType(raw) === S_IFDIR)
      throw new UlfsError('EXT_IS_A_DIRECTORY', `${path} is a directory`, { path });
    removeEntry(this.vol, dir, name);
    this.touchDir(dir.ino);
    this.report.bytesRemoved += inodeSize(raw);
    const n = links(raw);
    if (n > 1) {
      setLe16(raw, I_LINKS_COUNT, n - 1);
      setLe32(raw, I_CTIME, this.now);
      this.vol.writeInode(slot.ino);
    } else {
      this.freeInodeAndBlocks(slot.ino);
    }
    this.report.removedFiles++;
  }

  /** rmdir of an empty directory. */
  rmdir(dir: DirIndex, name: string, path: string): void {
    const slot = dir.entries.get(name);
    if (!slot) throw new UlfsError('EXT_NOT_FOUND', `${path}: no such directory`, { path });
    if (slot.ino === ROOT_INO)
      throw new UlfsError('EXT_INODE_PROTECTED', `${path}: the root directory cannot be removed`, { path });
    this.protectedCheck(slot.ino, path);
    const victim = this.ns.dir(slot.ino);
    if (victim.entries.size > 0) {
      throw new UlfsError(
        'EXT_DIR_NOT_EMPTY',
        `${path}: directory not empty (${victim.entries.size} entries)`,
        { path },
      );
    }
    removeEntry(this.vol, dir, name);
    this.touchDir(dir.ino);
    // parent link count: the kernel drops it only when > 2 (dir_nlink keeps 1)
    const praw = this.vol.inode(dir.ino);
    const pl = links(praw);
    if (pl > 2) {
      setLe16(praw, I_LINKS_COUNT, pl - 1);
      this.vol.writeInode(dir.ino);
    }
    const raw = this.vol.inode(slot.ino);
    setLe16(raw, I_LINKS_COUNT, 0);
    this.freeInodeAndBlocks(slot.ino);
    this.ns.dirs.delete(slot.ino);
    this.ns.forgetPaths();
    this.touched.delete(slot.ino);
    this.report.removedDirs++;
  }

  /** rm -r: everything below, depth first, then the directory. */
  removeTree(dir: DirIndex, name: string, path: string, depth = 0): void {
    if (depth > MAX_TREE_DEPTH)
      throw new UlfsError('EXT_DIR_LOOP', `${path}: directory tree deeper than ${MAX_TREE_DEPTH}`, { path });
    const slot = dir.entries.get(name);
    if (!slot) throw new UlfsError('EXT_NOT_FOUND', `${path}: no such file or directory`, { path });
    if (fileType(this.vol.inode(slot.ino)) !== S_IFDIR) {
      this.unlink(dir, name, path);
      return;
    }
    this.protectedCheck(slot.ino, path);
    const child = this.ns.dir(slot.ino);
    for (const childName of [...child.entries.keys()]) {
      this.removeTree(
        child,
        childName,
        `${path}/${Buffer.from(childName, 'latin1').toString('utf8')}`,
        depth + 1,
      );
    }
    this.rmdir(dir, name, path);
  }

  /** Removes one path (file, symlink, special; directories with recursive or when empty). */
  removePath(path: string, opts: RemoveOptions): boolean {
    let r;
    try {
      r = this.ns.resolve(path, false);
    } catch (e) {
      if (opts.missingOk && e instanceof UlfsError && e.code === 'EXT_NOT_FOUND') return false;
      throw e;
    }
    if (r.ino === ROOT_INO || r.name === '..')
      throw new UlfsError('EXT_INODE_PROTECTED', `${path}: refusing to remove the root or '..'`, { path });
    if (r.parent === ROOT_INO && r.name === LOST_FOUND) {
      throw new UlfsError('EXT_INODE_PROTECTED', `${path}: lost+found is kept`, { path });
    }
    const dir = this.ns.dir(r.parent);
    const isDir = fileType(this.vol.inode(r.ino)) === S_IFDIR;
    if (!isDir) this.unlink(dir, r.name, path);
    else if (opts.recursive) this.removeTree(dir, r.name, path);
    else this.rmdir(dir, r.name, path);
    return true;
  }

  /** Removes every touched directory left empty, then their parents when they become empty. */
  pruneEmpty(): void {
    const depthMemo = new Map<number, number>([[ROOT_INO, 0]]);
    const depthOf = (ino: number): number => {
      const chain: number[] = [];
      let cur = ino;
      let d = -1;
      // bounded walk up the recorded parents
      for (let i = 0; i < MAX_TREE_DEPTH; i++) {
        const m = depthMemo.get(cur);
        if (m !== undefined) {
          d = m;
          break;
        }
        const p = this.ns.parentOf.get(cur);
        if (!p) break;
        chain.push(cur);
        cur = p.parent;
      }
      if (d < 0) return -1;
      for (let i = chain.length - 1; i >= 0; i--) depthMemo.set(chain[i]!, ++d);
      return depthMemo.get(ino)!;
    };
    const buckets: number[][] = [];
    const enqueue = (ino: number): void => {
      const d = depthOf(ino);
      if (d <= 0) return;
      (buckets[d] ??= []).push(ino);
    };
    for (const ino of this.touched) enqueue(ino);
    this.touched.clear();
    for (let d = buckets.length - 1; d >= 1; d--) {
      const list = buckets[d] ?? [];
      const seen = new Set<number>();
      for (const best of list) {
        if (seen.has(best)) continue;
        seen.add(best);
        if (best < this.vol.geo.firstIno || best === this.vol.geo.lpfIno) continue;
        const idx = this.ns.dir(best);
        if (idx.entries.size > 0) continue;
        const p = this.ns.parentOf.get(best)!;
        if (p.parent === ROOT_INO && p.name === LOST_FOUND) continue;
        const parent = this.ns.dir(p.parent);
        if (parent.entries.get(p.name)?.ino !== best) continue;
        const f = flags(this.vol.inode(best));
        if (f & (FL_IMMUTABLE | FL_APPEND)) continue;
        this.rmdir(parent, p.name, `<dir ${best}>`);
        this.touched.delete(p.parent);
        enqueue(p.parent);
      }
    }
    this.touched.clear();
  }
}
