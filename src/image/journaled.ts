/**
 * JournaledDevice: the one place every logged write to an image goes through.
 *
 *   write(pos, data)  records the ORIGINAL bytes of every aligned 4 KiB chunk of the image the range
 *                     touches that was not recorded before (read from the image file, which still
 *                     holds them: nothing reaches it unrecorded), and keeps the new bytes PENDING;
 *                     reads see pending data overlaid.
 *   sync()            appends the new records to IMAGE.ulfs-undo and fsyncs it (creating it, and
 *                     fsyncing its directory, the first time), THEN applies the pending writes to the
 *                     device in issue order and fsyncs the device.
 *   commit()          sync(), then removes the undo log: the change is complete.
 *   writeUnlogged()   for zeroing free space: goes straight to the device, not logged. Allowed only
 *                     with nothing pending (the caller has synced its metadata first). A range that
 *                     touches the first 64 KiB is logged anyway (the log's binding hashes it). It is
 *                     also this device's writeVolatileAt, so writeVolatile() reaches it through slices.
 *
 * It wraps the whole image device or a slice of it (a partition): records always store absolute
 * image offsets, found by walking SliceDevice parents (and FaultDevice-style `inner` wrappers) down
 * to the FileDevice, whose path names the undo log.
 *
 * After any failure in sync() the device refuses further use: the image may be half-written and the
 * undo log is the way back (`ulfs-offline undo IMAGE`). close() without commit() leaves the log.
 * Memory: pending data grows until the caller syncs; `pendingBytes` tells how much.
 */
import { UlfsError } from '../errors.js';
import {
  FileDevice,
  SliceDevice,
  checkRange,
  readUncached,
  writeVolatile,
  type BlockDevice,
} from './blockdev.js';
import { HASH_BYTES, MAX_RECORD_BYTES, UndoLogWriter, type AppendFault } from './undo.js';

const PAGE_SHIFT = 16; // 64 KiB pages index the pending writes for reads
/** Granularity of recording: originals are saved in whole, aligned 4 KiB chunks of the image. */
export const CHUNK = 4096;

/**
 * Memory for one batch: the original bytes read for the undo log and the copies of pending writes,
 * handed out in order from slabs kept from batch to batch and all given back by sync(). Fresh memory
 * costs a page fault per 4 KiB on first touch (about 15 µs on the VMs measured), and a prune logs
 * about 13 MB of originals and writes as much: allocating both anew each batch, and concatenating the
 * log's records, took ~5,500 faults (perf); the slabs and writev (undo.ts) save 2,000-3,000 of them.
 * Slabs beyond ARENA_KEEP are dropped at reset (the rootfs batch holds all of its deletions at once).
 */
const ARENA_SLAB = 4 << 20;
const ARENA_KEEP = 8;

class BatchArena {
  private readonly slabs: Buffer[] = [];
  private slab = 0;
  private used = 0;

  /** n bytes, valid until reset(); larger requests than a slab get their own buffer. */
  take(n: number): Buffer {
    if (n > ARENA_SLAB) return Buffer.allocUnsafeSlow(n);
    if (this.slab < this.slabs.length && this.used + n > ARENA_SLAB) {
      this.slab++;
      this.used = 0;
    }
    if (this.slab === this.slabs.length) this.slabs.push(Buffer.allocUnsafeSlow(ARENA_SLAB));
    const b = this.slabs[this.slab]!.subarray(this.used, this.used + n);
    this.used += n;
    return b;
  }

  reset(): void {
    this.slab = 0;
    this.used = 0;
    this.slabs.length = Math.min(this.slabs.length, ARENA_KEEP);
  }
}

interface Pending {
  pos: number;
  data: Buffer;
}

/** Finds the image file under `dev` and the absolute offset of dev's byte 0 in it. */
export function resolveImage(dev: BlockDevice): {
  file: BlockDevice;
  path: string | undefined;
  base: number;
} {
  let d: BlockDevice = dev;
  let base = 0;
  for (let hops = 0; hops < 64; hops++) {
    if (d instanceof SliceDevice) {
      base += d.offset;
      d = d.parent;
    } else if ('inner' in d && (d as { inner?: unknown }).inner) {
      d = (d as unknown as { inner: BlockDevice }).inner;
    } else {
      break;
    }
  }
  return { file: d, path: d instanceof FileDevice ? d.name : undefined, base };
}

