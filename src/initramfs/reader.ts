/**
 * A pull reader over a stream of Buffers: the parsers ask for exactly the bytes they need, whatever
 * the chunking of the input (down to 1-byte chunks), and memory holds only what was asked for plus
 * one input chunk. `offset` is the stream position of the next unread byte.
 */
export type ByteInput = AsyncIterable<Buffer | Uint8Array | string> | NodeJS.ReadableStream;

export class ByteReader {
  private parts: Buffer[] = [];
  private avail = 0;
  private eof = false;
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>;
  /** Stream position of the next unread byte. */
  offset = 0;
  /** Called with every chunk as it is pulled from the input (before it is consumed). */
  onChunk: ((b: Buffer) => void) | undefined;

  constructor(input: ByteInput) {
    this.it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
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
    const all = Buffer.concat(this.parts);
    this.parts = [all];
    return all.subarray(0, n);
  }

  /** Consumes and returns `n` buffered bytes (call fill(n) first). Zero-copy when they sit in one chunk. */
  take(n: number): Buffer {
    const first = this.parts[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      this.skip(n);
      return out;
    }
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
    this.skip(n, (part) => out.push(part));
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
      if (k === p.length) this.parts.shift();
      else this.parts[0] = p.subarray(k);
      left -= k;
    }
    this.avail -= n;
    this.offset += n;
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

  /** Yields everything not consumed yet, then the rest of the input, chunk by chunk. */
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

  /** Stops the underlying input (on error or early exit). */
  async close(): Promise<void> {
    try {
      await this.it.return?.();
    } catch {
      /* the input's own error is already being reported */
    }
  }
}
