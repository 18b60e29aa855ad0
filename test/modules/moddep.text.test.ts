/**
 * ModDepText (modules.dep indexed by name, entries made when asked) against the full decoder
 * (decodeModDep), and the planner's paths around it: a name listed twice, comments and empty
 * lines, damaged lines, a listing that does not match the module files.
 */
import { describe, expect, it } from 'vitest';
import {
  ModDepText,
  decodeModDep,
  parseUsageList,
  planModules,
  type ModuleTree,
} from '../../src/modules/index.js';
import { kernelTree } from './tree.js';
import { codeAndMessageOf } from '../helpers/errors.js';

const names = (s: string): ReturnType<typeof parseUsageList> =>
  parseUsageList(s.split(' ').join('\n'), 'list.txt');

describe('ModDepText', () => {
  const { tree, depText } = kernelTree('cloud');
  const dep = tree.indexes['modules.dep']!;

  it('the real file: every entry equals the decoder’s, found by name; the listing matches the files', () => {
    const all = decodeModDep(depText);
    const text = new ModDepText(dep, tree.files);
    expect(text.count).toBe(all.length);
    expect(text.position.size).toBe(all.length);
    expect(text.listsExactly).toBe(true);
    all.forEach((e, i) => {
      expect(text.position.get(e.name)).toBe(i);
      const t = text.named(e.name)!;
      expect([t.path, t.name, t.deps]).toEqual([e.path, e.name, e.deps]);
    });
    expect(text.named('no_such_module')).toBeUndefined();
  });

  it('does not list exactly: a file more, a file less, a listed path that is not a file', () => {
    const f = tree.files;
    expect(new ModDepText(dep, [...f, 'extra/x.ko']).listsExactly).toBe(false);
    expect(new ModDepText(dep, f.slice(1)).listsExactly).toBe(false);
    expect(new ModDepText(dep, [...f.slice(1), 'extra/x.ko']).listsExactly).toBe(false);
    expect(new ModDepText(dep).listsExactly).toBe(false);
  });

  it('comments, empty lines (also first in a 64 KiB piece), a name listed twice (the last line wins), dashes, no final newline', () => {
    // 65,536 bytes of lines, then an empty line: the second 64 KiB piece starts with it.
    const filler =
      Array.from({ length: 655 }, (_, i) =>
        `kernel/f/m${String(i).padStart(4, '0')}.ko:`.padEnd(99, ' '),
      ).join('\n') + '\nkernel/f/x.ko:'.padEnd(36, ' ');
    expect(filler.length + 1).toBe(65536);
    const spaced = new ModDepText(Buffer.from(filler + '\n\nkernel/z.ko:\n' + 'kernel/y.ko:\n'.repeat(10)));
    expect(spaced.count).toBe(667);
    expect(spaced.named('z')!.path).toBe('kernel/z.ko');
    expect(spaced.named('m0654')!.deps).toEqual([]);

    const text = new ModDepText(
      Buffer.from('# c\nkernel/a/foo-x.ko:\n\nkernel/b.ko: kernel/a/foo-x.ko\nupdates/foo_x.ko.xz:\nc:'),
    );
    expect(text.count).toBe(4);
    expect([...text.position]).toEqual([
      ['foo_x', 2],
      ['b', 1],
      ['c', 3],
    ]);
    expect(text.named('foo_x')!.path).toBe('updates/foo_x.ko.xz');
    expect(text.named('b')!.deps).toEqual(['kernel/a/foo-x.ko']);
    expect(text.named('c')!.deps).toEqual([]);
  });

  it('damaged lines: the same errors as the decoder, wherever the line is', () => {
    const long = 'kernel/x.ko: ' + 'kernel/y.ko '.repeat(100_000) + '\n';
    for (const t of [
      'kernel/a.ko:\nno colon here\n',
      ':kernel/a.ko\n',
      'kernel/a.ko:\n'.repeat(3000) + 'bad\n',
      long + 'kernel/z.ko:\n',
    ]) {
      const want = codeAndMessageOf(() => decodeModDep(t));
      expect(want).toMatch(/^MODDEP_BAD_LINE/);
      expect(codeAndMessageOf(() => new ModDepText(Buffer.from(t)))).toBe(want);
    }
    // A line longer than a 64 KiB piece but within the limit is fine.
    const longOk = 'kernel/x.ko: ' + 'kernel/y.ko '.repeat(10_000).trimEnd() + '\n';
    const t = new ModDepText(Buffer.from('kernel/y.ko:\n' + longOk));
    expect(t.count).toBe(2);
    expect(t.named('x')!.deps.length).toBe(10_000);
  });
});

describe('planModules around the modules.dep index', () => {
  it('a name listed twice: the last line is the module, both lines stay in modules.dep', () => {
    const t: ModuleTree = {
      version: 'x',
      files: ['kernel/a/foo-x.ko', 'kernel/b.ko', 'updates/foo_x.ko.xz', 'kernel/c.ko'],
      indexes: {
        'modules.dep': Buffer.from(
          '# comment\nkernel/a/foo-x.ko:\n\nkernel/b.ko: kernel/a/foo-x.ko\nupdates/foo_x.ko.xz:\nkernel/c.ko: kernel/b.ko kernel/a/foo-x.ko\n',
        ),
        'modules.alias': Buffer.from('alias a1 foo_x\nalias b1 b\nalias c1 c\n'),
      },
    };
    const p = planModules({ lists: names('b'), tree: t });
    expect(p.kept).toEqual([
      { module: 'b', path: 'kernel/b.ko', reasons: ['used'] },
      { module: 'foo_x', path: 'updates/foo_x.ko.xz', reasons: ['dependency of b'] },
    ]);
    expect(p.remove).toEqual(['kernel/a/foo-x.ko', 'kernel/c.ko']);
    expect(p.indexes['modules.dep']!.toString()).toBe(
      'kernel/a/foo-x.ko:\nkernel/b.ko: kernel/a/foo-x.ko\nupdates/foo_x.ko.xz:\n',
    );
    expect(p.indexes['modules.alias']!.toString()).toBe('alias a1 foo_x\nalias b1 b\n');
  });

  it('as many lines as files, but one line names a file that is not there: the other file is extra', () => {
    const t: ModuleTree = {
      version: 'x',
      files: ['kernel/a.ko', 'kernel/b.ko', 'kernel/c.ko'],
      indexes: { 'modules.dep': Buffer.from('kernel/a.ko:\nkernel/b.ko: kernel/a.ko\nkernel/d.ko:\n') },
    };
    const p = planModules({ lists: names('b c'), tree: t });
    expect(p.used.resolved).toEqual(['b', 'c']);
    expect(p.kept.map((m) => m.path)).toEqual(['kernel/a.ko', 'kernel/b.ko', 'kernel/c.ko']);
    expect(p.warnings).toEqual(['1 module file(s) are not in modules.dep (stale index?), e.g. kernel/c.ko']);
  });

  it('modules.dep.bin alone: the same keep set and .bin files as with the text', () => {
    const { tree } = kernelTree('cloud');
    const withText = planModules({ lists: names('virtio_net btrfs nfsd'), tree });
    const { 'modules.dep': _, ...binOnly } = tree.indexes;
    const p = planModules({ lists: names('virtio_net btrfs nfsd'), tree: { ...tree, indexes: binOnly } });
    expect(p.kept).toEqual(withText.kept);
    expect(p.remove).toEqual(withText.remove);
    for (const f of Object.keys(p.indexes)) expect(p.indexes[f]!.equals(withText.indexes[f]!), f).toBe(true);
    expect(p.indexes['modules.dep']).toBeUndefined();
  });
});
