/**
 * Depth-first directory walk over any reader that can list a directory and stat an inode.
 * Bounded: a depth limit, and every directory inode is entered at most once (directories cannot be
 * hard-linked, so a second visit means a cycle, e.g. an entry pointing back at an ancestor).
 */
import { UlfsError } from '../errors.js';
import type { DirEntry } from './dirent.js';
import type { Stat } from './inode.js';

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
  const visited = new Set<number>();
  const rootStat = src.stat(startIno);
  yield { path: startPath, ino: startIno, stat: rootStat };
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
    const st = src.stat(e.ino);
    yield { path, ino: e.ino, stat: st };
    if (st.type !== 'dir') continue;
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
