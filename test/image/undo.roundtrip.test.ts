/**
 * JournaledDevice + undo: whatever was written, wherever it stopped, `undo` gives back the original
 * image byte for byte (sha256 of the whole file). The model is a plain Buffer with the same writes.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice, SliceDevice, type BlockDevice } from '../../src/image/blockdev.js';
import type { UlfsError } from '../../src/errors.js';
import { JournaledDevice } from '../../src/image/journaled.js';
import { FaultDevice } from '../../src/image/fault.js';
import { HASH_BYTES, assertNoUndoLog, parseUndoLog, undo, undoPath } from '../../src/image/undo.js';
import { codeOf } from '../helpers/errors.js';

const SIZE = 1 << 20;
let dir: string;
let original: Buffer;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-undo-'));
  original = randomBytes(SIZE);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const fileSha = (p: string): string => sha(fs.readFileSync(p));

/**
 * Rewrites a file keeping its inode (the undo log is bound to it) without truncating it to 0: on ext4,
 * truncate-and-rewrite makes close() flush (auto_da_alloc), which made these tests 20x slower.
 */
function overwrite(p: string, content: Buffer): void {
  if (!fs.existsSync(p) || fs.statSync(p).size !== content.length) {
    fs.writeFileSync(p, content);
    return;
  }
  const fd = fs.openSync(p, 'r+');
  try {
    fs.writeSync(fd, content, 0, content.length, 0);
  } finally {
    fs.closeSync(fd);
  }
}
/** A new file each time (unlink, create): no truncate, no flush. */
function replace(p: string, content: Buffer): void {
  fs.rmSync(p, { force: true });
  fs.writeFileSync(p, content);
}

function freshImage(name: string, content: Buffer = original): string {
  const p = path.join(dir, name);
  fs.rmSync(undoPath(p), { force: true });
  overwrite(p, content);
  return p;
}

interface Op {
  pos: number;
  len: number;
  seed: number;
  syncAfter: boolean;
}
const opArb = fc.record({
  pos: fc.integer({ min: 0, max: SIZE - 1 }),
  len: fc.integer({ min: 1, max: 70_000 }),
  seed: fc.integer({ min: 0, max: 255 }),
  syncAfter: fc.boolean(),
});
function dataFor(op: Op, room: number): Buffer {
  const len = Math.min(op.len, room);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i += 97) b[i] = (op.seed + i) & 0xff; // cheap, position-dependent pattern
  b[0] = op.seed ^ 0x5a;
  return b;
}

/** Applies ops through a JournaledDevice over `base` (a slice at `sliceOff` when > 0); checks reads vs the model. */
function runOps(file: string, ops: Op[], sliceOff: number, wrap?: (d: BlockDevice) => BlockDevice): Buffer {
  const model = Buffer.from(original);
  const fdev = new FileDevice(file, 'rw');
  let base: BlockDevice = wrap ? wrap(fdev) : fdev;
  if (sliceOff > 0) base = new SliceDevice(base, sliceOff, SIZE - sliceOff);
  const j = new JournaledDevice(base);
  try {
    for (const op of ops) {
      const pos = op.pos % j.size;
      const data = dataFor(op, j.size - pos);
      j.write(pos, data);
      data.copy(model, sliceOff + pos);
      // Reads see the pending data overlaid, across page boundaries.
      const rs = Math.max(0, pos - 100);
      const re = Math.min(j.size, pos + data.length + 100);
      expect(j.read(rs, re - rs).equals(model.subarray(sliceOff + rs, sliceOff + re))).toBe(true);
      if (op.syncAfter) j.sync();
    }
    j.sync();
  } finally {
    j.close();
  }
  return model;
}

