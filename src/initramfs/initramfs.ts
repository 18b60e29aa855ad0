/**
 * An initramfs file as the kernel reads it (Documentation/driver-api/early-userspace/
 * buffer-format.rst, init/initramfs.c): a sequence of segments
 *
 *   uncompressed cpio archive (ends at TRAILER!!!) + NUL padding      (any number: early microcode, ...)
 *   compressed stream holding one or more cpio archives + NUL padding (the main archive)
 *
 * A segment here is one uncompressed archive with the NUL padding after it, or one compressed stream.
 * Like unmkinitramfs and 3cpio, a compressed stream runs to the end of the file.
 *
 * filterInitramfs streams: decompress -> filter -> compress, with compression off the main thread,
 * memory bounded by the largest entry plus the filter's hold queue (filter.ts). Segments the filter
 * leaves unchanged are written back byte for byte: uncompressed ones because untouched entries keep
 * their raw bytes; compressed ones because the original compressed bytes are held (up to
 * KEEP_ORIGINAL_BYTES) until the first change, and written instead of the recompressed stream when no
 * change came.
 */
import { Readable, pipeline, type Duplex, type Transform } from 'node:stream';
import { UlfsError, hex } from '../errors.js';
import { readCpioEntry, type CpioEntry, type EntryLimits } from './archive.js';
import {
  SNIFF_BYTES,
  ExpansionGuard,
  compressionError,
  createCompressor,
  createDecompressor,
  sniffCompression,
  type Compression,
  type OutputCompression,
} from './compression.js';
import { CPIO_TRAILER, S_IFMT, S_IFREG, isCpioMagicPrefix, type CpioHeader } from './cpio.js';
import {
  ArchiveFilter,
  entryInfo,
  noteOrigins,
  writeRaw,
  type ArchiveFilterContext,
  type CpioEntryInfo,
  type Decision,
} from './filter.js';
import { ByteReader, type ByteInput } from './reader.js';
import { collectGarbage } from './gc.js';
import { ChunkPool } from '../binary/chunk-pool.js';
import { REUSE_CHUNK, gunzipReusing } from './gunzip-reuse.js';
import { GzipBlockSource } from './gzip-splice.js';
import { ParallelGzip, type TaggedChunk } from './gzip-parallel.js';

export type { CpioEntryInfo, Decision } from './filter.js';

export interface FilterOptions {
  decide: (entry: CpioEntryInfo) => Decision;
  /** Called at each archive's trailer: settle every Later handed out for it (see Decision). */
  onArchiveEnd?: () => void;
  /** Output compression of compressed segments; 'keep' (default) writes each back with its own. */
  compression?: 'keep' | OutputCompression;
  /** Compression level (default: strong, see compression.ts DEFAULT_LEVEL). */
  level?: number;
  /** Remove directories the filter left empty (default true). */
  removeEmptyDirs?: boolean;
  /** Decompression bomb cap: output/input ratio (default 100). */
  maxExpansion?: number;
  /** Decompression bomb cap: absolute decompressed size of one segment (default 4 GiB). */
  maxOutput?: number;
  /** Largest single entry accepted (default 1 GiB). */
  maxEntrySize?: number;
  /**
   * The input lends its chunks: each one the filter is done with (read past, nothing of it kept) is
   * handed back here, as a view of it (maybe of its tail), to be read into again: find the buffer by
   * its `.buffer`, and ignore buffers that are not yours (the filter's own copies of inputs that were
   * not Buffers; ChunkPool.put does both). Chunks never handed back are the filter's to keep, and
   * so are all chunks of zstd, xz and lz4 segments.
   */
  recycleInput?: (chunk: Buffer) => void;
}

export interface SegmentInfo {
  index: number;
  /** Byte offset of the segment in the file. */
  offset: number;
  /** Its length in the file, NUL padding after it included. */
  length: number;
  compression: Compression;
  /** Decompressed length (for 'none', the same as length). */
  uncompressedLength: number;
  /** cpio archives in the segment (a compressed stream may hold several). */
  archives: number;
  /** Decoded bytes written back as the old stream's own compressed blocks (gzip-splice.ts). */
  reusedBytes: number;
  /** See FilterSegmentReport. */
  reuseRefusedBytes: number;
  /** Entries, the trailers not counted. */
  entries: number;
}

