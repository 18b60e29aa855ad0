/**
 * The two writer steps prune uses to put module files right before an uncompressed initramfs:
 * a streaming rewrite that starts the new content `reserveHead` blocks into the old allocation
 * (leaving that head free, or wrapping into it when the content needs the room), and relocateFiles,
 * which moves files into such a run. Judged by e2fsck -fn, by debugfs (contents, block lists) and by
 * our own check, on images mke2fs built.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { FileDevice, SliceDevice } from '../../src/image/blockdev.js';
import { checkFs, headRotation, relocateFiles, rewriteFileFromChunks } from '../../src/ext/write/index.js';
import { pseudoRandom } from '../fixtures/ext-images.js';
import { fileBlocks } from '../helpers/images.js';
import { debugfs, e2fsck, inoOf, mkfs, tmpDir, writeFragmented, type Img } from './writer-fixtures.js';

let dir: string;
let src: string;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(() => {
  dir = tmpDir('relocate');
  src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'mods'), { recursive: true });
  fs.writeFileSync(path.join(src, 'init.img'), pseudoRandom(3 << 20, 11));
  fs.writeFileSync(path.join(src, 'mods/a.ko'), pseudoRandom(100_000, 12));
  // b.ko: a hole of 3 blocks in the middle (mke2fs -d keeps holes)
  const fd = fs.openSync(path.join(src, 'mods/b.ko'), 'w');
  fs.writeSync(fd, pseudoRandom(9000, 13), 0, 9000, 0);
  fs.writeSync(fd, pseudoRandom(5000, 14), 0, 5000, 9000 + 3 * 4096 + 1234);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(src, 'mods/c.ko'), 'tiny\n');
  // frag.ko: 12 extents, so its extent tree has a leaf block to free
  writeFragmented(path.join(src, 'mods/frag.ko'), 12, 4096, 5);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function dump(img: Img, p: string): Buffer {
  const out = path.join(dir, 'dump.bin');
  fs.rmSync(out, { force: true });
  debugfs(img.spec, [`dump ${p} ${out}`]);
  return fs.readFileSync(out);
}

const blocksOf = (img: Img, p: string): number[] => fileBlocks(img.spec, p);

function expectClean(img: Img, dev: FileDevice, what: string): void {
  const r = e2fsck(img.spec);
  expect(r.ok, `${what}: ${r.output}`).toBe(true);
  expect(checkFs(new SliceDevice(dev, img.offset, dev.size - img.offset)).findings, what).toEqual([]);
}

function pieces(content: Buffer, size = 70_001): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < content.length; at += size) out.push(content.subarray(at, at + size));
  return out;
}

describe.each([
  { name: 'ext4 4 KiB metadata_csum', bs: 4096 as const, features: 'metadata_csum' },
  { name: 'ext4 1 KiB no csum', bs: 1024 as const, features: '^metadata_csum' },
])('reserveHead and relocateFiles on $name', ({ bs, features }) => {
  let img: Img;
  let dev: FileDevice;
  let part: SliceDevice;
  beforeAll(() => {
    img = mkfs(path.join(dir, `fs-${bs}.img`), { type: 'ext4', bs, features, src, offset: 4096 });
    dev = new FileDevice(img.path, 'rw');
    part = new SliceDevice(dev, img.offset, dev.size - img.offset);
  });
  afterAll(() => dev.close());

  it('headRotation: n blocks into the first run that holds n; 0 for a file with holes or too small', () => {
    const init = inoOf(img.spec, '/init.img');
    const a = blocksOf(img, '/init.img').length;
    expect(headRotation(part, init, 10)).toBe(10);
    expect(headRotation(part, init, a)).toBe(0);
    expect(headRotation(part, inoOf(img.spec, '/mods/frag.ko'), 1)).toBe(0); // holes: not rotatable
  });

  it('starts the content after the reserved head, then moves files into it, in order, ending at the content', async () => {
    const before = blocksOf(img, '/init.img');
    expect(before.every((b, i) => i === 0 || b === before[i - 1]! + 1)).toBe(true); // mke2fs -d: one run
    const g = Math.ceil(300_000 / bs);
    const content = pseudoRandom(1 << 20, 21);
    const r = await rewriteFileFromChunks(part, inoOf(img.spec, '/init.img'), pieces(content), {
      reserveHead: g,
    });
    expect(r.headFree).toEqual([before[0], g]);
    expect(blocksOf(img, '/init.img')[0]).toBe(before[0]! + g);
    expect(sha(dump(img, '/init.img'))).toBe(sha(content));
    expectClean(img, dev, 'after the rewrite');

    const files = ['/mods/a.ko', '/mods/b.ko', '/mods/c.ko', '/mods/frag.ko'];
    const shas = files.map((f) => sha(dump(img, f)));
    const end = before[0]! + g;
    const rr = relocateFiles(
      part,
      files.map((f) => inoOf(img.spec, f)),
      end,
      g,
    );
    expect(rr.skipped).toEqual([]);
    // each file is one run, the runs follow each other and the last ends where the content starts
    let next = rr.run![0];
    for (const [i, f] of files.entries()) {
      const bl = blocksOf(img, f);
      const size = fs.statSync(path.join(src, f)).size;
      expect(bl.length, f).toBe(Math.ceil(size / bs)); // holes written out: dense
      expect(bl, f).toEqual(bl.map((_, k) => next + k));
      next += bl.length;
      expect(sha(dump(img, f)), f).toBe(shas[i]);
    }
    expect(next).toBe(end);
    expectClean(img, dev, 'after relocating');
  });

  it('skips files that do not fit in the room, and keeps order for the rest', () => {
    const a = inoOf(img.spec, '/mods/a.ko');
    const c = inoOf(img.spec, '/mods/c.ko');
    // the last block of the file system is free (mke2fs -d fills from the start)
    const total = Number(/^Block count:\s+(\d+)/m.exec(debugfs(img.spec, ['stats']))![1]);
    const end = total;
    const rr = relocateFiles(part, [c, a, c], end, 1);
    expect(rr.moved).toEqual([c]);
    expect(rr.skipped).toEqual([a, c]);
    expect(blocksOf(img, '/mods/c.ko')).toEqual([end - 1]);
    expectClean(img, dev, 'after a partial relocation');
  });

  it('wraps content longer than the allocation minus the head into the head', async () => {
    const before = blocksOf(img, '/init.img');
    const a = before.length;
    const g = 40;
    const content = pseudoRandom((a - g + 5) * bs - 100, 22);
    const r = await rewriteFileFromChunks(part, inoOf(img.spec, '/init.img'), pieces(content), {
      reserveHead: g,
    });
    expect(r.headFree).toEqual([before[0]! + 5, g - 5]);
    const after = blocksOf(img, '/init.img');
    expect(after.slice(0, a - g)).toEqual(before.slice(g));
    expect(after.slice(a - g)).toEqual(before.slice(0, 5));
    expect(sha(dump(img, '/init.img'))).toBe(sha(content));
    expectClean(img, dev, 'after a wrapped rewrite');
  });

  it('remaps content that fills the whole allocation (nothing freed, the head used last)', async () => {
    const before = blocksOf(img, '/init.img');
    const a = before.length;
    const content = pseudoRandom(a * bs, 24);
    const r = await rewriteFileFromChunks(part, inoOf(img.spec, '/init.img'), pieces(content), {
      reserveHead: 3,
    });
    expect(r.headFree).toBeNull();
    expect(blocksOf(img, '/init.img')).toEqual([...before.slice(3), ...before.slice(0, 3)]);
    expect(sha(dump(img, '/init.img'))).toBe(sha(content));
    expectClean(img, dev, 'after a full rotated rewrite');
  });

  it('does not rotate when the head is not one run or is the whole file; the rewrite still happens', async () => {
    const ino = inoOf(img.spec, '/init.img');
    const now = blocksOf(img, '/init.img'); // two runs after the rotations above
    const content = pseudoRandom(now.length * bs - 7, 23);
    const r = await rewriteFileFromChunks(part, ino, pieces(content), { reserveHead: now.length });
    expect(r.headFree).toBeNull();
    expect(blocksOf(img, '/init.img')).toEqual(now);
    expect(sha(dump(img, '/init.img'))).toBe(sha(content));
    expectClean(img, dev, 'after a rewrite that could not reserve');
  });
});
