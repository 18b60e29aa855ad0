/**
 * MBR (DOS) partition table: the four primary entries in sector 0 and the chain of extended boot
 * records (EBRs) that holds the logical partitions.
 *
 * Sector 0 (and every EBR) layout — source: the IBM PC MBR format as Linux block/partitions/msdos.c
 * and util-linux libfdisk/src/dos.c read it:
 *
 *   0x000  446 bytes  boot code (ignored)
 *   0x1b8  4          disk signature (MBR only; printed by sfdisk as label-id)
 *   0x1be  16 x 4     partition entries
 *   0x1fe  2          signature 0x55 0xaa
 *
 * Partition entry (16 bytes):
 *   0x0  1  status: 0x80 bootable, 0x00 not; anything else means this is not a partition table
 *   0x1  3  CHS of the first sector (ignored: LBA only)
 *   0x4  1  partition type (0x00 empty; 0x05/0x0f/0x85 extended; 0xee GPT protective)
 *   0x5  3  CHS of the last sector (ignored)
 *   0x8  4  LBA of the first sector (relative: see below)
 *   0xc  4  number of sectors
 *
 * Extended partitions: the primary extended entry points at the first EBR. In every EBR, the data
 * entries (non-empty, non-extended) are logical partitions whose start is relative to THAT EBR; the
 * first extended-type entry links to the next EBR, relative to the start of the PRIMARY extended
 * partition. Linux numbers logical partitions from 5 in chain order (block/partitions/msdos.c).
 * Hostile chains: at most MAX_LOGICAL logical partitions and MAX_EBRS records; an EBR seen twice is
 * MBR_EBR_LOOP.
 */
import { UlfsError, hex } from '../errors.js';
import { le32 } from '../binary/bytes.js';
import type { BlockDevice } from './blockdev.js';

export const MBR_SIZE = 512;
export const MBR_DISK_SIGNATURE = 0x1b8;
export const MBR_ENTRIES = 0x1be;
export const MBR_ENTRY_SIZE = 16;
export const MBR_SIGNATURE = 0x1fe;

export const ENTRY_STATUS = 0x0;
export const ENTRY_TYPE = 0x4;
export const ENTRY_LBA_START = 0x8;
export const ENTRY_SECTORS = 0xc;

export const TYPE_EMPTY = 0x00;
export const TYPE_GPT_PROTECTIVE = 0xee;
export const EXTENDED_TYPES: ReadonlySet<number> = new Set([0x05, 0x0f, 0x85]);

export const MAX_LOGICAL = 128;
/** EBRs may be empty links (no data entry); allow some slack over MAX_LOGICAL before calling it hostile. */
export const MAX_EBRS = 2 * MAX_LOGICAL;

export const MBR_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x01: 'FAT12',
  0x04: 'FAT16 <32M',
  0x05: 'Extended',
  0x06: 'FAT16',
  0x07: 'HPFS/NTFS/exFAT',
  0x0b: 'W95 FAT32',
  0x0c: 'W95 FAT32 (LBA)',
  0x0e: 'W95 FAT16 (LBA)',
  0x0f: "W95 Ext'd (LBA)",
  0x82: 'Linux swap / Solaris',
  0x83: 'Linux',
  0x85: 'Linux extended',
  0x8e: 'Linux LVM',
  0xa5: 'FreeBSD',
  0xee: 'GPT',
  0xef: 'EFI (FAT-12/16/32)',
  0xfd: 'Linux raid autodetect',
};

export interface MbrEntry {
  /** 0..3 within its sector. */
  index: number;
  status: number;
  type: number;
  lbaStart: number;
  sectors: number;
}

export interface Mbr {
  diskSignature: number;
  hasSignature: boolean;
  entries: MbrEntry[];
}

/** Decodes a 512-byte MBR or EBR. All four entries are returned, empty ones included. */
export function decodeMbr(sector: Uint8Array): Mbr {
  if (sector.length < MBR_SIZE) {
    throw new UlfsError('IMAGE_TRUNCATED', `MBR needs ${MBR_SIZE} bytes, got ${sector.length}`);
  }
  const entries: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const o = MBR_ENTRIES + i * MBR_ENTRY_SIZE;
    entries.push({
      index: i,
      status: sector[o + ENTRY_STATUS]!,
      type: sector[o + ENTRY_TYPE]!,
      lbaStart: le32(sector, o + ENTRY_LBA_START),
      sectors: le32(sector, o + ENTRY_SECTORS),
    });
  }
  return {
    diskSignature: le32(sector, MBR_DISK_SIGNATURE),
    hasSignature: sector[MBR_SIGNATURE] === 0x55 && sector[MBR_SIGNATURE + 1] === 0xaa,
    entries,
  };
}

/** Encodes entries into a 512-byte sector (boot code zero). For tests and hostile-image recipes. */
export function encodeMbr(mbr: Mbr): Buffer {
  const b = Buffer.alloc(MBR_SIZE);
  b.writeUInt32LE(mbr.diskSignature >>> 0, MBR_DISK_SIGNATURE);
  for (const e of mbr.entries) {
    const o = MBR_ENTRIES + e.index * MBR_ENTRY_SIZE;
    b[o + ENTRY_STATUS] = e.status;
    b[o + ENTRY_TYPE] = e.type;
    b.writeUInt32LE(e.lbaStart >>> 0, o + ENTRY_LBA_START);
    b.writeUInt32LE(e.sectors >>> 0, o + ENTRY_SECTORS);
  }
  if (mbr.hasSignature) {
    b[MBR_SIGNATURE] = 0x55;
    b[MBR_SIGNATURE + 1] = 0xaa;
  }
  return b;
}

