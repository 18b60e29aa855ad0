/**
 * cpio "new ASCII" (newc, magic 070701) and "new CRC" (crc, magic 070702) headers
 * (GNU cpio manual, "Options": the formats; kernel Documentation/driver-api/early-userspace/
 * buffer-format.rst; usr/gen_init_cpio.c).
 *
 *   offset  size  field        (every field but the magic is 8 ASCII hex digits)
 *   0       6     magic        "070701" newc, "070702" crc
 *   6       8     ino          14  8  mode        22  8  uid        30  8  gid
 *   38      8     nlink        46  8  mtime       54  8  filesize
 *   62      8     devmajor     70  8  devminor    78  8  rdevmajor  86  8  rdevminor
 *   94      8     namesize     (including the trailing NUL)
 *   102     8     check        (crc format: the sum of all data bytes mod 2^32; newc: 0)
 *   110           name (namesize bytes), NUL padding so that header+name is a multiple of 4,
 *                 then filesize bytes of data, NUL padding to a multiple of 4.
 *
 * An archive ends with an entry named "TRAILER!!!". In newc, of a set of hard links (same ino,
 * nlink > 1) only the last one written carries the data; the others have filesize 0.
 */
import { UlfsError, hex } from '../errors.js';

export const CPIO_HEADER_SIZE = 110;
export const CPIO_MAGIC_NEWC = '070701';
export const CPIO_MAGIC_CRC = '070702';
export const CPIO_TRAILER = 'TRAILER!!!';
/** Longest name we accept (PATH_MAX). */
export const CPIO_MAX_NAME = 4096;

const OFF_MAGIC = 0;
const OFF_INO = 6;
const OFF_MODE = 14;
const OFF_UID = 22;
const OFF_GID = 30;
const OFF_NLINK = 38;
const OFF_MTIME = 46;
const OFF_FILESIZE = 54;
const OFF_DEVMAJOR = 62;
const OFF_DEVMINOR = 70;
const OFF_RDEVMAJOR = 78;
const OFF_RDEVMINOR = 86;
const OFF_NAMESIZE = 94;
const OFF_CHECK = 102;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export type CpioFormat = 'newc' | 'crc';

export interface CpioHeader {
  format: CpioFormat;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  fileSize: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  nameSize: number;
  check: number;
  /** True when the hex digits were written in lower case (re-encoded headers keep the case). */
  lowerCase: boolean;
}

/** Rounds up to the next multiple of 4. */
export function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Byte count of header + name + padding for a name of `nameSize` bytes (NUL included). */
export function headerBlockSize(nameSize: number): number {
  return pad4(CPIO_HEADER_SIZE + nameSize);
}

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[0x41 + i] = 10 + i;
  HEX[0x61 + i] = 10 + i;
}

function hexField(b: Uint8Array, at: number, offset: number, field: string): number {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    const d = HEX[b[at + i]!]!;
    if (d < 0) {
      throw new UlfsError('CPIO_BAD_HEADER', `cpio header at ${hex(offset)}: field ${field} is not hex`, {
        offset,
        field,
      });
    }
    v = v * 16 + d;
  }
  return v;
}

/** True when `b` at `at` starts with "07070". */
export function isCpioMagicPrefix(b: Uint8Array, at = 0): boolean {
  return (
    b[at] === 0x30 && b[at + 1] === 0x37 && b[at + 2] === 0x30 && b[at + 3] === 0x37 && b[at + 4] === 0x30
  );
}

