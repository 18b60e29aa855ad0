/**
 * Walks deflate blocks (RFC 1951) without producing their output: where each block ends (to the
 * bit), how many bytes it decodes to, and how far back before its own start its matches reach.
 * gzip-splice.ts uses it to find the blocks of an old stream that can be copied, bits as they are,
 * into a new one.
 *
 * Bits are read least significant first (RFC 1951 3.1.1); Huffman codes are packed most significant
 * bit first, so the decoding tables are indexed by the bit-reversed code (as in zlib's inftrees.c).
 * Codes are checked as zlib checks them: an over-subscribed code is an error, and so is an incomplete
 * one, except a literal/length or distance code of a single 1-bit code (and a distance code with no
 * codes at all, for a block with no matches). Every walk is bounded by the bits it may read.
 */

/** One block as walked. */
export interface WalkedBlock {
  startBit: number;
  /** The bit after the block's last one (its end-of-block code, or a stored block's last byte). */
  endBit: number;
  /** Decoded length. */
  length: number;
  /** The largest distance - position over the block's matches: > 0 when one reaches before the block. */
  reach: number;
  final: boolean;
  /** A stored block (BTYPE 00): its LEN is on the byte boundary after the 3 header bits. */
  stored: boolean;
}

// RFC 1951 3.2.5: base lengths and extra bits of length symbols 257-285, bases and extra bits of
// distance symbols 0-29.
const LEN_BASE = Int32Array.from([
  3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
  227, 258,
]);
const LEN_EXTRA = Int32Array.from([
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
]);
const DIST_BASE = Int32Array.from([
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
  6145, 8193, 12289, 16385, 24577,
]);
const DIST_EXTRA = Int32Array.from([
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
]);
/** The order in which code length code lengths are stored (3.2.7). */
const CLEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const MAX_BITS = 15;

/** Codes up to this long are decoded by one table lookup; longer ones (rare by nature) bit by bit. */
const FAST_BITS = 10;

/**
 * A prefix code. fast[the next `fastBits` bits] = symbol << 4 | code length for codes up to fastBits
 * long, 0 otherwise (a longer code, or an incomplete code's hole); `count` and `symbols` (ordered by
 * code) decode any code the canonical way (RFC 1951 3.2.2, as zlib's contrib/puff does).
 */
interface Code {
  fast: Uint32Array;
  fastBits: number;
  count: Uint16Array;
  symbols: Uint16Array;
}

/** The code for lengths `lens` (0 = unused); null when invalid (see the file comment). */
function buildCode(lens: Uint8Array, allowIncomplete: boolean): Code | null {
  const count = new Uint16Array(MAX_BITS + 1);
  let maxLen = 0;
  for (let s = 0; s < lens.length; s++) {
    const l = lens[s]!;
    count[l]!++;
    if (l > maxLen) maxLen = l;
  }
  count[0] = 0;
  if (maxLen === 0) {
    if (!allowIncomplete) return null;
    return { fast: new Uint32Array(1), fastBits: 0, count, symbols: new Uint16Array(0) };
  }
  // Kraft: no length may be over-subscribed; `left` ends > 0 for an incomplete code.
  let left = 1;
  for (let l = 1; l <= MAX_BITS; l++) {
    left = left * 2 - count[l]!;
    if (left < 0) return null;
  }
  // zlib (inftrees.c) accepts an incomplete code only for literals/lengths and distances, and only
  // when its longest code is 1 bit: a single symbol.
  if (left > 0 && (!allowIncomplete || maxLen !== 1)) return null;
  // Symbols in code order: by length, then by symbol (canonical codes).
  const offs = new Uint16Array(MAX_BITS + 2);
  for (let l = 1; l <= MAX_BITS; l++) offs[l + 1] = offs[l]! + count[l]!;
  const symbols = new Uint16Array(offs[MAX_BITS + 1]!);
  const next = new Uint16Array(MAX_BITS + 2);
  for (let l = 1; l <= MAX_BITS; l++) next[l + 1] = (next[l]! + count[l]!) << 1;
  const fastBits = Math.min(maxLen, FAST_BITS);
  const fast = new Uint32Array(1 << fastBits);
  for (let s = 0; s < lens.length; s++) {
    const l = lens[s]!;
    if (l === 0) continue;
    symbols[offs[l]!++] = s;
    const code = next[l]!++;
    if (l > fastBits) continue;
    let rev = 0;
    for (let i = 0; i < l; i++) rev |= ((code >> i) & 1) << (l - 1 - i);
    // Every index whose low l bits are the reversed code.
    for (let i = rev; i < fast.length; i += 1 << l) fast[i] = (s << 4) | l;
  }
  return { fast, fastBits, count, symbols };
}