export interface FilterSegmentReport {
  offset: number;
  length: number;
  compression: Compression;
  /** The compression written; equals `compression` when the segment was copied. */
  outputCompression: Compression;
  entriesBefore: number;
  entriesAfter: number;
  changed: boolean;
  /** Decoded bytes written back as the old stream's own compressed blocks (gzip-splice.ts). */
  reusedBytes: number;
  /**
   * Decoded bytes whose old blocks were found copyable but did not decode to them when checked, so
   * were deflated instead: 0 unless something is wrong (the check is the safety net).
   */
  reuseRefusedBytes: number;
}

export interface FilterReport {
  segments: FilterSegmentReport[];
  removed: string[];
  removedDirs: string[];
  bytesIn: number;
  bytesOut: number;
}

/** Original compressed bytes held (until the first change) to copy an unchanged segment verbatim. */
export const KEEP_ORIGINAL_BYTES = 64 << 20;
/** Entries in one archive. */
const MAX_ENTRIES = 10_000_000;
/** Archives in one file or compressed stream. */
const MAX_ARCHIVES = 100_000;
/**
 * A young-generation GC runs every GC_EVERY bytes of buffers that die in the filter, and every
 * MAJOR_GC_EVERY-th time a full one (see gc.ts). Those bytes are the decoder's output and the
 * encoder's. gzip decodes into reused buffers (gunzip-reuse.ts): for it they are the buffers it had
 * to allocate (those whose bytes were kept) and the input chunks not handed back. Before that they
 * were every decoded byte: on the prune bench's 132 MB initramfs 31 requested collections (7 full,
 * ~9 ms each) and 62 in all; now 9 (2 full) and 30 in all. The 500 MB gzip archive of
 * bench/initramfs-rss.ts (half its bytes kept) peaks at 81-82 MB now. From before, on that archive:
 * every 2 MiB, 97-103 MB peak RSS (buffers still in use get promoted); 4 MiB, 82-84 MB; 8 MiB,
 * 86-89 MB; none, 100-104 MB.
 * A full GC every 16 MiB rather than every 128 MiB: what the scavenges promote (input chunks held
 * while the decoder drains a block, the encoder's 8 MiB of input) is freed before it piles up.
 * Peak RSS, 500 MB archive: gzip 9 99 -> 87 MB, lz4 9 112 -> 94 MB. A full GC here takes ~7 ms (a
 * scavenge ~1.5): ~0.15 s more on 500 MB, within the noise of gzip 1 (6.2-6.9 s).
 */
const GC_EVERY = 4 << 20;
const MAJOR_GC_EVERY = 4;
/** Output is batched into chunks of about this size ... */
const OUT_CHUNK = 256 << 10;
/** ... and handed on at least every this many bytes read. */
const MARK_BYTES = 1 << 20;
const EMPTY = Buffer.alloc(0);

interface Walker {
  /** Output buffers that are input bytes as they were, by offset (see ArchiveFilterContext.origins). */
  origins?: WeakMap<Buffer, number>;
  /** Called per entry (trailer excluded); returns output buffers (filter) or nothing (list). */
  onArchiveStart(segment: number): void;
  onEntry(e: CpioEntry, out: Buffer[]): void;
  onTrailer(e: CpioEntry, out: Buffer[]): void;
}

/**
 * Parses cpio archives and NUL padding from `r`. At top level, stops after one archive (and its
 * padding) and returns; inside a compressed stream, runs to the end and rejects anything else.
 */
