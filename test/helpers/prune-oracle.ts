/**
 * The native tools' verdict on a pruned image: what e2fsck, zerofree, debugfs, GNU cpio, the real
 * decompressors and depmod -b say about it, compared with a copy of the image from before the prune.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { fileSha, listFiles, rdump, sh } from './images.js';
import { e2fsckClean } from '../fixtures/ext-images.js';
import { DEPMOD_OUTPUTS } from '../modules/tree.js';

export const MOD_RE = /\.ko(\.(gz|xz|zst))?$/;
const INDEX_RE = /(^|\/)modules\.[^/]+$/;

export const moduleNameOf = (f: string): string => path.basename(f).replace(MOD_RE, '').replace(/-/g, '_');

/** Runs depmod -b on a copy of a module tree and returns the files it wrote. */
export function depmodOracle(tree: string, version: string, work: string): Record<string, Buffer> {
  const base = path.join(work, 'depmod-root');
  const vdir = path.join(base, 'lib/modules', version);
  fs.rmSync(base, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(vdir), { recursive: true });
  fs.cpSync(tree, vdir, { recursive: true });
  for (const f of DEPMOD_OUTPUTS) fs.rmSync(path.join(vdir, f), { force: true });
  sh('depmod', ['-b', base, version]);
  const out: Record<string, Buffer> = {};
  for (const f of DEPMOD_OUTPUTS)
    if (fs.existsSync(path.join(vdir, f))) out[f] = fs.readFileSync(path.join(vdir, f));
  fs.rmSync(base, { recursive: true, force: true });
  return out;
}

/** Every index depmod writes for `tree` must equal the one in `tree`. */
export function expectDepmodIdentical(tree: string, version: string, work: string, what: string): void {
  const oracle = depmodOracle(tree, version, work);
  expect(Object.keys(oracle).length, `${what}: depmod wrote nothing`).toBeGreaterThanOrEqual(7);
  for (const [f, data] of Object.entries(oracle)) {
    const ours = path.join(tree, f);
    expect(
      fs.existsSync(ours) && fs.readFileSync(ours).equals(data),
      `${what}: ${f} differs from depmod -b`,
    ).toBe(true);
  }
}

const DECOMPRESS: Record<string, string> = {
  gzip: 'gzip -dc',
  zstd: 'zstd -dcq',
  xz: 'xz -dc',
  lz4: 'lz4 -dcq',
};

/**
 * Extracts every segment of an initramfs with GNU cpio (uncompressed archives first, then the compressed
 * one), checking the compressed stream with the native tool. Returns the compression seen.
 */
export function extractInitramfs(file: string, dest: string): string {
  fs.mkdirSync(dest, { recursive: true });
  const head = fs.readFileSync(file).subarray(0, 6);
  let kind = 'none';
  if (head[0] === 0x1f && head[1] === 0x8b) kind = 'gzip';
  else if (head.readUInt32LE(0) === 0xfd2fb528) kind = 'zstd';
  else if (head[0] === 0xfd && head.toString('latin1', 1, 5) === '7zXZ') kind = 'xz';
  else if (head.readUInt32LE(0) === 0x184c2102) kind = 'lz4';
  if (kind !== 'none') {
    sh('bash', [
      '-c',
      `${DECOMPRESS[kind]} '${file}' | (cd '${dest}' && cpio -idm --quiet --no-absolute-filenames)`,
    ]);
    return kind;
  }
  // Early uncompressed archive(s) in front: unmkinitramfs splits them for us.
  sh('unmkinitramfs', [file, dest]);
  return 'early+' + (fs.existsSync(path.join(dest, 'main')) ? 'main' : 'none');
}

export interface PruneVerdictInput {
  /** `img?offset=N` of every filesystem the prune changed. */
  specs: string[];
  rootSpec: string;
  /** /usr/lib/modules/V or /lib/modules/V as debugfs sees it (no symlinks). */
  modulesDir: string;
  version: string;
  /** rdump of the root's module dir from before the prune. */
  beforeTree: string;
  report: {
    kept: { module: string; path: string }[];
    rootfs: { removedFiles: number };
    initramfs: { path: string; modulesBefore: number; modulesAfter: number }[];
  };
  work: string;
}

/** e2fsck and zerofree on every changed fs, then the root module tree against the keep set and depmod. */
export function expectPrunedRoot(v: PruneVerdictInput): void {
  for (const spec of v.specs) {
    const c = e2fsckClean(spec);
    expect(c.ok, `${spec}: ${c.output}`).toBe(true);
    const z = sh('zerofree', ['-n', '-v', spec]).trim().split('\n').pop();
    expect(z, `zerofree -n on ${spec}`).toMatch(/^0\//);
  }
  const after = rdump(v.rootSpec, v.modulesDir, path.join(v.work, 'root-after'));
  const kept = new Set(v.report.kept.map((k) => k.path));
  expect(listFiles(after, (f) => MOD_RE.test(f))).toEqual([...kept].sort());
  for (const f of kept) expect(fileSha(path.join(after, f)), f).toBe(fileSha(path.join(v.beforeTree, f)));
  for (const f of listFiles(v.beforeTree, (f) => !MOD_RE.test(f) && !INDEX_RE.test(f))) {
    expect(fileSha(path.join(after, f)), f).toBe(fileSha(path.join(v.beforeTree, f)));
  }
  expect(v.report.rootfs.removedFiles).toBe(
    listFiles(v.beforeTree, (f) => MOD_RE.test(f)).length - kept.size,
  );
  expectDepmodIdentical(after, v.version, v.work, 'root fs');
}

/**
 * An initramfs before and after: it extracts, holds exactly the kept modules it had, every other entry
 * is unchanged, and its module indexes equal depmod -b's for the pruned tree.
 */
export function expectPrunedInitramfs(
  beforeFile: string,
  afterFile: string,
  kept: { module: string }[],
  version: string,
  work: string,
): { modulesBefore: number; modulesAfter: number } {
  const b = path.join(work, 'ir-before');
  const a = path.join(work, 'ir-after');
  fs.rmSync(b, { recursive: true, force: true });
  fs.rmSync(a, { recursive: true, force: true });
  extractInitramfs(beforeFile, b);
  extractInitramfs(afterFile, a);
  sh('lsinitramfs', [afterFile]);
  const keep = new Set(kept.map((k) => k.module));
  const modsBefore = listFiles(b, (f) => MOD_RE.test(f));
  const expected = modsBefore.filter((f) => keep.has(moduleNameOf(f)));
  expect(listFiles(a, (f) => MOD_RE.test(f))).toEqual(expected);
  for (const f of expected) expect(fileSha(path.join(a, f)), f).toBe(fileSha(path.join(b, f)));
  for (const f of listFiles(b, (f) => !MOD_RE.test(f) && !INDEX_RE.test(f))) {
    expect(fileSha(path.join(a, f)), `initramfs ${f}`).toBe(fileSha(path.join(b, f)));
  }
  const trees = listFiles(a, (f) => f.endsWith(`/modules/${version}/modules.dep`)).map((f) =>
    path.join(a, path.dirname(f)),
  );
  expect(trees.length, 'module trees in the pruned initramfs').toBeGreaterThan(0);
  for (const t of trees) expectDepmodIdentical(t, version, work, `initramfs ${t}`);
  return { modulesBefore: modsBefore.length, modulesAfter: expected.length };
}
