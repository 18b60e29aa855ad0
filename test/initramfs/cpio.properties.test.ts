import fc from 'fast-check';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  CPIO_TRAILER,
  S_IFDIR,
  S_IFREG,
  cpioChecksum,
  encodeCpioHeader,
  filterInitramfs,
  listInitramfs,
  pad4,
  type CpioHeader,
} from '../../src/initramfs/index.js';
import { chunked, collect } from './util.js';

interface Ent {
  name: string;
  dir: boolean;
  data: Buffer;
  ino: number;
  mtime: number;
}

function encodeArchive(ents: Ent[], format: 'newc' | 'crc', lower: boolean): Buffer {
  const parts: Buffer[] = [];
  const all = [...ents, { name: CPIO_TRAILER, dir: false, data: Buffer.alloc(0), ino: 0, mtime: 0 }];
  for (const e of all) {
    const h: CpioHeader = {
      format,
      ino: e.ino,
      mode: e.name === CPIO_TRAILER ? 0 : e.dir ? S_IFDIR | 0o755 : S_IFREG | 0o644,
      uid: 0,
      gid: 0,
      nlink: e.dir ? 2 : 1,
      mtime: e.mtime,
      fileSize: e.data.length,
      devMajor: 0,
      devMinor: 0,
      rdevMajor: 0,
      rdevMinor: 0,
      nameSize: 0,
      check: format === 'crc' ? cpioChecksum(e.data) : 0,
      lowerCase: lower,
    };
    parts.push(
      encodeCpioHeader(h, Buffer.from(e.name)),
      e.data,
      Buffer.alloc(pad4(e.data.length) - e.data.length),
    );
  }
  const a = Buffer.concat(parts);
  return Buffer.concat([
    a,
    Buffer.alloc(pad4(a.length) === a.length && a.length % 512 === 0 ? 0 : 512 - (a.length % 512)),
  ]);
}

const entArb = fc.record({
  name: fc.stringMatching(/^[a-z0-9._-]{1,12}(\/[a-z0-9._-]{1,12}){0,3}$/),
  dir: fc.boolean(),
  data: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
  ino: fc.nat({ max: 0xffffffff }),
  mtime: fc.nat({ max: 0xffffffff }),
});
const archiveArb = fc.record({
  ents: fc
    .array(entArb, { maxLength: 12 })
    .map((es) => es.map((e) => (e.dir ? { ...e, data: Buffer.alloc(0) } : e))),
  format: fc.constantFrom('newc' as const, 'crc' as const),
  lower: fc.boolean(),
});

describe('cpio codec and segment splitter properties', () => {
  it('decode -> encode is the identity, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        archiveArb,
        fc.integer({ min: 1, max: 64 }),
        async ({ ents, format, lower }, chunk) => {
          const a = encodeArchive(ents, format, lower);
          const { output } = filterInitramfs(chunked(a, chunk), { decide: () => 'keep' });
          expect((await collect(output)).equals(a)).toBe(true);
          const { entries } = await listInitramfs(chunked(a, chunk));
          expect(entries.map((e) => [e.name, e.size, e.ino, e.mtime])).toEqual(
            ents.map((e) => [e.name, e.data.length, e.ino, e.mtime]),
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it('segments: uncompressed archives, NUL padding, then a gzip stream of several archives', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(archiveArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat({ max: 3 }), { minLength: 3, maxLength: 3 }),
        fc.array(archiveArb, { maxLength: 2 }),
        fc.integer({ min: 1, max: 200 }),
        async (early, pads, inner, chunk) => {
          const parts: Buffer[] = [];
          early.forEach((x, i) =>
            parts.push(encodeArchive(x.ents, x.format, x.lower), Buffer.alloc(4 * pads[i % 3]!)),
          );
          const gz = inner.length
            ? zlib.gzipSync(Buffer.concat(inner.map((x) => encodeArchive(x.ents, x.format, x.lower))))
            : Buffer.alloc(0);
          const file = Buffer.concat([...parts, gz]);
          const { segments, entries } = await listInitramfs(chunked(file, chunk));
          expect(segments.length).toBe(early.length + (inner.length ? 1 : 0));
          expect(segments.reduce((n, s) => n + s.length, 0)).toBe(file.length);
          expect(segments.map((s) => s.compression)).toEqual([
            ...early.map(() => 'none'),
            ...(inner.length ? ['gzip'] : []),
          ]);
          if (inner.length) expect(segments[segments.length - 1]!.archives).toBe(inner.length);
          const total = [...early, ...inner].reduce((n, x) => n + x.ents.length, 0);
          expect(entries.length).toBe(total);
          const { output } = filterInitramfs(chunked(file, chunk), { decide: () => 'keep' });
          expect((await collect(output)).equals(file)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});
