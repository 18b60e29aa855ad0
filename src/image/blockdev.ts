/**
 * BlockDevice: random access to bytes of a disk image, a slice of one (a partition), or memory.
 *
 * Reads and writes are synchronous and positional: the ext engine reads thousands of small blocks,
 * where a synchronous pread is the cheapest call Node has, and parsers stay simple. Concurrency
 * (decompression, compression) comes from zlib/worker threads, not from async disk I/O.
 *
 * Every access is bounds-checked: a read past the end is IMAGE_TRUNCATED (the image is shorter than
 * its metadata claims) and a write outside a slice is IMAGE_OUT_OF_RANGE, so a hostile partition
 * table can never make us write outside the partition we opened.
 */
import * as fs from 'node:fs';
import { UlfsError, hex } from '../errors.js';

export interface BlockDevice {
  /** Size in bytes. */
  readonly size: number;
  readonly writable: boolean;
  /** For messages: the file name, plus the slice offset where there is one. */
  readonly name: string;
  /** Reads exactly `length` bytes at `pos` into a new Buffer. */
  read(pos: number, length: number): Buffer;
  /** Fills `buf` completely from `pos`. */
  readInto(buf: Uint8Array, pos: number): void;
  write(pos: number, data: Uint8Array): void;
  /** Makes every write so far durable (fsync). */
  sync(): void;
  close(): void;
  /**
   * Like readInto, for big scans of data that is probably not cached and maybe sparse (free blocks
   * before zeroing): may bypass the page cache. Optional; call it through readUncached().
   */
  readUncachedInto?(buf: Uint8Array, pos: number): void;
  /**
   * Like write, for bytes nothing depends on (free blocks being zeroed): a later sync() need not make
   * them durable, so a device may leave them in the page cache. Optional; call it through
   * writeVolatile().
   */
  writeVolatileAt?(pos: number, data: Uint8Array): void;
}

/** dev.writeVolatileAt where the device has it, else an ordinary write. */
export function writeVolatile(dev: BlockDevice, pos: number, data: Uint8Array): void {
  if (dev.writeVolatileAt) dev.writeVolatileAt(pos, data);
  else dev.write(pos, data);
}

/** dev.readUncachedInto where the device has it, else readInto. Give it a buffer from allocAligned. */
export function readUncached(dev: BlockDevice, buf: Uint8Array, pos: number): void {
  if (dev.readUncachedInto) dev.readUncachedInto(buf, pos);
  else dev.readInto(buf, pos);
}

/**
 * A page-aligned buffer, as O_DIRECT reads need (Node Buffers are only 8- or 16-byte aligned). A
 * WebAssembly memory is the one page-aligned allocation JavaScript can ask for.
 */
export function allocAligned(size: number): Buffer {
  const pages = Math.max(1, Math.ceil(size / 65536));
  const mem = new wasm.Memory({ initial: pages, maximum: pages });
  return Buffer.from(mem.buffer, 0, size);
}

// The lib settings declare no DOM/wasm globals; this is the one wasm API used.
const wasm = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };
  }
).WebAssembly;

// O_DIRECT wants offsets and lengths in multiples of the logical sector size (512, sometimes 4096);
// anything else, and any EINVAL, falls back to an ordinary read.
const DIRECT_ALIGN = 512;

/** Bounds and mode checks shared by every device: IMAGE_TRUNCATED / IMAGE_OUT_OF_RANGE / IMAGE_READ_ONLY. */
export function checkRange(dev: BlockDevice, pos: number, length: number, writing: boolean): void {
  if (
    !Number.isSafeInteger(pos) ||
    !Number.isSafeInteger(length) ||
    pos < 0 ||
    length < 0 ||
    pos + length > dev.size
  ) {
    throw new UlfsError(
      writing ? 'IMAGE_OUT_OF_RANGE' : 'IMAGE_TRUNCATED',
      `${writing ? 'write' : 'read'} of ${length} bytes at ${hex(pos)} is beyond the end of ${dev.name} (size ${hex(dev.size)})`,
      { pos, length, size: dev.size },
    );
  }
  if (writing && !dev.writable) {
    throw new UlfsError('IMAGE_READ_ONLY', `${dev.name} is open read-only`);
  }
}

