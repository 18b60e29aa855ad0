/**
 * Decode / encode speed of each codec as the filter uses it (streams, 1 MiB input chunks), on the
 * decompressed cpio of a real initramfs, in MB/s of uncompressed data, next to the native tools.
 *
 *   npx tsx bench/initramfs-codecs.ts [gzip|zstd|xz|lz4 ...]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { DEFAULT_LEVEL, createCompressor, createDecompressor } from '../src/initramfs/index.js';
import { getInitramfs, TOOL_ENV } from '../test/fixtures/initramfs-images.js';

const raw = zlib.gunzipSync(fs.readFileSync(getInitramfs('cloud', 'gzip', 'most')));
const MB = raw.length / 1e6;
const which = (process.argv.slice(2).length ? process.argv.slice(2) : ['gzip', 'zstd', 'xz', 'lz4']) as (
  'gzip' | 'zstd' | 'xz' | 'lz4'
)[];

async function through(t: NodeJS.ReadWriteStream, data: Buffer): Promise<Buffer> {
  const src = Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += 1 << 20) yield data.subarray(i, i + (1 << 20));
    })(),
  );
  const parts: Buffer[] = [];
  await new Promise<void>((res, rej) => {
    src.pipe(t as unknown as NodeJS.WritableStream);
    t.on('data', (c: Buffer) => parts.push(c));
    t.on('end', res);
    t.on('error', rej);
  });
  return Buffer.concat(parts);
}

function nativeSeconds(cmd: string, input: Buffer): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-codec-'));
  try {
    fs.writeFileSync(path.join(dir, 'in'), input);
    const t = performance.now();
    execFileSync('sh', ['-c', `${cmd} < in > out`], { cwd: dir, env: TOOL_ENV });
    return (performance.now() - t) / 1000;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const NATIVE: Record<string, [string, string]> = {
  gzip: ['gzip -9 -n', 'gzip -dc'],
  zstd: [`zstd -q -${DEFAULT_LEVEL.zstd}`, 'zstd -dc -q'],
  xz: ['xz --check=crc32 --lzma2=preset=6,dict=1MiB', 'xz -dc'],
  lz4: ['lz4 -l -9', 'lz4 -dc'],
};

for (const c of which) {
  let t = performance.now();
  const z = await through(createCompressor(c), raw);
  const enc = (performance.now() - t) / 1000;
  t = performance.now();
  const back = await through(createDecompressor(c), z);
  const dec = (performance.now() - t) / 1000;
  if (!back.equals(raw)) throw new Error(`${c}: round trip differs`);
  const [nEnc, nDec] = NATIVE[c]!;
  const ne = nativeSeconds(nEnc, raw);
  const nd = nativeSeconds(nDec, z);
  console.log(
    JSON.stringify({
      codec: c,
      level: DEFAULT_LEVEL[c],
      rawMB: +MB.toFixed(1),
      compressedMB: +(z.length / 1e6).toFixed(2),
      encodeMBs: +(MB / enc).toFixed(1),
      decodeMBs: +(MB / dec).toFixed(1),
      nativeEncodeMBs: +(MB / ne).toFixed(1),
      nativeDecodeMBs: +(MB / nd).toFixed(1),
      loadAverage: os.loadavg()[0],
    }),
  );
}
