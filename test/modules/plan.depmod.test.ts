/**
 * planModules on the real Debian cloud kernel tree, judged by the oracles:
 *   - `depmod -b` on a pruned copy: every index file byte for byte;
 *   - the keep set against a closure computed here from modules.dep text, with softdep aliases
 *     resolved by `modprobe -R`;
 *   - without module images (inferred dep order): `modprobe --show-depends` equivalence.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseUsageList, planModules, type ModulePlan } from '../../src/modules/index.js';
import {
  DEPMOD_OUTPUTS,
  closureFromDepText,
  fileImage,
  kernelTree,
  TOOL_ENV,
  prng,
  prunedCopyWithDepmod,
  type PrunedCopy,
} from './tree.js';

const { k, tree, depText, allNames } = kernelTree('cloud');
const env = TOOL_ENV;
const copies: PrunedCopy[] = [];
afterAll(() => copies.forEach((c) => c.cleanup()));

const resolved = new Map<string, string[]>();
function modprobeResolve(name: string): string[] {
  let r = resolved.get(name);
  if (!r) {
    try {
      r = execFileSync('modprobe', ['-d', k.root, '-S', k.version, '-R', name], {
        env,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .split('\n')
        .filter(Boolean);
    } catch {
      r = [];
    }
    resolved.set(name, r);
  }
  return r;
}

/** Independent keep set: modules.dep closure plus pre:/post: softdeps, to a fixed point. */
function expectedKeep(used: string[]): Set<string> {
  const soft = new Map<string, string[]>();
  for (const line of tree.indexes['modules.softdep']!.toString('latin1').split('\n')) {
    const w = line.split(' ');
    if (w[0] !== 'softdep') continue;
    const i = w.findIndex((x) => x === 'pre:' || x === 'post:');
    if (i < 0) continue;
    const names = w.slice(i).filter((x) => x !== 'pre:' && x !== 'post:');
    soft.set(w[1]!, [...(soft.get(w[1]!) ?? []), ...names]);
  }
  let set = closureFromDepText(depText, used);
  for (;;) {
    const more = [...set]
      .flatMap((m) => (soft.get(m) ?? []).flatMap(modprobeResolve))
      .filter((m) => allNames.includes(m));
    const next = closureFromDepText(depText, [...set, ...more]);
    if (next.size === set.size) return set;
    set = next;
  }
}

function usedNames(seed: number, n: number): string[] {
  const rnd = prng(seed);
  const out = new Set<string>(['btrfs', 'nfsd']); // modules with deps and softdeps (through aliases)
  while (out.size < n) out.add(allNames[Math.floor(rnd() * allNames.length)]!);
  return [...out];
}

function plan(used: string[], withImages: boolean): ModulePlan {
  const text = used.map((n, i) => `${n} ${16384 + i} 0 - Live 0xffffffffc0000000`).join('\n');
  return planModules({
    lists: parseUsageList(text, 'proc-modules.txt'),
    tree,
    indexOptions: withImages ? { moduleImage: fileImage(k.modulesDir) } : {},
  });
}

describe('planModules on the Debian cloud tree', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: keep set = independent closure; every index file = depmod -b on the pruned copy`, () => {
      const used = usedNames(seed, 40);
      const p = plan(used, true);
      expect(p.kernel).toBe(k.version);
      expect(p.used.listed).toBe(used.length);
      expect(p.used.unknown).toEqual([]);
      const keptNames = new Set(p.kept.map((m) => m.module));
      expect(keptNames).toEqual(expectedKeep(used));
      for (const m of p.kept) {
        expect(m.reasons.length).toBeGreaterThan(0);
        expect(m.reasons.includes('used')).toBe(used.includes(m.module));
        for (const r of m.reasons)
          if (r !== 'used') expect(keptNames.has(r.replace(/^(dependency|softdep) of /, ''))).toBe(true);
      }
      // remove + kept = every file, disjoint.
      const keptPaths = p.kept.map((m) => m.path);
      expect([...keptPaths, ...p.remove].sort()).toEqual([...tree.files].sort());

      const copy = prunedCopyWithDepmod(k.modulesDir, k.version, keptPaths);
      copies.push(copy);
      for (const f of DEPMOD_OUTPUTS) {
        const ours = p.indexes[f] ?? tree.indexes[f]!;
        const theirs = fs.readFileSync(path.join(copy.modulesDir, f));
        expect(ours.equals(theirs), `${f} differs from depmod's`).toBe(true);
      }
      // modules.order: the original lines of kept files, in order.
      const order = tree.indexes['modules.order']!.toString('latin1')
        .split('\n')
        .filter((l) => keptPaths.includes(l));
      expect(p.indexes['modules.order']!.toString('latin1')).toBe(order.map((l) => l + '\n').join(''));
    });
  }

  it('without module images: the same files except dep order, and modprobe --show-depends agrees', () => {
    const used = usedNames(7, 40);
    const p = plan(used, false);
    const copy = prunedCopyWithDepmod(
      k.modulesDir,
      k.version,
      p.kept.map((m) => m.path),
    );
    copies.push(copy);
    for (const f of DEPMOD_OUTPUTS.filter((f) => !f.startsWith('modules.dep'))) {
      expect(
        (p.indexes[f] ?? tree.indexes[f]!).equals(fs.readFileSync(path.join(copy.modulesDir, f))),
        f,
      ).toBe(true);
    }
    const sets = (t: string): string[] =>
      t
        .trimEnd()
        .split('\n')
        .map((l) => {
          const [a, b] = l.split(':');
          return `${a}:${(b ?? '').trim().split(' ').sort().join(' ')}`;
        });
    expect(sets(p.indexes['modules.dep']!.toString('latin1'))).toEqual(
      sets(fs.readFileSync(path.join(copy.modulesDir, 'modules.dep'), 'latin1')),
    );
    // Our files in a second copy; modprobe must answer the same as on depmod's.
    const ours = prunedCopyWithDepmod(
      k.modulesDir,
      k.version,
      p.kept.map((m) => m.path),
    );
    copies.push(ours);
    for (const [f, b] of Object.entries(p.indexes)) fs.writeFileSync(path.join(ours.modulesDir, f), b);
    const show = (root: string, name: string): string =>
      execFileSync('modprobe', ['-d', root, '-S', k.version, '--show-depends', name], {
        env,
        encoding: 'utf8',
      })
        .split(root)
        .join('ROOT')
        .split('\n')
        .sort()
        .join('\n');
    // Modules with dependencies are where the order could matter; the slow test checks every module.
    const withDeps = p.kept.filter((m) => m.reasons.length && depText.includes(`${m.path}: `)).slice(0, 25);
    expect(withDeps.length).toBeGreaterThan(5);
    for (const m of withDeps) expect(show(ours.root, m.module), m.module).toBe(show(copy.root, m.module));
  });
});
