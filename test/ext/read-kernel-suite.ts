/**
 * A real Debian kernel's /lib/modules in an ext4 image (mke2fs -d): walking it through ExtFs
 * finds exactly the module files listModuleFiles() finds on the host, with identical bytes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtFs } from '../../src/ext/fs.js';
import { FileDevice } from '../../src/image/blockdev.js';
import { makeExtImage } from '../fixtures/ext-images.js';
import { getKernel, listModuleFiles, type KernelFlavor, type KernelTree } from '../fixtures/kernel.js';

export function kernelSuite(flavor: KernelFlavor, sizeMiB: number): void {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-kernel-'));
  let k: KernelTree;
  let imgPath: string;

  beforeAll(() => {
    k = getKernel(flavor);
    imgPath = makeExtImage(path.join(tmp, 'k.img'), {
      fsType: 'ext4',
      blockSize: 4096,
      srcDir: k.root,
      sizeMiB,
    }).path;
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe(`ExtFs on a real kernel module tree (${flavor})`, () => {
    it('walk finds the same module files, sizes and bytes as the host', () => {
      const want = listModuleFiles(k.modulesDir);
      expect(want.length).toBeGreaterThan(1000);
      const dev = new FileDevice(imgPath);
      try {
        const x = ExtFs.open(dev);
        const base = `/lib/modules/${k.version}`;
        const found: string[] = [];
        let bytes = 0;
        let hostBytes = 0;
        for (const e of x.walk(base)) {
          if (e.stat.type !== 'file' || !/\.ko(\.(gz|xz|zst))?$/.test(e.path)) continue;
          const rel = e.path.slice(base.length + 1);
          found.push(rel);
          const ours = Buffer.concat([...x.fileChunks(e.ino)]);
          const host = fs.readFileSync(path.join(k.modulesDir, rel));
          expect(ours.equals(host), rel).toBe(true);
          bytes += ours.length;
          hostBytes += host.length;
        }
        expect(found.sort()).toEqual(want);
        expect(bytes).toBe(hostBytes);
        // modules.dep, read whole, equals the host's (what the pruner will parse).
        const dep = x.readFile(x.lookup(`${base}/modules.dep`));
        expect(dep.equals(fs.readFileSync(path.join(k.modulesDir, 'modules.dep')))).toBe(true);
      } finally {
        dev.close();
      }
    });
  });
}
