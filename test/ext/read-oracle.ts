/**
 * What debugfs (the oracle) and ExtFs each say about a whole tree, in one comparable shape.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { debugfs, type ExtImageOpts } from '../fixtures/ext-images.js';
import type { ExtFs } from '../../src/ext/fs.js';

export interface NodeInfo {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  /** Size for non-directories; for directories i_size from `stat`. */
  size: number;
  links: number;
  /** Symlink target, or sha256 of a regular file's contents. */
  content?: string;
  /** Data runs "logical:physical+length" (contiguous runs merged), for inodes with a block map. */
  map?: string;
  /** Extent tree / indirect blocks, sorted. */
  meta?: string;
}

/** Merges contiguous runs and prints them; shared by both sides so only the facts differ. */
function runsText(runs: [number, number, number, boolean][]): string {
  const out: [number, number, number, boolean][] = [];
  for (const r of [...runs].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && last[3] === r[3] && last[0] + last[2] === r[0] && last[1] + last[2] === r[1]) last[2] += r[2];
    else out.push([...r]);
  }
  return out.map(([l, p, n, u]) => `${l}:${p}+${n}${u ? 'u' : ''}`).join(',');
}

/** Block lists from debugfs `stat`: "(ETB0):7256, (0-11):1234-1245, (IND):1246, ..." */
function statBlocks(body: string): { map: string; meta: string } | null {
  const sect = /^(?:EXTENTS|BLOCKS):\n([\s\S]*?)(?:\nTOTAL: \d+)?\n*$/m.exec(body);
  if (!sect) return null;
  const runs: [number, number, number, boolean][] = [];
  const meta: number[] = [];
  // Entries: "(ETB0):7256", "(IND):99", "(0-11):1234-1245", "(1-9[u]):1173-1181" (unwritten).
  for (const m of sect[1]!.matchAll(
    /\((ETB\d+|IND|DIND|TIND|\d+(?:-\d+)?)(\[[^\]]*\])?\):(\d+)(?:-(\d+))?/g,
  )) {
    const [, key, flag, p0, p1] = m;
    if (/^\d/.test(key!)) {
      const [l0, l1] = key!.split('-').map(Number) as [number, number | undefined];
      const len = (l1 ?? l0) - l0 + 1;
      if (p1 !== undefined && Number(p1) - Number(p0) + 1 !== len) throw new Error(`odd run ${m[0]}`);
      runs.push([l0, Number(p0), len, flag === '[u]']);
    } else {
      meta.push(Number(p0));
    }
  }
  return { map: runsText(runs), meta: meta.sort((a, b) => a - b).join(',') };
}

const sha = (b: Buffer | Iterable<Buffer>): string => {
  const h = createHash('sha256');
  if (Buffer.isBuffer(b)) h.update(b);
  else for (const c of b) h.update(c);
  return h.digest('hex');
};

/** Splits `debugfs -f` output into per-command bodies, keyed by the echoed command. */
function byCommand(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of out.split(/^debugfs: /m).slice(1)) {
    const nl = part.indexOf('\n');
    m.set(part.slice(0, nl), part.slice(nl + 1));
  }
  return m;
}

/** Directories of a local tree (rdump output), as fs paths starting with "/". */
function localDirs(top: string): string[] {
  const dirs = ['/'];
  for (let i = 0; i < dirs.length; i++) {
    const d = dirs[i]!;
    for (const e of fs.readdirSync(path.join(top, d), { withFileTypes: true })) {
      if (e.isDirectory()) dirs.push(d === '/' ? `/${e.name}` : `${d}/${e.name}`);
    }
  }
  return dirs;
}

/**
 * The tree as debugfs sees it, in three debugfs runs: `rdump /` (contents, symlink targets, and the
 * list of directories), `ls -p` on every directory (inode numbers, modes, owners, sizes), `stat` on
 * every inode (directory sizes and link counts).
 */
