/**
 * A pull reader over a stream of Buffers: the parsers ask for exactly the bytes they need, whatever
 * the chunking of the input (down to 1-byte chunks), and memory holds only what was asked for plus
 * one input chunk. `offset` is the stream position of the next unread byte.
 *
 * With `recycle`, the input lends its chunks: each chunk is handed back through recycle() (as a view
 * of it, maybe of its tail) once the reader is done with every byte of it (consumed, or copied by
 * peek), unless a view of it left the reader (take, takeParts, takeZeros), so the input may write the
 * next bytes into it; what rest() yields comes back through release(). What peek() and skip()'s
 * onPart see is valid only until the reader is called again.
 */
export type ByteInput = AsyncIterable<Buffer | Uint8Array | string> | NodeJS.ReadableStream;

export class ByteReader {
  private parts: Buffer[] = [];
  private avail = 0;
  private eof = false;
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>;
  private readonly recycle: ((chunk: Buffer) => void) | undefined;
  /** Chunks (by their memory) that a view of has left the reader: never recycled. */
  private readonly escaped = new WeakSet<ArrayBufferLike>();
  /** Stream position of the next unread byte. */
  offset = 0;
  /** Called with every chunk as it is pulled from the input (before it is consumed). */
  onChunk: ((b: Buffer) => void) | undefined;

  constructor(input: ByteInput, opts: { recycle?: (chunk: Buffer) => void } = {}) {
    this.it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    this.recycle = opts.recycle;
  }

  /** Marks a view as having left the reader: its chunk must not be written into again. */
  private escape(b: Buffer): Buffer {
    if (this.recycle) this.escaped.add(b.buffer);
    return b;
  }

  /** For a chunk rest() yielded that the caller keeps: release() will not hand it back. */
  hold(b: Buffer): Buffer {
    return this.escape(b);
  }

  /** parts[0] has been consumed entirely. */
  private dropFirst(): void {
    const p = this.parts.shift()!;
    if (this.recycle && !this.escaped.has(p.buffer)) this.recycle(p);
  }

  /** Pulls chunks until `n` bytes are buffered; false when the input ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.avail < n) {
      if (this.eof) return false;
      const r = await this.it.next();
      if (r.done) {
        this.eof = true;
        return false;
      }
      const v = r.value;
      const b = typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.isBuffer(v) ? v : Buffer.from(v);
      if (b.length === 0) continue;
      this.onChunk?.(b);
      this.parts.push(b);
      this.avail += b.length;
    }
    return true;
  }

  /** Bytes buffered now. */
  get buffered(): number {
    return this.avail;
  }

  /** True when no byte is left (pulls to find out). */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** The first `n` buffered bytes without consuming them (call fill(n) first). */
  peek(n: number): Buffer {
    const first = this.parts[0];
    if (first && first.length >= n) return first.subarray(0, n);
    // The n bytes span chunks: they become a chunk of their own (a copy of just those bytes).
    const joined = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const p = this.parts[0]!;
      const k = Math.min(p.length, n - at);
      p.copy(joined, at, 0, k);
      at += k;
      if (k === p.length) this.dropFirst();
      else this.parts[0] = p.subarray(k);
    }
    this.parts.unshift(this.escape(joined)); // ours, not the input's: never handed back
    return joined;
  }

  /** Consumes and returns `n` buffered bytes (call fill(n) first). Zero-copy when they sit in one chunk. */
  take(n: number): Buffer {
    const first = this.parts[0];
    if (first && first.length >= n) {
      const out = this.escape(first.subarray(0, n));
      this.skip(n);
      return out;
    }
    return this.takeCopy(n);
  }

  /** Like take, but always a copy of its own (for bytes held longer than the input chunk should be). */
  takeCopy(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    this.skip(n, (part) => (at += part.copy(out, at)));
    return out;
  }

  /**
   * Consumes `n` buffered bytes as views of the input chunks they sit in (call fill(n) first): no copy,
   * so passing a large entry through allocates nothing.
   */
  takeParts(n: number): Buffer[] {
    const out: Buffer[] = [];
    this.skip(n, (part) => out.push(this.escape(part)));
    return out;
  }

  /**
   * Consumes `n` bytes without collecting them (call fill(n) first); `onPart` sees each piece, e.g. to
   * checksum data nobody keeps.
   */
  skip(n: number, onPart?: (part: Buffer) => void): void {
    let left = n;
    while (left > 0) {
      const p = this.parts[0]!;
      const k = Math.min(p.length, left);
      onPart?.(k === p.length ? p : p.subarray(0, k));
      if (k === p.length) this.dropFirst();
      else this.parts[0] = p.subarray(k);
      left -= k;
    }
    this.avail -= n;
    this.offset += n;
  }

  /**
   * Consumes `n` bytes as skip() does, pulling input as it goes: memory holds one chunk at a time,
   * not all n bytes. False when the input ends first (what there was is consumed).
   */
  async skipStreaming(n: number, onPart?: (part: Buffer) => void): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill(1))) return false;
      const k = Math.min(left, this.avail);
      this.skip(k, onPart);
      left -= k;
    }
    return true;
  }

  /**
   * Consumes a run of NUL bytes (at most `max`), returning them as chunks (for verbatim copies).
   * Stops at the first non-NUL byte or at the end of the input.
   */
  async takeZeros(max = Number.MAX_SAFE_INTEGER): Promise<Buffer[]> {
    const out: Buffer[] = [];
    let total = 0;
    while (total < max && (await this.fill(1))) {
      const p = this.parts[0]!;
      let k = 0;
      const lim = Math.min(p.length, max - total);
      while (k < lim && p[k] === 0) k++;
      if (k > 0) {
        out.push(this.take(k));
        total += k;
      }
      if (k < lim || k === 0) break;
    }
    return out;
  }

  /**
   * Yields everything not consumed yet, then the rest of the input, chunk by chunk. With recycle,
   * the consumer may hand each chunk back through release() once done with it.
   */
  async *rest(): AsyncGenerator<Buffer> {
    while (this.parts.length) {
      const p = this.parts.shift()!;
      this.avail -= p.length;
      this.offset += p.length;
      yield p;
    }
    while (!this.eof) {
      const r = await this.it.next();
      if (r.done) {
        this.eof = true;
        break;
      }
      const v = r.value;
      const b = typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.isBuffer(v) ? v : Buffer.from(v);
      this.onChunk?.(b);
      this.offset += b.length;
      yield b;
    }
  }

  /**
   * Hands back a chunk rest() yielded, which the caller is done with: recycled (true) unless the
   * input does not lend its chunks or a view of it left the reader (take, takeParts, takeZeros,
   * hold).
   */
  release(b: Buffer): boolean {
    if (!this.recycle || this.escaped.has(b.buffer)) return false;
    this.recycle(b);
    return true;
  }

  /** Stops the underlying input (on error or early exit). */
  async close(): Promise<void> {
    try {
      await this.it.return?.();
    } catch {
      /* the input's own error is already being reported */
    }
  }
}
