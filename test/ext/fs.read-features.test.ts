/**
 * Less common layouts and features, each checked against debugfs: meta_bg descriptor placement,
 * inline data, 128-byte inodes, sparse_super2, metadata_csum_seed after a UUID change, orphan_file,
 * no journal, a > 4 GiB sparse file; plus journal detection and feature names.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtFs } from '../../src/ext/fs.js';
import { FileDevice, MemoryDevice } from '../../src/image/blockdev.js';
import { debugfs, makeExtImage, pseudoRandom, type ExtImageOpts } from '../fixtures/ext-images.js';
import { debugfsTree, extFsTree, treeDiff } from './read-oracle.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-feat-'));
const src = path.join(tmp, 'src');
const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };

beforeAll(() => {
  // A small tree: tiny files (inline candidates), a few bigger ones, small and medium dirs, links.
  fs.mkdirSync(path.join(src, 'dir/sub'), { recursive: true });
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(src, 'dir', `tiny-${i}`), `t${i}\n`.repeat(i));
  fs.writeFileSync(path.join(src, 'dir/sub/100k'), pseudoRandom(100_000, 11));
  fs.writeFileSync(path.join(src, '70bytes'), 'x'.repeat(70));
  fs.writeFileSync(path.join(src, '300k'), pseudoRandom(300_000, 12));
  fs.mkdirSync(path.join(src, 'smalldir'));
  fs.writeFileSync(path.join(src, 'smalldir/a'), 'a\n');
  // 100 bytes: with inline_data, 60 in i_block and the rest in the system.data xattr.
  fs.writeFileSync(path.join(src, 'spill100'), pseudoRandom(100, 13));
  fs.symlinkSync('dir/sub/100k', path.join(src, 'link'));
  fs.symlinkSync('/' + 'long/'.repeat(20) + 'target', path.join(src, 'slowlink'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function check(name: string, opts: ExtImageOpts, after?: (imgPath: string) => void): ExtFs {
  const img = makeExtImage(path.join(tmp, `${name}.img`), { srcDir: src, sizeMiB: 32, ...opts });
  after?.(img.path);
  const want = debugfsTree(img.spec, path.join(tmp, `${name}.dump`));
  const x = ExtFs.open(new FileDevice(img.path));
  expect(treeDiff(extFsTree(x), want)).toEqual([]);
  expect(want.size).toBeGreaterThan(45);
  return x;
}

describe('ExtFs features, against debugfs', () => {
  it('meta_bg (descriptor blocks spread over the groups)', () => {
    const x = check('metabg', {
      fsType: 'ext4',
      blockSize: 1024,
      extraFeatures: 'meta_bg,^resize_inode',
      mkfsArgs: ['-g', '1024'],
      bit64: false,
    });
    expect(x.usedFeatures()).toContain('meta_bg');
    expect(x.groupCount).toBe(32);
    expect(x.groups.length).toBe(32);
  });

  it('meta_bg with several descriptor blocks (64bit: 16 descriptors per 1K block)', () => {
    const x = check('metabg64', {
      fsType: 'ext4',
      blockSize: 1024,
      extraFeatures: 'meta_bg,^resize_inode',
      mkfsArgs: ['-g', '512'],
      bit64: true,
      sizeMiB: 48,
    });
    expect(x.groupCount).toBe(96);
    // Descriptor block 1 (groups 16..31) sits in group 16, after its backup superblock? group 16
    // has none (sparse_super), so it is the group's first block.
    expect(x.groups[16]!.offset).toBe((1 + 16 * 512) * 1024);
    expect(x.groups[31]!.offset).toBe((1 + 16 * 512) * 1024 + 15 * 64);
  });

  it('inline_data files and directories', () => {
    const x = check('inline', { fsType: 'ext4', blockSize: 4096, extraFeatures: 'inline_data' });
    expect(x.usedFeatures()).toContain('inline_data');
    const ino = x.lookup('/dir/tiny-3');
    expect(x.readInode(ino).flags & 0x10000000).not.toBe(0);
    expect(x.readFile(ino).toString()).toBe('t3\n'.repeat(3));
    // An inline directory: entries live in i_block (and system.data), "." and ".." synthesised.
    const dir = x.lookup('/smalldir');
    expect(x.readInode(dir).flags & 0x10000000).not.toBe(0);
    expect(x.readDir(dir).map((e) => e.name)).toEqual(['.', '..', 'a']);
    expect(x.readDir(dir)[1]!.ino).toBe(2);
    const spill = x.lookup('/spill100');
    expect(x.readInode(spill).flags & 0x10000000).not.toBe(0);
    expect(x.readFile(spill).equals(pseudoRandom(100, 13))).toBe(true);
  });

  it('128-byte inodes (ext4, metadata_csum with only the low 16 checksum bits)', () => {
    const x = check('i128', { fsType: 'ext4', blockSize: 4096, inodeSize: 128 });
    expect(x.sb.inodeSize).toBe(128);
  });

  it('sparse_super2, no journal', () => {
    const x = check('ss2', { fsType: 'ext4', blockSize: 1024, extraFeatures: 'sparse_super2,^has_journal' });
    expect(x.usedFeatures()).toContain('sparse_super2');
    expect(x.journalState()).toEqual({ kind: 'none', needsRecovery: false, logEmpty: true, errno: 0 });
  });

  it('metadata_csum_seed after a UUID change', () => {
    const x = check('seed', { fsType: 'ext4', blockSize: 4096, extraFeatures: 'metadata_csum_seed' }, (p) =>
      execFileSync('tune2fs', ['-U', 'random', p], { env: ENV, stdio: 'ignore' }),
    );
    expect(x.usedFeatures()).toContain('metadata_csum_seed');
    expect(x.csumSeed).toBe(x.sb.checksumSeed);
  });

  it('orphan_file; ext3 with 128-byte inodes', () => {
    check('orphanfile', { fsType: 'ext4', blockSize: 4096, extraFeatures: 'orphan_file' });
    check('ext3-i128', { fsType: 'ext3', blockSize: 4096, inodeSize: 128 });
  });

  it('bigalloc (16K clusters): mapping is still per block', () => {
    const x = check('bigalloc', {
      fsType: 'ext4',
      blockSize: 4096,
      extraFeatures: 'bigalloc',
      mkfsArgs: ['-C', '16384'],
      sizeMiB: 64,
    });
    expect(x.usedFeatures()).toContain('bigalloc');
  });

  it('ext3 with uninit_bg: crc16 descriptor checksums verified', () => {
    const img = makeExtImage(path.join(tmp, 'uninit.img'), {
      fsType: 'ext3',
      blockSize: 1024,
      extraFeatures: 'uninit_bg',
      srcDir: src,
      sizeMiB: 32,
    });
    const want = debugfsTree(img.spec, path.join(tmp, 'uninit.dump'));
    const x = ExtFs.open(new FileDevice(img.path));
    expect(x.usedFeatures()).toContain('uninit_bg');
    expect(treeDiff(extFsTree(x), want)).toEqual([]);
    // Flip a byte of group 1's descriptor (block 2 with 1K blocks, 32-byte descriptors).
    const b = fs.readFileSync(img.path);
    b[2 * 1024 + 32 + 0x10] = b[2 * 1024 + 32 + 0x10]! ^ 1; // bg_used_dirs_count_lo
    expect(() => ExtFs.open(new MemoryDevice(b))).toThrow(/group 1 descriptor/);
    expect(ExtFs.open(new MemoryDevice(b), { verifyChecksums: false }).groupCount).toBe(x.groupCount);
  });

  it('an external journal device is refused; a filesystem using one reports it', () => {
    const j = path.join(tmp, 'jdev.img');
    fs.writeFileSync(j, Buffer.alloc(0));
    fs.truncateSync(j, 8 << 20);
    execFileSync('mke2fs', ['-q', '-F', '-O', 'journal_dev', '-b', '4096', j], { env: ENV, stdio: 'ignore' });
    expect(() => ExtFs.open(new FileDevice(j))).toThrow(/external journal device/);
    // A filesystem whose superblock names an external journal (journal_inum 0).
    const img = makeExtImage(path.join(tmp, 'extj.img'), {
      fsType: 'ext4',
      blockSize: 4096,
      extraFeatures: '^has_journal',
      sizeMiB: 16,
    });
    debugfs(img.spec, ['feature has_journal', 'ssv journal_inum 0', 'ssv journal_uuid random'], true);
    const x = ExtFs.open(new FileDevice(img.path));
    expect(x.journalState()).toEqual({ kind: 'external', needsRecovery: false, logEmpty: true, errno: 0 });
  });

  it('unwritten (preallocated) extents read as zeros', () => {
    const x = check('unwritten', { fsType: 'ext4', blockSize: 4096 }, (p) =>
      debugfs(
        p,
        [`write ${path.join(src, '70bytes')} prealloc`, 'fallocate prealloc 1 9', 'sif prealloc size 40960'],
        true,
      ),
    );
    const ino = x.lookup('/prealloc');
    const ex = x.mapFile(x.readInode(ino));
    expect(ex.some((e) => e.unwritten)).toBe(true);
    const data = x.readFile(ino);
    expect(data.length).toBe(40960);
    expect(data.subarray(0, 70).toString()).toBe('x'.repeat(70));
    expect(data.subarray(4096).equals(Buffer.alloc(40960 - 4096))).toBe(true);
  });

  it('revision 0 ext2 (no features: no file type in dirents, 16-bit name_len)', () => {
    const x = check('rev0', { fsType: 'ext2', blockSize: 1024, mkfsArgs: ['-r', '0'] });
    expect(x.sb.revLevel).toBe(0);
    expect(x.usedFeatures()).toEqual([]);
    expect(x.readDir(2).every((e) => e.fileType === 0)).toBe(true);
  });

  it('needs_recovery is detected (debugfs: set the feature, and a live journal transaction)', () => {
    const img = makeExtImage(path.join(tmp, 'journal.img'), { fsType: 'ext4', blockSize: 4096, sizeMiB: 32 });
    let x = ExtFs.open(new FileDevice(img.path));
    expect(x.journalState()).toEqual({ kind: 'internal', needsRecovery: false, logEmpty: true, errno: 0 });
    debugfs(img.spec, ['jo', 'jw -b 2000 /dev/null', 'jc'], true);
    x = ExtFs.open(new FileDevice(img.path));
    const js = x.journalState();
    expect(js.kind).toBe('internal');
    expect(js.logEmpty).toBe(false);
    expect(js.needsRecovery).toBe(/needs_recovery/.test(debugfs(img.spec, ['features'])));
  });
});

describe('a sparse file larger than 4 GiB', () => {
  it('reads its size, mapping and tail bytes like debugfs', () => {
    const big = path.join(tmp, 'bigsrc');
    fs.mkdirSync(big);
    const fd = fs.openSync(path.join(big, 'huge'), 'w');
    fs.writeSync(fd, pseudoRandom(8192, 3), 0, 8192, 0);
    fs.writeSync(fd, Buffer.from('past 4 GiB\n'), 0, 11, 4.5 * 2 ** 30);
    fs.closeSync(fd);
    const img = makeExtImage(path.join(tmp, 'huge.img'), {
      fsType: 'ext4',
      blockSize: 4096,
      srcDir: big,
      sizeMiB: 32,
    });
    const x = ExtFs.open(new FileDevice(img.path));
    const ino = x.lookup('/huge');
    const st = x.stat(ino);
    expect(st.size).toBe(4.5 * 2 ** 30 + 11);
    expect(debugfs(img.spec, ['stat /huge'])).toContain(`Size: ${st.size}`);
    const ex = x.mapFile(x.readInode(ino));
    // debugfs "ex" lists the extents: logical ranges must match.
    const dbg = [
      ...debugfs(img.spec, ['ex /huge']).matchAll(
        /^\s*\d+\/\s*\d+\s+\d+\/\s*\d+\s+(\d+) -\s+(\d+)\s+(\d+) -\s+(\d+)/gm,
      ),
    ].map((m) => ({
      logical: Number(m[1]),
      physical: Number(m[3]),
      length: Number(m[2]) - Number(m[1]) + 1,
    }));
    expect(ex.map((e) => ({ logical: e.logical, physical: e.physical, length: e.length }))).toEqual(dbg);
    // Last chunk holds the tail; stream only the last 1 MiB worth through a big chunk size.
    let last: Buffer = Buffer.alloc(0);
    let total = 0;
    for (const c of x.fileChunks(ino, 64 << 20)) {
      total += c.length;
      last = c;
    }
    expect(total).toBe(st.size);
    expect(last.subarray(last.length - 11).toString()).toBe('past 4 GiB\n');
    expect(() => x.readFile(ino)).toThrow(/over the limit/);
  }, 120_000);
});
