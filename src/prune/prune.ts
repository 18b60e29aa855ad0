/**
 * `prune`: the library entry point the CLI wraps.
 *
 *   const report = await prune('hdd.img', { used: [{ name: 'used.txt', text }] });
 *
 * open (lock, no undo log pending) -> discover root and boot -> plan -> (dry run: stop) -> apply -> report.
 * An initramfs that cannot be decided while it streams is found while applying: the image is restored
 * and the whole run starts again, with the initramfs listed in the plan (see InitramfsPruner).
 */
import { openImage, type OpenedImage } from '../image/partitions.js';
import { copySparse, removeCopy } from '../image/sparse.js';
import { undo } from '../image/undo.js';
import { discover } from './discover.js';
import { planPrune, summarizePlan, type PruneOptions } from './plan.js';
import { applyPlan, type ApplyResult } from './apply.js';
import { UlfsError, isUlfsError } from '../errors.js';

export type { PruneOptions } from './plan.js';

export interface PruneReport {
  image: string;
  dryRun: boolean;
  kernel: string;
  kernelReason: string;
  used: { listed: number; resolved: number; builtin: number; unknown: string[] };
  kept: { module: string; path: string; reasons: string[] }[];
  plan: ReturnType<typeof summarizePlan>;
  rootfs: { removedFiles: number; removedDirs: number; bytesFreed: number; indexFilesWritten: number } | null;
  initramfs: ApplyResult['initramfs'];
  zero: ApplyResult['zero'];
  check: ApplyResult['check'] | null;
  warnings: string[];
  durations: Record<string, number>;
}

function basename(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}

/** Failures while writing that mean "this input cannot be pruned (this way)": the image is restored. */
function restorable(e: unknown): e is UlfsError {
  if (!isUlfsError(e)) return false;
  if (e.code === 'PRUNE_WONT_FIT') return true;
  return e.data.initramfs !== undefined && e.kind !== 'io' && e.kind !== 'internal';
}

/** The initramfs must be listed before it can be rewritten (see InitramfsPruner). */
function relist(e: unknown): boolean {
  return isUlfsError(e) && (e.code === 'PRUNE_INITRAMFS_ORDER' || e.code === 'CPIO_HOLD_LIMIT');
}

export async function prune(imagePath: string, opts: PruneOptions): Promise<PruneReport> {
  try {
    return await pruneOnce(imagePath, opts, null);
  } catch (e) {
    if (!relist(e)) throw e;
    // An archive whose index files come before some of its modules cannot be decided while it
    // streams. The image is as it was (restored, or the copy removed): list the initramfs first.
    return await pruneOnce(imagePath, opts, e as UlfsError);
  }
}

async function pruneOnce(
  imagePath: string,
  opts: PruneOptions,
  relisted: UlfsError | null,
): Promise<PruneReport> {
  const t0 = performance.now();
  if (opts.output && opts.output === imagePath) {
    throw new UlfsError('USAGE', '--output must name a new file, not the image itself');
  }
  // With --output the input is only read: the plan is made on it, and only a plan that holds is
  // applied to a fresh sparse copy (removed again if applying fails).
  const img = openImage(imagePath, opts.dryRun || opts.output ? 'r' : 'rw');
  let copy: OpenedImage | null = null;
  try {
    const tPlan = performance.now();
    const d = discover(img.dev, basename(imagePath), {
      root: opts.root,
      boot: opts.boot,
      countModules: false,
    });
    const plan = await planPrune(d, opts, { listInitramfs: relisted !== null });
    if (relisted) {
      plan.warnings.push(
        `${String(relisted.data.initramfs)}: its module index files could not be decided while it ` +
          `streamed (${String(relisted.data.reason ?? relisted.message)}), so it was read twice`,
      );
    }
    const planSeconds = Math.round(performance.now() - tPlan) / 1000;
    const base = (summary: ReturnType<typeof summarizePlan>) => ({
      image: opts.output && !opts.dryRun ? opts.output : imagePath,
      kernel: plan.kernel,
      kernelReason: plan.kernelReason,
      used: summary.used,
      kept: plan.modules.kept,
      plan: summary,
      warnings: plan.warnings,
    });
    if (opts.dryRun) {
      return {
        ...base(summarizePlan(plan)),
        dryRun: true,
        rootfs: null,
        initramfs: [],
        zero: null,
        check: null,
        durations: { plan: planSeconds, total: Math.round(performance.now() - t0) / 1000 },
      };
    }
    let r: ApplyResult;
    if (opts.output) {
      copySparse(imagePath, opts.output);
      try {
        copy = openImage(opts.output, 'rw');
        r = await applyPlan(copy.dev, plan, opts);
      } catch (e) {
        copy?.close();
        copy = null;
        removeCopy(opts.output);
        throw e;
      }
    } else {
      try {
        r = await applyPlan(img.dev, plan, opts);
      } catch (e) {
        // A refusal found while writing (the new initramfs does not fit, or is malformed) must leave
        // the image as it was: put back what the undo log holds, still under our lock. Other failures
        // (I/O, bugs) keep the log for `ulfs-offline undo`, as the error says.
        if (!restorable(e)) throw e;
        try {
          undo(imagePath);
        } catch (u) {
          if (!(isUlfsError(u) && u.code === 'UNDO_NOT_FOUND')) throw u; // nothing was written yet
        }
        if (relist(e)) throw e;
        throw new UlfsError(e.code, `${e.message} (the image was left unchanged)`, e.data);
      }
    }
    const summary = summarizePlan(plan); // the initramfs counts are known now
    return {
      ...base(summary),
      dryRun: false,
      rootfs: r.rootfs,
      initramfs: r.initramfs,
      zero: r.zero,
      check: r.check,
      durations: { plan: planSeconds, ...r.durations, total: Math.round(performance.now() - t0) / 1000 },
    };
  } finally {
    copy?.close();
    img.close();
  }
}
