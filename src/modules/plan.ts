/**
 * The module plan: from usage lists and a module tree (file listing + index files) to the keep
 * set with reasons, the files to remove and the new index files. Pure: no I/O of its own.
 *
 * Rules (issue #5):
 *   kernel      list header, else the only tree, else the tree where most names resolve; override wins
 *   resolve     names -> files through modules.dep (files not in it: by file name); modules.builtin
 *               names are fine; the rest are unknown; fewer than half resolved -> LIST_UNRESOLVED
 *   keep        used + modules.dep closure + softdep pre:/post: (+ weakdep) + --keep NAME|GLOB,
 *               closed again over all of these; a kept module whose file is absent -> MODDEP_MISSING
 *   remove      every *.ko* file under the version directory that is not kept (updates/, extra/ too)
 */
import { UlfsError } from '../errors.js';
import { decodeIndex, searchIndexWild } from './kmod-index.js';
import { modDepIndex, modDepText, rewriteIndexes, readModDep, type RewriteOptions } from './indexes.js';
import type { ModDepEntry } from './moddep.js';
import { globToRegExp, isGlob, normalizeAlias, normalizeModuleName } from './names.js';
import { latin1 } from './text.js';
import type { UsageList } from './usage-list.js';

export interface ModuleTree {
  version: string;
  /** paths relative to /lib/modules/<version>, every *.ko* file */
  files: string[];
  /** index files by name (modules.dep, modules.dep.bin, ...), whichever exist */
  indexes: Record<string, Buffer>;
}

export interface KeptModule {
  module: string;
  path: string;
  /** 'used' | 'dependency of X' | 'softdep of X' | 'weakdep of X' | 'user' */
  reasons: string[];
}

export interface ModulePlan {
  kernel: string;
  used: { listed: number; resolved: string[]; builtin: string[]; unknown: string[] };
  kept: KeptModule[];
  /** relative paths of the module files to delete */
  remove: string[];
  /** the new index files (only those that change; modules.builtin* are left as they are) */
  indexes: Record<string, Buffer>;
  /** things the user should know that are not errors (keep patterns matching nothing, ...) */
  warnings: string[];
}

export interface PlanInput {
  lists: UsageList;
  tree: ModuleTree;
  /** NAME or GLOB; matches module names and relative paths */
  keep?: string[];
  force?: boolean;
  /** passed to rewriteIndexes: trie write order and module images for depmod's exact dep order */
  indexOptions?: RewriteOptions;
}

/** Picks the module tree the lists belong to. */
export function chooseKernel(
  lists: UsageList,
  kernels: { version: string; moduleNames: Set<string> }[],
  override?: string,
): { version: string; reason: string } {
  const have = kernels.map((k) => k.version);
  if (override !== undefined) {
    if (!have.includes(override)) {
      throw new UlfsError(
        'KERNEL_NOT_FOUND',
        `kernel ${override} is not in the image (it has: ${have.join(', ') || 'none'})`,
        {
          kernel: override,
          kernels: have,
        },
      );
    }
    return { version: override, reason: 'chosen with --kernel' };
  }
  if (kernels.length === 0)
    throw new UlfsError('KERNEL_NOT_FOUND', 'no /lib/modules/<version> tree in the image', {});
  if (lists.kernels.length > 1) {
    throw new UlfsError(
      'KERNEL_AMBIGUOUS',
      `the lists were captured on different kernels: ${lists.kernels.join(', ')}; choose one with --kernel`,
      {
        kernels: lists.kernels,
      },
    );
  }
  const named = lists.kernels[0] ?? (lists.pathKernels.length === 1 ? lists.pathKernels[0] : undefined);
  if (named !== undefined) {
    if (have.includes(named)) {
      return {
        version: named,
        reason: lists.kernels.length ? 'named by the list header' : 'named by the module paths in the list',
      };
    }
    throw new UlfsError(
      'LIST_WRONG_KERNEL',
      `the list was captured on kernel ${named}, the image has ${have.join(', ')}; use --kernel to override`,
      {
        listKernel: named,
        kernels: have,
      },
    );
  }
  if (kernels.length === 1) return { version: kernels[0]!.version, reason: 'the only kernel in the image' };
  const score = kernels.map((k) => ({
    v: k.version,
    n: lists.names.filter((x) => k.moduleNames.has(x)).length,
  }));
  score.sort((a, b) => b.n - a.n);
  if (score[0]!.n === score[1]!.n) {
    throw new UlfsError(
      'KERNEL_AMBIGUOUS',
      `${kernels.length} kernels resolve the list equally well (${score[0]!.n} names); choose one with --kernel`,
      {
        kernels: have,
      },
    );
  }
  return {
    version: score[0]!.v,
    reason: `resolves the most listed names (${score[0]!.n} of ${lists.names.length})`,
  };
}

