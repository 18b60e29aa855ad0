/**
 * Oracle test: for every MATRIX filesystem (ext2/3/4 x 1K/4K x metadata_csum x 64bit), the whole
 * tree read through ExtFs (names, inode numbers, modes, owners, sizes, link counts, symlink targets,
 * sha256 of every file) equals what debugfs reports (ls -p, stat, rdump).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtFs } from '../../src/ext/fs.js';
import { FileDevice, SliceDevice } from '../../src/image/blockdev.js';
import { MATRIX, makeExtImage, makeRichTree, matrixName } from '../fixtures/ext-images.js';
import { debugfsTree, extFsTree } from './read-oracle.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-'));
// The 70 MiB sparse file (triple-indirect with 1K block maps) only where it matters: 1K ext2/ext3.
const src = path.join(tmp, 'tree');
const srcTind = path.join(tmp, 'tree-tind');
const wantsTind = (o: { fsType: string; blockSize: number }): boolean =>
  o.fsType !== 'ext4' && o.blockSize === 1024;

beforeAll(() => {
  makeRichTree(src, { bigDirEntries: 400, tindFile: false });
  makeRichTree(srcTind, { bigDirEntries: 400, tindFile: true });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.each(MATRIX.map((o, i) => ({ ...o, name: matrixName(o), i })))('$name', (o) => {
  it('reads the same tree as debugfs', () => {
    // Every other image sits at an offset inside a bigger file, as a partition would.
    const offset = o.i % 2 === 1 ? 1 << 20 : 0;
    const img = makeExtImage(path.join(tmp, `${o.name}.img`), {
      ...o,
      srcDir: wantsTind(o) ? srcTind : src,
      sizeMiB: 64,
      offset,
    });
    const oracle = debugfsTree(img.spec, path.join(tmp, `${o.name}.dump`));
    const file = new FileDevice(img.path);
    try {
      const dev = offset ? new SliceDevice(file, offset, file.size - offset) : file;
      const x = ExtFs.open(dev);
      expect(x.fsType).toBe(o.fsType);
      expect(x.blockSize).toBe(o.blockSize);
      const ours = extFsTree(x);
      expect([...ours.keys()].sort()).toEqual([...oracle.keys()].sort());
      for (const [p, want] of oracle) expect({ path: p, ...ours.get(p) }).toEqual({ path: p, ...want });
      // The fixture really exercised what it claims to.
      expect(ours.size).toBeGreaterThan(400);
      expect(ours.get('/links/slow')!.content!.length).toBeGreaterThan(60);
      if (wantsTind(o)) expect(ours.get('/sparse/at70M')!.size).toBe((70 << 20) + 21);
    } finally {
      file.close();
      fs.rmSync(img.path, { force: true });
      fs.rmSync(path.join(tmp, `${o.name}.dump`), { recursive: true, force: true });
    }
  });
});
