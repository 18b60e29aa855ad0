/**
 * Shared body of the writer matrix tests (remove.write.test.ts quick, remove.write.slow.test.ts full).
 * The writer on the whole fixture matrix (ext2/ext3/ext4 × 1K/4K × metadata_csum × 64bit): unlink of
 * every inode kind, rmdir, rm -r, htree directories emptied entry by entry, shared xattr blocks,
 * shrink-rewrite across extent-depth changes and on block maps. Oracle after every step:
 * e2fsck -fn exits 0 and prints nothing but its pass lines and summary; contents checked with debugfs.
 */
import { expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { FileDevice, SliceDevice, type BlockDevice } from '../../src/image/blockdev.js';
import { checkFs, removePaths, rewriteFile, rewriteFileFromChunks } from '../../src/ext/write/index.js';
import { isUlfsError } from '../../src/errors.js';
import { fsSeed, setXattrBlockCsum } from '../../src/ext/checksums.js';
import type { ExtImageOpts } from '../fixtures/ext-images.js';
import { debugfs, e2fsck, inoOf, mkfs, run, writeFragmented, setXattr, type Img } from './writer-fixtures.js';

let dir = '';

function features(o: ExtImageOpts): string | undefined {
  const f: string[] = [];
  if (o.fsType === 'ext4') {
    if (o.metadataCsum !== undefined) f.push(o.metadataCsum ? 'metadata_csum' : '^metadata_csum');
    if (o.bit64 !== undefined) f.push(o.bit64 ? '64bit' : '^64bit');
  }
  return f.length ? f.join(',') : undefined;
}

function buildSource(root: string, o: ExtImageOpts): void {
  const bs = o.blockSize;
  fs.mkdirSync(path.join(root, 'd/e/f'), { recursive: true });
  fs.mkdirSync(path.join(root, 'htree'));
  for (let i = 0; i < 400; i++)
    fs.writeFileSync(
      path.join(root, 'htree', `entry-with-a-long-name-${String(i).padStart(4, '0')}`),
      `${i}\n`,
    );
  fs.writeFileSync(path.join(root, 'a'), 'hello\n');
  fs.linkSync(path.join(root, 'a'), path.join(root, 'hard'));
  fs.symlinkSync('a', path.join(root, 'fast'));
  fs.symlinkSync('t'.repeat(100), path.join(root, 'slow'));
  fs.writeFileSync(path.join(root, 'd/e/f/g'), 'g');
  fs.writeFileSync(path.join(root, 'd/e/h'), Buffer.alloc(3 * bs + 5, 3));
  writeFragmented(path.join(root, 'frag'), 30, bs, 1); // depth 1 on extents
  writeFragmented(path.join(root, 'frag2'), 30, bs, 9);
  fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(300 * 1024, 0x42)); // block map: single/double indirect
  fs.writeFileSync(path.join(root, 'big2'), Buffer.alloc(300 * 1024, 0x43));
  if (o.fsType === 'ext4') {
    // depth 2: more than 4 leaves of (bs-12)/12 extents
    writeFragmented(path.join(root, 'deep'), bs === 4096 ? 1400 : 360, bs, 5);
    writeFragmented(path.join(root, 'deep2'), bs === 4096 ? 1400 : 360, bs, 6);
  }
  if (o.fsType !== 'ext4' && bs === 1024) {
    const fd = fs.openSync(path.join(root, 'tind'), 'w');
    fs.writeSync(fd, Buffer.from('end'), 0, 3, 70 * 1024 * 1024);
    fs.closeSync(fd);
  }
  if (bs === 4096) {
    for (const n of ['x1', 'x2']) {
      fs.writeFileSync(path.join(root, n), n);
      setXattr(path.join(root, n), 'user.big', Buffer.alloc(2000, 0x56));
    }
  }
}

