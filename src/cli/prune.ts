/** `ulfs-offline prune [--used FILE]... [--used-in-image PATH] IMAGE`: the main job. */
import * as fs from 'node:fs';
import { InvalidArgumentError, Option } from 'commander';
import { parsePartNumber, printJson, type CliIo } from './io.js';
import { prune, type PruneReport } from '../prune/prune.js';
import type { Compression } from '../prune/plan.js';
import { EXIT, UlfsError } from '../errors.js';
import { setExitStatus, type Register } from './program.js';
import { humanBytes } from './format.js';

/** Usage lists are small text files; this is far above any real one and stops a wrong file early. */
const LIST_MAX = 16 << 20;

function readHostFile(path: string, what: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    throw new UlfsError('USAGE', `${what} ${path}: no such file`, { path });
  }
  if (!st.isFile()) throw new UlfsError('USAGE', `${what} ${path} is not a regular file`, { path });
  if (st.size > LIST_MAX) {
    throw new UlfsError(
      'LIST_TOO_LARGE',
      `${what} ${path} is ${st.size} bytes; a usage list is at most ${LIST_MAX}`,
      { path },
    );
  }
  return fs.readFileSync(path);
}

function readKeepFrom(path: string): string[] {
  return readHostFile(path, '--keep-from')
    .toString('utf8')
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

export function formatReport(r: PruneReport): string {
  const out: string[] = [];
  const u = r.used;
  out.push(`kernel ${r.kernel} (${r.kernelReason})`);
  out.push(
    `used modules: ${u.listed} listed, ${u.resolved} resolved, ${u.builtin} builtin, ${u.unknown.length} unknown${u.unknown.length ? ` (${u.unknown.join(', ')})` : ''}`,
  );
  out.push(`kept ${r.kept.length} modules:`);
  for (const k of r.kept) out.push(`  ${k.module.padEnd(24)} ${k.reasons.join('; ')}`);
  const p = r.plan.rootfs;
  if (r.dryRun) {
    out.push(
      `dry run: would remove ${p.removeFiles} module files (${humanBytes(p.removeBytes)}) and rewrite ${p.indexFiles.length} index files`,
    );
    for (const i of r.plan.initramfs) {
      out.push(`  initramfs ${i.path} (${i.compression}): ${i.modulesBefore} -> ${i.modulesAfter} modules`);
    }
  } else if (r.rootfs) {
    out.push(
      `rootfs: removed ${r.rootfs.removedFiles} files and ${r.rootfs.removedDirs} directories, freed ${humanBytes(r.rootfs.bytesFreed)}, rewrote ${r.rootfs.indexFilesWritten} index files`,
    );
    for (const i of r.initramfs) {
      out.push(
        `initramfs ${i.path} (${i.compression}): ${humanBytes(i.sizeBefore)} -> ${humanBytes(i.sizeAfter)}, ${i.modulesBefore} -> ${i.modulesAfter} modules`,
      );
    }
    if (r.zero) {
      out.push(
        `zeroed ${r.zero.blocksZeroed} free blocks (${humanBytes(r.zero.bytesWritten)} written; ${r.zero.blocksAlreadyZero} of ${r.zero.blocksScanned} were already zero)` +
          (r.zero.journalBlocksZeroed ? `, ${r.zero.journalBlocksZeroed} of them in the journal's log` : ''),
      );
    }
    if (r.check) out.push(`check: ${r.check.clean ? 'clean' : 'NOT CLEAN'}`);
    for (const f of r.check?.findings ?? []) out.push(`  ${f}`);
  }
  for (const w of r.warnings) out.push(`warning: ${w}`);
  out.push(
    `time: ${Object.entries(r.durations)
      .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
      .join(', ')}`,
  );
  return out.join('\n') + '\n';
}

export function reportJson(r: PruneReport) {
  return {
    image: r.image,
    dryRun: r.dryRun,
    kernel: r.kernel,
    used: r.used,
    kept: r.kept,
    rootfs: r.rootfs ?? { removedFiles: 0, removedDirs: 0, bytesFreed: 0, planned: r.plan.rootfs },
    initramfs: r.dryRun ? r.plan.initramfs : r.initramfs,
    zero: r.zero,
    check: r.check,
    warnings: r.warnings,
    durations: r.durations,
  };
}

const COMPRESSIONS: Compression[] = ['keep', 'gzip', 'zstd', 'xz', 'lz4', 'none'];

export async function runPrune(image: string, o: Record<string, unknown>, io: CliIo): Promise<PruneReport> {
  const used = ((o.used as string[] | undefined) ?? []).map((p) => ({
    name: p,
    text: readHostFile(p, '--used'),
  }));
  const keep = [
    ...((o.keep as string[] | undefined) ?? []),
    ...(o.keepFrom ? readKeepFrom(o.keepFrom as string) : []),
  ];
  const progress = io.isTTY && !o.quiet && !o.json;
  let lastLine = '';
  const report = await prune(image, {
    used,
    usedInImage: o.usedInImage as string | undefined,
    kernel: o.kernel as string | undefined,
    root: o.root as number | undefined,
    boot: o.boot as number | undefined,
    keep,
    force: Boolean(o.force),
    dryRun: Boolean(o.dryRun),
    zero: o.zero !== false,
    initramfs: o.initramfs !== false,
    initramfsCompression: o.initramfsCompression as Compression,
    initramfsLevel: o.initramfsLevel as number | undefined,
    output: o.output as string | undefined,
    onProgress: progress
      ? (phase, done, total) => {
          const line = `${phase}: ${total ? Math.floor((100 * done) / total) : 0}%`;
          if (line !== lastLine) io.stderr.write(`\r${line}   `);
          lastLine = line;
        }
      : undefined,
  });
  if (progress && lastLine) io.stderr.write('\r\x1b[K');
  return report;
}

export const registerPrune: Register = (program, io) => {
  program
    .command('prune')
    .description(
      'delete the kernel modules the VM never loaded, from the root fs and the initramfs, then zero free space',
    )
    .argument('<image>', 'disk image file')
    .option(
      '--used <file>',
      'usage list (capture, /proc/modules, lsmod, modinfo -n paths or names); repeatable',
      (v, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--used-in-image <path>',
      'read the capture from this file inside the image, and delete it afterwards',
    )
    .option('--kernel <version>', 'the kernel to prune (default: from the list, or the only one)')
    .option('--root <n>', 'partition number of the root filesystem', parsePartNumber)
    .option('--boot <n>', 'partition number of the boot filesystem', parsePartNumber)
    .option(
      '--keep <name|glob>',
      'also keep these modules (names or globs over names and paths); repeatable',
      (v, prev: string[] = []) => [...prev, v],
    )
    .option('--keep-from <file>', 'also keep the modules named in this file (one per line)')
    .option('--dry-run', 'print the plan and change nothing')
    .option('--json', 'machine-readable report')
    .option('--no-zero', 'do not zero free blocks afterwards')
    .option('--no-initramfs', 'leave the initramfs alone')
    .addOption(
      new Option('--initramfs-compression <kind>', 'compression of the rewritten initramfs')
        .choices(COMPRESSIONS)
        .default('keep'),
    )
    .option(
      '--initramfs-level <n>',
      'compression level of the rewritten initramfs (default: gzip 7, zstd 19, xz 6)',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 22) throw new InvalidArgumentError('a level from 0 to 22');
        return n;
      },
    )
    .option('--output <copy>', 'leave IMAGE untouched and write the result to this new sparse copy')
    .option('--force', 'prune even when fewer than half of the listed names resolve')
    .option('--quiet', 'print nothing but errors (and the report with --json)')
    .action(async (image: string, o: Record<string, unknown>) => {
      const report = await runPrune(image, o, io);
      if (o.json) printJson(io, reportJson(report));
      else if (!o.quiet) io.stdout.write(formatReport(report));
      if (report.check && !report.check.clean) {
        io.stderr.write(
          `ulfs-offline: the pruned image is not consistent: ${report.check.findings[0] ?? ''}\n`,
        );
        setExitStatus(EXIT.inconsistent);
      }
    });
};
