/**
 * Copying deflate blocks of the old gzip stream into the new one, bits as they are, instead of
 * compressing their bytes again.
 *
 * A pruned initramfs keeps most of its bytes in long runs (busybox, libraries, udev, the kept
 * modules next to each other) between the dropped modules. Deflating those bytes again is most of
 * the filter's work (gzip 7: ~1.1 CPU-s for the 20 MB left of the prune bench's initramfs), yet the
 * old stream already holds them compressed. A deflate block of the old stream (RFC 1951) can go into
 * the new one unchanged when:
 *   - its bytes are all kept, in one run that is contiguous in the old stream and in the new: then the
 *     bytes before the block, up to the run's start, are the same in both;
 *   - none of its matches reaches back before that run's start (the window holds other bytes there);
 *   - it is not the old stream's last block (BFINAL).
 * Measured on the prune bench's initramfs (MODULES=most, 132 MB, 2,478 blocks): of the 20.6 MB kept,
 * 18.2 MB sit in 372 such blocks.
 *
 * How a block is found, to the bit: the decoder (gunzip-reuse.ts) asks zlib to stop at every block
 * boundary (Z_BLOCK) and records where: the decoded offset exactly, the compressed offset as a byte
 * count that leaves 0-7 bits of that byte unread (zlib keeps fewer than 8 bits in its bit buffer
 * there, and node does not show which). deflate-walk.ts then walks the blocks from each of those 8
 * candidate bits; the one that decodes to the recorded length and ends in the recorded byte is the
 * start, and from there on every block's end is exact (the next one's start).
 *
 * How it is joined (gzip-parallel.ts): the new stream is byte-aligned where a copied span begins
 * (after the gzip header, or a deflate call ended with Z_SYNC_FLUSH, or an earlier span); the span's
 * bits are shifted to start at bit 0, and an empty stored block (3 header bits, padding, 00 00 ff ff,
 * as Z_SYNC_FLUSH writes) aligns the stream again after it.
 *
 * Why the result is right: every copied span is decoded once more with zlib, with the new stream's
 * last 32 KiB as the window, and must give exactly the bytes it stands for; a span that does not is
 * deflated instead (gzip-parallel.ts). So a wrong guess here costs time, never a wrong archive.
 *
 * Memory: the compressed input is held from where the encoder may still copy (release()) up to the
 * decoder, at most RETAIN_BYTES; blocks whose bytes were let go are deflated.
 */
import { walkBlock, type WalkedBlock } from './deflate-walk.js';

/** Compressed bytes held for copying, at most. */
export const RETAIN_BYTES = 8 << 20;
/** A block decoding to more than this is not copied (zlib's blocks are far smaller). */
export const MAX_COPY_BLOCK = 8 << 20;

interface Held {
  /** Compressed offset of data[0]. */
  start: number;
  data: Buffer;
}

/** The old gzip stream's blocks, as the decoder met them, and its compressed bytes still held. */
export class GzipBlockSource {
  /** Block boundaries, in order: decoded offset, and the compressed byte count zlib had read. */
  private readonly outAt: number[] = [];
  private readonly inAt: number[] = [];
  /** Boundaries before this index are forgotten. */
  private first = 0;
  /** Exact bit positions learnt by walking, by the decoded offset of the boundary. */
  private readonly exactBit = new Map<number, number>();
  /** Blocks found copyable, by the decoded offset they start at: for bits(). */
  private readonly walked = new Map<number, { end: number; blocks: WalkedBlock[] }>();
  private readonly held: Held[] = [];
  private heldBytes = 0;
  /** Compressed bytes seen so far. */
  private inTotal = 0;
  /** Compressed bytes before this offset were handed back. */
  private releasedTo = 0;

  /** @param handBack called with each compressed input chunk once no copy can need it */
  constructor(private readonly handBack: (chunk: Buffer) => void) {}

  // --- the decoder's side ---

  /** The next compressed chunk, before zlib reads it. */
  input(chunk: Buffer): void {
    this.held.push({ start: this.inTotal, data: chunk });
    this.inTotal += chunk.length;
    this.heldBytes += chunk.length;
    while (this.heldBytes > RETAIN_BYTES && this.held.length > 1) this.dropOldest();
  }

