/**
 * Whole disk images for CLI and prune tests: a partition table written by sfdisk, then ext
 * filesystems made by mke2fs -d at each partition's offset. Also the committed sample image.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';

export const TOOL_ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    env: TOOL_ENV,
    encoding: 'utf8',
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 1 << 30,
  });
}

/**
 * The journal inode's blocks from `debugfs stat <8>`: its data blocks in logical order (block 0 is
 * the journal superblock) and its indirect (IND/DIND/TIND) blocks, for block-mapped journals.
 */
/** Physical blocks of a file in logical order, holes skipped (debugfs `blocks`). */
export function fileBlocks(spec: string, p: string): number[] {
  return sh('debugfs', ['-R', `blocks ${p}`, spec])
    .split(/\s+/)
    .filter((w) => /^\d+$/.test(w))
    .map(Number);
}

export function journalLayout(spec: string): { data: number[]; indirect: number[] } {
  const stat = sh('debugfs', ['-R', 'stat <8>', spec]);
  // The block list follows "EXTENTS:" (extent-mapped) or "BLOCKS:" (block-mapped).
  const at = stat.search(/^(EXTENTS|BLOCKS):/m);
  if (at < 0) throw new Error(`debugfs stat <8> on ${spec} lists no blocks`);
  const blocks = stat.slice(at);
  const data: number[] = [];
  const indirect: number[] = [];
  for (const m of blocks.matchAll(/\(([^)]+)\):(\d+)(?:-(\d+))?/g)) {
    const first = Number(m[2]);
    const last = m[3] === undefined ? first : Number(m[3]);
    for (let b = first; b <= last; b++) (/IND/.test(m[1]!) ? indirect : data).push(b);
  }
  return { data, indirect };
}

export function tempDir(prefix = 'ulfs-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface PartSpec {
  sizeMiB: number;
  /** Populate with mke2fs -d from this directory; omit for a partition with no filesystem. */
  srcDir?: string;
  fsType?: 'ext2' | 'ext3' | 'ext4';
  blockSize?: 1024 | 4096;
  mkfsArgs?: string[];
  /** dos: '83'; gpt: 'L' */
  type?: string;
  name?: string;
}

export interface BuiltImage {
  path: string;
  /** Byte offset of partition i+1. */
  offsets: number[];
  /** `img?offset=N` for partition i+1. */
  specs: string[];
}

export function makePartitionedImage(file: string, label: 'dos' | 'gpt', parts: PartSpec[]): BuiltImage {
  const totalMiB = parts.reduce((n, p) => n + p.sizeMiB, 0) + 2;
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, '');
  fs.truncateSync(file, totalMiB * 1024 * 1024);
  let start = 2048;
  const lines = [`label: ${label}`];
  const offsets: number[] = [];
  for (const p of parts) {
    const sectors = p.sizeMiB * 2048;
    lines.push(
      `start=${start}, size=${sectors}, type=${p.type ?? (label === 'dos' ? '83' : 'L')}${p.name ? `, name="${p.name}"` : ''}`,
    );
    offsets.push(start * 512);
    start += sectors;
  }
  sh('sfdisk', ['-q', file], lines.join('\n') + '\n');
  parts.forEach((p, i) => {
    if (!p.srcDir && !p.fsType) return;
    const args = [
      '-q',
      '-F',
      '-t',
      p.fsType ?? 'ext4',
      '-b',
      String(p.blockSize ?? 4096),
      '-E',
      `offset=${offsets[i]}`,
    ];
    if (p.srcDir) args.push('-d', p.srcDir);
    args.push(...(p.mkfsArgs ?? []), file, `${p.sizeMiB * 1024}k`);
    sh('mke2fs', args);
  });
  return { path: file, offsets, specs: offsets.map((o) => `${file}?offset=${o}`) };
}

/** The committed demo image (fixtures/sample.img.gz), unpacked to `dir`. Root fs at 1 MiB. */
export function unpackSample(dir: string): { path: string; offset: number; spec: string; version: string } {
  const file = path.join(dir, 'sample.img');
  const gz = fs.readFileSync(
    path.join(
      import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname),
      '../../fixtures/sample.img.gz',
    ),
  );
  fs.writeFileSync(file, zlib.gunzipSync(gz));
  return { path: file, offset: 1048576, spec: `${file}?offset=1048576`, version: '6.1.0-99-demo' };
}

export const SAMPLE_USED = path.join(
  path.dirname(new URL(import.meta.url).pathname),
  '../../fixtures/sample-used.txt',
);

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export function fileSha(file: string): string {
  return sha256(fs.readFileSync(file));
}

/** Every regular file below `dir` (relative paths), as `find -type f` would list them. */
export function listFiles(dir: string, filter: (rel: string) => boolean = () => true): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isFile() && filter(r)) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** `debugfs -R 'rdump SRC DEST'`: the oracle's copy of a directory tree. */
export function rdump(spec: string, src: string, dest: string): string {
  fs.mkdirSync(dest, { recursive: true });
  sh('debugfs', ['-R', `rdump ${src} ${dest}`, spec]);
  return path.join(dest, path.basename(src));
}
