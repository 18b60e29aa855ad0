/**
 * `prune`: the library entry point the CLI wraps.
 *
 *   const report = await prune('hdd.img', { used: [{ name: 'used.txt', text }] });
 *
 * open (lock, no undo log pending) -> discover root and boot -> plan -> (dry run: stop) -> apply -> report.
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

export async function prune(imagePath: string, opts: PruneOptions): Promise<PruneReport> {
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
    const plan = await planPrune(d, opts);
    const summary = summarizePlan(plan);
    const planSeconds = Math.round(performance.now() - tPlan) / 1000;
    const base = {
      image: opts.output && !opts.dryRun ? opts.output : imagePath,
      kernel: plan.kernel,
      kernelReason: plan.kernelReason,
      used: summary.used,
      kept: plan.modules.kept,
      plan: summary,
      warnings: plan.warnings,
    };
    if (opts.dryRun) {
      return {
        ...base,
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
      const output = opts.output;
      copySparse(imagePath, output);
      try {
        copy = openImage(output, 'rw');
        r = await applyPlan(copy.dev, plan, opts);
      } catch (e) {
        copy?.close();
        copy = null;
        removeCopy(output);
        throw e;
      }
    } else {
      try {
        r = await applyPlan(img.dev, plan, opts);
      } catch (e) {
        // A refusal found while writing (the new initramfs does not fit) must leave the image as it
        // was: put back what the undo log holds, still under our lock. Other failures keep the log
        // for `ulfs-offline undo`, as the error says.
        if (isUlfsError(e) && e.code === 'PRUNE_WONT_FIT') {
          try {
            undo(imagePath);
          } catch (u) {
            if (!(isUlfsError(u) && u.code === 'UNDO_NOT_FOUND')) throw u; // nothing was written yet
          }
          throw new UlfsError(e.code, `${e.message} (the image was left unchanged)`, e.data);
        }
        throw e;
      }
    }
    return {
      ...base,
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
