import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  mergeUsageLists,
  normalizeModuleName,
  parseUsageList,
  decodeModDep,
} from '../../src/modules/index.js';
import { getKernel } from '../fixtures/kernel.js';
import { loadTree } from './tree.js';
import { codeAndMessageOf } from '../helpers/errors.js';

const k = getKernel('cloud');
const tree = loadTree(k.modulesDir, k.version);
const depEntries = decodeModDep(tree.indexes['modules.dep']!.toString('latin1'));
// A spread of real module names from the tree (every 37th), including ones whose file name has '-'.
const sample = depEntries.filter((_, i) => i % 37 === 0).map((e) => e.path);
const dashed = depEntries
  .map((e) => e.path)
  .filter((p) => p.split('/').pop()!.includes('-'))
  .slice(0, 5);
const paths = [...sample, ...dashed];
const names = paths.map((p) => normalizeModuleName(p));

const procLine = (n: string, i: number): string =>
  `${n} ${16384 + i * 4096} ${i % 3} - Live 0xffffffffc0${(i * 4096).toString(16).padStart(6, '0')}`;

describe('usage lists: every format', () => {
  it('modinfo -n output (oracle: modinfo on the real tree), as /lib, /usr/lib, compressed, with (builtin)', () => {
    const asked = [...names, 'unix', 'ext4'];
    const out = execFileSync('modinfo', ['-b', k.root, '-k', k.version, '-n', ...asked], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH}` },
    });
    const builtinCount = out.split('\n').filter((l) => l === '(builtin)').length;
    expect(builtinCount).toBeGreaterThan(0);
    const direct = parseUsageList(out, 'modinfo.txt');
    expect(direct.formats['modinfo.txt']).toBe('paths');
    expect(new Set(direct.names)).toEqual(new Set(names));
    expect(direct.builtinLines).toBe(builtinCount);
    expect(direct.pathKernels).toEqual([k.version]);
    const asLib = out.split(k.root).join('');
    const asUsr = out.split(k.root).join('/usr');
    const zst = out.replace(/\.ko$/gm, '.ko.zst');
    const xzCrlf = out.replace(/\.ko$/gm, '.ko.xz').replace(/\n/g, '\r\n');
    for (const [text, name] of [
      [asLib, 'lib.txt'],
      [asUsr, 'usr.txt'],
      [zst, 'zst.txt'],
      [xzCrlf, 'crlf.txt'],
    ] as const) {
      const l = parseUsageList(text, name);
      expect(l.names).toEqual(direct.names);
      expect(l.pathKernels).toEqual([k.version]);
    }
  });

  it('/proc/modules, lsmod (header), capture format, plain names with comments, CRLF and trailing blanks', () => {
    const proc = names.map(procLine).join('\n') + '\n';
    const p = parseUsageList(proc, 'proc.txt');
    expect(p.formats['proc.txt']).toBe('proc');
    expect(p.names).toEqual(names);

    const lsmod = [
      'Module                  Size  Used by',
      ...names.map(
        (n, i) => `${n.padEnd(19)} ${String(16384 + i).padStart(8)}  ${i % 2}${i % 2 ? ' ' + names[0] : ''}`,
      ),
    ].join('\n');
    const l = parseUsageList(lsmod, 'lsmod.txt');
    expect(l.formats['lsmod.txt']).toBe('lsmod');
    expect(l.names).toEqual(names);

    const capture = `# ulfs-offline used-modules v1\n# kernel: ${k.version}\n${proc}`;
    const c = parseUsageList(capture, 'capture.txt');
    expect(c.formats['capture.txt']).toBe('capture');
    expect(c.kernels).toEqual([k.version]);
    expect(c.names).toEqual(names);

    // File names as users write them: '-' for '_', .ko suffixes, comments, CRLF, trailing blanks.
    const plain = [
      '# my modules',
      '',
      ...paths.map((p, i) => {
        const base = p.split('/').pop()!;
        return i % 3 === 0
          ? `${base}   `
          : i % 3 === 1
            ? `${base.replace(/\.ko$/, '')}\t# why`
            : normalizeModuleName(base);
      }),
    ].join('\r\n');
    const n = parseUsageList(plain, 'names.txt');
    expect(n.formats['names.txt']).toBe('names');
    expect(n.names).toEqual(names);
    expect(n.where[names[1]!]).toBe('names.txt:4');
  });

  it('a module file named with - maps to its _ name', () => {
    for (const p of dashed)
      expect(normalizeModuleName(p)).toBe(
        p
          .split('/')
          .pop()!
          .replace(/\.ko.*$/, '')
          .replace(/-/g, '_'),
      );
    expect(parseUsageList('kvm-intel\n', 'x').names).toEqual(['kvm_intel']);
  });

  it('merges lists as a union, first sighting wins, kernels collected', () => {
    const a = parseUsageList(names.slice(0, 5).join('\n'), 'a.txt');
    const b = parseUsageList(
      `# ulfs-offline used-modules v1\n# kernel: ${k.version}\n${names.slice(3, 9).map(procLine).join('\n')}`,
      'b.txt',
    );
    const m = mergeUsageLists([a, b]);
    expect(m.names).toEqual(names.slice(0, 9));
    expect(m.sources).toEqual(['a.txt', 'b.txt']);
    expect(m.where[names[4]!]).toBe('a.txt:5');
    expect(m.where[names[6]!]).toBe('b.txt:6');
    expect(m.kernels).toEqual([k.version]);
  });
});

describe('usage lists: bad input', () => {
  it('a line that fits no format names file and line', () => {
    expect(codeAndMessageOf(() => parseUsageList('virtio_net\nthis is not a module\n', 'l.txt'))).toMatch(
      /^LIST_BAD_LINE: l\.txt:2:/,
    );
    expect(codeAndMessageOf(() => parseUsageList(`${procLine('a', 1)}\nvirtio_net\n`, 'p.txt'))).toMatch(
      /^LIST_BAD_LINE: p\.txt:2:/,
    );
    expect(
      codeAndMessageOf(() => parseUsageList('# ulfs-offline used-modules v1\nfoo 1 0 - Live 0x0\n', 'c.txt')),
    ).toMatch(/^LIST_BAD_LINE: c\.txt:/);
  });

  it('binary garbage is LIST_BAD_LINE', () => {
    const garbage = randomBytes(4096);
    garbage[0] = 0; // at least one NUL
    expect(codeAndMessageOf(() => parseUsageList(garbage, 'g.bin'))).toMatch(/^LIST_BAD_LINE: g\.bin:1:/);
    expect(
      codeAndMessageOf(() => parseUsageList(Buffer.concat([Buffer.from('virtio_net\n'), garbage]), 'h.bin')),
    ).toMatch(/^LIST_BAD_LINE: h\.bin:2:/);
  });

  it('a 100 MB list is refused fast, before it is decoded', () => {
    const big = Buffer.alloc(100 * 1024 * 1024, 0x61);
    const t = performance.now();
    expect(codeAndMessageOf(() => parseUsageList(big, 'big.txt'))).toMatch(/^LIST_TOO_LARGE/);
    expect(performance.now() - t).toBeLessThan(50);
  });

  it('only comments and blank lines is LIST_EMPTY', () => {
    expect(codeAndMessageOf(() => parseUsageList('# nothing\n\n   \r\n', 'e.txt'))).toMatch(/^LIST_EMPTY/);
    expect(codeAndMessageOf(() => parseUsageList('', 'e.txt'))).toMatch(/^LIST_EMPTY/);
  });
});
