/**
 * htree directories read linearly: a 2-level tree (1K blocks, metadata_csum: dx root and dx node
 * checksums verified on the way) and a 1-level tree (ext3, 4K, no checksums), each built by
 * e2fsck -fyD and checked against debugfs. The >10,000-entry versions run in the slow suite.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExtFs } from '../../src/ext/fs.js';
import { FileDevice } from '../../src/image/blockdev.js';
import { makeExtImage } from '../fixtures/ext-images.js';
import { checkBigDir } from './read-oracle.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-htree-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const check = (cond: boolean, what: string): void => expect(cond, what).toBe(true);
const openFs = (p: string): ExtFs => ExtFs.open(new FileDevice(p));

describe('htree directories', () => {
  it('2-level htree on ext4 1K with metadata_csum (1,800 long names)', () => {
    const levels = checkBigDir(
      tmp,
      'ext4-1k',
      { fsType: 'ext4', blockSize: 1024, metadataCsum: true, bit64: true, sizeMiB: 32 },
      1800,
      check,
      makeExtImage,
      openFs,
    );
    expect(levels).toBe(1);
  });

  it('1-level htree on ext3 4K (2,000 long names)', () => {
    const levels = checkBigDir(
      tmp,
      'ext3-4k',
      { fsType: 'ext3', blockSize: 4096, sizeMiB: 32 },
      2000,
      check,
      makeExtImage,
      openFs,
    );
    expect(levels).toBe(0);
  });
});
