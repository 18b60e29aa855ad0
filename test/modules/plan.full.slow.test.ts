/**
 * The 'full' Debian kernel tree (~4,000 modules): several keep sets of different sizes, every
 * index file against `depmod -b` on the pruned copy, the keep set against an independent closure,
 * and (for the inferred dep order, without module images) `modprobe --show-depends` equivalence
 * for every kept module.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  parseUsageList,
  planModules,
  rewriteIndexes,
  decodeIndex,
  encodeIndex,
} from '../../src/modules/index.js';
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

const { k, tree, depText, allNames } = kernelTree('full');
const env = TOOL_ENV;
const copies: PrunedCopy[] = [];
afterAll(() => copies.forEach((c) => c.cleanup()));

function used(seed: number, n: number): string[] {
  const rnd = prng(seed);
  const out = new Set<string>();
  while (out.size < n) out.add(allNames[Math.floor(rnd() * allNames.length)]!);
  return [...out];
}

describe('full Debian tree', () => {
  it('re-encodes every depmod-made .bin byte for byte', () => {
    for (const f of [
      'modules.dep.bin',
      'modules.alias.bin',
      'modules.symbols.bin',
      'modules.builtin.bin',
      'modules.builtin.alias.bin',
    ]) {
      const d = decodeIndex(tree.indexes[f]!);
      expect(encodeIndex(d.entries, d.order).equals(tree.indexes[f]!), f).toBe(true);
    }
  });

  for (const [seed, n] of [
    [11, 30],
    [12, 50],
    [13, 200],
    [14, 1000],
  ] as const) {
    it(`seed ${seed}, ${n} used names: index files = depmod's, keep set = independent closure`, () => {
      const names = used(seed, n);
      const p = planModules({
        lists: parseUsageList(names.join('\n'), 'names.txt'),
        tree,
        indexOptions: { moduleImage: fileImage(k.modulesDir) },
      });
      const keptNames = new Set(p.kept.map((m) => m.module));
      // Softdeps add modules (and their closures) beyond the plain closure: every extra one must say why.
      const closure = closureFromDepText(depText, names);
      for (const m of closure) expect(keptNames.has(m)).toBe(true);
      for (const m of p.kept)
        if (!closure.has(m.module))
          expect(
            m.reasons.some((r) => /^(softdep|dependency) of /.test(r)),
            m.module,
          ).toBe(true);
      const copy = prunedCopyWithDepmod(
        k.modulesDir,
        k.version,
        p.kept.map((m) => m.path),
      );
      copies.push(copy);
      for (const f of DEPMOD_OUTPUTS) {
        expect(
          (p.indexes[f] ?? tree.indexes[f]!).equals(fs.readFileSync(path.join(copy.modulesDir, f))),
          `${f} differs from depmod's`,
        ).toBe(true);
      }
    });
  }

  it('inferred dep order (no module images): modprobe --show-depends agrees for every kept module', () => {
    const names = used(21, 60);
    const p = planModules({ lists: parseUsageList(names.join('\n'), 'names.txt'), tree });
    const keptPaths = p.kept.map((m) => m.path);
    const ref = prunedCopyWithDepmod(k.modulesDir, k.version, keptPaths);
    const ours = prunedCopyWithDepmod(k.modulesDir, k.version, keptPaths);
    copies.push(ref, ours);
    const redo = rewriteIndexes(tree.indexes, new Set(p.kept.map((m) => m.module)));
    for (const [f, b] of Object.entries(redo)) fs.writeFileSync(path.join(ours.modulesDir, f), b);
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
    let differentOrder = 0;
    const refDep = fs.readFileSync(path.join(ref.modulesDir, 'modules.dep'), 'latin1').split('\n');
    const ourDep = redo['modules.dep']!.toString('latin1').split('\n');
    for (let i = 0; i < refDep.length; i++) if (refDep[i] !== ourDep[i]) differentOrder++;
    for (const m of p.kept) expect(show(ours.root, m.module), m.module).toBe(show(ref.root, m.module));
    console.log(
      `inferred order: ${differentOrder} of ${refDep.length - 1} modules.dep lines ordered differently from depmod; modprobe agrees on all ${p.kept.length}`,
    );
  });
});