  /** zlib stopped at a block boundary: `inByte` compressed bytes read, `out` decoded bytes written. */
  boundary(inByte: number, out: number): void {
    const n = this.outAt.length;
    // A boundary at the same decoded offset (an empty block, or the gzip header's end before the
    // first block): the earliest bits stand for it, the walk goes through the empty blocks.
    if (n > this.first && this.outAt[n - 1]! >= out) return;
    this.outAt.push(out);
    this.inAt.push(inByte);
  }

  /** Hands back every chunk still held (the stream is over, or failed). */
  close(): void {
    while (this.held.length) this.dropOldest();
  }

  // --- the encoder's side ---

  /** The first recorded boundary at or after decoded offset `pos`, or undefined. */
  nextBoundary(pos: number): number | undefined {
    const i = this.indexAtOrAfter(pos);
    return i < this.outAt.length ? this.outAt[i] : undefined;
  }

  /** The first recorded boundary after `pos`: where the block starting at `pos` ends, once known. */
  blockEnd(pos: number): number | undefined {
    return this.nextBoundary(pos + 1);
  }

  /**
   * Whether the blocks from boundary `start` to boundary `end` can be copied into a run of kept bytes
   * that began at decoded offset `runStart` (see the file comment). On true, bits(start, end) gives
   * them.
   */
  copyable(start: number, end: number, runStart: number): boolean {
    if (end - start > MAX_COPY_BLOCK) return false;
    const s = this.indexAtOrAfter(start);
    const e = this.indexAtOrAfter(end);
    if (this.outAt[s] !== start || this.outAt[e] !== end) return false;
    const known = this.exactBit.get(start);
    const startByte = this.inAt[s]!;
    const endByte = this.inAt[e]!;
    // The bits to look at: from the earliest candidate start to the end boundary's byte.
    const from = known !== undefined ? known >>> 3 : startByte - 1;
    if (from < this.releasedTo || endByte > this.inTotal) return false;
    const bytes = this.gather(from, endByte);
    const limit = (endByte - from) * 8;
    const candidates =
      known !== undefined
        ? [known - from * 8]
        : [0, 1, 2, 3, 4, 5, 6, 7].map((b) => (startByte - from) * 8 - b);
    for (const bit of candidates) {
      if (bit < 0) continue;
      const blocks = walkSpan(bytes, bit, end - start, limit);
      // The end must be a bit of the byte zlib stopped after (it keeps fewer than 8 unread).
      if (!blocks) continue;
      const endBit = blocks[blocks.length - 1]!.endBit;
      if (endBit <= limit - 8 || endBit > limit) continue;
      this.exactBit.set(start, from * 8 + bit);
      this.exactBit.set(end, from * 8 + endBit);
      let at = start;
      for (const b of blocks) {
        if (b.final || at - b.reach < runStart) return false;
        at += b.length;
      }
      this.walked.set(start, {
        end,
        blocks: blocks.map((b) => ({ ...b, startBit: b.startBit + from * 8, endBit: b.endBit + from * 8 })),
      });
      return true;
    }
    return false;
  }

  /**
   * The compressed bits of the blocks from boundary `start` to boundary `end` (all walked by
   * copyable), to be written from a byte boundary on, followed by an empty stored block that ends on
   * a byte. The bits are the old ones shifted, except around stored blocks: their LEN sits on the
   * next byte boundary, which moves with the shift, so their header is written anew (3 zero bits,
   * padding) before their bytes. Null when the compressed bytes were let go meanwhile (RETAIN_BYTES).
   */
  bits(start: number, end: number): Buffer | null {
    const s = this.exactBit.get(start);
    const e = this.exactBit.get(end);
    const notWalked = (): Error => new Error(`gzip splice: the blocks of ${start}-${end} were not walked`);
    if (s === undefined || e === undefined) throw notWalked();
    const blocks: WalkedBlock[] = [];
    for (let at = start; at < end;) {
      const w = this.walked.get(at);
      if (!w) throw notWalked();
      blocks.push(...w.blocks);
      at = w.end;
    }
    const srcByte = s >>> 3;
    if (srcByte < this.releasedTo) return null;
    const src = this.gather(srcByte, Math.ceil(e / 8));
    const out = Buffer.alloc(Math.ceil((e - s) / 8) + blocks.length + 6);
    let o = 0; // output bits written
    let piece = s; // start bit of the bits not copied yet
    // Copies old bits [piece, until) to the output, which is on a byte boundary here.
    const copy = (until: number): void => {
      shiftBits(src, (piece >>> 3) - srcByte, piece & 7, until - piece, out, o >>> 3);
      o += until - piece;
    };
    for (const b of blocks) {
      if (!b.stored) continue;
      copy(b.startBit);
      // Header bits 000 (not final, stored) and padding are zeros: the output is zeroed already.
      o = ((o + 3 + 7) >>> 3) << 3;
      const from = ((b.startBit + 3 + 7) >>> 3) - srcByte; // LEN, NLEN, then the bytes
      const to = (b.endBit >>> 3) - srcByte;
      src.copy(out, o >>> 3, from, to);
      o += (to - from) * 8;
      piece = b.endBit;
    }
    copy(e);
    // The closing empty stored block: 3 zero bits, padding, LEN 0000, NLEN ffff.
    const len = ((o + 3 + 7) >>> 3) + 4;
    out[len - 2] = 0xff;
    out[len - 1] = 0xff;
    return out.subarray(0, len);
  }

