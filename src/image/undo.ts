/**
 * The undo log, `IMAGE.ulfs-undo`: the original bytes of every range we are about to change, made
 * durable before the change, so that `ulfs-offline undo IMAGE` can put the image back byte for byte
 * after a crash, a kill or a bug. Written by JournaledDevice (journaled.ts), replayed by `undo()`.
 *
 * File layout (all integers little-endian; our own format, version 1):
 *
 *   Header, 128 bytes:
 *     0x00  8   magic "ULFSUNDO"
 *     0x08  4   version (1)
 *     0x0c  4   headerSize (128)
 *     0x10  8   imageSize: the image's size in bytes (writes never change it)
 *     0x18  8   imageDev:  st_dev of the image file  } identity: the log belongs to this file
 *     0x20  8   imageIno:  st_ino of the image file  }
 *     0x28  8   hashedBytes: min(64 KiB, imageSize)
 *     0x30  32  sha256 of the image's first hashedBytes bytes BEFORE any write
 *     0x50  44  reserved, zero
 *     0x7c  4   headerCrc: crc32cRaw(0xffffffff, bytes 0x00..0x7b)
 *
 *   Then batches, one per JournaledDevice.sync(), each:
 *     records, each:  0x00 4 magic "UREC", 0x04 4 length (<= 16 MiB), 0x08 8 offset (absolute in the
 *                     image), 0x10 4 dataCrc: crc32cRaw(0xffffffff, data), 0x14 4 zero, 0x18 data
 *     commit trailer: 0x00 4 magic "UCMT", 0x04 4 record count, 0x08 4 batch number (0, 1, ...),
 *                     0x0c 4 runningCrc: crc32cRaw(previous runningCrc — the headerCrc for batch 0 —,
 *                     over this batch's record headers (which carry each record's dataCrc) and the
 *                     trailer's first 12 bytes), so data is checksummed once and structure twice
 *
 * Safety argument: a batch is appended and fsynced BEFORE any of the writes it covers reach the
 * image, and records only ever cover ranges not recorded before, so each record holds the bytes the
 * image had before this run. A crash while appending leaves a torn tail (a batch with no valid commit
 * trailer): its writes never started, so the tail is ignored. Undo restores the committed records in
 * reverse order; restoring a record whose write had not happened yet rewrites the same bytes, so undo
 * is correct wherever the crash hit, and idempotent (it removes the log only after an fsync).
 *
 * Binding: undo refuses (UNDO_MISMATCH) unless the image has the recorded size, the recorded
 * dev/inode (skippable with `allowMoved`, for an image moved together with its log), and its first
 * 64 KiB, with the records applied, hash to the recorded sha256.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { UlfsError, hex } from '../errors.js';
import { crc32cRaw } from '../binary/crc32c.js';

export const UNDO_SUFFIX = '.ulfs-undo';
export const UNDO_MAGIC = 'ULFSUNDO';
export const UNDO_VERSION = 1;

export const HDR_SIZE = 128;
export const HDR_MAGIC = 0x00;
export const HDR_VERSION = 0x08;
export const HDR_HEADER_SIZE = 0x0c;
export const HDR_IMAGE_SIZE = 0x10;
export const HDR_IMAGE_DEV = 0x18;
export const HDR_IMAGE_INO = 0x20;
export const HDR_HASHED_BYTES = 0x28;
export const HDR_SHA256 = 0x30;
export const HDR_CRC = 0x7c;

export const REC_MAGIC = 0x43455255; // "UREC" little-endian
export const REC_HEADER_SIZE = 24;
export const REC_LENGTH = 0x04;
export const REC_OFFSET = 0x08;
export const REC_DATA_CRC = 0x10;

export const CMT_MAGIC = 0x544d4355; // "UCMT"
export const CMT_SIZE = 16;
export const CMT_COUNT = 0x04;
export const CMT_BATCH = 0x08;
export const CMT_RUNNING_CRC = 0x0c;

export const MAX_RECORD_BYTES = 16 << 20;
/** The prefix of the image whose hash binds the log to it. */
export const HASH_BYTES = 64 << 10;

const CRC_SEED = 0xffffffff;

export function undoPath(imagePath: string): string {
  return imagePath + UNDO_SUFFIX;
}

