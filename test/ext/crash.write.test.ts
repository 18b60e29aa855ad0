/**
 * Crash safety of a realistic batch (hundreds of files in nested directories, then the directories
 * they leave empty): through JournaledDevice over a FaultDevice that dies at the k-th write or sync,
 * for every k (also with a torn write), `undo` must restore the image byte for byte.
 * Also the CLI verbs rm and zero-free end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileDevice } from '../../src/image/blockdev.js';
import { FaultDevice } from '../../src/image/fault.js';
import { JournaledDevice } from '../../src/image/journaled.js';
import { undo, undoPath } from '../../src/image/undo.js';
import { removePaths } from '../../src/ext/write/index.js';
import { cli } from '../helpers/cli.js';
import { debugfs, e2fsck, mkfs, sha256File, tmpDir, type Img } from './writer-fixtures.js';

let dir: string;
let base: Img;
const victims: string[] = [];

beforeAll(() => {
  dir = tmpDir('crash');
  const src = path.join(dir, 'src');
  for (let d = 0; d < 12; d++) {
    const sub = path.join(src, 'lib/modules/6.1.0/kernel', `dir${d}`, 'sub');
    fs.mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 25; f++) {
      const p = path.join(sub, `mod${f}.ko`);
      fs.writeFileSync(p, Buffer.alloc(1000 + 997 * f, d * 25 + f));
      if (d < 8 || f % 2 === 0) victims.push(`/lib/modules/6.1.0/kernel/dir${d}/sub/mod${f}.ko`);
    }
  }
  fs.writeFileSync(path.join(src, 'lib/modules/6.1.0/modules.dep'), 'dep\n');
  base = mkfs(path.join(dir, 'base.img'), { type: 'ext4', bs: 4096, src, sizeMiB: 32 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function attempt(work: string, failAt: number, partialBytes = 0): { calls: number; failed: boolean } {
  const file = new FileDevice(work, 'rw');
  const fdev = new FaultDevice(file, { failAt, partialBytes });
  const jdev = new JournaledDevice(fdev, { imagePath: work });
  let failed = false;
  try {
    removePaths(jdev, victims, { pruneEmptyDirs: true });
    jdev.commit();
  } catch {
    failed = true;
  } finally {
    try {
      jdev.close();
    } catch {
      /* a dead device may refuse to close cleanly */
    }
    file.close();
  }
  return { calls: fdev.calls, failed };
}

describe('crash at every write of a batch, then undo', () => {
  it('restores byte-identical images for every k', () => {
    const original = sha256File(base.path);
    const dry = path.join(dir, 'dry.img');
    fs.copyFileSync(base.path, dry);
    const { calls, failed } = attempt(dry, 1e9);
    expect(failed).toBe(false);
    expect(fs.existsSync(undoPath(dry))).toBe(false);
    expect(e2fsck(dry).ok).toBe(true);
    expect(calls).toBeGreaterThan(5);
    const work = path.join(dir, 'work.img');
    // quick run: a spread of k (first, last and about 12 between); ULFS_CRASH_ALL=1 or the slow suite: every k
    const every = process.env.ULFS_CRASH_ALL === '1' || process.env.ULFS_SLOW === '1';
    const stride = every ? 1 : Math.max(1, Math.ceil(calls / 6));
    const ks = new Set<number>([1, 2, calls]);
    for (let k = 1; k <= calls; k += stride) ks.add(k);
    for (const k of [...ks].sort((a, b) => a - b)) {
      for (const partial of k % 2 === 0 ? [0, 1000] : [0]) {
        fs.copyFileSync(base.path, work);
        fs.rmSync(undoPath(work), { force: true });
        const r = attempt(work, k, partial);
        expect(r.failed, `k=${k}`).toBe(true);
        if (fs.existsSync(undoPath(work))) undo(work);
        expect(sha256File(work), `k=${k} partial=${partial}`).toBe(original);
      }
    }
  });
});

describe('CLI rm and zero-free', () => {
  it('rm --dry-run writes nothing; rm -r removes a tree and leaves no undo log; zero-free --json', async () => {
    const img = path.join(dir, 'cli.img');
    fs.copyFileSync(base.path, img);
    const before = sha256File(img);
    const dry = await cli('rm', img, '/lib/modules/6.1.0/kernel/dir0', '-r', '--dry-run', '--json');
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, removedFiles: 25, removedDirs: 2 });
    expect(sha256File(img)).toBe(before);
    const r = await cli('rm', img, '/lib/modules/6.1.0/kernel/dir0', '-r');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/removed 25 files and 2 directories/);
    expect(fs.existsSync(undoPath(img))).toBe(false);
    expect(e2fsck(img).ok).toBe(true);
    expect(debugfs(img, ['ls /lib/modules/6.1.0/kernel'])).not.toMatch(/dir0/);
    const missing = await cli('rm', img, '/nope');
    expect(missing.code).toBe(6);
    expect(missing.stderr).toMatch(/EXT_NOT_FOUND/);
    const z = await cli('zero-free', img, '--json');
    expect(z.code).toBe(0);
    const j = JSON.parse(z.stdout);
    expect(j.blocksZeroed).toBeGreaterThan(0); // the freed module data was not zero
    expect(j.bytesWritten).toBe(j.blocksZeroed * 4096);
    const again = JSON.parse((await cli('zero-free', img, '--json', '--dry-run')).stdout);
    expect(again.blocksZeroed).toBe(0);
    expect(e2fsck(img).ok).toBe(true);
  });
});
