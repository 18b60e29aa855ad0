/**
 * Fuzz targets: every parser of untrusted input, each with seeds made by the native tools (or taken
 * from the committed sample image) and the "hot" byte ranges where its structures sit. Shared by the
 * quick property tests (test/reliability/fuzz.parsers.test.ts, fast-check) and the long runs
 * (bench/fuzz-parsers.ts, a seeded mutation loop counting executions).
 *
 * Property for every target: on any mutation of a seed the target returns or throws a UlfsError;
 * anything else (TypeError, RangeError from an allocation, a stack overflow) is a finding; so is a
 * case slower than the per-case limit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { isUlfsError } from '../../src/errors.js';
import { MemoryDevice, SliceDevice } from '../../src/image/blockdev.js';
import { openPartition, readPartitionTable } from '../../src/image/partitions.js';
import { ExtFs } from '../../src/ext/fs.js';
import { filterInitramfs, listInitramfs } from '../../src/initramfs/index.js';
import { parseUsageList } from '../../src/modules/usage-list.js';
import { decodeModDep, decodeModDepBin } from '../../src/modules/moddep.js';
import { decodeIndex } from '../../src/modules/kmod-index.js';
import { planModules } from '../../src/modules/plan.js';
import { makeDiskImage } from '../fixtures/disk-images.js';
import { makeExtImage } from '../fixtures/ext-images.js';
import { cpioOf } from '../fixtures/initramfs-images.js';
import { nativeCompress } from '../initramfs/util.js';
import { SAMPLE_USED } from '../helpers/images.js';
import { SAMPLE_OFFSET, sampleBytes } from './harness.js';

export interface Seed {
  name: string;
  bytes: Buffer;
  /** [start, end) byte ranges worth mutating. */
  hot: [number, number][];
  /** Small seeds are copied per case and may also be truncated or spliced. */
  small: boolean;
}

export interface FuzzTarget {
  name: string;
  /** What the target covers, for the README. */
  covers: string;
  seeds(dir: string): Seed[];
  /** One execution. `flag` varies a mode (checksums on/off, ...). */
  run(input: Buffer, flag: boolean): void | Promise<void>;
}

/** Per-case limit: anything slower is reported as a hang. */
export const CASE_LIMIT_MS = 2000;

const whole = (b: Buffer): [number, number][] => [[0, b.length]];

// ---------------------------------------------------------------- partition tables
const partitions: FuzzTarget = {
  name: 'partitions',
  covers: 'MBR + EBR chain, GPT header + entry array (512 and 4096-byte sectors), openPartition',
  seeds(dir) {
    const out: Seed[] = [];
    const add = (
      name: string,
      spec: Parameters<typeof makeDiskImage>[1],
      hot: (n: number) => [number, number][],
    ) => {
      const img = makeDiskImage(path.join(dir, name), spec);
      const bytes = fs.readFileSync(img.path);
      out.push({ name, bytes, hot: hot(bytes.length), small: false });
    };
    add(
      'mbr-ebr',
      { label: 'dos', sizeMiB: 6, partitions: [{ sizeMiB: 1 }], logical: [{ sizeMiB: 1 }, { sizeMiB: 1 }] },
      () => [
        [0, 512],
        [1 << 20, 5 << 20],
      ],
    );
    add('gpt', { label: 'gpt', sizeMiB: 6, partitions: [{ sizeMiB: 1, name: 'x' }, { sizeMiB: 2 }] }, (n) => [
      [0, 34 * 512],
      [n - 33 * 512, n],
    ]);
    add(
      'gpt4k',
      { label: 'gpt', sectorSize: 4096, sizeMiB: 6, partitions: [{ sizeMiB: 1 }, { sizeMiB: 2 }] },
      (n) => [
        [0, 6 * 4096],
        [n - 5 * 4096, n],
      ],
    );
    // Keep only the table sectors' neighbourhood interesting: EBR sectors sit at MiB boundaries.
    out[0]!.hot = [[0, 512], ...[1, 2, 3, 4].map((m): [number, number] => [m << 20, (m << 20) + 512])];
    return out;
  },
  run(input, writable) {
    const dev = new MemoryDevice(input, { writable });
    const t = readPartitionTable(dev);
    for (const p of t.partitions) {
      try {
        const s = openPartition(dev, p);
        if (s.offset + s.size > dev.size) throw new Error(`partition ${p.number} opened beyond the device`);
      } catch (e) {
        if (!isUlfsError(e)) throw e;
      }
    }
  },
};

