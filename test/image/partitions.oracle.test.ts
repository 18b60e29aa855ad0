/**
 * Our partition-table reader against the native tools' reading of the same images:
 * `sfdisk --json` and `sfdisk -d` for 512-byte sectors, `fdisk -b 4096 -l` for 4096-byte sectors.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/image/blockdev.js';
import { openPartition, readPartitionTable, type PartitionTable } from '../../src/image/partitions.js';
import {
  makeBareExt,
  makeDiskImage,
  mkfsAt,
  run,
  sfdiskDump,
  type OracleTable,
} from '../fixtures/disk-images.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-parts-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function read(file: string, sectorSize?: 512 | 4096): PartitionTable {
  const dev = new FileDevice(file);
  try {
    return readPartitionTable(dev, sectorSize ? { sectorSize } : {});
  } finally {
    dev.close();
  }
}

/** Our table, in the oracle's terms. */
function asOracle(t: PartitionTable): OracleTable['partitions'] {
  return t.partitions
    .map((p) => {
      const o: OracleTable['partitions'][number] = {
        number: p.number,
        start: p.start,
        size: p.size,
        type: t.kind === 'mbr' ? parseInt(p.type, 16).toString(16) : p.type,
      };
      if (p.guid) o.uuid = p.guid;
      if (p.name) o.name = p.name;
      return o;
    })
    .sort((a, b) => a.number - b.number);
}

describe('partition tables vs sfdisk/fdisk', () => {
  it('MBR with 2 primaries, an extended partition and 3 logical partitions (sfdisk --json, sfdisk -d)', () => {
    const file = path.join(dir, 'mbr.img');
    const img = makeDiskImage(file, {
      label: 'dos',
      partitions: [{ sizeMiB: 4, type: 'ef' }, { sizeMiB: 6 }],
      logical: [{ sizeMiB: 3 }, { sizeMiB: 2, type: '82' }, { sizeMiB: 5, type: '83' }],
    });
    run('sfdisk', ['-q', '--activate', file, '2']);
    const t = read(file);
    expect(t.kind).toBe('mbr');
    expect(t.sectorSize).toBe(512);
    expect(t.warnings).toEqual([]);
    expect(asOracle(t)).toEqual([...img.partitions].sort((a, b) => a.number - b.number));
    expect(t.partitions.map((p) => p.number).sort()).toEqual([1, 2, 3, 5, 6, 7]);
    expect(t.diskGuid).toBe(img.id);
    // A disk id with leading zeros, printed as sfdisk prints it.
    run('sfdisk', ['-q', '--disk-id', file, '0x00abcdef']);
    expect(read(file).diskGuid).toBe(JSON.parse(run('sfdisk', ['--json', file])).partitiontable.id);
    // Bootable flags and types from the dump format.
    for (const d of sfdiskDump(file)) {
      const p = t.partitions.find((x) => x.number === d.node)!;
      expect(p.bootable, `partition ${d.node}`).toBe(d.bootable);
      expect(parseInt(p.type, 16)).toBe(parseInt(d.type, 16));
    }
    expect(t.partitions.find((p) => p.number === 3)!.extended).toBe(true);
    expect(t.partitions.find((p) => p.number === 6)!.typeName).toBe('Linux swap / Solaris');
  });

  it('GPT with 4 partitions, names and types (sfdisk --json)', () => {
    const file = path.join(dir, 'gpt.img');
    const img = makeDiskImage(file, {
      label: 'gpt',
      partitions: [
        { sizeMiB: 4, type: 'U', name: 'EFI system' },
        { sizeMiB: 8, type: 'L', name: 'root fs ünïcode' },
        { sizeMiB: 2, type: 'S' },
        { sizeMiB: 3, name: 'boot' },
      ],
    });
    const t = read(file);
    expect(t.kind).toBe('gpt');
    expect(t.sectorSize).toBe(512);
    expect(t.warnings).toEqual([]);
    expect(t.diskGuid).toBe(img.id);
    expect(asOracle(t)).toEqual(img.partitions);
    expect(t.partitions.map((p) => p.typeName)).toEqual([
      'EFI System',
      'Linux filesystem',
      'Linux swap',
      'Linux filesystem',
    ]);
  });

  it('GPT with 4096-byte sectors is detected without being told (fdisk -b 4096 -l)', () => {
    const file = path.join(dir, 'gpt4k.img');
    const img = makeDiskImage(file, {
      label: 'gpt',
      sectorSize: 4096,
      partitions: [
        { sizeMiB: 4, type: 'uefi' },
        { sizeMiB: 6, name: 'rootfs' },
        { sizeMiB: 2, type: 'swap' },
      ],
    });
    expect(img.partitions).toHaveLength(3);
    const t = read(file);
    expect(t.kind).toBe('gpt');
    expect(t.sectorSize).toBe(4096);
    expect(t.warnings).toEqual([]);
    expect(t.diskGuid).toBe(img.id);
    expect(asOracle(t)).toEqual(img.partitions);
    // Read as 512 on purpose: there is no GPT at that sector size.
    expect(() => read(file, 512)).toThrow();
  });

  it('a bare ext4 filesystem is kind none with one pseudo-partition 0 covering the image', () => {
    const file = path.join(dir, 'bare.img');
    makeBareExt(file, 8);
    expect(() => run('sfdisk', ['--json', file])).toThrow(); // sfdisk: no partition table either
    const t = read(file);
    expect(t.kind).toBe('none');
    expect(t.partitions).toEqual([
      {
        number: 0,
        start: 0,
        size: fs.statSync(file).size,
        type: 'none',
        typeName: 'Filesystem (no partition table)',
      },
    ]);
  });

  it('openPartition gives the bytes of the partition (an ext superblock made with mke2fs -E offset=)', () => {
    const file = path.join(dir, 'fs-in-part.img');
    const img = makeDiskImage(file, {
      label: 'dos',
      partitions: [{ sizeMiB: 2 }],
      logical: [{ sizeMiB: 4 }],
    });
    const p5 = img.partitions.find((p) => p.number === 5)!;
    mkfsAt(file, p5.start, p5.size);
    const dev = new FileDevice(file);
    try {
      const t = readPartitionTable(dev);
      const slice = openPartition(
        dev,
        t.partitions.find((p) => p.number === 5)!,
      );
      expect(slice.size).toBe(p5.size);
      expect(slice.read(1024 + 0x38, 2).readUInt16LE(0)).toBe(0xef53);
      expect(() => slice.read(p5.size - 1, 2)).toThrow(/IMAGE_TRUNCATED|beyond/);
      expect(() =>
        openPartition(
          dev,
          t.partitions.find((p) => p.number === 2)!,
        ),
      ).toThrow(/extended/);
    } finally {
      dev.close();
    }
  });
});
