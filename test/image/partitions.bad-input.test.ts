/**
 * Hostile and damaged partition tables, each its own test: a typed UlfsError with a stable code (or a
 * warning where reading can go on), never a crash or a hang. Images are made by sfdisk, then damaged
 * at the offsets the format defines; sfdisk's own verdict is checked where it has one.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice, MemoryDevice } from '../../src/image/blockdev.js';
import { crc32 } from '../../src/binary/crc32.js';
import { encodeMbr, type MbrEntry } from '../../src/image/mbr.js';
import { openPartition, readPartitionTable, type PartitionTable } from '../../src/image/partitions.js';
import { makeDiskImage, TOOL_PATH, type DiskImage } from '../fixtures/disk-images.js';
import { codeOf } from '../helpers/errors.js';

let dir: string;
let mbrImg: DiskImage;
let gptImg: DiskImage;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-badparts-'));
  mbrImg = makeDiskImage(path.join(dir, 'mbr-orig.img'), {
    label: 'dos',
    partitions: [{ sizeMiB: 2 }],
    logical: [{ sizeMiB: 2 }, { sizeMiB: 2 }, { sizeMiB: 2 }],
  });
  gptImg = makeDiskImage(path.join(dir, 'gpt-orig.img'), {
    label: 'gpt',
    partitions: [{ sizeMiB: 2, name: 'a' }, { sizeMiB: 3, name: 'b' }, { sizeMiB: 1 }, { sizeMiB: 1 }],
  });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A copy of a fixture, damaged by `mutate` (which gets the whole file as a Buffer). */
function damaged(from: DiskImage, name: string, mutate: (b: Buffer) => Buffer | void): string {
  const file = path.join(dir, name);
  const b = fs.readFileSync(from.path);
  fs.writeFileSync(file, mutate(b) ?? b);
  return file;
}

function read(file: string, mode: 'r' | 'rw' = 'r'): { t: PartitionTable; dev: FileDevice } {
  const dev = new FileDevice(file, mode);
  try {
    return { t: readPartitionTable(dev), dev };
  } catch (e) {
    dev.close();
    throw e;
  }
}

function sfdiskVerify(file: string): string {
  const r = spawnSync('sfdisk', ['-V', file], { encoding: 'utf8', env: { ...process.env, PATH: TOOL_PATH } });
  return r.stdout + r.stderr;
}

// GPT header fields used for surgery (UEFI 2.10 table 5-5).
const GPT_HDR_CRC = 0x10;
const GPT_HDR_SIZE = 0x0c;
const GPT_NUM_ENTRIES = 0x50;
const GPT_ENTRY_SIZE = 0x54;
function refreshGptCrc(b: Buffer, hdrOff: number): void {
  b.writeUInt32LE(0, hdrOff + GPT_HDR_CRC);
  b.writeUInt32LE(
    crc32(b.subarray(hdrOff, hdrOff + b.readUInt32LE(hdrOff + GPT_HDR_SIZE))),
    hdrOff + GPT_HDR_CRC,
  );
}
const primary = 512;
function flip(b: Buffer, off: number, mask: number): void {
  b[off] = b[off]! ^ mask;
}
const backupOf = (b: Buffer): number => b.length - 512;

// The first EBR sits at the start of the extended partition; its link entry is entry 1.
const ENTRY1 = 0x1be + 16;
function ebrOffsets(img: DiskImage, b: Buffer): number[] {
  const ext = img.partitions.find((p) => p.type === '5')!;
  const out = [ext.start];
  for (let i = 0; i < 8; i++) {
    const rel = b.readUInt32LE(out[out.length - 1]! + ENTRY1 + 8);
    if (rel === 0) break;
    out.push(ext.start + rel * 512);
  }
  return out;
}

