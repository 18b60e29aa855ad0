/**
 * Reading one cpio entry (newc or crc) from a ByteReader, bounded and checked, keeping the raw bytes
 * so that an entry nobody changes is written back byte for byte.
 */
import { UlfsError, bound, hex } from '../errors.js';
import {
  CPIO_HEADER_SIZE,
  CPIO_MAX_NAME,
  S_IFMT,
  S_IFREG,
  cpioChecksum,
  decodeCpioHeader,
  headerBlockSize,
  pad4,
  type CpioHeader,
} from './cpio.js';
import type { ByteReader } from './reader.js';

export interface CpioEntry {
  header: CpioHeader;
  /** The name as stored, without the trailing NUL. */
  name: string;
  nameBytes: Buffer;
  /** Header + name + padding, exactly as read. */
  raw: Buffer;
  /**
   * The data as views of the input chunks it arrived in (no copy; `Buffer.concat` for one Buffer).
   * Their lengths add up to header.fileSize.
   */
  data: Buffer[];
  /** The padding after the data, exactly as read. */
  dataPad: Buffer;
  /** Stream position of the header (in the decompressed stream for compressed segments). */
  offset: number;
}

export interface EntryLimits {
  /** Longest name accepted, NUL included (default 4096). */
  maxName?: number;
  /** Largest single entry accepted (default 1 GiB). */
  maxEntrySize?: number;
  /** Whether crc-format checksums are verified (default true). */
  verifyCrc?: boolean;
  /**
   * Whether the caller needs an entry's data (default: always). When it says no, the data is read
   * past without being collected (crc sums still verified) and `data` and `dataPad` are empty: a
   * listing then copies nothing of the archive's contents.
   */
  wantData?: (header: CpioHeader, name: string) => boolean;
}

const EMPTY: Buffer = Buffer.alloc(0);

const DEFAULT_MAX_ENTRY = 1024 ** 3;

/**
 * Reads the entry at the reader's position. The caller has checked that bytes follow; a header cut
 * short is CPIO_TRUNCATED, as are a name or data that run past the end of the input.
 */
export async function readCpioEntry(r: ByteReader, limits: EntryLimits = {}): Promise<CpioEntry> {
  const offset = r.offset;
  if (!(await r.fill(CPIO_HEADER_SIZE))) {
    throw new UlfsError(
      'CPIO_TRUNCATED',
      `cpio header at ${hex(offset)} is cut short by the end of the input`,
      {
        offset,
      },
    );
  }
  const header = decodeCpioHeader(r.peek(CPIO_HEADER_SIZE), 0, offset);
  const maxName = limits.maxName ?? CPIO_MAX_NAME;
  if (header.nameSize === 0) {
    throw new UlfsError('CPIO_BAD_HEADER', `cpio header at ${hex(offset)}: namesize is 0`, { offset });
  }
  bound(header.nameSize, maxName, `cpio name size at ${hex(offset)}`, 'CPIO_NAME_TOO_LONG', { offset });
  bound(
    header.fileSize,
    limits.maxEntrySize ?? DEFAULT_MAX_ENTRY,
    `cpio file size at ${hex(offset)}`,
    'LIMIT_EXCEEDED',
    {
      offset,
    },
  );
  const headLen = headerBlockSize(header.nameSize);
  if (!(await r.fill(headLen))) {
    throw new UlfsError(
      'CPIO_TRUNCATED',
      `cpio name at ${hex(offset)} (namesize ${hex(header.nameSize)}) runs past the end of the archive`,
      { offset, nameSize: header.nameSize },
    );
  }
  // A copy (a few hundred bytes): a view would keep the whole input chunk it sits in alive for as
  // long as the entry is held (removed directories are remembered to the end of the archive).
  const raw = r.takeCopy(headLen);
  const nameBytes = raw.subarray(CPIO_HEADER_SIZE, CPIO_HEADER_SIZE + header.nameSize - 1);
  if (raw[CPIO_HEADER_SIZE + header.nameSize - 1] !== 0) {
    throw new UlfsError('CPIO_BAD_HEADER', `cpio name at ${hex(offset)} is not NUL-terminated`, { offset });
  }
  const name = nameBytes.toString('utf8');
  const dataLen = pad4(header.fileSize);
  const truncated = (): UlfsError =>
    new UlfsError(
      'CPIO_TRUNCATED',
      `cpio data of ${JSON.stringify(name)} at ${hex(offset)} (filesize ${hex(header.fileSize)}) runs past the end of the archive`,
      { offset, name, fileSize: header.fileSize },
    );
  // GNU cpio sums regular files only (symlink targets get check 0).
  const verify = header.format === 'crc' && (limits.verifyCrc ?? true) && (header.mode & S_IFMT) === S_IFREG;
  let data: Buffer[] = [];
  let dataPad = EMPTY;
  let sum = 0;
  if (limits.wantData && !limits.wantData(header, name)) {
    // Read past as it streams in: a large dropped file is never held whole.
    const sumPart = verify ? (part: Buffer) => (sum = (sum + cpioChecksum(part)) >>> 0) : undefined;
    if (
      !(await r.skipStreaming(header.fileSize, sumPart)) ||
      !(await r.skipStreaming(dataLen - header.fileSize))
    )
      throw truncated();
  } else {
    if (!(await r.fill(dataLen))) throw truncated();
    data = r.takeParts(header.fileSize);
    dataPad = r.takeCopy(dataLen - header.fileSize); // 0-3 bytes: a copy, as for raw
    if (verify) for (const part of data) sum = (sum + cpioChecksum(part)) >>> 0;
  }
  if (verify) {
    if (sum !== header.check) {
      throw new UlfsError(
        'CPIO_BAD_CRC',
        `cpio crc of ${JSON.stringify(name)} at ${hex(offset)} is ${hex(header.check)}, data sums to ${hex(sum)}`,
        { offset, name, stored: header.check, computed: sum },
      );
    }
  }
  return { header, name, nameBytes, raw, data, dataPad, offset };
}
