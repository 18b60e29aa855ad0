/**
 * GPT (GUID partition table): header at LBA 1 (primary) and at the last LBA (backup), each pointing
 * at an array of partition entries. Source: UEFI Specification 2.10, section 5.3.
 *
 * Header (little-endian), at the start of its sector:
 *   0x00  8   signature "EFI PART"
 *   0x08  4   revision (0x00010000)
 *   0x0c  4   headerSize (92 .. sector size)
 *   0x10  4   headerCrc32: CRC-32 (IEEE) of headerSize bytes with this field zeroed
 *   0x14  4   reserved
 *   0x18  8   myLba (1 for the primary, last LBA for the backup)
 *   0x20  8   alternateLba
 *   0x28  8   firstUsableLba
 *   0x30  8   lastUsableLba
 *   0x38  16  diskGuid
 *   0x48  8   partitionEntryLba
 *   0x50  4   numberOfPartitionEntries
 *   0x54  4   sizeOfPartitionEntry (128 * 2^n)
 *   0x58  4   partitionEntryArrayCrc32: CRC-32 of numberOfPartitionEntries * sizeOfPartitionEntry bytes
 *
 * Partition entry:
 *   0x00  16  partitionTypeGuid (all zero: unused)
 *   0x10  16  uniquePartitionGuid
 *   0x20  8   startingLba
 *   0x28  8   endingLba (inclusive)
 *   0x30  8   attributes
 *   0x38  72  partitionName, UTF-16LE, NUL-padded
 *
 * GUIDs are stored mixed-endian: the first three fields little-endian, the last two as bytes.
 * Linux numbers GPT partitions by entry index + 1, empty entries keep their number.
 * Limits (hostile input): entry size 128..4096 and a power of two, at most 1024 entries.
 */
import { UlfsError, hex } from '../errors.js';
import { le32, le64 } from '../binary/bytes.js';
import { crc32 } from '../binary/crc32.js';
import type { BlockDevice } from './blockdev.js';

export const GPT_SIGNATURE = 'EFI PART';
export const HDR_SIGNATURE = 0x00;
export const HDR_REVISION = 0x08;
export const HDR_HEADER_SIZE = 0x0c;
export const HDR_HEADER_CRC32 = 0x10;
export const HDR_MY_LBA = 0x18;
export const HDR_ALTERNATE_LBA = 0x20;
export const HDR_FIRST_USABLE_LBA = 0x28;
export const HDR_LAST_USABLE_LBA = 0x30;
export const HDR_DISK_GUID = 0x38;
export const HDR_PARTITION_ENTRY_LBA = 0x48;
export const HDR_NUMBER_OF_PARTITION_ENTRIES = 0x50;
export const HDR_SIZE_OF_PARTITION_ENTRY = 0x54;
export const HDR_PARTITION_ENTRY_ARRAY_CRC32 = 0x58;
export const HDR_MIN_SIZE = 92;

export const ENT_TYPE_GUID = 0x00;
export const ENT_UNIQUE_GUID = 0x10;
export const ENT_STARTING_LBA = 0x20;
export const ENT_ENDING_LBA = 0x28;
export const ENT_ATTRIBUTES = 0x30;
export const ENT_NAME = 0x38;
export const ENT_NAME_BYTES = 72;

export const MIN_ENTRY_SIZE = 128;
export const MAX_ENTRY_SIZE = 4096;
export const MAX_ENTRIES = 1024;

/** GPT attribute bit 2: legacy BIOS bootable. */
export const ATTR_LEGACY_BIOS_BOOTABLE = 1n << 2n;

export const GPT_TYPE_NAMES: Readonly<Record<string, string>> = {
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI System',
  '21686148-6449-6E6F-744E-656564454649': 'BIOS boot',
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 'Linux filesystem',
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 'Linux swap',
  '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709': 'Linux root (x86-64)',
  '44479540-F297-41B2-9AF7-D131D5F0458A': 'Linux root (x86)',
  'B921B045-1DF0-41C3-AF44-4C6F280D3FAE': 'Linux root (ARM-64)',
  '8484680C-9521-48C6-9C11-B0720656F69E': 'Linux /usr (x86-64)',
  'BC13C2FF-59E6-4262-A352-B275FD6F7172': 'Linux extended boot',
  '933AC7E1-2EB4-4F13-B844-0E14E2AEF915': 'Linux home',
  'E6D6D379-F507-44C2-A23C-238F2A3DF928': 'Linux LVM',
  'A19D880F-05FC-4D3B-A006-743F0F84911E': 'Linux RAID',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': 'Microsoft reserved',
};

/** Formats 16 mixed-endian GUID bytes the way sfdisk prints them (upper case). */
export function guidString(b: Uint8Array, off: number): string {
  const h = (i: number): string => b[off + i]!.toString(16).padStart(2, '0');
  const s =
    h(3) +
    h(2) +
    h(1) +
    h(0) +
    '-' +
    h(5) +
    h(4) +
    '-' +
    h(7) +
    h(6) +
    '-' +
    h(8) +
    h(9) +
    '-' +
    h(10) +
    h(11) +
    h(12) +
    h(13) +
    h(14) +
    h(15);
  return s.toUpperCase();
}