export class FileDevice implements BlockDevice {
  readonly size: number;
  readonly writable: boolean;
  readonly name: string;
  private fd: number | null;
  /** A second, O_DIRECT descriptor for readUncachedInto: undefined = not tried yet, null = unavailable. */
  private directFd: number | null | undefined;
  /**
   * Whether a write since the last sync() needs an fsync. Zeroed free space (writeVolatileAt) does
   * not: an fsync of half a GiB of zeros costs a third of a second and protects nothing, as a crash
   * can only leave some free blocks unzeroed.
   */
  private dirty = false;

  constructor(path: string, mode: 'r' | 'rw' = 'r') {
    this.name = path;
    this.writable = mode === 'rw';
    try {
      this.fd = fs.openSync(path, mode === 'rw' ? 'r+' : 'r');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') throw new UlfsError('IMAGE_NOT_FOUND', `${path}: no such file`, { path });
      throw new UlfsError('IO_ERROR', `${path}: ${err.message}`, { path, errno: err.code });
    }
    const st = fs.fstatSync(this.fd);
    if (st.isDirectory()) {
      fs.closeSync(this.fd);
      throw new UlfsError('USAGE', `${path} is a directory, not an image file`, { path });
    }
    this.size = st.size;
  }

  /** Whether sync() has an fsync to do: a write() (not a writeVolatileAt) since the last sync. */
  get needsSync(): boolean {
    return this.dirty;
  }

  private get handle(): number {
    if (this.fd === null) throw new UlfsError('INTERNAL', `${this.name} is closed`);
    return this.fd;
  }

