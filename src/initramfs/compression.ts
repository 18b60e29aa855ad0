/**
 * Compression of initramfs segments: sniffing by magic number, streaming decoders and encoders.
 *
 * Magic numbers (the kernel's lib/decompress.c `compressed_formats` table):
 *   gzip  1f 8b            (also 1f 9e, old gzip)     zstd  28 b5 2f fd
 *   xz    fd 37 7a 58 5a 00                          lz4   02 21 4c 18 (legacy frame, `lz4 -l`)
 *   bzip2 42 5a 68 ('BZh')                           lzma  5d 00 00 (.lzma "alone" header)
 *   none  30 37 30 37 ('0707', a cpio magic)
 *
 * Libraries, chosen by measured speed (see bench/initramfs-*.ts and the H3 report):
 *   gzip       node:zlib (native, runs in libuv's threadpool); compression in parallel blocks
 *              (gzip-parallel.ts)
 *   zstd       node:zlib's zstd where the running Node has it, else zstd-napi (libzstd bindings):
 *              compression on the calling thread, in libzstd's threads at strong levels (see
 *              ZstdCompressor), decompression through pooled decoder contexts (see ZstdDecoder)
 *   xz, lzma   lzma-native (liblzma bindings, asynchronous in the threadpool)
 *   lz4        the legacy frame and the block codec are ours (lz4legacy.ts, lz4-block.ts)
 *   bzip2      not supported (COMPRESS_UNSUPPORTED)
 *
 * Written back the way the kernel reads it: gzip with no name and mtime 0 (level 7 by default), xz
 * with --check=crc32 and a 1 MiB dictionary (the kernel's xz decoder rejects CRC64 and caps the
 * dictionary), lz4 legacy frames of 8 MiB blocks, zstd at level 19 by default.
 */
import { createRequire } from 'node:module';
import * as os from 'node:os';
import { Transform, type TransformCallback, type TransformOptions } from 'node:stream';
import * as zlib from 'node:zlib';
import { UlfsError, hex } from '../errors.js';
import { ParallelGzip } from './gzip-parallel.js';
import type { GzipBlockSource } from './gzip-splice.js';
import { createLz4LegacyDecoder, createLz4LegacyEncoder } from './lz4legacy.js';

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'lz4' | 'bzip2' | 'lzma';
/** What the filter can write. */
export type OutputCompression = 'gzip' | 'zstd' | 'xz' | 'lz4' | 'none';

const require = createRequire(import.meta.url);

const MAGICS: ReadonlyArray<[Compression, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['gzip', [0x1f, 0x9e]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzma', [0x5d, 0x00, 0x00]],
  ['none', [0x30, 0x37, 0x30, 0x37]],
];

/** The longest magic: how many bytes sniffCompression wants to see. */
export const SNIFF_BYTES = 6;

/** The compression whose magic starts `head`, or undefined. `head` may be shorter than SNIFF_BYTES at EOF. */
export function sniffCompression(head: Uint8Array): Compression | undefined {
  for (const [name, magic] of MAGICS) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return name;
  }
  return undefined;
}

/**
 * Default levels: strong, stronger than the distributions' own (mkinitramfs writes gzip at its
 * default, 6). gzip is 7, not 9: with our deflate block cuts (gzip-parallel.ts) the longer match
 * searches of 8 and 9 buy 0.1-0.3 % on initramfs contents and cost 1.5-2x (8) and 3-4x (9) the CPU,
 * most of it on repetitive data where the hash chains are long. Measured (ParallelGzip, 2 cores;
 * bytes / CPU seconds) at levels 9, 8, 7: pruned bench initramfs 7,923,397 / 3.56, 7,922,103 / 1.71,
 * 7,931,034 / 1.12; MODULES=most initramfs, bytes 0-40 MB: 11,304,089 / 13.26, 11,283,341 / 4.78,
 * 11,318,299 / 2.26; bytes 80-120 MB: 11,466,580 / 11.95, 11,455,944 / 4.36, 11,487,599 / 2.06;
 * cloud MODULES=dep initramfs: 6,767,258 / 1.79, 6,767,689 / 1.07, 6,772,215 / 0.90.
 */
export const DEFAULT_LEVEL: Record<OutputCompression, number> = { gzip: 7, zstd: 19, xz: 6, lz4: 9, none: 0 };

