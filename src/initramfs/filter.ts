/**
 * The entry filter for one cpio archive: drops and replaces entries as `decide` says, removes the
 * directories the removal left empty (only those), and keeps hard-link sets valid, writing every
 * untouched entry back byte for byte and in order.
 *
 * Look-ahead, bounded: an entry whose fate is not known yet (a directory whose contents are still
 * coming, a data-less hard link whose data member is still coming) holds back the output queue
 * behind it. A directory is settled when a surviving entry inside it arrives (kept), or when its
 * contents are over: a non-descendant arrives after a descendant (find and sort orders both keep a
 * directory's contents together) or a name that sorts after "dir/" arrives. A directory that had
 * contents and lost them all is removed; one that was empty in the input stays. When the queue holds
 * more than HOLD_BYTES of data or HOLD_ENTRIES entries, its oldest pending directory is kept (safe:
 * an empty directory does no harm). If a surviving entry later turns up inside a removed directory
 * (GNU cpio writes deferred hard links at the end), the directory is written again just before it.
 */
import { UlfsError } from '../errors.js';
import type { CpioEntry } from './archive.js';
import { S_IFDIR, S_IFMT, S_IFREG, cpioChecksum, encodeCpioHeader, pad4, type CpioHeader } from './cpio.js';

/**
 * What happens to an entry, decided when its header is read:
 * - 'keep', 'drop', or { replace }: new contents;
 * - { inspect }: kept as it is, and its contents handed to the caller (who copies what it needs);
 * - { later }: its fate depends on what comes after it. The entry is held back, with everything
 *   behind it, until the caller settles `later` (at the latest in onArchiveEnd).
 */
export type Decision =
  'keep' | 'drop' | { replace: Buffer } | { inspect: (data: Buffer[]) => void } | { later: Later };

/** A decision taken after the entry was read: see Decision. */
export class Later {
  /** The entry's contents, once the filter has read them. */
  data: Buffer | null = null;
  outcome: 'keep' | { replace: Buffer } | null = null;

  settle(outcome: 'keep' | { replace: Buffer }): void {
    this.outcome = outcome;
  }
}

export interface CpioEntryInfo {
  /** As stored, e.g. 'usr/lib/modules/6.1.0/kernel/x.ko'. */
  name: string;
  mode: number;
  size: number;
  ino: number;
  nlink: number;
  mtime: number;
  uid: number;
  gid: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  check: number;
  /** Index of the segment in the file. */
  segment: number;
}

export function entryInfo(e: Pick<CpioEntry, 'header' | 'name'>, segment: number): CpioEntryInfo {
  const h = e.header;
  return {
    name: e.name,
    mode: h.mode,
    size: h.fileSize,
    ino: h.ino,
    nlink: h.nlink,
    mtime: h.mtime,
    uid: h.uid,
    gid: h.gid,
    devMajor: h.devMajor,
    devMinor: h.devMinor,
    rdevMajor: h.rdevMajor,
    rdevMinor: h.rdevMinor,
    check: h.check,
    segment,
  };
}

/** Output held back waiting for a decision: at most this much data ... */
export const HOLD_BYTES = 16 << 20;
/** ... and this many entries. */
export const HOLD_ENTRIES = 65536;
/** Removed directories remembered for revival. */
const MAX_REMEMBERED_DIRS = 65536;

export interface ArchiveFilterContext {
  decide: (entry: CpioEntryInfo) => Decision;
  /** Called at the trailer, before the rest is settled: the last chance to settle a Later. */
  onArchiveEnd?: () => void;
  /** Decisions already taken for an entry's header while it was read (see filterInitramfs). */
  decided?: WeakMap<CpioHeader, Decision>;
  removeEmptyDirs: boolean;
  segment: number;
  removed: string[];
  removedDirs: string[];
  /** Set when anything in the output differs from the input. */
  changed: boolean;
  entriesBefore: number;
  entriesAfter: number;
  /**
   * Output buffers that are bytes of the input as they were, by their offset in the segment's
   * (decoded) stream: what lets a gzip encoder copy old deflate blocks (gzip-splice.ts).
   */
  origins?: WeakMap<Buffer, number>;
}