// ---------------------------------------------------------------- ext2/3/4
function extTree(dir: string): string {
  const src = path.join(dir, 'ext-src');
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(path.join(src, 'd/e/f'), { recursive: true });
  fs.writeFileSync(path.join(src, 'small.txt'), 'hello\n');
  fs.writeFileSync(path.join(src, 'd/e/f/deep.txt'), 'deep\n');
  fs.writeFileSync(path.join(src, 'blocks.bin'), Buffer.alloc(300 * 1024, 0x5a)); // indirect blocks on 1K maps
  // A sparse file with many extents (depth > 0: more than 4 extents do not fit in the inode).
  const fd = fs.openSync(path.join(src, 'sparse.bin'), 'w');
  for (let i = 0; i < 40; i++) fs.writeSync(fd, Buffer.alloc(1024, i + 1), 0, 1024, i * 8192);
  fs.closeSync(fd);
  // A directory big enough for an htree on 1K blocks (after e2fsck -D).
  fs.mkdirSync(path.join(src, 'big'));
  for (let i = 0; i < 180; i++) fs.writeFileSync(path.join(src, `big/entry-with-a-long-name-${i}`), '');
  fs.symlinkSync('small.txt', path.join(src, 'fast-link'));
  fs.symlinkSync('d/e/f/' + 'x'.repeat(80) + '/../deep.txt', path.join(src, 'slow-link'));
  fs.symlinkSync('/', path.join(src, 'root-link'));
  return src;
}

/** The blocks the reader parses: superblock, descriptors, inode tables, directory and map blocks. */
function extHot(bytes: Buffer): [number, number][] {
  const x = ExtFs.open(new MemoryDevice(bytes, { writable: false }));
  const bs = x.blockSize;
  const blocks = new Set<number>([0, 1, 2, 3]);
  for (const g of x.groups)
    for (let i = 0; i < Math.min(x.sb.inodeTableBlocks, 8); i++) blocks.add(g.inodeTable + i);
  for (const e of x.walk('/')) {
    const ino = x.readInode(e.ino);
    for (const b of x.metadataBlocks(ino)) blocks.add(b);
    if (e.stat.type === 'dir')
      for (const ex of x.mapFile(ino))
        for (let k = 0; k < Math.min(ex.length, 4); k++) blocks.add(ex.physical + k);
    if (e.stat.type === 'symlink' && e.stat.size > 60)
      for (const ex of x.mapFile(ino)) blocks.add(ex.physical);
  }
  return [...blocks].sort((a, b) => a - b).map((b): [number, number] => [b * bs, (b + 1) * bs]);
}

function readEverything(x: ExtFs): void {
  x.journalState();
  let n = 0;
  for (const e of x.walk('/')) {
    if (++n > 5000) break;
    if (e.stat.type === 'file') {
      // The first 1 MiB: a mutated i_size can legitimately make a sparse file of 100+ GiB of zeros.
      let k = 0;
      for (const c of x.fileChunks(e.ino, 256 << 10)) if (++k >= 4 || !c.length) break;
    } else if (e.stat.type === 'symlink') {
      x.readlink(e.ino);
      try {
        x.lookup(e.path);
      } catch (err) {
        if (!isUlfsError(err)) throw err;
      }
    }
  }
  for (const p of ['/big/entry-with-a-long-name-77', '/d/e/f/deep.txt', '/slow-link', '/nope/../small.txt']) {
    try {
      x.readFile(x.lookup(p), 1 << 20);
    } catch (err) {
      if (!isUlfsError(err)) throw err;
    }
  }
}