describe('undo log round trips', () => {
  it('random write sets (whole image and a slice), then undo: byte-identical', { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 25 }),
        fc.constantFrom(0, 4096, 123_456),
        (ops, sliceOff) => {
          const file = freshImage('rand.img');
          const model = runOps(file, ops, sliceOff);
          expect(fs.readFileSync(file).equals(model)).toBe(true);
          expect(codeOf(() => assertNoUndoLog(file))).toBe('UNDO_PRESENT');
          const r = undo(file);
          expect(r.records).toBeGreaterThan(0);
          expect(fileSha(file)).toBe(sha(original));
          expect(fs.existsSync(undoPath(file))).toBe(false);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('batches larger than the arena slabs (4 MiB), slabs reused across syncs: reads, image and undo exact', () => {
    // The device keeps originals and pending copies in reused 4 MiB slabs: a batch here spans several
    // slabs, one write is larger than a slab, and later batches reuse the slabs of earlier ones.
    const big = 14 << 20;
    const start = randomBytes(big);
    const file = path.join(dir, 'arena.img');
    fs.rmSync(undoPath(file), { force: true });
    replace(file, start);
    const model = Buffer.from(start);
    const j = new JournaledDevice(new FileDevice(file, 'rw'));
    try {
      const batches: [number, number][][] = [
        [
          [0, 3 << 20],
          [(3 << 20) + 100, 3 << 20],
          [7 << 20, 5 << 20],
        ], // 11 MiB, one write > slab
        [
          [1 << 20, 2 << 20],
          [9 << 20, 4 << 20],
          [13 << 20, 1 << 20],
        ], // rewrites: overlaid pending
        [
          [5 << 20, 64 << 10],
          [6 << 20, 3 << 20],
        ],
      ];
      let seed = 1;
      for (const batch of batches) {
        for (const [pos, len] of batch) {
          const data = Buffer.alloc(len, seed++);
          j.write(pos, data);
          data.copy(model, pos);
          data.fill(0xee); // the caller reusing its buffer must not change what was written
        }
        for (let at = 0; at < big; at += 1 << 20)
          expect(j.read(at, 1 << 20).equals(model.subarray(at, at + (1 << 20)))).toBe(true);
        j.sync();
      }
    } finally {
      j.close();
    }
    expect(fs.readFileSync(file).equals(model)).toBe(true);
    undo(file);
    expect(fileSha(file)).toBe(sha(start));
  });

  it('commit() removes the log and keeps the writes', () => {
    const file = freshImage('commit.img');
    const j = new JournaledDevice(new FileDevice(file, 'rw'));
    j.write(10, Buffer.from('hello'));
    expect(j.pendingBytes).toBe(5);
    expect(fs.readFileSync(file).subarray(10, 15).equals(original.subarray(10, 15))).toBe(true); // not yet
    j.sync();
    expect(fs.existsSync(undoPath(file))).toBe(true);
    j.write(200_000, Buffer.alloc(5000, 7));
    j.commit();
    j.close();
    expect(fs.existsSync(undoPath(file))).toBe(false);
    const now = fs.readFileSync(file);
    expect(now.toString('latin1', 10, 15)).toBe('hello');
    expect(now.subarray(200_000, 205_000).equals(Buffer.alloc(5000, 7))).toBe(true);
    expect(codeOf(() => undo(file))).toBe('UNDO_NOT_FOUND');
  });

  it('a fault at every write/sync of a realistic batch (with torn writes), then undo: byte-identical', () => {
    // Three syncs of block-sized writes, overlapping and re-written, like a metadata flush.
    const ops: Op[] = [];
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 8; i++)
        ops.push({ pos: ((i * 37 + b * 11) % 200) * 4096, len: 4096, seed: b * 8 + i, syncAfter: false });
      ops.push({ pos: 0, len: 1024 + b, seed: 99 + b, syncAfter: true });
    }
    const counter = new FaultDevice(new FileDevice(freshImage('count.img'), 'rw'), { failAt: Infinity });
    runOps(path.join(dir, 'count.img'), ops, 0, () => counter);
    const calls = counter.writes + counter.syncs;
    expect(calls).toBeGreaterThan(20);
    let survived = 0;
    for (let k = 1; k <= calls; k++) {
      for (const partialBytes of [0, 1000]) {
        const file = freshImage('fault.img');
        expect(() => runOps(file, ops, 0, (d) => new FaultDevice(d, { failAt: k, partialBytes }))).toThrow(
          /injected fault/,
        );
        undo(file);
        expect(fileSha(file), `fault at call ${k}, partial ${partialBytes}`).toBe(sha(original));
        survived++;
      }
    }
    expect(survived).toBe(2 * calls);
  });

  it('a crash inside an undo-log append (every batch, several torn sizes): image untouched by that batch, undo restores', () => {
    const batches = [
      [
        [4096, 4096],
        [300_000, 100],
      ],
      [
        [8192, 8192],
        [600_000, 50],
      ],
      [[900_000, 3000]],
    ] as const;
    for (let k = 1; k <= batches.length; k++) {
      for (const partialBytes of [0, 1, 23, 24, 4000, 4119, 100_000]) {
        const file = freshImage('logfault.img');
        const j = new JournaledDevice(new FileDevice(file, 'rw'), { logFault: { failAt: k, partialBytes } });
        const model = Buffer.from(original);
        let threw = false;
        for (let b = 0; b < batches.length && !threw; b++) {
          const before = Buffer.from(model);
          for (const [pos, n] of batches[b]!) {
            const d = Buffer.alloc(n, 0x30 + b);
            j.write(pos, d);
            d.copy(model, pos);
          }
          try {
            j.sync();
          } catch (e) {
            expect((e as UlfsError).code).toBe('IO_ERROR');
            expect(b + 1).toBe(k);
            // The failed batch never reached the image.
            expect(fs.readFileSync(file).equals(before), `batch ${k}, partial ${partialBytes}`).toBe(true);
            threw = true;
          }
        }
        j.close();
        expect(threw).toBe(true);
        undo(file);
        expect(fileSha(file), `append fault ${k}, partial ${partialBytes}`).toBe(sha(original));
      }
    }
  });

  it('a log cut inside its header (creation interrupted) is removed by undo, which restores nothing', () => {
    const file = freshImage('hdr.img');
    for (const cut of [0, 1, 64, 127]) {
      replace(undoPath(file), Buffer.alloc(cut, 0x55));
      expect(undo(file)).toMatchObject({ records: 0, tornBytes: cut });
      expect(fs.existsSync(undoPath(file))).toBe(false);
    }
    expect(fileSha(file)).toBe(sha(original));
  });

  it('a torn undo tail (cut at every byte of the last batch) is ignored; undo restores the synced part', () => {
    // A small image keeps the ~4,000 undo runs quick; it still reaches past the hashed 64 KiB.
    const small = original.subarray(0, 96 << 10);
    const file = freshImage('torn.img', small);
    const logFile = undoPath(file);
    const j = new JournaledDevice(new FileDevice(file, 'rw'));
    j.write(5000, Buffer.alloc(3000, 1));
    j.write(70_000, Buffer.alloc(100, 2));
    j.sync();
    const afterFirst = fs.readFileSync(file);
    const s1 = fs.statSync(logFile).size;
    j.write(90_000, Buffer.alloc(40, 4));
    j.sync();
    const afterSecond = fs.readFileSync(file);
    const fullLog = fs.readFileSync(logFile);
    j.close();
    expect(fullLog.length).toBeGreaterThan(s1 + 4096);
    // Every cut point through the parser (which decides what is torn); a full undo (two fsyncs each,
    // slow on this box) at every byte of the record header, the trailer and the data's edges, and at
    // every 509th byte inside the data (every byte with ULFS_UNDO_EVERY_BYTE=1: undo.torn.slow.test.ts).
    const recStart = s1;
    const dataStart = recStart + 24;
    const trailerStart = fullLog.length - 16;
    const every = process.env.ULFS_UNDO_EVERY_BYTE === '1';
    const fullUndoAt = (t: number): boolean =>
      every || t < dataStart + 8 || t >= trailerStart - 8 || (t - dataStart) % 509 === 0;
    let fullUndos = 0;
    for (let t = s1; t <= fullLog.length; t++) {
      replace(logFile, fullLog.subarray(0, t));
      const fd = fs.openSync(logFile, 'r');
      const parsed = parseUndoLog(fd, logFile);
      fs.closeSync(fd);
      if (parsed.batches !== (t === fullLog.length ? 2 : 1))
        expect.fail(`log cut at ${t}: ${parsed.batches} batches`);
      if (parsed.tornBytes !== (t === fullLog.length ? 0 : t - s1))
        expect.fail(`log cut at ${t}: torn ${parsed.tornBytes}`);
      if (!fullUndoAt(t) && t !== fullLog.length) continue;
      // A torn append means its writes never started: the image is as after the first batch.
      overwrite(file, t === fullLog.length ? afterSecond : afterFirst);
      undo(file);
      fullUndos++;
      if (!fs.readFileSync(file).equals(small))
        expect.fail(`undo with the log cut at ${t} did not restore the image`);
    }
    expect(fullUndos).toBeGreaterThan(every ? 4000 : 50);
    // Garbage after the last commit is ignored too.
    fs.writeFileSync(file, afterSecond);
    fs.writeFileSync(logFile, Buffer.concat([fullLog, randomBytes(333)]));
    expect(undo(file).tornBytes).toBe(333);
    expect(fs.readFileSync(file).equals(small)).toBe(true);
  });

  it('undo after a crash part-way through undo (any mix of restored ranges) and twice in a row', () => {
    const file = freshImage('idem.img');
    const j = new JournaledDevice(new FileDevice(file, 'rw'));
    const ranges = [
      [0, 512],
      [70_000, 9000],
      [500_000, 4096],
      [900_000, 12_345],
    ] as const;
    for (const [p, n] of ranges) j.write(p, randomBytes(n));
    j.sync();
    j.close();
    const modified = fs.readFileSync(file);
    const log = fs.readFileSync(undoPath(file));
    for (let mask = 0; mask < 1 << ranges.length; mask++) {
      const state = Buffer.from(modified);
      ranges.forEach(([p, n], i) => {
        if (mask & (1 << i)) original.copy(state, p, p, p + n); // this range was already restored
      });
      overwrite(file, state);
      replace(undoPath(file), log);
      undo(file);
      expect(fileSha(file)).toBe(sha(original));
    }
    expect(codeOf(() => undo(file))).toBe('UNDO_NOT_FOUND');
    expect(fileSha(file)).toBe(sha(original));
  });

  it('a log beside another image: UNDO_MISMATCH (inode, size, content); --moved accepts a moved pair', () => {
    const file = freshImage('bound.img');
    const j = new JournaledDevice(new FileDevice(file, 'rw'));
    j.write(100, Buffer.alloc(50, 9));
    j.write(800_000, Buffer.alloc(50, 9));
    j.sync();
    j.close();
    const log = fs.readFileSync(undoPath(file));
    const modified = fs.readFileSync(file);

    const other = freshImage('other.img', modified); // same bytes, another file
    fs.writeFileSync(undoPath(other), log);
    expect(codeOf(() => undo(other))).toBe('UNDO_MISMATCH');
    expect(fs.readFileSync(other).equals(modified)).toBe(true); // untouched

    const differentContent = freshImage('other2.img', randomBytes(SIZE));
    fs.writeFileSync(undoPath(differentContent), log);
    expect(codeOf(() => undo(differentContent, { allowMoved: true }))).toBe('UNDO_MISMATCH');

    const otherSize = freshImage('other3.img', modified.subarray(0, SIZE - 512));
    fs.writeFileSync(undoPath(otherSize), log);
    expect(codeOf(() => undo(otherSize, { allowMoved: true }))).toBe('UNDO_MISMATCH');

    // The moved pair (another inode, same bytes) is restored with allowMoved.
    expect(undo(other, { allowMoved: true }).records).toBe(2);
    expect(fileSha(other)).toBe(sha(original));

    // A damaged header is UNDO_BAD_LOG.
    const bad = Buffer.from(log);
    bad[0x10] = bad[0x10]! ^ 1;
    fs.writeFileSync(undoPath(file), bad);
    expect(codeOf(() => undo(file))).toBe('UNDO_BAD_LOG');
  });

  it('a second journaled run refuses while a log is there: UNDO_PRESENT', () => {
    const file = freshImage('present.img');
    const a = new JournaledDevice(new FileDevice(file, 'rw'));
    a.write(1, Buffer.from([1]));
    a.sync();
    a.close();
    const b = new JournaledDevice(new FileDevice(file, 'rw'));
    b.write(2, Buffer.from([2]));
    expect(codeOf(() => b.sync())).toBe('UNDO_PRESENT');
    b.close();
    expect(fs.readFileSync(file)[2]).toBe(original[2]); // b's write never reached the image
    undo(file);
    expect(fileSha(file)).toBe(sha(original));
  });

  it('writeUnlogged: not restored by undo (free space), refused with pending writes, logged in the first 64 KiB', () => {
    const file = freshImage('unlogged.img');
    const j = new JournaledDevice(new FileDevice(file, 'rw'));
    j.write(400_000, Buffer.alloc(10, 1));
    expect(codeOf(() => j.writeUnlogged(500_000, Buffer.alloc(4096)))).toBe('INTERNAL');
    j.sync();
    j.writeUnlogged(500_000, Buffer.alloc(4096));
    j.writeUnlogged(HASH_BYTES - 10, Buffer.alloc(20)); // touches the hashed prefix: logged
    j.close();
    undo(file);
    const now = fs.readFileSync(file);
    const expected = Buffer.from(original);
    expected.fill(0, 500_000, 504_096);
    expect(now.equals(expected)).toBe(true);
  });
});