/** Decodes the 110-byte header at `b[at..]`; `offset` is its position in the stream, for messages. */
export function decodeCpioHeader(b: Uint8Array, at: number, offset: number): CpioHeader {
  const m = b[at + 5];
  if (!isCpioMagicPrefix(b, at + OFF_MAGIC) || (m !== 0x31 && m !== 0x32)) {
    const got = Buffer.from(b.subarray(at, at + 6)).toString('latin1');
    throw new UlfsError(
      'CPIO_BAD_MAGIC',
      `no cpio newc/crc magic at ${hex(offset)} (found ${JSON.stringify(got)})`,
      { offset },
    );
  }
  let lowerCase = false;
  for (let i = 6; i < CPIO_HEADER_SIZE; i++) {
    const c = b[at + i]!;
    if (c >= 0x61 && c <= 0x66) {
      lowerCase = true;
      break;
    }
  }
  return {
    format: m === 0x31 ? 'newc' : 'crc',
    ino: hexField(b, at + OFF_INO, offset, 'ino'),
    mode: hexField(b, at + OFF_MODE, offset, 'mode'),
    uid: hexField(b, at + OFF_UID, offset, 'uid'),
    gid: hexField(b, at + OFF_GID, offset, 'gid'),
    nlink: hexField(b, at + OFF_NLINK, offset, 'nlink'),
    mtime: hexField(b, at + OFF_MTIME, offset, 'mtime'),
    fileSize: hexField(b, at + OFF_FILESIZE, offset, 'filesize'),
    devMajor: hexField(b, at + OFF_DEVMAJOR, offset, 'devmajor'),
    devMinor: hexField(b, at + OFF_DEVMINOR, offset, 'devminor'),
    rdevMajor: hexField(b, at + OFF_RDEVMAJOR, offset, 'rdevmajor'),
    rdevMinor: hexField(b, at + OFF_RDEVMINOR, offset, 'rdevminor'),
    nameSize: hexField(b, at + OFF_NAMESIZE, offset, 'namesize'),
    check: hexField(b, at + OFF_CHECK, offset, 'check'),
    lowerCase,
  };
}

function putHex(b: Buffer, at: number, v: number, lower: boolean): void {
  const s = (v >>> 0).toString(16).padStart(8, '0');
  b.write(lower ? s : s.toUpperCase(), at, 8, 'latin1');
}

/** Encodes header + name + NUL + padding (headerBlockSize(name bytes + 1) bytes). */
export function encodeCpioHeader(h: CpioHeader, name: Buffer): Buffer {
  const nameSize = name.length + 1;
  const out = Buffer.alloc(headerBlockSize(nameSize));
  out.write(h.format === 'newc' ? CPIO_MAGIC_NEWC : CPIO_MAGIC_CRC, OFF_MAGIC, 6, 'latin1');
  const l = h.lowerCase;
  putHex(out, OFF_INO, h.ino, l);
  putHex(out, OFF_MODE, h.mode, l);
  putHex(out, OFF_UID, h.uid, l);
  putHex(out, OFF_GID, h.gid, l);
  putHex(out, OFF_NLINK, h.nlink, l);
  putHex(out, OFF_MTIME, h.mtime, l);
  putHex(out, OFF_FILESIZE, h.fileSize, l);
  putHex(out, OFF_DEVMAJOR, h.devMajor, l);
  putHex(out, OFF_DEVMINOR, h.devMinor, l);
  putHex(out, OFF_RDEVMAJOR, h.rdevMajor, l);
  putHex(out, OFF_RDEVMINOR, h.rdevMinor, l);
  putHex(out, OFF_NAMESIZE, nameSize, l);
  putHex(out, OFF_CHECK, h.check, l);
  name.copy(out, CPIO_HEADER_SIZE);
  return out;
}

/** The crc format's checksum: the sum of all data bytes, mod 2^32. */
export function cpioChecksum(data: Uint8Array): number {
  let sum = 0;
  const n = data.length;
  let i = 0;
  // Unrolled by 8 to keep the loop cheap; the sum of 8 bytes cannot overflow a double.
  for (; i + 8 <= n; i += 8) {
    sum =
      (sum +
        data[i]! +
        data[i + 1]! +
        data[i + 2]! +
        data[i + 3]! +
        data[i + 4]! +
        data[i + 5]! +
        data[i + 6]! +
        data[i + 7]!) >>>
      0;
  }
  for (; i < n; i++) sum = (sum + data[i]!) >>> 0;
  return sum;
}
