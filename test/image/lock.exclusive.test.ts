/** The image lock: one writer at a time; a lock left by a dead process is taken over. */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockImage, lockPath, withLock } from '../../src/image/lock.js';
import { openImage } from '../../src/image/partitions.js';
import { makeBareExt } from '../fixtures/disk-images.js';
import { codeOf } from '../helpers/errors.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-lock-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A pid that certainly ran on this host and has exited. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

describe('image lock', () => {
  it('a held lock refuses a second taker (IMAGE_LOCKED); release frees it', () => {
    const img = path.join(dir, 'a.img');
    fs.writeFileSync(img, 'x');
    const l = lockImage(img);
    expect(fs.readFileSync(lockPath(img), 'utf8')).toBe(`${process.pid} ${os.hostname()}\n`);
    expect(codeOf(() => lockImage(img))).toBe('IMAGE_LOCKED');
    l.release();
    expect(fs.existsSync(lockPath(img))).toBe(false);
    lockImage(img).release();
  });

  it('a lock held by another live process refuses; once that process is dead, the stale lock is taken over', async () => {
    const img = path.join(dir, 'b.img');
    fs.writeFileSync(img, 'x');
    const child = spawn('sleep', ['30']);
    try {
      fs.writeFileSync(lockPath(img), `${child.pid} ${os.hostname()}\n`);
      expect(codeOf(() => lockImage(img))).toBe('IMAGE_LOCKED');
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const l = lockImage(img); // the holder is gone: stale
    expect(fs.readFileSync(lockPath(img), 'utf8')).toBe(`${process.pid} ${os.hostname()}\n`);
    l.release();

    fs.writeFileSync(lockPath(img), `${deadPid()} ${os.hostname()}\n`);
    lockImage(img).release();
    expect(fs.readdirSync(dir).filter((f) => f.includes('stale'))).toEqual([]);
  });

  it('a lock from another host, or unreadable, counts as held', () => {
    const img = path.join(dir, 'c.img');
    fs.writeFileSync(img, 'x');
    fs.writeFileSync(lockPath(img), `${deadPid()} some-other-host\n`);
    expect(codeOf(() => lockImage(img))).toBe('IMAGE_LOCKED');
    fs.writeFileSync(lockPath(img), '');
    expect(codeOf(() => lockImage(img))).toBe('IMAGE_LOCKED');
    fs.rmSync(lockPath(img));
  });

  it('withLock releases on failure; openImage rw takes the lock, r does not', async () => {
    const img = path.join(dir, 'd.img');
    makeBareExt(img, 2);
    await expect(withLock(img, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(fs.existsSync(lockPath(img))).toBe(false);
    const w = openImage(img, 'rw');
    try {
      expect(w.table.kind).toBe('none');
      expect(codeOf(() => openImage(img, 'rw'))).toBe('IMAGE_LOCKED');
      openImage(img, 'r').close();
    } finally {
      w.close();
    }
    expect(fs.existsSync(lockPath(img))).toBe(false);
    // An undo log makes openImage rw refuse (and leaves no lock behind).
    fs.writeFileSync(img + '.ulfs-undo', 'x');
    expect(codeOf(() => openImage(img, 'rw'))).toBe('UNDO_PRESENT');
    expect(fs.existsSync(lockPath(img))).toBe(false);
    fs.rmSync(img + '.ulfs-undo');
  });
});