/**
 * Decodes a code longer than the fast table covers from `bits` (the next 15 or more, least
 * significant first): symbol << 4 | length, or 0 when no code matches.
 */
function decodeSlow(c: Code, bits: number): number {
  let code = 0; // the code read so far, most significant bit first
  let first = 0; // the first code of this length
  let index = 0; // where this length's symbols start in c.symbols
  for (let len = 1; len <= MAX_BITS; len++) {
    code |= (bits >>> (len - 1)) & 1;
    const n = c.count[len]!;
    if (code - first < n) return (c.symbols[index + code - first]! << 4) | len;
    index += n;
    first = (first + n) << 1;
    code <<= 1;
  }
  return 0;
}

let FIXED: { lit: Code; dist: Code } | undefined;

function fixedCodes(): { lit: Code; dist: Code } {
  if (FIXED) return FIXED;
  const lit = new Uint8Array(288);
  lit.fill(8, 0, 144);
  lit.fill(9, 144, 256);
  lit.fill(7, 256, 280);
  lit.fill(8, 280, 288);
  const dist = new Uint8Array(32).fill(5); // 30 and 31 are invalid, caught when decoded
  FIXED = { lit: buildCode(lit, false)!, dist: buildCode(dist, false)! };
  return FIXED;
}

/**
 * Walks the block starting at bit `startBit` of `buf`. Null when the bits are not a valid block, or
 * when it would read past `endBit` (exclusive; default the end of buf) or decode to more than
 * `maxLength` bytes.
 */
export function walkBlock(
  buf: Uint8Array,
  startBit: number,
  maxLength: number,
  endBit: number = buf.length * 8,
): WalkedBlock | null {
  let pos = startBit;
  // Up to 17 bits at `pos` (read past the end as zeros; the caller bounds pos by endBit).
  const peek = (): number => {
    const b = pos >>> 3;
    return ((buf[b]! | (buf[b + 1]! << 8) | (buf[b + 2]! << 16)) >>> (pos & 7)) | 0;
  };
  const take = (n: number): number => {
    const v = peek() & ((1 << n) - 1);
    pos += n;
    return v;
  };
  if (endBit - pos < 3) return null;
  const final = take(1) === 1;
  const type = take(2);
  if (type === 0) {
    pos = (pos + 7) & ~7;
    if (endBit - pos < 32) return null;
    const b = pos >>> 3;
    const len = buf[b]! | (buf[b + 1]! << 8);
    const nlen = buf[b + 2]! | (buf[b + 3]! << 8);
    if ((len ^ 0xffff) !== nlen || len > maxLength) return null;
    pos += 32 + len * 8;
    if (pos > endBit) return null;
    return { startBit, endBit: pos, length: len, reach: 0, final, stored: true };
  }
  let lit: Code;
  let dist: Code;
  if (type === 1) ({ lit, dist } = fixedCodes());
  else if (type === 2) {
    if (endBit - pos < 14) return null;
    const hlit = take(5) + 257;
    const hdist = take(5) + 1;
    const hclen = take(4) + 4;
    if (hlit > 286 || hdist > 30) return null;
    if (endBit - pos < hclen * 3) return null;
    const clens = new Uint8Array(19);
    for (let i = 0; i < hclen; i++) clens[CLEN_ORDER[i]!] = take(3);
    const clCode = buildCode(clens, false);
    if (!clCode) return null;
    const clMask = (1 << clCode.fastBits) - 1;
    const lens = new Uint8Array(hlit + hdist);
    for (let i = 0; i < lens.length;) {
      if (pos > endBit) return null;
      const e = clCode.fast[peek() & clMask]!; // code length codes are at most 7 bits: all fast
      if (e === 0) return null;
      pos += e & 15;
      const sym = e >>> 4;
      if (sym < 16) lens[i++] = sym;
      else {
        let n: number;
        let v = 0;
        if (sym === 16) {
          if (i === 0) return null;
          v = lens[i - 1]!;
          n = 3 + take(2);
        } else if (sym === 17) n = 3 + take(3);
        else n = 11 + take(7);
        if (i + n > lens.length) return null;
        lens.fill(v, i, i + n);
        i += n;
      }
    }
    if (lens[256] === 0) return null; // no end-of-block code
    const l = buildCode(lens.subarray(0, hlit), true);
    const d = buildCode(lens.subarray(hlit), true);
    if (!l || !d) return null;
    lit = l;
    dist = d;
  } else return null;

  const r = walkSymbols(buf, pos, endBit, maxLength, lit, dist);
  if (!r) return null;
  return { startBit, endBit: r.endBit, length: r.length, reach: r.reach, final, stored: false };
}

