/**
 * gzip on every core, the way pigz does it: the input is cut into blocks, each block is deflated on
 * its own (node:zlib's asynchronous calls run in libuv's threadpool), and the raw deflate outputs are
 * joined into one stream behind one gzip header.
 *
 * Why the join is a valid deflate stream (RFC 1951): every block but the last is deflated with
 * Z_SYNC_FLUSH, which ends it on a byte boundary with an empty stored block (00 00 ff ff) and no
 * BFINAL bit; the last block is finished normally (BFINAL set). Each block is deflated with the 32 KiB
 * of input before it as its preset dictionary, so matches reach back across the cut as in one stream;
 * the cost is one early block end per cut (a few hundred bytes per MiB block: under 0.05 %).
 *
 * gzip member (RFC 1952): 1f 8b 08 flags=0 mtime=0 xfl os=3 (Unix) | deflate | crc32 | isize, all
 * little-endian; no name and mtime 0, like `gzip -n`, and the same header node:zlib writes.
 */
import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { ChunkPool } from '../binary/chunk-pool.js';
import { crc32 as crc32Js } from '../binary/crc32.js';
import { SpliceWriter, type GzipBlockSource } from './gzip-splice.js';

/** Input per deflate call: large enough that the per-cut cost is noise, small enough to spread. */
export const GZIP_BLOCK = 1 << 20;
const WINDOW = 32 << 10;
const OUT_CHUNK = 256 << 10;
// zlib.crc32 (native) arrived in Node 20.15; older 20.x falls back to the table version.
const zlibCrc = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
const crc32: (d: Uint8Array, v: number) => number = zlibCrc
  ? (d, v) => zlibCrc(d, v)
  : (d, v) => crc32Js(d, v);

/*
 * Where deflate blocks end. zlib ends a block only when its symbol buffer fills; each block carries
 * its own Huffman codes, and initramfs contents change character every few KiB (code, string tables,
 * already-compressed firmware, text), so blocks cut where the bytes change compress better. The cuts
 * are chosen from byte histograms of 2 KiB pieces: a piece joins the current block unless coding it
 * with the block's order-0 statistics costs more than SPLIT_PENALTY bits over coding the two apart
 * (about what a dynamic block header costs), or the block would pass SPLIT_MAX.
 *
 * Measured at level 9 on Debian initramfs contents, against zlib alone and against a cut every
 * 16 KiB (the previous rule): the pruned bench initramfs (20.6 MB) 8,070,362 / 7,973,076 ->
 * 7,922,827 B; the first 40 MB of the MODULES=most one 11,403,472 (16 KiB) -> 11,303,234 B, where
 * `gzip -9` writes 11,378,841 B. Tried: 1, 2 and 4 KiB pieces, blocks up to 20-64 KiB, penalties
 * 600-4000 bits; these were best.
 */
const SPLIT_PIECE = 2 << 10;
const SPLIT_MAX = 48 << 10;
const SPLIT_PENALTY = 1200;
/** NLOG2N[k] = k·log2(k): the order-0 cost of a histogram is NLOG2N[total] - Σ NLOG2N[count]. */
let NLOG2N: Float64Array | undefined;

function histogramCost(h: Uint32Array, n: number, t: Float64Array): number {
  let c = t[n]!;
  for (let b = 0; b < 256; b++) c -= t[h[b]!]!;
  return c;
}

/** Offsets in `data` (increasing, inside it) at which to end a deflate block. */
export function deflateSplits(data: Uint8Array): number[] {
  const t = (NLOG2N ??= Float64Array.from({ length: SPLIT_MAX + SPLIT_PIECE + 1 }, (_, k) =>
    k === 0 ? 0 : k * Math.log2(k),
  ));
  const splits: number[] = [];
  const block = new Uint32Array(256);
  const piece = new Uint32Array(256);
  const merged = new Uint32Array(256);
  let blockBytes = 0;
  for (let at = 0; at < data.length; at += SPLIT_PIECE) {
    const end = Math.min(at + SPLIT_PIECE, data.length);
    piece.fill(0);
    for (let i = at; i < end; i++) piece[data[i]!]!++;
    const n = end - at;
    if (blockBytes > 0) {
      let cut = blockBytes + n > SPLIT_MAX;
      if (!cut) {
        for (let b = 0; b < 256; b++) merged[b] = block[b]! + piece[b]!;
        const apart = histogramCost(block, blockBytes, t) + histogramCost(piece, n, t);
        cut = histogramCost(merged, blockBytes + n, t) - apart > SPLIT_PENALTY;
      }
      if (cut) {
        splits.push(at);
        block.fill(0);
        blockBytes = 0;
      }
    }
    for (let b = 0; b < 256; b++) block[b]! += piece[b]!;
    blockBytes += n;
  }
  return splits;
}

