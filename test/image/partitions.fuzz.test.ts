/**
 * Property: whatever bytes sit in the table sectors (MBR, EBRs, GPT headers and entry arrays, both
 * ends of the disk), readPartitionTable and openPartition throw nothing but UlfsError, and return
 * partitions that openPartition can only ever open inside the device. Seeds are real sfdisk images,
 * mutated byte by byte, plus fully random sectors. ULFS_FUZZ_RUNS raises the run count.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/image/blockdev.js';
import { UlfsError } from '../../src/errors.js';
import { openPartition, readPartitionTable } from '../../src/image/partitions.js';
import { makeDiskImage } from '../fixtures/disk-images.js';

const RUNS = Number(process.env.ULFS_FUZZ_RUNS ?? 1500);
let dir: string;
const seeds: Buffer[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-fuzzparts-'));
  const small = (name: string, spec: Parameters<typeof makeDiskImage>[1]): void => {
    const img = makeDiskImage(path.join(dir, name), spec);
    seeds.push(fs.readFileSync(img.path));
  };
  small('mbr.img', {
    label: 'dos',
    sizeMiB: 6,
    partitions: [{ sizeMiB: 1 }],
    logical: [{ sizeMiB: 1 }, { sizeMiB: 1 }],
  });
  small('gpt.img', { label: 'gpt', sizeMiB: 6, partitions: [{ sizeMiB: 1, name: 'x' }, { sizeMiB: 2 }] });
  small('gpt4k.img', {
    label: 'gpt',
    sectorSize: 4096,
    sizeMiB: 6,
    partitions: [{ sizeMiB: 1 }, { sizeMiB: 2 }],
  });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The byte ranges that hold table structures in the seeds: where mutations matter. */
function hotOffset(size: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min: 0, max: 0x200 * 40 - 1 }), // MBR, GPT header and array at 512-byte sectors
    fc.integer({ min: 4096, max: 4096 * 7 - 1 }), // GPT at 4096-byte sectors
    fc.integer({ min: 1 << 20, max: (2 << 20) - 1 }), // EBRs of the dos seed
    fc.integer({ min: size - 40 * 512, max: size - 1 }), // backup GPT
  );
}

function exercise(disk: Buffer): void {
  for (const writable of [false, true]) {
    const dev = new MemoryDevice(disk, { writable });
    try {
      const t = readPartitionTable(dev);
      for (const p of t.partitions) {
        try {
          const s = openPartition(dev, p);
          expect(s.offset + s.size).toBeLessThanOrEqual(dev.size);
        } catch (e) {
          if (!(e instanceof UlfsError)) throw e;
        }
      }
    } catch (e) {
      if (!(e instanceof UlfsError)) throw e;
      expect(e.message).not.toMatch(/\n/);
    }
  }
}

describe('partition table fuzz', () => {
  it('mutated real tables: only UlfsError', { timeout: 3_600_000 }, () => {
    const size = 6 << 20;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.array(fc.tuple(hotOffset(size), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 12,
        }),
        (which, edits) => {
          // Mutate the seed in place and put it back after: copying 6 MiB per run would dominate.
          const disk = seeds[which]!;
          const saved = edits.map(([off]) => [off, disk[off]!] as const);
          try {
            for (const [off, v] of edits) disk[off] = v;
            exercise(disk);
          } finally {
            for (let i = saved.length - 1; i >= 0; i--) disk[saved[i]![0]] = saved[i]![1];
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(
    'random sectors 0..N (with and without a 0x55aa signature): only UlfsError',
    { timeout: 3_600_000 },
    () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 512, maxLength: 8 * 512 }),
          fc.boolean(),
          fc.integer({ min: 0, max: 64 }),
          (bytes, sig, extraSectors) => {
            const disk = Buffer.alloc(Math.max(bytes.length, 512) + extraSectors * 512);
            disk.set(bytes);
            if (sig) {
              disk[510] = 0x55;
              disk[511] = 0xaa;
            }
            exercise(disk);
          },
        ),
        { numRuns: RUNS },
      );
    },
  );
});
