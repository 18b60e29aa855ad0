/**
 * Test helpers for the modules engine: load a real module tree from disk into a ModuleTree, build a
 * pruned copy and run the oracle (`depmod -b`) on it, and compute a keep-set closure independently
 * from modules.dep text.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ModuleImage, ModuleTree } from '../../src/modules/index.js';
import { getKernel, listModuleFiles, type KernelFlavor } from '../fixtures/kernel.js';

export const INDEX_FILES = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.softdep',
  'modules.weakdep',
  'modules.devname',
  'modules.order',
  'modules.builtin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
  'modules.builtin.modinfo',
];

/** The files depmod writes (kmod 30): compared byte for byte with ours. */
export const DEPMOD_OUTPUTS = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.softdep',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
  'modules.devname',
];

export function loadTree(modulesDir: string, version: string): ModuleTree {
  const indexes: Record<string, Buffer> = {};
  for (const f of INDEX_FILES) {
    const p = path.join(modulesDir, f);
    if (fs.existsSync(p)) indexes[f] = fs.readFileSync(p);
  }
  return { version, files: listModuleFiles(modulesDir), indexes };
}

/** Positional reads of a module file (only the ELF header and symbol sections get read). */
export function fileImage(modulesDir: string): (rel: string) => ModuleImage | null {
  return (rel) => {
    const p = path.join(modulesDir, rel);
    if (!fs.existsSync(p)) return null;
    return {
      size: fs.statSync(p).size,
      // One open per read: the planner reads a few pieces of each module, in any order, and nothing
      // tells us when it is done with a file.
      read(pos, len) {
        const b = Buffer.allocUnsafe(len);
        const fd = fs.openSync(p, 'r');
        try {
          return b.subarray(0, fs.readSync(fd, b, 0, len, pos));
        } finally {
          fs.closeSync(fd);
        }
      },
    };
  };
}

/** Reads files relative to a dir, fully (for small synthetic trees). */
export function readAll(dir: string, names: string[]): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const n of names) out[n] = fs.readFileSync(path.join(dir, n));
  return out;
}

export interface PrunedCopy {
  root: string;
  modulesDir: string;
  depmodMs: number;
  cleanup(): void;
}

/**
 * A temp root with only the kept module files (symlinks to the originals) and depmod's inputs
 * (modules.order, modules.builtin, modules.builtin.modinfo), then `depmod -b root version` on it.
 */
export function prunedCopyWithDepmod(modulesDir: string, version: string, keptPaths: string[]): PrunedCopy {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-modules-'));
  const md = path.join(root, 'lib', 'modules', version);
  fs.mkdirSync(md, { recursive: true });
  for (const p of keptPaths) {
    fs.mkdirSync(path.dirname(path.join(md, p)), { recursive: true });
    fs.symlinkSync(path.join(modulesDir, p), path.join(md, p));
  }
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
    if (fs.existsSync(path.join(modulesDir, f))) fs.copyFileSync(path.join(modulesDir, f), path.join(md, f));
  }
  const t = performance.now();
  execFileSync('depmod', ['-b', root, version], {
    env: { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH}` },
  });
  const depmodMs = performance.now() - t;
  return { root, modulesDir: md, depmodMs, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

/** Keep-set closure computed straight from modules.dep text (independent of src/modules). */
export function closureFromDepText(depText: string, names: Iterable<string>): Set<string> {
  const deps = new Map<string, string[]>();
  const modName = (p: string): string => p.split('/').pop()!.split('.')[0]!.replace(/-/g, '_');
  for (const line of depText.split('\n')) {
    if (!line) continue;
    const [p, rest] = line.split(':');
    deps.set(modName(p!), (rest ?? '').trim().split(' ').filter(Boolean).map(modName));
  }
  const out = new Set<string>();
  const todo = [...names].filter((n) => deps.has(n));
  while (todo.length) {
    const n = todo.pop()!;
    if (out.has(n)) continue;
    out.add(n);
    todo.push(...deps.get(n)!);
  }
  return out;
}

/** A small deterministic PRNG for choosing keep sets. */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

/** PATH with the sbin directories, for running depmod and modprobe. */
export const TOOL_ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH}` };

/** What `modprobe -R KEY` resolves an alias to on a tree (the modules, sorted; [] when none). */
export function modprobeResolve(root: string, version: string, key: string): string[] {
  try {
    const out = execFileSync('modprobe', ['-d', root, '-S', version, '-R', key], {
      env: TOOL_ENV,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return [...new Set(out.split('\n').filter(Boolean))].sort();
  } catch {
    return []; // "not found"
  }
}

/** A real kernel tree loaded for the planner tests, with its modules.dep text and every module name. */
export function kernelTree(flavor: KernelFlavor) {
  const k = getKernel(flavor);
  const tree = loadTree(k.modulesDir, k.version);
  const depText = tree.indexes['modules.dep']!.toString('latin1');
  const allNames = depText
    .trimEnd()
    .split('\n')
    .map((l) => l.split(':')[0]!.split('/').pop()!.split('.')[0]!.replace(/-/g, '_'));
  return { k, tree, depText, allNames };
}