export interface UndoHeader {
  imageSize: number;
  imageDev: bigint;
  imageIno: bigint;
  hashedBytes: number;
  sha256: Buffer;
  headerCrc: number;
}

export function encodeUndoHeader(h: Omit<UndoHeader, 'headerCrc'>): Buffer {
  const b = Buffer.alloc(HDR_SIZE);
  b.write(UNDO_MAGIC, HDR_MAGIC, 'latin1');
  b.writeUInt32LE(UNDO_VERSION, HDR_VERSION);
  b.writeUInt32LE(HDR_SIZE, HDR_HEADER_SIZE);
  b.writeBigUInt64LE(BigInt(h.imageSize), HDR_IMAGE_SIZE);
  b.writeBigUInt64LE(h.imageDev, HDR_IMAGE_DEV);
  b.writeBigUInt64LE(h.imageIno, HDR_IMAGE_INO);
  b.writeBigUInt64LE(BigInt(h.hashedBytes), HDR_HASHED_BYTES);
  h.sha256.copy(b, HDR_SHA256);
  b.writeUInt32LE(crc32cRaw(CRC_SEED, b, 0, HDR_CRC), HDR_CRC);
  return b;
}

export function decodeUndoHeader(b: Buffer, logName: string): UndoHeader {
  const bad = (why: string): UlfsError =>
    new UlfsError('UNDO_BAD_LOG', `${logName}: ${why}`, { log: logName });
  if (b.length < HDR_SIZE) throw bad(`too short for a header (${b.length} bytes)`);
  if (b.toString('latin1', HDR_MAGIC, HDR_MAGIC + 8) !== UNDO_MAGIC)
    throw bad('not an ulfs-offline undo log (bad magic)');
  const version = b.readUInt32LE(HDR_VERSION);
  if (version !== UNDO_VERSION) throw bad(`unknown version ${version}`);
  if (b.readUInt32LE(HDR_HEADER_SIZE) !== HDR_SIZE) throw bad('bad header size');
  const crc = crc32cRaw(CRC_SEED, b, 0, HDR_CRC);
  const stored = b.readUInt32LE(HDR_CRC);
  if (crc !== stored) throw bad(`header checksum ${hex(stored)} does not match ${hex(crc)}`);
  const imageSize = Number(b.readBigUInt64LE(HDR_IMAGE_SIZE));
  const hashedBytes = Number(b.readBigUInt64LE(HDR_HASHED_BYTES));
  if (hashedBytes > HASH_BYTES || hashedBytes > imageSize) throw bad(`bad hashed length ${hex(hashedBytes)}`);
  return {
    imageSize,
    imageDev: b.readBigUInt64LE(HDR_IMAGE_DEV),
    imageIno: b.readBigUInt64LE(HDR_IMAGE_INO),
    hashedBytes,
    sha256: Buffer.from(b.subarray(HDR_SHA256, HDR_SHA256 + 32)),
    headerCrc: stored,
  };
}

export interface UndoRecord {
  offset: number;
  length: number;
  /** Where the data sits in the log file. */
  dataPos: number;
}

export interface ParsedUndoLog {
  header: UndoHeader;
  /** Committed records, in log order. */
  records: UndoRecord[];
  batches: number;
  /** Bytes after the last valid commit trailer (a torn append), ignored. */
  tornBytes: number;
}

