/**
 * prune end to end on the committed sample image (synthetic modules, real depmod indexes), judged by
 * the native tools: e2fsck, zerofree -n, debugfs, GNU cpio, gzip and depmod -b on the pruned trees.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { SAMPLE_USED, fileSha, listFiles, rdump, sh, tempDir, unpackSample } from '../helpers/images.js';
import { e2fsckClean } from '../fixtures/ext-images.js';

const MOD_RE = /\.ko(\.(gz|xz|zst))?$/;
const DEPMOD_OUTPUTS = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.softdep',
  'modules.devname',
  'modules.builtin.bin',
];

let dir: string;
beforeAll(() => {
  dir = tempDir('ulfs-prune-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs depmod -b on a copy of a module tree and returns the files it wrote. */
function depmodOracle(tree: string, version: string, work: string): Record<string, Buffer> {
  const base = path.join(work, 'depmod-root');
  const vdir = path.join(base, 'lib/modules', version);
  fs.rmSync(base, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(vdir), { recursive: true });
  fs.cpSync(tree, vdir, { recursive: true });
  for (const f of DEPMOD_OUTPUTS) fs.rmSync(path.join(vdir, f), { force: true });
  sh('depmod', ['-b', base, version]);
  const out: Record<string, Buffer> = {};
  for (const f of DEPMOD_OUTPUTS)
    if (fs.existsSync(path.join(vdir, f))) out[f] = fs.readFileSync(path.join(vdir, f));
  return out;
}

function extractInitramfs(file: string, dest: string): void {
  fs.mkdirSync(dest, { recursive: true });
  const cpio = path.join(dest, '..', path.basename(dest) + '.cpio');
  fs.writeFileSync(cpio, sh('bash', ['-c', `gzip -dc '${file}' | base64 -w0`]), 'base64');
  sh('bash', ['-c', `cd '${dest}' && cpio -idm --quiet --no-absolute-filenames < '${cpio}'`]);
}

