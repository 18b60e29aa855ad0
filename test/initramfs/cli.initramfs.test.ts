import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { cpioOf, makeTree, nativeCompress, run, tmpDir } from './util.js';

describe('ulfs-offline initramfs --file', () => {
  const tree = makeTree({ 'etc/x': 'hello', 'bin/sh': 'l:busybox', 'lib/m.ko': 'M'.repeat(999) });
  const dir = tmpDir('cli');
  const early = cpioOf(makeTree({ 'kernel/x86/microcode/AuthenticAMD.bin': 'u' }), 'newc');
  const file = path.join(dir, 'initrd.img');
  fs.writeFileSync(file, Buffer.concat([early, nativeCompress('gzip', cpioOf(tree, 'newc'))]));
  afterAll(() => {
    fs.rmSync(tree, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--json lists segments and the entries lsinitramfs lists', async () => {
    const r = await cli('initramfs', '--file', file, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as {
      segments: { offset: number; length: number; compression: string; entries: number }[];
      entries: { path: string; mode: number; size: number }[];
    };
    expect(j.segments.map((s) => [s.offset, s.compression])).toEqual([
      [0, 'none'],
      [early.length, 'gzip'],
    ]);
    expect(j.segments[0]!.length + j.segments[1]!.length).toBe(fs.statSync(file).size);
    const ls = run('lsinitramfs', [file]).toString().trim().split('\n').sort();
    expect(j.entries.map((e) => e.path).sort()).toEqual(ls);
    expect(j.entries.find((e) => e.path === 'lib/m.ko')!.size).toBe(999);
  });

  it('prints a table without --json; a missing file and garbage give one-line errors', async () => {
    const r = await cli('initramfs', '--file', file);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/gzip/);
    expect(r.stdout).toMatch(/-rw-r--r--\s+999 lib\/m\.ko/);
    const missing = await cli('initramfs', '--file', path.join(dir, 'nope'));
    expect(missing.code).toBe(6);
    const bad = path.join(dir, 'bad');
    fs.writeFileSync(bad, 'not an initramfs');
    const g = await cli('initramfs', '--file', bad);
    expect(g.code).toBe(3);
    expect(g.stderr).toMatch(/INITRAMFS_GARBAGE/);
  });
});
