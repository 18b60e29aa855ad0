/**
 * #4's memory goal as a guard: filtering an archive peaks at <= 100 MB RSS in every format, written
 * back at its default level. bench/initramfs-rss.ts does the measuring (a synthetic archive compressed
 * by the native tool, filtered by a fresh node process that reports its own peak RSS); this test runs
 * it bundled (tsx's loader would add its own memory). The figures had only been measured by hand: a
 * change that raised gzip's from 87 to 95 MB went unnoticed for a session. With zstd's earlier 4 MiB
 * jobs (124 MB) this fails.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LEVEL } from '../../src/initramfs/compression.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
// Inside the repository, so that the bundle finds the native codecs in node_modules.
const BUNDLE = path.join(ROOT, 'node_modules/.cache/ulfs-offline/initramfs-rss.mjs');
const LIMIT_MB = 100;

beforeAll(async () => {
  fs.mkdirSync(path.dirname(BUNDLE), { recursive: true });
  await build({
    entryPoints: [path.join(ROOT, 'bench/initramfs-rss.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: BUNDLE,
    external: ['zstd-napi', 'lzma-native'],
    logLevel: 'warning',
  });
});

/** `level` 'default': none given, as prune writes it (gzip then copies the input's own blocks). */
function peakRss(mb: number, format: string, level?: number | 'default'): number {
  const out = execFileSync(
    process.execPath,
    [BUNDLE, String(mb), format, ...(level ? [String(level)] : [])],
    {
      encoding: 'utf8',
      env: { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` },
    },
  );
  const r = JSON.parse(out.trim().split('\n').pop()!) as { peakRssMB: number; removed: number };
  expect(r.removed).toBeGreaterThan(0);
  const how = level === 'default' ? ' (default level: old blocks copied)' : level ? ` -${level}` : '';
  console.log(`${format}${how} at ${mb} MB: peak RSS ${r.peakRssMB} MB`);
  return r.peakRssMB;
}

// Sizes: past the point where each figure stops growing (bench runs go to 500 MB and 2 GB), small
// enough for the strong levels to take seconds (xz -6 filters ~1.3 MB/s here, zstd -19 ~7 MB/s).
describe(`filter peak RSS <= ${LIMIT_MB} MB at the default levels`, () => {
  it('uncompressed, 200 MB', () => expect(peakRss(200, 'none')).toBeLessThanOrEqual(LIMIT_MB));
  it(`gzip -${DEFAULT_LEVEL.gzip} and -9, 200 MB`, () => {
    expect(peakRss(200, 'gzip', DEFAULT_LEVEL.gzip)).toBeLessThanOrEqual(LIMIT_MB);
    expect(peakRss(200, 'gzip', 9)).toBeLessThanOrEqual(LIMIT_MB);
    // Copying old blocks holds each span (1 MiB) until it is checked; 4 MiB spans made 122-125 MB.
    expect(peakRss(200, 'gzip', 'default')).toBeLessThanOrEqual(LIMIT_MB);
  });
  it(`lz4 -${DEFAULT_LEVEL.lz4}, 200 MB`, () =>
    expect(peakRss(200, 'lz4', DEFAULT_LEVEL.lz4)).toBeLessThanOrEqual(LIMIT_MB));
  it(`zstd -${DEFAULT_LEVEL.zstd}, 100 MB`, () =>
    expect(peakRss(100, 'zstd', DEFAULT_LEVEL.zstd)).toBeLessThanOrEqual(LIMIT_MB));
  it(`xz -${DEFAULT_LEVEL.xz}, 30 MB`, () =>
    expect(peakRss(30, 'xz', DEFAULT_LEVEL.xz)).toBeLessThanOrEqual(LIMIT_MB));
});
