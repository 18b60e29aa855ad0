/**
 * lz4-block.ts: our LZ4 block codec against itself (round trips of any input, at every effort),
 * against the native `lz4` (it reads what we write; we read what it writes, at -1 and -9; our
 * level 9 is about as strong as its -9), and against garbage (a typed error or a bounded result,
 * never an exception of another kind, never a write past the output).
 */
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createLz4LegacyDecoder, createLz4LegacyEncoder } from '../../src/initramfs/index.js';
import {
  Lz4BlockDecoder,
  Lz4BlockError,
  Lz4Compressor,
  lz4CompressBound,
  lz4DecodeBlock,
} from '../../src/initramfs/lz4-block.js';
import { nativeDecompress, run } from './util.js';

/** Input that compresses like a module tree: text, repeats near and far, runs, and noise. */
function sample(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  let x = seed;
  const rnd = (): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16) & 0x7fff;
  for (let i = 0; i < size;) {
    const kind = rnd() % 4;
    const n = Math.min(size - i, 1 + (rnd() % 300));
    if (kind === 0 && i > 70000) b.copy(b, i, i - 70000 + (rnd() % 5000), i - 70000 + (rnd() % 5000) + n);
    else if (kind === 1 && i > 100) b.copy(b, i, i - 1 - (rnd() % 100), i - 1 - (rnd() % 100) + n);
    else if (kind === 2) b.fill(rnd() & 0xff, i, i + n);
    else for (let k = 0; k < n; k++) b[i + k] = 0x20 + (rnd() % 64);
    i += n;
  }
  return b;
}

function roundTrip(data: Uint8Array, attempts: number): number {
  const out = new Uint8Array(lz4CompressBound(data.length));
  const n = new Lz4Compressor(attempts).compress(data, out);
  const back = new Uint8Array(data.length);
  expect(lz4DecodeBlock(out.subarray(0, n), back)).toBe(data.length);
  expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
  return n;
}

describe('lz4 block codec', () => {
  it('round-trips any bytes at every effort (fast-check)', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }),
      // small alphabets and repeats: long and overlapping matches
      fc
        .array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 400 })), { maxLength: 40 })
        .map((runs) =>
          Uint8Array.from(runs.flatMap(([v, n]) => Array.from({ length: n }, (_, i) => (v * i) & 3))),
        ),
    );
    fc.assert(
      fc.property(bytes, fc.constantFrom(1, 4, 256), (data, attempts) => {
        expect(roundTrip(data, attempts)).toBeLessThanOrEqual(lz4CompressBound(data.length));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes a block fed in pieces of any size, its output taken whenever full (fast-check)', () => {
    // Over 320 KiB decoded: the decoder's buffer fills and slides, with matches reaching back
    // across the slide (sample() repeats from 65-70 KB back).
    const data = sample(400_000, 5);
    const block = new Uint8Array(lz4CompressBound(data.length));
    const n = new Lz4Compressor(16).compress(data, block);
    const src = block.subarray(0, n);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 20 }), (sizes) => {
        const d = new Lz4BlockDecoder(data.length);
        d.begin();
        const parts: Buffer[] = [];
        for (let at = 0, i = 0; at < n; i++) {
          const end = Math.min(n, at + sizes[i % sizes.length]!);
          while (at < end || d.full) {
            at = d.decode(src, at, end);
            parts.push(Buffer.from(d.take()));
          }
        }
        d.finish();
        expect(Buffer.concat(parts).equals(data)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('the native lz4 reads our legacy frames, and we read its -1 and -9 frames', async () => {
    const data = sample(9 << 20); // two blocks: a full 8 MiB one and a short one
    for (const level of [1, 9]) {
      const ours = await buffer(Readable.from([data]).pipe(createLz4LegacyEncoder(level)));
      expect(nativeDecompress('lz4', ours).equals(data), `level ${level}`).toBe(true);
      const theirs = run('lz4', ['-l', `-${level}`, '-c'], data);
      const back = await buffer(Readable.from([theirs]).pipe(createLz4LegacyDecoder()));
      expect(back.equals(data), `lz4 -${level}`).toBe(true);
      // Fed in pieces that split blocks, sequences and the 4-byte words anywhere.
      const pieces = [];
      for (let at = 0; at < theirs.length; at += 65_537) pieces.push(theirs.subarray(at, at + 65_537));
      const back2 = await buffer(Readable.from(pieces).pipe(createLz4LegacyDecoder()));
      expect(back2.equals(data), `lz4 -${level} in pieces`).toBe(true);
    }
  });

  it('level 9 compresses like lz4 -9 (within 3%) and better than level 1', async () => {
    const data = sample(4 << 20, 7);
    const size = async (level: number): Promise<number> =>
      (await buffer(Readable.from([data]).pipe(createLz4LegacyEncoder(level)))).length;
    const native9 = run('lz4', ['-l', '-9', '-c'], data).length;
    const [l1, l9] = [await size(1), await size(9)];
    expect(l9).toBeLessThan(l1);
    expect(l9 / native9).toBeLessThan(1.03);
  });

  it('garbage: a typed error or a result within the output, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 4096 }), (src, cap) => {
        const out = new Uint8Array(cap);
        try {
          expect(lz4DecodeBlock(src, out)).toBeLessThanOrEqual(cap);
        } catch (e) {
          expect(e).toBeInstanceOf(Lz4BlockError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('every truncation of a valid block is an error, not a short result', () => {
    const data = sample(20000, 3);
    const out = new Uint8Array(lz4CompressBound(data.length));
    const n = new Lz4Compressor(16).compress(data, out);
    const back = new Uint8Array(data.length);
    let errors = 0;
    for (let cut = 1; cut < n; cut += 7) {
      try {
        // A cut that happens to end right after a literal run decodes to a shorter block.
        expect(lz4DecodeBlock(out.subarray(0, cut), back)).toBeLessThan(data.length);
      } catch (e) {
        expect(e).toBeInstanceOf(Lz4BlockError);
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(0);
  });
});
