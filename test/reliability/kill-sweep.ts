/**
 * Real crashes: `node dist/cli/main.js prune ...` killed with SIGKILL at seeded random moments of its
 * run (from process start to a little past its usual end). After each: `ulfs-offline undo` (the CLI,
 * in-process, which must also take over the dead run's stale lock) restores the image byte-identical,
 * or there is no log and the image is untouched, or the prune committed and is complete and clean.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { undoPath } from '../../src/image/undo.js';
import { cli } from '../helpers/cli.js';
import { SAMPLE_USED, fileSha, tempDir } from '../helpers/images.js';
import { CLI_MAIN, fingerprint, judgeCrash, sampleSha, writeSample, type Verdict } from './harness.js';

/** mulberry32: a small seeded PRNG, so a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the built CLI; kills it with SIGKILL after `killAfterMs` if it is still running. */
export function runCliProcess(args: string[], killAfterMs?: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [CLI_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

export function killSweep(runs: number, seed: number): void {
  let dir: string;
  let expected: Map<string, string>;
  let runMs = 0;
  let logSeenMs = 0;
  let logGoneMs = 0;
  beforeAll(async () => {
    expect(fs.existsSync(CLI_MAIN), `${CLI_MAIN} missing: run \`npm run build\``).toBe(true);
    dir = tempDir('ulfs-kill-');
    const img = path.join(dir, 'ref.img');
    // Calibration (3 runs, the fastest counts): how long a run takes, and when its undo log exists
    // (from the first image write to the commit). Half the kills land in that window, half anywhere
    // from a little before it to the end of the run (zeroing, check, report).
    runMs = Infinity;
    for (let i = 0; i < 3; i++) {
      const file = writeSample(path.join(dir, `cal${i}.img`));
      const t0 = performance.now();
      let seen = 0;
      let gone = 0;
      const poll = setInterval(() => {
        const now = performance.now() - t0;
        if (fs.existsSync(undoPath(file))) seen ||= now;
        else if (seen && !gone) gone = now;
      }, 1);
      const r = await runCliProcess(['prune', '--used', SAMPLE_USED, '--quiet', file]);
      clearInterval(poll);
      expect(r.code, r.stderr).toBe(0);
      if (r.ms < runMs) {
        runMs = r.ms;
        logSeenMs = seen || runMs / 2;
        logGoneMs = gone || logSeenMs + 50;
      }
      if (i === 0) fs.copyFileSync(file, img);
    }
    expected = fingerprint(img);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('kill -9 of the prune CLI at random moments', () => {
    it(`${runs} runs (seed ${seed}): undo restores byte-identical, or the prune is complete and clean`, async () => {
      const rand = prng(seed);
      const tally: Record<Verdict | 'finished', number> = {
        restored: 0,
        complete: 0,
        untouched: 0,
        finished: 0,
      };
      for (let i = 0; i < runs; i++) {
        const img = writeSample(path.join(dir, `run${i}.img`));
        const inWindow = rand() < 0.5;
        const from = Math.max(0, logSeenMs - (inWindow ? 30 : 150));
        const to = inWindow ? logGoneMs + 30 : runMs;
        const at = Math.round(from + rand() * (to - from));
        const what = `run ${i} (seed ${seed}), SIGKILL after ${at} ms of ~${Math.round(runMs)} ms`;
        const r = await runCliProcess(['prune', '--used', SAMPLE_USED, '--quiet', img], at);
        if (r.signal !== 'SIGKILL') {
          expect(r.code, `${what}: ${r.stderr}`).toBe(0);
          tally.finished++;
        }
        if (fs.existsSync(undoPath(img))) {
          const u = await cli('undo', img); // takes over the dead run's lock
          expect(u.code, `${what}: undo: ${u.stderr}`).toBe(0);
          expect(fileSha(img), `${what}: undo did not restore the original`).toBe(sampleSha());
          expect(fs.existsSync(img + '.ulfs-lock'), `${what}: lock left behind by undo`).toBe(false);
          tally.restored++;
        } else {
          tally[judgeCrash(img, expected, what)]++;
        }
        fs.rmSync(img, { force: true });
        fs.rmSync(img + '.ulfs-lock', { force: true });
      }
      expect(tally.restored + tally.complete + tally.untouched).toBe(runs);
      console.log(`kill -9 sweep: ${runs} runs, ${JSON.stringify(tally)}`);
      // The undo-log window is a few tens of ms of a ~1 s run: kills must reach it at least sometimes.
      if (runs >= 50) expect(tally.restored, 'no kill landed while the undo log existed').toBeGreaterThan(0);
    });
  });
}
