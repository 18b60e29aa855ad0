/**
 * zero-free against native zerofree: garbage is written into free blocks (including a BLOCK_UNINIT
 * group); our zeroing and zerofree on a copy must modify the same blocks, leave images that differ
 * only in the superblock fields zerofree/libext2fs touch (s_wtime, s_kbytes_written, s_checksum),
 * and `zerofree -n -v` must then find nothing to do. e2fsck stays clean.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { FileDevice, SliceDevice } from '../../src/image/blockdev.js';
import { checkFs, zeroFree } from '../../src/ext/write/index.js';
import { debugfs, e2fsck, ENV, mkfs, run, sha256File, tmpDir, type Img } from './writer-fixtures.js';
import { journalLayout } from '../helpers/images.js';

let dir: string;
beforeAll(() => {
  dir = tmpDir('zero');
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 20; i++)
    fs.writeFileSync(path.join(src, 'sub', `f${i}`), Buffer.alloc(5000 + i * 777, i + 1));
  fs.writeFileSync(path.join(src, 'big'), Buffer.alloc(300_000, 7));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function zerofreeCounts(spec: string, dry: boolean): [number, number, number] {
  const r = spawnSync('zerofree', dry ? ['-n', '-v', spec] : ['-v', spec], { env: ENV, encoding: 'utf8' });
  const m = /(\d+)\/(\d+)\/(\d+)\s*$/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`zerofree failed: ${r.status} ${r.stdout} ${r.stderr}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Free blocks to spoil: a few runs in the used group 0 area, a BLOCK_UNINIT group, the last group. */
function pickGarbageBlocks(img: Img, bs: number): number[] {
  const dump = run('dumpe2fs', [img.spec]);
  const groups = [...dump.matchAll(/^Group (\d+): \(Blocks (\d+)-(\d+)\).*$/gm)].map((m) => ({
    g: Number(m[1]),
    first: Number(m[2]),
    last: Number(m[3]),
    uninit: m[0].includes('BLOCK_UNINIT'),
  }));
  const candidates: number[] = [];
  const ffb = debugfs(img.spec, ['ffb 30 0']);
  for (const m of (/Free blocks found: ([\d ]+)/.exec(ffb)?.[1] ?? '').trim().split(/\s+/))
    candidates.push(Number(m));
  const un = groups.find((x) => x.uninit);
  if (un) for (let k = 0; k < 50; k++) candidates.push(un.first + Math.floor((un.last - un.first) / 2) + k);
  const last = groups[groups.length - 1]!;
  for (let k = 1; k <= 10; k++) candidates.push(last.last - k * 3);
  // keep only blocks debugfs says are free
  const out = debugfs(
    img.spec,
    candidates.map((b) => `testb ${b}`),
  );
  const free = new Set([...out.matchAll(/Block (\d+) not in use/g)].map((m) => Number(m[1])));
  const picked = candidates.filter((b) => free.has(b));
  expect(un === undefined || picked.some((b) => b >= un.first && b <= un.last)).toBe(true);
  expect(picked.length).toBeGreaterThan(20);
  void bs;
  return [...new Set(picked)];
}

function spoil(img: Img, bs: number, blocks: number[]): void {
  const fd = fs.openSync(img.path, 'r+');
  let x = 12345;
  for (const b of blocks) {
    const buf = Buffer.alloc(bs);
    for (let i = 0; i < bs; i += 4) {
      x = (x * 1103515245 + 12345) >>> 0;
      buf.writeUInt32LE(x, i);
    }
    // leave some blocks only partly dirty
    if (b % 3 === 0) buf.fill(0, 0, bs - 1);
    buf[bs - 1] = 0x5a;
    fs.writeSync(fd, buf, 0, bs, img.offset + b * bs);
  }
  fs.closeSync(fd);
}

