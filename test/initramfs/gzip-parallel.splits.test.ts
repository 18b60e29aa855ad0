/**
 * deflateSplits: deflate blocks end where the bytes change character, never run past 48 KiB, and
 * never split data whose statistics stay the same. The gzip oracle test checks the output itself.
 */
import { randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deflateSplits } from '../../src/initramfs/gzip-parallel.js';

const KIB = 1024;

function text(n: number): Buffer {
  const words = ['module', 'alias', 'pci:v00008086d', 'symbol', 'license=GPL', 'depends=', '\n'];
  let s = '';
  for (let i = 0; s.length < n; i++) s += words[(i * 7) % words.length] + ' ';
  return Buffer.from(s.slice(0, n), 'latin1');
}

/** Size of the level-9 raw deflate of `data`, ending a block at each of `splits`. */
function deflatedSize(data: Buffer, splits: number[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const z = zlib.createDeflateRaw({ level: 9, memLevel: 9 });
    let size = 0;
    z.on('data', (c: Buffer) => (size += c.length));
    z.on('error', reject);
    z.on('end', () => resolve(size));
    let from = 0;
    for (const at of splits) {
      z.write(data.subarray(from, at));
      z.flush(zlib.constants.Z_BLOCK);
      from = at;
    }
    z.end(data.subarray(from));
  });
}

describe('deflateSplits', () => {
  it('cuts where text turns into random bytes and back', () => {
    const data = Buffer.concat([text(24 * KIB), randomBytes(24 * KIB), text(24 * KIB)]);
    expect(deflateSplits(data)).toEqual([24 * KIB, 48 * KIB]);
  });

  it('cuts data of one kind only every 48 KiB', () => {
    expect(deflateSplits(randomBytes(200 * KIB))).toEqual([48 * KIB, 96 * KIB, 144 * KIB, 192 * KIB]);
    expect(deflateSplits(text(100 * KIB))).toEqual([48 * KIB, 96 * KIB]);
  });

  it('does not cut input of one piece or less', () => {
    expect(deflateSplits(Buffer.alloc(0))).toEqual([]);
    expect(deflateSplits(randomBytes(2 * KIB))).toEqual([]);
  });

  it('gives increasing 2 KiB-aligned cuts inside the input, at most 48 KiB apart', () => {
    const kinds = [(n: number) => text(n), (n: number) => randomBytes(n), (n: number) => Buffer.alloc(n, 7)];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 70 * KIB })), {
          minLength: 1,
          maxLength: 8,
        }),
        (parts) => {
          const data = Buffer.concat(parts.map(([k, n]) => kinds[k]!(n)));
          const s = deflateSplits(data);
          let prev = 0;
          for (const at of s) {
            expect(at % (2 * KIB)).toBe(0);
            expect(at).toBeGreaterThan(prev);
            expect(at - prev).toBeLessThanOrEqual(48 * KIB);
            prev = at;
          }
          expect(data.length - prev).toBeLessThanOrEqual(48 * KIB);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('makes mixed input deflate smaller than zlib cutting blocks on its own', async () => {
    const data = Buffer.concat(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? randomBytes(10 * KIB) : text(14 * KIB))),
    );
    expect(await deflatedSize(data, deflateSplits(data))).toBeLessThan(await deflatedSize(data, []));
  });
});