/**
 * Deflates one block of input, ending deflate blocks (Z_BLOCK: no padding, no empty block) at
 * deflateSplits. memLevel 9 (the largest hash table and symbol buffer) takes off another
 * 0.03-0.05 %. Resolves with the output chunks.
 */
function deflateBlock(
  input: Buffer,
  dictionary: Buffer | undefined,
  level: number,
  last: boolean,
): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const z = zlib.createDeflateRaw({
      level,
      memLevel: 9,
      ...(dictionary ? { dictionary } : {}),
      // Every write ends a deflate block (Z_BLOCK): one zlib call per piece, not a write and a flush.
      flush: zlib.constants.Z_BLOCK,
      // With the default 16 KiB, every 16 KiB of output costs a trip back to the main thread for a
      // new buffer before zlib can go on. 256 KiB: a block's output (~40 % of its 1 MiB) in one or two
      // trips. A whole block's worth (1 MiB) per stream took the 500 MB gzip -9 filter from 87-90 to
      // 95 MB peak RSS (three streams in flight), for no time that could be measured.
      chunkSize: OUT_CHUNK,
      finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    });
    const out: Buffer[] = [];
    z.on('data', (c: Buffer) => out.push(c));
    z.on('error', reject);
    z.on('end', () => resolve(out));
    let from = 0;
    for (const at of deflateSplits(input)) {
      z.write(input.subarray(from, at));
      from = at;
    }
    z.end(input.subarray(from));
  });
}

/** An empty final block with fixed codes: BFINAL 1, BTYPE 01, end-of-block (7 zero bits). */
const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00]);

/**
 * Whether `bits` (raw deflate, starting and ending on a byte, no BFINAL) decode to exactly the
 * bytes `expected` after the window `dictionary`: decoded once more in the threadpool, compared
 * piece by piece as the output comes. An empty final block after them must then end the stream,
 * which it does only if they end where a block does (a decoder left inside a block or a block header
 * would read it as more of that).
 */
function decodesTo(bits: Buffer, dictionary: Buffer | undefined, expected: Buffer[]): Promise<boolean> {
  return new Promise((resolve) => {
    const z = zlib.createInflateRaw({
      ...(dictionary?.length ? { dictionary } : {}),
      chunkSize: OUT_CHUNK,
    });
    let piece = 0; // expected[piece] is compared from `at` on
    let at = 0;
    let same = true;
    z.on('data', (out: Buffer) => {
      let o = 0;
      while (same && o < out.length) {
        const e = expected[piece];
        if (!e) same = false;
        else {
          const n = Math.min(e.length - at, out.length - o);
          same = out.compare(e, at, at + n, o, o + n) === 0;
          o += n;
          at += n;
          if (at === e.length) {
            piece++;
            at = 0;
          }
        }
      }
      if (!same) z.destroy();
    });
    let ended = false;
    z.on('end', () => (ended = true));
    z.on('error', () => resolve(false));
    z.on('close', () => resolve(ended && same && piece === expected.length));
    z.write(bits);
    z.end(FINAL_EMPTY_BLOCK);
  });
}

/** The last WINDOW bytes of `before` followed by `pieces`. */
function windowAfter(before: Buffer | undefined, pieces: Buffer[]): Buffer {
  const last = pieces[pieces.length - 1];
  if (pieces.length === 1 && last && last.length >= WINDOW) return last.subarray(last.length - WINDOW);
  const parts: Buffer[] = [];
  let n = 0;
  for (let i = pieces.length - 1; i >= 0 && n < WINDOW; i--) {
    parts.unshift(pieces[i]!);
    n += pieces[i]!.length;
  }
  if (n < WINDOW && before?.length) {
    parts.unshift(before);
    n += before.length;
  }
  const joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  return joined.subarray(Math.max(0, joined.length - WINDOW));
}

/** A piece of input tagged with where its bytes sit in the old stream (see SpliceWriter). */
export interface TaggedChunk {
  data: Buffer;
  /** Offset in the old stream's decoded bytes, -1 when the bytes are new. */
  source: number;
}

export class ParallelGzip extends Transform {
  /** The block being filled; `filled` bytes of it are input. */
  private block: Buffer;
  private filled = 0;
  /** Block buffers, handed back when their deflate call has finished: no per-block allocation. */
  private readonly blocks: ChunkPool;
  /** The last WINDOW bytes of input handed to a deflate call: the next block's dictionary. */
  private tail: Buffer | undefined;
  /** Deflate calls (and copies) in input order, with the block each reads; the oldest is pushed first. */
  private readonly inFlight: { block: Buffer | undefined; out: Promise<Buffer[]> }[] = [];
  /** With a block source: its input is TaggedChunk objects, and old blocks are copied where they can be. */
  private readonly splicer: SpliceWriter | undefined;
  /** Decoded bytes written as copied old blocks, and of those, bytes deflated after all (a copy that did not check). */
  readonly spliced = { copied: 0, refused: 0 };
  private crc = 0;
  private isize = 0;

