/**
 * Every command on every hostile image (test/fixtures/hostile/build.ts), through the in-process CLI:
 * a typed error (one line `ulfs-offline: error CODE: ...`, exit != 0) or a correct result; never an
 * internal error (exit 70), a hang (per-command time limit), a change to the image when a command
 * refuses or only reads (sha256 before/after), or a write outside the partition it works on.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { undoPath } from '../../src/image/undo.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { SAMPLE_USED, sha256, tempDir } from '../helpers/images.js';
import { CASES, buildHostile, debugfsCat, freeBlocks, type HostileCase } from '../fixtures/hostile/build.js';

/** Per command: far above a normal run on the 32 MiB sample (< 2 s). */
const LIMIT_MS = 20_000;

const COMMANDS: { verb: string; writes: boolean; args: (c: HostileCase) => string[] }[] = [
  { verb: 'inspect', writes: false, args: (c) => ['inspect', c.image] },
  { verb: 'ls', writes: false, args: (c) => ['ls', '-R', c.image, '/'] },
  { verb: 'cat', writes: false, args: (c) => ['cat', c.image, c.catPath] },
  { verb: 'check', writes: false, args: (c) => ['check', c.image] },
  { verb: 'rm', writes: true, args: (c) => ['rm', c.image, c.rmPath] },
  { verb: 'zero-free', writes: true, args: (c) => ['zero-free', c.image] },
  { verb: 'prune', writes: true, args: (c) => ['prune', '--used', SAMPLE_USED, '--quiet', c.image] },
];

let dir: string;
beforeAll(() => {
  dir = tempDir('ulfs-hostile-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** sha256 of everything outside the ranges a writer may change. */
function outsideSha(b: Buffer, ranges: [number, number][]): string {
  const parts: Buffer[] = [];
  let pos = 0;
  for (const [s, e] of [...ranges].sort((x, y) => x[0] - y[0])) {
    parts.push(b.subarray(pos, Math.max(pos, s)));
    pos = Math.max(pos, e);
  }
  parts.push(b.subarray(Math.min(pos, b.length)));
  return sha256(Buffer.concat(parts));
}

export const outcomes: Record<string, Record<string, string>> = {};
/** Successful writes that destroyed data they had to keep. */
const damaged: string[] = [];
/** Successful writes that marked a block of a kept file free (latent damage). */
const unallocated: string[] = [];

describe('hostile images: every command gives a typed error or a correct result', () => {
  for (const name of CASES) {
    it(name, async () => {
      const proto = buildHostile(name, dir);
      const pristine = fs.readFileSync(proto.image);
      const row: Record<string, string> = {};
      for (const cmd of COMMANDS) {
        fs.writeFileSync(proto.image, pristine); // every command starts from the hostile image
        fs.rmSync(undoPath(proto.image), { force: true });
        const before = sha256(pristine);
        const t0 = performance.now();
        const r: CliResult = await cli(...cmd.args(proto));
        const ms = performance.now() - t0;
        const what = `${name}: ${cmd.args(proto).join(' ')} -> ${r.code}: ${r.stderr.trim()}`;
        expect(ms, `${what}: took ${Math.round(ms)} ms`).toBeLessThan(LIMIT_MS);
        expect(r.code, `${what}: internal error`).not.toBe(70);
        const after = sha256(fs.readFileSync(proto.image));
        const failed = r.code !== 0 && !(cmd.verb === 'check' && r.code === 1);
        if (failed) {
          expect(r.stderr, what).toMatch(/^ulfs-offline: error [A-Z0-9_]+: \S/);
          expect(r.stderr.trim().split('\n'), what).toHaveLength(1);
          if (cmd.writes) {
            // Refused before writing, or failed part-way and left an undo log that restores it.
            if (fs.existsSync(undoPath(proto.image))) {
              const u = await cli('undo', proto.image);
              expect(u.code, `${what}: undo: ${u.stderr}`).toBe(0);
            }
            expect(sha256(fs.readFileSync(proto.image)), `${what}: refused but changed the image`).toBe(
              before,
            );
          }
        }
        if (!cmd.writes) expect(after, `${what}: a read-only command changed the image`).toBe(before);
        if (cmd.writes && !failed) {
          expect(
            outsideSha(fs.readFileSync(proto.image), proto.writable),
            `${what}: wrote outside its partition`,
          ).toBe(outsideSha(pristine, proto.writable));
          if (proto.keepIntact) {
            // Data the command must not destroy (a kept file sharing a block with a removed one).
            // Recorded here, judged below (a known engine bug makes it fail today).
            for (const [p, sha] of Object.entries(proto.keepIntact))
              if (sha256(debugfsCat(proto.image, p)) !== sha) damaged.push(`${what}: ${p} was damaged`);
            const freed = freeBlocks(proto.image, proto.keepAllocated ?? []);
            if (freed.length) unallocated.push(`${what}: freed block ${freed.join(', ')} of a kept file`);
          }
          expect(fs.existsSync(undoPath(proto.image)), `${what}: success left an undo log`).toBe(false);
        }
        row[cmd.verb] = failed
          ? (/error ([A-Z0-9_]+)/.exec(r.stderr)?.[1] ?? `exit ${r.code}`)
          : r.code === 1
            ? 'inconsistent'
            : 'ok';
      }
      outcomes[name] = row;
      console.log(`hostile ${name}: ${JSON.stringify(row)}`);
    });
  }

  // Was a bug: prune freed a block a kept file still used (then zeroed it). prune now runs the
  // consistency check before writing and refuses an inconsistent filesystem (EXT_INCONSISTENT).
  it('no successful command damages data it keeps (two inodes claiming one block)', () => {
    expect(damaged).toEqual([]);
  });

  // Was a bug: `rm` freed a block a kept file still used; rm now runs the same consistency gate.
  it('no successful command leaves a block of a kept file marked free', () => {
    expect(unallocated).toEqual([]);
  });
});