export interface GptHeader {
  revision: number;
  headerSize: number;
  headerCrc32: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  partitionEntryLba: number;
  numberOfPartitionEntries: number;
  sizeOfPartitionEntry: number;
  partitionEntryArrayCrc32: number;
}

export function hasGptSignature(b: Uint8Array): boolean {
  return b.length >= 8 && Buffer.from(b.buffer, b.byteOffset, 8).toString('latin1') === GPT_SIGNATURE;
}

/** Decodes a header sector. Structural checks only; `checkHeader` verifies CRC and bounds. */
export function decodeGptHeader(b: Uint8Array): GptHeader {
  return {
    revision: le32(b, HDR_REVISION),
    headerSize: le32(b, HDR_HEADER_SIZE),
    headerCrc32: le32(b, HDR_HEADER_CRC32),
    myLba: le64(b, HDR_MY_LBA),
    alternateLba: le64(b, HDR_ALTERNATE_LBA),
    firstUsableLba: le64(b, HDR_FIRST_USABLE_LBA),
    lastUsableLba: le64(b, HDR_LAST_USABLE_LBA),
    diskGuid: guidString(b, HDR_DISK_GUID),
    partitionEntryLba: le64(b, HDR_PARTITION_ENTRY_LBA),
    numberOfPartitionEntries: le32(b, HDR_NUMBER_OF_PARTITION_ENTRIES),
    sizeOfPartitionEntry: le32(b, HDR_SIZE_OF_PARTITION_ENTRY),
    partitionEntryArrayCrc32: le32(b, HDR_PARTITION_ENTRY_ARRAY_CRC32),
  };
}

/** CRC-32 of the header's first headerSize bytes with the CRC field taken as zero. */
export function headerCrc(sector: Uint8Array, headerSize: number): number {
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, HDR_HEADER_CRC32);
  return crc32(copy);
}

export interface GptEntry {
  index: number;
  typeGuid: string;
  uniqueGuid: string;
  startingLba: number;
  endingLba: number;
  attributes: bigint;
  name: string;
}

export function decodeGptEntry(b: Uint8Array, off: number, index: number): GptEntry {
  const nameBytes = Buffer.from(b.buffer, b.byteOffset + off + ENT_NAME, ENT_NAME_BYTES);
  let end = 0;
  while (end < ENT_NAME_BYTES && (nameBytes[end] !== 0 || nameBytes[end + 1] !== 0)) end += 2;
  return {
    index,
    typeGuid: guidString(b, off + ENT_TYPE_GUID),
    uniqueGuid: guidString(b, off + ENT_UNIQUE_GUID),
    startingLba: le64(b, off + ENT_STARTING_LBA),
    endingLba: le64(b, off + ENT_ENDING_LBA),
    attributes: Buffer.from(b.buffer, b.byteOffset + off + ENT_ATTRIBUTES, 8).readBigUInt64LE(0),
    name: nameBytes.subarray(0, end).toString('utf16le'),
  };
}

const EMPTY_GUID = '00000000-0000-0000-0000-000000000000';

export interface GptTable {
  header: GptHeader;
  /** Used entries only, in index order. */
  entries: GptEntry[];
  usedBackup: boolean;
  warnings: string[];
}

class BadGpt extends Error {
  constructor(
    readonly code: 'GPT_BAD_HEADER' | 'GPT_BAD_CRC' | 'GPT_BAD_ENTRIES',
    message: string,
  ) {
    super(message);
  }
}

