/**
 * Little helpers over byte arrays: little- and big-endian integers at an offset, 64-bit values
 * assembled from lo/hi halves as exact Numbers (checked < 2^53), and zero tests.
 * On-disk structures (ext, MBR/GPT) are little-endian; kmod indexes and JBD2 are big-endian.
 */
import { UlfsError } from '../errors.js';

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export const u8 = (b: Uint8Array, off: number): number => b[off]!;
export const le16 = (b: Uint8Array, off: number): number => b[off]! | (b[off + 1]! << 8);
export const le32 = (b: Uint8Array, off: number): number =>
  (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
export const be16 = (b: Uint8Array, off: number): number => (b[off]! << 8) | b[off + 1]!;
export const be32 = (b: Uint8Array, off: number): number =>
  ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;

/** A little-endian u64 as an exact Number; throws if it is 2^53 or more. */
export function le64(b: Uint8Array, off: number): number {
  return hiLo(le32(b, off + 4), le32(b, off));
}

/** hi * 2^32 + lo, exact; throws LIMIT_EXCEEDED past Number.MAX_SAFE_INTEGER. */
export function hiLo(hi: number, lo: number): number {
  const v = hi * 0x1_0000_0000 + lo;
  if (v > Number.MAX_SAFE_INTEGER) {
    throw new UlfsError(
      'LIMIT_EXCEEDED',
      `64-bit value 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is too large`,
    );
  }
  return v;
}

export function setLe16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}
export function setLe32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}
export function setBe32(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 24) & 0xff;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}
/** Writes an exact Number as little-endian u64 (lo word first). */
export function setLe64(b: Uint8Array, off: number, v: number): void {
  setLe32(b, off, v % 0x1_0000_0000);
  setLe32(b, off + 4, Math.floor(v / 0x1_0000_0000));
}
export const lo32 = (v: number): number => (v % 0x1_0000_0000) >>> 0;
export const hi32 = (v: number): number => Math.floor(v / 0x1_0000_0000) >>> 0;

const ZERO_4K = Buffer.alloc(65536);

/** True when every byte is 0, compared natively (never byte by byte in JS). */
export function isZero(b: Uint8Array): boolean {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (let off = 0; off < buf.length; off += ZERO_4K.length) {
    const n = Math.min(ZERO_4K.length, buf.length - off);
    if (!buf.subarray(off, off + n).equals(ZERO_4K.subarray(0, n))) return false;
  }
  return true;
}

/** Decodes a NUL-terminated or fixed-width ASCII/UTF-8 field. */
export function cString(b: Uint8Array, off: number, max: number): string {
  let end = off;
  while (end < off + max && end < b.length && b[end] !== 0) end++;
  return Buffer.from(b.buffer, b.byteOffset + off, end - off).toString('utf8');
}

/** Formats 16 bytes as a UUID string (byte order as stored, which is how ext4 prints it). */
export function uuidString(b: Uint8Array, off: number): string {
  const h = Buffer.from(b.buffer, b.byteOffset + off, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
