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
import { listInitramfs } from '../initramfs/index.js';
import type { Discovery, FsEntry, InitramfsInfo } from './discover.js';
import { tryLookup } from './discover.js';
import { InitramfsPruner } from './initramfs-pruner.js';
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
  /** Compression level of the rewritten initramfs (default: strong; gzip 7, zstd 19, xz 6). */
  initramfsLevel?: number;
  /**
   * With an uncompressed initramfs on the root fs: move the root fs copies of its modules right
   * before it, so that the xz of the image stores them once (default true; false for comparisons).
   */
  placeModules?: boolean;
  /** Write the result to this sparse copy and leave IMAGE untouched. */
  output?: string;
  onProgress?: (phase: string, done: number, total: number) => void;
}

/**
 * What prune does to one initramfs. Decided from a listing when the plan is made (`listed`), or left
 * to apply, which decides entry by entry while it rewrites the archive (one decompression instead of
 * two) and then fills in the counts and the drop and replace sets.
 */
export interface InitramfsPlan {
  info: InitramfsInfo;
  fs: FsEntry;
  listed: boolean;
  /** The kernel whose modules are pruned, and the names kept. */
  version: string;
  keepNames: Set<string>;
  compression: string;
  modulesBefore: number;
  modulesAfter: number;
  /** cpio entry names of module files to drop */
  drop: Set<string>;
  /** cpio entry name -> new contents */
  replace: Map<string, Buffer>;
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
  /**
   * Bytes of those files: read from their inodes for a dry run; otherwise counted as they are
   * removed (0 until then), which spares the plan an inode read per module file.
   */
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

/** Reads an initramfs and decides every entry (see InitramfsPruner). */
export async function listInitramfsPlan(ip: InitramfsPlan): Promise<void> {
  const pruner = new InitramfsPruner(ip.version, ip.keepNames, false);
  let listing;
  try {
    listing = await listInitramfs(ip.fs.ext!.createReadStream(ip.info.ino), {
      withData: (e) => pruner.wantsData(e),
    });
  } catch (e) {
    throw inInitramfs(e, ip.info.path);
  }
  for (const e of listing.entries) pruner.feed(e, listing.data.get(e.name));
  pruner.end();
  recordDecisions(ip, pruner, listing.segments);
}

/** Fills in an initramfs plan from the pruner that decided it (from a listing, or while streaming). */
export function recordDecisions(
  ip: InitramfsPlan,
  pruner: InitramfsPruner,
  segments: { compression: string }[],
): void {
  ip.listed = true;
  ip.compression = compressionName(segments);
  ip.modulesBefore = pruner.modulesBefore;
  ip.modulesAfter = pruner.modulesAfter;
  ip.drop = pruner.dropped;
  ip.replace = pruner.replaced;
}

/** How an initramfs is compressed, for the report: `gzip`, `none`, `zstd+xz`, ... */
export function compressionName(segments: { compression: string }[]): string {
  return (
    segments
      .filter((s) => s.compression !== 'none')
      .map((s) => s.compression)
      .join('+') || 'none'
  );
}

/** An initramfs's UlfsError names the file. */
export function inInitramfs(e: unknown, path: string): unknown {
  if (!isUlfsError(e) || e.data.initramfs !== undefined) return e;
  return new UlfsError(e.code, `${path}: ${e.message}`, { ...e.data, initramfs: path });
}

export async function planPrune(
  d: Discovery,
  opts: PruneOptions,
  how: { listInitramfs?: boolean } = {},
): Promise<PrunePlan> {
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
  const removeBytes = opts.dryRun ? modules.remove.reduce((n, rel) => n + tree.sizeOf(rel), 0) : 0;
  const indexWrites = new Map<string, Buffer>();
  for (const [file, data] of Object.entries(modules.indexes)) {
    if (!tree.indexes[file]?.equals(data)) indexWrites.set(`${tree.dir}/${file}`, data);
  }

  const initramfs: InitramfsPlan[] = [];
  if (opts.initramfs !== false && d.boot?.ext) {
    const keepNames = new Set(modules.kept.map((k) => k.module));
    for (const info of d.initramfs) {
      if (info.version !== chosen.version) continue;
      const ip: InitramfsPlan = {
        info,
        fs: d.boot,
        listed: false,
        version: chosen.version,
        keepNames,
        compression: '?',
        modulesBefore: 0,
        modulesAfter: 0,
        drop: new Set(),
        replace: new Map(),
      };
      // A dry run reports what would change; with no module to remove, an initramfs that would not
      // change is left alone, which only a listing can tell. Otherwise apply decides as it streams.
      if (opts.dryRun || modules.remove.length === 0 || how.listInitramfs) await listInitramfsPlan(ip);
      initramfs.push(ip);
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
