/**
 * Slow property runs: several seeds and fractions on the cloud kernel tree (4K and 1K blocks),
 * each compared with native debugfs (see property-batch.ts).
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as fs from 'node:fs';
import { getKernel, type KernelTree } from '../fixtures/kernel.js';
import { tmpDir, type Img } from './writer-fixtures.js';
import { kernelImage, runProperty } from './property-batch.js';

let dir: string;
let k: KernelTree;
let base4: Img;
let base1: Img;
beforeAll(() => {
  dir = tmpDir('prop-slow');
  k = getKernel('cloud');
  base4 = kernelImage(dir, k, 'cloud4k', 4096);
  base1 = kernelImage(dir, k, 'cloud1k', 1024);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('random deletions from the cloud kernel module tree (slow)', () => {
  for (const [seed, fraction] of [
    [2, 0.1],
    [3, 0.5],
    [4, 0.9],
    [5, 1.0],
  ] as const) {
    it(`4K seed ${seed} fraction ${fraction}`, () => runProperty(dir, k, base4, seed, fraction));
    it(`1K seed ${seed} fraction ${fraction}`, () => runProperty(dir, k, base1, seed + 100, fraction));
  }
});
