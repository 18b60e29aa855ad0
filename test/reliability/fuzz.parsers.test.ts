/**
 * Quick fuzz of every parser of untrusted input (targets in fuzz-targets.ts): seeded fast-check runs
 * of random mutations (bytes, bits, boundary u32s, zeroed runs, copies, truncation, insertion) of
 * seeds made by the native tools. Only UlfsError may escape; no case may take longer than the
 * per-case limit; memory stays bounded. Long runs: `npx tsx bench/fuzz-parsers.ts` (see README).
 */
import * as fs from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/images.js';
import { MAGIC_U32, TARGETS, hotOffset, runCase, type Mutation, type Seed } from './fuzz-targets.js';

const RUNS: Record<string, number> = {
  partitions: 1000,
  ext: 600,
  initramfs: 300,
  'gzip-splice': 150,
  'gzip-splice-archive': 100,
  'usage-list': 1500,
  moddep: 800,
  'kmod-bin': 1500,
  'modules-plan': 300,
};
const SCALE = Number(process.env.ULFS_FUZZ_SCALE ?? 1);

function mutations(seed: Seed): fc.Arbitrary<Mutation[]> {
  const at = fc.integer({ min: 0, max: 2 ** 30 - 1 }).map((n) => hotOffset(seed, n / 2 ** 30));
  const m: fc.Arbitrary<Mutation> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('byte' as const), at, value: fc.nat(255) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('bit' as const), at, bit: fc.nat(7) }) },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('u32' as const), at, value: fc.constantFrom(...MAGIC_U32) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('zero' as const),
        at,
        length: fc.integer({ min: 1, max: 64 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('copy' as const),
        at,
        from: at,
        length: fc.integer({ min: 1, max: 64 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('insert' as const),
        at,
        value: fc.nat(255),
        length: fc.integer({ min: 1, max: 32 }),
      }),
    },
  );
  return fc.array(m, { minLength: 1, maxLength: 8 });
}

let dir: string;
beforeAll(() => {
  dir = tempDir('ulfs-fuzz-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('fuzz: every parser of untrusted input', () => {
  TARGETS.forEach((t, index) => {
    it(`${t.name}: only UlfsError, bounded time and memory (${t.covers})`, async () => {
      const seeds = t.seeds(dir);
      expect(seeds.length).toBeGreaterThan(0);
      // Every seed parses cleanly unmutated: the mutations are what is under test.
      for (const s of seeds)
        expect((await runCase(t, s, [], true)).ulfsError, `${t.name} seed ${s.name}`).toBe(false);
      let execs = 0;
      let rejected = 0;
      const rss0 = process.memoryUsage().rss;
      let rssMax = rss0;
      await fc.assert(
        fc.asyncProperty(
          fc.nat(seeds.length - 1).chain((i) => fc.tuple(fc.constant(i), mutations(seeds[i]!), fc.boolean())),
          async ([i, muts, flag]) => {
            const o = await runCase(t, seeds[i]!, muts, flag);
            execs++;
            if (o.ulfsError) rejected++;
            if ((execs & 63) === 0) rssMax = Math.max(rssMax, process.memoryUsage().rss);
            if (!o.ok) throw new Error(`${t.name} on ${seeds[i]!.name}: ${o.finding}`);
          },
        ),
        { numRuns: Math.round((RUNS[t.name] ?? 200) * SCALE), seed: 0x5eed + index, endOnFailure: true },
      );
      expect(rejected, 'no mutation was ever rejected: the mutations miss the structures').toBeGreaterThan(0);
      expect(rssMax - rss0, 'memory grew by more than 512 MiB').toBeLessThan(512 << 20);
    });
  });
});
