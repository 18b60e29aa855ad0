/**
 * Benchmark: read every file under /lib/modules of a kernel tree put into an ext4 image
 * (mke2fs -d), through ExtFs, against `debugfs -R 'rdump /lib/modules DIR'` on the same image.
 *
 *   npx tsx bench/read-tree.ts [full|cloud] [runs]
 *
 * Reported: best-of-N wall time for
 *   - ExtFs read only (walk + stream every file, discard the bytes),
 *   - ExtFs read + write every file to a temp dir (the same work rdump does),
 *   - debugfs rdump.
 * Both sides read from the page cache after the first run (the image is read once beforehand).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExtFs } from '../src/ext/fs.js';
import { FileDevice } from '../src/image/blockdev.js';
import { makeExtImage } from '../test/fixtures/ext-images.js';
import { getKernel, type KernelFlavor } from '../test/fixtures/kernel.js';

const flavor = (process.argv[2] ?? 'full') as KernelFlavor;
const runs = Number(process.argv[3] ?? 3);
const k = getKernel(flavor);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-bench-read-'));
const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };

try {
  let t = performance.now();
  const img = makeExtImage(path.join(tmp, 'k.img'), {
    fsType: 'ext4',
    blockSize: 4096,
    srcDir: k.root,
    sizeMiB: 1024,
  });
  console.log(`image built in ${((performance.now() - t) / 1000).toFixed(1)} s (${flavor}, ${k.version})`);
  fs.readFileSync(img.path); // warm the page cache for both sides

  const best = (fn: () => void): number => {
    let b = Infinity;
    for (let i = 0; i < runs; i++) {
      const s = performance.now();
      fn();
      b = Math.min(b, performance.now() - s);
    }
    return b;
  };

  let files = 0;
  let bytes = 0;
  const readOnly = best(() => {
    const dev = new FileDevice(img.path);
    const x = ExtFs.open(dev);
    files = 0;
    bytes = 0;
    for (const e of x.walk('/lib/modules')) {
      if (e.stat.type !== 'file') continue;
      files++;
      for (const c of x.fileChunks(e.ino)) bytes += c.length;
    }
    dev.close();
  });

  const out = path.join(tmp, 'ours');
  const readWrite = best(() => {
    fs.rmSync(out, { recursive: true, force: true });
    const dev = new FileDevice(img.path);
    const x = ExtFs.open(dev);
    for (const e of x.walk('/lib/modules')) {
      const dst = path.join(out, e.path);
      if (e.stat.type === 'dir') fs.mkdirSync(dst, { recursive: true });
      else if (e.stat.type === 'file') {
        const fd = fs.openSync(dst, 'w');
        for (const c of x.fileChunks(e.ino)) fs.writeSync(fd, c);
        fs.closeSync(fd);
      } else if (e.stat.type === 'symlink') fs.symlinkSync(x.readlink(e.ino), dst);
    }
    dev.close();
  });

  const dump = path.join(tmp, 'debugfs');
  const native = best(() => {
    fs.rmSync(dump, { recursive: true, force: true });
    fs.mkdirSync(dump);
    execFileSync('debugfs', ['-R', `rdump /lib/modules ${dump}`, img.path], { env: ENV, stdio: 'ignore' });
  });

  t = performance.now();
  const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  console.log(`${files} files, ${(bytes / 2 ** 20).toFixed(1)} MiB under /lib/modules; best of ${runs}`);
  console.log(
    `ExtFs read only:        ${fmt(readOnly)}  (${(bytes / 2 ** 20 / (readOnly / 1000)).toFixed(0)} MiB/s)`,
  );
  console.log(`ExtFs read + write out: ${fmt(readWrite)}`);
  console.log(`debugfs rdump:          ${fmt(native)}`);
  console.log(
    `ratio debugfs / ExtFs:  ${(native / readOnly).toFixed(1)}x (read only), ${(native / readWrite).toFixed(1)}x (read + write)`,
  );
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