  /** The encoder will not ask about anything before decoded offset `pos` again. */
  release(pos: number): void {
    const i = this.indexAtOrAfter(pos);
    // The boundary at or before pos may still start a block the encoder copies.
    const keep = i < this.outAt.length && this.outAt[i] === pos ? i : i - 1;
    if (keep <= this.first) return;
    for (let k = this.first; k < keep; k++) {
      this.exactBit.delete(this.outAt[k]!);
      this.walked.delete(this.outAt[k]!);
    }
    this.first = keep;
    if (this.first > 4096 && this.first * 2 > this.outAt.length) {
      this.outAt.splice(0, this.first);
      this.inAt.splice(0, this.first);
      this.first = 0;
    }
    // Bits of the kept boundary's block may start in the byte before the one zlib stopped after.
    const needFrom = (this.exactBit.get(this.outAt[this.first]!) ?? (this.inAt[this.first]! - 1) * 8) >>> 3;
    while (this.held.length > 1 && this.held[0]!.start + this.held[0]!.data.length <= needFrom)
      this.dropOldest();
  }

  private dropOldest(): void {
    const h = this.held.shift()!;
    this.heldBytes -= h.data.length;
    this.releasedTo = h.start + h.data.length;
    this.handBack(h.data);
  }

  private indexAtOrAfter(pos: number): number {
    let lo = this.first;
    let hi = this.outAt.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.outAt[mid]! < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Compressed bytes [from, to) (held), copied out, plus 4 zero bytes for the walker's look-ahead. */
  private gather(from: number, to: number): Buffer {
    const n = to - from;
    // One scratch buffer, reused: what is gathered is only read until the next call.
    if (this.scratch.length < n + 4)
      this.scratch = Buffer.allocUnsafeSlow(Math.max(n + 4, 2 * this.scratch.length));
    const out = this.scratch.subarray(0, n + 4);
    out.fill(0, n);
    for (const h of this.held) {
      const a = Math.max(from, h.start);
      const b = Math.min(to, h.start + h.data.length);
      if (a < b) h.data.copy(out, a - from, a - h.start, b - h.start);
    }
    return out;
  }
  private scratch = Buffer.alloc(0);
}

/**
 * Writes `n` bits of `src`, from bit `shift` of byte `first` on, to `out` from byte `at` on (bit 0);
 * the bits after them in their last byte are zeros.
 */
function shiftBits(
  src: Uint8Array,
  first: number,
  shift: number,
  n: number,
  out: Uint8Array,
  at: number,
): void {
  const bytes = n >>> 3;
  if (shift === 0) out.set(src.subarray(first, first + bytes), at);
  else {
    const back = 8 - shift;
    let cur = src[first]!;
    for (let i = 0; i < bytes; i++) {
      const nxt = src[first + i + 1]!;
      out[at + i] = ((cur >>> shift) | (nxt << back)) & 0xff;
      cur = nxt;
    }
  }
  const tail = n & 7;
  if (tail) {
    const v = (src[first + bytes]! >>> shift) | (src[first + bytes + 1]! << (8 - shift));
    out[at + bytes] = v & ((1 << tail) - 1);
  }
}

/** Walks blocks from `bit` until they decode to exactly `length` bytes; null if they cannot. */
function walkSpan(bytes: Buffer, bit: number, length: number, limit: number): WalkedBlock[] | null {
  const blocks: WalkedBlock[] = [];
  let done = 0;
  let at = bit;
  // Bounded: each block reads at least 3 bits, and `at` only grows up to `limit`.
  while (done < length || blocks.length === 0) {
    const b = walkBlock(bytes, at, length - done, limit);
    if (!b) return null;
    blocks.push(b);
    done += b.length;
    at = b.endBit;
    if (b.final) break;
  }
  return done === length ? blocks : null;
}

/** Where SpliceWriter's output goes (ParallelGzip): bytes to deflate, and copied blocks. */
export interface SpliceSink {
  plain(data: Buffer): Promise<void>;
  /** `bits` (from GzipBlockSource.bits) stand for the bytes `plain`; the sink checks that they do. */
  copied(plain: Buffer[], bits: Buffer): Promise<void>;
}

/** Copied blocks are written in spans of about this many decoded bytes. */
const SPAN_BYTES = 1 << 20;

/**
 * Splits the new stream's bytes, each piece tagged with its offset in the old stream's decoded bytes
 * (-1 when new), into bytes to deflate and old blocks to copy (see the file comment).
 */
export class SpliceWriter {
  /** The run of old bytes being written: its decoded start, and the offset after its last byte. */
  private runStart = -1;
  private runEnd = -1;
  /** Bytes from an old block boundary on, held until the block is whole: then it is copied or not. */
  private block: { start: number; bytes: number; chunks: Buffer[] } | null = null;
  /** Copyable blocks not written yet, old decoded offsets [from, to). */
  private span: { from: number; to: number; chunks: Buffer[] } | null = null;