const ext: FuzzTarget = {
  name: 'ext',
  covers:
    'superblock, group descriptors, inodes, extent trees, block maps, directories (linear + htree), symlinks, journal superblock: ExtFs.open + walk + read every file',
  seeds(dir) {
    const src = extTree(dir);
    const cfgs: [string, Parameters<typeof makeExtImage>[1]][] = [
      ['ext4-1k', { fsType: 'ext4', blockSize: 1024, srcDir: src, sizeMiB: 4, optimizeDirs: true }],
      [
        'ext4-4k-32',
        { fsType: 'ext4', blockSize: 4096, bit64: false, srcDir: src, sizeMiB: 8, optimizeDirs: true },
      ],
      ['ext3-1k', { fsType: 'ext3', blockSize: 1024, srcDir: src, sizeMiB: 4, optimizeDirs: true }],
      ['ext2-1k', { fsType: 'ext2', blockSize: 1024, srcDir: src, sizeMiB: 4 }],
    ];
    return cfgs.map(([name, o]) => {
      const img = makeExtImage(path.join(dir, `${name}.img`), o);
      const bytes = fs.readFileSync(img.path);
      return { name, bytes, hot: extHot(bytes), small: false };
    });
  },
  run(input, verify) {
    readEverything(ExtFs.open(new MemoryDevice(input, { writable: false }), { verifyChecksums: verify }));
  },
};

// ---------------------------------------------------------------- initramfs
const initramfs: FuzzTarget = {
  name: 'initramfs',
  covers: 'segment splitter, cpio newc/crc, gzip, zstd, xz, lz4 (legacy) wrappers: listInitramfs',
  seeds(dir) {
    const tree = path.join(dir, 'ir');
    fs.rmSync(tree, { recursive: true, force: true });
    fs.mkdirSync(path.join(tree, 'usr/lib/modules/6.1.0-9-x/kernel'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'init'), '#!/bin/sh\nexec /sbin/init\n');
    fs.writeFileSync(
      path.join(tree, 'usr/lib/modules/6.1.0-9-x/modules.dep'),
      'kernel/a.ko:\nkernel/b.ko: kernel/a.ko\n',
    );
    fs.writeFileSync(path.join(tree, 'usr/lib/modules/6.1.0-9-x/kernel/a.ko'), Buffer.alloc(700, 0x41));
    fs.writeFileSync(path.join(tree, 'usr/lib/modules/6.1.0-9-x/kernel/b.ko'), Buffer.alloc(900, 0x42));
    fs.symlinkSync('usr/lib', path.join(tree, 'lib'));
    const newc = cpioOf(tree, 'newc');
    const crc = cpioOf(tree, 'crc');
    const earlyDir = path.join(dir, 'early');
    fs.rmSync(earlyDir, { recursive: true, force: true });
    fs.mkdirSync(path.join(earlyDir, 'kernel/x86/microcode'), { recursive: true });
    fs.writeFileSync(path.join(earlyDir, 'kernel/x86/microcode/GenuineIntel.bin'), Buffer.alloc(300, 7));
    const early = cpioOf(earlyDir, 'newc');
    const seeds: [string, Buffer][] = [
      ['newc', newc],
      ['crc', crc],
      ['gzip', nativeCompress('gzip', newc)],
      ['zstd', nativeCompress('zstd', newc)],
      ['xz', nativeCompress('xz', newc)],
      ['lz4', nativeCompress('lz4', newc)],
      ['early+gzip', Buffer.concat([early, nativeCompress('gzip', newc)])],
    ];
    return seeds.map(([name, bytes]) => ({ name, bytes, hot: whole(bytes), small: true }));
  },
  async run(input, withData) {
    await listInitramfs(Readable.from([input]), {
      withData: withData ? (e) => e.name.endsWith('modules.dep') : undefined,
      maxOutput: 64 << 20,
      maxExpansion: 1000,
    });
  },
};