/** Makes x2 share x1's xattr block (refcount 2), the way the kernel dedups identical blocks. */
function shareXattr(img: Img, bs: number): void {
  const a = Number(/File ACL: (\d+)/.exec(debugfs(img.spec, ['stat /x1']))![1]);
  const b = Number(/File ACL: (\d+)/.exec(debugfs(img.spec, ['stat /x2']))![1]);
  debugfs(img.spec, [`sif /x2 file_acl ${a}`, `freeb ${b}`], true);
  const fd = fs.openSync(img.path, 'r+');
  const blk = Buffer.alloc(bs);
  fs.readSync(fd, blk, 0, bs, img.offset + a * bs);
  blk.writeUInt32LE(2, 4);
  const sb = Buffer.alloc(1024);
  fs.readSync(fd, sb, 0, 1024, img.offset + 1024);
  if (sb.readUInt32LE(0x64) & 0x400) setXattrBlockCsum(fsSeed(sb), a, blk);
  fs.writeSync(fd, blk, 0, bs, img.offset + a * bs);
  fs.closeSync(fd);
}

function sha(spec: string, p: string): string {
  const tmp = path.join(dir, 'dump.bin');
  fs.rmSync(tmp, { force: true });
  debugfs(spec, [`dump ${p} ${tmp}`]);
  return createHash('sha256').update(fs.readFileSync(tmp)).digest('hex');
}
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function expectClean(img: Img, dev: BlockDevice, step: string): void {
  const r = e2fsck(img.spec);
  expect(r.ok ? '' : `${step}:\n${r.output}`).toBe('');
  const c = checkFs(dev);
  expect(c.findings, step).toEqual([]);
}

function extentDepth(spec: string, p: string): number {
  const out = debugfs(spec, [`ex ${p}`]);
  const m = /^\s*\d+\/\s*(\d+)/m.exec(out);
  return m ? Number(m[1]) : 0;
}

/**
 * One matrix case: build the image, run every operation, check after each step.
 * `singles` = how many htree entries are removed one call at a time (the rest in one batch).
 */
