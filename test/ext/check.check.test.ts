/**
 * The checker against a corruption corpus: bytes flipped in bitmaps, counters, checksums, directory
 * entries, extent headers, link counts, xattr refcounts. For every case e2fsck -fn and checkFs must
 * agree: on the clean base both are clean, on every corrupted copy both find something.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileDevice } from '../../src/image/blockdev.js';
import { checkFs } from '../../src/ext/write/index.js';
import { fsSeed, setGroupDescCsum, setXattrBlockCsum } from '../../src/ext/checksums.js';
import { cli } from '../helpers/cli.js';
import { debugfs, e2fsck, mkfs, setXattr, tmpDir, writeFragmented, type Img } from './writer-fixtures.js';
import { fileBlocks } from '../helpers/images.js';

let dir: string;
const bases: Record<string, Img> = {};
const BS = 4096;

beforeAll(() => {
  dir = tmpDir('check');
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(src, 'a'), 'a'.repeat(10000));
  fs.writeFileSync(path.join(src, 'b'), 'b');
  fs.writeFileSync(path.join(src, 'sub', 'c'), 'c');
  writeFragmented(path.join(src, 'frag'), 20, BS);
  fs.writeFileSync(path.join(src, 'x'), 'x');
  setXattr(path.join(src, 'x'), 'user.big', Buffer.alloc(2000, 0x41));
  bases.ext4 = mkfs(path.join(dir, 'ext4.img'), {
    type: 'ext4',
    bs: BS,
    src,
    sizeMiB: 32,
    extra: ['-g', '4096'],
  });
  bases.ext3 = mkfs(path.join(dir, 'ext3.img'), { type: 'ext3', bs: BS, src, sizeMiB: 32 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function num(re: RegExp, s: string): number {
  const m = re.exec(s);
  if (!m) throw new Error(`no match for ${re} in ${s}`);
  return Number(m[1]);
}

function patch(p: string, pos: number, f: (b: Buffer) => void, len = 4): void {
  const fd = fs.openSync(p, 'r+');
  const b = Buffer.alloc(len);
  fs.readSync(fd, b, 0, len, pos);
  f(b);
  fs.writeSync(fd, b, 0, len, pos);
  fs.closeSync(fd);
}

/** First data block of a path (debugfs `blocks`). */
function firstBlock(img: Img, p: string): number {
  const first = fileBlocks(img.spec, p)[0];
  if (first === undefined) throw new Error(`no blocks for ${p}`);
  return first;
}

/** Re-checksums group descriptor g after a direct edit (so only the counter itself is wrong). */
function fixDesc(p: string, g: number): void {
  const file = fs.readFileSync(p);
  const sb = file.subarray(1024, 2048);
  const ds = sb.readUInt32LE(0x60) & 0x80 ? sb.readUInt16LE(0xfe) : 32;
  const pos = BS + g * ds;
  patch(p, pos, (d) => setGroupDescCsum(sb, fsSeed(sb), g, d), ds);
}

type Corruption = (img: Img) => void;
const CORPUS: Record<string, Corruption> = {
  'block bitmap bit cleared (debugfs freeb)': (img) => {
    const blk = firstBlock(img, '/a');
    debugfs(img.spec, [`freeb ${blk}`], true);
  },
  'group free blocks counter (descriptor checksum fixed)': (img) => {
    patch(img.path, BS + 0x0c, (b) => b.writeUInt16LE(b.readUInt16LE(0) - 3, 0));
    fixDesc(img.path, 0);
  },
  'superblock free inodes counter': (img) => {
    debugfs(img.spec, ['ssv free_inodes_count 17'], true);
  },
  'inode checksum byte': (img) => {
    const out = debugfs(img.spec, ['imap /b']);
    const blk = num(/located at block (\d+)/, out);
    const off = parseInt(/offset (0x[0-9a-f]+)/.exec(out)![1]!, 16);
    patch(img.path, blk * BS + off + 0x7c, (b) => (b[0] = b[0]! ^ 0xff));
  },
  'directory entry rec_len': (img) => {
    const blk = firstBlock(img, '/sub');
    patch(img.path, blk * BS + 12 + 4, (b) => b.writeUInt16LE(5, 0));
  },
  'directory leaf tail checksum': (img) => {
    const blk = firstBlock(img, '/');
    patch(img.path, blk * BS + BS - 4, (b) => (b[0] = b[0]! ^ 1));
  },
  'extent header magic in a tree block': (img) => {
    const leaf = num(/^\s*0\/\s*1\s+1\/\s*1\s+\d+\s*-\s*\d+\s+(\d+)/m, debugfs(img.spec, ['ex /frag']));
    patch(img.path, leaf * BS, (b) => b.writeUInt16LE(0x1234, 0));
  },
  'link count (debugfs sif)': (img) => {
    debugfs(img.spec, ['sif /b links_count 3'], true);
  },
  'entry pointing at a freed inode (debugfs freei)': (img) => {
    debugfs(img.spec, ['freei /b'], true);
  },
  'xattr refcount (checksum fixed)': (img) => {
    const acl = num(/File ACL: (\d+)/, debugfs(img.spec, ['stat /x']));
    const file = fs.readFileSync(img.path);
    const sb = file.subarray(1024, 2048);
    patch(
      img.path,
      acl * BS,
      (b) => {
        b.writeUInt32LE(2, 4);
        if (sb.readUInt32LE(0x64) & 0x400) setXattrBlockCsum(fsSeed(sb), acl, b);
      },
      BS,
    );
  },
  'block bitmap checksum in the descriptor': (img) => {
    patch(img.path, BS + 0x18, (b) => b.writeUInt16LE(b.readUInt16LE(0) ^ 0x5555, 0));
    fixDesc(img.path, 0);
  },
};

let n = 0;
function corrupted(base: Img, f: Corruption): Img {
  const p = path.join(dir, `c${n++}.img`);
  fs.copyFileSync(base.path, p);
  const img = { path: p, offset: 0, spec: p };
  f(img);
  return img;
}

function ours(img: Img): ReturnType<typeof checkFs> {
  const dev = new FileDevice(img.path, 'r');
  try {
    return checkFs(dev);
  } finally {
    dev.close();
  }
}

describe('checkFs agrees with e2fsck -fn', () => {
  for (const kind of ['ext4', 'ext3'] as const) {
    it(`${kind}: clean base is clean for both`, () => {
      expect(e2fsck(bases[kind]!.spec).ok).toBe(true);
      expect(ours(bases[kind]!).findings).toEqual([]);
    });
    for (const [name, f] of Object.entries(CORPUS)) {
      // checksum corruptions only exist with metadata_csum
      if (kind === 'ext3' && /checksum|extent/.test(name)) continue;
      it(`${kind}: ${name}`, () => {
        const img = corrupted(bases[kind]!, f);
        const native = e2fsck(img.spec);
        const r = ours(img);
        expect(native.ok, native.output).toBe(false);
        expect(r.clean).toBe(false);
        expect(r.findings.length).toBeGreaterThan(0);
      });
    }
  }

  it('CLI: check exits 0 when clean, 1 with findings, --json lists them', async () => {
    const good = await cli('check', bases.ext4!.path);
    expect(good.code).toBe(0);
    const bad = corrupted(bases.ext4!, CORPUS['link count (debugfs sif)']!);
    const r = await cli('check', bad.path, '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.clean).toBe(false);
    expect(j.findings.some((x: { code: string }) => x.code === 'LINK_COUNT')).toBe(true);
  });
});
