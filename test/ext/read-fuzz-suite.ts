/**
 * Corrupted metadata never crashes or hangs the reader: flip random bytes in the metadata blocks of
 * real images (superblock, descriptors, inode tables, directory and extent/indirect blocks), then
 * open, walk and read everything. Every failure must be a UlfsError; nothing may take long.
 * Checksums are off for half the runs, so the corruption reaches the parsers behind them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUlfsError } from '../../src/errors.js';
import { ExtFs } from '../../src/ext/fs.js';
import { MemoryDevice } from '../../src/image/blockdev.js';
import { makeExtImage, makeRichTree, type ExtImageOpts } from '../fixtures/ext-images.js';

type Img = { name: string; bytes: Buffer; meta: number[]; bs: number };

/** Blocks worth corrupting: everything ExtFs reads that is not file data. */
function metadataBlocks(x: ExtFs): number[] {
  const out = new Set<number>([0, 1, 2]);
  for (const g of x.groups) {
    for (let i = 0; i < x.sb.inodeTableBlocks && i < 4; i++) out.add(g.inodeTable + i);
    out.add(Math.floor(g.offset / x.blockSize));
  }
  for (const e of x.walk('/')) {
    const ino = x.readInode(e.ino);
    for (const b of x.metadataBlocks(ino)) out.add(b);
    if (e.stat.type === 'dir')
      for (const ex of x.mapFile(ino)) for (let k = 0; k < ex.length && k < 8; k++) out.add(ex.physical + k);
  }
  return [...out].sort((a, b) => a - b);
}

/** Bytes read per file at most (see readEverything). */
const READ_CAP = 16 << 20;

function readEverything(x: ExtFs): void {
  x.journalState();
  for (const e of x.walk('/')) {
    if (e.stat.type === 'file') {
      // A flipped i_size_high makes a legitimate sparse file of many GiB: reading all of its zeros is
      // not a reader bug, just slow. The fixture's files are all far below this cap.
      let n = 0;
      for (const c of x.fileChunks(e.ino, 1 << 20)) if ((n += c.length) >= READ_CAP) break;
    } else if (e.stat.type === 'symlink') {
      x.readlink(e.ino);
      try {
        x.lookup(e.path);
      } catch (err) {
        if (!isUlfsError(err)) throw err;
      }
    }
  }
}

export function fuzzSuite(numRuns: number, seed: number): void {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-fuzz-'));
  const images: Img[] = [];
  beforeAll(() => {
    const src = path.join(tmp, 'src');
    makeRichTree(src, { tindFile: false, manyExtents: 400, bigDirEntries: 150 });
    fs.rmSync(path.join(src, 'files/1M+3'));
    fs.rmSync(path.join(src, 'files/3M'));
    const configs: [string, ExtImageOpts][] = [
      ['ext4-4k', { fsType: 'ext4', blockSize: 4096 }],
      ['ext4-1k-32', { fsType: 'ext4', blockSize: 1024, bit64: false }],
      ['ext3-1k', { fsType: 'ext3', blockSize: 1024 }],
    ];
    for (const [name, o] of configs) {
      const img = makeExtImage(path.join(tmp, `${name}.img`), { ...o, srcDir: src, sizeMiB: 24 });
      const bytes = fs.readFileSync(img.path);
      const x = ExtFs.open(new MemoryDevice(bytes, { writable: false }));
      images.push({ name, bytes, meta: metadataBlocks(x), bs: x.blockSize });
    }
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe('ExtFs on randomly corrupted metadata', () => {
    it(
      'fails only with UlfsError, never hangs',
      () => {
        let failures = 0;
        let successes = 0;
        fc.assert(
          fc.property(
            fc.nat({ max: images.length - 1 }),
            fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 })), {
              minLength: 1,
              maxLength: 8,
            }),
            fc.boolean(),
            (which, flips, verify) => {
              const img = images[which]!;
              // Patch in place and restore afterwards (copying the image per run costs more than reading it).
              const b = img.bytes;
              const saved: [number, number][] = [];
              for (const [blkPick, offPick, xor] of flips) {
                const blk = img.meta[blkPick % img.meta.length]!;
                const off = blk * img.bs + (offPick % img.bs);
                saved.push([off, b[off]!]);
                b[off] = b[off]! ^ xor;
              }
              const t0 = Date.now();
              try {
                readEverything(
                  ExtFs.open(new MemoryDevice(b, { writable: false }), { verifyChecksums: verify }),
                );
                successes++;
              } catch (err) {
                if (!isUlfsError(err)) throw err;
                failures++;
              } finally {
                for (const [off, v] of saved.reverse()) b[off] = v;
              }
              expect(Date.now() - t0).toBeLessThan(10_000);
            },
          ),
          { numRuns, seed },
        );
        // Both outcomes occur, so the corruption both hits parsers and is sometimes harmless.
        expect(failures).toBeGreaterThan(numRuns / 20);
        expect(successes).toBeGreaterThan(numRuns / 20);
      },
      60_000 + numRuns * 1000,
    );
  });
}
