/**
 * The parallel gzip encoder against GNU gzip as the oracle: `gzip -t` accepts every output and
 * `gzip -dc` gives back the input, for sizes around the block boundaries, fed in random chunk sizes.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GZIP_BLOCK, ParallelGzip } from '../../src/initramfs/gzip-parallel.js';
import { run } from './util.js';

/** Half random bytes, half repeats of earlier input: matches that cross the block cuts. */
function sample(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  const noise = randomBytes(Math.min(n, 64 << 10));
  for (let i = 0; i < n; i += 4096) {
    const src = (i * 7 + seed) % 4 === 0 ? noise : b.subarray(Math.max(0, i - 40_000));
    src.copy(b, i, 0, Math.min(4096, n - i, src.length));
  }
  return b;
}

function chunks(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, k = 0; at < data.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length]!);
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function gzipOurs(data: Buffer, sizes: number[], level: number, parallelism: number): Promise<Buffer> {
  return buffer(Readable.from(chunks(data, sizes)).pipe(new ParallelGzip(level, parallelism)));
}

describe('ParallelGzip', () => {
  it('writes one gzip member GNU gzip reads back exactly, at every size around the block cuts', async () => {
    const sizes = [
      0,
      1,
      100,
      GZIP_BLOCK - 1,
      GZIP_BLOCK,
      GZIP_BLOCK + 1,
      2 * GZIP_BLOCK,
      3 * GZIP_BLOCK + 12345,
    ];
    for (const n of sizes) {
      const data = sample(n, n);
      const out = await gzipOurs(data, [256 << 10, 77, 1 << 20], 9, 2);
      expect(out.subarray(0, 4)).toEqual(Buffer.from([0x1f, 0x8b, 8, 0])); // no name, no flags
      expect(out.readUInt32LE(4)).toBe(0); // mtime 0, like gzip -n
      run('gzip', ['-t'], out);
      expect(run('gzip', ['-dc'], out).equals(data), `size ${n}`).toBe(true);
    }
  });

  it('round-trips any input in any chunking, level and parallelism (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3 * GZIP_BLOCK }),
        fc.array(fc.integer({ min: 1, max: 1 << 21 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        async (n, sizes, level, parallelism) => {
          const data = sample(n, sizes[0]!);
          const out = await gzipOurs(data, sizes, level, parallelism);
          expect(run('gzip', ['-dc'], out).equals(data)).toBe(true);
        },
      ),
      { numRuns: 12, seed: 20261128 },
    );
  });

  it('loses almost nothing to the cuts: within 0.5 % of one zlib stream at the same level', async () => {
    // Text-like input (random words from a 2,000-word vocabulary) compresses about 2:1, as a cpio does.
    const vocab = Array.from({ length: 2000 }, (_, i) => randomBytes(2 + (i % 9)).toString('hex'));
    const words: string[] = [];
    for (let len = 0; len < 4 * GZIP_BLOCK;) {
      const w = vocab[Math.floor(Math.random() * vocab.length)]!;
      words.push(w);
      len += w.length + 1;
    }
    const data = Buffer.from(words.join(' '));
    const ours = await gzipOurs(data, [256 << 10], 9, 2);
    const { gzipSync } = await import('node:zlib');
    const single = gzipSync(data, { level: 9 });
    expect(ours.length).toBeLessThan(single.length * 1.005);
  });
});