export async function runMatrixCase(
  o: ExtImageOpts,
  idx: number,
  workDir: string,
  offset: number,
  singles: number,
): Promise<void> {
  dir = workDir;
  const src = path.join(dir, `src-${idx}`);
  buildSource(src, o);
  const img = mkfs(path.join(dir, `m${idx}.img`), {
    type: o.fsType,
    bs: o.blockSize,
    features: features(o),
    src,
    sizeMiB: 64,
    offset,
  });
  debugfs(img.spec, ['mknod fifo p'], true);
  if (o.blockSize === 4096) shareXattr(img, o.blockSize);
  // builds the htree directory (and fixes the counters debugfs freeb leaves behind)
  run('e2fsck', ['-fyD', img.spec], { allowFail: true });
  const file = new FileDevice(img.path, 'rw');
  const dev = offset ? new SliceDevice(file, offset, file.size - offset) : file;
  try {
    expectClean(img, dev, 'fixture');
    expect(debugfs(img.spec, ['htree /htree'])).toMatch(/Root node dump/);

    // hard link: first name keeps the inode alive
    let r = removePaths(dev, ['/a']);
    expect(r).toMatchObject({ removedFiles: 1, inodesFreed: 0 });
    expect(sha(img.spec, '/hard')).toBe(sha256(Buffer.from('hello\n')));
    const freedInos = ['/hard', '/fast', '/slow', '/fifo'].map((p) => inoOf(img.spec, p));
    r = removePaths(dev, ['/hard', '/fast', '/slow', '/fifo']);
    expect(r).toMatchObject({ removedFiles: 4, inodesFreed: 4 });
    expectClean(img, dev, 'links, symlinks, fifo');
    // freed inode records are wiped: debugfs dumps nothing but zero words
    for (const ino of freedInos) {
      const words = debugfs(img.spec, [`inode_dump <${ino}>`])
        .split('\n')
        .flatMap((l) => (/^[0-7]{4}  /.test(l) ? l.slice(6, 45).trim().split(/\s+/) : []));
      expect(words.length, `inode ${ino}`).toBeGreaterThan(0);
      expect(
        words.filter((w) => w !== '0000'),
        `inode ${ino}`,
      ).toEqual([]);
    }

    // extent depth 1 / 2 trees, block maps up to triple indirect
    const gone = ['/frag', '/big'];
    if (o.fsType === 'ext4') gone.push('/deep');
    if (o.fsType !== 'ext4' && o.blockSize === 1024) gone.push('/tind');
    if (o.fsType === 'ext4') expect(extentDepth(img.spec, '/deep')).toBe(2);
    r = removePaths(dev, gone);
    expect(r.inodesFreed).toBe(gone.length);
    expectClean(img, dev, 'trees');

    if (o.blockSize === 4096) {
      removePaths(dev, ['/x1']);
      expectClean(img, dev, 'shared xattr, refcount 2 -> 1');
      removePaths(dev, ['/x2']);
      expectClean(img, dev, 'shared xattr, freed');
    }

    // htree: every third entry in one batch, then the rest one call at a time, then rmdir
    const names = Array.from(
      { length: 400 },
      (_, i) => `/htree/entry-with-a-long-name-${String(i).padStart(4, '0')}`,
    );
    removePaths(
      dev,
      names.filter((_, i) => i % 3 === 0),
    );
    expectClean(img, dev, 'htree every third');
    const rest = names.filter((_, i) => i % 3 !== 0);
    for (const n of rest.slice(0, singles)) removePaths(dev, [n]);
    removePaths(dev, rest.slice(singles));
    expectClean(img, dev, 'htree emptied');
    r = removePaths(dev, ['/htree']);
    expect(r.removedDirs).toBe(1);
    expectClean(img, dev, 'htree rmdir');

    // nested rmdir without -r fails and changes nothing; with -r everything goes
    let err: unknown;
    try {
      removePaths(dev, ['/d']);
    } catch (e) {
      err = e;
    }
    expect(isUlfsError(err) && err.code).toBe('EXT_DIR_NOT_EMPTY');
    r = removePaths(dev, ['/d'], { recursive: true });
    expect(r).toMatchObject({ removedDirs: 3, removedFiles: 2 });
    expectClean(img, dev, 'rm -r');

    // shrink-rewrite
    const frag2 = inoOf(img.spec, '/frag2');
    const bs = o.blockSize;
    // 3 extents' worth: depth 1 -> root
    const three = Buffer.alloc(5 * bs + 7, 0);
    for (let i = 0; i < 5; i += 2) three.fill(0x61 + i, i * bs, (i + 1) * bs);
    rewriteFile(dev, frag2, three);
    expect(sha(img.spec, '/frag2')).toBe(sha256(three));
    if (o.fsType === 'ext4') expect(extentDepth(img.spec, '/frag2')).toBe(0);
    expectClean(img, dev, 'shrink to root');
    rewriteFile(dev, frag2, Buffer.alloc(0));
    expectClean(img, dev, 'shrink to 0');
    if (o.fsType === 'ext4') {
      // depth 2 -> depth 1 with two leaves, through the streaming API
      const deep2 = inoOf(img.spec, '/deep2');
      const cap = Math.floor((bs - 12) / 12);
      const keepExtents = cap + 10;
      const content = Buffer.alloc((2 * keepExtents - 1) * bs + 100);
      for (let i = 0; i < keepExtents; i++) content.fill(i + 1, 2 * i * bs, (2 * i + 1) * bs);
      const chunks = function* (): Generator<Buffer> {
        for (let off = 0; off < content.length; off += 77_777) yield content.subarray(off, off + 77_777);
      };
      const rr = await rewriteFileFromChunks(dev, deep2, chunks());
      expect(rr.newSize).toBe(content.length);
      expect(extentDepth(img.spec, '/deep2')).toBe(1);
      expect(sha(img.spec, '/deep2')).toBe(sha256(content));
      expectClean(img, dev, 'depth 2 -> 1');
    }
    // block-mapped (or extent) big file: 300 KiB -> 20 KiB
    const big2 = inoOf(img.spec, '/big2');
    const small = Buffer.alloc(20 * 1024 + 3, 0x7a);
    rewriteFile(dev, big2, small);
    expect(sha(img.spec, '/big2')).toBe(sha256(small));
    expectClean(img, dev, 'shrink big');
    // larger than allocated: refused, nothing written
    let tooLarge: unknown;
    try {
      rewriteFile(dev, big2, Buffer.alloc(400 * 1024, 1));
    } catch (e) {
      tooLarge = e;
    }
    expect(isUlfsError(tooLarge) && tooLarge.code).toBe('EXT_TOO_LARGE');
    expect(sha(img.spec, '/big2')).toBe(sha256(small));
    expectClean(img, dev, 'after refusal');
  } finally {
    file.close();
  }
}
