/** >10,000-entry htree directories (2 matrix entries), checked against debugfs. Slow: mke2fs -d is O(n^2). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExtFs } from '../../src/ext/fs.js';
import { FileDevice } from '../../src/image/blockdev.js';
import { makeExtImage } from '../fixtures/ext-images.js';
import { checkBigDir } from './read-oracle.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-bigdir-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const check = (cond: boolean, what: string): void => expect(cond, what).toBe(true);
const openFs = (p: string): ExtFs => ExtFs.open(new FileDevice(p));

describe('directories with more than 10,000 entries', () => {
  it('ext4 1K metadata_csum 64bit: 2-level htree', () => {
    const levels = checkBigDir(
      tmp,
      'ext4-1k',
      { fsType: 'ext4', blockSize: 1024, metadataCsum: true, bit64: true, sizeMiB: 64 },
      10_500,
      check,
      makeExtImage,
      openFs,
    );
    expect(levels).toBe(1);
  });

  it('ext2 4K: htree', () => {
    checkBigDir(
      tmp,
      'ext2-4k',
      { fsType: 'ext2', blockSize: 4096, sizeMiB: 64 },
      10_500,
      check,
      makeExtImage,
      openFs,
    );
  });
});
