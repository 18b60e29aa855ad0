/**
 * gunzip-reuse.ts and the ByteReader's recycling: the decoder writes into buffers the reader hands
 * back, so (1) the decoded bytes must equal zlib's for every input chunking and stream shape, with
 * zlib's errors, and (2) a buffer a view has left the reader through must never be written again.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ExpansionGuard, compressionError } from '../../src/initramfs/compression.js';
import { ChunkPool } from '../../src/binary/chunk-pool.js';
import { REUSE_CHUNK, gunzipReusing } from '../../src/initramfs/gunzip-reuse.js';
import { ByteReader } from '../../src/initramfs/reader.js';
import { filterInitramfs } from '../../src/initramfs/index.js';
import { chunked, collect, cpioOf, makeTree, nativeCompress } from './util.js';

async function* chunks(b: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (let i = 0; at < b.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    yield b.subarray(at, at + n);
    at += n;
  }
}

/** Decodes through a ByteReader that recycles every chunk once read (the filter's dropped data). */
async function decodeAll(gz: Buffer, sizes: number[]): Promise<{ out: Buffer; pool: ChunkPool }> {
  const pool = new ChunkPool(REUSE_CHUNK);
  const dec = gunzipReusing(chunks(gz, sizes), pool, new ExpansionGuard('gzip'))!;
  const r = new ByteReader(dec, { recycle: (b) => pool.put(b) });
  const parts: Buffer[] = [];
  // Copy each piece before it can be recycled (skip's onPart sees views valid until the next call).
  while (await r.fill(1)) r.skip(r.buffered, (p) => parts.push(Buffer.from(p)));
  return { out: Buffer.concat(parts), pool };
}

/** Data that compresses a little and a lot, in runs (like an initramfs: text, code, zeros). */
function sample(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size;) {
    x = (x * 1103515245 + 12345) >>> 0;
    const run = 1 + (x % 5000);
    const kind = (x >>> 16) % 3;
    for (let k = 0; k < run && i < size; k++, i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = kind === 0 ? 0 : kind === 1 ? 0x61 + ((x >>> 24) % 4) : x >>> 24;
    }
  }
  return b;
}

describe('gunzipReusing', () => {
  it('is available on this Node (else the filter falls back to the slower stream)', () => {
    expect(
      gunzipReusing(chunks(Buffer.alloc(0), [1]), new ChunkPool(REUSE_CHUNK), new ExpansionGuard('gzip')),
    ).not.toBe(null);
  });

  it('decodes exactly what zlib decodes: any chunking, several members, padding and whatever follows it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.integer({ min: 0, max: 3 * REUSE_CHUNK }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 700 }),
        fc.constantFrom('none', 'garbage', 'member', 'cpio'),
        fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 5 }),
        async (seed, size, members, zeros, after, sizes) => {
          const data = sample(seed, size);
          const third = Math.ceil(size / members);
          const stream = Buffer.concat(
            Array.from({ length: members }, (_, m) =>
              zlib.gzipSync(data.subarray(m * third, (m + 1) * third), { level: 1 + (seed % 9) }),
            ),
          );
          // After the padding node's stream decodes nothing more, whatever comes (and wherever the
          // chunks split it).
          const tail = {
            none: Buffer.alloc(0),
            garbage: Buffer.from([0x55, ...sample(seed + 1, 3000)]),
            member: zlib.gzipSync(sample(seed + 2, 5000)),
            cpio: Buffer.from('070701' + '0'.repeat(200)),
          }[after];
          const gz = Buffer.concat([stream, Buffer.alloc(tail.length ? Math.max(1, zeros) : zeros), tail]);
          const { out } = await decodeAll(gz, sizes);
          expect(out.equals(data)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reuses its buffers when the reader hands them back', async () => {
    const data = sample(7, 20 * REUSE_CHUNK);
    const { out, pool } = await decodeAll(zlib.gzipSync(data, { level: 1 }), [1 << 20]);
    expect(out.equals(data)).toBe(true);
    expect(pool.allocatedBytes).toBeLessThanOrEqual(3 * REUSE_CHUNK);
  });

  it("fails as zlib's stream does: truncated, corrupt", async () => {
    const gz = zlib.gzipSync(sample(3, 300_000));
    const truncated = await decodeAll(gz.subarray(0, gz.length >> 1), [4096]).catch((e: unknown) => e);
    expect(compressionError('gzip', truncated).code).toBe('COMPRESS_TRUNCATED');
    const bad = Buffer.from(gz);
    bad.fill(0x55, 20, 60);
    const corrupt = await decodeAll(bad, [4096]).catch((e: unknown) => e);
    expect(compressionError('gzip', corrupt).code).toBe('COMPRESS_CORRUPT');
  });

  it('stops a bomb through the guard', async () => {
    const gz = zlib.gzipSync(Buffer.alloc(8 << 20));
    const guard = new ExpansionGuard('gzip', { maxOutput: 1 << 20 });
    const dec = gunzipReusing(chunks(gz, [65536]), new ChunkPool(REUSE_CHUNK), guard)!;
    await expect(
      (async () => {
        for await (const _ of dec) void _;
      })(),
    ).rejects.toMatchObject({ code: 'COMPRESS_BOMB' });
  });
});

