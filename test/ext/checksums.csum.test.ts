/**
 * Every checksum recipe in src/ext/checksums.ts, recomputed over real mke2fs images and compared with
 * what e2fsprogs stored on disk (the oracle is mke2fs/e2fsck -fyD themselves).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { le16, le32 } from '../../src/binary/bytes.js';
import * as C from '../../src/ext/checksums.js';
import { mkfs, run, tmpDir, writeFragmented, setXattr, type Img } from './writer-fixtures.js';

interface Counts {
  sb: number;
  gd: number;
  bbm: number;
  ibm: number;
  inodes: number;
  leaves: number;
  dx: number;
  extents: number;
  xattr: number;
}

/** Walks an image with minimal raw parsing and verifies every checksum it meets. */
function verifyAll(img: Img): Counts {
  const file = fs.readFileSync(img.path).subarray(img.offset);
  const sb = file.subarray(1024, 2048);
  const bs = 1024 << le32(sb, 0x18);
  const blk = (n: number): Buffer => file.subarray(n * bs, n * bs + bs);
  const incompat = le32(sb, 0x60);
  const descSize = incompat & 0x80 ? le16(sb, 0xfe) : 32;
  const firstData = le32(sb, 0x14);
  const bpg = le32(sb, 0x20);
  const ipg = le32(sb, 0x28);
  const inodeSize = le16(sb, 0x58);
  const blocks = le32(sb, 0x04) + (incompat & 0x80 ? le32(sb, 0x150) * 2 ** 32 : 0);
  const groups = Math.ceil((blocks - firstData) / bpg);
  const meta = C.hasMetadataCsum(sb);
  const gdtCsum = C.hasGroupDescCsum(sb);
  const S = C.fsSeed(sb);
  const c: Counts = { sb: 0, gd: 0, bbm: 0, ibm: 0, inodes: 0, leaves: 0, dx: 0, extents: 0, xattr: 0 };
  if (meta) {
    expect(C.verifySuperblockCsum(sb)).toBe(true);
    c.sb++;
  }
  const gdtStart = (firstData + 1) * bs;
  for (let g = 0; g < groups; g++) {
    const d = file.subarray(gdtStart + g * descSize, gdtStart + (g + 1) * descSize);
    if (gdtCsum) {
      expect(C.verifyGroupDescCsum(sb, S, g, d), `group ${g} desc`).toBe(true);
      c.gd++;
    }
    const flags = le16(d, 0x12);
    const bbmBlock = le32(d, 0) + (descSize >= 64 ? le32(d, 0x20) * 2 ** 32 : 0);
    const ibmBlock = le32(d, 4) + (descSize >= 64 ? le32(d, 0x24) * 2 ** 32 : 0);
    const itable = le32(d, 8) + (descSize >= 64 ? le32(d, 0x28) * 2 ** 32 : 0);
    if (meta && !(flags & 2)) {
      expect(C.verifyBitmapCsum(d, 'block', C.blockBitmapCsum(S, blk(bbmBlock), bpg)), `group ${g} bbm`).toBe(
        true,
      );
      c.bbm++;
    }
    if (meta && !(flags & 1)) {
      expect(C.verifyBitmapCsum(d, 'inode', C.inodeBitmapCsum(S, blk(ibmBlock), ipg)), `group ${g} ibm`).toBe(
        true,
      );
      c.ibm++;
    }
    if (!meta || flags & 1) continue;
    const unused = gdtCsum ? le16(d, 0x1c) : 0;
    for (let i = 0; i < ipg - unused; i++) {
      const ino = g * ipg + i + 1;
      const off = itable * bs + i * inodeSize;
      const raw = file.subarray(off, off + inodeSize);
      if (raw.subarray(0, 128).equals(Buffer.alloc(128))) continue;
      expect(C.verifyInodeCsum(S, ino, raw, inodeSize), `inode ${ino}`).toBe(true);
      c.inodes++;
      const mode = le16(raw, 0);
      const links = le16(raw, 0x1a);
      const gen = le32(raw, 0x64);
      if (links === 0) continue;
      const acl = le32(raw, 0x68) + le16(raw, 0x76) * 2 ** 32;
      if (acl) {
        expect(C.verifyXattrBlockCsum(S, acl, blk(acl)), `xattr block ${acl}`).toBe(true);
        c.xattr++;
      }
      if (!(le32(raw, 0x20) & 0x80000)) continue;
      // extent walk: data runs and tree blocks
      const runs: [number, number][] = [];
      const walk = (node: Uint8Array, isRoot: boolean): void => {
        expect(le16(node, 0)).toBe(0xf30a);
        if (!isRoot) {
          expect(C.verifyExtentBlockCsum(S, ino, gen, node), `extent block of ${ino}`).toBe(true);
          c.extents++;
        }
        const n = le16(node, 2);
        const depth = le16(node, 6);
        for (let k = 0; k < n; k++) {
          const e = 12 + 12 * k;
          if (depth === 0) {
            const len = le16(node, e + 4);
            runs.push([le32(node, e + 8) + le16(node, e + 6) * 2 ** 32, len > 32768 ? len - 32768 : len]);
          } else walk(blk(le32(node, e + 4) + le16(node, e + 8) * 2 ** 32), false);
        }
      };
      walk(raw.subarray(0x28, 0x28 + 60), true);
      if ((mode & 0xf000) !== 0x4000) continue;
      for (const [p, len] of runs) {
        for (let k = 0; k < len; k++) {
          const b = blk(p + k);
          const co = C.dxCountOffset(b);
          if (co !== null) {
            expect(C.verifyDxCsum(S, ino, gen, b, co), `dx block ${p + k} of dir ${ino}`).toBe(true);
            c.dx++;
          } else if (C.hasDirTail(b)) {
            expect(C.verifyDirLeafCsum(S, ino, gen, b), `leaf ${p + k} of dir ${ino}`).toBe(true);
            c.leaves++;
          }
        }
      }
    }
  }
  return c;
}

