/**
 * Property run shared by property.write.test.ts (quick) and property.write.slow.test.ts: a seeded
 * random subset of a real kernel module tree is deleted in random order (one batch, then the
 * directories it empties); oracles: e2fsck -fn clean, the remaining tree (names + sha256, via
 * debugfs rdump) equals the expectation, and the free block/inode counts equal what native
 * `debugfs -w` reports after the same deletions on a copy.
 */
import { expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { FileDevice } from '../../src/image/blockdev.js';
import { removePaths } from '../../src/ext/write/index.js';
import { listModuleFiles, type KernelTree } from '../fixtures/kernel.js';
import { debugfs, e2fsck, mkfs, run, superFree, type Img } from './writer-fixtures.js';

export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

/** Builds an ext4 image holding the kernel's module tree at /lib/modules/<version>. */
export function kernelImage(dir: string, k: KernelTree, name: string, bs: 1024 | 4096 = 4096): Img {
  const src = path.join(dir, 'src-' + name);
  fs.mkdirSync(path.join(src, 'lib/modules'), { recursive: true });
  fs.cpSync(k.modulesDir, path.join(src, 'lib/modules', k.version), { recursive: true });
  let bytes = 0;
  for (const f of listModuleFiles(k.modulesDir)) bytes += fs.statSync(path.join(k.modulesDir, f)).size;
  const sizeMiB = Math.ceil((bytes * 1.6) / (1 << 20)) + 64;
  const img = mkfs(path.join(dir, name + '.img'), { type: 'ext4', bs, src, sizeMiB, extra: ['-N', '20000'] });
  fs.rmSync(src, { recursive: true, force: true });
  return img;
}

function treeHashes(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.set(r + '/', 'dir');
        walk(r);
      } else if (e.isSymbolicLink()) out.set(r, 'link:' + fs.readlinkSync(path.join(root, r)));
      else
        out.set(
          r,
          createHash('sha256')
            .update(fs.readFileSync(path.join(root, r)))
            .digest('hex'),
        );
    }
  };
  walk('');
  return out;
}

export function runProperty(dir: string, k: KernelTree, base: Img, seed: number, fraction: number): void {
  const random = rng(seed);
  const all = listModuleFiles(k.modulesDir);
  const victims = all.filter(() => random() < fraction);
  // random order
  for (let i = victims.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [victims[i], victims[j]] = [victims[j]!, victims[i]!];
  }
  const prefix = `/lib/modules/${k.version}/`;
  const ours = path.join(dir, `ours-${seed}.img`);
  const native = path.join(dir, `native-${seed}.img`);
  fs.copyFileSync(base.path, ours);
  fs.copyFileSync(base.path, native);

  // expected: source tree minus victims minus the directories they empty (deepest first)
  const expected = treeHashes(k.modulesDir);
  const gone = new Set(victims);
  for (const v of victims) expected.delete(v);
  const childCount = new Map<string, number>();
  for (const key of expected.keys()) {
    const p = key.endsWith('/') ? key.slice(0, -1) : key;
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
    childCount.set(parent, (childCount.get(parent) ?? 0) + 1);
  }
  const touched = new Set(victims.map((v) => (v.includes('/') ? v.slice(0, v.lastIndexOf('/')) : '')));
  const emptied: string[] = [];
  // bounded: each pass removes at least one directory or stops
  for (let pass = 0; pass < 64; pass++) {
    const now = [...touched].filter((d) => d !== '' && !childCount.get(d));
    if (now.length === 0) break;
    for (const d of now) {
      touched.delete(d);
      expected.delete(d + '/');
      emptied.push(d);
      const parent = d.includes('/') ? d.slice(0, d.lastIndexOf('/')) : '';
      childCount.set(parent, (childCount.get(parent) ?? 0) - 1);
      touched.add(parent);
    }
  }
  void gone;

  // ours
  const dev = new FileDevice(ours, 'rw');
  const t0 = performance.now();
  const r = removePaths(
    dev,
    victims.map((v) => prefix + v),
    { pruneEmptyDirs: true },
  );
  const ms = performance.now() - t0;
  dev.close();
  expect(r.removedFiles).toBe(victims.length);
  expect(r.removedDirs).toBe(emptied.length);
  const chk = e2fsck(ours);
  expect(chk.ok ? '' : chk.output).toBe('');

  // native debugfs on the copy
  const cmds = [...victims.map((v) => `rm ${prefix}${v}`), ...emptied.map((d) => `rmdir ${prefix}${d}`)];
  const cmdFile = path.join(dir, `cmds-${seed}.txt`);
  fs.writeFileSync(cmdFile, cmds.join('\n') + '\n');
  run('debugfs', ['-w', '-f', cmdFile, native]);
  expect(superFree(ours)).toEqual(superFree(native));

  // remaining tree
  const dump = path.join(dir, `dump-${seed}`);
  fs.mkdirSync(dump);
  debugfs(ours, [`rdump ${prefix.slice(0, -1)} ${dump}`]);
  const got = treeHashes(path.join(dump, k.version));
  expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [key, h] of expected) expect(got.get(key), key).toBe(h);
  fs.rmSync(dump, { recursive: true, force: true });
  fs.rmSync(ours, { force: true });
  fs.rmSync(native, { force: true });
  void ms;
}
