/**
 * Discovery: which partitions hold ext filesystems, which one is the root (it holds lib/modules or
 * usr/lib/modules, following `/lib -> usr/lib` inside the fs), which one is the boot filesystem (it holds
 * vmlinuz-* and initrd/initramfs files: /boot inside the root, or a separate partition), which kernels
 * have module trees, and where their initramfs files are.
 *
 * It reads only; every filesystem error is kept on its entry so `inspect` can still show the rest.
 */
import type { BlockDevice } from '../image/blockdev.js';
import {
  openPartition,
  readPartitionTable,
  type Partition,
  type PartitionTable,
} from '../image/partitions.js';
import { ExtFs } from '../ext/fs.js';
import { UlfsError, isUlfsError } from '../errors.js';

export const MODULE_FILE_RE = /\.ko(\.(gz|xz|zst))?$/;
const KERNEL_RE = /^vmlinu[xz]-(.+)$/;
const INITRAMFS_RES = [
  /^initrd\.img-(.+)$/,
  /^initramfs-(.+?)\.img$/,
  /^initrd-(.+?)(\.img)?$/,
  /^initramfs-(.+)$/,
];

export type Role = 'root' | 'boot';

export interface FsEntry {
  /** Partition number as Linux names it (0 for a bare filesystem). */
  number: number;
  /** `hdd.img1`, or `hdd.img` for a bare filesystem. */
  label: string;
  partition: Partition;
  dev: BlockDevice;
  ext: ExtFs | null;
  /** Why the partition could not be read as ext (null when it is ext, or has no ext magic at all). */
  error: UlfsError | null;
  roles: Role[];
  /** For the root: the modules directory as found (`/lib/modules` or `/usr/lib/modules`). */
  modulesDir?: string;
  /** For the boot fs: the directory with the kernels (`/boot`, or `/` on a separate boot partition). */
  bootDir?: string;
}

export interface KernelInfo {
  version: string;
  partition: number;
  /** e.g. /lib/modules/6.1.0-13-amd64 */
  moduleDir: string;
  moduleCount: number;
  moduleBytes: number;
  /** vmlinuz path on the boot fs, if found. */
  image?: string;
}

export interface InitramfsInfo {
  path: string;
  partition: number;
  size: number;
  ino: number;
  /** The kernel version its name carries. */
  version: string | null;
}

export interface Discovery {
  table: PartitionTable;
  filesystems: FsEntry[];
  root: FsEntry | null;
  boot: FsEntry | null;
  kernels: KernelInfo[];
  initramfs: InitramfsInfo[];
}

export interface DiscoverOptions {
  /** --root N / --part N: use this partition as the root filesystem. */
  root?: number;
  /** --boot N: use this partition as the boot filesystem. */
  boot?: number;
  /** Skip counting module files (faster; inspect wants the counts, prune does its own walk). */
  countModules?: boolean;
}

/** Looks a path up, returning null only for "not there" (other errors propagate). */
export function tryLookup(fs: ExtFs, path: string): number | null {
  try {
    return fs.lookup(path);
  } catch (e) {
    if (isUlfsError(e) && (e.code === 'EXT_NOT_FOUND' || e.code === 'EXT_NOT_A_DIRECTORY')) return null;
    throw e;
  }
}

function isDir(fs: ExtFs, ino: number): boolean {
  return fs.stat(ino).type === 'dir';
}

function modulesDirOf(fs: ExtFs): string | null {
  for (const p of ['/lib/modules', '/usr/lib/modules']) {
    const ino = tryLookup(fs, p);
    if (ino !== null && isDir(fs, ino)) {
      const versions = fs.readDir(ino).filter((e) => e.name !== '.' && e.name !== '..');
      if (versions.length > 0) return p;
    }
  }
  return null;
}

function bootDirOf(fs: ExtFs, candidates: string[]): string | null {
  for (const dir of candidates) {
    const ino = tryLookup(fs, dir);
    if (ino === null || !isDir(fs, ino)) continue;
    const names = fs.readDir(ino).map((e) => e.name);
    if (names.some((n) => KERNEL_RE.test(n) || INITRAMFS_RES.some((re) => re.test(n)))) return dir;
  }
  return null;
}

export function initramfsVersion(name: string): string | null {
  for (const re of INITRAMFS_RES) {
    const m = re.exec(name);
    if (m) return m[1]!;
  }
  return null;
}

/** Counts module files and their bytes below a directory (bounded by ExtFs.walk). */
export function countModules(fs: ExtFs, dir: string): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const e of fs.walk(dir)) {
    if (e.stat.type === 'file' && MODULE_FILE_RE.test(e.path)) {
      count++;
      bytes += e.stat.size;
    }
  }
  return { count, bytes };
}

export function partitionLabel(imageName: string, number: number): string {
  return number === 0 ? imageName : `${imageName}${number}`;
}

