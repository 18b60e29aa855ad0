/**
 * The zstd encoder (compression.ts ZstdCompressor, used where node:zlib has no zstd): the native zstd
 * reads what it writes, single-threaded (levels up to 12) and in libzstd's threads (above), and a
 * reused context takes the parameters of its new stream, not those of its last one.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createCompressor } from '../../src/initramfs/index.js';
import { nativeDecompress } from './util.js';

/** 9 MB that compress: text-like runs and repeats from near and far (two 4 MiB jobs and a bit). */
function sample(size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = 12345;
  const rnd = (): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16) & 0x7fff;
  for (let i = 0; i < size;) {
    const n = Math.min(size - i, 1 + (rnd() % 200));
    if (rnd() % 2 === 0 && i > 300_000)
      b.copy(b, i, i - 1 - (rnd() % 300_000), i - 1 - (rnd() % 300_000) + n);
    else for (let k = 0; k < n; k++) b[i + k] = 0x20 + (rnd() % 40);
    i += n;
  }
  return b;
}

const compress = async (data: Buffer, level: number): Promise<Buffer> =>
  buffer(
    Readable.from([data.subarray(0, 5 << 20), data.subarray(5 << 20)]).pipe(createCompressor('zstd', level)),
  );

describe.skipIf(
  typeof ((await import('node:zlib')) as { createZstdCompress?: unknown }).createZstdCompress === 'function',
)('zstd compressor (zstd-napi)', () => {
  it('zstd -d reads its frames at levels 3 and 13, and a reused context forgets the last stream', async () => {
    const data = sample(9_000_000);
    const st = await compress(data, 3);
    expect(nativeDecompress('zstd', st).equals(data)).toBe(true);
    const mt = await compress(data, 13);
    expect(nativeDecompress('zstd', mt).equals(data)).toBe(true);
    // After a multi-threaded stream, a level-3 stream is single-threaded again: the same bytes.
    expect((await compress(data, 3)).equals(st)).toBe(true);
  });
});