export function debugfsTree(spec: string, dumpDir: string): Map<string, NodeInfo> {
  fs.rmSync(dumpDir, { recursive: true, force: true });
  fs.mkdirSync(dumpDir, { recursive: true });
  debugfs(spec, [`rdump / ${dumpDir}`]);
  const out = new Map<string, NodeInfo>();
  out.set('/', { ino: 2, mode: 0, uid: 0, gid: 0, size: -1, links: 0 });
  const dirs = localDirs(dumpDir);
  const res = byCommand(
    debugfs(
      spec,
      dirs.map((d) => `ls -p "${d}"`),
    ),
  );
  for (const d of dirs) {
    const body = res.get(`ls -p "${d}"`);
    if (body === undefined) throw new Error(`no ls output for ${d}`);
    for (const line of body.split('\n')) {
      const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
      if (!m) continue;
      const name = m[5]!;
      // debugfs also lists empty slots (inode 0), e.g. the pre-allocated blocks of lost+found.
      if (name === '.' || name === '..' || name === '' || m[1] === '0') continue;
      const p = d === '/' ? `/${name}` : `${d}/${name}`;
      out.set(p, {
        ino: Number(m[1]),
        mode: parseInt(m[2]!, 8),
        uid: Number(m[3]),
        gid: Number(m[4]),
        size: m[6] === '' ? -1 : Number(m[6]),
        links: 0,
      });
    }
  }
  const inos = [...new Set([...out.values()].map((n) => n.ino))];
  const st = byCommand(
    debugfs(
      spec,
      inos.map((i) => `stat <${i}>`),
    ),
  );
  for (const [p, n] of out) {
    const body = st.get(`stat <${n.ino}>`) ?? '';
    n.links = Number(/Links: (\d+)/.exec(body)?.[1] ?? -1);
    const blocks = statBlocks(body);
    if (blocks && (blocks.map || blocks.meta)) {
      n.map = blocks.map;
      n.meta = blocks.meta;
    }
    if (n.size === -1) n.size = Number(/Size: (\d+)/.exec(body)?.[1] ?? -1);
    const t = n.mode & 0xf000;
    const local = path.join(dumpDir, p);
    if (t === 0x8000) {
      // debugfs 1.47.0 dumps inline-data files as all 60 bytes of i_block whatever i_size says, so
      // the dump is cut at the size debugfs itself reports.
      const h = createHash('sha256');
      const fd = fs.openSync(local, 'r');
      const buf = Buffer.allocUnsafe(1 << 20);
      let left = n.size;
      while (left > 0) {
        const k = fs.readSync(fd, buf, 0, Math.min(buf.length, left), null);
        if (k === 0) break;
        h.update(buf.subarray(0, k));
        left -= k;
      }
      fs.closeSync(fd);
      n.content = h.digest('hex');
    } else if (t === 0xa000) {
      n.content = fs.readlinkSync(local);
    }
  }
  return out;
}

/** The same tree read through ExtFs.walk. */
export function extFsTree(x: ExtFs): Map<string, NodeInfo> {
  const out = new Map<string, NodeInfo>();
  const walked: string[] = [];
  for (const e of x.walk('/')) {
    const s = e.stat;
    const n: NodeInfo = { ino: e.ino, mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, links: s.links };
    if (s.type === 'file') n.content = sha(x.fileChunks(e.ino));
    else if (s.type === 'symlink') n.content = x.readlink(e.ino);
    if (e.path === '/') n.mode = 0;
    const ino = x.readInode(e.ino);
    const m = x.mapping(ino);
    if (m.extents.length || m.metaBlocks.length) {
      n.map = runsText(m.extents.map((r) => [r.logical, r.physical, r.length, r.unwritten]));
      n.meta = [...m.metaBlocks].sort((a, b) => a - b).join(',');
    }
    out.set(e.path, n);
    walked.push(`${e.path} ${e.ino} ${s.type}`);
  }
  // walkTypes lists the same entries with the same types (from the directory entries where they say).
  const typed = [...x.walkTypes('/')].map((e) => `${e.path} ${e.ino} ${e.type}`);
  if (typed.join('\n') !== walked.join('\n'))
    throw new Error(`walkTypes differs from walk: ${typed.length} vs ${walked.length}`);
  return out;
}

