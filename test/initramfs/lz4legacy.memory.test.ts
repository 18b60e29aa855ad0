/**
 * Regression: the LZ4 legacy codec must not leak. lz4-napi 2.10, used before, never freed the
 * output of its asynchronous uncompress (the declared 8 MiB of every block: the initramfs fuzz
 * target reached 1 GiB RSS in 20 s) nor of its compress (its whole output per block: +9.8 MB per
 * 8 MiB block of poorly compressible data). Our codec (lz4-block.ts) reuses its buffers.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createLz4LegacyDecoder, createLz4LegacyEncoder } from '../../src/initramfs/index.js';
import { collectGarbage } from '../../src/initramfs/gc.js';
import { nativeCompress, nativeDecompress } from './util.js';

const MiB = 1 << 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Growth of `what` (process.memoryUsage()) over `loops` more steps, after as many to warm up (the
 * allocator's plateau), each measured after a full GC.
 */
async function growth(
  what: 'rss' | 'arrayBuffers',
  loops: number,
  step: () => Promise<void>,
): Promise<number> {
  const settled = async (): Promise<number> => {
    // Dead buffers are released by a sweeper task after the collection, late on a busy machine (a
    // whole 8 MiB block's worth still counted 20 ms after): the least of a few tries.
    let least = Infinity;
    for (let i = 0; i < 5; i++) {
      await sleep(0);
      collectGarbage('major');
      await sleep(20);
      least = Math.min(least, process.memoryUsage()[what]);
    }
    return least;
  };
  for (let i = 0; i < loops; i++) await step();
  const before = await settled();
  for (let i = 0; i < loops; i++) await step();
  return (await settled()) - before;
}

/** Reads `stream` slowly (a macrotask per read): all its bytes, and the most one read handed out. */
async function readSlowly(stream: Readable): Promise<{ bytes: Buffer; largest: number }> {
  let largest = 0;
  const got: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) {
    largest = Math.max(largest, c.length);
    got.push(c);
    await sleep(0);
  }
  return { bytes: Buffer.concat(got), largest };
}

/** Random 4-bit bytes (xorshift32): lz4 finds almost nothing to match. */
function noise(size: number): Buffer {
  const data = Buffer.alloc(size);
  let x = 2463534242;
  for (let i = 0; i < data.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = (x >>> 8) & 0x0f;
  }
  return data;
}

describe('lz4 legacy codec memory', () => {
  // A byte-mode stream's read hands out everything queued at once: a slow reader sees how much the
  // codec queues. Pushing whole 8 MiB blocks queued them whole (RSS 159 MB filtering a 100 MB
  // archive with lz4 -9 output; 95 MB when the codec waits for the reader).
  // A read takes what is queued and the stream reads ahead once to refill: two pieces.
  const PIECES = 2 * (256 << 10);
  it('a slow reader is handed at most two pieces (2 x 256 KiB) at a time, decoding and encoding', async () => {
    const data = noise(9 * MiB); // two blocks
    const fed = (b: Buffer): Readable => Readable.from([b.subarray(0, 3 * MiB), b.subarray(3 * MiB)]);
    const decoded = await readSlowly(fed(nativeCompress('lz4', data)).pipe(createLz4LegacyDecoder()));
    expect(decoded.bytes.equals(data)).toBe(true);
    expect(decoded.largest).toBeLessThanOrEqual(PIECES);
    const encoded = await readSlowly(fed(data).pipe(createLz4LegacyEncoder(1)));
    expect(nativeDecompress('lz4', encoded.bytes).equals(data)).toBe(true);
    expect(encoded.largest).toBeLessThanOrEqual(PIECES);
  });

  it('RSS stays flat over 150 decodes of a short block (after 150 more) (8 MiB declared each)', async () => {
    const data = Buffer.alloc(5000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0x3f;
    const frame = nativeCompress('lz4', data);
    const decode = async (): Promise<Buffer> => buffer(Readable.from([frame]).pipe(createLz4LegacyDecoder()));
    expect((await decode()).equals(data)).toBe(true);
    const grown = await growth('rss', 150, async () => void (await decode()));
    // The leak was the whole 8 MiB output allocation per block: 1.2 GiB here.
    expect(grown, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`).toBeLessThan(256 * MiB);
  });

  it('no buffer is left behind by 12 encodes (after 12 more) of an 8 MiB block that hardly compresses', async () => {
    const data = noise(8 * MiB);
    const encode = async (): Promise<Buffer> => buffer(Readable.from([data]).pipe(createLz4LegacyEncoder(1)));
    // Buffers still held after a full GC (RSS is too noisy in a test worker for a 64 MiB bound):
    // lz4-napi's compress kept each ~8 MiB output, ~100 MiB here.
    const grown = await growth('arrayBuffers', 12, async () => void (await encode()));
    expect(grown, `buffers grew by ${(grown / MiB).toFixed(1)} MiB`).toBeLessThan(16 * MiB);
  });
});
