/**
 * Rewrites a module tree's index files for a smaller module set, as `depmod` (kmod 30, the
 * installed oracle) would write them for the pruned tree — without reading any module file.
 *
 * Per file (kmod `tools/depmod.c`, `depmod_output` and the `output_*` functions):
 *   modules.dep         kept lines in the same module order, closures re-sorted (dep-sort.ts)
 *   modules.dep.bin     name -> line, priority = new position
 *   modules.alias       kept `alias <pattern> <module>` lines, same order (module order)
 *   modules.alias.bin   normalised pattern -> module, priority = the module's new position
 *   modules.symbols     kept `alias symbol:<sym> <module>` lines, same order (depmod's hash order
 *                       depends only on the key set, so filtering keeps it)
 *   modules.symbols.bin `symbol:<sym>` -> module, priority = the owner's new position
 *   modules.softdep     kept `softdep <module> ...` lines (and modules.weakdep, kmod >= 33)
 *   modules.devname     kept lines; the header comment only when a line is left
 *   modules.order       kept paths (an input to depmod, filtered so it names no missing file)
 * modules.builtin* do not depend on the module set: they are not returned (leave them as they are).
 * Only files present in the input are rewritten; a .bin whose text twin is missing is rebuilt from
 * the decoded .bin itself.
 */
import { UlfsError } from '../errors.js';
import { sortDependencies } from './dep-sort.js';
import { latin1 } from './text.js';
import { readElfImports, type ModuleImage } from './elf-imports.js';
import { IndexBuilder, decodeIndex, type IndexWriteOrder } from './kmod-index.js';
import { decodeModDep, decodeModDepBin, encodeModDep, type ModDepEntry } from './moddep.js';
import { normalizeAlias, normalizeModuleName, uncompressedPath } from './names.js';

export const DEVNAME_HEADER = '# Device nodes to trigger on-demand module loading.\n';

export interface RewriteOptions {
  /** trie write order of the .bin files: 'post' = kmod <= 33 (default, Debian 12's kmod 30), 'pre' = kmod >= 34 */
  order?: IndexWriteOrder;
  /**
   * The uncompressed ELF image of a module by its relative path, when the caller can read it.
   * With it, modules.dep lines are ordered exactly as depmod orders them; without it the order is
   * inferred from the old index (see dep-sort.ts) and may differ from depmod's in a few lines.
   */
  moduleImage?: (relpath: string) => Uint8Array | ModuleImage | null | undefined;
}

// Parsed modules.dep per Buffer: plan and rewrite read the same one, and Buffers are not changed in place.
const modDepCache = new WeakMap<Buffer, ModDepEntry[]>();

/** The module entries of an index set: modules.dep text, else modules.dep.bin, else null. */
export function readModDep(indexes: Record<string, Buffer>): ModDepEntry[] | null {
  const buf = indexes['modules.dep'] ?? indexes['modules.dep.bin'];
  if (!buf) return null;
  let entries = modDepCache.get(buf);
  if (!entries) {
    entries = indexes['modules.dep'] ? decodeModDep(latin1(buf)) : decodeModDepBin(buf);
    modDepCache.set(buf, entries);
  }
  return entries;
}

/** Calls fn(line, lineStart, lineEnd) for each line (without its '\n'). */
function eachLine(text: string, fn: (line: string) => void): void {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    fn(text.slice(start, end));
    start = end + 1;
  }
}

/** Up to this many kept names one native regex scan beats a JS loop over every line (measured 3-4x). */
const REGEX_FILTER_MAX = 400;

/**
 * Lines whose LAST field is a kept name, found by one native scan for ` <name>` right before a line
 * end (no per-line JS work, no backtracking over whole lines); leading comment lines are kept.
 */
function filterByRegex(text: string, keep: Set<string>): string {
  let out = '';
  let start = 0;
  while (start < text.length && text.charCodeAt(start) === 0x23 /* # */) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    out += text.slice(start, end) + '\n';
    start = end + 1;
  }
  if (keep.size === 0) return out;
  const alt = [...keep].map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  const re = new RegExp(` (?:${alt})$`, 'gm');
  re.lastIndex = start;
  let lastEnd = start - 1;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const end = m.index + m[0].length;
    const lineStart = Math.max(start, text.lastIndexOf('\n', m.index) + 1);
    if (lineStart > lastEnd) out += text.slice(lineStart, end) + '\n';
    lastEnd = end;
  }
  return out;
}

/**
 * Keeps comment lines and the lines whose module field is kept: the second space-separated field
 * (softdep, weakdep) or the last one (alias, symbols). Slices only the name, then the kept lines.
 */