  read(pos: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length);
    this.readInto(buf, pos);
    return buf;
  }

  readInto(buf: Uint8Array, pos: number): void {
    checkRange(this, pos, buf.length, false);
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.handle, buf, done, buf.length - done, pos + done);
      if (n === 0) {
        throw new UlfsError('IMAGE_TRUNCATED', `${this.name} ended at ${hex(pos + done)} while reading`, {
          pos,
        });
      }
      done += n;
    }
  }

  /**
   * Reads with O_DIRECT where the platform and filesystem allow it (Linux; not macOS, not tmpfs).
   * Reading a hole of a sparse image through the page cache makes the kernel allocate and zero a
   * cache page for every 4 KiB of it: zeroing the free blocks of a fresh 2 GiB sparse copy took 5.6 s
   * that way and 1.0 s with O_DIRECT. Coherent with our buffered writes: a direct read first writes
   * back any dirty cached pages in its range.
   */
  readUncachedInto(buf: Uint8Array, pos: number): void {
    checkRange(this, pos, buf.length, false);
    const fd = this.directHandle();
    if (fd === null || pos % DIRECT_ALIGN !== 0 || buf.length % DIRECT_ALIGN !== 0) {
      this.readInto(buf, pos);
      return;
    }
    let done = 0;
    try {
      while (done < buf.length) {
        const n = fs.readSync(fd, buf, done, buf.length - done, pos + done);
        if (n === 0) break;
        done += n;
        if (n % DIRECT_ALIGN !== 0) break; // a short read at the end of the file: finish below
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw ioError(this.name, e);
      this.closeDirect(); // unaligned buffer or unsupported here: ordinary reads from now on
    }
    if (done < buf.length) this.readInto(buf.subarray(done), pos + done);
  }

  private directHandle(): number | null {
    if (this.directFd !== undefined) return this.directFd;
    const flag = (fs.constants as { O_DIRECT?: number }).O_DIRECT;
    this.directFd = null;
    if (flag) {
      try {
        this.directFd = fs.openSync(this.name, fs.constants.O_RDONLY | flag);
      } catch {
        // the filesystem refuses O_DIRECT (tmpfs): stay with ordinary reads
      }
    }
    return this.directFd;
  }

  private closeDirect(): void {
    if (typeof this.directFd === 'number') fs.closeSync(this.directFd);
    this.directFd = null;
  }

  write(pos: number, data: Uint8Array): void {
    this.dirty = true;
    this.writeVolatileAt(pos, data);
  }

  writeVolatileAt(pos: number, data: Uint8Array): void {
    checkRange(this, pos, data.length, true);
    let done = 0;
    while (done < data.length) done += fs.writeSync(this.handle, data, done, data.length - done, pos + done);
  }

  sync(): void {
    if (this.writable && this.dirty) fs.fsyncSync(this.handle);
    this.dirty = false;
  }

  close(): void {
    this.closeDirect();
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

function ioError(name: string, e: unknown): UlfsError {
  const err = e as NodeJS.ErrnoException;
  return new UlfsError('IO_ERROR', `${name}: ${err.message}`, { errno: err.code });
}

/** A window [offset, offset+length) of another device: a partition. */
export class SliceDevice implements BlockDevice {
  readonly name: string;
  constructor(
    readonly parent: BlockDevice,
    readonly offset: number,
    readonly size: number,
  ) {
    if (offset < 0 || size < 0 || offset + size > parent.size) {
      throw new UlfsError(
        'PART_BEYOND_END',
        `slice ${hex(offset)}+${hex(size)} runs past the end of ${parent.name} (size ${hex(parent.size)})`,
        { offset, size, parentSize: parent.size },
      );
    }
    this.name = `${parent.name}?offset=${offset}`;
  }
  get writable(): boolean {
    return this.parent.writable;
  }
  read(pos: number, length: number): Buffer {
    checkRange(this, pos, length, false);
    return this.parent.read(this.offset + pos, length);
  }
  readInto(buf: Uint8Array, pos: number): void {
    checkRange(this, pos, buf.length, false);
    this.parent.readInto(buf, this.offset + pos);
  }
  readUncachedInto(buf: Uint8Array, pos: number): void {
    checkRange(this, pos, buf.length, false);
    readUncached(this.parent, buf, this.offset + pos);
  }
  write(pos: number, data: Uint8Array): void {
    checkRange(this, pos, data.length, true);
    this.parent.write(this.offset + pos, data);
  }
  writeVolatileAt(pos: number, data: Uint8Array): void {
    checkRange(this, pos, data.length, true);
    writeVolatile(this.parent, this.offset + pos, data);
  }
  sync(): void {
    this.parent.sync();
  }
  close(): void {
    /* the parent owns the handle */
  }
}

/** An in-memory device, for tests and for small images built on the fly. */
export class MemoryDevice implements BlockDevice {
  readonly name: string;
  readonly writable: boolean;
  constructor(
    readonly bytes: Buffer,
    opts: { writable?: boolean; name?: string } = {},
  ) {
    this.writable = opts.writable ?? true;
    this.name = opts.name ?? 'memory';
  }
  get size(): number {
    return this.bytes.length;
  }
  read(pos: number, length: number): Buffer {
    checkRange(this, pos, length, false);
    return Buffer.from(this.bytes.subarray(pos, pos + length));
  }
  readInto(buf: Uint8Array, pos: number): void {
    checkRange(this, pos, buf.length, false);
    buf.set(this.bytes.subarray(pos, pos + buf.length));
  }
  write(pos: number, data: Uint8Array): void {
    checkRange(this, pos, data.length, true);
    this.bytes.set(data, pos);
  }
  sync(): void {}
  close(): void {}
}

/** Opens an image, runs `fn`, and always closes it (flushing first when writable and `fn` succeeded). */
export async function withImage<T>(
  path: string,
  mode: 'r' | 'rw',
  fn: (dev: FileDevice) => Promise<T> | T,
): Promise<T> {
  const dev = new FileDevice(path, mode);
  try {
    const result = await fn(dev);
    if (mode === 'rw') dev.sync();
    return result;
  } finally {
    dev.close();
  }
}
