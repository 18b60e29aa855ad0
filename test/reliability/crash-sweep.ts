/**
 * The fault-injection crash sweep: prune the sample image with a FaultDevice that "crashes" at the
 * k-th counted call (write or sync) of applyPlan, for every k of a fault-free run (or a subset in the
 * quick form), whole writes and torn ones (half the failing write reaches the disk), then judge.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FaultDevice } from '../../src/image/fault.js';
import type { BlockDevice } from '../../src/image/blockdev.js';
import type { PruneOptions } from '../../src/prune/plan.js';
import { isUlfsError } from '../../src/errors.js';
import { sha256, tempDir } from '../helpers/images.js';
import { e2fsckClean } from '../fixtures/ext-images.js';
import {
  SAMPLE_OFFSET,
  fingerprint,
  judgeCrash,
  pruneOptions,
  pruneWithHook,
  writeSample,
  type Verdict,
} from './harness.js';

export function crashSweep(opts: {
  pick: (k: number, total: number) => boolean;
  torn: boolean;
  /** Writes the image to prune (default: the sample); called once, then copied for every point. */
  make?: (file: string) => void;
  /** Prune options besides the sample's usage list. */
  prune?: Partial<PruneOptions>;
  /** Checks on the fault-free result. */
  afterReference?: (image: string) => void;
}): void {
  let dir: string;
  let total = 0;
  let expected: Map<string, string>;
  let template: string;
  let original: string;
  const fresh = (file: string): string => {
    fs.copyFileSync(template, file);
    return file;
  };
  beforeAll(async () => {
    dir = tempDir('ulfs-crash-');
    template = path.join(dir, 'template.img');
    if (opts.make) opts.make(template);
    else writeSample(template);
    original = sha256(fs.readFileSync(template));
    const img = fresh(path.join(dir, 'ref.img'));
    const r = await pruneWithHook(
      img,
      (d: BlockDevice) => new FaultDevice(d, { failAt: Number.MAX_SAFE_INTEGER }),
      pruneOptions(opts.prune),
    );
    expect(r.error).toBeUndefined();
    expect(r.result!.check.clean, r.result!.check.findings.join('\n')).toBe(true);
    expect(e2fsckClean(`${img}?offset=${SAMPLE_OFFSET}`).ok).toBe(true);
    total = r.dev.calls;
    expected = fingerprint(img);
    opts.afterReference?.(img);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const modes: { name: string; partial: (n: number) => number }[] = [{ name: 'whole', partial: () => 0 }];
  if (opts.torn) modes.push({ name: 'torn', partial: () => 2048 + 512 + 17 });

  for (const mode of modes) {
    it(`a crash at a sweep of write/sync points (${mode.name}) is undone byte-identical or leaves a complete clean prune`, async () => {
      expect(total).toBeGreaterThan(20);
      const tally: Record<Verdict, number> = { restored: 0, complete: 0, untouched: 0 };
      let tested = 0;
      for (let k = 1; k <= total; k++) {
        if (!opts.pick(k, total)) continue;
        const img = fresh(path.join(dir, `k${k}.img`));
        const r = await pruneWithHook(
          img,
          (d: BlockDevice) => new FaultDevice(d, { failAt: k, partialBytes: mode.partial(k) }),
          pruneOptions(opts.prune),
        );
        const what = `fault at call ${k}/${total} (${mode.name})`;
        expect(r.dev.crashed, `${what}: the fault did not fire`).toBe(true);
        // The injected fault is the only thing that may surface, as a typed error.
        expect(isUlfsError(r.error) && (r.error as { code: string }).code, what).toBe('IO_ERROR');
        tally[judgeCrash(img, expected, what, original)]++;
        tested++;
        fs.rmSync(img, { force: true });
      }
      // Every point before the commit must have left a log; points after it a complete prune.
      expect(tally.restored).toBeGreaterThan(0);
      expect(tally.restored + tally.complete + tally.untouched).toBe(tested);
      console.log(`crash sweep (${mode.name}): ${tested} of ${total} points, ${JSON.stringify(tally)}`);
    });
  }
}