export class JournaledDevice implements BlockDevice {
  readonly size: number;
  readonly name: string;
  readonly imagePath: string;
  /** Absolute offset of this device's byte 0 in the image file. */
  readonly base: number;

  private log: UndoLogWriter | null = null;
  /** Absolute 4 KiB chunk numbers whose original bytes are recorded (or queued in newRecords). */
  private recorded = new Set<number>();
  /** The whole image, for reading original bytes at absolute offsets. */
  private readonly file: BlockDevice;
  /** Test hook: make the undo log's n-th append fail part-way. */
  private readonly logFault: AppendFault | undefined;
  private newRecords: { offset: number; data: Buffer }[] = [];
  private pending: Pending[] = [];
  private pageIndex = new Map<number, number[]>();
  private pendingTotal = 0;
  /** Where newRecords' and pending's bytes live until the next sync(). */
  private readonly arena = new BatchArena();
  private failed: unknown = null;
  private closed = false;

  constructor(
    readonly dev: BlockDevice,
    opts: { imagePath?: string; logFault?: AppendFault } = {},
  ) {
    const r = resolveImage(dev);
    const p = opts.imagePath ?? r.path;
    if (!p) throw new UlfsError('INTERNAL', `JournaledDevice needs an image path for ${dev.name}`);
    this.imagePath = p;
    this.base = r.base;
    this.file = r.file;
    this.logFault = opts.logFault;
    this.size = dev.size;
    this.name = dev.name;
  }

  get writable(): boolean {
    return this.dev.writable;
  }
  get pendingBytes(): number {
    return this.pendingTotal;
  }
  /** Bytes of original data recorded (or to be recorded) in the undo log by this device. */
  get recordedBytes(): number {
    return this.recorded.size * CHUNK;
  }
  get undoLogPath(): string | undefined {
    return this.log?.path;
  }

  private check(pos: number, length: number, writing: boolean): void {
    if (this.failed) {
      throw new UlfsError(
        'IO_ERROR',
        `${this.name}: an earlier write failed; run \`ulfs-offline undo ${this.imagePath}\``,
      );
    }
    if (this.closed) throw new UlfsError('INTERNAL', `${this.name} is closed`);
    checkRange(this, pos, length, writing);
  }

