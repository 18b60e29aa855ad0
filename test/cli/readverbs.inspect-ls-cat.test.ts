import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import {
  fileSha,
  listFiles,
  makePartitionedImage,
  rdump,
  sh,
  sha256,
  tempDir,
  unpackSample,
} from '../helpers/images.js';

let dir: string;
let sample: ReturnType<typeof unpackSample>;

beforeAll(() => {
  dir = tempDir();
  sample = unpackSample(dir);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('inspect', () => {
  it('finds the root fs, the kernel and the initramfs of the sample, with counts equal to debugfs', async () => {
    const r = await cli('inspect', sample.path, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.partitions).toHaveLength(1);
    expect(j.partitions[0].number).toBe(1);
    expect(j.partitions[0].fs.type).toBe('ext4');
    expect(j.partitions[0].roles).toEqual(['root', 'boot']);
    // Oracle: dumpe2fs's free block count; debugfs's copy of the module tree.
    const free = /Free blocks:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', sample.spec]))![1];
    expect(j.partitions[0].fs.freeBlocks).toBe(Number(free));
    const tree = rdump(sample.spec, `/usr/lib/modules/${sample.version}`, path.join(dir, 'oracle'));
    const mods = listFiles(tree, (f) => /\.ko(\.(gz|xz|zst))?$/.test(f));
    expect(j.kernels).toEqual([
      expect.objectContaining({
        version: sample.version,
        moduleCount: mods.length,
        moduleBytes: mods.reduce((n, f) => n + fs.statSync(path.join(tree, f)).size, 0),
      }),
    ]);
    const size = Number(
      /Size: (\d+)/.exec(sh('debugfs', ['-R', `stat /boot/initrd.img-${sample.version}`, sample.spec]))![1],
    );
    expect(j.initramfs).toEqual([
      expect.objectContaining({ path: `/boot/initrd.img-${sample.version}`, partition: 1, size }),
    ]);
  });

  it('prints a readable text summary', async () => {
    const r = await cli('inspect', sample.path);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/MBR partition table/);
    expect(r.stdout).toMatch(/sample\.img1 .*\[root, boot\]/);
    expect(r.stdout).toMatch(new RegExp(`${sample.version.replace(/\./g, '\\.')} .*48 module files`));
  });

  it('finds a separate /boot partition on GPT, and the root behind /lib -> usr/lib', async () => {
    const rootDir = path.join(dir, 'gpt-root');
    const bootDir = path.join(dir, 'gpt-boot');
    fs.mkdirSync(path.join(rootDir, 'usr/lib/modules/5.10.0-x/kernel'), { recursive: true });
    fs.writeFileSync(path.join(rootDir, 'usr/lib/modules/5.10.0-x/kernel/a.ko'), 'abc');
    fs.writeFileSync(path.join(rootDir, 'usr/lib/modules/5.10.0-x/kernel/b.ko.xz'), 'defg');
    fs.symlinkSync('usr/lib', path.join(rootDir, 'lib'));
    fs.mkdirSync(bootDir);
    fs.writeFileSync(path.join(bootDir, 'vmlinuz-5.10.0-x'), 'k');
    fs.writeFileSync(path.join(bootDir, 'initrd.img-5.10.0-x'), Buffer.alloc(5000, 1));
    const img = makePartitionedImage(path.join(dir, 'gpt.img'), 'gpt', [
      { sizeMiB: 8, fsType: 'ext2', blockSize: 1024, srcDir: bootDir, name: 'boot' },
      { sizeMiB: 16, srcDir: rootDir, name: 'root' },
    ]);
    const j = JSON.parse((await cli('inspect', img.path, '--json')).stdout);
    expect(j.partitions.map((p: { number: number; roles: string[] }) => [p.number, p.roles])).toEqual([
      [1, ['boot']],
      [2, ['root']],
    ]);
    expect(j.partitions[0].fs.type).toBe('ext2');
    expect(j.kernels[0]).toMatchObject({
      version: '5.10.0-x',
      moduleCount: 2,
      moduleBytes: 7,
      moduleDir: '/lib/modules/5.10.0-x',
    });
    expect(j.initramfs).toEqual([
      { path: '/initrd.img-5.10.0-x', partition: 1, size: 5000, version: '5.10.0-x' },
    ]);
  });

  it('reads a bare filesystem with no partition table', async () => {
    const src = path.join(dir, 'bare-src');
    fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(src, 'etc/x'), 'hello');
    const img = path.join(dir, 'bare.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 8 << 20);
    sh('mke2fs', ['-q', '-F', '-t', 'ext3', '-d', src, img]);
    const j = JSON.parse((await cli('inspect', img, '--json')).stdout);
    expect(j.partitions).toHaveLength(1);
    expect(j.partitions[0].fs.type).toBe('ext3');
    const c = await cli('cat', img, '/etc/x');
    expect(c.code).toBe(0);
    expect(c.stdout).toBe('hello');
  });
});

describe('ls and cat', () => {
  it('ls -l --json of /boot matches debugfs', async () => {
    const r = await cli('ls', sample.path, '/boot', '--json');
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; size: number; mode: number; type: string }[];
    // debugfs ls -p: /ino/mode/uid/gid/name/size/
    const oracle = sh('debugfs', ['-R', 'ls -p /boot', sample.spec])
      .split('\n')
      .filter((l) => l.startsWith('/'))
      .map((l) => l.split('/'))
      .filter((f) => f[5] !== '.' && f[5] !== '..')
      .map((f) => ({ name: f[5], mode: parseInt(f[2]!, 8) & 0o7777, size: Number(f[6]) }))
      .sort((a, b) => a.name!.localeCompare(b.name!));
    expect(rows.map((x) => ({ name: x.name, mode: x.mode & 0o7777, size: x.size }))).toEqual(oracle);
  });

  it('ls follows /lib -> usr/lib and -R lists the whole module tree', async () => {
    const r = await cli('ls', sample.path, `/lib/modules/${sample.version}`, '-R');
    expect(r.code).toBe(0);
    const listed = r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.endsWith('.ko'));
    const tree = rdump(sample.spec, `/usr/lib/modules/${sample.version}`, path.join(dir, 'oracle2'));
    expect(listed.length).toBe(listFiles(tree, (f) => f.endsWith('.ko')).length);
  });

  it('cat streams a file byte-identical to debugfs dump', async () => {
    const out = path.join(dir, 'oracle-initrd');
    sh('debugfs', ['-R', `dump /boot/initrd.img-${sample.version} ${out}`, sample.spec]);
    expect(fs.statSync(out).size).toBeGreaterThan(1000);
    // The cli() helper decodes stdout as text; collect raw bytes instead.
    const { runCli } = await import('../../src/cli/program.js');
    const chunks: Buffer[] = [];
    const { Writable } = await import('node:stream');
    const sink = new Writable({ write: (c, _e, cb) => (chunks.push(Buffer.from(c)), cb()) });
    const code = await runCli(['cat', sample.path, `/boot/initrd.img-${sample.version}`], {
      stdout: sink,
      stderr: sink,
      isTTY: false,
    });
    expect(code).toBe(0);
    expect(sha256(Buffer.concat(chunks))).toBe(fileSha(out));
  });

  it('errors: missing path, a directory to cat, a relative path, a missing partition', async () => {
    const a = await cli('cat', sample.path, '/no/such/file');
    expect(a.code).toBe(6);
    expect(a.stderr).toMatch(/^ulfs-offline: error EXT_NOT_FOUND: /);
    expect(a.stderr.trim().split('\n')).toHaveLength(1);
    const b = await cli('cat', sample.path, '/boot');
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/EXT_IS_A_DIRECTORY/);
    expect((await cli('ls', sample.path, 'boot')).code).toBe(2);
    const d = await cli('ls', sample.path, '/', '--part', '3');
    expect(d.code).toBe(6);
    expect(d.stderr).toMatch(/PART_NOT_FOUND/);
    const e = await cli('inspect', path.join(dir, 'nope.img'));
    expect(e.code).toBe(6);
    expect(e.stderr).toMatch(/IMAGE_NOT_FOUND/);
  });
});

describe('initramfs IMAGE [PATH]', () => {
  it('lists the initramfs inside the image like lsinitramfs does on a dumped copy', async () => {
    const out = path.join(dir, 'oracle-initrd2');
    sh('debugfs', ['-R', `dump /boot/initrd.img-${sample.version} ${out}`, sample.spec]);
    const oracle = sh('lsinitramfs', [out]).trim().split('\n').sort();
    for (const args of [
      [sample.path],
      [sample.path, `/initrd.img`],
      [sample.path, `/boot/initrd.img-${sample.version}`, '--part', '1'],
    ]) {
      const r = await cli('initramfs', ...args, '--json');
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.segments[0].compression).toBe('gzip');
      expect(j.entries.map((e: { path: string }) => e.path).sort()).toEqual(oracle);
    }
    const bad = await cli('initramfs', sample.path, '/etc');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/EXT_NOT_A_FILE/);
  });
});
