/**
 * Real boot: a small bootable image made from the Debian cloud kernel package boots in qemu (software
 * emulation), its init loads modules for the devices present and prints /proc/modules; the image is
 * pruned with that capture and booted again: the root must mount, the same modules load, and no new
 * modprobe errors appear. A negative control (a used module deleted by hand) shows the harness sees a
 * broken image; the benchmark's native competitor must pass the same boot check.
 *
 * Needs qemu-system-x86 and busybox-static (.ci/run installs them). About 15-60 s per boot here.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  copyImage,
  debugfs,
  getBootableImage,
  PARTITION_OFFSET,
  sh,
  type BootableImage,
} from '../fixtures/bootable-image.js';
import { TOOL_ENV } from '../fixtures/initramfs-images.js';
import { bootImage, captureText, newFailures, type BootResult } from './qemu.js';

const CLI = path.resolve('dist/cli/main.js');

/** Whether the built CLI has a `prune` command yet (the lead builds it in parallel). */
function pruneAvailable(): { ok: boolean; why: string } {
  if (!fs.existsSync(CLI)) return { ok: false, why: `${CLI} not built (npm run build)` };
  const r = spawnSync(process.execPath, [CLI, 'prune', '--help'], { encoding: 'utf8', env: TOOL_ENV });
  // commander answers `X --help` for an unknown X with the program's help: look for prune's own usage.
  if (r.status !== 0 || !/Usage: \S+ prune/.test(r.stdout)) {
    return { ok: false, why: `dist/cli/main.js has no prune command yet` };
  }
  return { ok: true, why: '' };
}

/** xz size at level 1 (level 6 takes about 3 minutes per image here; bench/ measures level 6). */
function xzSize(file: string): number {
  return Number(sh('sh', ['-c', `xz -T2 -1 -c '${file}' | wc -c`]).trim());
}

function e2fsck(file: string): { status: number | null; output: string } {
  const r = spawnSync('e2fsck', ['-fn', `${file}?offset=${PARTITION_OFFSET}`], {
    encoding: 'utf8',
    env: TOOL_ENV,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function describeBoot(label: string, r: BootResult): void {
  console.log(
    `[boot] ${label}: ${r.ok ? 'ok' : 'FAILED'} in ${r.seconds.toFixed(1)} s, ${r.modules.length} modules, ` +
      `${r.errors.length} failing modaliases${r.timedOut ? ', TIMED OUT' : ''}`,
  );
  if (!r.ok) console.log(r.log.slice(-4000));
}

const names = (r: BootResult): string[] => r.modules.map((m) => m.name).sort();

describe('real boot (qemu, cloud kernel)', () => {
  let img: BootableImage;
  let work: string;
  let original: BootResult;
  let capture: string;

  beforeAll(() => {
    img = getBootableImage({ flavor: 'cloud' });
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-boot-test-'));
  });
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('the original image boots: root mounts, init loads modules and prints them', () => {
    expect(e2fsck(img.path).status).toBe(0);
    original = bootImage(img.path, img.version);
    describeBoot('original', original);
    expect(original.ok).toBe(true);
    expect(original.kernel).toBe(img.version);
    expect(original.rootMount).toMatch(/^\/dev\/vda1 \/ ext4 rw/);
    // The virtio devices qemu attaches must have their drivers.
    expect(names(original)).toEqual(expect.arrayContaining(['virtio_blk', 'virtio_net', 'virtio_pci']));
    capture = path.join(work, 'used.txt');
    fs.writeFileSync(capture, captureText(img.version, original.modules));
  });

  test('negative control: with a used module deleted by hand the harness sees the difference', () => {
    // qemu_fw_cfg is loaded by the guest init from the root fs (it is not in the initramfs).
    expect(names(original)).toContain('qemu_fw_cfg');
    const broken = path.join(work, 'broken.img');
    copyImage(img.path, broken);
    debugfs(broken, `rm /usr/lib/modules/${img.version}/kernel/drivers/firmware/qemu_fw_cfg.ko`, true);
    const r = bootImage(broken, img.version);
    describeBoot('negative control', r);
    fs.rmSync(broken, { force: true });
    expect(r.ok).toBe(true);
    expect(names(r)).not.toContain('qemu_fw_cfg');
    const lost = newFailures(original, r);
    expect(lost.length).toBeGreaterThan(0);
    expect(lost.map((e) => e.message).join('\n')).toMatch(/qemu_fw_cfg/);
  });

  test('the benchmark competitor (bench/native-prune.sh) leaves an image that boots the same', () => {
    const native = path.join(work, 'native.img');
    copyImage(img.path, native);
    const r = spawnSync('bash', [path.resolve('bench/native-prune.sh'), native, capture], {
      encoding: 'utf8',
      env: TOOL_ENV,
    });
    console.log(`[boot] native-prune.sh exit ${r.status}\n${r.stderr}`);
    expect(r.status).toBe(0);
    expect(e2fsck(native).status).toBe(0);
    const after = bootImage(native, img.version);
    describeBoot('native-pruned', after);
    fs.rmSync(native, { force: true });
    expect(after.ok).toBe(true);
    expect(names(after)).toEqual(names(original));
    expect(newFailures(original, after)).toEqual([]);
  });

  test('the pruned image boots with the same modules and no module-not-found errors', (ctx) => {
    const avail = pruneAvailable();
    if (!avail.ok) {
      console.warn(`[boot] SKIPPED prune + second boot: ${avail.why}`);
      ctx.skip();
      return;
    }
    const pruned = path.join(work, 'pruned.img');
    copyImage(img.path, pruned);
    const before = xzSize(pruned);
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [CLI, 'prune', '--used', capture, pruned], {
      encoding: 'utf8',
      env: TOOL_ENV,
      maxBuffer: 64 << 20,
    });
    const pruneSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(`[boot] prune exit ${r.status} in ${pruneSeconds.toFixed(1)} s\n${r.stdout}${r.stderr}`);
    expect(r.status).toBe(0);

    const fsck = e2fsck(pruned);
    expect(fsck.status, fsck.output).toBe(0);

    const after = bootImage(pruned, img.version);
    describeBoot('pruned', after);
    expect(after.ok).toBe(true);
    expect(after.kernel).toBe(img.version);
    expect(after.rootMount).toMatch(/^\/dev\/vda1 \/ ext4 rw/);
    expect(names(after)).toEqual(names(original));
    // Every modalias that fails on the pruned image also failed on the original (devices without a
    // driver, or whose driver refused the device: the message may change, the outcome may not).
    expect(newFailures(original, after)).toEqual([]);

    const afterXz = xzSize(pruned);
    console.log(
      `[boot] xz -T2 -1 size: original ${before} bytes, pruned ${afterXz} bytes ` +
        `(${((100 * afterXz) / before).toFixed(1)}%)`,
    );
    expect(afterXz).toBeLessThan(before);
  });
});
