/**
 * Peak RSS of filterInitramfs on a large synthetic archive (default 500 MB of cpio, generated on the
 * fly, never held in memory): the goal is a flat ~100 MB whatever the archive size.
 *
 *   npx tsx bench/initramfs-rss.ts [MB] [none|gzip|zstd|xz|lz4] [LEVEL]
 * LEVEL is the level the filtered archive is written at, in its input's format (default quick: gzip
 * 1, zstd 3, xz 0, lz4 1; prune writes gzip at 7 by default, the #4 benchmark 9).
 * For figures without tsx's own memory, bundle first:
 *   npx esbuild bench/initramfs-rss.ts --bundle --platform=node --format=esm --outfile=/tmp/rss.mjs \
 *     --external:zstd-napi --external:lzma-native && node /tmp/rss.mjs 500 gzip 9
 * A compressed archive is written to a temporary file first (gzip by node:zlib at level 1, the
 * others by the native tools: `zstd -1`, `xz -0 --check=crc32`, `lz4 -l -1`) and filtered from there
 * by a fresh child process, so that the figure is the filter's alone (not the generator's).
 */
import { spawn, spawnSync } from 'node:child_process';
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
type Format = 'none' | 'gzip' | 'zstd' | 'xz' | 'lz4';
const comp = (process.argv[3] ?? 'none') as Format;
const QUICK_LEVEL: Record<Format, number> = { none: 0, gzip: 1, zstd: 3, xz: 0, lz4: 1 };
if (!(comp in QUICK_LEVEL)) throw new Error(`unknown format ${comp}`);
// 'default': no level, as prune writes it (gzip then copies the input's own blocks where it can).
const level = process.argv[4] === 'default' ? undefined : Number(process.argv[4] ?? QUICK_LEVEL[comp]);
/** The native compressor that writes the input file, reading the archive on stdin. */
const NATIVE: Partial<Record<Format, string[]>> = {
  zstd: ['zstd', '-1', '-q', '-c'],
  xz: ['xz', '-0', '--check=crc32', '-c'],
  lz4: ['lz4', '-l', '-1', '-q', '-c'],
};

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
  // File data: 64 KiB pieces drawn from a 4 MiB pool of random 4-bit bytes. Like module code it
  // compresses about 2:1, and no piece repeats within a compressor's window (a single repeated
  // block would compress 100:1 and trip the decompression-bomb cap).
  const pool = Buffer.alloc(4 << 20);
  let x = 2463534242;
  for (let i = 0; i < pool.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pool[i] = (x >>> 8) & 0x0f;
  }
  const PIECES = pool.length >> 16;
  let pick = 0;
  for (let d = 0; written < target; d++) {
    const dir = `lib/modules/kernel/d${d}`;
    yield header(dir, S_IFDIR | 0o755, 0, ino++);
    for (let f = 0; f < 50 && written < target; f++) {
      const size = 20_000 + ((f * 7919) % 400_000);
      const name = `${dir}/m${f}.ko`;
      yield header(name, S_IFREG | 0o644, size, ino++);
      for (let at = 0; at < size; at += 64 << 10) {
        const piece = ((pick++ * 37) % PIECES) << 16; // 37 is prime to PIECES: every piece in turn
        yield pool.subarray(piece, piece + Math.min(64 << 10, size - at));
      }
      const pad = pad4(size) - size;
      if (pad) yield Buffer.alloc(pad);
      written += size + 120;
    }
  }
  yield header('TRAILER!!!', 0, 0, 0);
}

/** Writes the archive, compressed in `comp`, to `file`. */
async function writeCompressed(file: string): Promise<void> {
  const native = NATIVE[comp];
  if (!native) {
    await pipeline(Readable.from(archive()), zlib.createGzip({ level: 1 }), fs.createWriteStream(file));
    return;
  }
  const child = spawn(native[0]!, native.slice(1), {
    stdio: ['pipe', fs.openSync(file, 'w'), 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  await pipeline(Readable.from(archive()), child.stdin!);
  const status = await exited;
  if (status !== 0) throw new Error(`${native.join(' ')} exited with ${status}`);
}

const fromFile = process.argv[5]; // internal: the child that filters a prepared compressed file
if (comp !== 'none' && !fromFile) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-rss-'));
  try {
    const file = path.join(dir, `archive.cpio.${comp}`);
    await writeCompressed(file);
    const r = spawnSync(
      process.execPath,
      [
        ...process.execArgv,
        fileURLToPath(import.meta.url),
        String(totalMb),
        comp,
        String(level ?? 'default'),
        file,
      ],
      { stdio: 'inherit' },
    );
    process.exitCode = r.status ?? 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit();
}
const source = fromFile
  ? fs.createReadStream(fromFile, { highWaterMark: 256 << 10 })
  : Readable.from(archive());
const t = performance.now();
// Drop every module of two directories in three (those directories become empty and go too).
const { output, done } = filterInitramfs(source, {
  decide: (e) => (/\/d\d*[12]\/|\/d\d*[45]\//.test(e.name) && e.name.endsWith('.ko') ? 'drop' : 'keep'),
  compression: 'keep',
  ...(comp === 'none' || level === undefined ? {} : { level }),
});
let out = 0;
for await (const c of output) out += (c as Buffer).length;
const rep = await done;
console.log(
  JSON.stringify({
    archiveMB: totalMb,
    compression: comp,
    level: comp === 'none' ? undefined : level,
    bytesIn: rep.bytesIn,
    bytesOut: out,
    removed: rep.removed.length,
    removedDirs: rep.removedDirs.length,
    seconds: +((performance.now() - t) / 1000).toFixed(1),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
