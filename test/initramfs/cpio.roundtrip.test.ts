import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { filterInitramfs, listInitramfs } from '../../src/initramfs/index.js';
import { chunked, collect, cpioOf, makeTree, run } from './util.js';

const SPEC: Record<string, string> = {
  'bin/sh': 'l:busybox',
  'bin/busybox': 'ELF'.repeat(1000),
  'etc/empty': 'd',
  'etc/a.conf': 'x=1\n',
  'etc/odd name with spaces': 'o',
  'lib/modules/6.1/kernel/a.ko': 'A'.repeat(5001),
  'lib/modules/6.1/kernel/b.ko': 'B'.repeat(3),
  'lib/modules/6.1/modules.dep': 'kernel/a.ko:\nkernel/b.ko:\n',
  'usr/share/x': '',
  'hl/one': 'linked data',
  'hl/two': 'h:hl/one',
  'hl/three': 'h:hl/one',
};

describe('cpio codec round trip against GNU cpio', () => {
  const tree = makeTree(SPEC);
  afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

  for (const format of ['newc', 'crc'] as const) {
    it(`${format}: decode -> encode with nothing filtered is byte-identical, in 1-byte and 7-byte chunks`, async () => {
      const archive = cpioOf(tree, format);
      for (const size of [1, 7, 1 << 20]) {
        const { output, done } = filterInitramfs(chunked(archive, size), { decide: () => 'keep' });
        const out = await collect(output);
        expect(out.equals(archive)).toBe(true);
        const rep = await done;
        expect(rep.removed).toEqual([]);
        expect(rep.segments).toHaveLength(1);
        expect(rep.segments[0]!.changed).toBe(false);
      }
    });

    it(`${format}: list gives the names and sizes cpio -t / -tv gives`, async () => {
      const archive = cpioOf(tree, format);
      const { entries, segments } = await listInitramfs(chunked(archive, 1));
      const names = run('cpio', ['-t', '--quiet'], archive).toString().trim().split('\n');
      expect(entries.map((e) => e.name)).toEqual(names);
      expect(segments).toHaveLength(1);
      expect(segments[0]!.length).toBe(archive.length);
      expect(segments[0]!.entries).toBe(names.length);
      // Sizes against `cpio -tv` (5th column), for regular files and symlinks.
      const tv = run('cpio', ['-tv', '--quiet'], archive).toString().trim().split('\n');
      tv.forEach((line, i) => {
        const cols = line.split(/\s+/);
        if (line.startsWith('-') || line.startsWith('l')) expect(entries[i]!.size).toBe(Number(cols[4]));
      });
    });
  }

  it('withData collects the contents of selected entries', async () => {
    const archive = cpioOf(tree, 'newc');
    const { data } = await listInitramfs(chunked(archive, 3), {
      withData: (e) => e.name.endsWith('modules.dep'),
    });
    expect([...data.keys()]).toEqual(['lib/modules/6.1/modules.dep']);
    expect(data.get('lib/modules/6.1/modules.dep')!.toString()).toBe(SPEC['lib/modules/6.1/modules.dep']);
  });
});
