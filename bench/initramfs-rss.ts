/**
 * Peak RSS of filterInitramfs on a large synthetic archive (default 500 MB of cpio, generated on the
 * fly, never held in memory): the goal is a flat ~100 MB whatever the archive size.
 *
 *   npx tsx bench/initramfs-rss.ts [MB] [none|gzip] [LEVEL]
 * LEVEL is the gzip level written (default 1, quick; prune writes 7 by default, the #4 benchmark 9).
 * For figures without tsx's own memory, bundle first:
 *   npx esbuild bench/initramfs-rss.ts --bundle --platform=node --format=esm --outfile=/tmp/rss.mjs \
 *     --external:zstd-napi --external:lzma-native --external:lz4-napi && node /tmp/rss.mjs 500 gzip 9
 * With gzip, the compressed archive is written to a temporary file first and filtered from there by
 * a fresh child process, so that the figure is the filter's alone (not the generator's compressor).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import {
  S_IFDIR,
  S_IFREG,
  encodeCpioHeader,
  filterInitramfs,
  pad4,
  type CpioHeader,
} from '../src/initramfs/index.js';

const totalMb = Number(process.argv[2] ?? 500);
const comp = (process.argv[3] ?? 'none') as 'none' | 'gzip';
const level = Number(process.argv[4] ?? 1);

function header(name: string, mode: number, size: number, ino: number): Buffer {
  const h: CpioHeader = {
    format: 'newc',
    ino,
    mode,
    uid: 0,
    gid: 0,
    nlink: 1,
    mtime: 0,
    fileSize: size,
    devMajor: 0,
    devMinor: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    nameSize: 0,
    check: 0,
    lowerCase: false,
  };
  return encodeCpioHeader(h, Buffer.from(name));
}

async function* archive(): AsyncGenerator<Buffer> {
  const target = totalMb * 1e6;
  let written = 0;
  let ino = 1;
  const block = Buffer.alloc(64 << 10); // small chunks: the generator itself should not weigh on RSS
  for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
  for (let d = 0; written < target; d++) {
    const dir = `lib/modules/kernel/d${d}`;
    yield header(dir, S_IFDIR | 0o755, 0, ino++);
    for (let f = 0; f < 50 && written < target; f++) {
      const size = 20_000 + ((f * 7919) % 400_000);
      const name = `${dir}/m${f}.ko`;
      yield header(name, S_IFREG | 0o644, size, ino++);
      for (let at = 0; at < size; at += block.length)
        yield block.subarray(0, Math.min(block.length, size - at));
      const pad = pad4(size) - size;
      if (pad) yield Buffer.alloc(pad);
      written += size + 120;
    }
  }
  yield header('TRAILER!!!', 0, 0, 0);
}

const fromFile = process.argv[5]; // internal: the child that filters a prepared gzip file
if (comp === 'gzip' && !fromFile) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-rss-'));
  try {
    const file = path.join(dir, 'archive.cpio.gz');
    await pipeline(Readable.from(archive()), zlib.createGzip({ level: 1 }), fs.createWriteStream(file));
    const r = spawnSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), String(totalMb), comp, String(level), file],
      { stdio: 'inherit' },
    );
    process.exitCode = r.status ?? 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
if (comp === 'gzip' && !fromFile) process.exit();
const source = fromFile
  ? fs.createReadStream(fromFile, { highWaterMark: 256 << 10 })
  : Readable.from(archive());
const t = performance.now();
// Drop every module of two directories in three (those directories become empty and go too).
const { output, done } = filterInitramfs(source, {
  decide: (e) => (/\/d\d*[12]\/|\/d\d*[45]\//.test(e.name) && e.name.endsWith('.ko') ? 'drop' : 'keep'),
  compression: comp === 'gzip' ? 'gzip' : 'keep',
  level,
});
let out = 0;
for await (const c of output) out += (c as Buffer).length;
const rep = await done;
console.log(
  JSON.stringify({
    archiveMB: totalMb,
    compression: comp,
    level: comp === 'gzip' ? level : undefined,
    bytesIn: rep.bytesIn,
    bytesOut: out,
    removed: rep.removed.length,
    removedDirs: rep.removedDirs.length,
    seconds: +((performance.now() - t) / 1000).toFixed(1),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
