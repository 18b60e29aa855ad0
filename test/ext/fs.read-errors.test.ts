/**
 * Bad input: each case patches bytes of a real mke2fs image (locations from debugfs) and checks
 * that ExtFs fails with the right stable code, quickly (no hang), instead of crashing or looping.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUlfsError, type ErrorCode } from '../../src/errors.js';
import { ExtFs } from '../../src/ext/fs.js';
import * as csum from '../../src/ext/checksums.js';
import { MemoryDevice } from '../../src/image/blockdev.js';
import { debugfs, e2fsckClean, makeExtImage, pseudoRandom } from '../fixtures/ext-images.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-err-'));
const BS = 4096;
let base: Buffer; // ext4, 4K, metadata_csum, 64bit
let spec: string;
let baseExt3: Buffer; // ext3, 1K, block maps, no checksums

function expectCode(fn: () => unknown, code: ErrorCode): Error {
  const t0 = Date.now();
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(isUlfsError(err) ? err.code : err).toBe(code);
  return err as Error;
}

/** "located at block B, offset 0xO" from debugfs imap -> byte offset of the inode. */
function inodeAt(ino: number, s = spec, bs = BS): number {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(s, [`imap <${ino}>`]))!;
  return Number(m[1]) * bs + parseInt(m[2]!, 16);
}
/** First data block of a path (debugfs blocks). */
function firstBlock(p: string, s = spec): number {
  const out = debugfs(s, [`blocks "${p}"`]);
  return Number(out.split('\n')[1]!.trim().split(/\s+/)[0]);
}
function inodeOf(p: string, s = spec): number {
  return Number(/Inode: (\d+)/.exec(debugfs(s, [`stat "${p}"`]))![1]);
}
const open = (b: Buffer, verifyChecksums = true): ExtFs =>
  ExtFs.open(new MemoryDevice(b, { writable: false }), { verifyChecksums });
const S = (b: Buffer): Buffer => b.subarray(1024, 2048);
/** Re-checksums an inode after patching it (so only the intended fault remains). */
function fixInode(b: Buffer, ino: number, off: number): void {
  const seed = csum.fsSeed(S(b));
  csum.setInodeCsum(seed, ino, b.subarray(off, off + 256), 256);
}

