/**
 * The partition table of a disk image, whatever its kind: GPT (detected at LBA 1 for 512- and
 * 4096-byte sectors, or by a protective MBR), MBR with logical partitions, or none (a bare ext
 * filesystem, superblock magic 0xEF53 at byte 1024 + 0x38).
 *
 * Decisions:
 * - A bare filesystem is kind 'none' with ONE pseudo-partition numbered 0 covering the whole device
 *   (the CLI prints it as the image name itself, `hdd.img`).
 * - Sector size: GPT is probed at 512 then 4096 ("EFI PART" at LBA 1, else a backup header at the
 *   last LBA). An MBR does not record its sector size, so MBR tables are read with 512 unless
 *   `opts.sectorSize` says otherwise.
 * - Problems that do not stop us from reading the rest are warnings, and the partition carries a flag
 *   that `openPartition` enforces:
 *     beyondEnd  — the partition runs past the end of the file: listed, but openPartition throws
 *                  PART_BEYOND_END (a truncated image: nothing inside it can be trusted);
 *     overlaps   — it overlaps another data partition: readable, but openPartition on a writable
 *                  device throws PART_OVERLAP (a write could land in another filesystem).
 *   Structural damage (bad signature, bad CRCs, EBR loops, absurd counts) throws.
 */
import { UlfsError, hex } from '../errors.js';
import { le16 } from '../binary/bytes.js';
import { FileDevice, SliceDevice, type BlockDevice } from './blockdev.js';
import { MBR_SIZE, MBR_TYPE_NAMES, TYPE_GPT_PROTECTIVE, decodeMbr, readMbr } from './mbr.js';
import { GPT_TYPE_NAMES, ATTR_LEGACY_BIOS_BOOTABLE, hasGptSignature, readGpt } from './gpt.js';
import { assertNoUndoLog } from './undo.js';
import { lockImage, type ImageLock } from './lock.js';

export interface Partition {
  /** Linux numbering: hdd.img1..4 primary, logical from 5; 0 for the whole device of a bare fs. */
  number: number;
  /** Bytes. */
  start: number;
  /** Bytes. */
  size: number;
  /** MBR type hex like '0x83', or the GPT type GUID (upper case). */
  type: string;
  typeName?: string;
  /** GPT partition name. */
  name?: string;
  /** GPT unique partition GUID. */
  guid?: string;
  bootable?: boolean;
  /** An MBR extended partition: a container of logical partitions, not a filesystem. */
  extended?: boolean;
  /** Runs past the end of the image file: openPartition refuses it. */
  beyondEnd?: boolean;
  /** Numbers of the partitions it overlaps: openPartition refuses to open it for writing. */
  overlaps?: number[];
}

export interface PartitionTable {
  kind: 'mbr' | 'gpt' | 'none';
  sectorSize: 512 | 4096;
  partitions: Partition[];
  /** GPT disk GUID, or the MBR disk signature as 8-digit 0x-hex (sfdisk's label-id). */
  diskGuid?: string;
  warnings: string[];
}

export const EXT_MAGIC_OFFSET = 1024 + 0x38;
export const EXT_MAGIC = 0xef53;

function hasExtMagic(dev: BlockDevice): boolean {
  if (dev.size < EXT_MAGIC_OFFSET + 2) return false;
  return le16(dev.read(EXT_MAGIC_OFFSET, 2), 0) === EXT_MAGIC;
}

function gptAt(dev: BlockDevice, sectorSize: number): boolean {
  if (dev.size >= 2 * sectorSize && hasGptSignature(dev.read(sectorSize, 8))) return true;
  const last = Math.floor(dev.size / sectorSize) - 1;
  return last > 1 && hasGptSignature(dev.read(last * sectorSize, 8));
}

