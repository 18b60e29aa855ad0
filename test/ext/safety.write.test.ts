/**
 * Safety gate: every refusal is a typed error raised before the first write, so the image's sha256
 * is unchanged. Dirty journals are made with debugfs (jo/jw/jc), orphans and bad states with
 * debugfs ssv, unsafe features with mke2fs -O.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileDevice } from '../../src/image/blockdev.js';
import { removePaths, rewriteFile, zeroFree } from '../../src/ext/write/index.js';
import { isUlfsError } from '../../src/errors.js';
import { debugfs, e2fsck, inoOf, mkfs, sha256File, tmpDir, writeFragmented } from './writer-fixtures.js';

let dir: string;
let src: string;
beforeAll(() => {
  dir = tmpDir('safety');
  src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'a'), 'a'.repeat(5000));
  fs.writeFileSync(path.join(src, 'b'), 'b');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): {
  code: string | undefined;
  message: string;
  data: Record<string, unknown>;
} {
  try {
    fn();
  } catch (e) {
    if (isUlfsError(e)) return { code: e.code, message: e.message, data: e.data };
    throw e;
  }
  return { code: undefined, message: '', data: {} };
}

/** Runs `op` on the image and asserts the error code and an unchanged image. */
function refused(
  imgPath: string,
  op: (dev: FileDevice) => unknown,
  code: string,
): { message: string; data: Record<string, unknown> } {
  const before = sha256File(imgPath);
  const dev = new FileDevice(imgPath, 'rw');
  const r = codeOf(() => op(dev));
  dev.close();
  expect(r.code).toBe(code);
  expect(sha256File(imgPath)).toBe(before);
  return r;
}

let n = 0;
function img(type: 'ext2' | 'ext3' | 'ext4', features?: string, extra?: string[]): string {
  return mkfs(path.join(dir, `i${n++}.img`), { type, bs: 4096, features, src, sizeMiB: 16, extra }).path;
}

