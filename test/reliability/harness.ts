/**
 * Shared pieces of the reliability suite: a pristine copy of the sample image kept in memory, the
 * library prune pipeline with a device hook (open -> discover -> plan -> applyPlan(hook(dev))), the
 * verdict after a crash (undo restores byte-identical, or the committed prune is complete and
 * e2fsck-clean), and a content fingerprint of a filesystem tree (our reader, compared across runs).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { openImage } from '../../src/image/partitions.js';
import { SliceDevice, type BlockDevice } from '../../src/image/blockdev.js';
import { undo, undoPath } from '../../src/image/undo.js';
import { discover } from '../../src/prune/discover.js';
import { planPrune, type PruneOptions } from '../../src/prune/plan.js';
import { applyPlan } from '../../src/prune/apply.js';
import { ExtFs } from '../../src/ext/fs.js';
import { SAMPLE_USED, sha256 } from '../helpers/images.js';
import { e2fsckClean } from '../fixtures/ext-images.js';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const CLI_MAIN = path.join(ROOT, 'dist/cli/main.js');
export const SAMPLE_OFFSET = 1048576;

let pristine: Buffer | undefined;
/** The sample image's bytes (fixtures/sample.img.gz, unpacked once per process). */
export function sampleBytes(): Buffer {
  pristine ??= zlib.gunzipSync(fs.readFileSync(path.join(ROOT, 'fixtures/sample.img.gz')));
  return pristine;
}
export const sampleSha = (): string => sha256(sampleBytes());

/** Writes a fresh copy of the sample image to `file`. */
export function writeSample(file: string): string {
  fs.writeFileSync(file, sampleBytes());
  return file;
}

export function pruneOptions(extra: Partial<PruneOptions> = {}): PruneOptions {
  return { used: [{ name: SAMPLE_USED, text: fs.readFileSync(SAMPLE_USED) }], ...extra } as PruneOptions;
}

/**
 * prune() as the CLI runs it, but with `hook` wrapping the image device that applyPlan writes
 * through (a FaultDevice, a counter). Returns the hooked device and the outcome.
 */
export async function pruneWithHook<D extends BlockDevice>(
  image: string,
  hook: (dev: BlockDevice) => D,
  opts: PruneOptions = pruneOptions(),
): Promise<{ dev: D; error: unknown; result?: Awaited<ReturnType<typeof applyPlan>> }> {
  const img = openImage(image, 'rw');
  let dev: D | undefined;
  try {
    const d = discover(img.dev, path.basename(image), { countModules: false });
    const plan = await planPrune(d, opts);
    dev = hook(img.dev);
    const result = await applyPlan(dev, plan, opts);
    return { dev, result, error: undefined };
  } catch (error) {
    if (!dev) throw error;
    return { dev, error };
  } finally {
    try {
      img.close();
    } catch {
      /* applyPlan already closed the file after a failure */
    }
  }
}

/** Path -> type:size:sha256 of every entry below `/` of the root fs (our reader). */
export function fingerprint(image: string, offset = SAMPLE_OFFSET): Map<string, string> {
  const img = openImage(image, 'r');
  try {
    const fsx = ExtFs.open(new SliceDevice(img.dev, offset, img.dev.size - offset));
    const out = new Map<string, string>();
    for (const e of fsx.walk('/')) {
      let digest = '';
      if (e.stat.type === 'file') {
        const h = createHash('sha256');
        for (const c of fsx.fileChunks(e.ino)) h.update(c);
        digest = h.digest('hex');
      } else if (e.stat.type === 'symlink') digest = fsx.readlink(e.ino);
      out.set(e.path, `${e.stat.type}:${e.stat.size}:${digest}`);
    }
    return out;
  } finally {
    img.close();
  }
}

export type Verdict = 'restored' | 'complete' | 'untouched';

/**
 * The crash verdict. With an undo log: `undo` must give back the original bytes. Without one: the
 * image is either untouched, or the prune committed (the crash hit zeroing or later) and then the
 * root fs must be e2fsck-clean and hold exactly what a fault-free prune leaves (`expected`).
 */
export function judgeCrash(
  image: string,
  expected: Map<string, string>,
  what: string,
  original = sampleSha(),
): Verdict {
  if (fs.existsSync(undoPath(image))) {
    undo(image);
    expect(sha256(fs.readFileSync(image)), `${what}: undo did not restore the original`).toBe(original);
    expect(fs.existsSync(undoPath(image)), `${what}: undo left its log`).toBe(false);
    return 'restored';
  }
  if (sha256(fs.readFileSync(image)) === original) return 'untouched';
  const c = e2fsckClean(`${image}?offset=${SAMPLE_OFFSET}`);
  expect(c.ok, `${what}: committed but not e2fsck-clean:\n${c.output}`).toBe(true);
  expect(Object.fromEntries(fingerprint(image)), `${what}: committed but incomplete`).toEqual(
    Object.fromEntries(expected),
  );
  return 'complete';
}
