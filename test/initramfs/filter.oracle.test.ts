import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { filterInitramfs, listInitramfs, sniffCompression } from '../../src/initramfs/index.js';
import {
  chunked,
  collect,
  cpioOf,
  extractWithCpio,
  makeTree,
  nativeCompress,
  nativeDecompress,
  run,
  tmpDir,
} from './util.js';

// A small initramfs-like tree: a module tree where whole directories lose all their modules.
const SPEC: Record<string, string> = {
  'bin/sh': 'l:busybox',
  'bin/busybox': 'ELF'.repeat(3000),
  'etc/empty-in-input': 'd',
  'usr/lib/modules/6.1/kernel/drivers/net/e1000.ko': 'E'.repeat(40000),
  'usr/lib/modules/6.1/kernel/drivers/net/virtio_net.ko': 'V'.repeat(30000),
  'usr/lib/modules/6.1/kernel/drivers/gpu/drm/amdgpu.ko': 'G'.repeat(50000),
  'usr/lib/modules/6.1/kernel/drivers/gpu/drm/radeon.ko': 'R'.repeat(20000),
  'usr/lib/modules/6.1/kernel/drivers/gpu.ko': 'g'.repeat(100),
  'usr/lib/modules/6.1/kernel/fs/ext4.ko': 'X'.repeat(10000),
  'usr/lib/modules/6.1/modules.dep': 'kernel/fs/ext4.ko:\n',
  'hl/a': 'shared data',
  'hl/b': 'h:hl/a',
  'hl/c.ko': 'h:hl/a',
};
const DROP = (name: string): boolean => /(amdgpu|radeon|e1000|gpu)\.ko$/.test(name) || name === 'hl/c.ko';

