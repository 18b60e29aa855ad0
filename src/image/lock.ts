/**
 * The image lock: `IMAGE.ulfs-lock`, created whole (written aside, then hard-linked into place, which
 * fails if the lock exists), holding "pid hostname\n". Two writers on one
 * image is how images get destroyed, so every writing command takes it first and releases it in
 * `finally`.
 *
 * A lock whose pid no longer runs on this host is stale (a crashed or killed run) and is taken over.
 * A lock from another host, or one we cannot read yet (being written), counts as held.
 * Take-over is rename-based: the stale file is renamed aside before we create ours, so two processes
 * that both see the same stale lock cannot both win (only one rename of that file succeeds).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { UlfsError } from '../errors.js';

export const LOCK_SUFFIX = '.ulfs-lock';

export function lockPath(imagePath: string): string {
  return imagePath + LOCK_SUFFIX;
}

export interface ImageLock {
  readonly path: string;
  release(): void;
}

interface Owner {
  pid: number;
  host: string;
}

function parseOwner(text: string): Owner | undefined {
  const m = /^(\d+) (\S+)\n$/.exec(text);
  if (!m) return undefined;
  return { pid: Number(m[1]), host: m[2]! };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ownerText(): string {
  return `${process.pid} ${os.hostname() || 'localhost'}\n`;
}

/**
 * Creates the lock file with its whole content at once: the text goes to a private temporary file,
 * which is then hard-linked to the lock path (link fails with EEXIST when the lock exists). A reader
 * thus never sees a lock file without its owner line, as it could between an O_EXCL create and the
 * write that follows.
 */
function tryCreate(path: string, text: string): boolean {
  const tmp = `${path}.${process.pid}.new`;
  try {
    writeSynced(tmp, 'w', text);
    fs.linkSync(tmp, path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // A filesystem without hard links: create in place (a reader may then briefly see it empty,
    // which counts as held).
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return createInPlace(path, text);
    throw lockError(path, e);
  } finally {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* not created */
    }
  }
}

function createInPlace(path: string, text: string): boolean {
  try {
    writeSynced(path, 'wx', text);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw lockError(path, e);
  }
}

/** Opens `path` with `flags`, writes `text`, fsyncs and closes. */
function writeSynced(path: string, flags: string, text: string): void {
  const fd = fs.openSync(path, flags, 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function lockError(path: string, e: unknown): UlfsError {
  return new UlfsError('IO_ERROR', `cannot create lock ${path}: ${(e as Error).message}`, { path });
}

/** Takes the lock for `imagePath`, or throws IMAGE_LOCKED naming the holder. */
export function lockImage(imagePath: string): ImageLock {
  const path = lockPath(imagePath);
  const mine = ownerText();
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreate(path, mine)) {
      return {
        path,
        release: () => {
          // Remove it only if it is still ours.
          try {
            if (fs.readFileSync(path, 'utf8') === mine) fs.unlinkSync(path);
          } catch {
            /* already gone */
          }
        },
      };
    }
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch {
      continue; // released between our create and read: try again
    }
    const owner = parseOwner(text);
    const host = os.hostname() || 'localhost';
    if (!owner || owner.host !== host || isAlive(owner.pid)) {
      const who = owner ? `process ${owner.pid} on ${owner.host}` : 'another process';
      throw new UlfsError('IMAGE_LOCKED', `${imagePath} is in use by ${who} (lock file ${path})`, {
        path,
        pid: owner?.pid,
        host: owner?.host,
      });
    }
    // Stale: move it aside (atomic, only one taker wins), check we moved the stale one, then retry.
    const aside = `${path}.stale.${process.pid}`;
    try {
      fs.renameSync(path, aside);
    } catch {
      continue;
    }
    const moved = fs.readFileSync(aside, 'utf8');
    fs.unlinkSync(aside);
    if (moved !== text) {
      // We moved a fresh lock someone else just created: put it back if we can, and report it held.
      tryCreate(path, moved);
      throw new UlfsError('IMAGE_LOCKED', `${imagePath} is in use (lock file ${path})`, { path });
    }
  }
  throw new UlfsError('IMAGE_LOCKED', `${imagePath}: could not take the lock ${path}`, { path });
}

/** Runs fn with the image locked; the lock is released whatever happens. */
export async function withLock<T>(imagePath: string, fn: () => Promise<T> | T): Promise<T> {
  const lock = lockImage(imagePath);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