  constructor(
    private readonly src: GzipBlockSource,
    private readonly sink: SpliceSink,
  ) {}

  async write(data: Buffer, source: number): Promise<void> {
    if (source < 0 || source !== this.runEnd) {
      await this.endRun();
      if (source < 0) return this.plain(data);
      this.runStart = source;
    }
    const n = data.length;
    let off = 0;
    while (off < n) {
      const pos = source + off;
      const b = this.block;
      if (!b) {
        const next = this.src.nextBoundary(pos);
        const stop = next === undefined || next >= source + n ? n : next - source;
        if (stop > off) await this.plain(data.subarray(off, stop));
        if (stop < n) this.block = { start: next!, bytes: 0, chunks: [] };
        off = stop;
        continue;
      }
      // The boundary after the block is recorded before any byte past it is decoded: when it is not
      // known yet, the block goes on past this piece.
      const end = this.src.blockEnd(b.start);
      const k = end === undefined ? n - off : Math.min(n - off, end - (b.start + b.bytes));
      b.chunks.push(data.subarray(off, off + k));
      b.bytes += k;
      off += k;
      if (end !== undefined && b.start + b.bytes === end) await this.blockDone(b, end);
      else if (b.bytes > MAX_COPY_BLOCK) {
        this.block = null;
        for (const c of b.chunks) await this.plain(c);
      }
    }
    this.runEnd = source + n;
    this.src.release(this.span?.from ?? this.block?.start ?? this.runEnd);
  }

  /** The input has ended. */
  async end(): Promise<void> {
    await this.endRun();
  }

  private async blockDone(b: { start: number; chunks: Buffer[] }, end: number): Promise<void> {
    this.block = { start: end, bytes: 0, chunks: [] }; // the next block starts where this one ends
    if (!this.src.copyable(b.start, end, this.runStart)) {
      for (const c of b.chunks) await this.plain(c);
      return;
    }
    if (this.span && this.span.to === b.start) {
      this.span.to = end;
      this.span.chunks.push(...b.chunks);
    } else {
      await this.writeSpan();
      this.span = { from: b.start, to: end, chunks: b.chunks };
    }
    if (this.span.to - this.span.from >= SPAN_BYTES) await this.writeSpan();
  }

  private async endRun(): Promise<void> {
    await this.writeSpan();
    const b = this.block;
    this.block = null;
    if (b) for (const c of b.chunks) await this.sink.plain(c);
    this.runStart = this.runEnd = -1;
  }

  private async plain(data: Buffer): Promise<void> {
    await this.writeSpan();
    await this.sink.plain(data);
  }

  private async writeSpan(): Promise<void> {
    const s = this.span;
    if (!s) return;
    this.span = null;
    const bits = this.src.bits(s.from, s.to);
    if (!bits) {
      for (const c of s.chunks) await this.sink.plain(c);
      return;
    }
    await this.sink.copied(s.chunks, bits);
  }
}
