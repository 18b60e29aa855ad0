/**
 * prune, step 1: the plan. Reads the image (never writes) and decides everything: the kernel, the keep
 * set with reasons, the module files and index files to change on the root filesystem, and for every
 * initramfs of that kernel the entries to drop and the index files to replace. `--dry-run` prints this;
 * apply.ts carries it out.
 *
 * The plan keeps the data apply needs (inode numbers, new index bytes) next to the serialisable summary
 * that `--dry-run --json` prints (`summarizePlan`).
 */
import type { ExtFs } from '../ext/fs.js';
import { UlfsError, isUlfsError } from '../errors.js';
import { chooseKernel, planModules, type ModulePlan } from '../modules/plan.js';
import { mergeUsageLists, parseUsageList, type UsageList } from '../modules/usage-list.js';
import { normalizeModuleName } from '../modules/names.js';
import { rewriteIndexes } from '../modules/indexes.js';
import { listInitramfs } from '../initramfs/index.js';
import type { Discovery, FsEntry, InitramfsInfo } from './discover.js';
import { MODULE_FILE_RE, tryLookup } from './discover.js';
import { binWriteOrder, readModuleTree, type ImageModuleTree } from './modtree.js';

export type Compression = 'keep' | 'gzip' | 'zstd' | 'xz' | 'lz4' | 'none';