let dir: string;
let src: string;
let src1k: string;
beforeAll(() => {
  dir = tmpDir('csum');
  src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'big'), { recursive: true });
  for (let i = 0; i < 3000; i++)
    fs.writeFileSync(path.join(src, 'big', `a-rather-long-file-name-number-${i}`), '');
  writeFragmented(path.join(src, 'frag'), 20, 4096);
  src1k = path.join(dir, 'src1k');
  fs.cpSync(src, src1k, { recursive: true });
  fs.writeFileSync(path.join(src, 'x1'), 'one');
  setXattr(path.join(src, 'x1'), 'user.big', Buffer.alloc(2000, 0x56));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function build(name: string, o: Parameters<typeof mkfs>[1], htree = true): Img {
  const img = mkfs(path.join(dir, name), o);
  if (htree) run('e2fsck', ['-fyD', img.spec], { allowFail: true });
  return img;
}

describe('checksums over real images', () => {
  it('ext4 4K metadata_csum 64bit flex_bg: every recipe', () => {
    const c = verifyAll(build('a.img', { type: 'ext4', bs: 4096, src, sizeMiB: 64, extra: ['-g', '2048'] }));
    expect(c.sb).toBe(1);
    expect(c.gd).toBeGreaterThan(1);
    expect(c.bbm).toBeGreaterThan(0);
    expect(c.ibm).toBeGreaterThan(0);
    expect(c.inodes).toBeGreaterThan(3000);
    expect(c.leaves).toBeGreaterThan(3);
    expect(c.dx).toBeGreaterThan(0);
    expect(c.extents).toBeGreaterThan(0);
    expect(c.xattr).toBeGreaterThan(0);
  });
  it('ext4 1K ^64bit (32-byte descriptors, 16-bit bitmap csums, 2-level htree)', () => {
    const c = verifyAll(
      build('b.img', { type: 'ext4', bs: 1024, features: '^64bit', src: src1k, sizeMiB: 64 }),
    );
    expect(c.gd).toBeGreaterThan(1);
    expect(c.dx).toBeGreaterThan(1);
    expect(c.extents).toBeGreaterThan(0);
  });
  it('crc16 gdt_csum with 64-byte and 32-byte descriptors', () => {
    const c1 = verifyAll(
      build(
        'c.img',
        { type: 'ext4', bs: 4096, features: '^metadata_csum,uninit_bg', sizeMiB: 64, extra: ['-g', '2048'] },
        false,
      ),
    );
    expect(c1.gd).toBeGreaterThan(1);
    const c2 = verifyAll(
      build('d.img', { type: 'ext3', bs: 1024, features: 'uninit_bg', sizeMiB: 32 }, false),
    );
    expect(c2.gd).toBeGreaterThan(1);
  });
  it('128-byte inodes (lo 16 bits only)', () => {
    const c = verifyAll(
      build('e.img', { type: 'ext4', bs: 4096, src, sizeMiB: 32, extra: ['-I', '128'] }, false),
    );
    expect(c.inodes).toBeGreaterThan(3000);
  });
  it('metadata_csum_seed after tune2fs -U random', () => {
    const img = build(
      'f.img',
      { type: 'ext4', bs: 4096, features: 'metadata_csum_seed', src, sizeMiB: 32 },
      false,
    );
    run('tune2fs', ['-U', 'random', img.spec]);
    const c = verifyAll(img);
    expect(c.inodes).toBeGreaterThan(3000);
    // the seed is no longer derived from the (new) UUID
    const sb = fs.readFileSync(img.path).subarray(1024, 2048);
    expect(C.fsSeed(sb)).not.toBe(
      C.fsSeed(Buffer.concat([sb.subarray(0, 0x60), Buffer.alloc(4), sb.subarray(0x64)])),
    );
  });
  it('a flipped byte breaks each verification', () => {
    const img = path.join(dir, 'a.img');
    const file = fs.readFileSync(img);
    const sb = Buffer.from(file.subarray(1024, 2048));
    sb[0x100]! ^= 1;
    expect(C.verifySuperblockCsum(sb)).toBe(false);
    const S = C.fsSeed(sb);
    const d = Buffer.from(file.subarray(4096, 4096 + 64));
    expect(C.verifyGroupDescCsum(sb, S, 0, d)).toBe(true);
    d[0x0c]! ^= 1;
    expect(C.verifyGroupDescCsum(sb, S, 0, d)).toBe(false);
    const raw = Buffer.alloc(256, 7);
    C.setInodeCsum(S, 12, raw, 256);
    expect(C.verifyInodeCsum(S, 12, raw, 256)).toBe(true);
    raw[0x90]! ^= 1;
    expect(C.verifyInodeCsum(S, 12, raw, 256)).toBe(false);
  });
});