export function discover(dev: BlockDevice, imageName: string, opts: DiscoverOptions = {}): Discovery {
  const table = readPartitionTable(dev);
  const filesystems: FsEntry[] = [];
  for (const p of table.partitions) {
    if (p.extended) continue;
    const entry: FsEntry = {
      number: p.number,
      label: partitionLabel(imageName, p.number),
      partition: p,
      dev: dev,
      ext: null,
      error: null,
      roles: [],
    };
    try {
      entry.dev = openPartition(dev, p);
      if (entry.dev.size >= 1024 + 0x3a && entry.dev.read(1024 + 0x38, 2).readUInt16LE(0) === 0xef53) {
        entry.ext = ExtFs.open(entry.dev);
      }
    } catch (e) {
      if (!isUlfsError(e)) throw e;
      entry.error = e;
    }
    filesystems.push(entry);
  }

  const byNumber = (n: number, what: string): FsEntry => {
    const f = filesystems.find((x) => x.number === n);
    if (!f) {
      const have = filesystems.map((x) => x.number).join(', ') || 'none';
      throw new UlfsError('PART_NOT_FOUND', `no partition ${n} for ${what} (partitions: ${have})`, {
        number: n,
      });
    }
    if (!f.ext) {
      throw (
        f.error ??
        new UlfsError('FS_NOT_FOUND', `partition ${n} (${f.label}) holds no ext2/3/4 filesystem`, {
          number: n,
        })
      );
    }
    return f;
  };

  // Root: the requested one, else the first ext fs with a non-empty modules directory.
  let root: FsEntry | null = null;
  if (opts.root !== undefined) {
    root = byNumber(opts.root, '--root');
    root.modulesDir = modulesDirOf(root.ext!) ?? undefined;
  } else {
    for (const f of filesystems) {
      if (!f.ext) continue;
      const m = modulesDirOf(f.ext);
      if (m) {
        root = f;
        f.modulesDir = m;
        break;
      }
    }
  }
  if (root) root.roles.push('root');

  // Boot: the requested one; else /boot inside the root; else a separate fs with kernels at its top.
  let boot: FsEntry | null = null;
  if (opts.boot !== undefined) {
    boot = byNumber(opts.boot, '--boot');
    boot.bootDir = bootDirOf(boot.ext!, ['/boot', '/']) ?? '/';
  } else {
    if (root) {
      const d = bootDirOf(root.ext!, ['/boot']);
      if (d) {
        boot = root;
        root.bootDir = d;
      }
    }
    if (!boot) {
      for (const f of filesystems) {
        if (!f.ext || f === root) continue;
        const d = bootDirOf(f.ext, ['/', '/boot']);
        if (d) {
          boot = f;
          f.bootDir = d;
          break;
        }
      }
    }
  }
  if (boot) boot.roles.push('boot');

  const kernels: KernelInfo[] = [];
  if (root?.ext && root.modulesDir) {
    const fs = root.ext;
    const dirIno = fs.lookup(root.modulesDir);
    for (const e of fs.readDir(dirIno)) {
      if (e.name === '.' || e.name === '..') continue;
      const path = `${root.modulesDir}/${e.name}`;
      const ino = tryLookup(fs, path);
      if (ino === null || !isDir(fs, ino)) continue;
      const info: KernelInfo = {
        version: e.name,
        partition: root.number,
        moduleDir: path,
        moduleCount: 0,
        moduleBytes: 0,
      };
      if (opts.countModules !== false) {
        const c = countModules(fs, path);
        info.moduleCount = c.count;
        info.moduleBytes = c.bytes;
      }
      kernels.push(info);
    }
    kernels.sort((a, b) => a.version.localeCompare(b.version));
  }

  const initramfs: InitramfsInfo[] = [];
  if (boot?.ext && boot.bootDir) {
    const fs = boot.ext;
    const seen = new Set<number>();
    const dir = boot.bootDir;
    for (const e of fs.readDir(fs.lookup(dir))) {
      const k = KERNEL_RE.exec(e.name);
      const path = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      if (k) {
        const kern = kernels.find((x) => x.version === k[1]);
        if (kern) kern.image = path;
        continue;
      }
      const version = initramfsVersion(e.name);
      if (version === null) continue;
      const ino = tryLookup(fs, path); // follows symlinks, so /boot/initrd.img -> initrd.img-V counts once
      if (ino === null || seen.has(ino)) continue;
      const st = fs.stat(ino);
      if (st.type !== 'file') continue;
      seen.add(ino);
      initramfs.push({ path, partition: boot.number, size: st.size, ino, version });
    }
    initramfs.sort((a, b) => a.path.localeCompare(b.path));
  }

  return { table, filesystems, root, boot, kernels, initramfs };
}

/**
 * The filesystem a path-taking verb (ls, cat, rm) works on: --part N, else the root, else the only
 * ext filesystem there is.
 */
export function pickFilesystem(d: Discovery, part?: number): FsEntry {
  if (part !== undefined) {
    const f = d.filesystems.find((x) => x.number === part);
    if (!f) {
      const have = d.filesystems.map((x) => x.number).join(', ') || 'none';
      throw new UlfsError('PART_NOT_FOUND', `no partition ${part} (partitions: ${have})`, { number: part });
    }
    if (!f.ext)
      throw f.error ?? new UlfsError('FS_NOT_FOUND', `partition ${part} holds no ext2/3/4 filesystem`);
    return f;
  }
  if (d.root) return d.root;
  const exts = d.filesystems.filter((f) => f.ext);
  if (exts.length === 1) return exts[0]!;
  const broken = d.filesystems.find((f) => f.error);
  if (exts.length === 0 && broken?.error) throw broken.error;
  throw new UlfsError(
    'FS_NOT_FOUND',
    exts.length === 0
      ? 'no ext2/3/4 filesystem found in the image'
      : `no root filesystem found and ${exts.length} ext filesystems present: choose one with --part N`,
  );
}
