/**
 * prune end to end on the committed sample image (synthetic modules, real depmod indexes), judged by
 * the native tools: e2fsck, zerofree -n, debugfs, GNU cpio, gzip and depmod -b on the pruned trees.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { TOOL_ENV } from '../fixtures/initramfs-images.js';
import { cli } from '../helpers/cli.js';
import {
  SAMPLE_USED,
  fileBlocks,
  fileSha,
  journalLayout,
  rdump,
  sh,
  tempDir,
  unpackSample,
} from '../helpers/images.js';
import { e2fsckClean } from '../fixtures/ext-images.js';
import { prune } from '../../src/prune/prune.js';
import { expectPrunedInitramfs, expectPrunedRoot } from '../helpers/prune-oracle.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('ulfs-prune-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A fresh copy of the sample, with its initramfs extracted to `tree` (to rebuild it differently). */
function sampleWithInitramfsTree(tag: string) {
  const d = fs.mkdtempSync(path.join(dir, `${tag}-`));
  const img = unpackSample(d);
  const initrd = `/boot/initrd.img-${img.version}`;
  const tree = path.join(d, 'tree');
  fs.mkdirSync(tree);
  sh('debugfs', ['-R', `dump ${initrd} ${d}/orig.gz`, img.spec]);
  execFileSync('sh', ['-c', `gzip -dc '${d}/orig.gz' | cpio -idm --quiet`], { cwd: tree, env: TOOL_ENV });
  return { d, img, initrd, tree };
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

  it('leaves e2fsck-clean fs, nothing for zerofree, the keep set, unchanged other files, depmod indexes', () => {
    expect(report.check.clean).toBe(true);
    expect(fs.existsSync(img.path + '.ulfs-undo')).toBe(false);
    expect(report.kept).toHaveLength(15);
    expectPrunedRoot({
      specs: [img.spec],
      rootSpec: img.spec,
      modulesDir: `/usr/lib/modules/${img.version}`,
      version: img.version,
      beforeTree: path.join(before, 'usr/lib/modules', img.version),
      report,
      work: fs.mkdtempSync(path.join(dir, 'w-')),
    });
  });

  it('filters modules.order to the kept modules, in the original order', () => {
    const order = sh('debugfs', ['-R', `cat /usr/lib/modules/${img.version}/modules.order`, img.spec])
      .trim()
      .split('\n');
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
    const counts = expectPrunedInitramfs(
      path.join(dir, 'initrd-before'),
      out,
      report.kept,
      img.version,
      fs.mkdtempSync(path.join(dir, 'w-')),
    );
    expect(report.initramfs[0]).toMatchObject({ ...counts, compression: 'gzip' });
    expect(counts.modulesAfter).toBeLessThan(counts.modulesBefore);
  });
});