async function* walkArchives(
  r: ByteReader,
  w: Walker,
  segment: number,
  limits: EntryLimits,
  counts: { archives: number; entries: number },
  topLevel: boolean,
): AsyncGenerator<Buffer[]> {
  for (let a = 0; a < MAX_ARCHIVES; a++) {
    if (!topLevel) {
      const zeros = await takeZeros(r, w.origins);
      if (zeros.length) yield zeros;
      if (await r.atEnd()) return;
      await r.fill(6);
      if (!isCpioMagicPrefix(r.peek(Math.min(6, r.buffered)))) {
        throw new UlfsError(
          'CPIO_BAD_MAGIC',
          `no cpio magic at ${hex(r.offset)} of the decompressed stream of segment ${segment}`,
          { offset: r.offset, segment },
        );
      }
    }
    counts.archives++;
    w.onArchiveStart(segment);
    const archiveStart = r.offset;
    let archiveOut = 0;
    let out: Buffer[] = [];
    let outBytes = 0;
    let yieldedAt = r.offset;
    for (let i = 0; ; i++) {
      if (i > MAX_ENTRIES)
        throw new UlfsError('LIMIT_EXCEEDED', `cpio archive has over ${MAX_ENTRIES} entries`);
      if (await r.atEnd()) {
        throw new UlfsError(
          'CPIO_NO_TRAILER',
          `cpio archive of segment ${segment} ends at ${hex(r.offset)} without ${CPIO_TRAILER}`,
          {
            offset: r.offset,
            segment,
          },
        );
      }
      const e = await readCpioEntry(r, limits);
      const before = out.length;
      if (e.name === CPIO_TRAILER) {
        w.onTrailer(e, out);
      } else {
        counts.entries++;
        w.onEntry(e, out);
      }
      for (let k = before; k < out.length; k++) {
        outBytes += out[k]!.length;
        archiveOut += out[k]!.length;
      }
      // Also every MARK_BYTES read, even with nothing to write (an empty batch): a consumer learns
      // how far the input has gone (the gzip splice lets go of old compressed bytes by it).
      if (outBytes >= OUT_CHUNK || r.offset - yieldedAt >= MARK_BYTES) {
        yield out;
        out = [];
        outBytes = 0;
        yieldedAt = r.offset;
      }
      if (e.name === CPIO_TRAILER) break;
    }
    if (out.length) yield out;
    // The NUL padding after the trailer: copied as it is, unless the archive changed length and was
    // padded to 512-byte blocks (GNU cpio's block size, which unmkinitramfs relies on): then re-padded.
    const archiveIn = r.offset - archiveStart;
    const zeros = await takeZeros(r, w.origins);
    const zeroBytes = zeros.reduce((n, z) => n + z.length, 0);
    if (archiveOut === archiveIn || archiveOut === 0 || (archiveIn + zeroBytes) % 512 !== 0) {
      if (zeros.length) yield zeros;
    } else {
      const pad = (512 - (archiveOut % 512)) % 512;
      if (pad) yield [Buffer.alloc(pad)];
    }
    if (topLevel) return;
  }
  throw new UlfsError('LIMIT_EXCEEDED', `over ${MAX_ARCHIVES} cpio archives`);
}

/** r.takeZeros(), noting where the zeros came from. */
async function takeZeros(r: ByteReader, origins: WeakMap<Buffer, number> | undefined): Promise<Buffer[]> {
  const at = r.offset;
  const zeros = await r.takeZeros();
  noteOrigins(origins, zeros, at);
  return zeros;
}

interface SegmentHooks {
  walker: Walker;
  /** Where compressed segments go: undefined = decode only (list). */
  output?: { target: (c: Compression) => OutputCompression | 'lzma'; level?: number };
  limits: EntryLimits & { maxExpansion?: number; maxOutput?: number };
  segments: SegmentInfo[];
  /** The input's chunks are lent: see FilterOptions.recycleInput. */
  recycleInput?: (chunk: Buffer) => void;
  /** Called when a segment starts; returns a per-segment context. */
  startSegment(info: SegmentInfo): { changed(): boolean };
  outputCompression(index: number, c: Compression): void;
}

/** The whole file: yields output chunks (filter) and fills hooks.segments. */
async function* walkFile(input: ByteInput, hooks: SegmentHooks): AsyncGenerator<Buffer> {
  const r = new ByteReader(input, { recycle: hooks.recycleInput });
  try {
    let index = 0;
    for (let s = 0; s < MAX_ARCHIVES; s++) {
      const zeros = await r.takeZeros();
      const prev = hooks.segments[hooks.segments.length - 1];
      let lead: Buffer[] = [];
      if (zeros.length) {
        if (prev) {
          const n = zeros.reduce((a, b) => a + b.length, 0);
          prev.length += n;
          if (prev.compression === 'none') prev.uncompressedLength += n;
          yield* zeros;
        } else lead = zeros; // NULs before the first segment count as part of it
      }
      if (await r.atEnd()) return;
      await r.fill(SNIFF_BYTES);
      const head = r.peek(Math.min(SNIFF_BYTES, r.buffered));
      const c = sniffCompression(head);
      const leadLen = lead.reduce((a, b) => a + b.length, 0);
      const info: SegmentInfo = {
        index,
        offset: r.offset - leadLen,
        length: 0,
        compression: c ?? 'none',
        uncompressedLength: 0,
        archives: 0,
        entries: 0,
        reusedBytes: 0,
        reuseRefusedBytes: 0,
      };
      if (c === undefined) {
        throw new UlfsError(
          'INITRAMFS_GARBAGE',
          `neither a cpio archive nor a known compressed stream at ${hex(r.offset)} (bytes ${head.toString('hex')})`,
          { offset: r.offset },
        );
      }
      hooks.segments.push(info);
      const seg = hooks.startSegment(info);
      yield* lead;
      if (c === 'none') {
        const start = r.offset;
        const counts = { archives: 0, entries: 0 };
        for await (const bufs of walkArchives(r, hooks.walker, index, hooks.limits, counts, true))
          yield* bufs;
        info.length = r.offset - start + leadLen;
        info.uncompressedLength = info.length;
        info.archives = counts.archives;
        info.entries = counts.entries;
        hooks.outputCompression(index, 'none');
      } else {
        yield* compressedSegment(r, c, info, hooks, seg);
        return; // a compressed stream runs to the end of the file
      }
      index++;
    }
    throw new UlfsError('LIMIT_EXCEEDED', `over ${MAX_ARCHIVES} segments`);
  } finally {
    await r.close();
  }
}