describe('refusals leave the image untouched', () => {
  it('journal needing recovery (debugfs jo/jw/jc): EXT_JOURNAL_DIRTY with the fix in the message', () => {
    const p = img('ext4');
    const data = path.join(dir, 'jdata');
    fs.writeFileSync(data, Buffer.alloc(3 * 4096, 0x33));
    debugfs(p, ['jo -c', `jw -b 3000,3001,3002 ${data}`, 'jc'], true);
    expect(debugfs(p, ['stats'])).toMatch(/needs_recovery/);
    const r = refused(p, (d) => removePaths(d, ['/a']), 'EXT_JOURNAL_DIRTY');
    expect(r.message).toMatch(/e2fsck|shut it down cleanly/);
    refused(p, (d) => zeroFree(d), 'EXT_JOURNAL_DIRTY');
  });

  it('an orphan list (s_last_orphan): EXT_ORPHANS, also for zero-free', () => {
    const p = img('ext4');
    debugfs(p, [`ssv last_orphan ${inoOf(p, '/b')}`], true);
    refused(p, (d) => removePaths(d, ['/a']), 'EXT_ORPHANS');
    refused(p, (d) => zeroFree(d), 'EXT_ORPHANS');
  });

  it('a filesystem with errors or not cleanly unmounted: EXT_FS_NOT_CLEAN', () => {
    const p = img('ext2');
    debugfs(p, ['ssv state 2'], true);
    refused(p, (d) => removePaths(d, ['/a']), 'EXT_FS_NOT_CLEAN');
    const q = img('ext2');
    debugfs(q, ['ssv state 0'], true);
    refused(q, (d) => removePaths(d, ['/a']), 'EXT_FS_NOT_CLEAN');
  });

  const FEATURES: [string, string, string[]?][] = [
    ['quota', 'quota'],
    ['project', 'quota,project'],
    ['bigalloc', 'bigalloc', ['-C', '16384']],
    ['encrypt', 'encrypt'],
    ['meta_bg', 'meta_bg,^resize_inode'],
    ['mmp', 'mmp'],
  ];
  for (const [name, feat, extra] of FEATURES) {
    it(`unsafe feature ${name}: EXT_UNSAFE_FEATURE naming it`, () => {
      const p = img('ext4', feat, extra);
      const r = refused(p, (d) => removePaths(d, ['/a']), 'EXT_UNSAFE_FEATURE');
      expect(r.data.feature).toBe(name === 'project' ? 'quota' : name);
      expect(r.message).toContain(name === 'project' ? 'quota' : name);
    });
  }

  it('inline_data: inline inodes and directories are refused, ordinary ones are removed cleanly', () => {
    const src3 = path.join(dir, 'src3');
    fs.mkdirSync(path.join(src3, 'big'), { recursive: true });
    for (let i = 0; i < 200; i++)
      fs.writeFileSync(path.join(src3, 'big', `file-with-a-long-name-${i}`), `${i}`);
    fs.writeFileSync(path.join(src3, 'big', 'large'), Buffer.alloc(100_000, 7));
    fs.mkdirSync(path.join(src3, 'small'));
    fs.writeFileSync(path.join(src3, 'small', 'x'), 'x');
    const p = mkfs(path.join(dir, 'inline.img'), {
      type: 'ext4',
      bs: 4096,
      features: 'inline_data',
      src: src3,
      sizeMiB: 16,
    }).path;
    refused(p, (d) => removePaths(d, ['/big/file-with-a-long-name-3']), 'EXT_INLINE_DATA'); // inline file
    refused(p, (d) => removePaths(d, ['/small/x']), 'EXT_INLINE_DATA'); // inline directory
    const dev = new FileDevice(p, 'rw');
    const r = removePaths(dev, ['/big/large']);
    dev.close();
    expect(r.inodesFreed).toBe(1);
    const chk = e2fsck(p);
    expect(chk.ok ? '' : chk.output).toBe('');
  });

  it('casefold: casefolded directories are refused, others are fine', () => {
    const p = img('ext4', 'casefold');
    debugfs(p, ['mkdir cf', 'set_inode_field cf flags 0x40080000'], true);
    refused(p, (d) => removePaths(d, ['/cf'], { recursive: true }), 'EXT_UNSUPPORTED');
    const dev = new FileDevice(p, 'rw');
    removePaths(dev, ['/a']);
    dev.close();
    const chk = e2fsck(p);
    expect(chk.ok ? '' : chk.output).toBe('');
  });

  it('unknown incompat bit', () => {
    const p = img('ext2');
    debugfs(p, ['ssv feature_incompat 0x80002'], true);
    const r = refused(p, (d) => removePaths(d, ['/a']), 'EXT_UNSAFE_FEATURE');
    expect(r.message).toMatch(/unknown incompat feature 0x80000/);
  });

  it('protected inodes: lost+found, reserved inodes, immutable files, the root', () => {
    const p = img('ext4');
    refused(p, (d) => removePaths(d, ['/lost+found']), 'EXT_INODE_PROTECTED');
    refused(p, (d) => removePaths(d, ['/'], { recursive: true }), 'EXT_INODE_PROTECTED');
    refused(p, (d) => rewriteFile(d, 8, Buffer.alloc(0)), 'EXT_INODE_PROTECTED');
    debugfs(p, ['sif /a flags 0x80010'], true);
    refused(p, (d) => removePaths(d, ['/a']), 'EXT_INODE_PROTECTED');
    refused(p, (d) => rewriteFile(d, inoOf(p, '/a'), Buffer.from('x')), 'EXT_INODE_PROTECTED');
  });

  it('rewrite: data into a hole is refused; 350 extents are rebuilt at depth 2', () => {
    const src2 = path.join(dir, 'src2');
    fs.mkdirSync(src2, { recursive: true });
    writeFragmented(path.join(src2, 'deep'), 360, 1024, 3);
    const p = mkfs(path.join(dir, 'deep.img'), { type: 'ext4', bs: 1024, src: src2, sizeMiB: 16 }).path;
    const ino = inoOf(p, '/deep');
    // block 1 is a hole: non-zero data there would need an allocation
    const holey = Buffer.alloc(2 * 1024, 0x11);
    expect(refused(p, (d) => rewriteFile(d, ino, holey), 'EXT_TOO_LARGE').message).toMatch(/hole/);
    // keeping 350 extents needs 5 leaves of 84: rebuilt at depth 2 from the file's own tree blocks
    const keep = Buffer.alloc(699 * 1024);
    for (let i = 0; i < 350; i++) keep.fill(1 + (i % 200), 2 * i * 1024, (2 * i + 1) * 1024);
    const dev = new FileDevice(p, 'rw');
    rewriteFile(dev, ino, keep);
    dev.close();
    const chk = e2fsck(p);
    expect(chk.ok ? '' : chk.output).toBe('');
    expect(debugfs(p, ['ex /deep'])).toMatch(/^\s*0\/\s*2/m);
    const out = path.join(dir, 'deep.out');
    debugfs(p, [`dump /deep ${out}`]);
    expect(fs.readFileSync(out).equals(keep)).toBe(true);
  });

  it('rewrite frees unwritten (fallocated) extents past the new end', () => {
    const p = img('ext4');
    debugfs(p, ['fallocate /b 0 40'], true);
    expect(debugfs(p, ['ex /b'])).toMatch(/Uninit/);
    const dev = new FileDevice(p, 'rw');
    const r = rewriteFile(dev, inoOf(p, '/b'), Buffer.from('hello'));
    dev.close();
    expect(r.blocksFreed).toBe(40);
    expect(debugfs(p, ['ex /b'])).not.toMatch(/Uninit/);
    const chk = e2fsck(p);
    expect(chk.ok ? '' : chk.output).toBe('');
    expect(debugfs(p, ['cat /b'])).toContain('hello');
  });

  it('a failing path anywhere in a batch writes nothing', () => {
    const p = img('ext4');
    refused(p, (d) => removePaths(d, ['/a', '/b', '/missing']), 'EXT_NOT_FOUND');
    refused(p, (d) => rewriteFile(d, inoOf(p, '/b'), Buffer.alloc(8192, 1)), 'EXT_TOO_LARGE');
  });
});
