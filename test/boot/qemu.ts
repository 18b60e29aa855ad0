/**
 * Boots a disk image made by test/fixtures/bootable-image.ts in qemu (software emulation, no KVM)
 * with direct kernel boot, using the kernel and initramfs stored IN the image (copied out with
 * debugfs), and parses what the guest init prints on the serial console.
 *
 *   const r = bootImage(img.path, img.version);   // { ok, modules, errors, seconds, log, ... }
 *
 * Network: a virtio-net NIC on a user-mode backend with restrict=on (no traffic leaves the host).
 * The image is attached with -snapshot: the guest's writes go to a throwaway overlay, the file is
 * never changed by a boot.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dumpFromImage, PARTITION_OFFSET } from '../fixtures/bootable-image.js';
import { TOOL_ENV } from '../fixtures/initramfs-images.js';

export const BOOT_TIMEOUT_MS = Number(process.env.ULFS_BOOT_TIMEOUT_MS ?? 300_000);

export interface LoadedModule {
  name: string;
  /** The whole /proc/modules line. */
  line: string;
}

export interface ModprobeError {
  /** The device's modalias the guest asked modprobe to load. */
  alias: string;
  message: string;
}

export interface BootResult {
  /** The guest init ran (the root filesystem was mounted) and printed the module list. */
  ok: boolean;
  initRan: boolean;
  kernel: string | undefined;
  /** The /proc/mounts line for / as the guest saw it. */
  rootMount: string | undefined;
  modules: LoadedModule[];
  /** modprobe errors printed by the guest, one per modalias that failed (sorted, unique). */
  errors: ModprobeError[];
  seconds: number;
  timedOut: boolean;
  exitStatus: number | null;
  /** The whole serial console log, \r removed. */
  log: string;
}

/** Parses the serial console log of a boot. */
export function parseBootLog(raw: string): Omit<BootResult, 'seconds' | 'timedOut' | 'exitStatus'> {
  const log = raw.replace(/\r/g, '');
  const lines = log.split('\n');
  const between = (begin: string, end: string): string[] | undefined => {
    const b = lines.indexOf(begin);
    if (b < 0) return undefined;
    const e = lines.indexOf(end, b + 1);
    if (e < 0) return undefined;
    return lines.slice(b + 1, e);
  };
  const modLines = between('ULFS-MODULES-BEGIN', 'ULFS-MODULES-END');
  const errLines = between('ULFS-ERRORS-BEGIN', 'ULFS-ERRORS-END');
  // A /proc/modules line: name size refcount deps state address (kernel messages are filtered out).
  const modRe = /^([A-Za-z0-9_]+) \d+ \d+ \S+ (Live|Loading|Unloading) 0x[0-9a-f]+/;
  const modules = (modLines ?? [])
    .filter((l) => modRe.test(l))
    .map((l) => ({ name: modRe.exec(l)![1]!, line: l.trim() }));
  const kernel = lines
    .find((l) => l.startsWith('ULFS-KERNEL '))
    ?.slice('ULFS-KERNEL '.length)
    .trim();
  const rootMount = lines
    .find((l) => l.startsWith('ULFS-ROOT '))
    ?.slice('ULFS-ROOT '.length)
    .trim();
  const initRan = lines.includes('ULFS-INIT-STARTED');
  return {
    ok: initRan && modLines !== undefined && errLines !== undefined,
    initRan,
    kernel,
    rootMount,
    modules,
    errors: (errLines ?? [])
      .filter((l) => l.includes('\t'))
      .map((l) => ({ alias: l.slice(0, l.indexOf('\t')), message: l.slice(l.indexOf('\t') + 1).trim() })),
    log,
  };
}

/** Modaliases that failed in `after` but not in `before`: devices that lost their driver. */
export function newFailures(before: BootResult, after: BootResult): ModprobeError[] {
  const failed = new Set(before.errors.map((e) => e.alias));
  return after.errors.filter((e) => !failed.has(e.alias));
}

/** Boots `image` (kernel VERSION) and returns what the guest printed. Never throws on a failed boot. */
export function bootImage(image: string, version: string, opts: { timeoutMs?: number } = {}): BootResult {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-boot-'));
  try {
    const kernel = path.join(work, 'vmlinuz');
    const initrd = path.join(work, 'initrd.img');
    dumpFromImage(image, `/boot/vmlinuz-${version}`, kernel);
    dumpFromImage(image, `/boot/initrd.img-${version}`, initrd);
    const args = [
      '-m', '512',
      '-smp', '1',
      '-nographic',
      '-no-reboot',
      '-snapshot',
      '-kernel', kernel,
      '-initrd', initrd,
      '-append', 'console=ttyS0 root=/dev/vda1 rw init=/sbin/init panic=-1',
      '-drive', `file=${image},format=raw,if=virtio`,
      '-netdev', 'user,id=n0,restrict=on',
      '-device', 'virtio-net-pci,netdev=n0',
    ]; // prettier-ignore
    const start = process.hrtime.bigint();
    const r = spawnSync('qemu-system-x86_64', args, {
      cwd: work,
      env: { ...TOOL_ENV, TMPDIR: work },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? BOOT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 64 << 20,
    });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const raw = `${r.stdout?.toString('latin1') ?? ''}${r.stderr?.length ? `\n[qemu stderr]\n${r.stderr.toString('latin1')}` : ''}`;
    const timedOut = r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    return { ...parseBootLog(raw), seconds, timedOut, exitStatus: r.status };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The capture format `ulfs-offline prune --used` reads (what `capture-script` writes in a VM). */
export function captureText(version: string, modules: LoadedModule[]): string {
  return (
    ['# ulfs-offline used-modules v1', `# kernel: ${version}`, ...modules.map((m) => m.line)].join('\n') +
    '\n'
  );
}

export { PARTITION_OFFSET };