describe('ByteReader with recycle', () => {
  it('never hands back a chunk a view of left the reader, and such views keep their bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom('take', 'takeCopy', 'takeParts', 'skip', 'peek'), fc.nat(3000)), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.integer({ min: 1, max: 1500 }),
        async (ops, chunkSize) => {
          // The input lends buffers it overwrites with garbage as soon as they come back.
          const total = 40_000;
          const expected = Buffer.from(Array.from({ length: total }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
          const given = new Set<ArrayBufferLike>();
          const back: Buffer[] = [];
          async function* lend(): AsyncGenerator<Buffer> {
            for (let at = 0; at < total; at += chunkSize) {
              const b = back.pop() ?? Buffer.allocUnsafeSlow(chunkSize);
              const n = Math.min(chunkSize, total - at);
              expected.copy(b, 0, at, at + n);
              given.add(b.buffer);
              yield b.subarray(0, n);
            }
          }
          const r = new ByteReader(lend(), {
            recycle: (b) => {
              expect(given.has(b.buffer)).toBe(true);
              b.fill(0xee);
              back.push(Buffer.from(b.buffer, 0, chunkSize));
            },
          });
          const kept: { at: number; bytes: Buffer[] }[] = [];
          for (const [op, n] of ops) {
            const at = r.offset;
            if (!(await r.fill(Math.max(1, n)))) break;
            if (op === 'take') kept.push({ at, bytes: [r.take(n)] });
            else if (op === 'takeCopy') kept.push({ at, bytes: [r.takeCopy(n)] });
            else if (op === 'takeParts') kept.push({ at, bytes: r.takeParts(n) });
            else if (op === 'skip') r.skip(n);
            else expect(r.peek(n).equals(expected.subarray(at, at + n))).toBe(true);
          }
          while (await r.fill(1)) r.skip(r.buffered); // recycle everything else
          for (const k of kept)
            expect(
              Buffer.concat(k.bytes).equals(expected.subarray(k.at, k.at + Buffer.concat(k.bytes).length)),
            ).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('filterInitramfs with recycleInput', () => {
  it('writes the same bytes when the input reuses every chunk handed back', async () => {
    const big = (seed: number, n: number): string => sample(seed, n).toString('latin1');
    const tree = makeTree({
      'lib/modules/6.1/kernel/a.ko': big(1, 900_000),
      'lib/modules/6.1/kernel/b.ko': big(2, 700_000),
      'lib/modules/6.1/kernel/c.ko': big(3, 5_000),
      'usr/bin/tool': big(4, 1_300_000),
      'etc/conf': 'x=1\n',
    });
    const early = makeTree({ 'kernel/x86/microcode/GenuineIntel.bin': big(5, 70_000) });
    try {
      const input = Buffer.concat([cpioOf(early, 'newc'), nativeCompress('gzip', cpioOf(tree, 'newc'))]);
      // Dropping two modules, and keeping all (then the original compressed bytes are copied).
      for (const [dropping, size] of [
        [true, 4096],
        [true, 100_000],
        [true, 1 << 20],
        [false, 4096],
        [false, 100_000],
      ] as const) {
        const decide = (e: { name: string }): 'drop' | 'keep' =>
          dropping && /[ab]\.ko$/.test(e.name) ? 'drop' : 'keep';
        const plain = filterInitramfs(chunked(input, size), { decide, level: 1 });
        const want = await collect(plain.output);
        // A lending input: each chunk handed back is scribbled over and read into again.
        const back: Buffer[] = [];
        let lent = 0;
        async function* lend(): AsyncGenerator<Buffer> {
          for (let at = 0; at < input.length; at += size) {
            const b = back.pop() ?? (lent++, Buffer.allocUnsafeSlow(size));
            const n = input.copy(b, 0, at, at + size);
            yield b.subarray(0, n);
          }
        }
        const { output, done } = filterInitramfs(lend(), {
          decide,
          level: 1,
          recycleInput: (b) => {
            b.fill(0x5a);
            back.push(Buffer.from(b.buffer, 0, size));
          },
        });
        expect((await collect(output)).equals(want), `chunks of ${size}`).toBe(true);
        expect((await done).removed.length).toBe(dropping ? 2 : 0);
        if (!dropping) expect(want.equals(input)).toBe(true);
        // It did recycle: far fewer buffers than chunks.
        if (dropping && size === 4096) expect(lent).toBeLessThan(Math.ceil(input.length / size) - 10);
      }
    } finally {
      fs.rmSync(tree, { recursive: true, force: true });
      fs.rmSync(early, { recursive: true, force: true });
    }
  });
});
