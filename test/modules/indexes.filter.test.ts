/**
 * rewriteIndexes' line filters (modules.alias, modules.symbols, modules.order) against a plain
 * reference filter written here: keep the leading comment lines, then every line whose module
 * (last field; for modules.order the whole line as a path) is kept. The planner finds these lines
 * in faster ways (a binary search over modules.alias, which depmod writes in modules.dep order;
 * regex scans over 64 KiB pieces of the others), so these tests aim at the edges of those:
 * runs at the start and end of the file, modules without lines, lines longer than a piece, the
 * line-by-line path for big keep sets, and files that do not fit the modules.dep order.
 */
import { describe, expect, it } from 'vitest';
import { decodeIndex, encodeIndex, rewriteIndexes } from '../../src/modules/index.js';
import { closureFromDepText, kernelTree, prng } from './tree.js';

/** The reference: leading '#' lines, then the lines whose last space-separated field is kept. */
function reference(
  text: string,
  keep: Set<string>,
  field = (line: string) => line.split(' ').pop()!,
): string {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let i = 0;
  const out: string[] = [];
  while (i < lines.length && lines[i]!.startsWith('#')) out.push(lines[i++]!);
  for (; i < lines.length; i++) if (lines[i] !== '' && keep.has(field(lines[i]!))) out.push(lines[i]!);
  return out.map((l) => l + '\n').join('');
}

/** A synthetic modules.dep of n modules m0..m(n-1) without dependencies. */
function depOf(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += `kernel/x/m${i}.ko:\n`;
  return s;
}

function pick(n: number, share: number, rnd: () => number): Set<string> {
  const keep = new Set<string>();
  for (let i = 0; i < n; i++) if (rnd() < share) keep.add(`m${i}`);
  return keep;
}

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** prng's first outputs from a small seed are tiny: spread the seed first. */
const random = (seed: number): (() => number) => prng(Math.imul(seed, 0x9e3779b9));

describe('modules.alias', () => {
  const { tree, depText, allNames } = kernelTree('cloud');
  const aliasText = tree.indexes['modules.alias']!.toString('latin1');

  it('the real file: the same lines as a plain filter, for keep sets from none to the first and last modules', () => {
    const first = allNames[0]!;
    const last = allNames[allNames.length - 1]!;
    const sets: Set<string>[] = [new Set(), closureFromDepText(depText, [first, last])];
    for (let seed = 1; seed <= 4; seed++) {
      const rnd = random(seed);
      sets.push(
        closureFromDepText(
          depText,
          allNames.filter(() => rnd() < 0.03 * seed),
        ),
      );
    }
    for (const keep of sets) {
      const out = rewriteIndexes(tree.indexes, keep);
      expect(out['modules.alias']!.toString('latin1')).toBe(reference(aliasText, keep));
    }
  });

  it('synthetic files in modules.dep order: runs of 0-4 lines per module, random keep sets', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = random(seed);
      const n = 1 + Math.floor(rnd() * 300);
      let alias = '# Aliases extracted from modules themselves.\n';
      for (let i = 0; i < n; i++) {
        const count = Math.floor(rnd() * 5);
        for (let j = 0; j < count; j++) alias += `alias pci:v${i}d${j}* m${i}\n`;
      }
      const keep = pick(n, rnd(), rnd);
      const out = rewriteIndexes({ 'modules.dep': latin1(depOf(n)), 'modules.alias': latin1(alias) }, keep);
      expect(out['modules.alias']!.toString('latin1')).toBe(reference(alias, keep));
    }
  });

  it('a file that names a module modules.dep does not list, or has a line that is not an alias, is filtered line by line', () => {
    const rnd = random(7);
    const n = 200;
    let alias = '';
    for (let i = 0; i < n; i++) alias += `alias a${i} m${i}\nalias b${i} m${i}\n`;
    const keep = pick(n, 0.2, rnd);
    // Every line is unknown to modules.dep (m9999) or malformed: whatever the search probes, it
    // meets one and falls back to the plain filter.
    const stale = alias.replace(/ m(\d+)\n/g, (_, d: string) => ` m${d}\nalias zzz${d} m9999\n`);
    const odd = alias.replace(/\n/g, '\nnot-an-alias-line\n');
    for (const text of [stale, odd]) {
      const out = rewriteIndexes({ 'modules.dep': latin1(depOf(n)), 'modules.alias': latin1(text) }, keep);
      expect(out['modules.alias']!.toString('latin1')).toBe(reference(text, keep));
    }
  });
});