describe('prune rewriting an initramfs in place while reading it', () => {
  it('holds back output that runs ahead of the input (uncompressed output of a gzip input)', async () => {
    // The sample's initramfs, rebuilt so that 7 MiB of compressible text (kept) comes first and a
    // dropped module carries 12 MiB of random bytes: written uncompressed, the output reaches 7 MiB
    // while a few KiB of the gzip input have been read. Writing it straight over the old file's
    // blocks would destroy input not yet read; the result must still be exactly the filtered archive.
    const { d, img, initrd, tree } = sampleWithInitramfsTree('ahead');
    fs.writeFileSync(path.join(tree, 'big.txt'), 'a line of text that compresses well\n'.repeat(200_000));
    const xfs = `usr/lib/modules/${img.version}/kernel/fs/xfs.ko`;
    fs.writeFileSync(path.join(tree, xfs), crypto.randomBytes(12 << 20));
    const names = execFileSync('find', ['.', '-mindepth', '1'], { cwd: tree, encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((n) => n.slice(2))
      .filter((n) => n !== 'big.txt');
    const rebuilt = path.join(d, 'rebuilt.gz');
    execFileSync('sh', ['-c', `cpio -o -H newc --quiet | gzip -9 -n > '${rebuilt}'`], {
      cwd: tree,
      env: TOOL_ENV,
      input: ['big.txt', ...names].join('\n') + '\n',
    });
    sh('debugfs', ['-w', '-R', `rm ${initrd}`, img.spec]);
    sh('debugfs', ['-w', '-R', `write ${rebuilt} ${initrd}`, img.spec]);
    expect(e2fsckClean(img.spec).ok).toBe(true);

    const r = await cli(
      'prune',
      '--used',
      SAMPLE_USED,
      '--initramfs-compression',
      'none',
      '--json',
      img.path,
    );
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.kept.map((k: { module: string }) => k.module)).not.toContain('xfs');
    expect(e2fsckClean(img.spec).ok).toBe(true);
    const after = path.join(d, 'after');
    sh('debugfs', ['-R', `dump ${initrd} ${after}`, img.spec]);
    expect(fs.readFileSync(after).subarray(0, 6).toString('latin1')).toBe('070701');
    // unmkinitramfs (the oracle's extractor) reads a lone uncompressed archive only as an early cpio
    // and fails on it; gzip it for the comparison.
    execFileSync('sh', ['-c', `gzip -c '${after}' > '${after}.gz'`], { env: TOOL_ENV });
    const counts = expectPrunedInitramfs(rebuilt, `${after}.gz`, report.kept, img.version, path.join(d, 'w'));
    expect(report.initramfs[0]).toMatchObject({ ...counts, compression: 'none' });

    // The root fs copies of the modules the archive kept were moved right before it, in archive
    // order, each in one run, the last ending where the archive starts (for the image's xz).
    const marker = `modules/${img.version}/`;
    const mods = execFileSync('cpio', ['-it', '--quiet'], { input: fs.readFileSync(after), env: TOOL_ENV })
      .toString()
      .split('\n')
      .filter((n) => n.includes(marker) && /\.ko/.test(n));
    expect(mods.length).toBeGreaterThan(0);
    const blocks = (p: string): number[] => fileBlocks(img.spec, p);
    const run = mods.flatMap((n) =>
      blocks(`/usr/lib/modules/${img.version}/${n.slice(n.indexOf(marker) + marker.length)}`),
    );
    expect(run).toEqual(run.map((_, k) => run[0]! + k));
    expect(blocks(initrd)[0]).toBe(run[run.length - 1]! + 1);
  });
});

describe('prune reads the initramfs once, whatever its order', () => {
  /** The sample with its initramfs rebuilt (gzip -9) from the same tree, in the order `order` gives. */
  function rebuilt(tag: string, order: (sorted: string[], version: string) => string[], cut = 0) {
    const { d, img, initrd, tree } = sampleWithInitramfsTree(tag);
    const sorted = execFileSync('find', ['.', '-mindepth', '1'], { cwd: tree, encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((n) => n.slice(2))
      .sort();
    const file = path.join(d, 'rebuilt.gz');
    execFileSync('sh', ['-c', `cpio -o -H newc --quiet | gzip -9 -n > '${file}'`], {
      cwd: tree,
      env: TOOL_ENV,
      input: order(sorted, img.version).join('\n') + '\n',
    });
    if (cut) fs.truncateSync(file, fs.statSync(file).size - cut);
    sh('debugfs', ['-w', '-R', `rm ${initrd}`, img.spec]);
    sh('debugfs', ['-w', '-R', `write ${file} ${initrd}`, img.spec]);
    expect(e2fsckClean(img.spec).ok).toBe(true);
    return { d, img, initrd, file };
  }
  const isIndex = (n: string): boolean => /\/modules\/[^/]+\/modules\.[^/]+$/.test(n);

  async function prunedAsExpected(r: ReturnType<typeof rebuilt>): Promise<any> {
    const res = await cli('prune', '--used', SAMPLE_USED, '--json', r.img.path);
    expect(res.code, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(e2fsckClean(r.img.spec).ok).toBe(true);
    const after = path.join(r.d, 'after');
    sh('debugfs', ['-R', `dump ${r.initrd} ${after}`, r.img.spec]);
    const counts = expectPrunedInitramfs(r.file, after, report.kept, r.img.version, path.join(r.d, 'w'));
    expect(report.initramfs[0]).toMatchObject({ ...counts, compression: 'gzip' });
    expect(counts.modulesAfter).toBeLessThan(counts.modulesBefore);
    return report;
  }

  it('index files before the modules of their tree (find order can do this): held until the tree ends', async () => {
    const r = rebuilt('first', (names, v) => {
      const rest = names.filter((n) => !isIndex(n));
      const at = rest.indexOf(`usr/lib/modules/${v}`) + 1;
      expect(at).toBeGreaterThan(0);
      return [...rest.slice(0, at), ...names.filter(isIndex), ...rest.slice(at)];
    });
    const report = await prunedAsExpected(r);
    expect(report.warnings.join('\n')).not.toMatch(/read twice/);
  });

  // A kept module after its tree ended (GNU cpio writes deferred hard links at the end): one a kept
  // module depends on (the indexes cannot be computed without it), and a leaf (they could, wrongly).
  const lateCases: [string, RegExp][] = [
    ['kernel/virtio/virtio.ko', /\(.*modules\.alias could not be rewritten .*virtio_ring.*\)/],
    ['kernel/net/virtio_net.ko', /\(.*virtio_net\.ko comes after the index files of its tree\)/],
  ];
  for (const [module, reason] of lateCases) {
    it(`a kept module after its tree ended (${module}): image restored, archive listed, pruned right`, async () => {
      const r = rebuilt('late', (names, v) => {
        const m = names.find((n) => n.endsWith(`/modules/${v}/${module}`))!;
        expect(m).toBeDefined();
        // After an entry outside the module tree, so that the tree has ended when it comes.
        return [...names.filter((n) => n !== m && n !== 'init'), 'init', m];
      });
      const report = await prunedAsExpected(r);
      const warnings = report.warnings.join('\n');
      expect(warnings).toMatch(
        /initrd\.img-.*: its module index files could not be decided while it streamed/,
      );
      expect(warnings).toMatch(reason);
      expect(warnings).toMatch(/so it was read twice/);
      expect(fs.existsSync(r.img.path + '.ulfs-undo')).toBe(false);
    });
  }

  it('a truncated initramfs, found while rewriting it: one-line typed error, image unchanged', async () => {
    const r = rebuilt('cut', (names) => names, 2000);
    const sha = fileSha(r.img.path);
    const res = await cli('prune', '--used', SAMPLE_USED, r.img.path);
    expect(res.stderr).toMatch(
      /^ulfs-offline: error COMPRESS_TRUNCATED: \/boot\/initrd\.img-.*left unchanged/,
    );
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.code).toBe(3);
    expect(fileSha(r.img.path)).toBe(sha);
    expect(fs.existsSync(r.img.path + '.ulfs-undo')).toBe(false);
  });
});

describe('prune leaves an initramfs with nothing to drop alone', () => {
  it('keeping every module: the initramfs file is not rewritten (same bytes, same ctime)', async () => {
    const img = unpackSample(fs.mkdtempSync(path.join(dir, 'all-')));
    const initrd = `/boot/initrd.img-${img.version}`;
    const stat = (): string => sh('debugfs', ['-R', `stat ${initrd}`, img.spec]).match(/ctime: .*/)![0];
    const dump = (to: string): Buffer => {
      sh('debugfs', ['-R', `dump ${initrd} ${to}`, img.spec]);
      return fs.readFileSync(to);
    };
    const before = dump(path.join(dir, 'all-before'));
    const ctime = stat();
    const r = await cli('prune', '--used', SAMPLE_USED, '--keep', '*', '--json', img.path);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.initramfs[0]).toMatchObject({
      sizeBefore: before.length,
      sizeAfter: before.length,
      modulesAfter: report.initramfs[0].modulesBefore,
    });
    expect(report.durations.initramfs).toBeUndefined();
    expect(dump(path.join(dir, 'all-after')).equals(before)).toBe(true);
    expect(stat()).toBe(ctime);
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

  it('counts the bytes it removes alike in a dry run (from the inodes) and a real one (as it removes)', async () => {
    const img = unpackSample(fs.mkdtempSync(path.join(dir, 'b-')));
    const used = [{ name: SAMPLE_USED, text: fs.readFileSync(SAMPLE_USED) }];
    const dry = await prune(img.path, { used, dryRun: true });
    // Independently: the sizes debugfs reports for the files the plan lists.
    let sum = 0;
    for (const f of dry.plan.rootfs.files) {
      const st = sh('debugfs', ['-R', `stat ${f}`, `${img.path}?offset=${img.offset}`]);
      sum += Number(/Size: (\d+)/.exec(st)![1]);
    }
    expect(dry.plan.rootfs.removeBytes).toBe(sum);
    expect(sum).toBeGreaterThan(0);
    const real = await prune(img.path, { used });
    expect(real.plan.rootfs.removeBytes).toBe(dry.plan.rootfs.removeBytes);
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

  it('--output makes no copy when the plan fails, and removes it when applying fails', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'of-'));
    const img = unpackSample(d);
    const copy = path.join(d, 'copy.img');
    const bad = path.join(d, 'bad.txt');
    fs.writeFileSync(bad, 'nosuch_a\nnosuch_b\nnosuch_c\n');
    const r1 = await cli('prune', '--used', bad, '--output', copy, img.path);
    expect(r1.stderr).toMatch(/LIST_UNRESOLVED/);
    expect(fs.existsSync(copy)).toBe(false);
    // A dirty journal is found only when applying (the plan reads fine): the copy goes again.
    sh('debugfs', ['-w', '-f', '-', img.spec], 'jo\njw -b 3000 /dev/null\njc\n');
    const sha = fileSha(img.path);
    const r2 = await cli('prune', '--used', SAMPLE_USED, '--output', copy, img.path);
    expect(r2.stderr).toMatch(/EXT_JOURNAL_DIRTY/);
    expect(r2.code).toBe(5);
    expect(fs.existsSync(copy)).toBe(false);
    expect(fs.existsSync(copy + '.ulfs-undo')).toBe(false);
    expect(fileSha(img.path)).toBe(sha);
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

  it('refuses an initramfs that would not fit (PRUNE_WONT_FIT), found while writing: image restored', async () => {
    // Keeping every module and writing the initramfs uncompressed needs more than the gzip file had;
    // the rewrite streams, so this is found after the root fs and part of the initramfs were written.
    const d = fs.mkdtempSync(path.join(dir, 'f-'));
    const img = unpackSample(d);
    const sha = fileSha(img.path);
    const r = await cli(
      'prune',
      '--used',
      SAMPLE_USED,
      '--keep',
      '*',
      '--initramfs-compression',
      'none',
      img.path,
    );
    expect(r.stderr).toMatch(
      /^ulfs-offline: error PRUNE_WONT_FIT: .*--initramfs-compression.*left unchanged/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.code).not.toBe(0);
    expect(fileSha(img.path)).toBe(sha);
    expect(fs.existsSync(img.path + '.ulfs-undo')).toBe(false);
  });

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

describe('prune zeroes the old log of a clean journal', () => {
  function nonZeroLogBlocks(file: string, offset: number, blocks: number[]): number {
    const fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(4096);
    let n = 0;
    try {
      for (const b of blocks.slice(1)) {
        fs.readSync(fd, buf, 0, 4096, offset + b * 4096);
        if (buf.some((x) => x !== 0)) n++;
      }
    } finally {
      fs.closeSync(fd);
    }
    return n;
  }

  it('a journal that held transactions (replayed, now clean): log zeroed, superblock kept, e2fsck clean', async () => {
    const d = fs.mkdtempSync(path.join(dir, 'jl-'));
    const img = unpackSample(d);
    // Two transactions of random data for two free blocks, then a replay by e2fsck: the state a VM
    // that ran and shut down cleanly leaves behind (a clean journal whose log is not empty of data).
    const free = sh('debugfs', ['-R', 'ffb 2 6000', img.spec]).match(/\d+/g)!.map(Number).slice(-2);
    expect(free).toHaveLength(2);
    const data = path.join(d, 'rand');
    fs.writeFileSync(data, crypto.randomBytes(8192));
    sh(
      'debugfs',
      ['-w', '-f', '-', img.spec],
      `jo\njw -b ${free.join(',')} ${data}\njc\njo\njw -b ${free[0]} ${data}\njc\n`,
    );
    // e2fsck cannot replay through "?offset=" (it reopens the device without it): replay on a copy of
    // the partition and put it back.
    const whole = fs.readFileSync(img.path);
    const part = path.join(d, 'part.img');
    fs.writeFileSync(part, whole.subarray(img.offset));
    try {
      execFileSync('e2fsck', ['-fy', part], { env: TOOL_ENV, stdio: 'ignore' });
    } catch {
      // exit 1: "file system was modified" (the replay)
    }
    fs.readFileSync(part).copy(whole, img.offset);
    fs.writeFileSync(img.path, whole);
    expect(sh('debugfs', ['-R', 'logdump', img.spec])).toMatch(/Journal starts at block 0/);
    {
      const chk = e2fsckClean(img.spec);
      expect(chk.ok, chk.output).toBe(true);
    }
    const blocks = journalLayout(img.spec).data;
    expect(blocks.length).toBeGreaterThan(100);
    const dirtyBefore = nonZeroLogBlocks(img.path, img.offset, blocks);
    expect(dirtyBefore).toBeGreaterThan(2);
    const sbBefore = sh('debugfs', ['-R', 'logdump', img.spec]);

    const r = await cli('prune', '--used', SAMPLE_USED, '--json', img.path);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.zero.journalBlocksZeroed).toBe(dirtyBefore);
    expect(nonZeroLogBlocks(img.path, img.offset, blocks)).toBe(0);
    expect(journalLayout(img.spec).data).toEqual(blocks);
    expect(sh('debugfs', ['-R', 'logdump', img.spec])).toBe(sbBefore); // same journal superblock
    {
      const chk = e2fsckClean(img.spec);
      expect(chk.ok, chk.output).toBe(true);
    }
  });
});