/** Module names of modules.builtin (text, else the .bin keys). */
export function builtinNames(indexes: Record<string, Buffer>): Set<string> {
  const out = new Set<string>();
  const text = indexes['modules.builtin'];
  if (text) {
    for (const line of latin1(text).split('\n')) if (line) out.add(normalizeModuleName(line));
  } else if (indexes['modules.builtin.bin']) {
    for (const e of decodeIndex(indexes['modules.builtin.bin']).entries) out.add(e.key);
  }
  return out;
}

/** Every module name a tree knows (modules.dep plus files), for chooseKernel. */
export function treeModuleNames(tree: ModuleTree): Set<string> {
  const names = new Set<string>();
  for (const f of tree.files) names.add(normalizeModuleName(f));
  for (const b of builtinNames(tree.indexes)) names.add(b);
  return names;
}

interface SoftDeps {
  /** module -> names from `pre:`/`post:` */
  soft: Map<string, string[]>;
  weak: Map<string, string[]>;
}

function parseSoftDeps(indexes: Record<string, Buffer>): SoftDeps {
  const soft = new Map<string, string[]>();
  const weak = new Map<string, string[]>();
  // libkmod (libkmod-config.c) only acts on names after `pre:` or `post:` in a softdep line; a
  // weakdep line's names all count.
  const read = (file: string, keyword: string, into: Map<string, string[]>, needMode: boolean): void => {
    const t = indexes[file];
    if (!t) return;
    for (const line of latin1(t).split('\n')) {
      const w = line.trim().split(/\s+/);
      if (w[0] !== keyword || w.length < 3) continue;
      const names: string[] = [];
      let active = !needMode;
      for (const x of w.slice(2)) {
        if (x === 'pre:' || x === 'post:') active = true;
        else if (active) names.push(x);
      }
      if (!names.length) continue;
      const list = into.get(w[1]!) ?? [];
      list.push(...names);
      into.set(w[1]!, list);
    }
  };
  read('modules.softdep', 'softdep', soft, true);
  read('modules.weakdep', 'weakdep', weak, false);
  return { soft, weak };
}

/**
 * Alias -> module names, for softdeps that name an alias (`pre: crypto-crc32c`,
 * `pre: platform:idma64`). With modules.alias.bin this is modprobe's own lookup (a wildcard trie
 * search that reads a few nodes). Without it, the text is parsed once on first use, skipping device
 * aliases with ':' (pci:..., usb:...) to keep that cheap on a 26,000-alias tree.
 */
function aliasResolver(indexes: Record<string, Buffer>): (name: string) => string[] {
  const bin = indexes['modules.alias.bin'];
  if (bin) return (name) => searchIndexWild(bin, normalizeAlias(name) ?? name).map((e) => e.value);
  let exact: Map<string, string[]> | undefined;
  const wild: { re: RegExp; mod: string }[] = [];
  const build = (): Map<string, string[]> => {
    const map = new Map<string, string[]>();
    const text = indexes['modules.alias'];
    if (!text) return map;
    for (const m of latin1(text).matchAll(/^alias ([^ :\n]+) (\S+)$/gm)) {
      const key = normalizeAlias(m[1]!);
      if (key === null) continue;
      if (isGlob(key)) wild.push({ re: globToRegExp(key), mod: m[2]! });
      else {
        const l = map.get(key) ?? [];
        l.push(m[2]!);
        map.set(key, l);
      }
    }
    return map;
  };
  return (name) => {
    exact ??= build();
    const key = normalizeAlias(name) ?? name;
    const out = [...(exact.get(key) ?? [])];
    for (const w of wild) if (w.re.test(key)) out.push(w.mod);
    return out;
  };
}

