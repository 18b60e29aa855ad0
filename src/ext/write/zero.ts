/**
 * Zero free blocks like zerofree (ext4-brief §12): every block whose bitmap bit is clear (bitmaps of
 * BLOCK_UNINIT groups synthesized, never read) and that is not already all zero is overwritten with
 * zeros; blocks already zero are not written, so sparse image files stay sparse. No metadata changes.
 *
 * Free runs are read in pieces of up to 512 KiB, around the page cache while they come out all
 * zero (see Zeroer.uncached), compared natively (Buffer.equals) first as a
 * whole piece, then block by block only when the piece is not all zero; consecutive dirty blocks are
 * written in one call.
 *
 * Option `journal`: also zero the log area (every block after the journal superblock) of a clean
 * internal journal. With s_start = 0 the log holds nothing to replay, so e2fsck stays clean.
 */
import { UlfsError } from '../../errors.js';
import { allocAligned, readUncached, writeVolatile } from '../../image/blockdev.js';
import { freeRuns } from '../bitmaps.js';
import { groupBlockCount, groupFirstBlock } from './geometry.js';
import { mapInode } from './mapping.js';
import { journalState } from './safety.js';
import type { Volume } from './volume.js';

/**
 * Small enough that a piece stays in the CPU cache between the read that fills it and the compare
 * (mostly holes, 1.4 GB of them on the prune bench image: zero phase 0.21-0.23 s with 4 MiB pieces,
 * 0.16-0.18 s with 256 KiB-1 MiB); garbage-filled free space (bench/ext-zero.ts) is no slower.
 */
const PIECE = 512 << 10;

export interface ZeroOptions {
  dryRun?: boolean;
  /** Called with (blocks done, blocks total) after each piece. */
  onProgress?: (done: number, total: number) => void;
  /** Also zero the log area of a clean internal journal. */
  journal?: boolean;
  /**
   * Runs [first block, count] known to hold data, e.g. the blocks this prune freed: where still free,
   * they are overwritten without being read and compared first.
   */
  dirty?: [number, number][];
}

export interface ZeroReport {
  blocksScanned: number;
  blocksAlreadyZero: number;
  blocksZeroed: number;
  bytesWritten: number;
  /** Journal log blocks zeroed (with `journal`), also counted in blocksZeroed/bytesWritten. */
  journalBlocksZeroed: number;
}

/** The field-by-field sum of reports (all zeros for none): several filesystems, one total. */
export function sumZeroReports(reports: ZeroReport[]): ZeroReport {
  const total: ZeroReport = {
    blocksScanned: 0,
    blocksAlreadyZero: 0,
    blocksZeroed: 0,
    bytesWritten: 0,
    journalBlocksZeroed: 0,
  };
  const keys = Object.keys(total) as (keyof ZeroReport)[];
  for (const r of reports) for (const k of keys) total[k] += r[k];
  return total;
}

/** Runs sorted by first block, overlapping or touching ones merged. */
function mergeRuns(runs: [number, number][]): [number, number][] {
  const sorted = [...runs].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [first, count] of sorted) {
    const last = out[out.length - 1];
    if (last && first <= last[0] + last[1]) last[1] = Math.max(last[1], first + count - last[0]);
    else out.push([first, count]);
  }
  return out;
}

/** Free runs of the whole filesystem, as [first block, count]. */
export function freeBlockRuns(vol: Volume): [number, number][] {
  const out: [number, number][] = [];
  for (let g = 0; g < vol.geo.groupCount; g++) {
    const bm = vol.blockBitmap(g);
    for (const r of freeRuns(bm, groupBlockCount(vol.geo, g), groupFirstBlock(vol.geo, g))) out.push(r);
  }
  return out;
}

class Zeroer {
  readonly report: ZeroReport = sumZeroReports([]);
  private readonly buf: Buffer;
  private readonly zero: Buffer;
  private done = 0;
  /**
   * Whether the next piece is read around the page cache. Free space in an image is mostly holes
   * (a sparse file) or leftover data (often still cached from writing the image). A hole read
   * through the cache costs a zero-filled cache page per 4 KiB, which an uncached read avoids (a fresh
   * 2 GiB sparse copy: 5.6 s -> 1.0 s); cached data read uncached costs a write-back and a device
   * read instead (1.5 GiB of it: 1.4 s -> 2.0 s). So: uncached after an all-zero piece, cached after
   * one with data.
   */
  private uncached = true;

  constructor(
    readonly vol: Volume,
    readonly opts: ZeroOptions,
    readonly total: number,
  ) {
    const piece = Math.max(vol.bs, Math.floor(PIECE / vol.bs) * vol.bs);
    this.buf = allocAligned(piece);
    this.zero = Buffer.alloc(piece);
  }

