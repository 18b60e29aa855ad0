/**
 * The writer on the whole fixture matrix, every htree entry removed by its own call:
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

describe('writer on the fixture matrix (all 12, htree emptied one entry per call)', () => {
  MATRIX.forEach((o, idx) => {
    const offset = idx % 4 === 1 ? 1 << 20 : 0;
    it(`${matrixName(o)}${offset ? ' at offset 1 MiB' : ''}`, () => runMatrixCase(o, idx, dir, offset, 400));
  });
});