export interface PruneOptions {
  /** Usage lists read from host files (name is for messages). */
  used?: { name: string; text: string | Buffer }[];
  /** A capture file inside the root fs (`--used-in-image`); deleted from the image afterwards. */
  usedInImage?: string;
  kernel?: string;
  root?: number;
  boot?: number;
  keep?: string[];
  force?: boolean;
  dryRun?: boolean;
  zero?: boolean;
  initramfs?: boolean;
  initramfsCompression?: Compression;
  /** Compression level of the rewritten initramfs (default: strong; gzip 8, zstd 19, xz 6). */
  initramfsLevel?: number;
  /** Write the result to this sparse copy and leave IMAGE untouched. */
  output?: string;
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** Where an index file sits inside an initramfs, and what replaces it. */
export interface InitramfsPlan {
  info: InitramfsInfo;
  fs: FsEntry;
  compression: string;
  /** cpio path prefix of the module tree, e.g. `usr/lib/modules/6.1.0-13-amd64/` */
  treePrefixes: string[];
  modulesBefore: number;
  modulesAfter: number;
  /** cpio entry names of module files to drop */
  drop: Set<string>;
  /** cpio entry name -> new contents */
  replace: Map<string, Buffer>;
  segments: number;
}

export interface PrunePlan {
  kernel: string;
  kernelReason: string;
  lists: UsageList;
  root: FsEntry;
  tree: ImageModuleTree;
  modules: ModulePlan;
  /** Absolute paths in the root fs. */
  removeFiles: string[];
  removeBytes: number;
  /** Index files to rewrite in the root fs: absolute path -> new bytes. */
  indexWrites: Map<string, Buffer>;
  initramfs: InitramfsPlan[];
  /** The capture file inside the image, to delete after pruning. */
  usedInImage: string | null;
  warnings: string[];
}

function readUsageLists(d: Discovery, opts: PruneOptions): { lists: UsageList; usedInImage: string | null } {
  const parsed: UsageList[] = [];
  for (const u of opts.used ?? []) parsed.push(parseUsageList(u.text, u.name));
  let usedInImage: string | null = null;
  if (opts.usedInImage) {
    const fs = d.root!.ext!;
    const ino = tryLookup(fs, opts.usedInImage);
    if (ino === null) {
      throw new UlfsError(
        'EXT_NOT_FOUND',
        `${opts.usedInImage} is not in the root filesystem (${d.root!.label}): run the capture script in the VM first`,
        {
          path: opts.usedInImage,
        },
      );
    }
    parsed.push(parseUsageList(fs.readFile(ino, 16 << 20), `${d.root!.label}:${opts.usedInImage}`));
    usedInImage = opts.usedInImage;
  }
  if (parsed.length === 0)
    throw new UlfsError('LIST_EMPTY', 'no usage list: give --used FILE or --used-in-image PATH');
  const lists = mergeUsageLists(parsed);
  if (lists.names.length === 0)
    throw new UlfsError('LIST_EMPTY', `the usage list${parsed.length > 1 ? 's' : ''} name no module`);
  return { lists, usedInImage };
}

function moduleImageReader(fs: ExtFs, tree: ImageModuleTree): (rel: string) => Uint8Array | null {
  return (rel) => {
    if (!rel.endsWith('.ko')) return null; // compressed modules: let the planner infer the order
    const ino = tree.inodes.get(rel);
    return ino === undefined ? null : fs.readFile(ino, 256 << 20);
  };
}

/** Finds where the kernel's module tree sits in an initramfs: `lib/modules/V/` or `usr/lib/modules/V/`. */
function treePrefixOf(name: string, version: string): string | null {
  const marker = `lib/modules/${version}/`;
  const i = name.indexOf(marker);
  if (i < 0) return null;
  const prefix = name.slice(0, i + marker.length);
  return /^(\.\/)?(usr\/)?lib\/modules\/[^/]+\/$/.test(prefix) ? prefix : null;
}

async function planInitramfs(
  fs: FsEntry,
  info: InitramfsInfo,
  version: string,
  keepNames: Set<string>,
): Promise<InitramfsPlan> {
  const ext = fs.ext!;
  const isIndex = (name: string): boolean => {
    const p = treePrefixOf(name, version);
    return p !== null && /^modules\.[A-Za-z0-9_.]+$/.test(name.slice(p.length));
  };
  const isKeptModule = (name: string): boolean => {
    const p = treePrefixOf(name, version);
    // Only uncompressed modules: their ELF image decides depmod's dependency order.
    return p !== null && name.endsWith('.ko') && keepNames.has(normalizeModuleName(name));
  };
  const listing = await listInitramfs(ext.createReadStream(info.ino), {
    withData: (e) => isIndex(e.name) || isKeptModule(e.name),
  });
  const prefixes = new Set<string>();
  const drop = new Set<string>();
  let before = 0;
  for (const e of listing.entries) {
    const p = treePrefixOf(e.name, version);
    if (p === null) continue;
    prefixes.add(p);
    if ((e.mode & 0o170000) === 0o100000 && MODULE_FILE_RE.test(e.name)) {
      before++;
      if (!keepNames.has(normalizeModuleName(e.name))) drop.add(e.name);
    }
  }
  const replace = new Map<string, Buffer>();
  for (const prefix of prefixes) {
    const indexes: Record<string, Buffer> = {};
    for (const [name, data] of listing.data) {
      if (name.startsWith(prefix) && isIndex(name)) indexes[name.slice(prefix.length)] = data;
    }
    if (Object.keys(indexes).length === 0) continue;
    const keepHere = new Set<string>();
    for (const e of listing.entries) {
      if (e.name.startsWith(prefix) && MODULE_FILE_RE.test(e.name) && !drop.has(e.name))
        keepHere.add(normalizeModuleName(e.name));
    }
    const rewritten = rewriteIndexes(indexes, keepHere, {
      order: binWriteOrder(indexes),
      moduleImage: (rel) => listing.data.get(prefix + rel) ?? null,
    });
    for (const [file, data] of Object.entries(rewritten)) {
      if (!indexes[file]?.equals(data)) replace.set(prefix + file, data);
    }
  }
  return {
    info,
    fs,
    compression:
      listing.segments
        .filter((s) => s.compression !== 'none')
        .map((s) => s.compression)
        .join('+') || 'none',
    treePrefixes: [...prefixes],
    modulesBefore: before,
    modulesAfter: before - drop.size,
    drop,
    replace,
    segments: listing.segments.length,
  };
}

export async function planPrune(d: Discovery, opts: PruneOptions): Promise<PrunePlan> {
  const root = d.root;
  if (!root?.ext || !root.modulesDir) {
    throw new UlfsError(
      'ROOT_NOT_FOUND',
      'no root filesystem with /lib/modules found in the image (use --root N)',
    );
  }
  const fs = root.ext;
  const warnings: string[] = [];
  const { lists, usedInImage } = readUsageLists(d, opts);

  // One walk per kernel: the chosen tree is reused below, the names feed chooseKernel.
  const trees = new Map(d.kernels.map((k) => [k.version, readModuleTree(fs, root.modulesDir!, k.version)]));
  const kernels = [...trees.values()].map((t) => ({
    version: t.version,
    moduleNames: new Set(t.files.map(normalizeModuleName)),
  }));
  const chosen = chooseKernel(lists, kernels, opts.kernel);
  if (d.kernels.length > 1) {
    warnings.push(
      `the image has ${d.kernels.length} kernels (${d.kernels.map((k) => k.version).join(', ')}); only ${chosen.version} is pruned`,
    );
  }
  const tree = trees.get(chosen.version)!;
  const modules = planModules({
    lists,
    tree,
    keep: opts.keep,
    force: opts.force,
    indexOptions: { order: binWriteOrder(tree.indexes), moduleImage: moduleImageReader(fs, tree) },
  });
  warnings.push(...modules.warnings);

  const removeFiles = modules.remove.map((rel) => `${tree.dir}/${rel}`);
  const removeBytes = modules.remove.reduce((n, rel) => n + (tree.sizes.get(rel) ?? 0), 0);
  const indexWrites = new Map<string, Buffer>();
  for (const [file, data] of Object.entries(modules.indexes)) {
    if (!tree.indexes[file]?.equals(data)) indexWrites.set(`${tree.dir}/${file}`, data);
  }

  const initramfs: InitramfsPlan[] = [];
  if (opts.initramfs !== false && d.boot?.ext) {
    const keepNames = new Set(modules.kept.map((k) => k.module));
    for (const info of d.initramfs) {
      if (info.version !== chosen.version) continue;
      try {
        initramfs.push(await planInitramfs(d.boot, info, chosen.version, keepNames));
      } catch (e) {
        if (isUlfsError(e)) {
          throw new UlfsError(e.code, `${info.path}: ${e.message}`, { ...e.data, initramfs: info.path });
        }
        throw e;
      }
    }
    if (initramfs.length === 0)
      warnings.push(`no initramfs for ${chosen.version} found on the boot filesystem`);
  }

  return {
    kernel: chosen.version,
    kernelReason: chosen.reason,
    lists,
    root,
    tree,
    modules,
    removeFiles,
    removeBytes,
    indexWrites,
    initramfs,
    usedInImage,
    warnings,
  };
}

/** The JSON-friendly view of a plan (what --dry-run --json prints). */
export function summarizePlan(p: PrunePlan) {
  return {
    kernel: p.kernel,
    kernelReason: p.kernelReason,
    used: {
      listed: p.modules.used.listed,
      resolved: p.modules.used.resolved.length,
      builtin: p.modules.used.builtin.length,
      unknown: p.modules.used.unknown,
    },
    kept: p.modules.kept,
    rootfs: {
      partition: p.root.number,
      removeFiles: p.removeFiles.length,
      removeBytes: p.removeBytes,
      indexFiles: [...p.indexWrites.keys()],
      files: p.removeFiles,
    },
    initramfs: p.initramfs.map((i) => ({
      path: i.info.path,
      partition: i.info.partition,
      compression: i.compression,
      size: i.info.size,
      modulesBefore: i.modulesBefore,
      modulesAfter: i.modulesAfter,
      indexFiles: [...i.replace.keys()],
    })),
    usedInImage: p.usedInImage,
    warnings: p.warnings,
  };
}
