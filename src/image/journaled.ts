/**
 * JournaledDevice: the one place every logged write to an image goes through.
 *
 *   write(pos, data)  records the ORIGINAL bytes of every part of the range not recorded before (read
 *                     from the device, which still holds them: nothing reaches it unrecorded), and
 *                     keeps the new bytes PENDING; reads see pending data overlaid.
 *   sync()            appends the new records to IMAGE.ulfs-undo and fsyncs it (creating it, and
 *                     fsyncing its directory, the first time), THEN applies the pending writes to the
 *                     device in issue order and fsyncs the device.
 *   commit()          sync(), then removes the undo log: the change is complete.
 *   writeUnlogged()   for zeroing free space: goes straight to the device, not logged. Allowed only
 *                     with nothing pending (the caller has synced its metadata first). A range that
 *                     touches the first 64 KiB is logged anyway (the log's binding hashes it).
 *
 * It wraps the whole image device or a slice of it (a partition): records always store absolute
 * image offsets, found by walking SliceDevice parents (and FaultDevice-style `inner` wrappers) down
 * to the FileDevice, whose path names the undo log.
 *
 * After any failure in sync() the device refuses further use: the image may be half-written and the
 * undo log is the way back (`ulfs-offline undo IMAGE`). close() without commit() leaves the log.
 * Memory: pending data grows until the caller syncs; `pendingBytes` tells how much.
 */
import { UlfsError, hex } from '../errors.js';
import { FileDevice, SliceDevice, type BlockDevice } from './blockdev.js';
import { HASH_BYTES, MAX_RECORD_BYTES, UndoLogWriter } from './undo.js';

const PAGE_SHIFT = 16; // 64 KiB pages index the pending writes for reads

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
  /** Disjoint, sorted, merged [start, end) ranges (absolute) whose originals are recorded. */
  private recorded: number[] = [];
  private newRecords: { offset: number; data: Buffer }[] = [];
  private pending: Pending[] = [];
  private pageIndex = new Map<number, number[]>();
  private pendingTotal = 0;
  private failed: unknown = null;
  private closed = false;

  constructor(
    readonly dev: BlockDevice,
    opts: { imagePath?: string } = {},
  ) {
    const r = resolveImage(dev);
    const p = opts.imagePath ?? r.path;
    if (!p) throw new UlfsError('INTERNAL', `JournaledDevice needs an image path for ${dev.name}`);
    this.imagePath = p;
    this.base = r.base;
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
    let n = 0;
    for (let i = 0; i < this.recorded.length; i += 2) n += this.recorded[i + 1]! - this.recorded[i]!;
    return n;
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
    if (
      !Number.isSafeInteger(pos) ||
      !Number.isSafeInteger(length) ||
      pos < 0 ||
      length < 0 ||
      pos + length > this.size
    ) {
      throw new UlfsError(
        writing ? 'IMAGE_OUT_OF_RANGE' : 'IMAGE_TRUNCATED',
        `${writing ? 'write' : 'read'} of ${length} bytes at ${hex(pos)} is beyond the end of ${this.name} (size ${hex(this.size)})`,
        { pos, length, size: this.size },
      );
    }
    if (writing && !this.dev.writable)
      throw new UlfsError('IMAGE_READ_ONLY', `${this.name} is open read-only`);
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

  write(pos: number, data: Uint8Array): void {
    this.check(pos, data.length, true);
    if (data.length === 0) return;
    this.recordOriginals(pos, data.length);
    const copy = Buffer.from(data);
    const idx = this.pending.length;
    this.pending.push({ pos, data: copy });
    this.pendingTotal += copy.length;
    const last = Math.floor((pos + copy.length - 1) / 2 ** PAGE_SHIFT);
    for (let pg = Math.floor(pos / 2 ** PAGE_SHIFT); pg <= last; pg++) {
      let l = this.pageIndex.get(pg);
      if (!l) this.pageIndex.set(pg, (l = []));
      l.push(idx);
    }
  }

  /** Records the original bytes of the parts of [pos, pos+length) (device-relative) not yet recorded. */
  private recordOriginals(pos: number, length: number): void {
    const start = this.base + pos;
    const end = start + length;
    const r = this.recorded;
    // First range whose end is >= start (binary search over the flat [s0, e0, s1, e1, ...] array).
    let lo = 0;
    let hi = r.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[2 * mid + 1]! < start) lo = mid + 1;
      else hi = mid;
    }
    let cursor = start;
    let i = lo;
    while (cursor < end) {
      const s = i < r.length / 2 ? r[2 * i]! : Infinity;
      const e = i < r.length / 2 ? r[2 * i + 1]! : Infinity;
      if (cursor < s) {
        const gapEnd = Math.min(end, s);
        for (let o = cursor; o < gapEnd; o += MAX_RECORD_BYTES) {
          const n = Math.min(MAX_RECORD_BYTES, gapEnd - o);
          this.newRecords.push({ offset: o, data: this.dev.read(o - this.base, n) });
        }
        cursor = gapEnd;
      } else {
        cursor = Math.max(cursor, e);
        i++;
      }
    }
    // Merge [start, end) into the set: replace every range touching it with one.
    let j = lo;
    let ms = start;
    let me = end;
    while (j < r.length / 2 && r[2 * j]! <= end) {
      ms = Math.min(ms, r[2 * j]!);
      me = Math.max(me, r[2 * j + 1]!);
      j++;
    }
    r.splice(2 * lo, 2 * (j - lo), ms, me);
  }

  /** Makes every write so far durable: undo records first (fsynced), then the writes (fsynced). */
  sync(): void {
    this.check(0, 0, false);
    try {
      if (this.newRecords.length > 0) {
        this.log ??= UndoLogWriter.create(this.imagePath);
        this.log.append(this.newRecords);
        this.newRecords = [];
      }
      for (const w of this.pending) this.dev.write(w.pos, w.data);
      this.pending = [];
      this.pageIndex.clear();
      this.pendingTotal = 0;
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
      this.dev.write(pos, data);
    } catch (e) {
      this.failed = e;
      throw e;
    }
  }

  /** Finishes the change: sync, then remove the undo log. The device can be used for a new change. */
  commit(): void {
    this.sync();
    if (this.log) this.log.remove();
    this.log = null;
    this.recorded = [];
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
