/**
 * Long fuzz runs: a seeded mutation loop over every parser target (test/reliability/fuzz-targets.ts),
 * counting executions and findings (anything but a UlfsError, or a case over the per-case limit).
 *
 *   npx tsx bench/fuzz-parsers.ts [--target NAME]... [--execs N] [--seconds S] [--seed N]
 *
 * Defaults: every target, 1,000,000 executions or 600 s each, whichever comes first. Prints one JSON
 * line per target: { target, execs, seconds, execsPerSecond, ulfsErrors, findings, slowestMs, maxRssMiB },
 * and a progress line on stderr every minute.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/*
 * tsx compiles with esbuild's keepNames and source maps: every closure the parsers create per call
 * then costs an Object.defineProperty, and every UlfsError a source-mapped stack. That was a third
 * of the ext target's time, overhead the shipped (tsc-compiled) code does not have. So this script
 * re-runs itself under a minimal loader (esbuild transform per .ts file, no keepNames, no source
 * maps; same semantics, file URLs unchanged) unless it already runs under it.
 */
if (!process.env.ULFS_FUZZ_LEAN) {
  const esbuild = pathToFileURL(createRequire(import.meta.url).resolve('esbuild')).href;
  const hooks = `
import esbuild from ${JSON.stringify(esbuild)};
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
export async function resolve(spec, ctx, next) {
  if ((spec.startsWith('.') || spec.startsWith('/')) && spec.endsWith('.js') && ctx.parentURL?.startsWith('file:')) {
    const ts = new URL(spec.slice(0, -3) + '.ts', ctx.parentURL);
    if (!existsSync(new URL(spec, ctx.parentURL)) && existsSync(ts)) return { url: ts.href, shortCircuit: true };
  }
  return next(spec, ctx);
}
export async function load(url, ctx, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, ctx);
  const file = fileURLToPath(url);
  const { code } = esbuild.transformSync(readFileSync(file, 'utf8'), {
    loader: 'ts', format: 'esm', target: 'node20', sourcefile: file,
    tsconfigRaw: { compilerOptions: { target: 'ES2022', useDefineForClassFields: true } },
  });
  return { format: 'module', source: code, shortCircuit: true };
}`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(
    'data:text/javascript,' + encodeURIComponent(hooks),
  )});`;
  const r = spawnSync(
    process.execPath,
    [
      // e.g. ULFS_FUZZ_NODE_FLAGS='--cpu-prof' to profile the run
      ...(process.env.ULFS_FUZZ_NODE_FLAGS ?? '').split(' ').filter(Boolean),
      '--import',
      'data:text/javascript,' + encodeURIComponent(register),
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, ULFS_FUZZ_LEAN: '1' } },
  );
  process.exit(r.status ?? 1);
}
const { TARGETS, randomMutations, runCase } = await import('../test/reliability/fuzz-targets.js');
const { prng } = await import('../test/reliability/kill-sweep.js');

const args = process.argv.slice(2);
const opt = (name: string): string[] =>
  args.flatMap((a, i) => (a === `--${name}` && args[i + 1] !== undefined ? [args[i + 1]!] : []));
const targets = opt('target');
const maxExecs = Number(opt('execs')[0] ?? 1_000_000);
const maxSeconds = Number(opt('seconds')[0] ?? 600);
const seedBase = Number(opt('seed')[0] ?? 1);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-fuzz-bench-'));
try {
  for (const t of TARGETS) {
    if (targets.length && !targets.includes(t.name)) continue;
    const seeds = t.seeds(dir);
    const rand = prng(seedBase);
    const findings = new Map<string, number>();
    let execs = 0;
    let ulfsErrors = 0;
    let slowest = 0;
    let maxRss = 0;
    const t0 = performance.now();
    let lastProgress = t0;
    while (execs < maxExecs && performance.now() - t0 < maxSeconds * 1000) {
      const seed = seeds[Math.floor(rand() * seeds.length)]!;
      const muts = randomMutations(rand, seed);
      const o = await runCase(t, seed, muts, rand() < 0.5);
      execs++;
      if (o.ulfsError) ulfsErrors++;
      slowest = Math.max(slowest, o.ms);
      if (!o.ok) {
        const key = `${seed.name}: ${o.finding}`;
        if (!findings.has(key))
          console.error(`finding in ${t.name} (exec ${execs}): ${key} ${JSON.stringify(muts)}`);
        findings.set(key, (findings.get(key) ?? 0) + 1);
      }
      if ((execs & 1023) === 0) {
        maxRss = Math.max(maxRss, process.memoryUsage().rss);
        // A progress line on stderr every minute, so a run stopped early still says how far it got.
        const now = performance.now();
        if (now - lastProgress >= 60_000) {
          lastProgress = now;
          console.error(
            `progress ${t.name}: ${execs} execs, ${Math.round((now - t0) / 1000)} s, ${ulfsErrors} typed rejections, ${findings.size} findings, slowest ${Math.round(slowest)} ms, max RSS ${Math.round(maxRss / 2 ** 20)} MiB`,
          );
        }
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
    console.log(
      JSON.stringify({
        target: t.name,
        execs,
        seconds: Math.round(seconds),
        execsPerSecond: Math.round(execs / seconds),
        ulfsErrors,
        findings: Object.fromEntries(findings),
        slowestMs: Math.round(slowest),
        maxRssMiB: Math.round(maxRss / 2 ** 20),
      }),
    );
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
