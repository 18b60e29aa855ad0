/** The planner's rules (issue #5) on the real cloud tree and on small trees built from it. */
import { describe, expect, it } from 'vitest';
import { isUlfsError } from '../../src/errors.js';
import {
  chooseKernel,
  parseUsageList,
  planModules,
  rewriteIndexes,
  treeModuleNames,
  type ModuleTree,
} from '../../src/modules/index.js';
import { getKernel } from '../fixtures/kernel.js';
import { loadTree, modprobeResolve } from './tree.js';

const k = getKernel('cloud');
const tree = loadTree(k.modulesDir, k.version);
const names = (s: string): ReturnType<typeof parseUsageList> =>
  parseUsageList(s.split(' ').join('\n'), 'list.txt');

function err(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isUlfsError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

describe('kernel choice', () => {
  const cloud = { version: k.version, moduleNames: treeModuleNames(tree) };
  const other = { version: '6.1.0-1-other', moduleNames: new Set(['virtio_net', 'zzz_only_here']) };
  const capture = (v: string): ReturnType<typeof parseUsageList> =>
    parseUsageList(`# ulfs-offline used-modules v1\n# kernel: ${v}\nvirtio_net 1 0 - Live 0x0\n`, 'cap.txt');

  it('list header, else the only kernel, else the most names; --kernel overrides', () => {
    expect(chooseKernel(capture(k.version), [other, cloud]).version).toBe(k.version);
    expect(chooseKernel(names('virtio_net'), [cloud]).reason).toMatch(/only kernel/);
    expect(chooseKernel(names('virtio_net virtio_blk ext4'), [other, cloud]).version).toBe(k.version);
    expect(chooseKernel(names('zzz_only_here'), [other, cloud]).version).toBe(other.version);
    expect(chooseKernel(capture(k.version), [other, cloud], other.version).version).toBe(other.version);
  });

  it('refuses a list captured on another kernel, a tie, an unknown override, no kernel', () => {
    expect(err(() => chooseKernel(capture('5.10.0-9-amd64'), [cloud]))).toBe('LIST_WRONG_KERNEL');
    expect(err(() => chooseKernel(names('virtio_net'), [other, cloud]))).toBe('KERNEL_AMBIGUOUS');
    expect(err(() => chooseKernel(names('virtio_net'), [cloud], '9.9'))).toBe('KERNEL_NOT_FOUND');
    expect(err(() => chooseKernel(names('virtio_net'), []))).toBe('KERNEL_NOT_FOUND');
  });
});

describe('resolution', () => {
  it('reports unknown and builtin names; refuses when fewer than half resolve unless forced', () => {
    const p = planModules({ lists: names('virtio_net virtio_blk unix no_such_mod'), tree });
    expect(p.used.resolved).toEqual(['virtio_net', 'virtio_blk']);
    expect(p.used.builtin).toEqual(['unix']);
    expect(p.used.unknown).toEqual(['no_such_mod']);
    const bad = names('virtio_net nope1 nope2 nope3');
    expect(err(() => planModules({ lists: bad, tree }))).toBe('LIST_UNRESOLVED');
    expect(planModules({ lists: bad, tree, force: true }).used.unknown).toEqual(['nope1', 'nope2', 'nope3']);
  });

  it('--keep by name (with -), glob over names and over relative paths; a pattern matching nothing warns', () => {
    const p = planModules({
      lists: names('virtio_net'),
      tree,
      keep: ['kvm-intel', 'virtio_*', 'kernel/fs/nls/*', 'no_such_*'],
    });
    const kept = new Map(p.kept.map((m) => [m.module, m.reasons]));
    expect(kept.get('kvm_intel')).toContain('user');
    expect(kept.get('kvm')).toContain('dependency of kvm_intel');
    for (const f of tree.files.filter((f) => f.startsWith('kernel/fs/nls/')))
      expect(p.kept.some((m) => m.path === f)).toBe(true);
    for (const f of tree.files.filter((f) => /\/virtio_[^/]*$/.test(f)))
      expect(p.kept.some((m) => m.path === f)).toBe(true);
    expect(p.warnings.join('\n')).toMatch(/no_such_\*/);
  });

  it('softdeps: pre:/post: names (through aliases) are kept, bare names are not (libkmod ignores them)', () => {
    const p = planModules({ lists: names('btrfs vfio cifs'), tree });
    const kept = new Map(p.kept.map((m) => [m.module, m.reasons]));
    expect(kept.get('crc32c_intel')).toContain('softdep of btrfs'); // pre: crypto-crc32c is an alias
    expect(kept.get('vfio_iommu_type1')).toContain('softdep of vfio'); // post:
    expect(p.kept.flatMap((m) => m.reasons).filter((r) => r === 'softdep of cifs')).toEqual([]);
  });

  it('a softdep naming a device alias (pre: pci:..., platform:...) keeps what modprobe -R resolves it to', () => {
    const key = 'pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00';
    const want = modprobeResolve(k.root, k.version, key);
    expect(want.length).toBeGreaterThan(0);
    const t: ModuleTree = {
      ...tree,
      indexes: { ...tree.indexes, 'modules.softdep': Buffer.from(`softdep button pre: ${key}\n`) },
    };
    const p = planModules({ lists: names('button'), tree: t });
    const softOfButton = p.kept.filter((m) => m.reasons.includes('softdep of button')).map((m) => m.module);
    expect(softOfButton.sort()).toEqual(want);
  });

  it('weakdeps (kmod >= 33 trees) are kept and modules.weakdep is filtered', () => {
    const weak: ModuleTree = {
      ...tree,
      indexes: {
        ...tree.indexes,
        'modules.weakdep': Buffer.from(
          '# Weak dependencies extracted from modules themselves.\nweakdep virtio_net virtio_rng\nweakdep e1000 virtio_balloon\n',
        ),
      },
    };
    const p = planModules({ lists: names('virtio_net'), tree: weak });
    expect(p.kept.find((m) => m.module === 'virtio_rng')?.reasons).toEqual(['weakdep of virtio_net']);
    expect(p.indexes['modules.weakdep']!.toString()).toBe(
      '# Weak dependencies extracted from modules themselves.\nweakdep virtio_net virtio_rng\n',
    );
  });

  it('removes every other .ko* file, also under updates/ and extra/; a used module only there is kept (with a warning)', () => {
    const t: ModuleTree = { ...tree, files: [...tree.files, 'updates/dkms/foo-bar.ko.xz', 'extra/baz.ko'] };
    const p = planModules({ lists: names('virtio_net foo_bar'), tree: t });
    expect(p.remove).toContain('extra/baz.ko');
    expect(p.kept.find((m) => m.module === 'foo_bar')?.path).toBe('updates/dkms/foo-bar.ko.xz');
    expect(p.warnings.join('\n')).toMatch(/not in modules\.dep/);
    expect(p.remove.length + p.kept.length).toBe(t.files.length);
  });

  it('devname: the header goes when no devname module is left', () => {
    const p = planModules({ lists: names('virtio_net'), tree });
    expect(p.indexes['modules.devname']!.length).toBe(0);
    const q = planModules({ lists: names('fuse virtio_net'), tree });
    expect(q.indexes['modules.devname']!.toString()).toMatch(
      /^# Device nodes to trigger on-demand module loading.\nfuse fuse c10:229\n$/,
    );
  });
});

describe('bad module trees', () => {
  it('MODDEP_MISSING when a kept module depends on a file that is not there', () => {
    const dep = tree.indexes['modules.dep']!.toString('latin1');
    const line = dep.split('\n').find((l) => l.startsWith('kernel/drivers/net/virtio_net.ko:'))!;
    const missing = line.split(' ')[1]!;
    const t: ModuleTree = { ...tree, files: tree.files.filter((f) => f !== missing) };
    expect(err(() => planModules({ lists: names('virtio_net'), tree: t }))).toBe('MODDEP_MISSING');
    expect(err(() => rewriteIndexes(tree.indexes, new Set(['virtio_net'])))).toBe('MODDEP_MISSING');
  });

  it('a cyclic modules.dep ends in MODDEP_CYCLE, fast', () => {
    const dep =
      'kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko kernel/a.ko\nkernel/c.ko: kernel/a.ko kernel/b.ko\nkernel/d.ko:\n';
    const t: ModuleTree = {
      version: 'x',
      files: ['kernel/a.ko', 'kernel/b.ko', 'kernel/c.ko', 'kernel/d.ko'],
      indexes: { 'modules.dep': Buffer.from(dep), 'modules.dep.bin': Buffer.alloc(0) },
    };
    const t0 = performance.now();
    expect(err(() => planModules({ lists: names('a d'), tree: t }))).toBe('MODDEP_CYCLE');
    expect(
      err(() =>
        planModules({
          lists: names('a'),
          tree: { ...t, indexes: { 'modules.dep': Buffer.from('kernel/a.ko: kernel/a.ko\n') } },
        }),
      ),
    ).toBe('MODDEP_CYCLE');
    expect(performance.now() - t0).toBeLessThan(1000);
    // Without the cycle in the kept set the plan is fine.
    expect(planModules({ lists: names('d'), tree: t }).kept.map((m) => m.module)).toEqual(['d']);
  });

  it('a damaged modules.dep line is MODDEP_BAD_LINE', () => {
    const t: ModuleTree = {
      version: 'x',
      files: ['kernel/a.ko'],
      indexes: { 'modules.dep': Buffer.from('kernel/a.ko:\nno colon here\n') },
    };
    expect(err(() => planModules({ lists: names('a'), tree: t }))).toBe('MODDEP_BAD_LINE');
  });
});

describe('rewriteIndexes for a tree that has only .bin files (initramfs)', () => {
  it('rebuilds each .bin from its own decoded entries, the same bytes as from the text files', () => {
    const keep = new Set(
      planModules({ lists: names('virtio_net virtio_blk btrfs nfsd'), tree }).kept.map((m) => m.module),
    );
    const full = rewriteIndexes(tree.indexes, keep);
    const binsOnly: Record<string, Buffer> = {};
    for (const f of ['modules.dep.bin', 'modules.alias.bin', 'modules.symbols.bin', 'modules.softdep'])
      binsOnly[f] = tree.indexes[f]!;
    const out = rewriteIndexes(binsOnly, keep);
    expect(Object.keys(out).sort()).toEqual([
      'modules.alias.bin',
      'modules.dep.bin',
      'modules.softdep',
      'modules.symbols.bin',
    ]);
    for (const f of Object.keys(out)) expect(out[f]!.equals(full[f]!), f).toBe(true);
  });
});
