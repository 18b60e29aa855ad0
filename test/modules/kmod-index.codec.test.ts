import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isUlfsError } from '../../src/errors.js';
import { decodeIndex, encodeIndex, type IndexEntry } from '../../src/modules/index.js';
import { getKernel } from '../fixtures/kernel.js';
import { loadTree } from './tree.js';

const k = getKernel('cloud');
const tree = loadTree(k.modulesDir, k.version);
const BINS = [
  'modules.dep.bin',
  'modules.alias.bin',
  'modules.symbols.bin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
];

function errCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isUlfsError(e)) return e.code;
    return `crash: ${String(e)}`;
  }
  return 'no error';
}

/** Entries in canonical order: by key (byte order), values of a key by priority then insertion order reversed. */
function canonical(entries: IndexEntry[]): IndexEntry[] {
  const byKey = new Map<string, IndexEntry[]>();
  for (const e of entries) {
    const l = byKey.get(e.key) ?? [];
    // depmod's rule: a value goes before the first one whose priority is >= its own.
    let i = 0;
    while (i < l.length && l[i]!.priority < e.priority) i++;
    l.splice(i, 0, e);
    byKey.set(e.key, l);
  }
  return [...byKey.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).flatMap((key) => byKey.get(key)!);
}

describe('kmod .bin index codec', () => {
  it('re-encodes the depmod-made index files of the real tree byte for byte (post-order, kmod 30)', () => {
    for (const f of BINS) {
      const buf = tree.indexes[f]!;
      const d = decodeIndex(buf);
      expect(d.order, f).toBe('post');
      expect(encodeIndex(d.entries, 'post').equals(buf), f).toBe(true);
    }
  });

  it('decodes modules.dep.bin to the lines of depmod text modules.dep, priority = line number', () => {
    const lines = tree.indexes['modules.dep']!.toString('latin1').trimEnd().split('\n');
    const { entries } = decodeIndex(tree.indexes['modules.dep.bin']!);
    expect(entries.length).toBe(lines.length);
    for (const e of entries) expect(lines[e.priority]).toBe(e.value);
  });

  it('fast-check: encode -> decode gives back the entries (both write orders)', () => {
    const key = fc.string({
      unit: fc.constantFrom(...'abc_-:*?[]/.xyz019'.split('')),
      minLength: 0,
      maxLength: 12,
    });
    const entry = fc.record({
      key,
      value: fc.string({ unit: fc.constantFrom(...'ab:/. _k'.split('')), maxLength: 10 }),
      priority: fc.nat({ max: 5 }),
    });
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 60 }),
        fc.constantFrom('post' as const, 'pre' as const),
        (entries, order) => {
          const buf = encodeIndex(entries, order);
          const d = decodeIndex(buf);
          expect(d.entries).toEqual(canonical(entries));
          if (entries.length > 1 && new Set(entries.map((e) => e.key)).size > 1) expect(d.order).toBe(order);
          // Re-encoding the decoded entries is stable (ties in priority aside: depmod puts a later
          // insertion first, so re-inserting in stored order would swap them).
          const ties = new Set(entries.map((e) => `${e.key}\0${e.priority}`)).size < entries.length;
          if (!ties) expect(encodeIndex(d.entries, order).equals(buf)).toBe(true);
          // The post-order writer works from sorted keys, the pre-order one from depmod's node tree:
          // the same nodes in another place give a file of the same length.
          expect(encodeIndex(entries, order === 'post' ? 'pre' : 'post').length).toBe(buf.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keys and values outside 7-bit ASCII (or with NUL) are KMOD_INDEX_BAD when encoded', () => {
    const ok = { key: 'a', value: 'b', priority: 0 };
    for (const bad of [
      { key: 'x\u00e9', value: 'v', priority: 1 },
      { key: 'x', value: 'v\u0000', priority: 1 },
    ]) {
      for (const order of ['post', 'pre'] as const)
        expect(errCode(() => encodeIndex([ok, bad], order))).toBe('KMOD_INDEX_BAD');
    }
    expect(errCode(() => encodeIndex([ok], 'post'))).toBe('no error');
  });

  it('truncated files are KMOD_INDEX_BAD, never a crash', () => {
    const buf = tree.indexes['modules.alias.bin']!;
    for (const len of [0, 4, 11, 12, 13, 100, buf.length >> 1, buf.length - 1]) {
      expect(
        errCode(() => decodeIndex(buf.subarray(0, len))),
        `length ${len}`,
      ).toBe('KMOD_INDEX_BAD');
    }
  });

  it('corrupt files (bad magic, version, loops, wild offsets, bad ranges, random bytes) are KMOD_INDEX_BAD', () => {
    const good = encodeIndex([
      { key: 'abc', value: 'm1', priority: 1 },
      { key: 'abd', value: 'm2', priority: 2 },
      { key: 'x', value: 'm3', priority: 3 },
    ]);
    const mutate = (f: (b: Buffer) => void): Buffer => {
      const b = Buffer.from(good);
      f(b);
      return b;
    };
    const root = good.readUInt32BE(8);
    const cases: [string, Buffer][] = [
      ['magic', mutate((b) => b.writeUInt32BE(0xdeadbeef, 0))],
      ['version', mutate((b) => b.writeUInt32BE(0x00030001, 4))],
      ['root beyond end', mutate((b) => b.writeUInt32BE((root & 0xf0000000) | 0x0ffffff0, 8))],
      ['root into header', mutate((b) => b.writeUInt32BE((root & 0xf0000000) | 4, 8))],
      ['root unknown flag', mutate((b) => b.writeUInt32BE(root | 0x10000000, 8))],
    ];
    // A child pointing back at the root: a loop.
    const loop = Buffer.from(good);
    const rootOff = root & 0x0fffffff;
    // Root has children (post-order: it is last). Find its child table and point the first at itself.
    let at = rootOff;
    if (root & 0x80000000) at = loop.indexOf(0, at) + 1;
    loop.writeUInt32BE(root, at + 2);
    cases.push(['loop', loop]);
    const range = Buffer.from(good);
    range[at] = 0x7f;
    range[at + 1] = 0x10;
    cases.push(['first > last', range]);
    const count = Buffer.from(good);
    // Last node written before the root is a leaf with values; make its count huge.
    const leafVals = good.indexOf(Buffer.from('m3\0')) - 8;
    count.writeUInt32BE(0x7fffffff, leafVals);
    cases.push(['value count', count]);
    for (const [what, b] of cases)
      expect(
        errCode(() => decodeIndex(b)),
        what,
      ).toBe('KMOD_INDEX_BAD');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.nat(), (bytes, n) => {
        const b = Buffer.concat([good.subarray(0, 12), Buffer.from(bytes)]);
        b.writeUInt32BE((((n % 8) << 29) | ((n >>> 3) % (b.length + 4))) >>> 0, 8);
        const c = errCode(() => decodeIndex(b));
        expect(['KMOD_INDEX_BAD', 'no error']).toContain(c);
      }),
      { numRuns: 500 },
    );
  });
});
