/**
 * Copying old deflate blocks into the new gzip stream (gzip-splice.ts, deflate-walk.ts): the walker
 * against zlib on streams of every block type, the reach it reports against zlib's own "too far
 * back" check, and the filter's output with copying against the same filter with copying off.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { walkBlock, type WalkedBlock } from '../../src/initramfs/deflate-walk.js';
import { GzipBlockSource } from '../../src/initramfs/gzip-splice.js';
import { ParallelGzip, type TaggedChunk } from '../../src/initramfs/gzip-parallel.js';
import { filterInitramfs } from '../../src/initramfs/index.js';
import { chunked, collect, cpioOf, makeTree, nativeCompress, nativeDecompress } from './util.js';

/** Deterministic bytes of several kinds: text, machine code, zeros, noise. */
function sample(seed: number, size: number): Buffer {
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const exe = fs.readFileSync(process.execPath).subarray(0, 4 << 20);
  const words = [
    'module',
    'alias',
    'pci:v00008086d',
    'depends',
    'vermagic',
    'GPL',
    '\n',
    ' ',
    'usb',
    'firmware',
  ];
  const out = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    const kind = rnd() % 4;
    const n = Math.min(size - at, 2000 + (rnd() % 60000));
    if (kind === 0) {
      for (let i = 0; i < n;) {
        const w = words[rnd() % words.length]!;
        i += out.write(w, at + i, Math.min(w.length, n - i), 'latin1');
      }
    } else if (kind === 1) {
      const from = rnd() % (exe.length - n);
      exe.copy(out, at, from, from + n);
    } else if (kind === 2) out.fill(0, at, at + n);
    else for (let i = 0; i < n; i++) out[at + i] = rnd() & 0xff;
    at += n;
  }
  return out;
}

/** Every block of a raw deflate stream, walked from bit 0. */
function walkAll(raw: Buffer, total: number): WalkedBlock[] {
  const buf = Buffer.concat([raw, Buffer.alloc(4)]);
  const blocks: WalkedBlock[] = [];
  let bit = 0;
  let length = 0;
  for (;;) {
    const b = walkBlock(buf, bit, total - length, raw.length * 8);
    expect(b, `block ${blocks.length} at bit ${bit}`).not.toBeNull();
    blocks.push(b!);
    length += b!.length;
    bit = b!.endBit;
    if (b!.final) break;
  }
  expect(length).toBe(total);
  // The final block ends in the stream's last byte.
  expect(Math.ceil(bit / 8)).toBe(raw.length);
  return blocks;
}

/** Bits [from, to) of `raw` from bit 0 on, then an empty stored block: a stream zlib can decode. */
function cut(raw: Buffer, from: number, to: number): Buffer {
  const n = to - from;
  const out = Buffer.alloc(Math.ceil((n + 3) / 8) + 4);
  for (let i = 0; i < n; i++) {
    const s = from + i;
    if ((raw[s >>> 3]! >>> (s & 7)) & 1) out[i >>> 3]! |= 1 << (i & 7);
  }
  out[out.length - 2] = 0xff;
  out[out.length - 1] = 0xff;
  return out;
}

const STREAMS: Record<string, (d: Buffer) => Buffer> = {
  'level 1': (d) => zlib.deflateRawSync(d, { level: 1 }),
  'level 9': (d) => zlib.deflateRawSync(d, { level: 9 }),
  'fixed codes': (d) => zlib.deflateRawSync(d, { strategy: zlib.constants.Z_FIXED }),
  'huffman only': (d) => zlib.deflateRawSync(d, { strategy: zlib.constants.Z_HUFFMAN_ONLY }),
  rle: (d) => zlib.deflateRawSync(d, { strategy: zlib.constants.Z_RLE }),
  'stored (level 0)': (d) => zlib.deflateRawSync(d, { level: 0 }),
  'gzip -9 (the deflate inside)': (d) => {
    const gz = nativeCompress('gzip', d);
    return gz.subarray(10, gz.length - 8); // no name (-n): a 10-byte header
  },
};

