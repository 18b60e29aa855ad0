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
 * Blocks are (de)compressed by lz4-block.ts, synchronously, in buffers reused from block to block, so
 * memory stays flat however long the stream: the encoder keeps an 8 MiB block and its compressed
 * bytes; the decoder decodes a block as its bytes arrive, into 320 KiB (Lz4BlockDecoder).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { UlfsError, hex } from '../errors.js';
import { Lz4BlockDecoder, Lz4BlockError, Lz4Compressor, lz4CompressBound } from './lz4-block.js';

export const LZ4_LEGACY_MAGIC = 0x184c2102;
export const LZ4_LEGACY_BLOCK = 8 << 20;
/** LZ4_compressBound(8 MiB): no valid block is larger. */
export const LZ4_LEGACY_MAX_COMPRESSED = lz4CompressBound(LZ4_LEGACY_BLOCK);

/** Output leaves in copies of at most this size: no 8 MiB allocation per block. */
const PIECE = 256 << 10;
const EMPTY = Buffer.alloc(0);

/**
 * A Transform that hands out bytes from a buffer it keeps (a compressed block, decoded bytes) in
 * copies of at most PIECE bytes, one copy at a time as the reader takes them: when push() says the
 * reader has enough, the rest waits (with the input chunk and its callback) until _read asks for
 * more. Pushing a whole 8 MiB block at once queued up to 8 MiB of copies on each side of the filter,
 * long enough for them to be promoted to the old generation, which only a full GC frees.
 */
abstract class BlockTransform extends Transform {
  private input: Buffer = EMPTY;
  private at = 0;
  /** The callback of the chunk (or of the flush) being worked on; undefined between chunks. */
  private done: TransformCallback | undefined;
  /** The bytes [from, to) of `held` are still to be pushed. */
  private held: Uint8Array = EMPTY;
  private from = 0;
  private to = 0;
  private pushes = 0;

  /** Consumes `chunk` from `at` and returns where it stopped: at its end, or just after a hand(). */
  protected abstract consume(chunk: Buffer, at: number): number;
  /** At the end of the input: may hand() a last block. */
  protected abstract finish(): void;

  /** Queues `bytes` (a view: the subclass must not change them until they are pushed). */
  protected hand(bytes: Uint8Array): void {
    this.held = bytes;
    this.from = 0;
    this.to = bytes.length;
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.input = chunk;
    this.at = 0;
    this.done = cb;
    this.pump();
  }

  override _flush(cb: TransformCallback): void {
    this.done = cb;
    try {
      this.finish();
    } catch (e) {
      this.settle(e as Error);
      return;
    }
    this.pump();
  }

  override _read(size: number): void {
    // While a chunk is being worked on, the reader's demand resumes it; otherwise Transform's own
    // _read asks the writable side for the next chunk.
    if (!this.done) {
      super._read(size);
      return;
    }
    const pushes = this.pushes;
    this.pump();
    // A _read that pushes nothing leaves the readable side "reading", and it calls _read no more:
    // when the chunk's callback was parked by Transform (the reader still had enough), nothing
    // would release it. An empty push clears that state (stream docs, readable.push('')).
    if (this.pushes === pushes) this.push(EMPTY);
  }

  private pump(): void {
    try {
      for (;;) {
        while (this.from < this.to) {
          const end = Math.min(this.to, this.from + PIECE);
          const more = this.push(Buffer.from(this.held.subarray(this.from, end)));
          this.pushes++;
          this.from = end;
          if (!more) return; // resumed by _read
        }
        if (this.at >= this.input.length) break;
        this.at = this.consume(this.input, this.at);
      }
    } catch (e) {
      this.settle(e as Error);
      return;
    }
    this.settle(null);
  }

  private settle(err: Error | null): void {
    const cb = this.done;
    this.done = undefined;
    this.input = EMPTY;
    this.at = 0;
    cb?.(err);
  }
}

/**
 * Reads the frame word by word, and decodes each block as its bytes arrive (Lz4BlockDecoder), handing
 * out its decoded bytes whenever the decoder's buffer is full and at the block's end.
 */