export interface DecompressLimits {
  /** Output may not exceed this many times the input consumed so far (plus 64 MiB of slack). */
  maxExpansion?: number;
  /** Absolute cap on the decompressed size. */
  maxOutput?: number;
}

export const DEFAULT_MAX_EXPANSION = 100;
export const DEFAULT_MAX_OUTPUT = 4 * 1024 ** 3;
const EXPANSION_SLACK = 64 << 20;
const EMPTY = Buffer.alloc(0);

interface ZlibWithZstd {
  createZstdDecompress?: () => Transform;
  createZstdCompress?: (o: unknown) => Transform;
  constants: Record<string, number>;
}
const zlibZstd = zlib as unknown as ZlibWithZstd;

/** Maps a library's failure to COMPRESS_TRUNCATED or COMPRESS_CORRUPT. */
export function compressionError(c: Compression, e: unknown, offset?: number): UlfsError {
  if (e instanceof UlfsError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: string } | undefined)?.code ?? '';
  const truncated =
    /unexpected end|truncat|end of (file|input|stream)|ended in middle|incomplete|premature|no progress is possible/i.test(
      msg,
    ) ||
    code === 'Z_BUF_ERROR' ||
    code === 'LZMA_BUF_ERROR';
  return new UlfsError(
    truncated ? 'COMPRESS_TRUNCATED' : 'COMPRESS_CORRUPT',
    `${c} stream${offset !== undefined ? ` at ${hex(offset)}` : ''} is ${truncated ? 'truncated' : 'corrupt'}: ${msg}`,
    { compression: c, offset, cause: msg },
  );
}

/**
 * Loads a native codec binding. A failure (package missing, or built for another Node) is
 * COMPRESS_UNAVAILABLE, not a corrupt stream: the archive may be fine.
 */
export function loadNative<T>(name: string, what: string): T {
  try {
    return require(name) as T;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    throw new UlfsError(
      'COMPRESS_UNAVAILABLE',
      `${what} support needs the ${name.split('/')[0]} package, which could not be loaded: ${msg}`,
      { module: name, cause: msg },
    );
  }
}

/** A streaming decoder for `c`. Errors are raw library errors; wrap with compressionError. */
export function createDecompressor(c: Compression): Transform {
  switch (c) {
    case 'gzip': {
      // The filter decodes gzip with gunzip-reuse.ts where it can; this stream is the fallback (and
      // what other callers get). zlib streams pass their options on to Transform: the decoder runs up
      // to 1 MiB ahead of the cpio parser instead of waiting for it after every chunk (the default
      // high-water mark, 16 KiB, is below one 256 KiB chunk).
      const opts: zlib.ZlibOptions & TransformOptions = {
        chunkSize: 256 << 10,
        readableHighWaterMark: 1 << 20,
      };
      return zlib.createGunzip(opts);
    }
    case 'zstd': {
      if (typeof zlibZstd.createZstdDecompress === 'function') return zlibZstd.createZstdDecompress();
      return new ZstdDecoder();
    }
    case 'xz':
    case 'lzma':
      return lzmaNative().createStream('autoDecoder', { memlimit: 256 << 20 });
    case 'lz4':
      return createLz4LegacyDecoder();
    case 'none':
      return new Transform({ transform: (chunk, _e, cb) => cb(null, chunk) });
    case 'bzip2':
      throw new UlfsError('COMPRESS_UNSUPPORTED', `${c} decompression is not supported`, { compression: c });
  }
}

/**
 * A streaming encoder for `c` that the kernel can read; compression runs off the main thread, except
 * lz4 (lz4legacy.ts) and zstd (ZstdCompressor). With `blocks` (gzip only), its input is TaggedChunk
 * objects and the old stream's blocks are copied where they can be (gzip-splice.ts).
 */