describe('deflate-walk against zlib', () => {
  const data = sample(7, 600_000);
  for (const [name, make] of Object.entries(STREAMS)) {
    it(`${name}: every block is found, to the bit, with its length`, () => {
      const raw = make(data);
      const blocks = walkAll(raw, data.length);
      expect(blocks.length).toBeGreaterThan(1);
      if (name.startsWith('stored')) expect(blocks.every((b) => b.stored)).toBe(true);
    });
  }

  it('reach: a block decodes after exactly `reach` bytes of window, and not after one fewer', () => {
    const raw = STREAMS['level 9']!(data);
    const blocks = walkAll(raw, data.length);
    let at = 0;
    let checked = 0;
    for (const b of blocks) {
      const start = at;
      at += b.length;
      if (b.stored || b.final) continue;
      const bits = cut(raw, b.startBit, b.endBit);
      const expected = data.subarray(start, start + b.length);
      const dict = (n: number): zlib.ZlibOptions =>
        n > 0
          ? { dictionary: data.subarray(start - n, start), finishFlush: zlib.constants.Z_SYNC_FLUSH }
          : { finishFlush: zlib.constants.Z_SYNC_FLUSH };
      const r = Math.max(0, b.reach);
      expect(zlib.inflateRawSync(bits, dict(r)).equals(expected)).toBe(true);
      if (r > 0) expect(() => zlib.inflateRawSync(bits, dict(r - 1))).toThrow(/too far back/);
      checked++;
    }
    expect(checked).toBeGreaterThan(3);
  });

  it('garbage: null or a block inside the bounds, never a throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), fc.nat(7), (bytes, bit) => {
        const buf = Buffer.concat([Buffer.from(bytes), Buffer.alloc(4)]);
        const limit = bytes.length * 8;
        const b = walkBlock(buf, bit, 1 << 20, limit);
        if (b) {
          expect(b.endBit).toBeLessThanOrEqual(limit);
          expect(b.endBit).toBeGreaterThan(bit);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

/** An initramfs-like tree: big kept files between dropped "modules", one of them incompressible. */
function spliceTree(seed: number): { spec: Record<string, string>; drop: (n: string) => boolean } {
  const spec: Record<string, string> = {};
  const text = (k: number, n: number): string => sample(seed + k, n).toString('latin1');
  // Sorted order (cpioOf): a dropped module first, so that the first run of kept bytes starts at a
  // block boundary in the middle of a byte, and the stored blocks after it are copied shifted.
  spec['a/first.ko'] = text(4, 30_000);
  spec['bin/busybox'] = text(1, 100_000);
  spec['lib/firmware/blob.bin'] = 'written by the test';
  for (let i = 0; i < 12; i++)
    spec[`usr/lib/modules/6.1/kernel/drivers/m${i}.ko`] = text(10 + i, 40_000 + i * 997);
  spec['usr/lib/x86_64-linux-gnu/libc.so.6'] = text(3, 250_000);
  spec['usr/lib/modules/6.1/modules.dep'] = 'kernel/drivers/m3.ko:\n';
  return { spec, drop: (n) => /(m([0-24-9]|1[01])|first)\.ko$/.test(n) };
}

describe('gzip splice: the filter copies old blocks and writes the same archive', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  async function filtered(input: Buffer, drop: (n: string) => boolean, level?: number) {
    const { output, done } = filterInitramfs(chunked(input, 65536), {
      decide: (e) => (drop(e.name) ? 'drop' : 'keep'),
      level,
    });
    const out = await collect(output);
    return { out, report: await done };
  }

  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: gzip -9 input, copied blocks (stored ones too) decode to what deflating writes`, async () => {
      const { spec, drop } = spliceTree(seed);
      const tree = makeTree(spec);
      dirs.push(tree);
      // Random bytes: gzip stores them (stored blocks, whose LEN must be re-aligned when copied).
      fs.writeFileSync(`${tree}/lib/firmware/blob.bin`, randomBytes(seed, 200_000));
      const archive = cpioOf(tree, 'newc');
      const input = nativeCompress('gzip', archive);
      const spliced = await filtered(input, drop);
      const deflated = await filtered(input, drop, 7); // a chosen level: no copying
      expect(deflated.report.segments[0]!.reusedBytes).toBe(0);
      const plain = nativeDecompress('gzip', spliced.out); // gzip -t too
      expect(plain.equals(nativeDecompress('gzip', deflated.out))).toBe(true);
      expect(spliced.report.removed.length).toBe(12);
      // Most kept bytes sit in whole old blocks: busybox, libc and the firmware are ~750 kB.
      // Every copy checked out, and the kept bytes around the firmware's stored blocks were copied.
      const seg = spliced.report.segments[0]!;
      expect(seg.reuseRefusedBytes).toBe(0);
      expect(seg.reusedBytes).toBeGreaterThan(200_000);
      expect(seg.reusedBytes).toBeLessThanOrEqual(plain.length);
    });
  }

  it('input from our own encoder (sync-flush cuts, empty stored blocks) and a two-member gzip', async () => {
    const { spec, drop } = spliceTree(9);
    const tree = makeTree(spec);
    dirs.push(tree);
    fs.writeFileSync(`${tree}/lib/firmware/blob.bin`, randomBytes(9, 100_000));
    const archive = cpioOf(tree, 'newc');
    const ours = await collect(Readable.from([archive]).pipe(new ParallelGzip(6, 2)));
    const half = archive.length >> 1;
    const twoMembers = Buffer.concat([
      nativeCompress('gzip', archive.subarray(0, half)),
      nativeCompress('gzip', archive.subarray(half)),
    ]);
    for (const input of [ours, twoMembers]) {
      const spliced = await filtered(input, drop);
      const deflated = await filtered(input, drop, 7);
      expect(nativeDecompress('gzip', spliced.out).equals(nativeDecompress('gzip', deflated.out))).toBe(true);
      expect(spliced.report.segments[0]!.reuseRefusedBytes).toBe(0);
      expect(spliced.report.segments[0]!.reusedBytes).toBeGreaterThan(200_000);
    }
  });
});

function randomBytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A block source that claims every 8 KiB is a copyable block and hands out wrong bits. */
class LyingSource extends GzipBlockSource {
  constructor() {
    super(() => {});
  }
  override nextBoundary(pos: number): number {
    return Math.ceil(pos / 8192) * 8192;
  }
  override blockEnd(pos: number): number {
    return (Math.floor(pos / 8192) + 1) * 8192;
  }
  override copyable(): boolean {
    return true;
  }
  override bits(): Buffer {
    // Valid deflate (not final, ending on a byte) for the wrong bytes.
    return zlib.deflateRawSync(Buffer.from('x'), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  }
}

/** A source whose one block [start, end) comes as `bits`. */
class OneBlockSource extends GzipBlockSource {
  constructor(
    private readonly start: number,
    private readonly end: number,
    private readonly given: Buffer,
  ) {
    super(() => {});
  }
  override nextBoundary(pos: number): number | undefined {
    return pos <= this.start ? this.start : undefined;
  }
  override blockEnd(pos: number): number | undefined {
    return pos === this.start ? this.end : undefined;
  }
  override copyable(): boolean {
    return true;
  }
  override bits(): Buffer {
    return this.given;
  }
}

describe('gzip splice: copies that do not decode to their bytes are deflated instead', () => {
  it('bits cut a little short or long: the check refuses them where the stream would not be whole', async () => {
    const data = fs.readFileSync(process.execPath).subarray(0, 300_000); // machine code: Huffman blocks
    const raw = zlib.deflateRawSync(data, { level: 9 });
    const blocks = walkAll(raw, data.length);
    // A Huffman block followed by one: the header bits after it are not all zeros.
    let start = 0;
    let i = 0;
    for (; blocks[i]!.stored || blocks[i + 1]!.stored; i++) start += blocks[i]!.length;
    const block = blocks[i]!;
    const end = start + block.length;
    let refusedOnce = false;
    for (let extra = -3; extra <= 6; extra++) {
      const bits = cut(raw, block.startBit, block.endBit + extra);
      const gz = new ParallelGzip(6, 2, new OneBlockSource(start, end, bits));
      const chunks: TaggedChunk[] = [
        { data: data.subarray(0, start), source: -1 },
        { data: data.subarray(start, end), source: start },
        { data: data.subarray(end), source: -1 },
      ];
      const out = await collect(Readable.from(chunks, { objectMode: true }).pipe(gz));
      expect(zlib.gunzipSync(out).equals(data)).toBe(true);
      expect(gz.spliced.copied).toBe(block.length);
      // Exact bits are copied. Bits cut short or long are refused where the stream would not be
      // whole; some variants are whole all the same (zero bits the closing stored block's header
      // and padding stand in for), and the output above decoded right either way.
      if (extra === 0) expect(gz.spliced.refused).toBe(0);
      else expect([0, block.length]).toContain(gz.spliced.refused);
      if (gz.spliced.refused) refusedOnce = true;
    }
    expect(refusedOnce).toBe(true);
  });

  it('wrong bits from the source: the output is still exactly the input', async () => {
    const data = sample(5, 200_000);
    const gz = new ParallelGzip(6, 2, new LyingSource());
    const chunks: TaggedChunk[] = [];
    for (let i = 0; i < data.length; i += 5000) chunks.push({ data: data.subarray(i, i + 5000), source: i });
    const out = await collect(Readable.from(chunks, { objectMode: true }).pipe(gz));
    expect(zlib.gunzipSync(out).equals(data)).toBe(true);
    expect(gz.spliced.copied).toBeGreaterThan(150_000);
    expect(gz.spliced.refused).toBe(gz.spliced.copied);
  });
});