// The last filter result: rewriteIndexes filters modules.symbols twice (owners, then output).
let lastFilter: { text: string; keep: Set<string>; field: 1 | 'last'; out: string } | undefined;

function filterByField(text: string, keep: Set<string>, field: 1 | 'last'): string {
  const l = lastFilter;
  if (l && l.text === text && l.keep === keep && l.field === field) return l.out;
  const out = filterByFieldUncached(text, keep, field);
  lastFilter = { text, keep, field, out };
  return out;
}

function filterByFieldUncached(text: string, keep: Set<string>, field: 1 | 'last'): string {
  if (field === 'last' && keep.size <= REGEX_FILTER_MAX) return filterByRegex(text, keep);
  let out = '';
  let start = 0;
  const len = text.length;
  while (start < len) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = len;
    let keepLine: boolean;
    if (end === start) keepLine = false;
    else if (text.charCodeAt(start) === 0x23 /* # */) keepLine = true;
    else if (field === 'last') {
      const sp = text.lastIndexOf(' ', end - 1);
      keepLine = keep.has(text.slice(sp < start ? start : sp + 1, end));
    } else {
      const a = text.indexOf(' ', start);
      if (a < 0 || a >= end) keepLine = false;
      else {
        let b = text.indexOf(' ', a + 1);
        if (b < 0 || b > end) b = end;
        keepLine = keep.has(text.slice(a + 1, b));
      }
    }
    if (keepLine) out += text.slice(start, end) + '\n';
    start = end + 1;
  }
  return out;
}

/**
 * Recomputes modules.dep for the kept modules. Throws MODDEP_MISSING when a kept module depends on
 * one that is not kept, MODDEP_CYCLE on a cycle.
 */
export function rewriteModDep(
  all: ModDepEntry[],
  keepModules: Set<string>,
  symbolOwner?: () => Map<string, string>,
  moduleImage?: (relpath: string) => Uint8Array | ModuleImage | null | undefined,
): ModDepEntry[] {
  const kept = all.filter((e) => keepModules.has(e.name));
  const pos = new Map<string, number>();
  kept.forEach((e, i) => pos.set(e.path, i));
  const closure = kept.map((e) =>
    e.deps.map((p) => {
      const i = pos.get(p);
      if (i === undefined) {
        throw new UlfsError(
          'MODDEP_MISSING',
          `kept module ${e.name} (${e.path}) depends on ${p}, which is not kept`,
          {
            module: e.name,
            dependency: p,
          },
        );
      }
      return i;
    }),
  );
  let elfOrder: ((i: number, direct: number[]) => number[] | null) | undefined;
  if (moduleImage && symbolOwner) {
    const byName = new Map<string, number>();
    kept.forEach((e, i) => byName.set(e.name, i));
    elfOrder = (i, direct) => {
      const img = moduleImage(kept[i]!.path);
      if (!img) return null;
      const owners = symbolOwner();
      // Only the order of `direct` matters: stop reading symbols once each has been seen.
      const want = new Set(direct);
      const deps: number[] = [];
      const imports = readElfImports(img, (sym) => {
        const owner = owners.get(sym.startsWith('.') ? sym.slice(1) : sym);
        const j = owner === undefined ? undefined : byName.get(owner);
        if (j !== undefined && want.has(j) && !deps.includes(j)) deps.push(j);
        return deps.length === want.size;
      });
      return imports ? deps : null;
    };
  }
  const sorted = sortDependencies({ paths: kept.map((e) => e.path), closure, elfOrder });
  return kept.map((e, i) => ({ path: e.path, name: e.name, deps: sorted[i]!.map((j) => kept[j]!.path) }));
}

/** Symbol -> owning module, from modules.symbols text (or .bin), for kept modules only. */
function symbolOwners(indexes: Record<string, Buffer>, keep: Set<string>): Map<string, string> {
  const owners = new Map<string, string>();
  const text = indexes['modules.symbols'];
  if (text) {
    eachLine(filterByField(latin1(text), keep, 'last'), (line) => {
      if (!line.startsWith('alias symbol:')) return;
      const sp = line.lastIndexOf(' ');
      const mod = line.slice(sp + 1);
      if (keep.has(mod)) owners.set(line.slice(13, sp), mod);
    });
  } else if (indexes['modules.symbols.bin']) {
    for (const e of decodeIndex(indexes['modules.symbols.bin']).entries) {
      if (keep.has(e.value) && e.key.startsWith('symbol:')) owners.set(e.key.slice(7), e.value);
    }
  }
  return owners;
}