describe('prune on the sample image', () => {
  let img: ReturnType<typeof unpackSample>;
  let before: string;
  let report: any;

  beforeAll(async () => {
    img = unpackSample(fs.mkdtempSync(path.join(dir, 's-')));
    before = path.join(dir, 'before');
    rdump(img.spec, '/usr', before);
    sh('debugfs', ['-R', `dump /boot/initrd.img-${img.version} ${dir}/initrd-before`, img.spec]);
    const r = await cli('prune', '--used', SAMPLE_USED, '--json', img.path);
    expect(r.code, r.stderr).toBe(0);
    report = JSON.parse(r.stdout);
  });

  it('leaves an e2fsck-clean filesystem with nothing left for zerofree', () => {
    const c = e2fsckClean(img.spec);
    expect(c.ok, c.output).toBe(true);
    const z = sh('zerofree', ['-n', '-v', img.spec]);
    expect(z.trim().split('\n').pop()).toMatch(/^0\//);
    expect(report.check.clean).toBe(true);
    expect(fs.existsSync(img.path + '.ulfs-undo')).toBe(false);
  });

  it('keeps exactly the keep set plus every non-module file unchanged in the root fs', () => {
    const after = path.join(dir, 'after');
    rdump(img.spec, '/usr', after);
    const keptPaths = new Set(
      report.kept.map((k: { path: string }) => `usr/lib/modules/${img.version}/${k.path}`),
    );
    expect(keptPaths.size).toBe(15);
    const afterFiles = listFiles(after);
    expect(afterFiles.filter((f) => MOD_RE.test(f)).sort()).toEqual([...keptPaths].sort());
    // Every non-module, non-index file is byte-identical.
    for (const f of listFiles(before, (f) => !MOD_RE.test(f) && !/\/modules\.[^/]+$/.test(f))) {
      expect(fileSha(path.join(after, f)), f).toBe(fileSha(path.join(before, f)));
    }
    // Kept modules are byte-identical too.
    for (const k of keptPaths) {
      const rel = k as string;
      expect(fileSha(path.join(after, rel))).toBe(fileSha(path.join(before, rel)));
    }
    // The report's counts match what really went.
    const removed = listFiles(before, (f) => MOD_RE.test(f)).length - keptPaths.size;
    expect(report.rootfs.removedFiles).toBe(removed);
  });

  it('writes module indexes equal to depmod -b on the pruned root tree', () => {
    const after = path.join(dir, 'after2');
    rdump(img.spec, '/usr', after);
    const tree = path.join(after, 'usr/lib/modules', img.version);
    const oracle = depmodOracle(tree, img.version, dir);
    expect(Object.keys(oracle).length).toBeGreaterThanOrEqual(7);
    for (const [f, data] of Object.entries(oracle)) {
      expect(fs.readFileSync(path.join(tree, f)).equals(data), f).toBe(true);
    }
    // modules.order is filtered to the kept modules, in the original order.
    const order = fs.readFileSync(path.join(tree, 'modules.order'), 'utf8').trim().split('\n');
    const orig = fs
      .readFileSync(path.join(before, 'usr/lib/modules', img.version, 'modules.order'), 'utf8')
      .trim()
      .split('\n');
    expect(order).toEqual(orig.filter((l) => report.kept.some((k: { path: string }) => k.path === l)));
  });

  it('rewrites the initramfs: valid gzip newc, kept modules only, other entries unchanged, depmod indexes', () => {
    const out = path.join(dir, 'initrd-after');
    sh('debugfs', ['-R', `dump /boot/initrd.img-${img.version} ${out}`, img.spec]);
    sh('gzip', ['-t', out]);
    const listed = sh('lsinitramfs', [out]);
    expect(listed).toMatch(/usr\/lib\/modules\/.*virtio_net\.ko/);
    const b = path.join(dir, 'ir-before');
    const a = path.join(dir, 'ir-after');
    extractInitramfs(path.join(dir, 'initrd-before'), b);
    extractInitramfs(out, a);
    const keep = new Set(report.kept.map((k: { module: string }) => k.module));
    const modsBefore = listFiles(b, (f) => MOD_RE.test(f));
    const expected = modsBefore.filter((f) =>
      keep.has(path.basename(f).replace(MOD_RE, '').replace(/-/g, '_')),
    );
    expect(listFiles(a, (f) => MOD_RE.test(f))).toEqual(expected);
    expect(report.initramfs[0]).toMatchObject({
      modulesBefore: modsBefore.length,
      modulesAfter: expected.length,
      compression: 'gzip',
    });
    for (const f of listFiles(b, (f) => !MOD_RE.test(f) && !/\/modules\.[^/]+$/.test(f))) {
      expect(fileSha(path.join(a, f)), f).toBe(fileSha(path.join(b, f)));
    }
    const tree = path.join(a, 'usr/lib/modules', img.version);
    const oracle = depmodOracle(tree, img.version, path.join(dir, 'ir-oracle'));
    for (const [f, data] of Object.entries(oracle)) {
      expect(fs.readFileSync(path.join(tree, f)).equals(data), `initramfs ${f}`).toBe(true);
    }
  });
});

describe('prune refusals and non-destructive modes', () => {
  it('--dry-run changes nothing', async () => {
    const img = unpackSample(fs.mkdtempSync(path.join(dir, 'd-')));
    const sha = fileSha(img.path);
    const r = await cli('prune', '--used', SAMPLE_USED, '--dry-run', img.path);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dry run: would remove 33 module files/);
    expect(fileSha(img.path)).toBe(sha);
  });

  it('--output leaves the input untouched and writes a pruned sparse copy', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'o-'));
    const img = unpackSample(d);
    const sha = fileSha(img.path);
    const copy = path.join(d, 'copy.img');
    const r = await cli('prune', '--used', SAMPLE_USED, '--output', copy, '--quiet', img.path);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(fileSha(img.path)).toBe(sha);
    expect(e2fsckClean(`${copy}?offset=${img.offset}`).ok).toBe(true);
    expect(
      sh('debugfs', ['-R', `ls /usr/lib/modules/${img.version}/kernel/gpu`, `${copy}?offset=${img.offset}`]),
    ).not.toMatch(/drm/);
  });

  const refusals: [string, (d: string, img: string) => string[], string, number][] = [
    ['an empty list', (d) => [write(d, 'empty.txt', '# nothing\n\n')], 'LIST_EMPTY', 2],
    [
      'a garbage list',
      (d) => [write(d, 'bin.txt', Buffer.from([0, 1, 2, 255, 10, 0xfe]))],
      'LIST_BAD_LINE',
      3,
    ],
    [
      'a list from another kernel',
      (d) => [
        write(
          d,
          'other.txt',
          '# ulfs-offline used-modules v1\n# kernel: 5.10.0-99-other\nvirtio_net 1 0 - Live 0x0\n',
        ),
      ],
      'LIST_WRONG_KERNEL',
      5,
    ],
    [
      'names that do not resolve',
      (d) => [write(d, 'names.txt', 'nosuch_a\nnosuch_b\nnosuch_c\nvirtio\n')],
      'LIST_UNRESOLVED',
      5,
    ],
  ];
  function write(d: string, name: string, data: string | Buffer): string {
    fs.writeFileSync(path.join(d, name), data);
    return path.join(d, name);
  }
  for (const [what, make, code, exit] of refusals) {
    it(`refuses ${what} (${code}) and leaves the image unchanged`, async () => {
      const d = fs.mkdtempSync(path.join(dir, 'r-'));
      const img = unpackSample(d);
      const sha = fileSha(img.path);
      const lists = make(d, img.path);
      const r = await cli('prune', ...lists.flatMap((l) => ['--used', l]), img.path);
      expect(r.stderr).toMatch(new RegExp(`^ulfs-offline: error ${code}: `));
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.code).toBe(exit);
      expect(fileSha(img.path)).toBe(sha);
      expect(fs.existsSync(img.path + '.ulfs-undo')).toBe(false);
    });
  }

  it('refuses a dirty journal, naming the fix, image unchanged', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'j-'));
    const img = unpackSample(d);
    sh('debugfs', ['-w', '-f', '-', img.spec], 'jo\njw -b 3000 /dev/null\njc\n');
    const sha = fileSha(img.path);
    const r = await cli('prune', '--used', SAMPLE_USED, img.path);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/EXT_JOURNAL_DIRTY/);
    expect(fileSha(img.path)).toBe(sha);
  });

  it('refuses while an undo log is present', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'u-'));
    const img = unpackSample(d);
    fs.writeFileSync(img.path + '.ulfs-undo', 'x');
    const sha = fileSha(img.path);
    const r = await cli('prune', '--used', SAMPLE_USED, img.path);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/UNDO_PRESENT.*ulfs-offline undo/);
    expect(fileSha(img.path)).toBe(sha);
  });
});