export function readPartitionTable(dev: BlockDevice, opts: { sectorSize?: 512 | 4096 } = {}): PartitionTable {
  if (dev.size < MBR_SIZE) {
    throw new UlfsError(
      'IMAGE_TRUNCATED',
      `${dev.name} is ${dev.size} bytes, too small to hold a partition table`,
      {
        size: dev.size,
      },
    );
  }
  const mbr = decodeMbr(dev.read(0, MBR_SIZE));
  const protective = mbr.hasSignature && mbr.entries.some((e) => e.type === TYPE_GPT_PROTECTIVE);

  // GPT: a header at LBA 1 (or a backup at the end) for the given or probed sector size.
  const sizes: (512 | 4096)[] = opts.sectorSize ? [opts.sectorSize] : [512, 4096];
  for (const ss of sizes) {
    if (hasGptSignature(dev.size >= 2 * ss ? dev.read(ss, 8) : Buffer.alloc(0))) return fromGpt(dev, ss);
  }
  if (protective) {
    for (const ss of sizes) if (gptAt(dev, ss)) return fromGpt(dev, ss);
    // Protective MBR and no header anywhere: let readGpt explain (both headers bad).
    return fromGpt(dev, sizes[0]!);
  }

  const sectorSize = opts.sectorSize ?? 512;
  const usedEntries = mbr.entries.filter((e) => e.type !== 0 && e.sectors !== 0);
  if ((!mbr.hasSignature || usedEntries.length === 0) && hasExtMagic(dev)) {
    return {
      kind: 'none',
      sectorSize,
      partitions: [
        { number: 0, start: 0, size: dev.size, type: 'none', typeName: 'Filesystem (no partition table)' },
      ],
      warnings: [],
    };
  }
  if (!mbr.hasSignature) {
    throw new UlfsError(
      'MBR_BAD_SIGNATURE',
      `${dev.name}: no partition table (sector 0 has no 0x55aa signature) and no ext filesystem at offset 0`,
    );
  }
  const t = readMbr(dev, sectorSize, mbr);
  const partitions: Partition[] = t.partitions.map((p) => {
    const part: Partition = {
      number: p.number,
      start: p.startLba * sectorSize,
      size: p.sectors * sectorSize,
      type: hex(p.type),
      bootable: p.bootable,
    };
    const tn = MBR_TYPE_NAMES[p.type];
    if (tn) part.typeName = tn;
    if (p.extended) part.extended = true;
    return part;
  });
  const table: PartitionTable = {
    kind: 'mbr',
    sectorSize,
    partitions,
    diskGuid: '0x' + t.diskSignature.toString(16).padStart(8, '0'), // as sfdisk prints the label-id
    warnings: t.warnings,
  };
  validate(dev, table);
  return table;
}

function fromGpt(dev: BlockDevice, sectorSize: 512 | 4096): PartitionTable {
  const g = readGpt(dev, sectorSize);
  const partitions: Partition[] = g.entries.map((e) => {
    const p: Partition = {
      number: e.index + 1,
      start: e.startingLba * sectorSize,
      size: (e.endingLba - e.startingLba + 1) * sectorSize,
      type: e.typeGuid,
      guid: e.uniqueGuid,
      bootable: (e.attributes & ATTR_LEGACY_BIOS_BOOTABLE) !== 0n,
    };
    const tn = GPT_TYPE_NAMES[e.typeGuid];
    if (tn) p.typeName = tn;
    if (e.name) p.name = e.name;
    return p;
  });
  const table: PartitionTable = {
    kind: 'gpt',
    sectorSize,
    partitions,
    diskGuid: g.header.diskGuid,
    warnings: g.warnings,
  };
  validate(dev, table);
  return table;
}