async function* compressedSegment(
  r: ByteReader,
  c: Compression,
  info: SegmentInfo,
  hooks: SegmentHooks,
  seg: { changed(): boolean },
): AsyncGenerator<Buffer> {
  const start = r.offset;
  const target = hooks.output?.target(c);
  const mayCopy = target === c;
  let original: Buffer[] | undefined = mayCopy ? [] : undefined;
  let originalBytes = 0;
  const guard = new ExpansionGuard(c, {
    maxExpansion: hooks.limits.maxExpansion,
    maxOutput: hooks.limits.maxOutput,
  });
  async function* source(): AsyncGenerator<Buffer> {
    for await (const b of r.rest()) {
      guard.consumed(b.length);
      if (original) {
        if (seg.changed() || originalBytes + b.length > KEEP_ORIGINAL_BYTES) original = undefined;
        else {
          original.push(r.hold(b)); // held for the unchanged case: never handed back
          originalBytes += b.length;
        }
      }
      yield b;
    }
  }
  // Input bytes decoded from and not handed back: garbage (paceGc).
  let inputDropped = 0;
  const inputDone = (b: Buffer): void => {
    if (!r.release(b)) inputDropped += b.length;
  };
  // gzip decodes into reused buffers where node's zlib allows it (gunzip-reuse.ts), else a stream.
  const pool = c === 'gzip' ? new ChunkPool(REUSE_CHUNK) : null;
  // gzip written back as gzip, at the level nobody chose: old deflate blocks are copied where they
  // can be (gzip-splice.ts), which needs the decoder to record where its blocks are.
  const blocks =
    c === 'gzip' && target === 'gzip' && hooks.output?.level === undefined && hooks.walker.origins
      ? new GzipBlockSource(inputDone)
      : undefined;
  const reusing = pool && gunzipReusing(source(), pool, guard, inputDone, blocks);
  const splice = reusing ? blocks : undefined;
  let decoded: AsyncIterable<Buffer>;
  let stream: Duplex | undefined;
  if (reusing) decoded = reusing;
  else {
    let decoder: Transform;
    try {
      decoder = createDecompressor(c);
    } catch (e) {
      throw compressionError(c, e, start);
    }
    decoded = stream = pipeline(Readable.from(source(), { objectMode: false }), decoder, guard, () => {});
  }
  const inner = new ByteReader(decoded, reusing ? { recycle: (b) => pool!.put(b) } : {});
  const counts = { archives: 0, entries: 0 };
  let decodedBytes = 0;
  let encodedBytes = 0;
  let garbage = 0;
  // Every GC_EVERY bytes of buffers that die here, free them (gc.ts): the decoder's output (with a
  // pool only its new buffers, the reused ones are not garbage, and the input chunks not handed
  // back) and the encoder's.
  const paceGc = (): void => {
    const dead = (reusing ? pool!.allocatedBytes + inputDropped : decodedBytes) + encodedBytes;
    const n = Math.floor(dead / GC_EVERY);
    if (n > Math.floor(garbage / GC_EVERY)) collectGarbage(n % MAJOR_GC_EVERY === 0 ? 'major' : 'minor');
    garbage = dead;
  };
  inner.onChunk = (b: Buffer): void => {
    decodedBytes += b.length;
    paceGc();
  };
  const filtered = async function* (): AsyncGenerator<Buffer> {
    for await (const bufs of walkArchives(inner, hooks.walker, info.index, hooks.limits, counts, false)) {
      yield* bufs; // as they are: concatenating would copy every byte once more
    }
  };
  // For the splicing encoder: each buffer with where its bytes sat in the decoded stream, and after
  // a batch with nothing to write (dropped entries), how far the input has gone.
  const origins = hooks.walker.origins;
  const tagged = async function* (): AsyncGenerator<TaggedChunk> {
    for await (const bufs of walkArchives(inner, hooks.walker, info.index, hooks.limits, counts, false)) {
      if (bufs.length === 0) yield { data: EMPTY, source: inner.offset };
      for (const b of bufs) yield { data: b, source: origins?.get(b) ?? -1 };
    }
  };
  const finishInfo = (): void => {
    info.length = r.offset - info.offset;
    info.uncompressedLength = decodedBytes;
    info.archives = counts.archives;
    info.entries = counts.entries;
  };
  try {
    if (!hooks.output || target === undefined) {
      for await (const _ of filtered()) void _;
      finishInfo();
      return;
    }
    const compressor = createCompressor(target, hooks.output.level, splice);
    const compressed = splice
      ? pipeline(Readable.from(tagged(), { objectMode: true }), compressor, () => {})
      : pipeline(Readable.from(filtered(), { objectMode: false }), compressor, () => {});
    let heldOut: Buffer[] | undefined = mayCopy ? [] : undefined;
    for await (const chunk of compressed as AsyncIterable<Buffer>) {
      encodedBytes += chunk.length;
      paceGc();
      if (heldOut && !seg.changed() && original) {
        heldOut.push(chunk);
        continue;
      }
      if (heldOut) {
        yield* heldOut;
        heldOut = undefined;
      }
      yield chunk;
    }
    finishInfo();
    if (heldOut && original && !seg.changed()) {
      // Unchanged: the original bytes, not our recompression.
      hooks.outputCompression(info.index, c);
      yield* original;
      return;
    }
    hooks.outputCompression(info.index, target);
    if (compressor instanceof ParallelGzip) {
      info.reusedBytes = compressor.spliced.copied - compressor.spliced.refused;
      info.reuseRefusedBytes = compressor.spliced.refused;
    }
    if (heldOut) yield* heldOut;
  } catch (e) {
    throw compressionError(c, e, start);
  } finally {
    if (reusing) await reusing.return(undefined);
    blocks?.close();
    stream?.destroy();
  }
}