  constructor(
    private readonly level: number,
    private readonly parallelism: number,
    source?: GzipBlockSource,
  ) {
    super(source ? { writableObjectMode: true } : {});
    this.splicer = source
      ? new SpliceWriter(source, {
          plain: (b) => this.append(b),
          copied: (plain, bits) => this.appendCopied(plain, bits),
        })
      : undefined;
    // At most parallelism + 1 blocks are in flight, and one more is being filled.
    this.blocks = new ChunkPool(GZIP_BLOCK, parallelism + 2);
    this.block = this.blocks.get();
    const xfl = level >= 9 ? 2 : level === 1 ? 4 : 0; // "slowest" / "fastest" compressor hint
    this.push(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]));
  }

  override _transform(chunk: Buffer | TaggedChunk, _e: BufferEncoding, cb: TransformCallback): void {
    const data = Buffer.isBuffer(chunk) ? chunk : chunk.data;
    this.crc = crc32(data, this.crc);
    this.isize = (this.isize + data.length) >>> 0; // ISIZE is the length modulo 2^32
    const done = this.splicer
      ? this.splicer.write(data, Buffer.isBuffer(chunk) ? -1 : chunk.source)
      : this.append(data);
    done.then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    (this.splicer ? this.splicer.end() : Promise.resolve())
      .then(() => this.finish())
      .then(() => {
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(this.crc >>> 0, 0);
        trailer.writeUInt32LE(this.isize, 4);
        this.push(trailer);
        cb();
      }, cb);
  }

  /**
   * Copies the chunk into blocks. A full block is deflated only once more input follows it (or the
   * input has ended), so that the last block is always the one finished with BFINAL.
   */
  private async append(chunk: Buffer): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      if (this.filled === GZIP_BLOCK) await this.startBlock(false);
      const n = chunk.copy(this.block, this.filled, at);
      this.filled += n;
      at += n;
    }
  }

  private async finish(): Promise<void> {
    await this.startBlock(true); // the rest, maybe empty
    while (this.inFlight.length) for (const c of await this.inFlight.shift()!.out) this.push(c);
  }

  /** Starts deflating the current block, waiting while `parallelism` calls run. */
  private async startBlock(last: boolean): Promise<void> {
    const input = this.block.subarray(0, this.filled);
    const out = deflateBlock(input, this.tail, this.level, last);
    out.catch(() => {}); // awaited in order below; this only keeps a later block's failure from being "unhandled" meanwhile
    this.inFlight.push({ block: this.block, out });
    // zlib copies the dictionary when the call starts, so a view of the block (still in flight when
    // the next call starts) is enough. A block shorter than the window only comes before a copy, or last.
    this.tail = windowAfter(this.tail, [input]);
    this.block = this.blocks.get();
    this.filled = 0;
    await this.drain();
  }

  /**
   * Old deflate blocks copied as they are (SpliceWriter): `bits` end on a byte, and so does what
   * comes before them once the block being filled is deflated (Z_SYNC_FLUSH). They are decoded once
   * more in the threadpool, after the window they will follow; if they do not give exactly `plain`,
   * `plain` is deflated instead.
   */
  private async appendCopied(plain: Buffer[], bits: Buffer): Promise<void> {
    if (this.filled > 0) await this.startBlock(false);
    // A copy: the tail may be a view of a block buffer, which goes back to the pool (and is written
    // into again) before a deflate that a failed check falls back to would read it.
    const dictionary = this.tail && Buffer.from(this.tail);
    const bytes = plain.reduce((n, b) => n + b.length, 0);
    this.spliced.copied += bytes;
    const out = decodesTo(bits, dictionary, plain).then((ok) => {
      if (ok) return [bits];
      this.spliced.refused += bytes;
      return deflateBlock(Buffer.concat(plain, bytes), dictionary, this.level, false);
    });
    out.catch(() => {});
    this.inFlight.push({ block: undefined, out });
    this.tail = windowAfter(dictionary, plain);
    await this.drain();
  }

  /** Pushes the oldest results while more than `parallelism` calls are in flight. */
  private async drain(): Promise<void> {
    while (this.inFlight.length > this.parallelism) {
      const done = this.inFlight.shift()!;
      for (const c of await done.out) this.push(c);
      if (done.block) this.blocks.put(done.block);
    }
  }
}