export const isUsed = (e: MbrEntry): boolean => e.type !== TYPE_EMPTY && e.sectors !== 0;
export const isExtended = (e: MbrEntry): boolean => EXTENDED_TYPES.has(e.type);

/** A partition as the MBR describes it, in sectors, before conversion to bytes. */
export interface MbrPartition {
  number: number;
  type: number;
  bootable: boolean;
  startLba: number;
  sectors: number;
  extended: boolean;
  logical: boolean;
}

export interface MbrTable {
  diskSignature: number;
  partitions: MbrPartition[];
  warnings: string[];
}

/**
 * Reads the primary entries and walks the EBR chain. Throws MBR_BAD_PARTITION on a bad status byte,
 * MBR_EBR_LOOP / MBR_EBR_TOO_MANY on hostile chains, PART_BEYOND_END for an EBR outside the disk.
 */
export function readMbr(dev: BlockDevice, sectorSize: number, mbr?: Mbr): MbrTable {
  const m = mbr ?? decodeMbr(dev.read(0, MBR_SIZE));
  if (!m.hasSignature) {
    throw new UlfsError('MBR_BAD_SIGNATURE', `${dev.name}: sector 0 has no 0x55aa signature`);
  }
  const warnings: string[] = [];
  const partitions: MbrPartition[] = [];
  let extended: MbrPartition | undefined;
  for (const e of m.entries) {
    if (e.status !== 0x00 && e.status !== 0x80) {
      throw new UlfsError(
        'MBR_BAD_PARTITION',
        `${dev.name}: MBR entry ${e.index + 1} has status byte ${hex(e.status)} (must be 0x0 or 0x80)`,
        { entry: e.index + 1, status: e.status },
      );
    }
    if (!isUsed(e)) continue;
    const p: MbrPartition = {
      number: e.index + 1,
      type: e.type,
      bootable: e.status === 0x80,
      startLba: e.lbaStart,
      sectors: e.sectors,
      extended: isExtended(e),
      logical: false,
    };
    partitions.push(p);
    if (p.extended) {
      if (extended)
        warnings.push(
          `MBR has a second extended partition (${p.number}); its logical partitions are ignored`,
        );
      else extended = p;
    }
  }
  if (extended) partitions.push(...walkEbrChain(dev, sectorSize, extended, warnings));
  return { diskSignature: m.diskSignature, partitions, warnings };
}

function walkEbrChain(
  dev: BlockDevice,
  sectorSize: number,
  ext: MbrPartition,
  warnings: string[],
): MbrPartition[] {
  const logicals: MbrPartition[] = [];
  const diskSectors = Math.floor(dev.size / sectorSize);
  const visited = new Set<number>();
  let ebrLba = ext.startLba;
  let number = 5;
  for (let hops = 0; ; hops++) {
    if (hops >= MAX_EBRS) {
      throw new UlfsError('MBR_EBR_TOO_MANY', `${dev.name}: EBR chain is longer than ${MAX_EBRS} records`, {
        max: MAX_EBRS,
      });
    }
    if (visited.has(ebrLba)) {
      throw new UlfsError('MBR_EBR_LOOP', `${dev.name}: EBR chain loops back to sector ${hex(ebrLba)}`, {
        lba: ebrLba,
      });
    }
    visited.add(ebrLba);
    const inside = ebrLba >= ext.startLba && ebrLba < ext.startLba + ext.sectors;
    if (ebrLba + 1 > diskSectors) {
      // Inside the extended partition: the image file is short (truncated), keep what we have.
      // Outside it as well: the link itself is garbage.
      if (inside) {
        warnings.push(
          `EBR at sector ${hex(ebrLba)} is past the end of the image (${hex(diskSectors)} sectors): truncated? logical partitions from ${number} on are missing`,
        );
        return logicals;
      }
      throw new UlfsError(
        'PART_BEYOND_END',
        `${dev.name}: EBR at sector ${hex(ebrLba)} is beyond the end of the disk (${hex(diskSectors)} sectors)`,
        { lba: ebrLba, diskSectors },
      );
    }
    if (!inside) warnings.push(`EBR at sector ${hex(ebrLba)} lies outside extended partition ${ext.number}`);
    const ebr = decodeMbr(dev.read(ebrLba * sectorSize, MBR_SIZE));
    if (!ebr.hasSignature) {
      // An extended partition with no logicals may hold a blank first EBR: that is normal.
      if (hops > 0 || ebr.entries.some(isUsed)) {
        warnings.push(`EBR at sector ${hex(ebrLba)} has no 0x55aa signature; the chain stops there`);
      }
      return logicals;
    }
    let next: number | undefined;
    for (const e of ebr.entries) {
      if (!isUsed(e)) continue;
      if (isExtended(e)) {
        if (next === undefined) next = ext.startLba + e.lbaStart;
        continue;
      }
      if (logicals.length >= MAX_LOGICAL) {
        throw new UlfsError('MBR_EBR_TOO_MANY', `${dev.name}: more than ${MAX_LOGICAL} logical partitions`, {
          max: MAX_LOGICAL,
        });
      }
      logicals.push({
        number: number++,
        type: e.type,
        bootable: e.status === 0x80,
        startLba: ebrLba + e.lbaStart,
        sectors: e.sectors,
        extended: false,
        logical: true,
      });
    }
    if (next === undefined) return logicals;
    ebrLba = next;
  }
}
