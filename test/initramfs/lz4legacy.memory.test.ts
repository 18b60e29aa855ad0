/**
 * Regression (fuzz run finding, H9): decoding LZ4 legacy frames must not leak native memory.
 * lz4-napi 2.10's asynchronous uncompress never freed its output allocation (the declared 8 MiB of
 * every block): the initramfs fuzz target reached 1 GiB RSS in 20 s. The decoder now uses the
 * synchronous call. Input made by the native `lz4 -l`; output checked against the original bytes.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createLz4LegacyDecoder } from '../../src/initramfs/index.js';
import { nativeCompress } from './util.js';

const LOOPS = 150;

describe('lz4 legacy decoder memory', () => {
  it(`RSS stays flat over ${LOOPS} decodes of a short block (8 MiB declared each)`, async () => {
    const data = Buffer.alloc(5000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0x3f;
    const frame = nativeCompress('lz4', data);
    const decode = async (): Promise<Buffer> => buffer(Readable.from([frame]).pipe(createLz4LegacyDecoder()));
    expect((await decode()).equals(data)).toBe(true);
    const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
    gc();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < LOOPS; i++) await decode();
    gc();
    const grown = process.memoryUsage().rss - before;
    // The leak was the whole 8 MiB output allocation per block: 1.2 GiB here.
    expect(grown, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(256 << 20);
  });
});
