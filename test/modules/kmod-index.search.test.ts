/**
 * searchIndexWild (kmod's index_searchwild over modules.alias.bin) against modprobe's own alias
 * resolution (`modprobe -d ROOT -S VER -R KEY`) on the real cloud tree. Keys are alias patterns
 * of the tree with their wildcards filled in (so wildcard subtrees are exercised), and a few that
 * name nothing.
 */
import { describe, expect, it } from 'vitest';
import { isUlfsError } from '../../src/errors.js';
import { encodeIndex, normalizeAlias, searchIndexWild } from '../../src/modules/index.js';
import { getKernel } from '../fixtures/kernel.js';
import { loadTree, modprobeResolve, prng } from './tree.js';

const k = getKernel('cloud');
const tree = loadTree(k.modulesDir, k.version);

/** An instance of an fnmatch pattern: '*' -> '0', '?' -> 'a', '[...]' -> its first character. */
function instance(pattern: string): string {
  return pattern
    .replace(/\*/g, '0')
    .replace(/\?/g, 'a')
    .replace(/\[!?([^\]])[^\]]*\]/g, '$1');
}

describe('kmod .bin wildcard search', () => {
  it('resolves alias keys exactly as modprobe -R does (exact keys, wildcard patterns, misses)', () => {
    const aliasText = tree.indexes['modules.alias']!.toString('latin1');
    const patterns = [...aliasText.matchAll(/^alias (\S+) \S+$/gm)].map((m) => m[1]!);
    const moduleNames = new Set(tree.files.map((f) => f.split('/').pop()!.split('.')[0]!.replace(/-/g, '_')));
    const rnd = prng(7);
    const keys = new Set<string>(['crypto-crc32c', 'fs-btrfs', 'char-major-10-200', 'no-such-alias', 'pci:']);
    const wild = patterns.filter((p) => /[*?[]/.test(p));
    const plain = patterns.filter((p) => !/[*?[]/.test(p));
    while (keys.size < 45) {
      const fromWild = rnd() < 0.6;
      const list = fromWild ? wild : plain;
      keys.add(instance(list[Math.floor(rnd() * list.length)]!));
    }
    let compared = 0;
    for (const key of keys) {
      // modprobe -R answers a module name with the module itself: only alias keys are comparable.
      if (moduleNames.has(key.replace(/-/g, '_'))) continue;
      const ours = [
        ...new Set(
          searchIndexWild(tree.indexes['modules.alias.bin']!, normalizeAlias(key) ?? key).map((e) => e.value),
        ),
      ].sort();
      expect(ours, key).toEqual(modprobeResolve(k.root, k.version, key));
      compared++;
    }
    expect(compared).toBeGreaterThan(35);
  });

  it('exact keys of any index are found with their values; damaged files are KMOD_INDEX_BAD', () => {
    const buf = encodeIndex([
      { key: 'abc', value: 'one', priority: 2 },
      { key: 'abd', value: 'two', priority: 1 },
      { key: 'a*', value: 'star', priority: 3 },
    ]);
    expect(searchIndexWild(buf, 'abc').map((e) => e.value)).toEqual(['star', 'one']);
    expect(searchIndexWild(buf, 'ab').map((e) => e.value)).toEqual(['star']);
    expect(searchIndexWild(buf, 'b')).toEqual([]);
    for (const cut of [0, 5, 11, 13, buf.length - 3]) {
      try {
        searchIndexWild(buf.subarray(0, cut), 'abc');
      } catch (e) {
        expect(isUlfsError(e) && e.code).toBe('KMOD_INDEX_BAD');
      }
    }
  });
});
