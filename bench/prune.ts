/**
 * Side-by-side benchmark: `ulfs-offline prune` against the same job done rootless with native tools
 * (bench/native-prune.sh), on the workload of bench/make-bench-image.ts (2 GiB image, full Debian
 * kernel, MODULES=most gzip initramfs, a usage list captured by a qemu boot).
 *
 *   npm run build && npx tsx bench/prune.ts [--no-xz] [--xz-original] [--native-only] [--keep-dir DIR]
 *                                           [--rounds N]
 *
 * For each contender: a fresh sparse copy of the cached image (`sync` before the clock starts), wall
 * time and peak RSS from
 * `/usr/bin/time -v`, `e2fsck -fn` on the result, and the `xz -T2 -k` size of the result (default
 * level 6, as a user would ship it). Ours runs twice: default options, and `--initramfs-compression
 * none` (an uncompressed initramfs compresses better inside the xz'd image). Prints a table with
 * ratios against the native script. With --rounds N the contenders run N times in turn (xz sizes in
 * the first round only) and each round's time ratio is listed with their median: on a shared VM one
 * round's ratio moves by ±10 %.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { copyImage, PARTITION_OFFSET } from '../test/fixtures/bootable-image.js';
import { TOOL_ENV } from '../test/fixtures/initramfs-images.js';
import { getBenchImage } from './make-bench-image.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const CLI = path.join(ROOT, 'dist/cli/main.js');
const NATIVE = path.join(ROOT, 'bench/native-prune.sh');

interface Run {
  name: string;
  ok: boolean;
  note: string;
  wallSeconds?: number;
  peakRssMiB?: number;
  fsckClean?: boolean;
  xzBytes?: number;
  output: string;
}

function pruneAvailable(): string | undefined {
  if (!fs.existsSync(CLI)) return `${CLI} is not built (npm run build)`;
  const r = spawnSync(process.execPath, [CLI, 'prune', '--help'], { encoding: 'utf8', env: TOOL_ENV });
  if (r.status !== 0 || !/Usage: \S+ prune/.test(r.stdout))
    return 'dist/cli/main.js has no prune command yet';
  return undefined;
}

/** Runs a command under `/usr/bin/time -v`; returns wall seconds, peak RSS and the output. */
function timed(cmd: string[]): { status: number | null; wall: number; rssKiB: number; output: string } {
  const r = spawnSync('/usr/bin/time', ['-v', ...cmd], {
    encoding: 'utf8',
    env: TOOL_ENV,
    maxBuffer: 256 << 20,
  });
  const err = r.stderr ?? '';
  const wallText = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)/.exec(err)?.[1] ?? '0';
  const wall = wallText
    .split(':')
    .map(Number)
    .reduce((acc, v) => acc * 60 + v, 0);
  const rssKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1] ?? 0);
  return { status: r.status, wall, rssKiB, output: `${r.stdout ?? ''}${err}` };
}

function fsckClean(image: string): boolean {
  const r = spawnSync('e2fsck', ['-fn', `${image}?offset=${PARTITION_OFFSET}`], { env: TOOL_ENV });
  return r.status === 0;
}

function xzSize(image: string): number {
  const r = spawnSync('xz', ['-T2', '-k', '-f', image], { env: TOOL_ENV });
  if (r.status !== 0) throw new Error(`xz failed on ${image}`);
  const size = fs.statSync(`${image}.xz`).size;
  fs.rmSync(`${image}.xz`, { force: true });
  return size;
}

function contender(
  name: string,
  source: string,
  work: string,
  cmd: (img: string) => string[],
  xz: boolean,
): Run {
  const img = path.join(work, `${name}.img`);
  copyImage(source, img);
  // Write back every dirty page (the fresh copy, and what the previous contender left) before the
  // clock starts: otherwise a tool pays for writeback it did not cause (0.3-0.5 s here for the copy).
  spawnSync('sync');
  const t = timed(cmd(img));
  const run: Run = {
    name,
    ok: t.status === 0,
    note: t.status === 0 ? '' : `exit ${t.status}`,
    wallSeconds: t.wall,
    peakRssMiB: t.rssKiB / 1024,
    output: t.output,
  };
  console.log(`\n--- ${name} ---\n${t.output.replace(/\n\s+Command being timed[\s\S]*$/, '')}`);
  run.fsckClean = fsckClean(img);
  if (xz && run.ok) run.xzBytes = xzSize(img);
  fs.rmSync(img, { force: true });
  return run;
}

function fmt(v: number | undefined, digits: number): string {
  return v === undefined ? '-' : v.toFixed(digits);
}