  read(pos: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length);
    this.readInto(buf, pos);
    return buf;
  }

  readInto(buf: Uint8Array, pos: number): void {
    this.check(pos, buf.length, false);
    this.dev.readInto(buf, pos);
    if (this.pending.length === 0 || buf.length === 0) return;
    const end = pos + buf.length;
    const hits = new Set<number>();
    const lastPage = Math.floor((end - 1) / 2 ** PAGE_SHIFT);
    for (let pg = Math.floor(pos / 2 ** PAGE_SHIFT); pg <= lastPage; pg++) {
      const l = this.pageIndex.get(pg);
      if (l) for (const i of l) hits.add(i);
    }
    if (hits.size === 0) return;
    // Issue order: a later write wins where two overlap.
    for (const i of [...hits].sort((a, b) => a - b)) {
      const w = this.pending[i]!;
      const s = Math.max(pos, w.pos);
      const e = Math.min(end, w.pos + w.data.length);
      if (s < e) buf.set(w.data.subarray(s - w.pos, e - w.pos), s - pos);
    }
  }

  /** Straight to the inner device's uncached read when nothing pending could overlay the range. */
  readUncachedInto(buf: Uint8Array, pos: number): void {
    if (this.pending.length > 0) {
      this.readInto(buf, pos);
      return;
    }
    this.check(pos, buf.length, false);
    readUncached(this.dev, buf, pos);
  }

  write(pos: number, data: Uint8Array): void {
    this.check(pos, data.length, true);
    if (data.length === 0) return;
    this.recordOriginals(pos, data.length);
    // A rewrite of exactly the range of the newest pending write that overlaps it (a bitmap or
    // inode-table block written again and again) replaces that write's bytes instead of queueing more.
    const end = pos + data.length;
    const lastPage = Math.floor((end - 1) / 2 ** PAGE_SHIFT);
    let newest = -1;
    for (let pg = Math.floor(pos / 2 ** PAGE_SHIFT); pg <= lastPage; pg++) {
      const l = this.pageIndex.get(pg);
      if (!l) continue;
      for (const i of l) {
        const w = this.pending[i]!;
        if (i > newest && w.pos < end && pos < w.pos + w.data.length) newest = i;
      }
    }
    if (newest >= 0) {
      const w = this.pending[newest]!;
      if (w.pos === pos && w.data.length === data.length) {
        w.data.set(data);
        return;
      }
    }
    const copy = this.arena.take(data.length);
    copy.set(data);
    const idx = this.pending.length;
    this.pending.push({ pos, data: copy });
    this.pendingTotal += copy.length;
    for (let pg = Math.floor(pos / 2 ** PAGE_SHIFT); pg <= lastPage; pg++) {
      let l = this.pageIndex.get(pg);
      if (!l) this.pageIndex.set(pg, (l = []));
      l.push(idx);
    }
  }

  /**
   * Records the original bytes of the 4 KiB chunks (absolute, clipped to the image) that
   * [pos, pos+length) touches and that are not recorded yet. Whole chunks, read from the image file
   * itself: bytes of a chunk outside the write (or outside a slice) were never written by us, so they
   * are original too, and a Set of chunk numbers keeps every write O(chunks).
   */
  private recordOriginals(pos: number, length: number): void {
    const first = Math.floor((this.base + pos) / CHUNK);
    const last = Math.floor((this.base + pos + length - 1) / CHUNK);
    let runStart = -1;
    for (let c = first; c <= last + 1; c++) {
      const need = c <= last && !this.recorded.has(c);
      if (need) {
        this.recorded.add(c);
        if (runStart < 0) runStart = c;
      }
      // Flush a run at its end, or when it reaches the record size limit.
      if (runStart >= 0 && (!need || (c - runStart + 1) * CHUNK >= MAX_RECORD_BYTES)) {
        const endChunk = need ? c + 1 : c;
        const off = runStart * CHUNK;
        const n = Math.min(endChunk * CHUNK, this.file.size) - off;
        const data = this.arena.take(n);
        this.file.readInto(data, off);
        this.newRecords.push({ offset: off, data });
        runStart = -1;
      }
    }
  }

  /** Makes every write so far durable: undo records first (fsynced), then the writes (fsynced). */
  sync(): void {
    this.check(0, 0, false);
    try {
      if (this.newRecords.length > 0) {
        this.log ??= UndoLogWriter.create(this.imagePath, { fault: this.logFault });
        this.log.append(this.newRecords);
        this.newRecords = [];
      }
      for (const w of this.pending) this.dev.write(w.pos, w.data);
      this.pending = [];
      this.pageIndex.clear();
      this.pendingTotal = 0;
      this.arena.reset(); // nothing refers to the batch's bytes any more
      this.dev.sync();
    } catch (e) {
      this.failed = e;
      throw e;
    }
  }

  /** Writes without logging (free space being zeroed). Nothing may be pending: sync() first. */
  writeUnlogged(pos: number, data: Uint8Array): void {
    this.check(pos, data.length, true);
    if (this.pending.length > 0) {
      throw new UlfsError(
        'INTERNAL',
        `writeUnlogged on ${this.name} with ${this.pendingTotal} bytes pending: sync() first`,
      );
    }
    if (this.base + pos < HASH_BYTES) {
      this.write(pos, data);
      this.sync();
      return;
    }
    try {
      writeVolatile(this.dev, pos, data); // zeroed free space: no fsync owed (see FileDevice.dirty)
    } catch (e) {
      this.failed = e;
      throw e;
    }
  }

  /** What writeVolatile() means here: free space is zeroed unlogged (writeUnlogged). */
  writeVolatileAt(pos: number, data: Uint8Array): void {
    this.writeUnlogged(pos, data);
  }

  /** Finishes the change: sync, then remove the undo log. The device can be used for a new change. */
  commit(): void {
    this.sync();
    if (this.log) this.log.remove();
    this.log = null;
    this.recorded.clear();
  }

  /** Closes the underlying device. Without commit(), pending writes are dropped and the undo log stays. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.pageIndex.clear();
    this.pendingTotal = 0;
    this.log?.close();
    this.dev.close();
  }
}