export function createCompressor(
  c: OutputCompression | 'lzma',
  level?: number,
  blocks?: GzipBlockSource,
): Transform {
  switch (c) {
    case 'gzip':
      // Blocks deflated on every core, joined into one member with no name and mtime 0 (`gzip -n`).
      return new ParallelGzip(level ?? DEFAULT_LEVEL.gzip, os.availableParallelism(), blocks);
    case 'zstd': {
      const lvl = level ?? DEFAULT_LEVEL.zstd;
      if (typeof zlibZstd.createZstdCompress === 'function') {
        const k = zlibZstd.constants;
        return zlibZstd.createZstdCompress({
          params: { [k.ZSTD_c_compressionLevel!]: lvl, [k.ZSTD_c_checksumFlag!]: 1 },
        });
      }
      return new ZstdCompressor(lvl);
    }
    case 'xz': {
      const lz = lzmaNative();
      return lz.createStream('streamEncoder', {
        check: lz.CHECK_CRC32,
        filters: [{ id: lz.FILTER_LZMA2, options: lzmaOptions(lz, level ?? DEFAULT_LEVEL.xz) }],
      });
    }
    case 'lzma': {
      const lz = lzmaNative();
      return lz.createStream('aloneEncoder', lzmaOptions(lz, level ?? DEFAULT_LEVEL.xz));
    }
    case 'lz4':
      return createLz4LegacyEncoder(level ?? DEFAULT_LEVEL.lz4);
    case 'none':
      return new Transform({ transform: (chunk, _e, cb) => cb(null, chunk) });
  }
}

interface LzmaNative {
  createStream(coder: string, options: Record<string, unknown>): Transform;
  CHECK_CRC32: number;
  FILTER_LZMA2: number;
  MODE_FAST: number;
  MODE_NORMAL: number;
  MF_HC3: number;
  MF_HC4: number;
  MF_BT4: number;
}

/** The kernel's initramfs dictionary: `xz --lzma2=dict=1MiB`. */
const XZ_DICT = 1 << 20;

/**
 * The LZMA options of xz preset `level` (0-9; xz(1), "Custom compressor filter chains": presets 0-3
 * are the fast mode with hash chains, 4-9 the normal mode with binary trees), with a 1 MiB dictionary.
 * Spelled out because lzma-native applies `preset` after every other field: a preset with a
 * dictionary size (which it reads as `dictSize`) wrote the preset's own dictionary, 8 MiB at level 6.
 */
function lzmaOptions(lz: LzmaNative, level: number): Record<string, number> {
  const l = Math.min(9, Math.max(0, Math.trunc(level)));
  const fast = l <= 3;
  return {
    dictSize: XZ_DICT,
    lc: 3,
    lp: 0,
    pb: 2,
    mode: fast ? lz.MODE_FAST : lz.MODE_NORMAL,
    mf: l === 0 ? lz.MF_HC3 : fast ? lz.MF_HC4 : lz.MF_BT4,
    niceLen: fast ? (l <= 1 ? 128 : 273) : l === 4 ? 16 : l === 5 ? 32 : 64,
    depth: fast ? [4, 8, 24, 48][l]! : 0,
  };
}
let lzmaModule: LzmaNative | undefined;
function lzmaNative(): LzmaNative {
  lzmaModule ??= loadNative<LzmaNative>('lzma-native', 'xz and lzma');
  return lzmaModule;
}

/**
 * Counts input and output of a decoder and fails with COMPRESS_BOMB when the output outgrows the
 * limits. Put it after the decoder; call `consumed(n)` as input is written to the decoder.
 */
