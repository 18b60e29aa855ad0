/**
 * The benchmark workload: a 2 GiB disk image (MBR, ext4 root at 1 MiB) with the FULL Debian kernel
 * package (linux-image-6.1.0-N-amd64, ~4,000 modules), a mkinitramfs MODULES=most gzip initramfs at
 * /boot/initrd.img-VER, /boot/vmlinuz-VER, a few hundred MB of ordinary files and dirty free space
 * (test/fixtures/bootable-image.ts, `extraFiles`), plus the usage list captured by BOOTING that image
 * in qemu (test/boot/qemu.ts): /proc/modules after the guest init loaded drivers for every device.
 * Both are cached in the cache dir; the first run takes several minutes.
 *
 *   npx tsx bench/make-bench-image.ts          # prints { image, used, version, listed }
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bootImage, captureText } from '../test/boot/qemu.js';
import { getBootableImage, type BootableImage } from '../test/fixtures/bootable-image.js';

export interface BenchImage {
  /** The cached image: never change it, copy it (copyImage) first. */
  image: string;
  /** The usage list in the capture format (from a qemu boot of the image). */
  used: string;
  version: string;
  /** Modules in the usage list. */
  listed: number;
  /** Partition offset in bytes. */
  partitionOffset: number;
  /** How long the capture boot took, when this call made it. */
  bootSeconds?: number;
  boot: BootableImage;
}

export function getBenchImage(): BenchImage {
  const boot = getBootableImage({ flavor: 'full', sizeMiB: 2048, modules: 'most', extraFiles: true });
  const used = boot.path.replace(/\.img$/, '.used.txt');
  let bootSeconds: number | undefined;
  if (!fs.existsSync(used)) {
    const r = bootImage(boot.path, boot.version);
    bootSeconds = r.seconds;
    if (!r.ok || r.modules.length === 0) {
      throw new Error(
        `the capture boot of ${boot.path} failed (${r.seconds.toFixed(0)} s):\n${r.log.slice(-3000)}`,
      );
    }
    const tmp = `${used}.tmp${process.pid}`;
    fs.writeFileSync(tmp, captureText(boot.version, r.modules));
    fs.renameSync(tmp, used);
  }
  const listed = fs
    .readFileSync(used, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0 && !l.startsWith('#')).length;
  return {
    image: boot.path,
    used,
    version: boot.version,
    listed,
    partitionOffset: boot.partitionOffset,
    ...(bootSeconds === undefined ? {} : { bootSeconds }),
    boot,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const start = Date.now();
  const b = getBenchImage();
  const { boot: _boot, ...shown } = b;
  console.log(JSON.stringify({ ...shown, seconds: (Date.now() - start) / 1000 }, null, 2));
}