interface Item {
  e: CpioEntry;
  /** undefined while pending. */
  keep: boolean | undefined;
  /** The entry itself is kept by decide() (for link members and dirs still pending). */
  survives: boolean;
  isDir: boolean;
  /** Normalised path ('' for the root). */
  path: string;
  hasDesc: boolean;
  /** New header fields / data when the entry changes. */
  newHeader?: CpioHeader;
  newData?: Buffer[];
  /** A decision the caller takes later (keep stays undefined until it has). */
  later?: Later;
}

/** Path without a leading "./" or "/", '' for the root. */
function normalise(name: string): string {
  let p = name;
  while (p.startsWith('./')) p = p.slice(2);
  while (p.startsWith('/')) p = p.slice(1);
  if (p === '.') p = '';
  while (p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

function isUnder(path: string, dir: string): boolean {
  return dir === ''
    ? path !== ''
    : path.length > dir.length && path.startsWith(dir) && path[dir.length] === '/';
}

export class ArchiveFilter {
  private queue: Item[] = [];
  private head = 0;
  private heldBytes = 0;
  /** Pending directories, in archive order. */
  private pendingDirs = new Map<string, Item>();
  /** Data-less hard-link members waiting for their data member, by dev:ino. */
  private linkSets = new Map<string, Item[]>();
  /** Removed directories, for revival. */
  private droppedDirs = new Map<string, CpioEntry>();

  constructor(private readonly ctx: ArchiveFilterContext) {}

  /** Takes the next entry (not the trailer); returns the buffers now ready to write. */
  add(e: CpioEntry, out: Buffer[]): void {
    const ctx = this.ctx;
    ctx.entriesBefore++;
    const h = e.header;
    const type = h.mode & S_IFMT;
    const isDir = type === S_IFDIR;
    const path = normalise(e.name);
    const item: Item = { e, keep: undefined, survives: true, isDir, path, hasDesc: false };

    // Everything inside a pending directory makes it "not empty in the input".
    if (this.pendingDirs.size) {
      for (const d of this.pendingDirs.values()) if (isUnder(path, d.path)) d.hasDesc = true;
    }

    const d = ctx.decided?.get(h) ?? ctx.decide(entryInfo(e, ctx.segment));
    if (d === 'drop') {
      item.survives = false;
      item.keep = false;
      ctx.removed.push(e.name);
      ctx.changed = true;
    } else if (d !== 'keep') {
      if ('inspect' in d) d.inspect(e.data);
      else if ('later' in d) {
        if (type !== S_IFREG || h.nlink > 1) {
          throw new UlfsError('INTERNAL', `${e.name}: only a plain file's fate can be decided later`);
        }
        d.later.data = Buffer.concat(e.data, h.fileSize);
        item.later = d.later;
      } else this.replace(item, d.replace);
    }

    if (item.survives) {
      if (isDir && this.ctx.removeEmptyDirs && path !== '') {
        // The same directory named twice: the first one is settled as kept (always safe) rather
        // than left pending forever behind the second, which would stall the output.
        const earlier = this.pendingDirs.get(path);
        if (earlier) {
          earlier.keep = true;
          this.pendingDirs.delete(path);
        }
        this.pendingDirs.set(path, item);
      } else {
        this.keepAncestors(path);
        item.keep = item.later ? undefined : true;
      }
    }

    // Hard links (newc: the data is on the last member of the set).
    if (type === S_IFREG && h.nlink > 1) this.link(item);

    // A dropped entry writes nothing, so it needs no place in the queue; queued behind a pending
    // directory its data would be held for nothing (most of a pruned initramfs is dropped modules).
    if (item.keep !== false) this.push(item);
    this.settleDirs(item);
    this.enforceBounds();
    this.flush(out);
  }

  /** At the trailer: settles everything and returns the rest of the output. */
  finish(out: Buffer[]): void {
    this.ctx.onArchiveEnd?.();
    for (let i = this.head; i < this.queue.length; i++) {
      const it = this.queue[i]!;
      if (it.later && !it.later.outcome) {
        throw new UlfsError('INTERNAL', `${it.e.name}: its decision was never taken`);
      }
    }
    for (const set of this.linkSets.values()) for (const m of set) m.keep = m.survives;
    this.linkSets.clear();
    const dirs = [...this.pendingDirs.values()].reverse(); // deepest first
    for (const d of dirs) {
      if (d.keep === undefined) this.settleDir(d, !d.hasDesc);
    }
    this.pendingDirs.clear();
    this.flush(out);
  }

  private replace(item: Item, data: Buffer): void {
    const h = item.e.header;
    item.newData = [data];
    item.newHeader = {
      ...h,
      fileSize: data.length,
      check: h.format === 'crc' ? cpioChecksum(data) : h.check,
    };
    this.ctx.changed = true;
  }

  private push(item: Item): void {
    this.queue.push(item);
    this.heldBytes += item.e.header.fileSize;
  }

  /** A surviving entry at `path`: its pending ancestors are kept, removed ancestors come back. */
  private keepAncestors(path: string): void {
    if (this.pendingDirs.size) {
      for (const d of this.pendingDirs.values()) {
        if (isUnder(path, d.path)) {
          d.keep = true;
          this.pendingDirs.delete(d.path);
        }
      }
    }
    if (this.droppedDirs.size) {
      const revive: string[] = [];
      for (const dir of this.droppedDirs.keys()) if (isUnder(path, dir)) revive.push(dir);
      revive.sort((a, b) => a.length - b.length);
      for (const dir of revive) {
        const e = this.droppedDirs.get(dir)!;
        this.droppedDirs.delete(dir);
        const i = this.ctx.removedDirs.lastIndexOf(e.name);
        if (i >= 0) this.ctx.removedDirs.splice(i, 1);
        this.queue.push({ e, keep: true, survives: true, isDir: true, path: dir, hasDesc: true });
      }
    }
  }

  private link(item: Item): void {
    const h = item.e.header;
    const key = `${h.devMajor}:${h.devMinor}:${h.ino}`;
    let set = this.linkSets.get(key);
    if (h.fileSize === 0 && item.newData === undefined) {
      if (!set) this.linkSets.set(key, (set = []));
      set.push(item);
      if (item.survives) item.keep = undefined; // wait: the data may move here
      return;
    }
    const forced = this.forcedLinks.delete(key);
    if (!item.survives && forced && !(set ?? []).some((m) => m.survives)) {
      // Members were written before this one (the hold queue overflowed): the data must stay.
      item.survives = true;
      item.keep = true;
      const i = this.ctx.removed.lastIndexOf(item.e.name);
      if (i >= 0) this.ctx.removed.splice(i, 1);
      this.keepAncestors(item.path);
    }
    if (!set) return; // a data member with no pending members (crc archives, or a set of one)
    this.linkSets.delete(key);
    const all = [...set, item];
    const survivors = all.filter((m) => m.survives);
    if (!item.survives && survivors.length > 0) {
      // Move the data to the last surviving link.
      const last = survivors[survivors.length - 1]!;
      const lh = last.newHeader ?? last.e.header;
      last.newHeader = { ...lh, fileSize: h.fileSize, check: h.check };
      last.newData = item.e.data;
    }
    if (survivors.length > 0 && survivors.length < all.length) {
      for (const m of survivors) {
        const mh = m.newHeader ?? m.e.header;
        m.newHeader = { ...mh, nlink: survivors.length };
      }
    }
    for (const m of set) if (m.keep === undefined && !m.isDir) m.keep = m.survives;
  }

  /** Settles pending directories whose contents are over, now that `item` arrived. */
  private settleDirs(item: Item): void {
    if (this.pendingDirs.size === 0) return;
    const path = item.path;
    const dirs = [...this.pendingDirs.values()].reverse(); // deepest first
    for (const d of dirs) {
      if (d === item || d.keep !== undefined || isUnder(path, d.path)) continue;
      const over = d.hasDesc || path > d.path + '/';
      if (!over) continue;
      // A pending directory inside it keeps it open.
      let openInside = false;
      for (const o of this.pendingDirs.values()) {
        if (o !== d && o.keep === undefined && isUnder(o.path, d.path)) {
          openInside = true;
          break;
        }
      }
      if (openInside) continue;
      this.settleDir(d, !d.hasDesc);
    }
  }

  private settleDir(d: Item, keep: boolean): void {
    this.pendingDirs.delete(d.path);
    d.keep = keep;
    if (keep) {
      // An empty directory that stays keeps its ancestors.
      for (const a of this.pendingDirs.values()) {
        if (isUnder(d.path, a.path)) {
          a.keep = true;
          this.pendingDirs.delete(a.path);
        }
      }
    } else {
      this.ctx.removedDirs.push(d.e.name);
      this.ctx.changed = true;
      if (this.droppedDirs.size >= MAX_REMEMBERED_DIRS) {
        this.droppedDirs.delete(this.droppedDirs.keys().next().value!);
      }
      this.droppedDirs.set(d.path, d.e);
    }
  }

  /** Keeps the queue within HOLD_BYTES / HOLD_ENTRIES by settling its oldest pending entry. */
  private enforceBounds(): void {
    while (
      (this.heldBytes > HOLD_BYTES || this.queue.length - this.head > HOLD_ENTRIES) &&
      this.head < this.queue.length
    ) {
      const front = this.queue[this.head]!;
      if (front.keep === undefined && front.later && !front.later.outcome) {
        throw new UlfsError(
          'CPIO_HOLD_LIMIT',
          `${front.e.name}: waiting for its decision held back more than ${HOLD_BYTES} bytes or ${HOLD_ENTRIES} entries`,
          { entry: front.e.name, reason: `${front.e.name} held back too much of the archive` },
        );
      }
      if (front.keep === undefined) {
        if (front.later) this.settleLater(front);
        else if (front.isDir) {
          this.pendingDirs.delete(front.path);
          front.keep = true;
        } else {
          // A link member: write it as it is. Its data member must then stay (see link()).
          front.keep = front.survives;
          for (const [k, set] of this.linkSets) {
            const i = set.indexOf(front);
            if (i >= 0) {
              set.splice(i, 1);
              if (set.length === 0) this.linkSets.delete(k);
              if (front.survives) this.forcedLinks.add(k);
            }
          }
        }
      }
      const out: Buffer[] = [];
      this.flush(out);
      this.overflow.push(...out);
      if (this.queue[this.head]?.keep !== undefined) continue;
      if (this.heldBytes <= HOLD_BYTES && this.queue.length - this.head <= HOLD_ENTRIES) break;
    }
  }
  /** Applies the caller's late decision to a held entry. */
  private settleLater(it: Item): void {
    const o = it.later!.outcome!;
    if (o !== 'keep') this.replace(it, o.replace);
    it.keep = true;
    it.later = undefined;
  }

  /** Link sets some of whose surviving members were written before their data member arrived. */
  private forcedLinks = new Set<string>();
  private overflow: Buffer[] = [];

  /** Moves the settled front of the queue to `out`. */
  private flush(out: Buffer[]): void {
    if (this.overflow.length) {
      out.push(...this.overflow);
      this.overflow = [];
    }
    while (this.head < this.queue.length) {
      const it = this.queue[this.head]!;
      if (it.keep === undefined && it.later?.outcome) this.settleLater(it);
      if (it.keep === undefined) break;
      // Release the slot now: a flushed entry's data must not stay reachable.
      (this.queue as (Item | undefined)[])[this.head] = undefined;
      this.head++;
      this.heldBytes -= it.e.header.fileSize;
      if (it.keep) {
        this.ctx.entriesAfter++;
        encodeItem(it, out, this.ctx.origins);
      }
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

function encodeItem(it: Item, out: Buffer[], origins: WeakMap<Buffer, number> | undefined): void {
  if (!it.newHeader) {
    writeRaw(it.e, out, origins);
    return;
  }
  out.push(encodeCpioHeader(it.newHeader, it.e.nameBytes));
  out.push(...(it.newData ?? it.e.data));
  const size = it.newHeader.fileSize;
  const pad = pad4(size) - size;
  if (pad) out.push(Buffer.alloc(pad));
}

/** Notes in `origins` that `parts`, one after the other, are the input's bytes from offset `at` on. */
export function noteOrigins(origins: WeakMap<Buffer, number> | undefined, parts: Buffer[], at: number): void {
  if (!origins) return;
  for (const b of parts) {
    origins.set(b, at);
    at += b.length;
  }
}

/** Writes an entry as it was read, noting where its bytes came from (`origins`). */
export function writeRaw(e: CpioEntry, out: Buffer[], origins: WeakMap<Buffer, number> | undefined): void {
  const parts = e.dataPad.length ? [e.raw, ...e.data, e.dataPad] : [e.raw, ...e.data];
  noteOrigins(origins, parts, e.offset);
  out.push(...parts);
}
