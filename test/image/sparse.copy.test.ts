/** copySparse: an identical copy whose holes stay holes (checked with `du`). */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copySparse } from '../../src/image/sparse.js';
import { makeBareExt } from '../fixtures/disk-images.js';
import { codeOf } from '../helpers/errors.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-sparse-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const duBytes = (p: string): number =>
  Number(execFileSync('du', ['-B1', p], { encoding: 'utf8' }).split('\t')[0]);

describe('copySparse', () => {
  for (const direct of [true, false]) {
    it(`copies a 16 MiB image (odd size) with scattered data identically, and the copy stays sparse (${direct ? 'O_DIRECT' : 'buffered'})`, () => {
      const src = path.join(dir, `src-${direct}.img`);
      const size = (16 << 20) + 777; // not a multiple of 512: the O_DIRECT tail read
      const fd = fs.openSync(src, 'w');
      const data = randomBytes(3 * 65536 + 100);
      for (const off of [0, 5 << 20, (11 << 20) + 12345, size - 1000]) {
        fs.writeSync(fd, data, 0, Math.min(data.length, size - off), off);
      }
      fs.ftruncateSync(fd, size);
      fs.closeSync(fd);
      const dst = path.join(dir, `dst-${direct}.img`);
      const r = copySparse(src, dst, { direct });
      expect(r.size).toBe(size);
      expect(fs.statSync(dst).size).toBe(size);
      expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
      expect(r.dataBytes).toBeLessThan(1 << 20);
      expect(duBytes(dst)).toBeLessThan(2 << 20); // allocated: the data runs only
      expect(codeOf(() => copySparse(src, dst))).toBe('USAGE');
      copySparse(src, dst, { overwrite: true, direct });
      expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    });
  }

  it('a fresh ext4 image: identical, and no more allocated than the source (du)', () => {
    const src = path.join(dir, 'fs.img');
    makeBareExt(src, 16);
    const dst = path.join(dir, 'fs-copy.img');
    copySparse(src, dst);
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    expect(duBytes(dst)).toBeLessThanOrEqual(duBytes(src) + (1 << 20));
    expect(duBytes(dst)).toBeLessThan(16 << 20);
  });

  it('a missing source is IMAGE_NOT_FOUND', () => {
    expect(codeOf(() => copySparse(path.join(dir, 'nope.img'), path.join(dir, 'x.img')))).toBe(
      'IMAGE_NOT_FOUND',
    );
  });
});
