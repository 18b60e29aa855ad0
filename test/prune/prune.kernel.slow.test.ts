/**
 * prune on realistic images built from the real Debian cloud kernel package (≈1,100 modules) with
 * mkinitramfs initramfs files, judged by the native tools (see test/helpers/prune-oracle.ts):
 *   A. MBR, /boot inside the root, /lib -> usr/lib, gzip initramfs (MODULES=most), /initrd.img symlink;
 *   B. GPT, /boot on its own partition, zstd initramfs with an early uncompressed cpio in front.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { makePartitionedImage, rdump, sh, tempDir } from '../helpers/images.js';
import { expectPrunedInitramfs, expectPrunedRoot } from '../helpers/prune-oracle.js';
import { getKernel, listModuleFiles } from '../fixtures/kernel.js';
import { getInitramfs, withEarlyCpio } from '../fixtures/initramfs-images.js';

const USED_NAMES = [
  'virtio_net',
  'net_failover',
  'failover',
  'virtio_blk',
  'virtio_scsi',
  'scsi_mod',
  'sd_mod',
  'sr_mod',
  'cdrom',
  'virtio_pci',
  'virtio_ring',
  'virtio',
  'ext4',
  'jbd2',
  'crc16',
  'crc32c_intel',
  'serio_raw',
  'button',
  'evdev',
  'virtio_rng',
  'virtio_console',
  'nls_ascii',
  'nls_cp437',
  'vfat',
  'fat',
  'efi_pstore',
  'configfs',
  'ip_tables',
  'x_tables',
  'autofs4',
  'psmouse',
  'i2c_piix4',
];

let dir: string;
let k: ReturnType<typeof getKernel>;
beforeAll(() => {
  dir = tempDir('ulfs-prune-kernel-');
  k = getKernel('cloud');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function captureList(version: string): string {
  const lines = ['# ulfs-offline used-modules v1', `# kernel: ${version}`];
  USED_NAMES.forEach((n, i) =>
    lines.push(`${n} ${16384 + i} 0 - Live 0xffffffffc0${(i + 0x100).toString(16)}000`),
  );
  const f = path.join(dir, 'used.txt');
  fs.writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

function rootTree(name: string, withBoot: string | null): string {
  const root = path.join(dir, name);
  fs.mkdirSync(path.join(root, 'usr/lib/modules'), { recursive: true });
  fs.mkdirSync(path.join(root, 'etc'));
  fs.cpSync(k.modulesDir, path.join(root, 'usr/lib/modules', k.version), { recursive: true });
  fs.symlinkSync('usr/lib', path.join(root, 'lib'));
  fs.writeFileSync(path.join(root, 'etc/hostname'), 'vm\n');
  if (withBoot) {
    fs.mkdirSync(path.join(root, 'boot'));
    fs.copyFileSync(
      path.join(k.root, 'boot', `vmlinuz-${k.version}`),
      path.join(root, 'boot', `vmlinuz-${k.version}`),
    );
    fs.copyFileSync(withBoot, path.join(root, 'boot', `initrd.img-${k.version}`));
    fs.symlinkSync(`boot/initrd.img-${k.version}`, path.join(root, 'initrd.img'));
  }
  return root;
}

describe('prune on a Debian cloud kernel image', () => {
  it('A: MBR, /boot inside root, gzip initramfs', async () => {
    const initrd = getInitramfs('cloud', 'gzip', 'most');
    const src = rootTree('a-root', initrd);
    const img = makePartitionedImage(path.join(dir, 'a.img'), 'dos', [{ sizeMiB: 400, srcDir: src }]);
    const spec = img.specs[0]!;
    const before = rdump(spec, `/usr/lib/modules/${k.version}`, path.join(dir, 'a-before'));
    // inspect counts what `find -name '*.ko*'` counts in the unpacked .deb.
    const ins = JSON.parse((await cli('inspect', '--json', img.path)).stdout);
    const debFiles = listModuleFiles(k.modulesDir);
    expect(ins.kernels).toEqual([
      expect.objectContaining({
        version: k.version,
        moduleCount: debFiles.length,
        moduleBytes: debFiles.reduce((n, f) => n + fs.statSync(path.join(k.modulesDir, f)).size, 0),
      }),
    ]);
    expect(ins.initramfs).toEqual([
      expect.objectContaining({ path: `/boot/initrd.img-${k.version}`, size: fs.statSync(initrd).size }),
    ]);
    const r = await cli('prune', '--used', captureList(k.version), '--json', img.path);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.kernel).toBe(k.version);
    // mkinitramfs's sorted archive is decided as it streams: decompressed once, no second pass.
    expect(report.warnings.join('\n')).not.toMatch(/read twice/);
    // Neither is in this kernel's modules.dep or modules.builtin (checked with grep): reported, not fatal.
    expect(report.used.unknown.sort()).toEqual(['i2c_piix4', 'psmouse']);
    expect(report.used.builtin).toBeGreaterThanOrEqual(2); // ext4, jbd2, crc16 are builtin here
    expectPrunedRoot({
      specs: [spec],
      rootSpec: spec,
      modulesDir: `/usr/lib/modules/${k.version}`,
      version: k.version,
      beforeTree: before,
      report,
      work: fs.mkdtempSync(path.join(dir, 'aw-')),
    });
    const after = path.join(dir, 'a-initrd-after');
    sh('debugfs', ['-R', `dump /boot/initrd.img-${k.version} ${after}`, spec]);
    sh('gzip', ['-t', after]);
    const counts = expectPrunedInitramfs(
      initrd,
      after,
      report.kept,
      k.version,
      fs.mkdtempSync(path.join(dir, 'aw-')),
    );
    expect(report.initramfs).toEqual([
      expect.objectContaining({ path: `/boot/initrd.img-${k.version}`, ...counts }),
    ]);
    expect(counts.modulesBefore).toBeGreaterThan(100);
    expect(report.initramfs[0].sizeAfter).toBeLessThan(report.initramfs[0].sizeBefore / 2);
  });

  it('B: GPT, separate /boot partition, zstd initramfs with an early cpio', async () => {
    const initrd = withEarlyCpio(getInitramfs('cloud', 'zstd', 'dep'));
    const src = rootTree('b-root', null);
    const boot = path.join(dir, 'b-boot');
    fs.mkdirSync(boot);
    fs.copyFileSync(
      path.join(k.root, 'boot', `vmlinuz-${k.version}`),
      path.join(boot, `vmlinuz-${k.version}`),
    );
    fs.copyFileSync(initrd, path.join(boot, `initrd.img-${k.version}`));
    const img = makePartitionedImage(path.join(dir, 'b.img'), 'gpt', [
      { sizeMiB: 64, srcDir: boot, fsType: 'ext2', blockSize: 1024, name: 'boot' },
      { sizeMiB: 400, srcDir: src, name: 'root' },
    ]);
    const [bootSpec, rootSpec] = img.specs as [string, string];
    const before = rdump(rootSpec, `/usr/lib/modules/${k.version}`, path.join(dir, 'b-before'));
    const r = await cli('prune', '--used', captureList(k.version), '--json', img.path);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.warnings.join('\n')).not.toMatch(/read twice/);
    expectPrunedRoot({
      specs: [rootSpec, bootSpec],
      rootSpec,
      modulesDir: `/usr/lib/modules/${k.version}`,
      version: k.version,
      beforeTree: before,
      report,
      work: fs.mkdtempSync(path.join(dir, 'bw-')),
    });
    const after = path.join(dir, 'b-initrd-after');
    sh('debugfs', ['-R', `dump /initrd.img-${k.version} ${after}`, bootSpec]);
    // The early archive is copied byte for byte.
    const early = fs.readFileSync(initrd).indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    expect(early).toBeGreaterThan(0);
    expect(fs.readFileSync(after).subarray(0, early).equals(fs.readFileSync(initrd).subarray(0, early))).toBe(
      true,
    );
    const counts = expectPrunedInitramfs(
      initrd,
      after,
      report.kept,
      k.version,
      fs.mkdtempSync(path.join(dir, 'bw-')),
    );
    expect(report.initramfs).toEqual([
      expect.objectContaining({ path: `/initrd.img-${k.version}`, partition: 1, ...counts }),
    ]);
  });
});
