/**
 * What prune does to one initramfs, entry by entry: module files of the chosen kernel that are not
 * kept are dropped, and the module index files (`modules.*` in the version directory) are replaced by
 * what depmod writes for the modules that stay; everything else is kept.
 *
 * The index files depend on every module of their tree, and on the index files before them
 * (modules.alias.bin needs modules.dep's order, and sorts before it). So their fate is decided late
 * (a filter `Later`): held until the archive leaves their version directory, then settled all at once.
 * mkinitramfs writes `find | sort` order, so everything of a tree comes together and the held output
 * is only the index files themselves.
 *
 * Two ways to use it:
 * - streaming (apply): as the filter's decide() while the archive is rewritten, so that it is
 *   decompressed once. An archive where a kept module or an index file of a settled tree comes later
 *   cannot be done this way: that throws PRUNE_INITRAMFS_ORDER, and prune starts again with a listing;
 * - from a listing (dry run, and that fallback): `feed` every entry, then `end`: settles at the end.
 */
import { UlfsError, isUlfsError } from '../errors.js';
import { Later, S_IFMT, S_IFREG, type CpioEntryInfo, type Decision } from '../initramfs/index.js';
import { normalizeModuleName } from '../modules/names.js';
import { rewriteIndexes } from '../modules/indexes.js';
import { MODULE_FILE_RE } from './discover.js';
import { binWriteOrder } from './modtree.js';

const INDEX_RE = /^modules\.[A-Za-z0-9_.]+$/;

/** Finds where the kernel's module tree sits in an initramfs: `lib/modules/V/` or `usr/lib/modules/V/`. */
export function treePrefixOf(name: string, version: string): string | null {
  const marker = `lib/modules/${version}/`;
  const i = name.indexOf(marker);
  if (i < 0) return null;
  const prefix = name.slice(0, i + marker.length);
  return /^(\.\/)?(usr\/)?lib\/modules\/[^/]+\/$/.test(prefix) ? prefix : null;
}

/** One module tree (version directory) in the archive. */
interface Tree {
  /** Normalised names of the module files that stay. */
  kept: Set<string>;
  /** Uncompressed kept modules' bytes by relative path: their ELF imports order modules.dep. */
  images: Map<string, Buffer>;
  /** Index files waiting for the tree to end. */
  waiting: { name: string; file: string; later: Later }[];
  settled: boolean;
}

export class InitramfsPruner {
  modulesBefore = 0;
  /** cpio names of the module files dropped. */
  readonly dropped = new Set<string>();
  /** cpio name -> new contents of the index files replaced. */
  readonly replaced = new Map<string, Buffer>();
  private readonly trees = new Map<string, Tree>();

  constructor(
    private readonly version: string,
    private readonly keepNames: Set<string>,
    /** Settle a tree as soon as the archive leaves it (filter), or only in end() (listing). */
    private readonly streaming: boolean,
  ) {}

  get modulesAfter(): number {
    return this.modulesBefore - this.dropped.size;
  }

  /** What an entry is to the pruner: a module file or an index file of the kernel's tree, or nothing. */
  private classify(e: CpioEntryInfo): { prefix: string; file: string; kind: 'module' | 'index' } | null {
    const prefix = treePrefixOf(e.name, this.version);
    if (prefix === null || (e.mode & S_IFMT) !== S_IFREG) return null;
    const file = e.name.slice(prefix.length);
    if (MODULE_FILE_RE.test(e.name)) return { prefix, file, kind: 'module' };
    return INDEX_RE.test(file) ? { prefix, file, kind: 'index' } : null;
  }

  /** Whether decide() needs the entry's contents: index files, and kept uncompressed modules. */
  wantsData(e: CpioEntryInfo): boolean {
    const c = this.classify(e);
    if (c?.kind === 'index') return true;
    return c?.kind === 'module' && c.file.endsWith('.ko') && this.keepNames.has(normalizeModuleName(e.name));
  }

  decide = (e: CpioEntryInfo): Decision => {
    if (this.streaming) {
      // Leaving a tree: its modules are all known now.
      const prefix = treePrefixOf(e.name, this.version);
      for (const [p, t] of this.trees) if (p !== prefix && t.waiting.length) this.settle(t);
    }
    const c = this.classify(e);
    if (c === null) return 'keep';
    const { prefix, file } = c;
    let tree = this.trees.get(prefix);
    if (!tree)
      this.trees.set(prefix, (tree = { kept: new Set(), images: new Map(), waiting: [], settled: false }));
    if (c.kind === 'module') {
      this.modulesBefore++;
      const name = normalizeModuleName(e.name);
      if (!this.keepNames.has(name)) {
        this.dropped.add(e.name);
        return 'drop';
      }
      this.outOfOrder(tree, e.name);
      tree.kept.add(name);
      // Only uncompressed modules: their ELF image decides depmod's dependency order.
      if (!file.endsWith('.ko')) return 'keep';
      const images = tree.images;
      return { inspect: (data) => void images.set(file, Buffer.concat(data)) };
    }
    this.outOfOrder(tree, e.name);
    // A hard-linked index file cannot wait in a stream (its data may sit on another member).
    if (this.streaming && e.nlink > 1) throw orderError(e.name, 'is a hard link');
    const later = new Later();
    tree.waiting.push({ name: e.name, file, later });
    return { later };
  };

  /** Listing mode: the decision for an entry whose contents are already known. */
  feed(e: CpioEntryInfo, data: Buffer | undefined): void {
    const d = this.decide(e);
    if (typeof d === 'string' || 'replace' in d) return;
    if ('inspect' in d) d.inspect(data ? [data] : []);
    else d.later.data = data ?? Buffer.alloc(0);
  }

  /** At the end of an archive (streaming) or of the listing: settles every waiting index file. */
  end = (): void => {
    for (const t of this.trees.values()) if (t.waiting.length) this.settle(t);
  };

  private outOfOrder(tree: Tree, name: string): void {
    if (tree.settled) throw orderError(name, 'comes after the index files of its tree');
  }

  private settle(tree: Tree): void {
    const indexes: Record<string, Buffer> = {};
    for (const w of tree.waiting) indexes[w.file] = w.later.data!;
    let rewritten: Record<string, Buffer>;
    try {
      rewritten = rewriteIndexes(indexes, tree.kept, {
        order: binWriteOrder(indexes),
        moduleImage: (rel) => tree.images.get(rel) ?? null,
      });
    } catch (e) {
      // While streaming, a kept module may still be to come (a dependency "not kept" that is): only
      // a listing can tell a broken tree from an unusual order.
      if (!this.streaming || !isUlfsError(e)) throw e;
      throw orderError(
        tree.waiting[0]!.name,
        `could not be rewritten from the modules before it (${e.message})`,
      );
    }
    for (const w of tree.waiting) {
      const data = rewritten[w.file];
      if (data && !data.equals(indexes[w.file]!)) {
        this.replaced.set(w.name, data);
        w.later.settle({ replace: data });
      } else w.later.settle('keep');
    }
    tree.waiting = [];
    tree.images.clear();
    tree.settled = this.streaming;
  }
}

function orderError(name: string, why: string): UlfsError {
  const reason = `${name} ${why}`;
  return new UlfsError(
    'PRUNE_INITRAMFS_ORDER',
    `${reason}: this archive needs a listing before it can be rewritten`,
    { entry: name, reason },
  );
}
