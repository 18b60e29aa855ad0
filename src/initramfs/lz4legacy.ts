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
 * Blocks are (de)compressed by lz4-block.ts, synchronously: one 8 MiB block at a time, in buffers
 * reused from block to block, so memory stays flat however long the stream.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { UlfsError, hex } from '../errors.js';
import { Lz4BlockError, Lz4Compressor, lz4CompressBound, lz4DecodeBlock } from './lz4-block.js';

export const LZ4_LEGACY_MAGIC = 0x184c2102;
export const LZ4_LEGACY_BLOCK = 8 << 20;
/** LZ4_compressBound(8 MiB): no valid block is larger. */
export const LZ4_LEGACY_MAX_COMPRESSED = lz4CompressBound(LZ4_LEGACY_BLOCK);

/** Decoded blocks leave in copies of at most this size: no 8 MiB allocation per block. */
const PIECE = 256 << 10;

/**
 * Reads the frame word by word and block by block into buffers it keeps (a block's compressed
 * bytes, its decoded bytes), and pushes copies of the decoded bytes in pieces.
 */
class Lz4LegacyDecoder extends Transform {
  /** The 4-byte word being read (`have` bytes so far) while `need` is 0. */
  private readonly word = Buffer.alloc(4);
  /** The compressed block being read: `need` bytes in all, `have` so far. */
  private staging: Buffer | undefined;
  private decoded: Buffer | undefined;
  private need = 0;
  private have = 0;
  /** Input offset of the current word, for messages. */
  private offset = 0;
  private sawMagic = false;
  private ended = false;

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consumeChunk(chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    let err: UlfsError | undefined;
    if (this.need > 0)
      err = new UlfsError('COMPRESS_TRUNCATED', `lz4 block at ${hex(this.offset)} truncated`);
    else if (this.have > 0 && !this.ended && this.word.subarray(0, this.have).some((b) => b !== 0))
      err = new UlfsError('COMPRESS_TRUNCATED', `lz4 stream truncated at ${hex(this.offset)}`);
    else if (!this.sawMagic) err = new UlfsError('COMPRESS_TRUNCATED', 'lz4 stream is empty');
    cb(err);
  }

  private consumeChunk(chunk: Buffer): void {
    for (let at = 0; at < chunk.length;) {
      if (this.ended) {
        // After the NUL padding that ended the stream, only more NULs may follow.
        if (chunk.subarray(at).some((b) => b !== 0)) {
          throw new UlfsError(
            'COMPRESS_CORRUPT',
            `lz4 stream: data after the end mark at ${hex(this.offset)}`,
          );
        }
        return;
      }
      if (this.need === 0) {
        const n = Math.min(4 - this.have, chunk.length - at);
        chunk.copy(this.word, this.have, at, at + n);
        this.have += n;
        at += n;
        if (this.have === 4) this.onWord(this.word.readUInt32LE(0));
      } else {
        const n = Math.min(this.need - this.have, chunk.length - at);
        chunk.copy(this.staging!, this.have, at, at + n);
        this.have += n;
        at += n;
        if (this.have === this.need) this.onBlock();
      }
    }
  }

  private onWord(word: number): void {
    this.have = 0;
    if (word === LZ4_LEGACY_MAGIC) {
      this.sawMagic = true;
      this.offset += 4;
      return;
    }
    if (!this.sawMagic)
      throw new UlfsError('COMPRESS_CORRUPT', `lz4 stream: no legacy magic at ${hex(this.offset)}`);
    if (word === 0) {
      this.ended = true; // NUL padding after the stream
      return;
    }
    if (word > LZ4_LEGACY_MAX_COMPRESSED) {
      throw new UlfsError(
        'COMPRESS_CORRUPT',
        `lz4 block size ${hex(word)} at ${hex(this.offset)} is over the limit`,
      );
    }
    this.staging ??= Buffer.allocUnsafe(LZ4_LEGACY_MAX_COMPRESSED);
    this.need = word;
  }

  private onBlock(): void {
    const out = (this.decoded ??= Buffer.allocUnsafe(LZ4_LEGACY_BLOCK));
    let n: number;
    try {
      n = lz4DecodeBlock(this.staging!.subarray(0, this.need), out);
    } catch (e) {
      if (!(e instanceof Lz4BlockError)) throw e;
      throw new UlfsError('COMPRESS_CORRUPT', `lz4 block at ${hex(this.offset)} is corrupt: ${e.message}`);
    }
    this.offset += 4 + this.need;
    this.need = 0;
    this.have = 0;
    for (let at = 0; at < n; at += PIECE) this.push(Buffer.from(out.subarray(at, Math.min(n, at + PIECE))));
  }
}

class Lz4LegacyEncoder extends Transform {
  /** The block being filled; `filled` bytes of it are input. */
  private readonly block = Buffer.allocUnsafe(LZ4_LEGACY_BLOCK);
  private filled = 0;
  /** Where each block is compressed to, behind its 4-byte size. */
  private readonly out = Buffer.allocUnsafe(4 + LZ4_LEGACY_MAX_COMPRESSED);
  private readonly compressor: Lz4Compressor;

  constructor(level: number) {
    super();
    // lz4hc: level L tries 2^(L-1) earlier positions; levels 1-2 are the fast mode (one).
    const l = Math.min(Math.max(Math.round(level), 1), 12);
    this.compressor = new Lz4Compressor(l <= 2 ? 1 : 2 ** (l - 1));
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(LZ4_LEGACY_MAGIC, 0);
    this.push(magic);
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    for (let at = 0; at < chunk.length;) {
      const n = chunk.copy(this.block, this.filled, at);
      this.filled += n;
      at += n;
      if (this.filled === LZ4_LEGACY_BLOCK) this.emitBlock();
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    if (this.filled > 0) this.emitBlock();
    cb();
  }

  private emitBlock(): void {
    const n = this.compressor.compress(this.block.subarray(0, this.filled), this.out.subarray(4));
    this.out.writeUInt32LE(n, 0);
    for (let at = 0; at < 4 + n; at += PIECE)
      this.push(Buffer.from(this.out.subarray(at, Math.min(4 + n, at + PIECE))));
    this.filled = 0;
  }
}

export function createLz4LegacyDecoder(): Transform {
  return new Lz4LegacyDecoder();
}
/** An encoder at lz4's `level` (1-12; 9, `lz4 -9`, by default). */
export function createLz4LegacyEncoder(level = 9): Transform {
  return new Lz4LegacyEncoder(level);
}
