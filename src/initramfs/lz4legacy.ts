/**
 * The LZ4 legacy frame, the only LZ4 container the kernel's initramfs unpacker reads (`lz4 -l`;
 * kernel lib/decompress_unlz4.c, lz4 doc/lz4_Frame_format.md "Legacy frame"):
 *
 *   offset 0   u32 LE  magic 0x184C2102
 *   then blocks: u32 LE compressed size, then that many bytes of one LZ4 block that decodes to
 *   8 MiB (the last block may decode to less). A u32 equal to the magic starts a new frame
 *   (concatenated frames). The stream has no end mark: it ends at the end of the input; trailing
 *   NUL padding (a "size" of 0) ends it too.
 *
 * Blocks are (de)compressed by lz4-napi (lz4_flex): its size-prefixed block format is
 * `u32 LE decoded size` + the raw block, so we add or strip that prefix. Compression runs
 * asynchronously in libuv's threadpool; decompression runs synchronously (uncompressSync): lz4-napi
 * 2.10's asynchronous uncompress never frees its output allocation (the declared 8 MiB per block,
 * measured +300 MiB RSS over 300 calls after GC; the sync call stays flat), found by the fuzz runs.
 */
import { createRequire } from 'node:module';
import { Transform, type TransformCallback } from 'node:stream';
import { UlfsError, hex } from '../errors.js';

export const LZ4_LEGACY_MAGIC = 0x184c2102;
export const LZ4_LEGACY_BLOCK = 8 << 20;
/** LZ4_compressBound(8 MiB): no valid block is larger. */
export const LZ4_LEGACY_MAX_COMPRESSED = LZ4_LEGACY_BLOCK + Math.floor(LZ4_LEGACY_BLOCK / 255) + 16;

const require = createRequire(import.meta.url);
interface Lz4Napi {
  compress(data: Uint8Array): Promise<Buffer>;
  uncompressSync(data: Uint8Array): Buffer;
}
let lib: Lz4Napi | undefined;
function lz4(): Lz4Napi {
  lib ??= require('lz4-napi') as Lz4Napi;
  return lib;
}

class Lz4LegacyDecoder extends Transform {
  private parts: Buffer[] = [];
  private size = 0;
  private offset = 0; // input offset of buf[0], for messages
  private sawMagic = false;
  private ended = false;

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.size += chunk.length;
    this.drain(false).then(() => cb(), cb);
  }
  override _flush(cb: TransformCallback): void {
    this.drain(true).then(() => cb(), cb);
  }

  /** The buffered input as one buffer of at least n bytes at its start (concatenates only when needed). */
  private get buf(): Buffer {
    if (this.parts.length === 0) return Buffer.alloc(0);
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts)];
    return this.parts[0]!;
  }
  private head(n: number): Buffer {
    if (this.parts.length && this.parts[0]!.length >= n) return this.parts[0]!;
    return this.buf;
  }
  private consume(n: number): void {
    const b = this.buf.subarray(n);
    this.parts = b.length ? [b] : [];
    this.size = b.length;
    this.offset += n;
  }

  private async drain(final: boolean): Promise<void> {
    for (;;) {
      if (this.ended) {
        if (!this.buf.every((b) => b === 0)) {
          throw new UlfsError(
            'COMPRESS_CORRUPT',
            `lz4 stream: data after the end mark at ${hex(this.offset)}`,
          );
        }
        this.consume(this.buf.length);
        return;
      }
      if (this.size < 4) {
        if (final && this.size > 0) {
          if (this.buf.every((b) => b === 0)) return;
          throw new UlfsError('COMPRESS_TRUNCATED', `lz4 stream truncated at ${hex(this.offset)}`);
        }
        if (final && !this.sawMagic) throw new UlfsError('COMPRESS_TRUNCATED', 'lz4 stream is empty');
        return;
      }
      const word = this.head(4).readUInt32LE(0);
      if (word === LZ4_LEGACY_MAGIC) {
        this.sawMagic = true;
        this.consume(4);
        continue;
      }
      if (!this.sawMagic)
        throw new UlfsError('COMPRESS_CORRUPT', `lz4 stream: no legacy magic at ${hex(this.offset)}`);
      if (word === 0) {
        this.ended = true; // NUL padding after the stream
        continue;
      }
      if (word > LZ4_LEGACY_MAX_COMPRESSED) {
        throw new UlfsError(
          'COMPRESS_CORRUPT',
          `lz4 block size ${hex(word)} at ${hex(this.offset)} is over the limit`,
        );
      }
      if (this.size < 4 + word) {
        if (final) throw new UlfsError('COMPRESS_TRUNCATED', `lz4 block at ${hex(this.offset)} truncated`);
        return;
      }
      const framed = Buffer.allocUnsafe(4 + word);
      framed.writeUInt32LE(LZ4_LEGACY_BLOCK, 0);
      this.buf.copy(framed, 4, 4, 4 + word);
      let out: Buffer;
      try {
        out = lz4().uncompressSync(framed);
      } catch (e) {
        throw new UlfsError(
          'COMPRESS_CORRUPT',
          `lz4 block at ${hex(this.offset)} is corrupt: ${(e as Error).message}`,
        );
      }
      this.consume(4 + word);
      this.push(out);
    }
  }
}

class Lz4LegacyEncoder extends Transform {
  private parts: Buffer[] = [];
  private size = 0;
  private started = false;

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.size += chunk.length;
    this.emitBlocks(false).then(() => cb(), cb);
  }
  override _flush(cb: TransformCallback): void {
    this.emitBlocks(true).then(() => cb(), cb);
  }

  private async emitBlocks(final: boolean): Promise<void> {
    if (!this.started) {
      const m = Buffer.alloc(4);
      m.writeUInt32LE(LZ4_LEGACY_MAGIC, 0);
      this.push(m);
      this.started = true;
    }
    while (this.size >= LZ4_LEGACY_BLOCK || (final && this.size > 0)) {
      const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
      const n = Math.min(LZ4_LEGACY_BLOCK, all.length);
      const block = all.subarray(0, n);
      const rest = all.subarray(n);
      this.parts = rest.length ? [rest] : [];
      this.size = rest.length;
      const c = await lz4().compress(block);
      // Replace lz4-napi's decoded-size prefix with the legacy frame's compressed-size prefix.
      c.writeUInt32LE(c.length - 4, 0);
      this.push(c);
    }
  }
}

export function createLz4LegacyDecoder(): Transform {
  return new Lz4LegacyDecoder();
}
export function createLz4LegacyEncoder(): Transform {
  return new Lz4LegacyEncoder();
}