/** Flags partitions beyond the end of the file and overlapping data partitions (warnings + flags). */
function validate(dev: BlockDevice, t: PartitionTable): void {
  for (const p of t.partitions) {
    if (p.start + p.size > dev.size) {
      p.beyondEnd = true;
      t.warnings.push(
        `partition ${p.number} (${hex(p.start)}+${hex(p.size)}) runs past the end of the image (size ${hex(dev.size)})`,
      );
    }
  }
  const data = t.partitions.filter((p) => !p.extended).sort((a, b) => a.start - b.start);
  // Sorted by start: each partition is compared with the ones after it that begin before it ends.
  for (let i = 0; i < data.length; i++) {
    const a = data[i]!;
    for (let j = i + 1; j < data.length && data[j]!.start < a.start + a.size; j++) {
      const b = data[j]!;
      if (b.size === 0 || a.size === 0) continue;
      (a.overlaps ??= []).push(b.number);
      (b.overlaps ??= []).push(a.number);
      t.warnings.push(`partitions ${a.number} and ${b.number} overlap`);
    }
  }
  if (t.kind === 'mbr') {
    const ext = t.partitions.find((p) => p.extended);
    for (const p of t.partitions) {
      if (p.number >= 5 && ext && (p.start < ext.start || p.start + p.size > ext.start + ext.size)) {
        t.warnings.push(`logical partition ${p.number} lies outside extended partition ${ext.number}`);
      }
    }
  }
}

/**
 * A device for one partition. PART_BEYOND_END if it runs past the end of the image; PART_OVERLAP if
 * the device is writable and the partition overlaps another; USAGE for an extended container.
 */
export function openPartition(dev: BlockDevice, p: Partition): SliceDevice {
  if (p.extended) {
    throw new UlfsError(
      'USAGE',
      `partition ${p.number} is an extended partition (a container), not a filesystem`,
      {
        number: p.number,
      },
    );
  }
  if (p.start + p.size > dev.size) {
    throw new UlfsError(
      'PART_BEYOND_END',
      `partition ${p.number} (${hex(p.start)}+${hex(p.size)}) runs past the end of ${dev.name} (size ${hex(dev.size)})`,
      { number: p.number, start: p.start, size: p.size, imageSize: dev.size },
    );
  }
  if (dev.writable && p.overlaps && p.overlaps.length > 0) {
    throw new UlfsError(
      'PART_OVERLAP',
      `partition ${p.number} overlaps partition ${p.overlaps.join(', ')}: refusing to write to it`,
      { number: p.number, overlaps: p.overlaps },
    );
  }
  return new SliceDevice(dev, p.start, p.size);
}

/** Finds partition `number` (0 for a bare filesystem) or throws PART_NOT_FOUND. */
export function findPartition(table: PartitionTable, number: number): Partition {
  const p = table.partitions.find((x) => x.number === number);
  if (!p) {
    const have = table.partitions.map((x) => x.number).join(', ') || 'none';
    throw new UlfsError('PART_NOT_FOUND', `no partition ${number} (partitions: ${have})`, { number });
  }
  return p;
}

export interface OpenedImage {
  dev: FileDevice;
  table: PartitionTable;
  /** Closes the file and, in 'rw' mode, releases the lock. */
  close(): void;
}

/**
 * Opens an image and reads its partition table. In 'rw' mode it first takes the image lock
 * (IMAGE_LOCKED) and refuses when an undo log is present (UNDO_PRESENT).
 */
export function openImage(
  path: string,
  mode: 'r' | 'rw' = 'r',
  opts: { sectorSize?: 512 | 4096 } = {},
): OpenedImage {
  let lock: ImageLock | undefined;
  let dev: FileDevice | undefined;
  try {
    if (mode === 'rw') {
      lock = lockImage(path);
      assertNoUndoLog(path);
    }
    dev = new FileDevice(path, mode);
    const table = readPartitionTable(dev, opts);
    const d = dev;
    const l = lock;
    return {
      dev: d,
      table,
      close: () => {
        try {
          d.close();
        } finally {
          l?.release();
        }
      },
    };
  } catch (e) {
    dev?.close();
    lock?.release();
    throw e;
  }
}
