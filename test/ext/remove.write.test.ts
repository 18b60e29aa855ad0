/**
 * The writer on a quick subset of the fixture matrix (the full matrix is remove.write.slow.test.ts):
 * unlink of every inode kind, rmdir, rm -r, htree emptied entry by entry, shared xattr blocks,
 * shrink-rewrite across extent-depth changes. Oracle: e2fsck -fn clean after every step.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as fs from 'node:fs';
import { MATRIX, matrixName } from '../fixtures/ext-images.js';
import { tmpDir } from './writer-fixtures.js';
import { runMatrixCase } from './write-matrix.js';

let dir: string;
beforeAll(() => {
  dir = tmpDir('write');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const QUICK = new Set(['ext3-1k', 'ext4-1k-csum-32bit', 'ext4-4k-csum-64bit']);

describe('writer on the fixture matrix (quick subset)', () => {
  MATRIX.forEach((o, idx) => {
    if (!QUICK.has(matrixName(o))) return;
    const offset = matrixName(o) === 'ext4-1k-csum-32bit' ? 1 << 20 : 0;
    it(`${matrixName(o)}${offset ? ' at offset 1 MiB' : ''}`, () => runMatrixCase(o, idx, dir, offset, 30));
  });
});