describe('filterInitramfs against GNU cpio and the native decompressors', () => {
  const tree = makeTree(SPEC);
  const archive = cpioOf(tree, 'newc');
  const before = extractWithCpio(archive);
  afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

  for (const c of ['none', 'gzip', 'zstd', 'xz', 'lz4'] as const) {
    it(`${c}: the filtered output extracts to the input minus exactly the removed entries and emptied dirs`, async () => {
      const input = nativeCompress(c, archive);
      const { output, done } = filterInitramfs(chunked(input, 4096), {
        decide: (e) => (DROP(e.name) ? 'drop' : 'keep'),
        level: c === 'zstd' ? 3 : undefined,
      });
      const out = await collect(output);
      const rep = await done;
      expect(sniffCompression(out)).toBe(c);
      const plain = nativeDecompress(c, out); // gzip -t / zstd -t / xz -t / lz4 -t first
      expect(plain.length % 512).toBe(0); // re-padded to 512-byte blocks like GNU cpio's input
      const after = extractWithCpio(plain);
      expect(rep.removed.sort()).toEqual(
        [
          'hl/c.ko',
          'usr/lib/modules/6.1/kernel/drivers/gpu.ko',
          'usr/lib/modules/6.1/kernel/drivers/gpu/drm/amdgpu.ko',
          'usr/lib/modules/6.1/kernel/drivers/gpu/drm/radeon.ko',
          'usr/lib/modules/6.1/kernel/drivers/net/e1000.ko',
        ].sort(),
      );
      // gpu/drm emptied, then gpu emptied; etc/empty-in-input was empty already and stays.
      expect(rep.removedDirs.sort()).toEqual([
        'usr/lib/modules/6.1/kernel/drivers/gpu',
        'usr/lib/modules/6.1/kernel/drivers/gpu/drm',
      ]);
      const expected = new Map(before);
      for (const p of [...rep.removed, ...rep.removedDirs]) expect(expected.delete(p)).toBe(true);
      // The hard-link set lost its data member (c.ko is last): the data moved to hl/b.
      expect(after).toEqual(expected);
      expect(after.get('hl/b')!.size).toBe('shared data'.length);
      expect(rep.segments[0]!.changed).toBe(true);
      expect(rep.segments[0]!.entriesAfter).toBe(rep.segments[0]!.entriesBefore - 7);
      // Our listing agrees with cpio -t on our own output.
      const { entries } = await listInitramfs(chunked(out, 65536));
      expect(entries.length).toBe(rep.segments[0]!.entriesAfter);
    });
  }

  it('keep + unchanged copies every compressed segment byte for byte', async () => {
    for (const c of ['gzip', 'zstd', 'xz', 'lz4'] as const) {
      const input = nativeCompress(c, archive);
      const { output } = filterInitramfs(chunked(input, 1000), { decide: () => 'keep', level: 1 });
      expect((await collect(output)).equals(input)).toBe(true);
    }
  });

  it('converts compression on request (xz with CRC32 check, none), the kernel way', async () => {
    const input = nativeCompress('gzip', archive);
    for (const target of ['xz', 'none', 'lz4', 'gzip'] as const) {
      const { output, done } = filterInitramfs(chunked(input, 65536), {
        decide: () => 'keep',
        compression: target,
        level: 1,
      });
      const out = await collect(output);
      const rep = await done;
      expect(sniffCompression(out)).toBe(target);
      if (target === 'xz') {
        const info = nativeDecompressInfo(out);
        expect(info).toMatch(/CRC32/);
      }
      expect(nativeDecompress(target, out).equals(archive)).toBe(true);
      expect(rep.segments[0]!.outputCompression).toBe(target);
    }
  });

  it('writes xz with a 1 MiB dictionary at every level, the default (6) included', async () => {
    // Level 1's own dictionary is 1 MiB; 0 has 256 KiB, 6 and 9 have 8 and 64 MiB.
    const input = nativeCompress('gzip', archive);
    for (const level of [0, undefined, 9]) {
      const { output, done } = filterInitramfs(chunked(input, 65536), {
        decide: () => 'keep',
        compression: 'xz',
        level,
      });
      const out = await collect(output);
      await done;
      const info = nativeDecompressInfo(out);
      expect(info, `level ${level}`).toMatch(/--lzma2=dict=1MiB/);
      expect(info).toMatch(/CRC32/);
      expect(nativeDecompress('xz', out).equals(archive)).toBe(true);
    }
  });

  it('replace: new contents, sizes and (crc format) checksums', async () => {
    const crc = cpioOf(tree, 'crc');
    const { output, done } = filterInitramfs(chunked(crc, 777), {
      decide: (e) =>
        e.name.endsWith('modules.dep') ? { replace: Buffer.from('kernel/fs/ext4.ko:\nnew\n') } : 'keep',
    });
    const out = await collect(output);
    await done;
    const dir = tmpDir('crc');
    try {
      // cpio -i verifies crc checksums and complains on a mismatch.
      const after = extractWithCpio(out);
      expect(after.get('usr/lib/modules/6.1/modules.dep')!.size).toBe('kernel/fs/ext4.ko:\nnew\n'.length);
      const { entries } = await listInitramfs(chunked(out, 5)); // verifies our own checksums too
      expect(entries.length).toBe(before.size + 1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an uncompressed early cpio in front of a compressed one: copied byte for byte, the main one filtered', async () => {
    const earlyTree = makeTree({ 'kernel/x86/microcode/GenuineIntel.bin': 'M'.repeat(3000) });
    try {
      const early = cpioOf(earlyTree, 'newc');
      expect(early.length % 512).toBe(0); // GNU cpio pads the archive to 512 bytes
      const input = Buffer.concat([early, nativeCompress('zstd', archive)]);
      const { output, done } = filterInitramfs(chunked(input, 4093), {
        decide: (e) => (DROP(e.name) ? 'drop' : 'keep'),
        level: 3,
      });
      const out = await collect(output);
      const rep = await done;
      expect(out.subarray(0, early.length).equals(early)).toBe(true);
      expect(rep.segments.map((s) => [s.offset, s.compression, s.changed])).toEqual([
        [0, 'none', false],
        [early.length, 'zstd', true],
      ]);
      const { segments } = await listInitramfs(chunked(out, 65536));
      expect(segments.map((s) => s.compression)).toEqual(['none', 'zstd']);
      expect(segments[0]!.length).toBe(early.length);
    } finally {
      fs.rmSync(earlyTree, { recursive: true, force: true });
    }
  });
});

function nativeDecompressInfo(xz: Buffer): string {
  const dir = tmpDir('xzinfo');
  try {
    fs.writeFileSync(`${dir}/a.xz`, xz);
    return run('xz', ['--list', '-vv', `${dir}/a.xz`]).toString();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
