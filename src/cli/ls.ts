/** `ulfs-offline ls IMAGE PATH [--part N] [-l] [-R] [--json]` and `ulfs-offline cat IMAGE PATH [--part N]`. */
import { pipeline } from 'node:stream/promises';
import type { Register } from './program.js';
import { parsePartNumber, printJson } from './io.js';
import { openImage } from '../image/partitions.js';
import { discover, pickFilesystem } from '../prune/discover.js';
import type { ExtFs, Stat } from '../ext/fs.js';
import { UlfsError } from '../errors.js';
import { basename, modeString } from './format.js';

interface Row extends Stat {
  path: string;
  name: string;
  target?: string;
}

function row(fs: ExtFs, path: string, name: string, ino: number): Row {
  const st = fs.stat(ino);
  const r: Row = { ...st, path, name };
  if (st.type === 'symlink') r.target = fs.readlink(ino);
  return r;
}

function listDir(fs: ExtFs, dirPath: string, recursive: boolean): Row[] {
  const rows: Row[] = [];
  if (recursive) {
    for (const e of fs.walk(dirPath)) {
      if (e.path === dirPath) continue;
      rows.push(row(fs, e.path, basename(e.path), e.ino));
    }
    return rows;
  }
  const ino = fs.lookup(dirPath);
  for (const e of fs.readDir(ino)) {
    if (e.name === '.' || e.name === '..') continue;
    rows.push(row(fs, dirPath.endsWith('/') ? dirPath + e.name : `${dirPath}/${e.name}`, e.name, e.ino));
  }
  return rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function normalize(path: string): string {
  if (!path.startsWith('/'))
    throw new UlfsError('USAGE', `paths are absolute inside the filesystem: ${path}`);
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

export const registerLs: Register = (program, io) => {
  program
    .command('ls')
    .description('list a directory inside the image (default: the root filesystem)')
    .argument('<image>', 'disk image file')
    .argument('[path]', 'absolute path inside the filesystem', '/')
    .option('--part <n>', 'partition number', parsePartNumber)
    .option('-l, --long', 'long format: mode, links, owner, size, time')
    .option('-R, --recursive', 'list subdirectories too')
    .option('--json', 'machine-readable output')
    .action(
      (
        image: string,
        path: string,
        opts: { part?: number; long?: boolean; recursive?: boolean; json?: boolean },
      ) => {
        const img = openImage(image, 'r');
        try {
          const d = discover(img.dev, basename(image), { countModules: false });
          const fs = pickFilesystem(d, opts.part).ext!;
          const p = normalize(path);
          const ino = fs.lookup(p);
          const st = fs.stat(ino);
          const rows =
            st.type === 'dir' ? listDir(fs, p, Boolean(opts.recursive)) : [row(fs, p, basename(p), ino)];
          if (opts.json) return printJson(io, rows);
          const lines = rows.map((r) => {
            const name = opts.recursive ? r.path : r.name;
            const tail = r.target !== undefined ? ` -> ${r.target}` : '';
            if (!opts.long) return name + (opts.recursive ? '' : tail);
            const time = new Date(r.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
            return `${modeString(r.mode)} ${String(r.links).padStart(3)} ${String(r.uid).padStart(5)} ${String(r.gid).padStart(5)} ${String(r.size).padStart(10)} ${time} ${name}${tail}`;
          });
          if (lines.length) io.stdout.write(lines.join('\n') + '\n');
        } finally {
          img.close();
        }
      },
    );

  program
    .command('cat')
    .description('write a file from inside the image to stdout (streamed)')
    .argument('<image>', 'disk image file')
    .argument('<path>', 'absolute path inside the filesystem')
    .option('--part <n>', 'partition number', parsePartNumber)
    .action(async (image: string, path: string, opts: { part?: number }) => {
      const img = openImage(image, 'r');
      try {
        const d = discover(img.dev, basename(image), { countModules: false });
        const fs = pickFilesystem(d, opts.part).ext!;
        const ino = fs.lookup(normalize(path));
        const st = fs.stat(ino);
        if (st.type === 'dir') throw new UlfsError('EXT_IS_A_DIRECTORY', `${path} is a directory`);
        if (st.type !== 'file')
          throw new UlfsError('EXT_NOT_A_FILE', `${path} is a ${st.type}, not a regular file`);
        await pipeline(fs.createReadStream(ino), io.stdout, { end: false });
      } finally {
        img.close();
      }
    });
};