function preadFully(fd: number, buf: Buffer, pos: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Reads a log: header (UNDO_BAD_LOG if bad), then every batch up to the first invalid one. */
export function parseUndoLog(fd: number, logName: string): ParsedUndoLog {
  const size = fs.fstatSync(fd).size;
  const hb = Buffer.alloc(HDR_SIZE);
  const got = preadFully(fd, hb, 0);
  const header = decodeUndoHeader(hb.subarray(0, got), logName);
  const records: UndoRecord[] = [];
  let pos = HDR_SIZE;
  let running = header.headerCrc;
  let batches = 0;
  const rh = Buffer.alloc(REC_HEADER_SIZE);
  // Each pass validates one batch; every iteration of the inner loop advances `p`, so both loops end.
  outer: while (pos < size) {
    const batch: UndoRecord[] = [];
    let crc = running;
    let p = pos;
    for (;;) {
      if (p + 4 > size) break outer;
      if (preadFully(fd, rh.subarray(0, 4), p) < 4) break outer;
      const magic = rh.readUInt32LE(0);
      if (magic === CMT_MAGIC) {
        const cmt = Buffer.alloc(CMT_SIZE);
        if (preadFully(fd, cmt, p) < CMT_SIZE) break outer;
        crc = crc32cRaw(crc, cmt, 0, CMT_RUNNING_CRC);
        if (cmt.readUInt32LE(CMT_RUNNING_CRC) !== crc) break outer;
        if (cmt.readUInt32LE(CMT_COUNT) !== batch.length || cmt.readUInt32LE(CMT_BATCH) !== batches)
          break outer;
        records.push(...batch);
        running = crc;
        batches++;
        pos = p + CMT_SIZE;
        continue outer;
      }
      if (magic !== REC_MAGIC) break outer;
      if (preadFully(fd, rh, p) < REC_HEADER_SIZE) break outer;
      const length = rh.readUInt32LE(REC_LENGTH);
      const offset = Number(rh.readBigUInt64LE(REC_OFFSET));
      if (length > MAX_RECORD_BYTES || p + REC_HEADER_SIZE + length > size) break outer;
      if (offset + length > header.imageSize) break outer;
      const data = Buffer.allocUnsafe(length);
      if (preadFully(fd, data, p + REC_HEADER_SIZE) < length) break outer;
      if (crc32cRaw(CRC_SEED, data) !== rh.readUInt32LE(REC_DATA_CRC)) break outer;
      crc = crc32cRaw(crc, rh); // the header carries dataCrc: the data itself is not hashed twice
      batch.push({ offset, length, dataPos: p + REC_HEADER_SIZE });
      p += REC_HEADER_SIZE + length;
    }
  }
  return { header, records, batches, tornBytes: size - pos };
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* some filesystems refuse a directory fsync; the file fsync is what matters most */
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function ioError(what: string, e: unknown, data: Record<string, unknown> = {}): UlfsError {
  if (e instanceof UlfsError) return e;
  const err = e as NodeJS.ErrnoException;
  return new UlfsError('IO_ERROR', `${what}: ${err.message}`, { ...data, errno: err.code });
}

/** The identity recorded in a log: size, dev/inode, and the hash of the first 64 KiB (read now). */
export function imageIdentity(imagePath: string): Omit<UndoHeader, 'headerCrc'> {
  const st = fs.statSync(imagePath, { bigint: true });
  const imageSize = Number(st.size);
  const hashedBytes = Math.min(HASH_BYTES, imageSize);
  const buf = Buffer.alloc(hashedBytes);
  const fd = fs.openSync(imagePath, 'r');
  try {
    preadFully(fd, buf, 0);
  } finally {
    fs.closeSync(fd);
  }
  return {
    imageSize,
    imageDev: st.dev,
    imageIno: st.ino,
    hashedBytes,
    sha256: createHash('sha256').update(buf).digest(),
  };
}

/** For crash tests: the failAt-th append (1-based) writes only partialBytes, then throws IO_ERROR. */
export interface AppendFault {
  failAt: number;
  partialBytes?: number;
}

/** Appends batches to a new undo log. Created with O_EXCL: an existing log is UNDO_PRESENT. */
export class UndoLogWriter {
  readonly path: string;
  private fd: number | null;
  private end: number;
  private running: number;
  private batches = 0;
  private broken = false;
  private appends = 0;

  private constructor(
    path: string,
    fd: number,
    headerCrc: number,
    private readonly fault: AppendFault | undefined,
  ) {
    this.path = path;
    this.fd = fd;
    this.end = HDR_SIZE;
    this.running = headerCrc;
  }

  static create(imagePath: string, opts: { fault?: AppendFault } = {}): UndoLogWriter {
    const p = undoPath(imagePath);
    const identity = imageIdentity(imagePath);
    let fd: number;
    try {
      fd = fs.openSync(p, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw undoPresent(imagePath);
      throw ioError(`cannot create undo log ${p}`, e, { path: p });
    }
    try {
      const hdr = encodeUndoHeader(identity);
      fs.writeSync(fd, hdr, 0, hdr.length, 0);
      fs.fsyncSync(fd);
      fsyncDir(path.dirname(p));
      return new UndoLogWriter(p, fd, hdr.readUInt32LE(HDR_CRC), opts.fault);
    } catch (e) {
      // Nothing has been written to the image yet: a half-made log must not block the next run.
      fs.closeSync(fd);
      fs.rmSync(p, { force: true });
      throw ioError(`cannot write undo log ${p}`, e, { path: p });
    }
  }

  /** Appends one batch of original-byte records with its commit trailer, then fsyncs. */
  append(records: { offset: number; data: Buffer }[]): void {
    if (this.broken || this.fd === null)
      throw new UlfsError('INTERNAL', `undo log ${this.path} is not writable any more`);
    const parts: Buffer[] = [];
    let crc = this.running;
    for (const r of records) {
      const rh = Buffer.alloc(REC_HEADER_SIZE);
      rh.writeUInt32LE(REC_MAGIC, 0);
      rh.writeUInt32LE(r.data.length, REC_LENGTH);
      rh.writeBigUInt64LE(BigInt(r.offset), REC_OFFSET);
      rh.writeUInt32LE(crc32cRaw(CRC_SEED, r.data), REC_DATA_CRC);
      crc = crc32cRaw(crc, rh);
      parts.push(rh, r.data);
    }
    const cmt = Buffer.alloc(CMT_SIZE);
    cmt.writeUInt32LE(CMT_MAGIC, 0);
    cmt.writeUInt32LE(records.length, CMT_COUNT);
    cmt.writeUInt32LE(this.batches, CMT_BATCH);
    crc = crc32cRaw(crc, cmt, 0, CMT_RUNNING_CRC);
    cmt.writeUInt32LE(crc, CMT_RUNNING_CRC);
    parts.push(cmt);
    // Written as the parts they are (writev): concatenating would copy every original byte into
    // fresh memory, a page fault per 4 KiB.
    const total = parts.reduce((n, b) => n + b.length, 0);
    this.appends++;
    if (this.fault && this.appends === this.fault.failAt) {
      // Test hook: a crash in the middle of this append (the first partialBytes reach the file).
      this.broken = true;
      const n = Math.min(this.fault.partialBytes ?? 0, total);
      if (n > 0) writeAllv(this.fd, prefixOf(parts, n), this.end);
      throw new UlfsError('IO_ERROR', `${this.path}: injected fault in append #${this.appends}`, {
        injected: true,
      });
    }
    try {
      writeAllv(this.fd, parts, this.end);
      fs.fsyncSync(this.fd);
    } catch (e) {
      this.broken = true;
      throw ioError(`cannot append to undo log ${this.path}`, e, { path: this.path });
    }
    this.end += total;
    this.running = crc;
    this.batches++;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  /** The change is complete and durable: the log is no longer needed. */
  remove(): void {
    this.close();
    fs.unlinkSync(this.path);
    fsyncDir(path.dirname(this.path));
  }
}

/** The first n bytes of `parts`, as views. */
function prefixOf(parts: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of parts) {
    if (n <= 0) break;
    out.push(b.subarray(0, Math.min(n, b.length)));
    n -= b.length;
  }
  return out;
}

/** Writes every byte of `parts` at `pos` (writev may write less than asked; at most IOV_MAX parts a call). */
function writeAllv(fd: number, parts: Buffer[], pos: number): void {
  const IOV_MAX = 1024;
  let i = 0;
  let skip = 0; // bytes of parts[i] already written
  // Each call writes at least one byte or throws, so this ends.
  while (i < parts.length) {
    const batch = parts.slice(i, i + IOV_MAX);
    if (skip) batch[0] = batch[0]!.subarray(skip);
    let n = fs.writevSync(fd, batch, pos);
    if (n <= 0) throw new Error(`writev wrote nothing at ${pos}`);
    pos += n;
    while (i < parts.length && n >= parts[i]!.length - skip) {
      n -= parts[i]!.length - skip;
      skip = 0;
      i++;
    }
    skip += n;
  }
}

function undoPresent(imagePath: string): UlfsError {
  return new UlfsError(
    'UNDO_PRESENT',
    `${imagePath} has an undo log from an interrupted run (${undoPath(imagePath)}): run \`ulfs-offline undo ${imagePath}\` first`,
    { image: imagePath, log: undoPath(imagePath) },
  );
}

/** Throws UNDO_PRESENT when the image has an undo log: nothing may write to it before `undo`. */
export function assertNoUndoLog(imagePath: string): void {
  if (fs.existsSync(undoPath(imagePath))) throw undoPresent(imagePath);
}

export interface UndoResult {
  log: string;
  records: number;
  bytes: number;
  batches: number;
  tornBytes: number;
}

/**
 * Restores the image from its undo log, newest record first, fsyncs it, then removes the log.
 * UNDO_NOT_FOUND without a log, UNDO_BAD_LOG for an unreadable header, UNDO_MISMATCH when the log
 * belongs to another image. Safe to run again after a crash part-way.
 */
export function undo(imagePath: string, opts: { allowMoved?: boolean } = {}): UndoResult {
  const logPath = undoPath(imagePath);
  let logFd: number;
  try {
    logFd = fs.openSync(logPath, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UlfsError('UNDO_NOT_FOUND', `${imagePath} has no undo log (${logPath}): nothing to undo`, {
        image: imagePath,
      });
    }
    throw ioError(`cannot open undo log ${logPath}`, e);
  }
  try {
    const logSize = fs.fstatSync(logFd).size;
    if (logSize < HDR_SIZE) {
      // Creation was cut short before the header was durable; no write to the image can have
      // started (that needs a committed batch after the header), so there is nothing to restore.
      fs.closeSync(logFd);
      logFd = -1;
      fs.unlinkSync(logPath);
      fsyncDir(path.dirname(logPath));
      return { log: logPath, records: 0, bytes: 0, batches: 0, tornBytes: logSize };
    }
    const log = parseUndoLog(logFd, logPath);
    const h = log.header;
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(imagePath, { bigint: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UlfsError('IMAGE_NOT_FOUND', `${imagePath}: no such file`, { path: imagePath });
      }
      throw ioError(imagePath, e);
    }
    const mismatch = (why: string): UlfsError =>
      new UlfsError('UNDO_MISMATCH', `${logPath} does not belong to ${imagePath}: ${why}`, {
        image: imagePath,
        log: logPath,
      });
    if (Number(st.size) !== h.imageSize) {
      throw mismatch(`image size is ${hex(Number(st.size))}, the log was made for ${hex(h.imageSize)}`);
    }
    if (!opts.allowMoved && (st.dev !== h.imageDev || st.ino !== h.imageIno)) {
      throw mismatch(
        'it is another file (device/inode differ; pass --moved if the image was moved with its log)',
      );
    }
    const fd = fs.openSync(imagePath, 'r+');
    try {
      // Would restoring give back the first 64 KiB we hashed? Checked before writing anything.
      const head = Buffer.alloc(h.hashedBytes);
      preadFully(fd, head, 0);
      for (let i = log.records.length - 1; i >= 0; i--) {
        const r = log.records[i]!;
        if (r.offset >= h.hashedBytes) continue;
        const n = Math.min(r.length, h.hashedBytes - r.offset);
        preadFully(logFd, head.subarray(r.offset, r.offset + n), r.dataPos);
      }
      if (!createHash('sha256').update(head).digest().equals(h.sha256)) {
        throw mismatch('the first 64 KiB would not match what the log recorded');
      }
      let bytes = 0;
      for (let i = log.records.length - 1; i >= 0; i--) {
        const r = log.records[i]!;
        const data = Buffer.allocUnsafe(r.length);
        if (preadFully(logFd, data, r.dataPos) < r.length)
          throw new UlfsError('UNDO_BAD_LOG', `${logPath} ended early`);
        let done = 0;
        while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, r.offset + done);
        bytes += r.length;
      }
      fs.fsyncSync(fd);
      fs.closeSync(logFd);
      logFd = -1;
      fs.unlinkSync(logPath);
      fsyncDir(path.dirname(logPath));
      return {
        log: logPath,
        records: log.records.length,
        bytes,
        batches: log.batches,
        tornBytes: log.tornBytes,
      };
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw ioError(`undo of ${imagePath}`, e);
  } finally {
    if (logFd >= 0) fs.closeSync(logFd);
  }
}
