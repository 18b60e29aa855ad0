/**
 * The matrix oracle suite, shared by two test files so vitest can run the halves in parallel:
 * for each MATRIX filesystem the whole tree read through ExtFs (names, inode numbers, modes, owners,
 * sizes, link counts, symlink targets, sha256 of every file) equals what debugfs reports
 * (ls -p, stat, rdump).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtFs } from '../../src/ext/fs.js';
import { FileDevice, SliceDevice } from '../../src/image/blockdev.js';
import {
  MATRIX,
  e2fsckClean,
  makeExtImage,
  makeRichTree,
  matrixName,
  type ExtImageOpts,
} from '../fixtures/ext-images.js';
import { debugfsTree, extFsTree, treeDiff } from './read-oracle.js';

// The 70 MiB sparse file (triple-indirect with 1K block maps) only where it matters: 1K ext2/ext3.
const wantsTind = (o: ExtImageOpts): boolean => o.fsType !== 'ext4' && o.blockSize === 1024;

export function matrixSuite(indexes: number[]): void {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-'));
  const src = path.join(tmp, 'tree');
  const srcTind = path.join(tmp, 'tree-tind');
  const entries = indexes.map((i) => ({ ...MATRIX[i]!, name: matrixName(MATRIX[i]!), i }));

  beforeAll(() => {
    makeRichTree(src, { bigDirEntries: 400, tindFile: false });
    if (entries.some(wantsTind)) makeRichTree(srcTind, { bigDirEntries: 400, tindFile: true });
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe.each(entries)('$name', (o) => {
    it('reads the same tree as debugfs', () => {
      // Every other image sits at an offset inside a bigger file, as a partition would.
      const offset = o.i % 2 === 1 ? 1 << 20 : 0;
      const img = makeExtImage(path.join(tmp, `${o.name}.img`), {
        ...o,
        srcDir: wantsTind(o) ? srcTind : src,
        sizeMiB: 64,
        offset,
      });
      // The fixture itself is a clean filesystem (and e2fsckClean, which other tests rely on, says so).
      const fsck = e2fsckClean(img.spec);
      expect(fsck, fsck.output).toMatchObject({ ok: true, exitCode: 0 });
      const oracle = debugfsTree(img.spec, path.join(tmp, `${o.name}.dump`));
      const file = new FileDevice(img.path);
      try {
        const dev = offset ? new SliceDevice(file, offset, file.size - offset) : file;
        const x = ExtFs.open(dev);
        expect(x.fsType).toBe(o.fsType);
        expect(x.blockSize).toBe(o.blockSize);
        if (o.metadataCsum !== undefined) expect(x.csumSeed !== null).toBe(o.metadataCsum);
        const ours = extFsTree(x);
        expect(treeDiff(ours, oracle)).toEqual([]);
        // The fixture really exercised what it claims to.
        expect(ours.size).toBeGreaterThan(400);
        expect(ours.get('/links/slow')!.content!.length).toBeGreaterThan(60);
        // Tree blocks were compared too (debugfs ETB / IND / DIND / TIND entries).
        expect(ours.get('/sparse/depth2')!.meta!.split(',').length).toBeGreaterThanOrEqual(4);
        if (wantsTind(o)) expect(ours.get('/sparse/at70M')!.meta!.split(',').length).toBe(3);
        const d2 = x.readInode(x.lookup('/sparse/depth2'));
        if (o.fsType === 'ext4') expect(d2.block.readUInt16LE(6)).toBe(2); // extent tree depth
        if (wantsTind(o)) {
          expect(ours.get('/sparse/at70M')!.size).toBe((70 << 20) + 21);
          expect(x.readInode(x.lookup('/sparse/at70M')).block.readUInt32LE(14 * 4)).not.toBe(0); // TIND used
        }
      } finally {
        file.close();
        fs.rmSync(img.path, { force: true });
        fs.rmSync(path.join(tmp, `${o.name}.dump`), { recursive: true, force: true });
      }
    });
  });
}