export class ExpansionGuard extends Transform {
  private inBytes = 0;
  private outBytes = 0;
  private readonly maxExpansion: number;
  private readonly maxOutput: number;
  constructor(
    private readonly compression: Compression,
    limits: DecompressLimits = {},
  ) {
    // Object mode on the readable side: each decoded chunk comes out as it is. A byte-mode readable
    // hands an async iterator all its buffered chunks concatenated, one more copy of every byte.
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    this.maxExpansion = limits.maxExpansion ?? DEFAULT_MAX_EXPANSION;
    this.maxOutput = limits.maxOutput ?? DEFAULT_MAX_OUTPUT;
  }
  consumed(n: number): void {
    this.inBytes += n;
  }
  /** Counts `n` more decoded bytes; throws COMPRESS_BOMB past the limits. */
  produced(n: number): void {
    this.outBytes += n;
    if (
      this.outBytes > this.maxOutput ||
      this.outBytes > this.inBytes * this.maxExpansion + EXPANSION_SLACK
    ) {
      throw new UlfsError(
        'COMPRESS_BOMB',
        `${this.compression} stream expands to over ${hex(this.outBytes)} bytes from ${hex(this.inBytes)}: over the limit (ratio ${this.maxExpansion}, cap ${hex(this.maxOutput)})`,
        { compression: this.compression, inBytes: this.inBytes, outBytes: this.outBytes },
      );
    }
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    try {
      this.produced(chunk.length);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }
}

/**
 * zstd decompression with a reused libzstd context. zstd-napi's DecompressStream makes a new DCtx per
 * stream and frees it only when the GC finalises the wrapper, which it does late: 4,000 small streams
 * took the process to 4.7 GB peak RSS (the fuzz runs found it). A decoder here borrows a context from a
 * small pool, resets it, and gives it back when the stream ends or is destroyed.
 */
type ZstdBinding = typeof import('zstd-napi/binding.js');
type DCtx = InstanceType<ZstdBinding['DCtx']>;
let zstdBinding: ZstdBinding | undefined;
const idleDCtx: DCtx[] = [];
const MAX_IDLE_DCTX = 4;

class ZstdDecoder extends Transform {
  private dctx: DCtx | undefined;
  private inFrame = false;
  private readonly binding: ZstdBinding;
  constructor() {
    super();
    this.binding = zstdBinding ??= loadNative<ZstdBinding>('zstd-napi/binding.js', 'zstd');
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    const b = this.binding;
    if (!this.dctx) {
      this.dctx = idleDCtx.pop() ?? new b.DCtx();
      this.dctx.reset(b.ResetDirective.sessionOnly);
    }
    try {
      let src = chunk;
      // Bounded: each turn either consumes input or fills the output buffer, which zstd guarantees
      // progress on; a turn that does neither with input left is a stuck stream.
      for (;;) {
        const dst = Buffer.allocUnsafe(b.dStreamOutSize());
        const [ret, produced, consumed] = this.dctx.decompressStream(dst, src);
        if (produced > 0) this.push(dst.subarray(0, produced));
        src = src.subarray(consumed);
        if (src.length === 0 && (produced < dst.length || ret === 0)) {
          this.inFrame = ret !== 0;
          break;
        }
        if (produced === 0 && consumed === 0) throw new Error('zstd decoder made no progress');
      }
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.release();
    cb(this.inFrame ? new Error('Stream ended in middle of compressed data frame') : null);
  }
  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.release();
    cb(err);
  }
  private release(): void {
    if (this.dctx && idleDCtx.length < MAX_IDLE_DCTX) idleDCtx.push(this.dctx);
    this.dctx = undefined;
  }
}

type CCtx = InstanceType<ZstdBinding['CCtx']>;
const idleCCtx: CCtx[] = [];

/**
 * zstd compression through zstd-napi's binding, on the calling thread (it was a worker thread running
 * zstd-napi's CompressStream: the thread's own isolate and the copies to and from it cost ~40 MB).
 *
 * Levels up to ZSTD_MT_LEVEL are compressed by the calling thread: at those speeds libzstd's worker
 * threads buy nothing and cost 4 MiB jobs that restart the window. Filtering a 62 MB archive of
 * shared libraries (zstd -19 input, 1/3 of the files dropped), multi-threaded -> here:
 *   level 3  12,660,522 -> 12,014,456 bytes, 0.7-0.9 -> 0.6-0.7 s, peak RSS 107-110 -> 81-82 MB
 *   level 9  11,287,900 -> 10,425,121 bytes, 2.0 -> 1.4 s, 127 -> 93 MB
 *   level 12 11,210,107 -> 10,333,822 bytes, 2.5 -> 2.5 s, 184 -> 122 MB
 * Above it, libzstd's workers compress (nbWorkers = cores) in 1 MiB jobs, each starting from the
 * 512 KiB of input before it (overlapLog 5). compressStream2 then only hands input to the jobs and
 * takes output back; it blocks while every worker is busy, when the filter has nothing better to do.
 */
const ZSTD_MT_LEVEL = 12;
/**
 * Memory of the multi-threaded levels. libzstd's input ring holds (workers + 3) jobs and its output
 * pool about as many, so RSS grows with the job size; each worker's match tables are capped at
 * chainLog 20 and hashLog 18 (level 19 asks for 24 and 22, ~90 MB per worker, for a window a job
 * never fills). Level 19, measured on 2 cores (bench/initramfs-rss.ts 100 zstd 19: filter peak RSS;
 * bench/initramfs-filter.ts zstd: the pruned Debian initramfs, `zstd -19` writes 6,845,731 bytes):
 *   4 MiB jobs, overlapLog 5, caps 21/19: 124 MB, 6,929,805 bytes, 3.9 s
 *   2 MiB jobs, overlapLog 5, caps 20/18: 102 MB, 6,965,447 bytes, 4.1 s
 *   1 MiB jobs, overlapLog 5, caps 20/18:  91 MB, 6,977,145 bytes, 3.8-4.5 s, 7.1-7.2 CPU s  <- these
 *   1 MiB jobs, overlapLog 6, caps 20/18:  92 MB, 6,961,035 bytes, 4.2-6.4 s, 7.8-10.6 CPU s
 *   1 MiB jobs, overlapLog 6, caps 21/19: 6,941,159 bytes, 5.1 s, 10 MB more
 * (the native pipeline: 12-16 s; the bigger prefix costs a third more CPU for 0.2 % less output).
 * The caps only lower the tables of the levels above ZSTD_MT_LEVEL.
 */
const ZSTD_MT_JOB_SIZE = 1 << 20;
const ZSTD_MT_OVERLAP_LOG = 5;
const ZSTD_MT_CHAIN_LOG = 20;
const ZSTD_MT_HASH_LOG = 18;
/** Each worker adds its tables (~6 MB) and two jobs' buffers: 4 keep the filter near 100 MB. */
const ZSTD_MT_MAX_WORKERS = 4;

class ZstdCompressor extends Transform {
  private readonly binding: ZstdBinding;
  private cctx: CCtx | undefined;
  private readonly out: Buffer;
  constructor(private readonly level: number) {
    super();
    this.binding = zstdBinding ??= loadNative<ZstdBinding>('zstd-napi/binding.js', 'zstd');
    this.out = Buffer.allocUnsafe(this.binding.cStreamOutSize());
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    try {
      this.compress(chunk, this.binding.EndDirective.continue);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.compress(EMPTY, this.binding.EndDirective.end);
    } catch (e) {
      cb(e as Error);
      return;
    }
    this.release();
    cb();
  }
  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.release();
    cb(err);
  }