const CASES = [
  {
    name: 'ext4 4K 64bit flex_bg',
    type: 'ext4' as const,
    bs: 4096 as const,
    extra: ['-g', '2048'],
    offset: 0,
  },
  {
    name: 'ext4 1K ^64bit at offset 1 MiB',
    type: 'ext4' as const,
    bs: 1024 as const,
    features: '^64bit',
    extra: [],
    offset: 1 << 20,
  },
  {
    name: 'ext3 uninit_bg 4K',
    type: 'ext3' as const,
    bs: 4096 as const,
    features: 'uninit_bg',
    extra: ['-g', '2048'],
    offset: 0,
  },
  {
    name: 'ext4 1K meta_bg (descriptor blocks spread over the groups)',
    type: 'ext4' as const,
    bs: 1024 as const,
    features: 'meta_bg,^resize_inode,^64bit',
    extra: ['-g', '1024'],
    offset: 0,
  },
];

describe('zero-free vs zerofree', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const a = mkfs(path.join(dir, `${c.type}-${c.bs}.img`), {
        type: c.type,
        bs: c.bs,
        features: c.features,
        src: path.join(dir, 'src'),
        sizeMiB: 48,
        offset: c.offset,
        extra: c.extra,
      });
      const garbage = pickGarbageBlocks(a, c.bs);
      spoil(a, c.bs, garbage);
      const bPath = path.join(dir, `native-${c.type}-${c.bs}.img`);
      fs.copyFileSync(a.path, bPath);
      const b: Img = {
        path: bPath,
        offset: a.offset,
        spec: a.offset ? `${bPath}?offset=${a.offset}` : bPath,
      };

      // dry run first: counts, no writes
      const before = sha256File(a.path);
      const file = new FileDevice(a.path, 'rw');
      const dev = a.offset ? new SliceDevice(file, a.offset, file.size - a.offset) : file;
      const dry = zeroFree(dev, { dryRun: true });
      expect(sha256File(a.path)).toBe(before);
      expect(dry.blocksZeroed).toBe(garbage.length);
      const progress: number[] = [];
      const rep = zeroFree(dev, { onProgress: (d) => progress.push(d) });
      // the checker agrees the filesystem is consistent (BLOCK_UNINIT groups synthesized the same way)
      expect(checkFs(dev).findings).toEqual([]);
      file.close();
      expect(rep.blocksZeroed).toBe(garbage.length);
      expect(rep.bytesWritten).toBe(garbage.length * c.bs);
      expect(rep.blocksScanned).toBe(rep.blocksZeroed + rep.blocksAlreadyZero);
      expect(progress[progress.length - 1]).toBe(rep.blocksScanned);

      const [modified, free] = zerofreeCounts(b.spec, false);
      expect(modified).toBe(rep.blocksZeroed);
      expect(free).toBe(rep.blocksScanned);
      expect(zerofreeCounts(a.spec, true)[0]).toBe(0);

      const cmp = spawnSync('cmp', ['-l', a.path, b.path], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const diffs = cmp.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => Number(l.trim().split(/\s+/)[0]) - 1 - a.offset - 1024);
      const allowed = (o: number): boolean =>
        (o >= 0x30 && o <= 0x33) || (o >= 0x178 && o <= 0x17f) || (o >= 0x3fc && o <= 0x3ff);
      expect(diffs.filter((o) => !allowed(o))).toEqual([]);
      const chk = e2fsck(a.spec);
      expect(chk.output).toBe(chk.ok ? chk.output : '');
      expect(chk.ok).toBe(true);
    });
  }

  it('dirty runs are overwritten without a look, and only where they are free', () => {
    const a = mkfs(path.join(dir, 'dirty.img'), {
      type: 'ext4',
      bs: 4096,
      src: path.join(dir, 'src'),
      sizeMiB: 48,
      extra: ['-g', '2048'],
    });
    spoil(a, 4096, pickGarbageBlocks(a, 4096));
    const copy = path.join(dir, 'dirty-copy.img');
    fs.copyFileSync(a.path, copy);
    // One dirty run over the whole filesystem, metadata and file data included, split in two.
    const file = new FileDevice(a.path, 'rw');
    const half = Math.floor(file.size / 4096 / 2);
    const rep = zeroFree(file, {
      dirty: [
        [half, file.size / 4096 - half],
        [0, half],
      ],
    });
    file.close();
    const plain = new FileDevice(copy, 'rw');
    const ref = zeroFree(plain);
    plain.close();
    // Every free block written, none read; the same image as zeroing by looking.
    expect(rep.blocksZeroed).toBe(ref.blocksScanned);
    expect(rep.blocksAlreadyZero).toBe(0);
    expect(sha256File(a.path)).toBe(sha256File(copy));
    expect(zerofreeCounts(a.spec, true)[0]).toBe(0);
    expect(e2fsck(a.spec).ok).toBe(true);
  });

  it('journal option zeroes the log of a clean journal and e2fsck stays clean', () => {
    const a = mkfs(path.join(dir, 'j.img'), { type: 'ext4', bs: 4096, sizeMiB: 48 });
    // fill the log with a committed-and-replayed transaction: debugfs writes then e2fsck replays
    debugfs(a.spec, ['jo', 'jw -b 300,301 /dev/null', 'jc'], true);
    run('e2fsck', ['-fy', a.spec], { allowFail: true });
    const file = new FileDevice(a.path, 'rw');
    const rep = zeroFree(file, { journal: true });
    file.close();
    expect(rep.journalBlocksZeroed).toBeGreaterThan(0);
    const chk = e2fsck(a.spec);
    expect(chk.output).toBe(chk.ok ? chk.output : '');
    expect(chk.ok).toBe(true);
  });
});