function main(): void {
  const args = process.argv.slice(2);
  const doXz = !args.includes('--no-xz');
  const keepAt = args.indexOf('--keep-dir');
  const bench = getBenchImage();
  const work = keepAt >= 0 ? args[keepAt + 1]! : fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-bench-'));
  fs.mkdirSync(work, { recursive: true });
  console.log(
    `workload: ${bench.image}\n  kernel ${bench.version}, usage list ${bench.used} (${bench.listed} modules)`,
  );
  console.log(
    `  host: ${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const roundsAt = args.indexOf('--rounds');
  const rounds = roundsAt >= 0 ? Math.max(1, Number(args[roundsAt + 1]) || 1) : 1;
  const runs: Run[] = [];
  /** Wall seconds per round: native, ours, ours with --initramfs-compression none. */
  const walls: (number | undefined)[][] = [];
  try {
    if (args.includes('--xz-original')) {
      const img = path.join(work, 'original.img');
      copyImage(bench.image, img);
      runs.push({ name: 'original (unpruned)', ok: true, note: '', xzBytes: xzSize(img), output: '' });
      fs.rmSync(img, { force: true });
    }
    const missing = args.includes('--native-only') ? 'not run (--native-only)' : pruneAvailable();
    for (let round = 0; round < rounds; round++) {
      const xz = doXz && round === 0;
      const these: Run[] = [];
      these.push(contender('native', bench.image, work, (img) => ['bash', NATIVE, img, bench.used], xz));
      if (missing) {
        these.push({ name: 'ulfs-offline prune', ok: false, note: `skipped: ${missing}`, output: '' });
      } else {
        for (const [name, extra] of [
          ['ulfs-offline prune', []],
          ['ulfs-offline prune --initramfs-compression none', ['--initramfs-compression', 'none']],
        ] as const) {
          const r = contender(
            name.replace(/[^a-z]+/g, '-'),
            bench.image,
            work,
            (img) => [process.execPath, CLI, 'prune', '--used', bench.used, ...extra, img],
            xz,
          );
          r.name = name;
          these.push(r);
        }
      }
      if (round === 0) runs.push(...these);
      else if (these.some((r) => r.fsckClean === false))
        runs.push(...these.filter((r) => r.fsckClean === false));
      walls.push(these.map((r) => (r.ok ? r.wallSeconds : undefined)));
    }
  } finally {
    if (keepAt < 0) fs.rmSync(work, { recursive: true, force: true });
  }

  const base = runs.find((r) => r.name === 'native');
  const ratio = (a: number | undefined, b: number | undefined): string =>
    a === undefined || b === undefined || b === 0 ? '-' : (a / b).toFixed(3);
  const rows = [
    ['contender', 'wall s', 'x native', 'peak RSS MiB', 'e2fsck', 'xz -T2 bytes', 'x native', 'note'],
    ...runs.map((r) => [
      r.name,
      fmt(r.wallSeconds, 2),
      ratio(r.wallSeconds, base?.wallSeconds),
      fmt(r.peakRssMiB, 1),
      r.fsckClean === undefined ? '-' : r.fsckClean ? 'clean' : 'NOT CLEAN',
      r.xzBytes === undefined ? '-' : String(r.xzBytes),
      ratio(r.xzBytes, base?.xzBytes),
      r.note,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  console.log('');
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  if (rounds > 1) {
    const median = (a: number[]): number => {
      const b = [...a].sort((x, y) => x - y);
      const m = b.length >> 1;
      return b.length % 2 ? b[m]! : (b[m - 1]! + b[m]!) / 2;
    };
    console.log(`\n${rounds} rounds (wall s; ratio to native):`);
    const ratios: number[][] = [[], []];
    walls.forEach((w, i) => {
      const [n, ...ours] = w;
      const cells = ours.map((o, j) => {
        if (o === undefined || n === undefined) return '-';
        ratios[j]!.push(o / n);
        return `${o.toFixed(2)} (${(o / n).toFixed(3)}x)`;
      });
      console.log(
        `  round ${i + 1}: native ${n?.toFixed(2) ?? '-'}, prune ${cells[0] ?? '-'}, none ${cells[1] ?? '-'}`,
      );
    });
    for (const [j, label] of ['prune', 'prune --initramfs-compression none'].entries()) {
      const r = ratios[j]!;
      if (!r.length) continue;
      const under = r.filter((x) => x <= 0.2).length;
      console.log(
        `  ${label}: median ${median(r).toFixed(3)}x, range ${Math.min(...r).toFixed(3)}-${Math.max(...r).toFixed(3)}x, <= 0.2x in ${under} of ${r.length}`,
      );
    }
  }
  if (runs.some((r) => r.fsckClean === false)) process.exitCode = 1;
}

main();
