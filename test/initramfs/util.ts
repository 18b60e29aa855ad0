/** Shared helpers for the initramfs tests: temp trees, native tools as oracles, tree snapshots. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { TOOL_ENV } from '../fixtures/initramfs-images.js';

export { cpioOf, TOOL_ENV } from '../fixtures/initramfs-images.js';

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ulfs-h3-${tag}-`));
}

export function run(cmd: string, args: string[], input?: Buffer, cwd?: string): Buffer {
  return execFileSync(cmd, args, {
    input,
    cwd,
    env: TOOL_ENV,
    maxBuffer: 1 << 30,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Native compressors, invoked the way mkinitramfs does. */
export function nativeCompress(c: 'gzip' | 'zstd' | 'xz' | 'lz4' | 'none', data: Buffer): Buffer {
  switch (c) {
    case 'gzip':
      return run('gzip', ['-n', '-9', '-c'], data);
    case 'zstd':
      return run('zstd', ['-q', '-3', '-c'], data);
    case 'xz':
      return run('xz', ['--check=crc32', '-c'], data);
    case 'lz4':
      return run('lz4', ['-l', '-9', '-c'], data);
    case 'none':
      return data;
  }
}

/** Native decompressor, with its integrity check (gzip -t etc. run first). */
export function nativeDecompress(c: string, data: Buffer): Buffer {
  const tool = { gzip: 'gzip', zstd: 'zstd', xz: 'xz', lz4: 'lz4' }[c];
  if (!tool) return data;
  run(tool, ['-t', ...(tool === 'zstd' ? ['-q'] : [])], data);
  return run(tool, ['-dc'], data);
}

/** A tree made from a spec: 'd' dir, 'l:target' symlink, 'h:other' hard link, else file content. */
export function makeTree(spec: Record<string, string>): string {
  const dir = tmpDir('tree');
  for (const [p, v] of Object.entries(spec)) {
    const full = path.join(dir, p);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    if (v === 'd') fs.mkdirSync(full, { recursive: true });
    else if (v.startsWith('l:')) fs.symlinkSync(v.slice(2), full);
    else if (v.startsWith('h:')) fs.linkSync(path.join(dir, v.slice(2)), full);
    else fs.writeFileSync(full, v);
  }
  return dir;
}

export interface Node {
  type: string;
  mode: number;
  size: number;
  sha?: string;
  link?: string;
}

/** What GNU cpio extracts from an archive: path -> type, mode, size, content hash / link target. */
export function extractWithCpio(archive: Buffer): Map<string, Node> {
  const dir = tmpDir('x');
  try {
    run('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], archive, dir);
    return snapshot(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function snapshot(dir: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode: st.mode, size: 0 });
        walk(r);
      } else if (st.isSymbolicLink()) {
        out.set(r, { type: 'link', mode: st.mode, size: 0, link: fs.readlinkSync(path.join(dir, r)) });
      } else {
        const data = fs.readFileSync(path.join(dir, r));
        out.set(r, {
          type: 'file',
          mode: st.mode,
          size: st.size,
          sha: createHash('sha256').update(data).digest('hex'),
        });
      }
    }
  };
  walk('');
  return out;
}

/** Feeds a buffer in chunks of `size` bytes. */
export function chunked(b: Buffer, size: number): AsyncIterable<Buffer> {
  return (async function* () {
    for (let i = 0; i < b.length; i += size) yield b.subarray(i, Math.min(b.length, i + size));
  })();
}

export async function collect(r: Readable | AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}
