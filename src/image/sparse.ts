/**
 * copySparse: copies an image file and keeps it sparse (for `prune --output`). The source is read in
 * 4 MiB chunks; every 64 KiB run that is all zero is skipped by seeking (positional writes leave a
 * hole), and the destination is extended to the full size with ftruncate. The copy is fsynced (and
 * its directory) before we return, so "done" means durable.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UlfsError } from '../errors.js';

export const SPARSE_RUN = 64 << 10;
const CHUNK = 4 << 20;
const ZERO = Buffer.alloc(SPARSE_RUN);

export interface CopyResult {
  size: number;
  /** Bytes actually written (the rest are holes). */
  dataBytes: number;
}

export function copySparse(src: string, dst: string, opts: { overwrite?: boolean } = {}): CopyResult {
  let sfd: number;
  try {
    sfd = fs.openSync(src, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new UlfsError('IMAGE_NOT_FOUND', `${src}: no such file`);
    throw new UlfsError('IO_ERROR', `${src}: ${(e as Error).message}`);
  }
  let dfd: number | undefined;
  try {
    const size = fs.fstatSync(sfd).size;
    try {
      dfd = fs.openSync(dst, opts.overwrite ? 'w' : 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new UlfsError('USAGE', `${dst} already exists; refusing to overwrite it`, { path: dst });
      }
      throw new UlfsError('IO_ERROR', `${dst}: ${(e as Error).message}`);
    }
    const buf = Buffer.allocUnsafe(CHUNK);
    let dataBytes = 0;
    for (let pos = 0; pos < size;) {
      const want = Math.min(CHUNK, size - pos);
      let got = 0;
      while (got < want) {
        const n = fs.readSync(sfd, buf, got, want - got, pos + got);
        if (n === 0) throw new UlfsError('IMAGE_TRUNCATED', `${src} shrank while being copied`);
        got += n;
      }
      // Write each maximal run of non-zero 64 KiB pieces with one call.
      let runStart = -1;
      for (let off = 0; off <= want; off += SPARSE_RUN) {
        const n = Math.min(SPARSE_RUN, want - off);
        const zero = off === want || buf.subarray(off, off + n).equals(ZERO.subarray(0, n));
        if (!zero && runStart < 0) runStart = off;
        if (zero && runStart >= 0) {
          const end = Math.min(off, want);
          let done = 0;
          while (done < end - runStart) {
            done += fs.writeSync(dfd, buf, runStart + done, end - runStart - done, pos + runStart + done);
          }
          dataBytes += end - runStart;
          runStart = -1;
        }
      }
      pos += want;
    }
    fs.ftruncateSync(dfd, size);
    fs.fsyncSync(dfd);
    try {
      const dirFd = fs.openSync(path.dirname(path.resolve(dst)), 'r');
      fs.fsyncSync(dirFd);
      fs.closeSync(dirFd);
    } catch {
      /* directory fsync not supported here */
    }
    return { size, dataBytes };
  } finally {
    fs.closeSync(sfd);
    if (dfd !== undefined) fs.closeSync(dfd);
  }
}