describe('modules.symbols and modules.order (64 KiB pieces)', () => {
  it('lines longer than a piece, pieces cut at every kind of line, small and big keep sets', () => {
    for (const [seed, n] of [
      [1, 50],
      [2, 600], // more than 400 kept names: the line-by-line path instead of one regex
    ] as const) {
      const rnd = random(seed);
      let symbols = '# Aliases for symbols, used by symbol_request().\n';
      let order = '';
      for (let i = 0; i < 12000; i++) {
        const m = Math.floor(rnd() * n);
        // Now and then a name longer than a whole piece.
        const name =
          rnd() < 0.0005 ? 'x'.repeat(70000 + i) : `sym_${i}_${'y'.repeat(Math.floor(rnd() * 40))}`;
        symbols += `alias symbol:${name} m${m}\n`;
      }
      for (let i = 0; i < n; i++) order += `kernel/x/m${i}.ko\n`;
      const keep = pick(n, 0.9, rnd);
      const indexes = {
        'modules.dep': latin1(depOf(n)),
        'modules.symbols': latin1(symbols),
        'modules.order': latin1(order),
      };
      expect(indexes['modules.symbols'].length).toBeGreaterThan(4 * 65536);
      const out = rewriteIndexes(indexes, keep);
      expect(out['modules.symbols']!.toString('latin1')).toBe(reference(symbols, keep));
      const keptPaths = new Set([...keep].map((m) => `kernel/x/${m}.ko`));
      expect(out['modules.order']!.toString('latin1')).toBe(reference(order, keptPaths, (l) => l));
    }
  });
});

describe('modules.symbols.bin from the kept lines', () => {
  it('plain lines and odd ones (quote, backslash, a third field, a comment between): the entries of a plain split', () => {
    const lines = [
      '# Aliases for symbols, used by symbol_request().',
      'alias symbol:a_1 m0',
      'alias symbol:"q" m1',
      'alias symbol:back\\slash m0',
      '# a comment about m0',
      'alias symbol:three fields m1',
      'alias symbol:a_2 m1',
      'alias symbol:a_1 m1',
    ];
    const dep = 'kernel/x/m0.ko:\nkernel/x/m1.ko:\n';
    const priority = (m: string): number => (m === 'm0' ? 0 : 1);
    // Each variant: every plain line, then one odd line more.
    for (const odd of [[], [2], [3], [4], [5]]) {
      const use = lines.filter((l, i) => i < 2 || i >= 6 || odd.includes(i));
      const symbols = use.map((l) => l + '\n').join('');
      const want = use
        .filter((l) => l.startsWith('alias '))
        .map((l) => {
          const sp = l.lastIndexOf(' ');
          return { key: l.slice(6, sp), value: l.slice(sp + 1), priority: priority(l.slice(sp + 1)) };
        });
      const out = rewriteIndexes(
        {
          'modules.dep': latin1(dep),
          'modules.symbols': latin1(symbols),
          'modules.symbols.bin': encodeIndex([]),
        },
        new Set(['m0', 'm1']),
      );
      expect(out['modules.symbols']!.toString('latin1')).toBe(symbols);
      expect(out['modules.symbols.bin']!.equals(encodeIndex(want)), JSON.stringify(odd)).toBe(true);
      expect(decodeIndex(out['modules.symbols.bin']!).entries.length).toBe(want.length);
    }
  });
});
