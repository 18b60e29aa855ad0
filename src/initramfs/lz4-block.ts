/**
 * The LZ4 block format (lz4 doc/lz4_Block_format.md), the payload of each legacy-frame block.
 *
 * A block is a run of sequences, each: a token (high nibble: literal count, low nibble: match
 * length - 4; 15 means "more bytes follow": each following byte adds up to 255), the literals, a
 * 2-byte little-endian match offset (1..65535 back into the decoded output), the match length's
 * extra bytes. The last sequence has literals only. End rules every decoder relies on: the last 5
 * bytes are literals (LASTLITERALS) and no match starts in the last 12 bytes (MFLIMIT).
 *
 * Written here, not taken from a library: lz4-napi's compressor never frees its output (+9.8 MB RSS
 * per 8 MiB block) and has no high-compression mode, and a block codec is short. The compressor is
 * lz4hc's idea (a hash table of 4-byte prefixes, a chain of earlier positions with the same hash,
 * `attempts` candidates tried per position) with one step of lazy matching.
 */

export const LZ4_MIN_MATCH = 4;
const LASTLITERALS = 5;
const MFLIMIT = 12;
const MAX_DISTANCE = 65535;
const HASH_LOG = 16;

/** LZ4_compressBound: the largest block `n` input bytes can compress to. */
export function lz4CompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/** Thrown for a block that breaks the format; the caller turns it into a typed error with its offset. */
export class Lz4BlockError extends Error {}

/** Matches reach at most this far back, so the decoder keeps this much decoded history. */
const WINDOW = 1 << 16;
/** Decoded bytes handed out at a time (at most). */
export const LZ4_DECODE_PIECE = 256 << 10;

// Where the decoder is in a sequence (its bytes can be split across input chunks anywhere).
const TOKEN = 0;
const LITLEN = 1; // reading the literal length's extra bytes
const LITERALS = 2;
const OFFSET_LO = 3; // the block may end here: its last sequence has literals only
const OFFSET_HI = 4;
const MATCHLEN = 5; // reading the match length's extra bytes
const MATCH = 6;

/**
 * Decodes a block from its compressed bytes in any number of pieces, into a small buffer: the last
 * 64 KiB decoded (the farthest a match reaches back) and up to LZ4_DECODE_PIECE new bytes, which the
 * caller takes whenever it is full. So a block that decodes to 8 MiB needs neither its compressed
 * bytes nor its decoded bytes whole in memory.
 *
 * Every length and offset is checked against the block's output so far and `limit`: corrupt input
 * throws Lz4BlockError, never reads or writes out of bounds, and ends (each step consumes input or
 * produces output).
 */
export class Lz4BlockDecoder {
  private readonly buf = new Uint8Array(WINDOW + LZ4_DECODE_PIECE);
  /** Decoded bytes not yet taken: buf[start, end). Before start: history. */
  private start = 0;
  private end = 0;
  /** Bytes this block has decoded to. */
  private produced = 0;
  private state = TOKEN;
  private token = 0;
  /** Literals or match bytes still to copy (or, while reading a length, its sum so far). */
  private count = 0;
  private offset = 0;

  /** `limit`: the most a block may decode to. */
  constructor(private readonly limit: number) {}

  /** Starts a new block (the history of the previous one is out of reach: blocks are independent). */
  begin(): void {
    this.produced = 0;
    this.state = TOKEN;
  }

  /** Whether the caller must take() before more can be decoded. */
  get full(): boolean {
    return this.end === this.buf.length;
  }

  /** The decoded bytes not yet taken (a view, valid until the next decode()); marks them taken. */
  take(): Uint8Array {
    const piece = this.buf.subarray(this.start, this.end);
    this.start = this.end;
    return piece;
  }

  /** Checks that the block's bytes ended where a block may end (after a sequence's literals). */
  finish(): void {
    if (this.state !== OFFSET_LO) throw new Lz4BlockError('block ends inside a sequence');
  }