// ---------------------------------------------------------------- gzip splice
/** The filter's whole output, decoded (gzip), or the UlfsError it stopped with. */
async function filterDecoded(input: Buffer, level: number | undefined): Promise<Buffer> {
  const { output, done } = filterInitramfs(Readable.from([input]), {
    decide: (e) => (e.name.includes('/drop') ? 'drop' : 'keep'),
    level,
    maxOutput: 64 << 20,
    maxExpansion: 1000,
  });
  const parts: Buffer[] = [];
  for await (const c of output) parts.push(c as Buffer);
  await done;
  const out = Buffer.concat(parts);
  return out[0] === 0x1f ? zlib.gunzipSync(out) : out;
}

/** A tree whose gzip stream has whole old blocks in kept runs (see gzip-splice.ts), as cpio. */
function spliceSeedCpio(dir: string): Buffer {
  const tree = path.join(dir, 'gs');
  fs.rmSync(tree, { recursive: true, force: true });
  fs.mkdirSync(path.join(tree, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'lib'), { recursive: true });
  let x = 1;
  const bytes = (n: number, spread: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
      b[i] = 0x20 + ((x >> 16) % spread);
    }
    return b;
  };
  // Kept runs long enough to hold whole deflate blocks, dropped files between them, incompressible
  // bytes (stored blocks). Bytes from 64 values: few matches, so gzip's blocks hold ~32 KB each.
  fs.writeFileSync(path.join(tree, 'bin/a'), bytes(100_000, 64));
  fs.writeFileSync(path.join(tree, 'bin/drop1'), bytes(9_000, 40));
  fs.writeFileSync(path.join(tree, 'bin/z'), bytes(40_000, 64));
  fs.writeFileSync(path.join(tree, 'lib/blob'), bytes(40_000, 224));
  fs.writeFileSync(path.join(tree, 'lib/drop2'), bytes(5_000, 3));
  fs.writeFileSync(path.join(tree, 'lib/m'), bytes(60_000, 64));
  return cpioOf(tree, 'newc');
}

/**
 * Copying old blocks must give exactly what deflating every byte gives, or the same kind of refusal
 * (both read the same decoded stream).
 */
async function spliceDifferential(gz: Buffer): Promise<void> {
  let copied: Buffer | Error;
  let deflated: Buffer | Error;
  try {
    copied = await filterDecoded(gz, undefined);
  } catch (e) {
    copied = e as Error;
  }
  try {
    deflated = await filterDecoded(gz, 1);
  } catch (e) {
    deflated = e as Error;
  }
  if (copied instanceof Error && deflated instanceof Error) {
    if (!isUlfsError(copied)) throw copied;
    if (!isUlfsError(deflated)) throw deflated;
    throw copied; // the same refusal on both sides: a typed rejection
  }
  // One side refused what the other wrote: a finding even when the refusal is typed.
  if (copied instanceof Error) throw new Error(`only copying failed: ${copied.message}`);
  if (deflated instanceof Error) throw new Error(`only deflating failed: ${deflated.message}`);
  if (!copied.equals(deflated)) throw new Error('copied old blocks decode to other bytes than deflating');
}

/** Mutated compressed streams: the walker and the copying on corrupt deflate data. */
const gzipSplice: FuzzTarget = {
  name: 'gzip-splice',
  covers:
    'gzip kept as gzip (filterInitramfs): deflate block walker, copied old blocks, their check, ' +
    'on mutated gzip streams; differential against deflating everything',
  seeds(dir) {
    const gz = nativeCompress('gzip', spliceSeedCpio(dir));
    return [{ name: 'gzip -9', bytes: gz, hot: whole(gz), small: true }];
  },
  run: spliceDifferential,
};

