/**
 * Superblock and group descriptors as ExtFs decodes them equal what dumpe2fs prints, for every
 * MATRIX filesystem plus meta_bg and uninit_bg layouts (empty filesystems: mke2fs only, cheap).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExtFs } from '../../src/ext/fs.js';
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT, BG_INODE_ZEROED } from '../../src/ext/groupdesc.js';
import { FileDevice } from '../../src/image/blockdev.js';
import { MATRIX, makeExtImage, matrixName, type ExtImageOpts } from '../fixtures/ext-images.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-ext-read-dumpe2fs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };

const cases: (ExtImageOpts & { name: string })[] = [
  ...MATRIX.map((o) => ({ ...o, name: matrixName(o) })),
  {
    name: 'ext4-1k-meta_bg',
    fsType: 'ext4',
    blockSize: 1024,
    extraFeatures: 'meta_bg,^resize_inode',
    mkfsArgs: ['-g', '512'],
  },
  { name: 'ext3-4k-uninit_bg', fsType: 'ext3', blockSize: 4096, extraFeatures: 'uninit_bg' },
  { name: 'ext4-4k-label', fsType: 'ext4', blockSize: 4096, label: 'rootfs', inodeSize: 128 },
];

describe.each(cases)('$name', (o) => {
  it('superblock and descriptors match dumpe2fs', () => {
    const img = makeExtImage(path.join(tmp, `${o.name}.img`), { ...o, sizeMiB: 72 });
    const out = execFileSync('dumpe2fs', [img.spec], {
      env: ENV,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const field = (name: string): string => {
      const m = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(out);
      if (!m) throw new Error(`dumpe2fs printed no "${name}"`);
      return m[1]!.trim();
    };
    const x = ExtFs.open(new FileDevice(img.path));
    const sb = x.sb;
    expect(sb.blocksCount).toBe(Number(field('Block count')));
    expect(sb.inodesCount).toBe(Number(field('Inode count')));
    expect(sb.freeBlocksCount).toBe(Number(field('Free blocks')));
    expect(sb.freeInodesCount).toBe(Number(field('Free inodes')));
    expect(sb.firstDataBlock).toBe(Number(field('First block')));
    expect(x.blockSize).toBe(Number(field('Block size')));
    expect(sb.blocksPerGroup).toBe(Number(field('Blocks per group')));
    expect(sb.inodesPerGroup).toBe(Number(field('Inodes per group')));
    expect(sb.inodeSize).toBe(Number(field('Inode size')));
    expect(sb.uuid).toBe(field('Filesystem UUID'));
    expect(sb.volumeName || '<none>').toBe(field('Filesystem volume name'));
    expect(sb.reservedGdtBlocks).toBe(Number(/^Reserved GDT blocks:\s*(\d+)$/m.exec(out)?.[1] ?? 0));
    expect([...x.usedFeatures()].sort()).toEqual(field('Filesystem features').split(/\s+/).sort());
    if (x.csumSeed !== null) expect(sb.checksum).toBe(parseInt(field('Checksum'), 16));
    // Per group: locations, counters, flags, checksum.
    let checkedGdt = 0;
    const groups = out.split(/^Group (?=\d)/m).slice(1);
    expect(groups.length).toBe(x.groupCount);
    for (const [g, text] of groups.entries()) {
      const gd = x.groups[g]!;
      const head = /^(\d+): \(Blocks (\d+)-(\d+)\)(?: csum 0x([0-9a-f]+))?(?: \[(.*)\])?/.exec(text)!;
      expect(Number(head[1])).toBe(g);
      if (head[4]) expect(gd.checksum).toBe(parseInt(head[4], 16));
      // dumpe2fs prints the flags (and the csum) only when descriptors are checksummed.
      const flags = (head[5] ?? '').split(', ').filter(Boolean);
      if (head[4]) expect((gd.flags & BG_INODE_UNINIT) !== 0).toBe(flags.includes('INODE_UNINIT'));
      if (head[4]) expect((gd.flags & BG_BLOCK_UNINIT) !== 0).toBe(flags.includes('BLOCK_UNINIT'));
      if (head[4]) expect((gd.flags & BG_INODE_ZEROED) !== 0).toBe(flags.includes('ITABLE_ZEROED'));
      expect(gd.blockBitmap).toBe(Number(/Block bitmap at (\d+)/.exec(text)![1]));
      expect(gd.inodeBitmap).toBe(Number(/Inode bitmap at (\d+)/.exec(text)![1]));
      expect(gd.inodeTable).toBe(Number(/Inode table at (\d+)/.exec(text)![1]));
      const c =
        /(\d+) free (?:blocks|clusters), (\d+) free inodes, (\d+) directories(?:, (\d+) unused inodes)?/.exec(
          text,
        )!;
      expect([gd.freeBlocksCount, gd.freeInodesCount, gd.usedDirsCount]).toEqual([
        Number(c[1]),
        Number(c[2]),
        Number(c[3]),
      ]);
      if (c[4] !== undefined) expect(gd.itableUnused).toBe(Number(c[4]));
      const bcs = /Block bitmap at .*csum 0x([0-9a-f]+)/.exec(text);
      if (bcs) {
        const v = parseInt(bcs[1]!, 16);
        expect(gd.blockBitmapCsum).toBe(gd.size >= 0x3a ? v : v & 0xffff);
      }
      // Where the primary descriptor block lives: "Group descriptor(s) at B" in group 0 (classic
      // layout), or in the first group of every meta_bg (meta_bg layout).
      const gdtAt = /Group descriptors? at (\d+)/.exec(text);
      const dpb = x.blockSize / gd.size;
      const metaBg = x.usedFeatures().includes('meta_bg');
      if (gdtAt && (g === 0 || (metaBg && g % dpb === 0))) {
        expect(Math.floor(gd.offset / x.blockSize)).toBe(Number(gdtAt[1]));
        checkedGdt++;
      }
    }
    expect(checkedGdt).toBe(
      x.usedFeatures().includes('meta_bg') ? Math.ceil(x.groupCount / (x.blockSize / x.groups[0]!.size)) : 1,
    );
    fs.rmSync(img.path, { force: true });
  });
});