describe('zeroFree --journal on a block-mapped journal (ext3, 1 KiB blocks)', () => {
  let dir: string;
  beforeAll(() => {
    dir = tmpDir('ulfs-zero-j3-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('zeroes the log blocks only: indirect blocks and the journal superblock stay, e2fsck stays clean', () => {
    const a = mkfs(path.join(dir, 'j3.img'), { type: 'ext3', bs: 1024, sizeMiB: 48 });
    const free = spawnSync('debugfs', ['-R', 'ffb 3 20000', a.spec], { env: ENV, encoding: 'utf8' })
      .stdout.match(/\d+/g)!
      .map(Number)
      .slice(-3);
    const pattern = path.join(dir, 'pattern');
    fs.writeFileSync(pattern, Buffer.from(Array.from({ length: 3072 }, (_, i) => (i * 131 + 7) & 0xff)));
    debugfs(a.spec, ['jo', `jw -b ${free.join(',')} ${pattern}`, 'jc'], true);
    run('e2fsck', ['-fy', a.spec], { allowFail: true }); // replays the log: clean, log not empty of data
    const { data, indirect } = journalLayout(a.spec);
    expect(indirect.length).toBeGreaterThan(0);
    const img = fs.readFileSync(a.path);
    const block = (b: number): Buffer => img.subarray(b * 1024, (b + 1) * 1024);
    const dirty = data.slice(1).filter((b) => block(b).some((x) => x !== 0)).length;
    expect(dirty).toBeGreaterThan(0);
    const kept = [data[0]!, ...indirect].map((b) => Buffer.from(block(b)));

    const file = new FileDevice(a.path, 'rw');
    const rep = zeroFree(file, { journal: true });
    file.close();
    expect(rep.journalBlocksZeroed).toBe(dirty);
    const after = fs.readFileSync(a.path);
    const blockAfter = (b: number): Buffer => after.subarray(b * 1024, (b + 1) * 1024);
    expect(data.slice(1).every((b) => blockAfter(b).every((x) => x === 0))).toBe(true);
    expect([data[0]!, ...indirect].map((b) => Buffer.from(blockAfter(b)))).toEqual(kept);
    const chk = e2fsck(a.spec);
    expect(chk.output).toBe(chk.ok ? chk.output : '');
    expect(chk.ok).toBe(true);
  });
});