/** Mutated archives, compressed whole: valid streams of every layout, copied or deflated alike. */
const gzipSpliceArchive: FuzzTarget = {
  name: 'gzip-splice-archive',
  covers: 'the same on mutated cpio archives gzipped whole (valid streams, varied layouts)',
  seeds(dir) {
    const cpio = spliceSeedCpio(dir);
    return [{ name: 'cpio', bytes: cpio, hot: whole(cpio), small: true }];
  },
  run: (input, level9) => spliceDifferential(zlib.gzipSync(input, { level: level9 ? 9 : 6 })),
};

// ---------------------------------------------------------------- modules
type SampleTree = { version: string; files: string[]; indexes: Record<string, Buffer> };
let sampleTreeCache: SampleTree | undefined;
/**
 * The sample image's module tree (file list + index files, real depmod output), read once per
 * process: the modules-plan target mutates one index per case, the rest is the same every time.
 */
export function sampleIndexes(): SampleTree {
  if (sampleTreeCache) return sampleTreeCache;
  const version = '6.1.0-99-demo';
  const bytes = sampleBytes();
  const x = ExtFs.open(
    new SliceDevice(
      new MemoryDevice(bytes, { writable: false }),
      SAMPLE_OFFSET,
      bytes.length - SAMPLE_OFFSET,
    ),
  );
  const base = `/usr/lib/modules/${version}`;
  const files: string[] = [];
  const indexes: Record<string, Buffer> = {};
  for (const e of x.walk(base)) {
    if (e.stat.type !== 'file') continue;
    const rel = e.path.slice(base.length + 1);
    if (/\.ko(\.(gz|xz|zst))?$/.test(rel)) files.push(rel);
    else if (/^modules\./.test(rel)) indexes[rel] = x.readFile(e.ino);
  }
  sampleTreeCache = { version, files, indexes };
  return sampleTreeCache;
}

const usageList: FuzzTarget = {
  name: 'usage-list',
  covers: 'usage lists: capture v1, /proc/modules, lsmod, modinfo -n paths, names',
  seeds() {
    const capture = fs.readFileSync(SAMPLE_USED);
    const names = Buffer.from('virtio_net\nvirtio-blk\next4\n# comment\n\ncrc32c_generic\n');
    const lsmod = Buffer.from(
      'Module                  Size  Used by\next4 987136  1\nmbcache 16384  1 ext4\njbd2 167936  1 ext4\n',
    );
    const proc = Buffer.from(
      'ext4 987136 1 - Live 0xffffffffc0a00000\nmbcache 16384 1 ext4, Live 0xffffffffc0900000\n',
    );
    const paths = Buffer.from(
      '/lib/modules/6.1.0-99-demo/kernel/fs/ext4/ext4.ko\n/lib/modules/6.1.0-99-demo/kernel/lib/crc16.ko.xz\n',
    );
    return [
      ['capture', capture],
      ['names', names],
      ['lsmod', lsmod],
      ['proc', proc],
      ['paths', paths],
    ].map(([name, bytes]) => ({
      name: name as string,
      bytes: bytes as Buffer,
      hot: whole(bytes as Buffer),
      small: true,
    }));
  },
  run(input, asString) {
    parseUsageList(asString ? input.toString('latin1') : input, 'fuzz.txt');
  },
};

const modDep: FuzzTarget = {
  name: 'moddep',
  covers: 'modules.dep (text) and modules.dep.bin decoding',
  seeds() {
    const ix = sampleIndexes().indexes;
    return ['modules.dep', 'modules.dep.bin'].map((f) => ({
      name: f,
      bytes: ix[f]!,
      hot: whole(ix[f]!),
      small: true,
    }));
  },
  run(input) {
    if (input.length >= 4 && input.readUInt32BE(0) === 0xb007f457) decodeModDepBin(input);
    else decodeModDep(input.toString('latin1'));
  },
};

const kmodBin: FuzzTarget = {
  name: 'kmod-bin',
  covers: 'kmod .bin index decoding (dep, alias, symbols, builtin, builtin.alias)',
  seeds() {
    const ix = sampleIndexes().indexes;
    return Object.keys(ix)
      .filter((f) => f.endsWith('.bin'))
      .sort()
      .map((f) => ({ name: f, bytes: ix[f]!, hot: whole(ix[f]!), small: true }));
  },
  run(input) {
    decodeIndex(input);
  },
};