/** Output compression for a segment compressed with `c`. */
function targetFor(opt: FilterOptions['compression'], c: Compression): OutputCompression | 'lzma' {
  if (opt && opt !== 'keep') return opt;
  if (c === 'bzip2')
    throw new UlfsError('COMPRESS_UNSUPPORTED', 'bzip2 cannot be written back; choose a compression');
  return c === 'none' ? 'none' : c;
}

/**
 * Filters an initramfs: see FilterOptions. `output` streams the new file; `done` resolves with the
 * report when the output has been produced (and rejects with the UlfsError that stopped it).
 * `output` is an object-mode stream of Buffers, many of them views of the input's chunks: pipe it or
 * iterate it (a consumer that keeps chunks keeps those input chunks alive).
 */
export function filterInitramfs(
  input: ByteInput,
  opts: FilterOptions,
): { output: Readable; done: Promise<FilterReport> } {
  const report: FilterReport = { segments: [], removed: [], removedDirs: [], bytesIn: 0, bytesOut: 0 };
  const segments: SegmentInfo[] = [];
  const ctxs: ArchiveFilterContext[] = [];
  let filter: ArchiveFilter | undefined;
  let current = 0;
  // Decided as soon as an entry's header is read, so that a dropped entry's data is read past, never
  // copied out of the decoded stream (most of a pruned initramfs). Hard-link members always keep
  // their data: it may move to a surviving link.
  const decided = new WeakMap<CpioHeader, Decision>();
  const origins = new WeakMap<Buffer, number>();
  const decideEarly = (header: CpioHeader, name: string): boolean => {
    if (name === CPIO_TRAILER || ((header.mode & S_IFMT) === S_IFREG && header.nlink > 1)) return true;
    const d = opts.decide(entryInfo({ header, name }, current));
    decided.set(header, d);
    return d !== 'drop';
  };
  const walker: Walker = {
    onArchiveStart(segment) {
      current = segment;
      filter = new ArchiveFilter(ctxs[segment]!);
    },
    onEntry(e, out) {
      filter!.add(e, out);
    },
    onTrailer(e, out) {
      filter!.finish(out);
      writeRaw(e, out, origins);
    },
    origins,
  };
  const outComp: Compression[] = [];
  const hooks: SegmentHooks = {
    walker,
    output: { target: (c) => targetFor(opts.compression, c), level: opts.level },
    limits: {
      maxExpansion: opts.maxExpansion,
      maxOutput: opts.maxOutput,
      maxEntrySize: opts.maxEntrySize,
      wantData: decideEarly,
    },
    segments,
    recycleInput: opts.recycleInput,
    startSegment(info) {
      const ctx: ArchiveFilterContext = {
        decide: opts.decide,
        onArchiveEnd: opts.onArchiveEnd,
        decided,
        removeEmptyDirs: opts.removeEmptyDirs ?? true,
        segment: info.index,
        removed: report.removed,
        removedDirs: report.removedDirs,
        changed: false,
        entriesBefore: 0,
        entriesAfter: 0,
        origins,
      };
      ctxs[info.index] = ctx;
      return { changed: () => ctx.changed };
    },
    outputCompression(index, c) {
      outComp[index] = c;
    },
  };
  let resolve!: (r: FilterReport) => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<FilterReport>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers that only watch `output` must not see an unhandled rejection.
  done.catch(() => {});
  const counted = async function* (): AsyncGenerator<Buffer> {
    try {
      for await (const b of walkFile(countingInput(input, report), hooks)) {
        report.bytesOut += b.length;
        yield b;
      }
      report.segments = segments.map((s) => {
        const ctx = ctxs[s.index]!;
        return {
          offset: s.offset,
          length: s.length,
          compression: s.compression,
          outputCompression: outComp[s.index] ?? s.compression,
          entriesBefore: ctx.entriesBefore,
          entriesAfter: ctx.entriesAfter,
          changed: ctx.changed || (outComp[s.index] ?? s.compression) !== s.compression,
          reusedBytes: s.reusedBytes,
          reuseRefusedBytes: s.reuseRefusedBytes,
        };
      });
      resolve(report);
    } catch (e) {
      reject(e);
      throw e;
    }
  };
  // Object mode: chunks reach the reader as they are. A byte-mode Readable read through its async
  // iterator hands out Buffer.concat of everything buffered: a copy of every byte, and garbage.
  const output = Readable.from(counted(), { objectMode: true, highWaterMark: 16 });
  return { output, done };
}

