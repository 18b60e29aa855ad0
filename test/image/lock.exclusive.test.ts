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
    // the lock is written aside and linked into place: nothing else is left next to it
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('a.img'))).toEqual(['a.img', 'a.img.ulfs-lock']);
    l.release();
    expect(fs.existsSync(lockPath(img))).toBe(false);
    lockImage(img).release();
  });

  it('the lock file is never seen without its owner line, even while another process takes it', async () => {
    const img = path.join(dir, 'race.img');
    fs.writeFileSync(img, 'x');
    // A child takes and releases the lock in a loop for 2 s; we read it as fast as we can meanwhile.
    const child = path.join(dir, 'locker.mjs');
    const lockModule = new URL('../../src/image/lock.ts', import.meta.url).href;
    fs.writeFileSync(
      child,
      `const { lockImage } = await import(${JSON.stringify(lockModule)});
       const end = Date.now() + 2000;
       while (Date.now() < end) { try { lockImage(${JSON.stringify(img)}).release(); } catch {} }`,
    );
    const proc = spawn(process.execPath, ['--import', 'tsx', child], { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    await new Promise((r) => setTimeout(r, 700)); // let it start (tsx)
    const seen = new Map<string, number>();
    const deadline = Date.now() + 1000;
    while (Date.now() < deadline) {
      try {
        const text = fs.readFileSync(lockPath(img), 'utf8');
        seen.set(text, (seen.get(text) ?? 0) + 1);
      } catch {
        /* not there right now */
      }
    }
    expect(await exited).toBe(0);
    expect(seen.size).toBeGreaterThan(0); // the race was really run
    for (const text of seen.keys()) expect(text).toMatch(/^\d+ \S+\n$/);
  }, 20_000);

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
