/**
 * Depth-first directory walk over any reader that can list a directory and stat an inode.
 * Bounded: a depth limit, and every directory inode is entered at most once (directories cannot be
 * hard-linked, so a second visit means a cycle, e.g. an entry pointing back at an ancestor).
 */
import { UlfsError } from '../errors.js';
import { FT, type DirEntry } from './dirent.js';
import type { FileType, Stat } from './inode.js';

export const MAX_WALK_DEPTH = 512;

export interface WalkSource {
  readDir(ino: number): DirEntry[];
  stat(ino: number): Stat;
}

export interface WalkEntry {
  path: string;
  ino: number;
  stat: Stat;
}

const join = (dir: string, name: string): string => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);

/** Yields `start` itself, then everything below it, pre-order, in on-disk directory order. */
export function* walkTree(src: WalkSource, startPath: string, startIno: number): Generator<WalkEntry> {
  for (const e of walkCore(src, startPath, startIno, true)) yield { path: e.path, ino: e.ino, stat: e.stat! };
}

export interface TypedEntry {
  path: string;
  ino: number;
  type: FileType;
}

/** Directory entry file types (ext4's filetype feature) that are not directories. */
const TYPE_OF_FT: Partial<Record<number, FileType>> = {
  [FT.REG]: 'file',
  [FT.SYMLINK]: 'symlink',
  [FT.CHRDEV]: 'chr',
  [FT.BLKDEV]: 'blk',
  [FT.FIFO]: 'fifo',
  [FT.SOCK]: 'sock',
};

/**
 * walkTree with types only: the inode of an entry is read only when its directory entry does not
 * say it is something other than a directory (no filetype feature, or a directory, which must be
 * read to be listed). A module tree of 4,000 files is listed from its directory blocks alone.
 */
export function* walkTypes(src: WalkSource, startPath: string, startIno: number): Generator<TypedEntry> {
  for (const e of walkCore(src, startPath, startIno, false)) yield { path: e.path, ino: e.ino, type: e.type };
}

function* walkCore(
  src: WalkSource,
  startPath: string,
  startIno: number,
  statAll: boolean,
): Generator<{ path: string; ino: number; type: FileType; stat: Stat | undefined }> {
  const visited = new Set<number>();
  const rootStat = src.stat(startIno);
  yield { path: startPath, ino: startIno, type: rootStat.type, stat: rootStat };
  if (rootStat.type !== 'dir') return;
  visited.add(startIno);
  // Stack of directories being listed; each frame keeps its entries and a cursor.
  const stack: { path: string; entries: DirEntry[]; i: number }[] = [
    { path: startPath, entries: src.readDir(startIno), i: 0 },
  ];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.entries.length) {
      stack.pop();
      continue;
    }
    const e = top.entries[top.i++]!;
    if (e.name === '.' || e.name === '..') continue;
    const path = join(top.path, e.name);
    const known = statAll ? undefined : TYPE_OF_FT[e.fileType];
    const st = known ? undefined : src.stat(e.ino);
    const type = known ?? st!.type;
    yield { path, ino: e.ino, type, stat: st };
    if (type !== 'dir') continue;
    if (visited.has(e.ino)) {
      throw new UlfsError(
        'EXT_DIR_LOOP',
        `directory inode ${e.ino} is reached twice (at ${path}): a directory cycle`,
        {
          ino: e.ino,
          path,
        },
      );
    }
    if (stack.length >= MAX_WALK_DEPTH) {
      throw new UlfsError('EXT_DIR_LOOP', `directory tree deeper than ${MAX_WALK_DEPTH} levels at ${path}`, {
        path,
      });
    }
    visited.add(e.ino);
    stack.push({ path, entries: src.readDir(e.ino), i: 0 });
  }
}