const modulesPlan: FuzzTarget = {
  name: 'modules-plan',
  covers:
    'planModules over mutated modules.dep, modules.softdep (pre:/post:), modules.alias, builtin: the whole planner',
  seeds() {
    const { indexes } = sampleIndexes();
    return ['modules.dep', 'modules.softdep', 'modules.alias', 'modules.builtin']
      .filter((f) => indexes[f])
      .map((f) => ({ name: f, bytes: indexes[f]!, hot: whole(indexes[f]!), small: true }));
  },
  run(input, _flag) {
    // The mutated file replaces one index; which one is told by a marker the harness adds (see below).
    const { version, files, indexes } = sampleIndexes();
    const which = PLAN_FILE.current;
    sampleUsed ??= fs.readFileSync(SAMPLE_USED);
    planModules({
      lists: parseUsageList(sampleUsed, 'used.txt'),
      tree: { version, files, indexes: { ...indexes, [which]: input } },
      force: true,
    });
  },
};
let sampleUsed: Buffer | undefined;
/** modules-plan: the index file the current seed stands for (set by the runner from the seed name). */
export const PLAN_FILE = { current: 'modules.dep' };

export const TARGETS: FuzzTarget[] = [
  partitions,
  ext,
  initramfs,
  gzipSplice,
  gzipSpliceArchive,
  usageList,
  modDep,
  kmodBin,
  modulesPlan,
];

// ---------------------------------------------------------------- mutations
export type Mutation =
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'bit'; at: number; bit: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'zero'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; value: number; length: number }
  | { kind: 'copy'; at: number; from: number; length: number };

/** Interesting 32-bit values: boundaries that break size arithmetic. */
export const MAGIC_U32 = [
  0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x10000, 0x1000,
];

/** Maps a fraction in [0, 1) to an offset in the seed's hot ranges. */
export function hotOffset(seed: Seed, u: number): number {
  const total = seed.hot.reduce((n, [s, e]) => n + (e - s), 0);
  let x = Math.floor(u * total);
  for (const [s, e] of seed.hot) {
    if (x < e - s) return Math.min(s + x, seed.bytes.length - 1);
    x -= e - s;
  }
  return 0;
}

/**
 * Applies mutations. Big seeds are mutated in place and restored by the returned function (only
 * overwrites); small ones are copied and may change length.
 */
export function mutate(seed: Seed, muts: Mutation[]): { input: Buffer; restore: () => void } {
  if (!seed.small) {
    const saved: [number, Buffer][] = [];
    const b = seed.bytes;
    const save = (at: number, n: number): void => {
      saved.push([at, Buffer.from(b.subarray(at, at + n))]);
    };
    for (const m of muts) {
      const at = Math.min(m.at, b.length - 1);
      if (m.kind === 'byte') (save(at, 1), (b[at] = m.value));
      else if (m.kind === 'bit') (save(at, 1), (b[at] = b[at]! ^ (1 << m.bit)));
      else if (m.kind === 'u32' && at + 4 <= b.length) (save(at, 4), b.writeUInt32LE(m.value >>> 0, at));
      else if (m.kind === 'zero') {
        const n = Math.min(m.length, b.length - at);
        save(at, n);
        b.fill(0, at, at + n);
      } else if (m.kind === 'copy') {
        const from = Math.min(m.from, b.length - 1);
        const n = Math.min(m.length, b.length - at, b.length - from);
        save(at, n);
        b.copy(b, at, from, from + n);
      }
    }
    return {
      input: b,
      restore: () => {
        for (let i = saved.length - 1; i >= 0; i--) saved[i]![1].copy(b, saved[i]![0]);
      },
    };
  }
  let b = Buffer.from(seed.bytes);
  for (const m of muts) {
    const at = b.length === 0 ? 0 : Math.min(m.at, b.length - 1);
    if (m.kind === 'byte' && b.length) b[at] = m.value;
    else if (m.kind === 'bit' && b.length) b[at] = b[at]! ^ (1 << m.bit);
    else if (m.kind === 'u32' && at + 4 <= b.length) b.writeUInt32LE(m.value >>> 0, at);
    else if (m.kind === 'zero') b.fill(0, at, Math.min(b.length, at + m.length));
    else if (m.kind === 'truncate') b = b.subarray(0, at);
    else if (m.kind === 'insert')
      b = Buffer.concat([b.subarray(0, at), Buffer.alloc(Math.min(m.length, 4096), m.value), b.subarray(at)]);
    else if (m.kind === 'copy') {
      const from = Math.min(m.from, Math.max(0, b.length - 1));
      b = Buffer.concat([
        b.subarray(0, at),
        b.subarray(from, from + Math.min(m.length, 4096)),
        b.subarray(at),
      ]);
    }
  }
  return { input: b, restore: () => {} };
}

