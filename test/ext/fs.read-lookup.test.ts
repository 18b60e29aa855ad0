/**
 * Path lookup and symlink resolution inside the filesystem. Expected inode numbers come from
 * debugfs (`stat PATH`, whose ext2fs_namei follows symlinks in the middle of a path, absolute ones
 * from the filesystem root), never from ExtFs itself.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUlfsError } from '../../src/errors.js';
import { ChunkPool } from '../../src/binary/chunk-pool.js';
import { ExtFs } from '../../src/ext/fs.js';
import { FileDevice } from '../../src/image/blockdev.js';
import { debugfs, makeExtImage, makeRichTree } from '../fixtures/ext-images.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-lookup-'));
let x: ExtFs;
let spec: string;
let dev: FileDevice;

/** Inode numbers debugfs gives for these paths (one debugfs run). */
function dbgInodes(paths: string[]): Map<string, number> {
  const out = debugfs(
    spec,
    paths.map((p) => `stat "${p}"`),
  );
  const m = new Map<string, number>();
  for (const part of out.split(/^debugfs: /m).slice(1)) {
    const cmd = /^stat "(.*)"\n/.exec(part);
    const ino = /Inode: (\d+)/.exec(part);
    if (cmd && ino) m.set(cmd[1]!, Number(ino[1]));
  }
  return m;
}
const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return isUlfsError(e) ? e.code : String(e);
  }
  return 'no error';
};

beforeAll(() => {
  const src = path.join(tmp, 'src');
  makeRichTree(src, { tindFile: false, manyExtents: 10 });
  // A chain of 40 symlinks (allowed) and one of 41 (refused).
  fs.mkdirSync(path.join(src, 'chain'));
  fs.writeFileSync(path.join(src, 'chain/end'), 'end of chain\n');
  for (let i = 0; i < 41; i++) fs.symlinkSync(i === 40 ? 'end' : `c${i + 1}`, path.join(src, `chain/c${i}`));
  const img = makeExtImage(path.join(tmp, 'l.img'), {
    fsType: 'ext4',
    blockSize: 4096,
    srcDir: src,
    sizeMiB: 48,
  });
  spec = img.spec;
  dev = new FileDevice(img.path);
  x = ExtFs.open(dev);
});
afterAll(() => {
  dev.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('lookup', () => {
  it('without following the last component, equals debugfs namei (middle symlinks followed)', () => {
    const paths = [
      '/',
      '/hello.txt',
      '/files/1000',
      '/links/fast',
      '/links/dangling',
      '/links/loop-a',
      '/links/absdir/level2',
      '/links/absdir/level2/level3',
      '/nested/level0/level1/../level1/level2',
      `/files/${'L'.repeat(255)}`,
      '/files/name with spaces & ünïcødé',
      '/chain/c0',
    ];
    const want = dbgInodes(paths);
    expect(want.size).toBe(paths.length);
    for (const p of paths) expect([p, x.lookup(p, { follow: false })]).toEqual([p, want.get(p)]);
  });

  it('follows the last symlink to where debugfs finds the target', () => {
    const cases: [string, string][] = [
      ['/fast-rel', '/hello.txt'],
      ['/links/fast', '/hello.txt'],
      ['/links/slow', `/files/${'L'.repeat(255)}`],
      ['/links/absolute', '/files/1000'], // absolute target: from the fs root, not the host's
      ['/links/absdir', '/nested/level0/level1'],
      ['/links/above-root', '/hello.txt'], // ".." at the root stays at the root
      ['/links/self', '/links'],
      ['/links/self/self/self/fast', '/hello.txt'],
      ['/../../hello.txt', '/hello.txt'],
      ['//nested/./level0//level1/', '/nested/level0/level1'],
      ['/chain/c1', '/chain/end'], // 40 hops: allowed
    ];
    const want = dbgInodes(cases.map((c) => c[1]));
    for (const [p, target] of cases) expect([p, x.lookup(p)]).toEqual([p, want.get(target)]);
    expect(x.readFile(x.lookup('/links/absolute')).length).toBe(1000);
  });

  it('reports missing names, non-directories and loops with stable codes', () => {
    expect(code(() => x.lookup('/no-such'))).toBe('EXT_NOT_FOUND');
    expect(code(() => x.lookup('/links/dangling'))).toBe('EXT_NOT_FOUND');
    expect(code(() => x.lookup('/files/1000/x'))).toBe('EXT_NOT_A_DIRECTORY');
    expect(code(() => x.lookup('/links/loop-a'))).toBe('EXT_SYMLINK_LOOP');
    expect(code(() => x.lookup('/chain/c0'))).toBe('EXT_SYMLINK_LOOP'); // 41 hops
    expect(code(() => x.readDir(x.lookup('/hello.txt')))).toBe('EXT_NOT_A_DIRECTORY');
    expect(code(() => x.readFile(x.lookup('/files')))).toBe('EXT_IS_A_DIRECTORY');
    expect(code(() => x.readFile(x.lookup('/fifo')))).toBe('EXT_NOT_A_FILE');
  });

  it('readlink returns the stored targets, stat the types', () => {
    expect(x.readlink(x.lookup('/links/absolute', { follow: false }))).toBe('/files/1000');
    expect(x.readlink(x.lookup('/links/slow', { follow: false }))).toBe(`../files/${'L'.repeat(255)}`);
    expect(x.stat(x.lookup('/fifo')).type).toBe('fifo');
    expect(x.stat(x.lookup('/links/fast', { follow: false })).type).toBe('symlink');
    expect(x.stat(x.lookup('/links/fast')).type).toBe('file');
  });

  it('walk is depth-first and complete', () => {
    const paths = [...x.walk('/nested')].map((e) => e.path);
    expect(paths[0]).toBe('/nested');
    expect(paths).toContain(
      '/nested/level0/level1/level2/level3/level4/level5/level6/level7/level8/level9/level10/level11/deep.txt',
    );
    // Pre-order: every path's parent comes before it.
    const seen = new Set<string>();
    for (const p of paths) {
      if (p !== '/nested') expect(seen.has(path.posix.dirname(p))).toBe(true);
      seen.add(p);
    }
    // Walking through a symlinked start directory.
    expect([...x.walk('/links/absdir')].length).toBe([...x.walk('/nested/level0/level1')].length);
  });

  it('streams files in bounded chunks, holes as zeros', async () => {
    const ino = x.lookup('/files/1M+3');
    const sizes = [...x.fileChunks(ino, 64 * 1024)].map((c) => c.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe((1 << 20) + 3);
    const chunks: Buffer[] = [];
    for await (const c of x.createReadStream(ino)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(x.readFile(ino))).toBe(true);
    const hole = x.readFile(x.lookup('/sparse/all-hole'));
    expect(hole.length).toBe(300000);
    expect(hole.equals(Buffer.alloc(300000))).toBe(true);
  });

  it('reads chunks into a pool, holes zeroed in reused buffers', () => {
    for (const p of ['/sparse/depth1', '/sparse/depth2', '/sparse/all-hole', '/files/1M+3']) {
      const ino = x.lookup(p);
      const pool = new ChunkPool(64 * 1024, 2);
      const parts: Buffer[] = [];
      for (const c of x.fileChunks(ino, 64 * 1024, pool)) {
        parts.push(Buffer.from(c));
        c.fill(0xa5); // what a consumer leaves in a buffer it hands back
        pool.put(c);
      }
      expect(Buffer.concat(parts).equals(x.readFile(ino)), p).toBe(true);
      expect(pool.allocatedBytes, p).toBeLessThanOrEqual(64 * 1024);
    }
  });
});