describe('bad partition tables', { timeout: 10_000 }, () => {
  it('an image shorter than one sector: IMAGE_TRUNCATED', () => {
    const file = damaged(mbrImg, 'tiny.img', (b) => b.subarray(0, 300));
    expect(codeOf(() => read(file))).toBe('IMAGE_TRUNCATED');
  });

  it('a GPT image truncated inside its entry array (no backup left): a GPT error', () => {
    const file = damaged(gptImg, 'gpt-trunc.img', (b) => b.subarray(0, 8192));
    expect(codeOf(() => read(file))).toMatch(/^GPT_BAD_(ENTRIES|HEADER)$/);
  });

  it('bad MBR signature: MBR_BAD_SIGNATURE (sfdisk sees no table either)', () => {
    const file = damaged(mbrImg, 'nosig.img', (b) => {
      b[510] = 0;
      b[511] = 0;
    });
    expect(
      spawnSync('sfdisk', ['--json', file], { env: { ...process.env, PATH: TOOL_PATH } }).status,
    ).not.toBe(0);
    expect(codeOf(() => read(file))).toBe('MBR_BAD_SIGNATURE');
  });

  it('a bad status byte in a primary entry: MBR_BAD_PARTITION', () => {
    const file = damaged(mbrImg, 'status.img', (b) => {
      b[0x1be] = 0x42;
    });
    expect(codeOf(() => read(file))).toBe('MBR_BAD_PARTITION');
  });

  it('a cyclic EBR chain: MBR_EBR_LOOP', () => {
    const file = damaged(mbrImg, 'ebr-loop.img', (b) => {
      const ebrs = ebrOffsets(mbrImg, b);
      expect(ebrs).toHaveLength(3);
      // The third EBR links back to the second.
      const ext = mbrImg.partitions.find((p) => p.type === '5')!;
      b[ebrs[2]! + ENTRY1 + 4] = 0x05;
      b.writeUInt32LE((ebrs[1]! - ext.start) / 512, ebrs[2]! + ENTRY1 + 8);
      b.writeUInt32LE(2048, ebrs[2]! + ENTRY1 + 12);
    });
    expect(codeOf(() => read(file))).toBe('MBR_EBR_LOOP');
  });

  it('an EBR chain pointing outside the disk: PART_BEYOND_END', () => {
    const file = damaged(mbrImg, 'ebr-out.img', (b) => {
      const ebrs = ebrOffsets(mbrImg, b);
      b.writeUInt32LE(0x7fff0000, ebrs[0]! + ENTRY1 + 8);
    });
    expect(codeOf(() => read(file))).toBe('PART_BEYOND_END');
  });

  it('more than 128 logical partitions: MBR_EBR_TOO_MANY', () => {
    const sectors = 4 + 131 * 4;
    const disk = Buffer.alloc(sectors * 512);
    const e = (index: number, type: number, lbaStart: number, n: number): MbrEntry => ({
      index,
      status: 0,
      type,
      lbaStart,
      sectors: n,
    });
    encodeMbr({ diskSignature: 1, hasSignature: true, entries: [e(0, 0x05, 4, sectors - 4)] }).copy(disk, 0);
    for (let i = 0; i < 131; i++) {
      const entries = [e(0, 0x83, 1, 3)];
      if (i < 130) entries.push(e(1, 0x05, (i + 1) * 4, 4));
      encodeMbr({ diskSignature: 0, hasSignature: true, entries }).copy(disk, (4 + i * 4) * 512);
    }
    expect(codeOf(() => readPartitionTable(new MemoryDevice(disk)))).toBe('MBR_EBR_TOO_MANY');
  });

  it('GPT with a bad primary header CRC: falls back to the backup, with a warning', () => {
    const file = damaged(gptImg, 'gpt-badprimary.img', (b) => {
      flip(b, primary + 0x38, 0xff); // a disk GUID byte: the header CRC no longer matches
    });
    const { t, dev } = read(file);
    dev.close();
    expect(t.warnings.join('\n')).toMatch(/primary GPT header bad CRC.*using the backup/);
    expect(t.partitions.map((p) => [p.number, p.start, p.size, p.guid])).toEqual(
      gptImg.partitions.map((p) => [p.number, p.start, p.size, p.uuid]),
    );
  });

  it('GPT with a bad primary entry-array CRC: falls back to the backup array, with a warning', () => {
    const file = damaged(gptImg, 'gpt-badarray.img', (b) => {
      flip(b, 1024 + 0x38, 0x01); // first entry's name, primary array at LBA 2
    });
    const { t, dev } = read(file);
    dev.close();
    expect(t.warnings.join('\n')).toMatch(/primary GPT entry array bad CRC/);
    expect(t.partitions.map((p) => p.name ?? '')).toEqual(gptImg.partitions.map((p) => p.name ?? ''));
  });

  it('GPT with both header CRCs bad: GPT_BAD_CRC', () => {
    const file = damaged(gptImg, 'gpt-bothbad.img', (b) => {
      flip(b, primary + 0x38, 0xff);
      flip(b, backupOf(b) + 0x38, 0xff);
    });
    expect(codeOf(() => read(file))).toBe('GPT_BAD_CRC');
  });

  it('GPT claiming an absurd number of entries (CRCs recomputed, both headers): GPT_BAD_ENTRIES', () => {
    const file = damaged(gptImg, 'gpt-absurd.img', (b) => {
      for (const off of [primary, backupOf(b)]) {
        b.writeUInt32LE(0x7fffffff, off + GPT_NUM_ENTRIES);
        refreshGptCrc(b, off);
      }
    });
    expect(codeOf(() => read(file))).toBe('GPT_BAD_ENTRIES');
  });

  it('GPT with an absurd entry size in the primary only: the backup is used', () => {
    const file = damaged(gptImg, 'gpt-entrysize.img', (b) => {
      b.writeUInt32LE(100, primary + GPT_ENTRY_SIZE);
      refreshGptCrc(b, primary);
    });
    const { t, dev } = read(file);
    dev.close();
    expect(t.warnings.join('\n')).toMatch(/entry size 0x64/);
    expect(t.partitions).toHaveLength(4);
  });

  it('a partition beyond the end of the file: listed with a warning, openPartition throws PART_BEYOND_END', () => {
    const last = mbrImg.partitions
      .filter((p) => p.type !== '5')
      .reduce((a, p) => (p.start + p.size > a.start + a.size ? p : a));
    expect(last.number).toBe(7);
    const file = damaged(mbrImg, 'short.img', (b) => b.subarray(0, last.start + 4096));
    const { t, dev } = read(file);
    try {
      const p = t.partitions.find((x) => x.number === last.number)!;
      expect(p.beyondEnd).toBe(true);
      expect(t.warnings.join('\n')).toMatch(new RegExp(`partition ${last.number} .*runs past the end`));
      expect(codeOf(() => openPartition(dev, p))).toBe('PART_BEYOND_END');
      // The partitions that are complete still open.
      expect(
        openPartition(
          dev,
          t.partitions.find((x) => x.number === 1)!,
        ).size,
      ).toBe(mbrImg.partitions[0]!.size);
    } finally {
      dev.close();
    }
  });

  it('an image truncated before an EBR: the logical partitions before it are kept, with a warning', () => {
    const file = damaged(mbrImg, 'short-ebr.img', (b) => b.subarray(0, ebrOffsets(mbrImg, b)[1]!)); // the EBR of 6
    const { t, dev } = read(file);
    dev.close();
    expect(t.partitions.map((p) => p.number)).toEqual([1, 2, 5]);
    expect(t.warnings.join('\n')).toMatch(
      /EBR at sector 0x[0-9a-f]+ is past the end of the image.*from 6 on are missing/,
    );
  });

  it('overlapping partitions: flagged (as sfdisk -V does); PART_OVERLAP when opened for writing', () => {
    const file = path.join(dir, 'overlap.img');
    const disk = Buffer.alloc(8 << 20);
    const e = (index: number, lbaStart: number, n: number): MbrEntry => ({
      index,
      status: 0,
      type: 0x83,
      lbaStart,
      sectors: n,
    });
    encodeMbr({
      diskSignature: 7,
      hasSignature: true,
      entries: [e(0, 2048, 4096), e(1, 4096, 4096), e(2, 8192, 2048)],
    }).copy(disk, 0);
    fs.writeFileSync(file, disk);
    expect(sfdiskVerify(file)).toMatch(/Partition 1: overlaps partition 2/);
    const ro = read(file);
    try {
      expect(ro.t.partitions.map((p) => p.overlaps ?? [])).toEqual([[2], [1], []]);
      expect(ro.t.warnings).toContain('partitions 1 and 2 overlap');
      expect(openPartition(ro.dev, ro.t.partitions[0]!).size).toBe(4096 * 512); // reading is allowed
    } finally {
      ro.dev.close();
    }
    const rw = read(file, 'rw');
    try {
      expect(codeOf(() => openPartition(rw.dev, rw.t.partitions[1]!))).toBe('PART_OVERLAP');
      expect(openPartition(rw.dev, rw.t.partitions[2]!).size).toBe(2048 * 512);
    } finally {
      rw.dev.close();
    }
  });

  it('no table and no filesystem (all zero): MBR_BAD_SIGNATURE', () => {
    expect(codeOf(() => readPartitionTable(new MemoryDevice(Buffer.alloc(1 << 20))))).toBe(
      'MBR_BAD_SIGNATURE',
    );
  });
});
