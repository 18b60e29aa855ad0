/**
 * Properties of the on-disk parsers over arbitrary bytes: each either returns a well-formed result
 * or throws a UlfsError (never another exception, never loops).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isUlfsError } from '../../src/errors.js';
import { walkBlockMap } from '../../src/ext/blockmap.js';
import { decodeDirBlock, type DirEntry } from '../../src/ext/dirent.js';
import { walkExtents } from '../../src/ext/extents.js';
import { dxCountLimit } from '../../src/ext/htree.js';
import type { MapContext, Mapping } from '../../src/ext/mapping.js';
import { decodeSuperblock, validateSuperblock } from '../../src/ext/superblock.js';
import { decodeXattrEntries } from '../../src/ext/xattr.js';

/** Runs fn; a UlfsError counts as a clean refusal, anything else fails the property. */
function ulfsOr<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (e) {
    if (isUlfsError(e)) return null;
    throw e;
  }
}

/** Mostly-valid-looking bytes: random, with a bias to small numbers so structures sometimes parse. */
const bytes = (n: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: n, maxLength: n }).chain((b) =>
    fc.constantFrom(0, 1, 2).map((mode) => {
      const out = Buffer.from(b);
      if (mode === 1) for (let i = 0; i < out.length; i += 2) out[i + 1] = 0; // small LE16s
      if (mode === 2) for (let i = 0; i < out.length; i++) if (i % 4 >= 2) out[i] = 0; // small LE32s
      return out;
    }),
  );

function checkMapping(m: Mapping, ctx: MapContext): void {
  let prev = -1;
  for (const e of m.extents) {
    expect(e.length).toBeGreaterThan(0);
    expect(e.logical).toBeGreaterThan(prev);
    expect(e.physical).toBeGreaterThanOrEqual(ctx.firstDataBlock);
    expect(e.physical + e.length).toBeLessThanOrEqual(ctx.blocksCount);
    prev = e.logical + e.length - 1;
  }
  expect(new Set(m.metaBlocks).size).toBe(m.metaBlocks.length);
}

describe('parsers over arbitrary bytes', () => {
  it('decodeDirBlock: entries tile the block in order, or EXT_BAD_DIRENT', () => {
    fc.assert(
      fc.property(bytes(1024), fc.boolean(), (b, ft) => {
        const out: DirEntry[] = [];
        const r = ulfsOr(() => decodeDirBlock(b, 1024, 0, 5, ft, 1024, out, 1000));
        if (r === null) return;
        let off = -1;
        for (const e of out) {
          expect(e.offset).toBeGreaterThan(off);
          expect(e.offset + e.recLen).toBeLessThanOrEqual(1024);
          expect(e.ino).toBeLessThanOrEqual(1000);
          off = e.offset;
        }
      }),
      { numRuns: 500 },
    );
  });

  it('walkExtents / walkBlockMap: sorted in-range runs, distinct tree blocks, or a UlfsError', () => {
    fc.assert(
      fc.property(
        bytes(60),
        fc.array(bytes(1024), { minLength: 8, maxLength: 8 }),
        fc.boolean(),
        (root, blocks, ext) => {
          const ctx: MapContext = {
            blockSize: 1024,
            firstDataBlock: 1,
            blocksCount: 64,
            readBlock: (n) => Buffer.from(blocks[n % 8]!),
          };
          const iBlock = Buffer.from(root);
          if (ext) {
            iBlock.writeUInt16LE(0xf30a, 0); // make the root parse more often
            iBlock.writeUInt16LE(Math.min(iBlock.readUInt16LE(2), 4), 2);
            iBlock.writeUInt16LE(4, 4);
            iBlock.writeUInt16LE(iBlock.readUInt16LE(6) % 7, 6);
          }
          const m = ulfsOr(() => (ext ? walkExtents(ctx, iBlock, 12) : walkBlockMap(ctx, iBlock, 12)));
          if (m) checkMapping(m, ctx);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('superblock decode + validate: a UlfsError or a consistent superblock', () => {
    fc.assert(
      fc.property(bytes(1024), fc.nat({ max: 1 << 30 }), (b, devSize) => {
        const raw = Buffer.from(b);
        raw.writeUInt16LE(0xef53, 0x38);
        const sb = ulfsOr(() => {
          const s = decodeSuperblock(raw);
          validateSuperblock(s, devSize);
          return s;
        });
        if (!sb) return;
        expect(sb.blocksCount * sb.blockSize).toBeLessThanOrEqual(devSize);
        expect(sb.inodesPerGroup * sb.groupCount).toBe(sb.inodesCount);
      }),
      { numRuns: 500 },
    );
  });

  it('dxCountLimit and xattr entry lists never throw anything but UlfsError', () => {
    fc.assert(
      fc.property(bytes(1024), (b) => {
        dxCountLimit(b, 1024);
        const list = ulfsOr(() => decodeXattrEntries(Buffer.from(b), 32, 0, 'test'));
        if (list) for (const x of list) expect(x.value.length).toBeLessThanOrEqual(1024);
      }),
      { numRuns: 500 },
    );
  });
});