  /**
   * Decodes src[at, to) (bytes of the current block) until they are used or the buffer is full;
   * returns where it stopped. The state lives in locals while it runs (V8 keeps them in registers).
   */
  decode(src: Uint8Array, at: number, to: number): number {
    const buf = this.buf;
    if (this.end === buf.length) {
      if (this.start !== this.end) throw new Error('lz4 decoder: take() the decoded bytes first');
      // Keep the last WINDOW bytes as history; the new bytes go after them.
      buf.copyWithin(0, this.end - WINDOW, this.end);
      this.start = this.end = WINDOW;
    }
    let ip = at;
    let op = this.end;
    const cap = buf.length;
    let { state, token, count, offset } = this;
    let produced = this.produced;
    const limit = this.limit;
    run: for (;;) {
      switch (state) {
        case TOKEN: {
          if (ip >= to) break run;
          token = src[ip++]!;
          count = token >>> 4;
          state = count === 15 ? LITLEN : LITERALS;
          if (state === LITERALS && produced + count > limit)
            throw new Lz4BlockError('block decodes to more than its size');
          break;
        }
        case LITLEN: {
          if (ip >= to) break run;
          const b = src[ip++]!;
          count += b;
          if (b !== 255) {
            if (produced + count > limit) throw new Lz4BlockError('block decodes to more than its size');
            state = LITERALS;
          }
          break;
        }
        case LITERALS: {
          const n = Math.min(count, to - ip, cap - op);
          if (n > 32) {
            buf.set(src.subarray(ip, ip + n), op);
            ip += n;
            op += n;
          } else for (const e = ip + n; ip < e;) buf[op++] = src[ip++]!;
          count -= n;
          produced += n;
          if (count > 0) break run; // out of input or of room
          state = OFFSET_LO;
          break;
        }
        case OFFSET_LO: {
          if (ip >= to) break run;
          offset = src[ip++]!;
          state = OFFSET_HI;
          break;
        }
        case OFFSET_HI: {
          if (ip >= to) break run;
          offset |= src[ip++]! << 8;
          if (offset === 0 || offset > produced)
            throw new Lz4BlockError(`match offset ${offset} points before the block`);
          count = token & 15;
          state = count === 15 ? MATCHLEN : MATCH;
          if (state === MATCH) {
            count += LZ4_MIN_MATCH;
            if (produced + count > limit) throw new Lz4BlockError('block decodes to more than its size');
          }
          break;
        }
        case MATCHLEN: {
          if (ip >= to) break run;
          const b = src[ip++]!;
          count += b;
          if (b !== 255) {
            count += LZ4_MIN_MATCH;
            if (produced + count > limit) throw new Lz4BlockError('block decodes to more than its size');
            state = MATCH;
          }
          break;
        }
        case MATCH: {
          const n = Math.min(count, cap - op);
          const from = op - offset;
          if (n <= 32) {
            // Short (most matches): byte by byte, which also repeats an overlapping run correctly.
            for (let i = 0; i < n; i++) buf[op + i] = buf[from + i]!;
          } else if (offset >= n) buf.copyWithin(op, from, from + n);
          else {
            // Overlapping: the match repeats the last `offset` bytes. Copy what is already there,
            // which doubles the repeated run each time, so that no copy overlaps its own source.
            for (let done = 0; done < n;) {
              const k = Math.min(offset + done, n - done);
              buf.copyWithin(op + done, from, from + k);
              done += k;
            }
          }
          op += n;
          count -= n;
          produced += n;
          if (count > 0) break run; // out of room
          state = TOKEN;
          break;
        }
      }
    }
    this.state = state;
    this.token = token;
    this.count = count;
    this.offset = offset;
    this.produced = produced;
    this.end = op;
    return ip;
  }
}

/**
 * Decodes one whole block into `out` (which must hold the whole decoded block) and returns the number
 * of bytes written; errors as Lz4BlockDecoder's.
 */
export function lz4DecodeBlock(src: Uint8Array, out: Uint8Array): number {
  const d = new Lz4BlockDecoder(out.length);
  let at = 0;
  let n = 0;
  for (;;) {
    at = d.decode(src, at, src.length);
    const piece = d.take();
    out.set(piece, n);
    n += piece.length;
    if (at === src.length && !d.full) break;
  }
  d.finish();
  return n;
}

/** Writes a length's extra bytes (255 each while more follows) at op; returns the new op. */
function writeExtraLength(out: Uint8Array, op: number, extra: number): number {
  for (; extra >= 255; extra -= 255) out[op++] = 255;
  out[op++] = extra;
  return op;
}

function hash4(src: Uint8Array, p: number): number {
  const v = src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24);
  return Math.imul(v, 2654435761) >>> (32 - HASH_LOG);
}

