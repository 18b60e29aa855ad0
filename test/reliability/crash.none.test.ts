/**
 * The fault-injection sweep on prune --initramfs-compression none, the path that moves the root fs
 * copies of the kept modules right before the rewritten initramfs (apply.ts placement, relocate.ts).
 * The sample's initramfs is rebuilt with a 12 MiB dropped module, so that the old file has room for
 * the reserved run; the fault-free result is checked to hold a kept module right before the archive.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { expect } from 'vitest';
import { TOOL_ENV } from '../fixtures/initramfs-images.js';
import { fileBlocks, sh } from '../helpers/images.js';
import { crashSweep } from './crash-sweep.js';
import { SAMPLE_OFFSET, writeSample } from './harness.js';

const VERSION = '6.1.0-99-demo';
const INITRD = `/boot/initrd.img-${VERSION}`;

function make(file: string): void {
  writeSample(file);
  const spec = `${file}?offset=${SAMPLE_OFFSET}`;
  const work = fs.mkdtempSync(path.join(path.dirname(file), 'initrd-'));
  const tree = path.join(work, 'tree');
  fs.mkdirSync(tree);
  sh('debugfs', ['-R', `dump ${INITRD} ${work}/orig.gz`, spec]);
  execFileSync('sh', ['-c', `gzip -dc '${work}/orig.gz' | cpio -idm --quiet`], { cwd: tree, env: TOOL_ENV });
  fs.writeFileSync(
    path.join(tree, `usr/lib/modules/${VERSION}/kernel/fs/xfs.ko`),
    crypto.randomBytes(12 << 20),
  );
  const names = execFileSync('find', ['.', '-mindepth', '1'], { cwd: tree, encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((n) => n.slice(2));
  execFileSync('sh', ['-c', `cpio -o -H newc --quiet | gzip -9 -n > '${work}/rebuilt.gz'`], {
    cwd: tree,
    env: TOOL_ENV,
    input: names.join('\n') + '\n',
  });
  sh('debugfs', ['-w', '-R', `rm ${INITRD}`, spec]);
  sh('debugfs', ['-w', '-R', `write ${work}/rebuilt.gz ${INITRD}`, spec]);
  fs.rmSync(work, { recursive: true, force: true });
}

/** The block right before the archive belongs to a kept module file: the move happened. */
function afterReference(image: string): void {
  const spec = `${image}?offset=${SAMPLE_OFFSET}`;
  const first = fileBlocks(spec, INITRD)[0]!;
  const ino = /\t(\d+)\s*$/m.exec(sh('debugfs', ['-R', `icheck ${first - 1}`, spec]))![1];
  expect(sh('debugfs', ['-R', `ncheck ${ino}`, spec])).toMatch(
    new RegExp(`/usr/lib/modules/${VERSION}/.*\\.ko`),
  );
}

crashSweep({
  pick: (k, total) => k <= 2 || k > total - 2 || k % 5 === 0,
  torn: false,
  make,
  prune: { initramfsCompression: 'none' },
  afterReference,
});
