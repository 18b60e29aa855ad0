/**
 * Quick property run on the real cloud kernel module tree: one seeded random third of the module
 * files deleted in random order, compared with native debugfs (see property-batch.ts for the oracles).
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as fs from 'node:fs';
import { getKernel, type KernelTree } from '../fixtures/kernel.js';
import { tmpDir, type Img } from './writer-fixtures.js';
import { kernelImage, runProperty } from './property-batch.js';

let dir: string;
let k: KernelTree;
let base: Img;
beforeAll(() => {
  dir = tmpDir('prop');
  k = getKernel('cloud');
  base = kernelImage(dir, k, 'cloud');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('random deletions from the cloud kernel module tree', () => {
  it('seed 1, a third of the modules: e2fsck clean, tree and free counts as debugfs', () => {
    runProperty(dir, k, base, 1, 0.33);
  });
});