export { sha };

const canon = (n: NodeInfo): string =>
  JSON.stringify(Object.fromEntries(Object.entries(n).sort(([a], [b]) => a.localeCompare(b))));

/** Differences between two trees, as readable lines (empty when equal). */
export function treeDiff(ours: Map<string, NodeInfo>, want: Map<string, NodeInfo>): string[] {
  const out: string[] = [];
  for (const [p, w] of want) {
    const o = ours.get(p);
    if (!o) out.push(`missing ${p}`);
    else if (canon(o) !== canon(w)) out.push(`${p}: ours ${canon(o)} debugfs ${canon(w)}`);
  }
  for (const p of ours.keys()) if (!want.has(p)) out.push(`extra ${p}`);
  return out.slice(0, 20);
}

/**
 * Builds an image holding /bigdir with `entries` long-named files, indexes it with e2fsck -fyD,
 * and checks ExtFs against debugfs: the directory listing (names and inode numbers), lookups of a
 * sample of names, and the htree depth debugfs reports. Returns debugfs's "Indirect levels".
 */
export function checkBigDir(
  tmp: string,
  name: string,
  opts: Omit<ExtImageOpts, 'srcDir'>,
  entries: number,
  expect: (cond: boolean, what: string) => void,
  makeExtImage: (p: string, o: ExtImageOpts) => { path: string; spec: string },
  ExtFsOpen: (p: string) => ExtFs,
): number {
  const src = path.join(tmp, `${name}-src`);
  fs.mkdirSync(path.join(src, 'bigdir'), { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < entries; i++) {
    const n = `a-fairly-long-file-name-to-fill-directory-leaves-quickly-${String(i).padStart(6, '0')}`;
    names.push(n);
    fs.writeFileSync(path.join(src, 'bigdir', n), i % 97 === 0 ? `${i}\n` : '');
  }
  const img = makeExtImage(path.join(tmp, `${name}.img`), { ...opts, srcDir: src, optimizeDirs: true });
  const x = ExtFsOpen(img.path);
  const dirIno = x.lookup('/bigdir');
  expect((x.readInode(dirIno).flags & 0x1000) !== 0, 'bigdir has the htree INDEX flag');
  const want = new Map<string, number>();
  for (const line of debugfs(img.spec, ['ls -p /bigdir']).split('\n')) {
    const m = /^\/(\d+)\/\d+\/\d+\/\d+\/(.*)\/\d*\/$/.exec(line);
    if (m && m[1] !== '0') want.set(m[2]!, Number(m[1]));
  }
  const ours = new Map<string, number>();
  for (const e of x.readDir(dirIno)) {
    expect(!ours.has(e.name), `no duplicate entry ${e.name}`);
    ours.set(e.name, e.ino);
  }
  expect(want.size === entries + 2, `debugfs lists ${want.size} entries, expected ${entries + 2}`);
  expect(JSON.stringify([...ours].sort()) === JSON.stringify([...want].sort()), 'same listing as debugfs');
  for (let i = 0; i < entries; i += Math.max(1, Math.floor(entries / 50))) {
    const ino = x.lookup(`/bigdir/${names[i]}`);
    expect(ino === want.get(names[i]!), `lookup ${names[i]}`);
    if (i % 97 === 0) expect(x.readFile(ino).toString() === `${i}\n`, `contents of ${names[i]}`);
  }
  const levels = /Indirect levels: (\d+)/.exec(debugfs(img.spec, ['htree /bigdir']));
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(img.path, { force: true });
  return levels ? Number(levels[1]) : -1;
}
