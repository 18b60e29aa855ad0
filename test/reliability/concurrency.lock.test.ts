/**
 * Two `prune` processes on one image at once: one wins, the other refuses with IMAGE_LOCKED (exit 5)
 * and changes nothing; the image ends e2fsck-clean with no undo log and no lock left.
 *
 * Deterministic form: start A, wait until its lock file exists, SIGSTOP it (so it certainly holds the
 * lock), run B to the end, then SIGCONT A. Racing form: start both in the same tick, a few times.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { undoPath } from '../../src/image/undo.js';
import { lockPath } from '../../src/image/lock.js';
import { SAMPLE_USED, tempDir } from '../helpers/images.js';
import { e2fsckClean } from '../fixtures/ext-images.js';
import { CLI_MAIN, SAMPLE_OFFSET, writeSample } from './harness.js';
import { runCliProcess, type RunResult } from './kill-sweep.js';

let dir: string;
beforeAll(() => {
  expect(fs.existsSync(CLI_MAIN), `${CLI_MAIN} missing: run \`npm run build\``).toBe(true);
  dir = tempDir('ulfs-conc-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function expectEndsValid(img: string): void {
  const c = e2fsckClean(`${img}?offset=${SAMPLE_OFFSET}`);
  expect(c.ok, c.output).toBe(true);
  expect(fs.existsSync(undoPath(img)), 'undo log left').toBe(false);
  expect(fs.existsSync(lockPath(img)), 'lock left').toBe(false);
}

describe('two prune processes on one image', () => {
  it('the second, started while the first holds the lock, refuses with IMAGE_LOCKED', async () => {
    const img = writeSample(path.join(dir, 'a.img'));
    const args = ['prune', '--used', SAMPLE_USED, '--json', img];
    const a = spawn(process.execPath, [CLI_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let aOut = '';
    let aErr = '';
    a.stdout.on('data', (d) => (aOut += d));
    a.stderr.on('data', (d) => (aErr += d));
    const aDone = new Promise<number | null>((r) => a.on('close', (code) => r(code)));
    // Wait for A's lock (it is taken before anything is read or written).
    const t0 = Date.now();
    while (!fs.existsSync(lockPath(img))) {
      expect(Date.now() - t0, 'A never took the lock').toBeLessThan(20_000);
      await new Promise((r) => setTimeout(r, 1));
    }
    a.kill('SIGSTOP');
    let b: RunResult;
    try {
      expect(fs.readFileSync(lockPath(img), 'utf8')).toMatch(new RegExp(`^${a.pid} `));
      b = await runCliProcess(args);
    } finally {
      a.kill('SIGCONT');
    }
    expect(b.code, b.stderr).toBe(5);
    expect(b.stderr).toMatch(new RegExp(`^ulfs-offline: error IMAGE_LOCKED: .*process ${a.pid}`));
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(await aDone, aErr).toBe(0);
    expect(JSON.parse(aOut).check.clean).toBe(true);
    expectEndsValid(img);
  });

  it('started in the same tick (1 race; the deterministic test above is the proof): never both writing, the image ends clean', async () => {
    for (let i = 0; i < 1; i++) {
      const img = writeSample(path.join(dir, `race${i}.img`));
      const args = ['prune', '--used', SAMPLE_USED, '--quiet', img];
      const rs = await Promise.all([runCliProcess(args), runCliProcess(args)]);
      const codes = rs.map((r) => r.code).sort();
      expect(codes[0], rs.map((r) => r.stderr).join('')).toBe(0);
      // The loser refused with the lock; or the runs did not overlap and the second found the work
      // done (it succeeds with nothing left to remove).
      for (const r of rs) {
        if (r.code !== 0) {
          expect(r.code).toBe(5);
          expect(r.stderr).toMatch(/^ulfs-offline: error IMAGE_LOCKED: /);
        }
      }
      expectEndsValid(img);
    }
  });
});