beforeAll(() => {
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, 'd1/d2'), { recursive: true });
  fs.writeFileSync(path.join(src, 'd1/d2/f'), 'file in d2\n');
  fs.writeFileSync(path.join(src, 'd1/g'), 'file in d1\n');
  fs.writeFileSync(path.join(src, 'small'), 'small\n');
  const fd = fs.openSync(path.join(src, 'sparse'), 'w');
  const blk = pseudoRandom(4096, 9);
  for (let i = 0; i < 20; i++) fs.writeSync(fd, blk, 0, blk.length, i * 8192);
  fs.closeSync(fd);
  fs.symlinkSync('loop-b', path.join(src, 'loop-a'));
  fs.symlinkSync('loop-a', path.join(src, 'loop-b'));
  const img = makeExtImage(path.join(tmp, 'base.img'), {
    fsType: 'ext4',
    blockSize: 4096,
    metadataCsum: true,
    bit64: true,
    srcDir: src,
    sizeMiB: 16,
  });
  spec = img.spec;
  base = fs.readFileSync(img.path);
  const img3 = makeExtImage(path.join(tmp, 'ext3.img'), {
    fsType: 'ext3',
    blockSize: 1024,
    srcDir: src,
    sizeMiB: 8,
  });
  baseExt3 = fs.readFileSync(img3.path);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('ExtFs on damaged images', () => {
  it('opens the undamaged base image', () => {
    const x = open(Buffer.from(base));
    expect(x.readFile(x.lookup('/d1/d2/f')).toString()).toBe('file in d2\n');
    const y = open(Buffer.from(baseExt3));
    expect(y.readFile(y.lookup('/small')).toString()).toBe('small\n');
  });

  it('the fixture helper e2fsckClean tells a clean image from a damaged one', () => {
    expect(e2fsckClean(spec).ok).toBe(true);
    const b = Buffer.from(base);
    const ino = inodeOf('/small');
    b[inodeAt(ino) + 0x10] = b[inodeAt(ino) + 0x10]! ^ 1; // bad inode checksum
    const p = path.join(tmp, 'damaged.img');
    fs.writeFileSync(p, b);
    const r = e2fsckClean(p);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/checksum/i);
  });

  it('truncated image => IMAGE_TRUNCATED', () => {
    expectCode(() => open(Buffer.from(base.subarray(0, base.length / 2))), 'IMAGE_TRUNCATED');
    expectCode(() => open(Buffer.from(base.subarray(0, 1500))), 'IMAGE_TRUNCATED');
  });

  it('zeroed superblock => EXT_BAD_MAGIC', () => {
    const b = Buffer.from(base);
    b.fill(0, 1024, 2048);
    expectCode(() => open(b), 'EXT_BAD_MAGIC');
  });

  it('wrong magic => EXT_BAD_MAGIC', () => {
    const b = Buffer.from(base);
    b.writeUInt16LE(0xef54, 1024 + 0x38);
    csum.setSuperblockCsum(S(b));
    expectCode(() => open(b), 'EXT_BAD_MAGIC');
  });

  it('unknown incompat bit => EXT_UNKNOWN_INCOMPAT naming the bit', () => {
    const b = Buffer.from(base);
    b.writeUInt32LE((b.readUInt32LE(1024 + 0x60) | 0x400000) >>> 0, 1024 + 0x60);
    csum.setSuperblockCsum(S(b));
    const e = expectCode(() => open(b), 'EXT_UNKNOWN_INCOMPAT');
    expect(e.message).toContain('0x400000');
  });

  it('absurd inode counts => EXT_BAD_SUPERBLOCK', () => {
    for (const [off, v] of [
      [0x28, 0x7fffffff], // s_inodes_per_group
      [0x00, 0xfffffff0], // s_inodes_count
      [0x28, 0], // s_inodes_per_group = 0
      [0x18, 9], // s_log_block_size
      [0x20, 0], // s_blocks_per_group = 0
    ] as const) {
      const b = Buffer.from(base);
      b.writeUInt32LE(v, 1024 + off);
      csum.setSuperblockCsum(S(b));
      expectCode(() => open(b), 'EXT_BAD_SUPERBLOCK');
    }
  });

  it('absurd block count => EXT_BAD_SUPERBLOCK (groups no longer match the inode count)', () => {
    const b = Buffer.from(base);
    b.writeUInt32LE(0x7fffffff, 1024 + 0x04);
    b.writeUInt32LE(0x10, 1024 + 0x150); // blocks_count_hi as well (64bit)
    csum.setSuperblockCsum(S(b));
    expectCode(() => open(b), 'EXT_BAD_SUPERBLOCK');
  });

  it('block count past the end of the device => IMAGE_TRUNCATED', () => {
    const b = Buffer.from(base);
    expect(b.readUInt32LE(1024 + 0x04)).toBe(4096);
    b.writeUInt32LE(8000, 1024 + 0x04); // still one group, so otherwise consistent
    csum.setSuperblockCsum(S(b));
    expectCode(() => open(b), 'IMAGE_TRUNCATED');
  });

  it('bad superblock checksum => EXT_BAD_CHECKSUM; verifyChecksums:false opens', () => {
    const b = Buffer.from(base);
    b[1024 + 0x78] = b[1024 + 0x78]! ^ 0x20; // volume name byte
    expectCode(() => open(b), 'EXT_BAD_CHECKSUM');
    expect(open(b, false).lookup('/small')).toBeGreaterThan(11);
  });

  it('bad group descriptor checksum => EXT_BAD_CHECKSUM', () => {
    const b = Buffer.from(base);
    b[BS + 0x0e] = b[BS + 0x0e]! ^ 1; // group 0 bg_free_inodes_count_lo
    const e = expectCode(() => open(b), 'EXT_BAD_CHECKSUM');
    expect(e.message).toContain('group 0');
  });

  it('bad inode checksum => EXT_BAD_CHECKSUM naming the inode', () => {
    const b = Buffer.from(base);
    const ino = inodeOf('/small');
    b[inodeAt(ino) + 0x10] = b[inodeAt(ino) + 0x10]! ^ 1; // i_mtime
    const x = open(b);
    const e = expectCode(() => x.stat(ino), 'EXT_BAD_CHECKSUM');
    expect(e.message).toContain(`inode ${ino}`);
    expect(open(b, false).stat(ino).size).toBe(6);
  });

  it('extent tree deeper than 5 => EXT_EXTENT_DEPTH', () => {
    const b = Buffer.from(base);
    const ino = inodeOf('/sparse');
    const off = inodeAt(ino);
    b.writeUInt16LE(6, off + 0x28 + 6); // root eh_depth
    fixInode(b, ino, off);
    expectCode(() => open(b).readFile(ino), 'EXT_EXTENT_DEPTH');
  });

  it('extent block referenced twice => EXT_EXTENT_LOOP', () => {
    const b = Buffer.from(base);
    const ino = inodeOf('/sparse');
    const off = inodeAt(ino);
    const root = off + 0x28;
    expect(b.readUInt16LE(root + 6)).toBe(1); // a depth-1 tree: one index entry
    // A second index entry (logical 1000) pointing at the same leaf block.
    b.copy(b, root + 24, root + 12, root + 24);
    b.writeUInt32LE(1000, root + 24);
    b.writeUInt16LE(2, root + 2);
    fixInode(b, ino, off);
    expectCode(() => open(b).readFile(ino), 'EXT_EXTENT_LOOP');
  });

  it('bad extent block checksum => EXT_BAD_CHECKSUM', () => {
    const b = Buffer.from(base);
    const ino = inodeOf('/sparse');
    const leaf = b.readUInt32LE(inodeAt(ino) + 0x28 + 12 + 4);
    b[leaf * BS + 12 + 4] = b[leaf * BS + 12 + 4]! ^ 1; // first extent's length
    expectCode(() => open(b).readFile(ino), 'EXT_BAD_CHECKSUM');
  });

  it('dirent rec_len overrunning the block => EXT_BAD_DIRENT with block and offset', () => {
    const b = Buffer.from(base);
    const dir = inodeOf('/d1');
    const blk = firstBlock('/d1');
    const at = blk * BS;
    // Entries: "." (12) ".." (12) then the third entry: make its rec_len run past the block.
    b.writeUInt16LE(BS, at + 24 + 4);
    csum.setDirLeafCsum(csum.fsSeed(S(b)), dir, b.readUInt32LE(inodeAt(dir) + 0x64), b.subarray(at, at + BS));
    const e = expectCode(() => open(b).readDir(dir), 'EXT_BAD_DIRENT');
    expect((e as unknown as { data: Record<string, unknown> }).data).toMatchObject({
      ino: dir,
      block: 0,
      offset: 24,
    });
  });

  it('dirent rec_len too small or unaligned => EXT_BAD_DIRENT', () => {
    for (const v of [4, 13, 0]) {
      const b = Buffer.from(base);
      const dir = inodeOf('/d1');
      const blk = firstBlock('/d1');
      b.writeUInt16LE(v, blk * BS + 12 + 4);
      expectCode(() => open(b, false).readDir(dir), 'EXT_BAD_DIRENT');
    }
  });

  it('bad directory block checksum => EXT_BAD_CHECKSUM', () => {
    const b = Buffer.from(base);
    const dir = inodeOf('/d1');
    const blk = firstBlock('/d1');
    b[blk * BS + 0x20] = b[blk * BS + 0x20]! ^ 1; // a name byte
    expectCode(() => open(b).readDir(dir), 'EXT_BAD_CHECKSUM');
  });

  it('symlink loop => EXT_SYMLINK_LOOP', () => {
    const x = open(Buffer.from(base));
    expectCode(() => x.lookup('/loop-a'), 'EXT_SYMLINK_LOOP');
    expectCode(() => x.lookup('/loop-b/x'), 'EXT_SYMLINK_LOOP');
    expect(x.lookup('/loop-a', { follow: false })).toBe(inodeOf('/loop-a'));
  });

  it('a directory entry pointing at an ancestor => EXT_DIR_LOOP from walk', () => {
    const b = Buffer.from(base);
    const d1 = inodeOf('/d1');
    const d2 = inodeOf('/d1/d2');
    const blk = firstBlock('/d1/d2');
    const at = blk * BS + 24; // the entry after "." and "..": "f"
    expect(b.toString('latin1', at + 8, at + 9)).toBe('f');
    b.writeUInt32LE(d1, at);
    b[at + 7] = 2; // file type: directory
    csum.setDirLeafCsum(
      csum.fsSeed(S(b)),
      d2,
      b.readUInt32LE(inodeAt(d2) + 0x64),
      b.subarray(blk * BS, (blk + 1) * BS),
    );
    const x = open(b);
    expect(x.lookup('/d1/d2/f/d2/f/d2/f/g')).toBe(inodeOf('/d1/g'));
    expectCode(() => [...x.walk('/')], 'EXT_DIR_LOOP');
  });

  it('block map pointing outside the filesystem => EXT_BLOCK_OUT_OF_RANGE (ext3)', () => {
    const b = Buffer.from(baseExt3);
    const s3 = path.join(tmp, 'ext3.img');
    const ino = inodeOf('/sparse', s3);
    const off = inodeAt(ino, s3, 1024);
    b.writeUInt32LE(0x7fffff00, off + 0x28 + 4 * 2); // i_block[2]
    expectCode(() => open(b).readFile(ino), 'EXT_BLOCK_OUT_OF_RANGE');
  });

  it('indirect block referenced twice => EXT_BAD_BLOCK_MAP (ext3)', () => {
    const b = Buffer.from(baseExt3);
    const s3 = path.join(tmp, 'ext3.img');
    const ino = inodeOf('/sparse', s3);
    const off = inodeAt(ino, s3, 1024);
    const ind = b.readUInt32LE(off + 0x28 + 12 * 4);
    expect(ind).toBeGreaterThan(0);
    b.writeUInt32LE(ind, off + 0x28 + 13 * 4); // DIND = the IND block: its entries become IND blocks...
    b.writeUInt32LE(ind, ind * 1024); // ...and the first of them is the IND block itself
    expectCode(() => open(b).readFile(ino), 'EXT_BAD_BLOCK_MAP');
  });
});