async function* countingInput(input: ByteInput, report: FilterReport): AsyncGenerator<Buffer> {
  for await (const b of input as AsyncIterable<Buffer | string>) {
    const buf =
      typeof b === 'string'
        ? Buffer.from(b, 'latin1')
        : Buffer.isBuffer(b)
          ? b
          : Buffer.from(b as Uint8Array);
    report.bytesIn += buf.length;
    yield buf;
  }
}

export interface ListOptions {
  /** Entries whose contents to collect into `data` (small files such as modules.dep). */
  withData?: (entry: CpioEntryInfo) => boolean;
  maxExpansion?: number;
  maxOutput?: number;
  maxEntrySize?: number;
}

/** Lists the segments and entries of an initramfs (decodes everything, verifies crc checksums). */
export async function listInitramfs(
  input: ByteInput,
  opts: ListOptions = {},
): Promise<{ segments: SegmentInfo[]; entries: CpioEntryInfo[]; data: Map<string, Buffer> }> {
  const segments: SegmentInfo[] = [];
  const entries: CpioEntryInfo[] = [];
  const data = new Map<string, Buffer>();
  let segment = 0;
  const walker: Walker = {
    onArchiveStart(s) {
      segment = s;
    },
    onEntry(e) {
      const info = entryInfo(e, segment);
      entries.push(info);
      if (opts.withData?.(info)) data.set(e.name, Buffer.concat(e.data, e.header.fileSize));
    },
    onTrailer() {},
  };
  const hooks: SegmentHooks = {
    walker,
    limits: {
      maxExpansion: opts.maxExpansion,
      maxOutput: opts.maxOutput,
      maxEntrySize: opts.maxEntrySize,
      // Data nobody asked for is read past, not copied out of the decoded stream.
      wantData: (header, name) => opts.withData?.(entryInfo({ header, name }, segment)) ?? false,
    },
    segments,
    startSegment: () => ({ changed: () => false }),
    outputCompression() {},
  };
  for await (const _ of walkFile(input, hooks)) void _;
  return { segments, entries, data };
}
