/**
 * Real Debian initramfs images made by mkinitramfs (cloud kernel, MODULES=dep) in every compression
 * mkinitramfs offers, plus one with an early uncompressed cpio: byte-identical round trip, and a
 * module filter checked against unmkinitramfs / cpio -i and the native decompressors.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { filterInitramfs, listInitramfs } from '../../src/initramfs/index.js';
import { getInitramfs, withEarlyCpio } from '../fixtures/initramfs-images.js';
import { collect, nativeDecompress, run, snapshot, tmpDir, type Node } from './util.js';

function unmk(file: string): Map<string, Node> {
  const dir = tmpDir('unmk');
  try {
    run('unmkinitramfs', [file, dir]);
    return snapshot(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('real mkinitramfs images', () => {
  for (const c of ['gzip', 'zstd', 'xz', 'lz4'] as const) {
    it(`${c}: identity is byte-identical; dropping modules leaves exactly the rest`, async () => {
      const file = getInitramfs('cloud', c, 'dep');
      const input = fs.readFileSync(file);
      // Nothing changes, so the original bytes are written; the level only sets the cost of the
      // speculative recompression that runs alongside.
      const { output } = filterInitramfs(fs.createReadStream(file), { decide: () => 'keep', level: 1 });
      expect((await collect(output)).equals(input)).toBe(true);

      const { entries } = await listInitramfs(fs.createReadStream(file));
      const names = run('lsinitramfs', [file]).toString().trim().split('\n');
      expect(entries.map((e) => e.name).sort()).toEqual(names.sort());
      const kos = entries.filter((e) => e.name.endsWith('.ko')).map((e) => e.name);
      const keep = new Set(kos.filter((_, i) => i % 3 === 0));
      const { output: o2, done } = filterInitramfs(fs.createReadStream(file), {
        decide: (e) => (e.name.endsWith('.ko') && !keep.has(e.name) ? 'drop' : 'keep'),
        level: c === 'zstd' ? 9 : undefined,
      });
      const out = await collect(o2);
      const rep = await done;
      nativeDecompress(c, out); // the native tool's integrity test
      const dir = tmpDir('out');
      try {
        fs.writeFileSync(`${dir}/initrd`, out);
        const after = unmk(`${dir}/initrd`);
        const before = unmk(file);
        for (const p of [...rep.removed, ...rep.removedDirs]) expect(before.delete(p)).toBe(true);
        expect(after).toEqual(before);
        expect(rep.removed.length).toBe(kos.length - keep.size);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('early cpio + gzip: the early segment is copied byte for byte', async () => {
    const file = withEarlyCpio(getInitramfs('cloud', 'gzip', 'dep'));
    const input = fs.readFileSync(file);
    const { segments } = await listInitramfs(fs.createReadStream(file));
    expect(segments.map((s) => s.compression)).toEqual(['none', 'gzip']);
    const { output, done } = filterInitramfs(fs.createReadStream(file), {
      decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep'),
      compression: 'none',
    });
    const out = await collect(output);
    const rep = await done;
    expect(out.subarray(0, segments[0]!.length).equals(input.subarray(0, segments[0]!.length))).toBe(true);
    expect(rep.segments.map((s) => s.outputCompression)).toEqual(['none', 'none']);
    // lsinitramfs cannot read a file of uncompressed archives only (it fails the same way on two
    // archives GNU cpio wrote), so each archive goes to cpio -t on its own.
    const dir = tmpDir('early');
    try {
      const first = run('cpio', ['-t', '--quiet'], out.subarray(0, segments[0]!.length)).toString();
      expect(first).toMatch(/kernel\/x86\/microcode\/GenuineIntel\.bin/);
      const rest = out.subarray(segments[0]!.length);
      expect(rest.length % 512).toBe(0); // re-padded to GNU cpio's 512-byte blocks
      const names = run('cpio', ['-t', '--quiet'], rest).toString();
      expect(names).not.toMatch(/\.ko\n/);
      expect(names).toMatch(/usr\/lib\/modules\//);
      expect(names.trim().split('\n').length).toBe(rep.segments[1]!.entriesAfter);
      // Kept as gzip, the usual shape: lsinitramfs reads it (early archive, then the gzip stream).
      const { output: o2 } = filterInitramfs(fs.createReadStream(file), {
        decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep'),
        level: 1,
      });
      fs.writeFileSync(`${dir}/initrd`, await collect(o2));
      const ls = run('lsinitramfs', [`${dir}/initrd`]).toString();
      expect(ls).toMatch(/kernel\/x86\/microcode\/GenuineIntel\.bin/);
      expect(ls).not.toMatch(/\.ko\n/);
      expect(ls.trim().split('\n').length).toBe(
        rep.segments[0]!.entriesAfter + rep.segments[1]!.entriesAfter,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