/** Reads and fully validates one header and its entry array; throws BadGpt with the reason. */
function readOne(
  dev: BlockDevice,
  sectorSize: number,
  lba: number,
  which: string,
): { header: GptHeader; array: Buffer } {
  const diskSectors = Math.floor(dev.size / sectorSize);
  if (lba < 1 || lba >= diskSectors)
    throw new BadGpt('GPT_BAD_HEADER', `${which} GPT header LBA ${hex(lba)} is outside the disk`);
  const sector = dev.read(lba * sectorSize, sectorSize);
  if (!hasGptSignature(sector))
    throw new BadGpt('GPT_BAD_HEADER', `${which} GPT header has no "EFI PART" signature`);
  let h: GptHeader;
  try {
    h = decodeGptHeader(sector);
  } catch (e) {
    throw new BadGpt('GPT_BAD_HEADER', `${which} GPT header: ${(e as Error).message}`);
  }
  if (h.headerSize < HDR_MIN_SIZE || h.headerSize > sectorSize) {
    throw new BadGpt('GPT_BAD_HEADER', `${which} GPT header size ${hex(h.headerSize)} is out of range`);
  }
  const crc = headerCrc(sector, h.headerSize);
  if (crc !== h.headerCrc32) {
    throw new BadGpt(
      'GPT_BAD_CRC',
      `${which} GPT header bad CRC (stored ${hex(h.headerCrc32)}, computed ${hex(crc)})`,
    );
  }
  if (h.myLba !== lba)
    throw new BadGpt(
      'GPT_BAD_HEADER',
      `${which} GPT header says it is at LBA ${hex(h.myLba)}, read at ${hex(lba)}`,
    );
  const es = h.sizeOfPartitionEntry;
  if (es < MIN_ENTRY_SIZE || es > MAX_ENTRY_SIZE || (es & (es - 1)) !== 0) {
    throw new BadGpt(
      'GPT_BAD_ENTRIES',
      `${which} GPT entry size ${hex(es)} is not a power of two in 128..4096`,
    );
  }
  if (h.numberOfPartitionEntries > MAX_ENTRIES) {
    throw new BadGpt(
      'GPT_BAD_ENTRIES',
      `${which} GPT claims ${h.numberOfPartitionEntries} entries (limit ${MAX_ENTRIES})`,
    );
  }
  const arrayBytes = h.numberOfPartitionEntries * es;
  const arrayEnd = h.partitionEntryLba * sectorSize + arrayBytes;
  if (h.partitionEntryLba < 1 || arrayEnd > dev.size) {
    throw new BadGpt(
      'GPT_BAD_ENTRIES',
      `${which} GPT entry array at LBA ${hex(h.partitionEntryLba)} runs past the end of the disk`,
    );
  }
  const array = dev.read(h.partitionEntryLba * sectorSize, arrayBytes);
  const acrc = crc32(array);
  if (acrc !== h.partitionEntryArrayCrc32) {
    throw new BadGpt(
      'GPT_BAD_CRC',
      `${which} GPT entry array bad CRC (stored ${hex(h.partitionEntryArrayCrc32)}, computed ${hex(acrc)})`,
    );
  }
  return { header: h, array };
}

/**
 * Reads the GPT at the given sector size: the primary header, or the backup when the primary is bad
 * (with a warning). Both bad: the primary's error (GPT_BAD_CRC, GPT_BAD_HEADER or GPT_BAD_ENTRIES).
 */
export function readGpt(dev: BlockDevice, sectorSize: number): GptTable {
  const warnings: string[] = [];
  const lastLba = Math.floor(dev.size / sectorSize) - 1;
  let got: { header: GptHeader; array: Buffer };
  let usedBackup = false;
  try {
    got = readOne(dev, sectorSize, 1, 'primary');
  } catch (e) {
    if (!(e instanceof BadGpt)) throw e;
    let backupLba = lastLba;
    try {
      // Where the primary says its backup is, if the primary header itself is readable.
      const h = decodeGptHeader(dev.read(sectorSize, sectorSize));
      if (hasGptSignature(dev.read(sectorSize, 8)) && h.alternateLba > 1 && h.alternateLba < lastLba) {
        const s = dev.read(h.alternateLba * sectorSize, sectorSize);
        if (hasGptSignature(s)) backupLba = h.alternateLba;
      }
    } catch {
      /* the last LBA it is */
    }
    try {
      got = readOne(dev, sectorSize, backupLba, 'backup');
    } catch (e2) {
      if (!(e2 instanceof BadGpt)) throw e2;
      // A CRC failure on either side is the more telling diagnosis.
      const code = e.code === 'GPT_BAD_CRC' || e2.code === 'GPT_BAD_CRC' ? 'GPT_BAD_CRC' : e.code;
      throw new UlfsError(code, `${dev.name}: ${e.message}; ${e2.message}`, { sectorSize });
    }
    usedBackup = true;
    warnings.push(`${e.message}; using the backup at LBA ${hex(backupLba)}`);
  }
  const { header, array } = got;
  const entries: GptEntry[] = [];
  for (let i = 0; i < header.numberOfPartitionEntries; i++) {
    const off = i * header.sizeOfPartitionEntry;
    if (guidString(array, off + ENT_TYPE_GUID) === EMPTY_GUID) continue;
    let e: GptEntry;
    try {
      e = decodeGptEntry(array, off, i);
    } catch (err) {
      throw new UlfsError('GPT_BAD_ENTRIES', `${dev.name}: GPT entry ${i + 1}: ${(err as Error).message}`, {
        entry: i + 1,
      });
    }
    if (e.endingLba < e.startingLba) {
      throw new UlfsError(
        'GPT_BAD_ENTRIES',
        `${dev.name}: GPT entry ${i + 1} ends at LBA ${hex(e.endingLba)} before it starts at ${hex(e.startingLba)}`,
        { entry: i + 1 },
      );
    }
    if (e.startingLba < header.firstUsableLba || e.endingLba > header.lastUsableLba) {
      warnings.push(
        `GPT entry ${i + 1} lies outside the usable LBAs ${hex(header.firstUsableLba)}..${hex(header.lastUsableLba)}`,
      );
    }
    entries.push(e);
  }
  return { header, entries, usedBackup, warnings };
}