/** What walkSymbols found (one object, reused). */
const symbolsResult = { endBit: 0, length: 0, reach: 0 };

/**
 * The compressed data of a Huffman block, from bit `pos` to its end-of-block code: the hot loop,
 * with everything in locals. Each read takes 31 bits from 4 bytes (the top bit left out keeps the
 * value a small integer for V8), so at least 24 at any bit offset: a literal/length code and its
 * extra bits (15 + 5) in one read, a distance code (15) in another, its extra bits (13) in a third.
 */
function walkSymbols(
  buf: Uint8Array,
  pos: number,
  endBit: number,
  maxLength: number,
  lit: Code,
  dist: Code,
): typeof symbolsResult | null {
  const litFast = lit.fast;
  const litMask = (1 << lit.fastBits) - 1;
  const distFast = dist.fast;
  const distMask = (1 << dist.fastBits) - 1;
  let length = 0;
  let reach = 0;
  for (;;) {
    if (pos > endBit || length > maxLength) return null;
    let b = pos >>> 3;
    let v = (buf[b]! | (buf[b + 1]! << 8) | (buf[b + 2]! << 16) | ((buf[b + 3]! & 0x7f) << 24)) >> (pos & 7);
    let e = litFast[v & litMask]!;
    if (e === 0 && (e = decodeSlow(lit, v)) === 0) return null;
    const codeLen = e & 15;
    pos += codeLen;
    const sym = e >> 4;
    if (sym < 256) {
      length++;
      continue;
    }
    if (sym === 256) break;
    const li = sym - 257;
    if (li >= 29) return null;
    const lx = LEN_EXTRA[li]!;
    const len = LEN_BASE[li]! + ((v >> codeLen) & ((1 << lx) - 1));
    pos += lx;
    b = pos >>> 3;
    v = (buf[b]! | (buf[b + 1]! << 8) | (buf[b + 2]! << 16) | ((buf[b + 3]! & 0x7f) << 24)) >> (pos & 7);
    let de = distFast[v & distMask]!;
    if (de === 0 && (de = decodeSlow(dist, v)) === 0) return null;
    const di = de >> 4;
    if (di >= 30) return null;
    const distLen = de & 15;
    const dx = DIST_EXTRA[di]!;
    let x: number;
    if (distLen + dx <= 24) x = (v >> distLen) & ((1 << dx) - 1);
    else {
      const p = pos + distLen;
      b = p >>> 3;
      x = ((buf[b]! | (buf[b + 1]! << 8) | (buf[b + 2]! << 16)) >> (p & 7)) & ((1 << dx) - 1);
    }
    pos += distLen + dx;
    const d = DIST_BASE[di]! + x;
    if (d - length > reach) reach = d - length;
    length += len;
  }
  if (pos > endBit || length > maxLength) return null;
  symbolsResult.endBit = pos;
  symbolsResult.length = length;
  symbolsResult.reach = reach;
  return symbolsResult;
}
