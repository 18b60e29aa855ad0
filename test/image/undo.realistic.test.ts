/**
 * A realistic batch for the crash sweep: the blocks a real deletion changes. debugfs -w deletes files
 * and a directory from an ext4 filesystem in partition 2 of a GPT image; the 1 KiB blocks that differ
 * are replayed through JournaledDevice over that partition (a slice), with a FaultDevice failing at
 * every write and sync. After each crash, undo must give back the original image byte for byte; with
 * no crash, the result must equal debugfs's image and pass `e2fsck -fn`.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice, SliceDevice } from '../../src/image/blockdev.js';
import { FaultDevice } from '../../src/image/fault.js';
import { JournaledDevice } from '../../src/image/journaled.js';
import { findPartition, openImage, openPartition } from '../../src/image/partitions.js';
import { undo } from '../../src/image/undo.js';
import { makeDiskImage, run } from '../fixtures/disk-images.js';

const BLOCK = 1024;
let dir: string;
let original: string;
let shaOriginal: string;
let shaExpected: string;
let partStart: number;
let partSize: number;
let batches: { pos: number; data: Buffer }[][];

const shaOf = (p: string): string => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-undo-real-'));
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
  for (let i = 1; i <= 40; i++) fs.writeFileSync(path.join(tree, `f${i}`), Buffer.alloc(i * 700, i));
  fs.writeFileSync(path.join(tree, 'sub', 'x'), 'x');
  original = path.join(dir, 'a.img');
  const img = makeDiskImage(original, {
    label: 'gpt',
    partitions: [{ sizeMiB: 1 }, { sizeMiB: 12, type: 'L' }],
  });
  const p2 = img.partitions.find((p) => p.number === 2)!;
  partStart = p2.start;
  partSize = p2.size;
  run('mke2fs', [
    '-q',
    '-F',
    '-t',
    'ext4',
    '-b',
    String(BLOCK),
    '-d',
    tree,
    '-E',
    `offset=${partStart}`,
    original,
    '12M',
  ]);
  const after = path.join(dir, 'b.img');
  fs.copyFileSync(original, after);
  const cmds = path.join(dir, 'cmds');
  fs.writeFileSync(cmds, 'rm /f7\nrm /f8\nrm /f30\nrm /sub/x\nrmdir /sub\n');
  run('debugfs', ['-w', '-f', cmds, `${after}?offset=${partStart}`]);
  run('e2fsck', ['-fn', `${after}?offset=${partStart}`]);
  shaOriginal = shaOf(original);
  shaExpected = shaOf(after);

  // The changed blocks, partition-relative; the superblock (block 1) goes last, as a writer would.
  const a = fs.readFileSync(original);
  const b = fs.readFileSync(after);
  expect(a.subarray(0, partStart).equals(b.subarray(0, partStart))).toBe(true);
  expect(a.subarray(partStart + partSize).equals(b.subarray(partStart + partSize))).toBe(true);
  const changed: { pos: number; data: Buffer }[] = [];
  for (let pos = 0; pos < partSize; pos += BLOCK) {
    const x = a.subarray(partStart + pos, partStart + pos + BLOCK);
    const y = b.subarray(partStart + pos, partStart + pos + BLOCK);
    if (!x.equals(y)) changed.push({ pos, data: Buffer.from(y) });
  }
  const sb = changed.filter((c) => c.pos === BLOCK);
  const rest = changed.filter((c) => c.pos !== BLOCK);
  const half = Math.ceil(rest.length / 2);
  batches = [rest.slice(half), rest.slice(0, half), sb]; // not in block order on purpose
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function replay(fault: { failAt: number; partialBytes: number } | null): { calls: number; threw: boolean } {
  const file = new FileDevice(original, 'rw');
  const f = new FaultDevice(file, fault ?? { failAt: Infinity });
  const j = new JournaledDevice(new SliceDevice(f, partStart, partSize));
  let threw = false;
  try {
    for (const batch of batches) {
      for (const w of batch) j.write(w.pos, w.data);
      j.sync();
    }
    j.commit();
  } catch (e) {
    if (!/injected fault/.test((e as Error).message)) throw e;
    threw = true;
  } finally {
    j.close();
    file.close();
  }
  return { calls: f.writes + f.syncs, threw };
}

describe('crash sweep on a real deletion', () => {
  it(
    'a fault at every write and sync, then undo: the original image, byte for byte',
    { timeout: 120_000 },
    () => {
      expect(batches.flat().length).toBeGreaterThan(5);
      // Count the calls of a full run on a scratch copy (then put the original back).
      const saved = fs.readFileSync(original);
      const { calls } = replay(null);
      fs.writeFileSync(original, saved);
      expect(calls).toBe(batches.flat().length + batches.length + 1); // + the fsync in commit()
      let runs = 0;
      for (let k = 1; k <= calls; k++) {
        for (const partialBytes of [0, 700]) {
          const r = replay({ failAt: k, partialBytes });
          expect(r.threw).toBe(true);
          undo(original);
          expect(shaOf(original), `fault at call ${k} (partial ${partialBytes})`).toBe(shaOriginal);
          runs++;
        }
      }
      expect(runs).toBe(2 * calls);
    },
  );

  it('with no fault: the same bytes as debugfs, e2fsck-clean, no undo log left', () => {
    const r = replay(null);
    expect(r.threw).toBe(false);
    expect(fs.existsSync(original + '.ulfs-undo')).toBe(false);
    expect(shaOf(original)).toBe(shaExpected);
    run('e2fsck', ['-fn', `${original}?offset=${partStart}`]);
    // And the partition is found again through the table.
    const o = openImage(original, 'r');
    try {
      const p = findPartition(o.table, 2);
      expect([p.start, p.size]).toEqual([partStart, partSize]);
      expect(
        openPartition(o.dev, p)
          .read(1024 + 0x38, 2)
          .readUInt16LE(0),
      ).toBe(0xef53);
    } finally {
      o.close();
    }
  });
});