/**
 * Every file but the kept ones, sorted. One native sort (of an already sorted list, as tree
 * listings are, a single pass) and a binary search per kept path: a filter callback per file
 * costs more in a cold process than the few dozen kept paths do.
 */
function withoutKept(files: readonly string[], kept: Set<string>): string[] {
  const out = [...files].sort();
  const at: number[] = [];
  for (const p of kept) {
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (out[mid]! < p) lo = mid + 1;
      else hi = mid;
    }
    // Every match: a listing may hold a path twice.
    while (lo < out.length && out[lo] === p) at.push(lo++);
  }
  at.sort((a, b) => b - a);
  for (const i of at) out.splice(i, 1);
  return out;
}

export function planModules(input: PlanInput): ModulePlan {
  const { lists, tree } = input;
  const warnings: string[] = [];
  // modules.dep text is indexed by name without an entry per line (see ModDepText). When it lists
  // exactly the module files, each name once (the usual case), that index is all the plan needs;
  // otherwise (stale index, a name listed twice, modules.dep.bin only) every entry is decoded.
  const text = modDepText(tree.indexes, tree.files);
  const fast = text !== null && text.listsExactly && text.position.size === text.count;
  const entries = fast ? null : (readModDep(tree.indexes) ?? []);
  const count = entries ? entries.length : text!.count;
  if (count === 0)
    warnings.push('no modules.dep: names were resolved by file name and no index was rewritten');
  // Name -> position in modules.dep (shared with rewriteIndexes, which needs the same table).
  const position = entries ? modDepIndex(entries) : text!.position;
  const named = (n: string): ModDepEntry | undefined => {
    const i = position.get(n);
    return i === undefined ? undefined : entries ? entries[i] : text!.entry(i);
  };
  // Path -> entry through the path's module name (one lookup); a table of every path is built only
  // when that misses (a name listed twice, a modules.dep.bin key that is not the file's name).
  let byPath: Map<string, ModDepEntry> | undefined;
  const entryOf = (p: string): ModDepEntry | undefined => {
    const e = named(normalizeModuleName(p));
    if (e?.path === p) return e;
    // In the fast case a line's name is its path's and each name is listed once: a miss is final.
    if (!entries) return undefined;
    if (!byPath) {
      byPath = new Map();
      for (const x of entries) byPath.set(x.path, x);
    }
    return byPath.get(p);
  };
  // Files modules.dep does not list (stale index or no index): resolvable by file name. In the
  // fast case every file is listed, and a path is a file when modules.dep lists it. Otherwise the
  // usual case needs no name per file either: each name listed once, every listed path a file, as
  // many files as entries, so every file is listed.
  const files = fast ? null : new Set(tree.files);
  const isFile = (p: string): boolean => (files ? files.has(p) : entryOf(p) !== undefined);
  const extraByName = new Map<string, string[]>();
  let allListed = fast;
  if (entries) {
    allListed = position.size === entries.length && entries.length === files!.size;
    for (let i = 0; allListed && i < entries.length; i++) allListed = files!.has(entries[i]!.path);
  }
  if (!allListed) {
    for (const f of tree.files) {
      if (entryOf(f)) continue;
      const n = normalizeModuleName(f);
      if (position.has(n)) continue; // a shadowed duplicate: depmod uses the listed one
      const l = extraByName.get(n) ?? [];
      l.push(f);
      extraByName.set(n, l);
    }
  }
  if (count && extraByName.size) {
    warnings.push(
      `${extraByName.size} module file(s) are not in modules.dep (stale index?), e.g. ${[...extraByName.values()][0]![0]}`,
    );
  }
  const builtin = builtinNames(tree.indexes);

  const resolved: string[] = [];
  const builtinUsed: string[] = [];
  const unknown: string[] = [];
  for (const n of lists.names) {
    if (position.has(n) || extraByName.has(n)) resolved.push(n);
    else if (builtin.has(n)) builtinUsed.push(n);
    else unknown.push(n);
  }
  const listed = lists.names.length;
  if ((resolved.length + builtinUsed.length) * 2 < listed && !input.force) {
    throw new UlfsError(
      'LIST_UNRESOLVED',
      `only ${resolved.length + builtinUsed.length} of ${listed} listed modules exist in kernel ${tree.version} (wrong kernel or wrong list?); use --force to go on`,
      { resolved: resolved.length, builtin: builtinUsed.length, listed, unknown: unknown.slice(0, 20) },
    );
  }

  // Keep set: a worklist over names; each name is expanded once, so cycles cannot loop.
  const reasons = new Map<string, string[]>();
  const queue: string[] = [];
  const keepName = (name: string, reason: string): void => {
    let r = reasons.get(name);
    if (!r) {
      r = [];
      reasons.set(name, r);
      queue.push(name);
    }
    if (!r.includes(reason)) r.push(reason);
  };
  for (const n of resolved) keepName(n, 'used');

  // Every module name: modules.dep's plus the extra files' (no merged copy of 4,000 names).
  const allNames = {
    has: (n: string): boolean => position.has(n) || extraByName.has(n),
    *[Symbol.iterator](): IterableIterator<string> {
      yield* position.keys();
      for (const n of extraByName.keys()) if (!position.has(n)) yield n;
    },
  };
  for (const pattern of input.keep ?? []) {
    let hit = 0;
    if (isGlob(pattern)) {
      const re = globToRegExp(pattern);
      const reName = globToRegExp(normalizeAlias(pattern) ?? pattern);
      for (const n of allNames) if (reName.test(n) || re.test(n)) (keepName(n, 'user'), hit++);
      for (const f of tree.files) {
        if (re.test(f)) {
          const n = normalizeModuleName(f);
          if (allNames.has(n)) (keepName(n, 'user'), hit++);
        }
      }
    } else {
      const n = normalizeModuleName(pattern);
      if (allNames.has(n)) (keepName(n, 'user'), hit++);
      else if (isFile(pattern) && allNames.has(normalizeModuleName(pattern)))
        (keepName(normalizeModuleName(pattern), 'user'), hit++);
    }
    if (!hit) warnings.push(`--keep ${pattern} matches no module of kernel ${tree.version}`);
  }

  const { soft, weak } = parseSoftDeps(tree.indexes);
  const resolveAlias = aliasResolver(tree.indexes);
  const resolveSoft = (name: string): string[] => {
    const n = normalizeModuleName(name);
    if (allNames.has(n)) return [n];
    if (builtin.has(n)) return [];
    return resolveAlias(name).filter((m) => allNames.has(m));
  };
  for (let qi = 0; qi < queue.length; qi++) {
    const name = queue[qi]!;
    const e = named(name);
    if (e) {
      for (const p of e.deps) {
        const depName = entryOf(p)?.name ?? normalizeModuleName(p);
        if (!isFile(p) || !allNames.has(depName)) {
          throw new UlfsError(
            'MODDEP_MISSING',
            `kept module ${name} depends on ${p}, which is not in the image`,
            {
              module: name,
              dependency: p,
            },
          );
        }
        keepName(depName, `dependency of ${name}`);
      }
    }
    for (const s of soft.get(name) ?? [])
      for (const m of resolveSoft(s)) if (m !== name) keepName(m, `softdep of ${name}`);
    for (const s of weak.get(name) ?? [])
      for (const m of resolveSoft(s)) if (m !== name) keepName(m, `weakdep of ${name}`);
  }

  const kept: KeptModule[] = [];
  const keptPaths = new Set<string>();
  for (const [name, r] of reasons) {
    const e = named(name);
    const paths = e ? [e.path] : (extraByName.get(name) ?? []);
    for (const p of paths) {
      if (!isFile(p)) {
        throw new UlfsError('MODDEP_MISSING', `kept module ${name}: its file ${p} is not in the image`, {
          module: name,
          path: p,
        });
      }
      kept.push({ module: name, path: p, reasons: r });
      keptPaths.add(p);
    }
  }
  kept.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const remove = withoutKept(tree.files, keptPaths);
  const indexes = count ? rewriteIndexes(tree.indexes, new Set(reasons.keys()), input.indexOptions) : {};
  return {
    kernel: tree.version,
    used: { listed, resolved, builtin: builtinUsed, unknown },
    kept,
    remove,
    indexes,
    warnings,
  };
}