  /**
   * Free blocks carry nothing worth an undo record or an fsync: writeVolatile (on a JournaledDevice,
   * writeUnlogged, which requires the metadata writes to be synced first).
   */
  private write(pos: number, data: Buffer): void {
    writeVolatile(this.vol.dev, pos, data);
  }

  /** Zeroes blocks [first, first+count) without looking: they are known to hold data. */
  overwrite(first: number, count: number): void {
    const { vol } = this;
    const per = this.zero.length / vol.bs;
    for (let off = 0; off < count; off += per) {
      const n = Math.min(per, count - off);
      vol.checkBlock(first + off + n - 1, 'free block');
      if (!this.opts.dryRun) {
        this.write((first + off) * vol.bs, this.zero.subarray(0, n * vol.bs));
        this.report.bytesWritten += n * vol.bs;
      }
      this.report.blocksScanned += n;
      this.report.blocksZeroed += n;
      this.done += n;
      this.opts.onProgress?.(this.done, this.total);
    }
  }

  /** Zeroes blocks [first, first+count) that are not zero yet. Returns blocks written. */
  run(first: number, count: number): number {
    const { vol } = this;
    const bs = vol.bs;
    const dev = vol.dev;
    const per = this.buf.length / bs;
    let written = 0;
    for (let off = 0; off < count; off += per) {
      const n = Math.min(per, count - off);
      const start = first + off;
      vol.checkBlock(start + n - 1, 'free block');
      const view = this.buf.subarray(0, n * bs);
      if (this.uncached) readUncached(dev, view, start * bs);
      else dev.readInto(view, start * bs);
      this.report.blocksScanned += n;
      const allZero = view.equals(this.zero.subarray(0, n * bs));
      // Zeros and data both come in long stretches: read the next piece the way that suits this one.
      this.uncached = allZero;
      if (allZero) {
        this.report.blocksAlreadyZero += n;
      } else {
        const zb = this.zero.subarray(0, bs);
        let k = 0;
        while (k < n) {
          if (view.subarray(k * bs, (k + 1) * bs).equals(zb)) {
            this.report.blocksAlreadyZero++;
            k++;
            continue;
          }
          let j = k + 1;
          while (j < n && !view.subarray(j * bs, (j + 1) * bs).equals(zb)) j++;
          if (!this.opts.dryRun) {
            this.write((start + k) * bs, this.zero.subarray(0, (j - k) * bs));
            this.report.bytesWritten += (j - k) * bs;
          }
          this.report.blocksZeroed += j - k;
          written += j - k;
          k = j;
        }
      }
      this.done += n;
      this.opts.onProgress?.(this.done, this.total);
    }
    return written;
  }
}

/** Zeroes the free blocks of `vol` (the caller has passed the safety gate). */
export function zeroFreeInVolume(vol: Volume, opts: ZeroOptions = {}): ZeroReport {
  const runs = freeBlockRuns(vol);
  let total = runs.reduce((s, r) => s + r[1], 0);
  let journalRuns: [number, number][] = [];
  if (opts.journal) {
    const js = journalState(vol);
    if (js.kind === 'internal') {
      if (js.needsRecovery || !js.logEmpty || js.errno) {
        throw new UlfsError('EXT_JOURNAL_DIRTY', 'the journal is not clean; its log cannot be zeroed');
      }
      const map = mapInode(vol, vol.geo.journalInum, vol.inode(vol.geo.journalInum));
      for (const r of map.runs) {
        // logical block 0 is the journal superblock: keep it
        if (r.logical === 0) {
          if (r.length > 1) journalRuns.push([r.physical + 1, r.length - 1]);
        } else journalRuns.push([r.physical, r.length]);
      }
      total += journalRuns.reduce((s, r) => s + r[1], 0);
    } else journalRuns = [];
  }
  const z = new Zeroer(vol, opts, total);
  const dirty = mergeRuns(opts.dirty ?? []);
  let d = 0; // the first dirty run that may still overlap; free runs come in block order
  for (const [first, count] of runs) {
    // Split the free run into the parts inside and outside dirty runs.
    let at = first;
    const end = first + count;
    while (at < end) {
      while (d < dirty.length && dirty[d]![0] + dirty[d]![1] <= at) d++;
      const next = d < dirty.length ? dirty[d]! : undefined;
      if (!next || next[0] >= end) {
        z.run(at, end - at);
        break;
      }
      if (next[0] > at) {
        z.run(at, next[0] - at);
        at = next[0];
      }
      const stop = Math.min(end, next[0] + next[1]);
      z.overwrite(at, stop - at);
      at = stop;
    }
  }
  for (const [first, count] of journalRuns) z.report.journalBlocksZeroed += z.run(first, count);
  if (!opts.dryRun && z.report.bytesWritten > 0) vol.dev.sync();
  return z.report;
}