/**
 * Compresses blocks. `attempts` is how many earlier positions are tried per position (lz4hc level L
 * tries 2^(L-1)). The tables are reused from block to block; the per-block state lives in fields
 * (V8 keeps them fast, unlike variables shared with closures).
 */
export class Lz4Compressor {
  /** Last position + 1 of each 4-byte hash (0: none). */
  private readonly head = new Int32Array(1 << HASH_LOG);
  /** Distance back to the previous position with the same hash, by position mod 64 Ki (0: none). */
  private readonly chain = new Uint16Array(1 << 16);
  private src: Uint8Array = new Uint8Array(0);
  /** Positions below this are in the tables. */
  private next = 0;
  private matchlimit = 0;
  private bestLen = 0;
  private bestOff = 0;
  private out: Uint8Array = new Uint8Array(0);
  private op = 0;

  constructor(private readonly attempts: number) {}

  /** Compresses `src` into `out` (at least lz4CompressBound(src.length) bytes); returns the length. */
  compress(src: Uint8Array, out: Uint8Array): number {
    this.head.fill(0);
    this.src = src;
    this.out = out;
    this.op = 0;
    this.next = 0;
    const n = src.length;
    const mflimit = n - MFLIMIT;
    this.matchlimit = n - LASTLITERALS;
    let anchor = 0;
    let ip = 0;
    while (ip < mflimit) {
      this.find(ip);
      if (this.bestLen === 0) {
        ip++;
        continue;
      }
      // Lazy step: a longer match one byte later is worth a literal.
      let len = this.bestLen;
      let off = this.bestOff;
      while (ip + 1 < mflimit) {
        this.find(ip + 1);
        if (this.bestLen <= len) break;
        ip++;
        len = this.bestLen;
        off = this.bestOff;
      }
      this.emit(anchor, ip, len, off);
      ip += len;
      anchor = ip;
    }
    this.emit(anchor, n, 0, 0); // the last literals
    this.src = this.out = new Uint8Array(0);
    return this.op;
  }

  /** Adds positions up to p (excluded) to the tables. */
  private insertUpTo(p: number): void {
    const { src, head, chain } = this;
    for (let q = this.next; q < p; q++) {
      const h = hash4(src, q);
      const delta = q - (head[h]! - 1);
      chain[q & 0xffff] = head[h]! > 0 && delta <= MAX_DISTANCE ? delta : 0;
      head[h] = q + 1;
    }
    if (p > this.next) this.next = p;
  }

  /** The longest match for position p within `attempts` candidates: bestLen (0: none), bestOff. */
  private find(p: number): void {
    this.insertUpTo(p);
    const { src, chain, matchlimit } = this;
    let bestLen = 0;
    let bestOff = 0;
    let cand = this.head[hash4(src, p)]! - 1;
    for (let tries = this.attempts; cand >= 0 && tries > 0 && p - cand <= MAX_DISTANCE; tries--) {
      if (src[cand + bestLen] === src[p + bestLen] && src[cand] === src[p]) {
        let len = 0;
        while (p + len < matchlimit && src[cand + len] === src[p + len]) len++;
        if (len > bestLen) {
          bestLen = len;
          bestOff = p - cand;
          if (p + len >= matchlimit) break;
        }
      }
      const d = chain[cand & 0xffff]!;
      if (d === 0) break;
      cand -= d;
    }
    this.bestLen = bestLen >= LZ4_MIN_MATCH ? bestLen : 0;
    this.bestOff = bestOff;
  }

  /** Writes one sequence: the literals src[anchor, ip), then the match (none when matchLen is 0). */
  private emit(anchor: number, ip: number, matchLen: number, offset: number): void {
    const { src, out } = this;
    let op = this.op;
    const lit = ip - anchor;
    const tokenAt = op++;
    let token = 0;
    if (lit >= 15) {
      token = 15 << 4;
      op = writeExtraLength(out, op, lit - 15);
    } else token = lit << 4;
    if (lit > 32) out.set(src.subarray(anchor, ip), op);
    else for (let i = 0; i < lit; i++) out[op + i] = src[anchor + i]!;
    op += lit;
    if (matchLen) {
      out[op++] = offset & 0xff;
      out[op++] = offset >>> 8;
      const ml = matchLen - LZ4_MIN_MATCH;
      if (ml >= 15) {
        token |= 15;
        op = writeExtraLength(out, op, ml - 15);
      } else token |= ml;
    }
    out[tokenAt] = token;
    this.op = op;
  }
}