  private start(): CCtx {
    if (this.cctx) return this.cctx;
    const b = this.binding;
    // Reused: a context's memory (with its tables and threads) goes only when the GC finalises it.
    const c = idleCCtx.pop() ?? new b.CCtx();
    c.reset(b.ResetDirective.sessionAndParameters);
    c.setParameter(b.CParameter.compressionLevel, this.level);
    c.setParameter(b.CParameter.checksumFlag, 1);
    if (this.level > ZSTD_MT_LEVEL) {
      // One core: no workers (a lone worker would only add its buffers). Memory grows with the
      // workers, so at most ZSTD_MT_MAX_WORKERS.
      const workers = Math.min(os.availableParallelism(), ZSTD_MT_MAX_WORKERS);
      if (workers > 1) {
        c.setParameter(b.CParameter.nbWorkers, workers);
        c.setParameter(b.CParameter.jobSize, ZSTD_MT_JOB_SIZE);
        c.setParameter(b.CParameter.overlapLog, ZSTD_MT_OVERLAP_LOG);
      }
      c.setParameter(b.CParameter.chainLog, ZSTD_MT_CHAIN_LOG);
      c.setParameter(b.CParameter.hashLog, ZSTD_MT_HASH_LOG);
    }
    this.cctx = c;
    return c;
  }

  private compress(src: Buffer, op: number): void {
    const c = this.start();
    const end = op === this.binding.EndDirective.end;
    for (;;) {
      const [ret, produced, consumed] = c.compressStream2(this.out, src, op);
      if (produced > 0) this.push(Buffer.from(this.out.subarray(0, produced)));
      src = src.subarray(consumed);
      if (src.length === 0 && (!end || ret === 0)) return;
    }
  }

  private release(): void {
    if (this.cctx && idleCCtx.length === 0) idleCCtx.push(this.cctx);
    this.cctx = undefined;
  }
}
