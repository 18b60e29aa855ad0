/**
 * Fixture helpers for the ext writer tests (H5): build images with the native tools at test time,
 * run the oracles (e2fsck -fn, debugfs, zerofree). Native tools are test oracles only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { pseudoRandom } from '../fixtures/ext-images.js';

export const ENV = {
  ...process.env,
  PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}`,
  E2FSPROGS_FAKE_TIME: '',
};
delete (ENV as Record<string, string | undefined>).E2FSPROGS_FAKE_TIME;

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ulfs-${tag}-`));
}

export function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { env: ENV, encoding: 'utf8', input: opts.input, maxBuffer: 256 << 20 });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  }
  return (r.stdout ?? '') + (r.stderr ?? '');
}

export interface Img {
  path: string;
  offset: number;
  spec: string;
}

/** mke2fs -q -F -t TYPE ... [-d src] [-E offset=N] img SIZE */
export function mkfs(
  imgPath: string,
  o: {
    type: 'ext2' | 'ext3' | 'ext4';
    bs: 1024 | 4096;
    features?: string;
    src?: string;
    sizeMiB?: number;
    offset?: number;
    extra?: string[];
  },
): Img {
  const offset = o.offset ?? 0;
  const size = (o.sizeMiB ?? 32) * 1024 * 1024;
  fs.writeFileSync(imgPath, '');
  fs.truncateSync(imgPath, offset + size);
  const args = ['-q', '-F', '-t', o.type, '-b', String(o.bs)];
  if (o.features) args.push('-O', o.features);
  if (o.src) args.push('-d', o.src);
  if (offset) args.push('-E', `offset=${offset}`);
  args.push(...(o.extra ?? []));
  args.push(imgPath, `${size / 1024}k`);
  run('mke2fs', args);
  return { path: imgPath, offset, spec: offset ? `${imgPath}?offset=${offset}` : imgPath };
}

/** e2fsck -fn: clean means exit 0 and only "Pass N" lines + summary. */
export function e2fsck(spec: string): { ok: boolean; output: string; code: number } {
  const r = spawnSync('e2fsck', ['-fn', spec], { env: ENV, encoding: 'utf8' });
  const output = (r.stdout ?? '') + (r.stderr ?? '');
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  const noise = lines.filter(
    (l) =>
      !/^Pass \d/.test(l) && !/^e2fsck \d/.test(l) && !/: \d+\/\d+ files \(.*\), \d+\/\d+ blocks$/.test(l),
  );
  return { ok: r.status === 0 && noise.length === 0, output, code: r.status ?? -1 };
}

export function debugfs(spec: string, cmds: string[], write = false): string {
  const args = write ? ['-w', '-f', '-', spec] : ['-f', '-', spec];
  return run('debugfs', args, { input: cmds.join('\n') + '\n' });
}

export function sha256File(p: string): string {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

/** Writes a sparse file with `n` data blocks of `bs` bytes alternating with holes: n extents. */
export function writeFragmented(p: string, n: number, bs: number, seed = 1): void {
  const fd = fs.openSync(p, 'w');
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(bs, (seed + i) & 0xff || 1);
    fs.writeSync(fd, b, 0, bs, 2 * i * bs);
  }
  fs.closeSync(fd);
}

export function writeRandom(p: string, size: number, seed: number): void {
  fs.writeFileSync(p, pseudoRandom(size, seed));
}

export function setXattr(p: string, name: string, value: Buffer): void {
  execFileSync('python3', [
    '-c',
    `import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))`,
    p,
    name,
    value.toString('hex'),
  ]);
}

/** Inode number of a path via debugfs. */
export function inoOf(spec: string, p: string): number {
  const out = debugfs(spec, [`stat ${p}`]);
  const m = /Inode: (\d+)/.exec(out);
  if (!m) throw new Error(`no inode for ${p}: ${out}`);
  return Number(m[1]);
}

/** debugfs "stats": free blocks / free inodes as reported by the superblock. */
export function superFree(spec: string): { blocks: number; inodes: number } {
  const out = debugfs(spec, ['stats']);
  return {
    blocks: Number(/^Free blocks:\s+(\d+)/m.exec(out)![1]),
    inodes: Number(/^Free inodes:\s+(\d+)/m.exec(out)![1]),
  };
}