/** The same rewrite for any module tree whose index files are in memory (image or initramfs). */
export function rewriteIndexes(
  indexes: Record<string, Buffer>,
  keepModules: Set<string>,
  options: RewriteOptions = {},
): Record<string, Buffer> {
  const order = options.order ?? 'post';
  const out: Record<string, Buffer> = {};
  const all = readModDep(indexes);
  // Module name -> new position (the priority in every .bin).
  const newIdx = new Map<string, number>();
  let keptPaths: Set<string> | null = null;
  if (all) {
    // Built on first use: only modules with two or more direct deps need their imports resolved.
    let owners: Map<string, string> | undefined;
    const dep = rewriteModDep(
      all,
      keepModules,
      () => (owners ??= symbolOwners(indexes, keepModules)),
      options.moduleImage,
    );
    dep.forEach((e, i) => newIdx.set(e.name, i));
    keptPaths = new Set(dep.map((e) => uncompressedPath(e.path)));
    if (indexes['modules.dep']) out['modules.dep'] = Buffer.from(encodeModDep(dep), 'latin1');
    if (indexes['modules.dep.bin']) {
      const b = new IndexBuilder();
      dep.forEach((e, i) =>
        b.insert(e.name, e.deps.length ? `${e.path}: ${e.deps.join(' ')}` : `${e.path}:`, i),
      );
      out['modules.dep.bin'] = b.encode(order);
    }
  }
  // A module missing from modules.dep (stale index) keeps a position after all known ones.
  const prio = (name: string, old: number): number => newIdx.get(name) ?? (all ? newIdx.size + old : old);

  rewritePair(indexes, out, 'modules.alias', keepModules, order, prio, (line) => {
    // `alias <pattern> <module>`
    if (!line.startsWith('alias ')) return null;
    const sp = line.lastIndexOf(' ');
    if (sp <= 6) return null;
    const key = normalizeAlias(line.slice(6, sp));
    return key === null ? null : { key, module: line.slice(sp + 1) };
  });
  rewritePair(indexes, out, 'modules.symbols', keepModules, order, prio, (line) => {
    // `alias symbol:<name> <module>`
    if (!line.startsWith('alias ')) return null;
    const sp = line.lastIndexOf(' ');
    if (sp <= 6) return null;
    return { key: line.slice(6, sp), module: line.slice(sp + 1) };
  });
  for (const f of ['modules.softdep', 'modules.weakdep']) {
    const t = indexes[f];
    if (t) out[f] = Buffer.from(filterByField(latin1(t), keepModules, 1), 'latin1');
  }
  const devname = indexes['modules.devname'];
  if (devname) {
    let body = '';
    eachLine(latin1(devname), (line) => {
      if (line.startsWith('#') || line === '') return;
      if (keepModules.has(line.split(' ', 1)[0]!)) body += line + '\n';
    });
    out['modules.devname'] = Buffer.from(body ? DEVNAME_HEADER + body : '', 'latin1');
  }
  const orderFile = indexes['modules.order'];
  if (orderFile) {
    let body = '';
    eachLine(latin1(orderFile), (line) => {
      if (line === '') return;
      const keep = keptPaths ? keptPaths.has(line) : keepModules.has(normalizeModuleName(line));
      if (keep) body += line + '\n';
    });
    out['modules.order'] = Buffer.from(body, 'latin1');
  }
  return out;
}

/**
 * Text + .bin pair whose lines name their module last (alias, symbols). The .bin is built from
 * the kept text lines; without the text it is rebuilt from its own decoded entries.
 */
function rewritePair(
  indexes: Record<string, Buffer>,
  out: Record<string, Buffer>,
  name: string,
  keep: Set<string>,
  order: IndexWriteOrder,
  prio: (module: string, old: number) => number,
  parse: (line: string) => { key: string; module: string } | null,
): void {
  const text = indexes[name];
  const bin = indexes[name + '.bin'];
  if (text) {
    const filtered = filterByField(latin1(text), keep, 'last');
    out[name] = Buffer.from(filtered, 'latin1');
    if (bin) {
      const b = new IndexBuilder();
      eachLine(filtered, (line) => {
        const e = parse(line);
        if (e) b.insert(e.key, e.module, prio(e.module, 0));
      });
      out[name + '.bin'] = b.encode(order);
    }
  } else if (bin) {
    const b = new IndexBuilder();
    for (const e of decodeIndex(bin).entries)
      if (keep.has(e.value)) b.insert(e.key, e.value, prio(e.value, e.priority));
    out[name + '.bin'] = b.encode(order);
  }
}
