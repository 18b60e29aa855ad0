/**
 * The writer driven through the reader's ExtFs (the way prune uses it): the ExtFs is reloaded after
 * every write, so lookups and reads see the new state at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileDevice, SliceDevice } from '../../src/image/blockdev.js';
import { ExtFs } from '../../src/ext/fs.js';
import { isUlfsError } from '../../src/errors.js';
import { removePaths, rewriteFile } from '../../src/ext/write/index.js';
import { e2fsck, mkfs, tmpDir, type Img } from './writer-fixtures.js';

let dir: string;
let img: Img;
beforeAll(() => {
  dir = tmpDir('extfs');
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc', 'big'), Buffer.alloc(100_000, 0x61));
  fs.writeFileSync(path.join(src, 'etc', 'gone'), 'bye');
  img = mkfs(path.join(dir, 'x.img'), { type: 'ext4', bs: 4096, src, sizeMiB: 16, offset: 1 << 20 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('writer on an ExtFs', () => {
  it('remove and rewrite are visible through the same ExtFs', () => {
    const file = new FileDevice(img.path, 'rw');
    try {
      const ext = ExtFs.open(new SliceDevice(file, img.offset, file.size - img.offset));
      const big = ext.lookup('/etc/big');
      expect(ext.readFile(big).length).toBe(100_000);
      removePaths(ext, ['/etc/gone']);
      let err: unknown;
      try {
        ext.lookup('/etc/gone');
      } catch (e) {
        err = e;
      }
      expect(isUlfsError(err) && err.code).toBe('EXT_NOT_FOUND');
      rewriteFile(ext, big, Buffer.from('short'));
      expect(ext.readFile(big).toString()).toBe('short');
      expect(
        ext
          .readDir(ext.lookup('/etc'))
          .map((e) => e.name)
          .sort(),
      ).toEqual(['.', '..', 'big']);
    } finally {
      file.close();
    }
    expect(e2fsck(img.spec).ok).toBe(true);
  });
});
