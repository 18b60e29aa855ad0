/**
 * Reading a kernel's module tree out of an ext filesystem into the plain shape the module planner
 * takes (relative paths of every *.ko* file, and the index files' bytes).
 */
import type { ExtFs } from '../ext/fs.js';
import type { ModuleTree } from '../modules/plan.js';
import { MODULE_FILE_RE } from './discover.js';
import { UlfsError } from '../errors.js';

/** Index files we read (and the planner may rewrite). Anything named modules.* in the version dir. */
const INDEX_RE = /^modules\.[A-Za-z0-9_.]+$/;
/** modules.alias of a full Debian kernel is ~1.5 MB; 64 MiB is far beyond any real index. */
export const INDEX_MAX_BYTES = 64 << 20;

export interface ImageModuleTree extends ModuleTree {
  /** Absolute path of the version directory inside the fs, e.g. /lib/modules/6.1.0-13-amd64 */
  dir: string;
  /** Inode of every module file and index file, by relative path. */
  inodes: Map<string, number>;
  /** Bytes of a module file (read from its inode when asked: the listing reads no file inode). */
  sizeOf(rel: string): number;
}

export function readModuleTree(fs: ExtFs, modulesDir: string, version: string): ImageModuleTree {
  const dir = `${modulesDir}/${version}`;
  const files: string[] = [];
  const indexes: Record<string, Buffer> = {};
  const inodes = new Map<string, number>();
  // Types from the directory entries: listing 4,000 module files reads no inode of theirs.
  for (const e of fs.walkTypes(dir)) {
    if (e.path === dir || e.type !== 'file') continue;
    const rel = e.path.slice(dir.length + 1);
    if (MODULE_FILE_RE.test(rel)) {
      files.push(rel);
      inodes.set(rel, e.ino);
    } else if (!rel.includes('/') && INDEX_RE.test(rel)) {
      const size = fs.stat(e.ino).size;
      if (size > INDEX_MAX_BYTES) {
        throw new UlfsError('LIMIT_EXCEEDED', `${e.path} is ${size} bytes, too large for a module index`, {
          path: e.path,
        });
      }
      indexes[rel] = fs.readFile(e.ino, INDEX_MAX_BYTES);
      inodes.set(rel, e.ino);
    }
  }
  files.sort();
  const sizeOf = (rel: string): number => {
    const ino = inodes.get(rel);
    return ino === undefined ? 0 : fs.stat(ino).size;
  };
  return { version, files, indexes, dir, inodes, sizeOf };
}

/** The trie write order of an existing kmod .bin file: pre-order puts the root right after the header. */
export function binWriteOrder(indexes: Record<string, Buffer>): 'pre' | 'post' {
  const bin = indexes['modules.dep.bin'] ?? indexes['modules.alias.bin'] ?? indexes['modules.symbols.bin'];
  if (!bin || bin.length < 12) return 'post';
  return (bin.readUInt32BE(8) & 0x0fffffff) === 12 ? 'pre' : 'post';
}