export interface CaseOutcome {
  ok: boolean;
  ulfsError: boolean;
  ms: number;
  finding?: string;
}

/** Runs one case: a non-UlfsError or a case over CASE_LIMIT_MS is a finding. */
export async function runCase(
  t: FuzzTarget,
  seed: Seed,
  muts: Mutation[],
  flag: boolean,
): Promise<CaseOutcome> {
  if (t === modulesPlan) PLAN_FILE.current = seed.name;
  const { input, restore } = mutate(seed, muts);
  const t0 = performance.now();
  let outcome: CaseOutcome;
  try {
    const r = t.run(input, flag);
    if (r instanceof Promise) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        r,
        new Promise((_, rej) => {
          timer = setTimeout(() => rej(new HangError()), CASE_LIMIT_MS * 5);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    outcome = { ok: true, ulfsError: false, ms: 0 };
  } catch (e) {
    if (isUlfsError(e)) outcome = { ok: true, ulfsError: true, ms: 0 };
    else
      outcome = {
        ok: false,
        ulfsError: false,
        ms: 0,
        finding: `${(e as Error)?.name}: ${(e as Error)?.message} @ ${String((e as Error)?.stack ?? '')
          .split('\n')
          .slice(1, 3)
          .map((s) => s.trim())
          .join(' < ')}`,
      };
  } finally {
    restore();
  }
  outcome.ms = performance.now() - t0;
  if (outcome.ok && outcome.ms > CASE_LIMIT_MS) {
    outcome.ok = false;
    outcome.finding = `slow case: ${Math.round(outcome.ms)} ms`;
  }
  return outcome;
}

class HangError extends Error {
  override name = 'Hang';
  constructor() {
    super(`no answer within ${CASE_LIMIT_MS * 5} ms`);
  }
}

/** A seeded PRNG-driven mutation list (for the long runs). */
export function randomMutations(rand: () => number, seed: Seed): Mutation[] {
  const n = 1 + Math.floor(rand() * rand() * 8);
  const out: Mutation[] = [];
  for (let i = 0; i < n; i++) {
    const at = hotOffset(seed, rand());
    const r = rand();
    if (r < 0.35) out.push({ kind: 'byte', at, value: Math.floor(rand() * 256) });
    else if (r < 0.55) out.push({ kind: 'bit', at, bit: Math.floor(rand() * 8) });
    else if (r < 0.75)
      out.push({ kind: 'u32', at, value: MAGIC_U32[Math.floor(rand() * MAGIC_U32.length)]! });
    else if (r < 0.82) out.push({ kind: 'zero', at, length: 1 + Math.floor(rand() * 64) });
    else if (r < 0.88)
      out.push({ kind: 'copy', at, from: hotOffset(seed, rand()), length: 1 + Math.floor(rand() * 64) });
    else if (r < 0.94) out.push({ kind: 'truncate', at });
    else
      out.push({ kind: 'insert', at, value: Math.floor(rand() * 256), length: 1 + Math.floor(rand() * 32) });
  }
  return out;
}
