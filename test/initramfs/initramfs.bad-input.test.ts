import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { UlfsError, type ErrorCode } from '../../src/errors.js';
import { filterInitramfs, listInitramfs } from '../../src/initramfs/index.js';
import { chunked, collect, cpioOf, makeTree, nativeCompress } from './util.js';
import { loadNative } from '../../src/initramfs/compression.js';
import { codeAndMessageOf } from '../helpers/errors.js';

const tree = makeTree({ 'a/b.ko': 'B'.repeat(2000), 'a/c': 'ccc', 'd/e': 'e' });
const archive = cpioOf(tree, 'newc');
afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

/** Both entry points fail with `code`, and the filter writes nothing after the error. */
async function expectCode(input: Buffer, code: ErrorCode, chunk = 4096): Promise<void> {
  await expect(listInitramfs(chunked(input, chunk))).rejects.toSatisfy(
    (e: unknown) => e instanceof UlfsError && e.code === code,
  );
  const { output, done } = filterInitramfs(chunked(input, chunk), { decide: () => 'drop' });
  await expect(collect(output)).rejects.toSatisfy((e: unknown) => e instanceof UlfsError && e.code === code);
  await expect(done).rejects.toSatisfy((e: unknown) => e instanceof UlfsError && e.code === code);
}

function setHex(b: Buffer, at: number, v: number): Buffer {
  const c = Buffer.from(b);
  c.write(v.toString(16).toUpperCase().padStart(8, '0'), at, 'latin1');
  return c;
}

describe('bad input gives typed errors, no hang', () => {
  it('truncated compressed streams => COMPRESS_TRUNCATED', async () => {
    for (const c of ['gzip', 'zstd', 'xz', 'lz4'] as const) {
      const z = nativeCompress(c, archive);
      await expectCode(z.subarray(0, Math.floor(z.length / 2)), 'COMPRESS_TRUNCATED');
    }
  });

  it('corrupt compressed stream => COMPRESS_CORRUPT', async () => {
    const z = Buffer.from(nativeCompress('gzip', archive));
    z.fill(0x55, 20, 60);
    await expectCode(z, 'COMPRESS_CORRUPT');
  });

  it('corrupt header magic => CPIO_BAD_MAGIC (second entry), INITRAMFS_GARBAGE (first byte)', async () => {
    const second = 110 + 4; // "." is not in this archive; find the second header
    const at = archive.indexOf('070701', second);
    const bad = Buffer.from(archive);
    bad.write('070799', at, 'latin1');
    await expectCode(bad, 'CPIO_BAD_MAGIC');
    const g = Buffer.from(archive);
    g.write('XYZ', 0, 'latin1');
    await expectCode(g, 'INITRAMFS_GARBAGE');
  });

  it('name size beyond the archive => CPIO_TRUNCATED / CPIO_NAME_TOO_LONG', async () => {
    const cut = setHex(archive, 94, 0x200).subarray(0, 300);
    await expectCode(cut, 'CPIO_TRUNCATED', 1);
    await expectCode(setHex(archive, 94, 0x100000), 'CPIO_NAME_TOO_LONG');
  });

  it('file size beyond the archive => CPIO_TRUNCATED', async () => {
    await expectCode(setHex(archive, 54, 0x100000), 'CPIO_TRUNCATED');
  });

  it('a missing trailer => CPIO_NO_TRAILER', async () => {
    const t = archive.indexOf('TRAILER!!!');
    await expectCode(archive.subarray(0, t - 110), 'CPIO_NO_TRAILER');
    await expectCode(nativeCompress('gzip', archive.subarray(0, t - 110)), 'CPIO_NO_TRAILER');
  });

  it('garbage between segments => INITRAMFS_GARBAGE', async () => {
    const input = Buffer.concat([archive, Buffer.from('garbage!'), nativeCompress('gzip', archive)]);
    await expectCode(input, 'INITRAMFS_GARBAGE');
  });

  it('bad crc => CPIO_BAD_CRC', async () => {
    const crc = Buffer.from(cpioOf(tree, 'crc'));
    const at = crc.indexOf('BBBB');
    crc[at] = 0x41;
    await expectCode(crc, 'CPIO_BAD_CRC');
  });

  it('a decompression bomb (1 GB of zeros, gzip) => COMPRESS_BOMB, quickly', async () => {
    // A cpio header claiming a 1 GB file, then zeros: ~1 MB of gzip.
    const head = Buffer.from(archive.subarray(0, 110 + 8));
    const h = setHex(head, 54, 1 << 30);
    const gz = zlib.gzipSync(Buffer.concat([h, Buffer.alloc(64 << 20)]), { level: 1 });
    // Repeat the zeros part by concatenated gzip members: 16 x 64 MiB = 1 GiB of zeros.
    const zeros = zlib.gzipSync(Buffer.alloc(64 << 20), { level: 1 });
    const bomb = Buffer.concat([gz, ...Array(15).fill(zeros)]);
    const t = Date.now();
    await expectCode(bomb, 'COMPRESS_BOMB', 1 << 16);
    expect(Date.now() - t).toBeLessThan(20_000);
  });
});

describe('a native codec that cannot be loaded', () => {
  it('is COMPRESS_UNAVAILABLE with one line naming the package, not a corrupt stream', () => {
    expect(codeAndMessageOf(() => loadNative('ulfs-no-such-codec/binding.js', 'zstd'))).toMatch(
      /^COMPRESS_UNAVAILABLE: zstd support needs the ulfs-no-such-codec package, which could not be loaded: [^\n]+$/,
    );
  });
});