class Lz4LegacyDecoder extends BlockTransform {
  /** The 4-byte word being read (`have` bytes so far) while `need` is 0. */
  private readonly word = Buffer.alloc(4);
  private readonly block = new Lz4BlockDecoder(LZ4_LEGACY_BLOCK);
  /** The compressed block being read: `need` bytes in all, `have` so far. */
  private need = 0;
  private have = 0;
  /** Input offset of the current word, for messages. */
  private offset = 0;
  private sawMagic = false;
  private ended = false;

  protected finish(): void {
    if (this.need > 0)
      throw new UlfsError('COMPRESS_TRUNCATED', `lz4 block at ${hex(this.offset)} truncated`);
    if (this.have > 0 && !this.ended && this.word.subarray(0, this.have).some((b) => b !== 0))
      throw new UlfsError('COMPRESS_TRUNCATED', `lz4 stream truncated at ${hex(this.offset)}`);
    if (!this.sawMagic) throw new UlfsError('COMPRESS_TRUNCATED', 'lz4 stream is empty');
  }

  protected consume(chunk: Buffer, at: number): number {
    while (at < chunk.length) {
      if (this.ended) {
        // After the NUL padding that ended the stream, only more NULs may follow.
        if (chunk.subarray(at).some((b) => b !== 0)) {
          throw new UlfsError(
            'COMPRESS_CORRUPT',
            `lz4 stream: data after the end mark at ${hex(this.offset)}`,
          );
        }
        return chunk.length;
      }
      if (this.need === 0) {
        const n = Math.min(4 - this.have, chunk.length - at);
        chunk.copy(this.word, this.have, at, at + n);
        this.have += n;
        at += n;
        if (this.have === 4) this.onWord(this.word.readUInt32LE(0));
        continue;
      }
      const next = this.decode(chunk, at, Math.min(chunk.length, at + this.need - this.have));
      this.have += next - at;
      at = next;
      if (this.have === this.need) {
        // A valid block ends after literals, so nothing of it is left to decode (finish checks).
        this.endBlock();
        this.hand(this.block.take());
        return at;
      }
      if (this.block.full) {
        this.hand(this.block.take());
        return at;
      }
    }
    return at;
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
    this.need = word;
    this.block.begin();
  }

  /** Decodes block bytes chunk[at, to); returns where the decoder stopped. */
  private decode(chunk: Buffer, at: number, to: number): number {
    try {
      return this.block.decode(chunk, at, to);
    } catch (e) {
      throw this.corrupt(e);
    }
  }

  private endBlock(): void {
    try {
      this.block.finish();
    } catch (e) {
      throw this.corrupt(e);
    }
    this.offset += 4 + this.need;
    this.need = 0;
    this.have = 0;
  }

  private corrupt(e: unknown): unknown {
    if (!(e instanceof Lz4BlockError)) return e;
    return new UlfsError('COMPRESS_CORRUPT', `lz4 block at ${hex(this.offset)} is corrupt: ${e.message}`);
  }
}

class Lz4LegacyEncoder extends BlockTransform {
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

  protected consume(chunk: Buffer, at: number): number {
    const n = chunk.copy(this.block, this.filled, at);
    this.filled += n;
    if (this.filled === LZ4_LEGACY_BLOCK) this.emitBlock();
    return at + n;
  }

  protected finish(): void {
    if (this.filled > 0) this.emitBlock();
  }

  private emitBlock(): void {
    const n = this.compressor.compress(this.block.subarray(0, this.filled), this.out.subarray(4));
    this.out.writeUInt32LE(n, 0);
    this.filled = 0;
    this.hand(this.out.subarray(0, 4 + n));
  }
}

export function createLz4LegacyDecoder(): Transform {
  return new Lz4LegacyDecoder();
}
/** An encoder at lz4's `level` (1-12; 9, `lz4 -9`, by default). */
export function createLz4LegacyEncoder(level = 9): Transform {
  return new Lz4LegacyEncoder(level);
}
