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
import { eachPiece, latin1, latin1Slice } from './text.js';
import { readElfImports, type ModuleImage } from './elf-imports.js';
import { IndexBuilder, decodeIndex, encodeEntries, isIndexable, type IndexWriteOrder } from './kmod-index.js';
import { ModDepText, decodeModDepBin, decodeModDepBuffer, encodeModDep, type ModDepEntry } from './moddep.js';
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
    entries = indexes['modules.dep'] ? decodeModDepBuffer(buf) : decodeModDepBin(buf);
    modDepCache.set(buf, entries);
  }
  return entries;
}

// modules.dep text indexed per Buffer (and per file list checked): plan and rewrite share it.
const modDepTextCache = new WeakMap<Buffer, { text: ModDepText; files?: readonly string[] }>();

/**
 * The modules.dep text of an index set, indexed by name (see ModDepText), or null. Given the
 * module files, also whether the text lists exactly those.
 */
export function modDepText(indexes: Record<string, Buffer>, files?: readonly string[]): ModDepText | null {
  const buf = indexes['modules.dep'];
  if (!buf) return null;
  let c = modDepTextCache.get(buf);
  if (!c || (files && c.files !== files)) {
    c = { text: new ModDepText(buf, files), files };
    modDepTextCache.set(buf, c);
  }
  return c.text;
}

/** Calls fn(start, end) for each line [start, end) of text (without its '\n'). */
function eachLineAt(text: string, fn: (start: number, end: number) => void): void {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    fn(start, end);
    start = end + 1;
  }
}

/** Up to this many kept names one native regex scan beats a JS loop over every line (measured 3-4x). */
const REGEX_FILTER_MAX = 400;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The kept lines of an alias/symbols file, and the key and module of each kept `alias` line. */
interface KeptLines {
  /** the lines, each ending in '\n' */
  bytes: Buffer;
  /** the field between `alias ` and the module (pattern or `symbol:<name>`), as written */
  keys: string[];
  modules: string[];
  /** every byte fits a kmod index (see isIndexable), when that was checked */
  indexable: boolean;
}

/**
 * Calls fn(start, end) for each comment line ('#') at the start of buf, and returns where the first
 * other line starts. The header comment is short: its lines are found in the file's first bytes.
 */
function leadingComments(buf: Buffer, fn: (start: number, end: number) => void): number {
  let start = 0;
  while (start < buf.length && buf[start] === 0x23 /* # */) {
    let end = buf.indexOf(10, start);
    if (end < 0) end = buf.length;
    fn(start, end);
    start = end + 1;
  }
  return start;
}

/**
 * Keeps the leading comment lines and the lines whose LAST field is a kept module name. For a small
 * keep set one native regex scan for ` <name>` right before a line end finds them (no per-line JS
 * work, no backtracking over whole lines); otherwise every line's last field is looked up. Each
 * piece's kept lines are joined at once (see joinLines).
 */
function keptByLastField(buf: Buffer, keep: Set<string>): KeptLines {
  const parts: string[] = [];
  const start = leadingComments(buf, (s, e) => parts.push(buf.toString('latin1', s, e) + '\n'));
  const re =
    keep.size > 0 && keep.size <= REGEX_FILTER_MAX
      ? new RegExp(` (?:${[...keep].map(escapeRegExp).join('|')})$`, 'gm')
      : null;
  if (keep.size > 0) {
    eachPiece(buf, start, (text) => {
      const lines: string[] = [];
      if (re) {
        re.lastIndex = 0;
        let lastEnd = -1;
        // test() instead of exec(): no match array per hit; the match is ` <name>` ending the line.
        while (re.test(text)) {
          const end = re.lastIndex;
          const lineStart = text.lastIndexOf('\n', end - 1) + 1;
          if (lineStart > lastEnd) lines.push(text.slice(lineStart, end));
          lastEnd = end;
        }
      } else {
        eachLineAt(text, (at, end) => {
          const sp = text.lastIndexOf(' ', end - 1);
          if (end > at && text.charCodeAt(at) === 0x23) lines.push(text.slice(at, end));
          else if (sp >= at && keep.has(text.slice(sp + 1, end))) lines.push(text.slice(at, end));
        });
      }
      if (lines.length) parts.push(joinLines(lines));
    });
  }
  return keptText(parts.join(''));
}

/**
 * Lines as one text, each followed by '\n'. A flat copy (join of two or more strings): the lines
 * are slices of a 64 KiB piece and would keep all of it alive, to be copied by every
 * young-generation GC, while the piece could die at once.
 */
function joinLines(lines: string[]): string {
  lines.push('');
  return lines.join('\n');
}

/** The kept lines' text, its bytes, and the key and module of each `alias <key> <module>` line. */
function keptText(text: string): KeptLines {
  return { bytes: Buffer.from(text, 'latin1'), ...aliasFields(text), indexable: isIndexable(text) };
}

/** A character JSON.parse takes only escaped ('\n' is handled apart). */
const JSON_UNSAFE = /["\\\x00-\x09\x0b-\x1f]/;

/**
 * Key and module of each `alias <key> <module>` line of text (a text of whole lines). The usual
 * text is comment lines and `alias <key> <module>` lines with one space between the fields: then
 * two regex replaces turn it into two JSON arrays and JSON.parse makes the strings. Native passes
 * instead of a loop over ~1,400 lines, and flat strings, which V8's sort compares without a
 * runtime call each (slices of a string take one).
 */
function aliasFields(text: string): { keys: string[]; modules: string[] } {
  if (text.endsWith('\n') && !JSON_UNSAFE.test(text)) {
    const body =
      text.charCodeAt(0) === 0x23 || text.includes('\n#') ? text.replace(/^#[^\n]*\n/gm, '') : text;
    const keys = body.replace(/^alias ([^ \n]+) [^ \n]+\n/gm, '"$1",');
    const modules = body.replace(/^alias [^ \n]+ ([^ \n]+)\n/gm, '"$1",');
    // Every line matched: nothing of the text is left but the fields.
    if (!keys.includes('\n') && !modules.includes('\n')) {
      return {
        keys: JSON.parse(`[${keys.slice(0, -1)}]`) as string[],
        modules: JSON.parse(`[${modules.slice(0, -1)}]`) as string[],
      };
    }
  }
  const keys: string[] = [];
  const modules: string[] = [];
  eachLineAt(text, (at, end) => {
    const sp = text.lastIndexOf(' ', end - 1);
    if (sp - at > 6 && text.startsWith('alias ', at)) {
      keys.push(text.slice(at + 6, sp));
      modules.push(text.slice(sp + 1, end));
    }
  });
  return { keys, modules };
}

// Module name -> position, per parsed modules.dep (planModules and rewriteIndexes share it).
const positionCache = new WeakMap<ModDepEntry[], Map<string, number>>();

/** Module name -> position in modules.dep (of the last entry when a name is listed twice). */
export function modDepIndex(all: ModDepEntry[]): Map<string, number> {
  let m = positionCache.get(all);
  if (!m) {
    m = new Map();
    for (let i = 0; i < all.length; i++) m.set(all[i]!.name, i);
    positionCache.set(all, m);
  }
  return m;
}

/** Bytes read at a probe of modules.alias: a line is rarely longer. */
const PROBE_WINDOW = 256;

/**
 * modules.alias's kept lines, found without reading the whole file. depmod writes the aliases
 * module by module in modules.dep order (`output_aliases`), so the lines are sorted by the
 * position of their module in modules.dep and each kept module's run of lines is found by a
 * binary search over the bytes; only the lines probed are converted to strings (a few hundred of
 * 26,000 on the full Debian tree). Returns null when the file does not fit (a probed line that is
 * not `alias X MODULE` of a module modules.dep lists once, a kept module modules.dep does not
 * list): the caller then filters every line.
 */
function keptAliasesSorted(
  buf: Buffer,
  position: Map<string, number>,
  count: number,
  keep: Set<string>,
): KeptLines | null {
  if (position.size !== count) return null;
  const wanted: number[] = [];
  for (const name of keep) {
    const p = position.get(name);
    if (p === undefined) return null;
    wanted.push(p);
  }
  wanted.sort((a, b) => a - b);
  const ranges: number[] = []; // [start, end) pairs of kept lines in buf, without their '\n'
  const keys: string[] = [];
  const modules: string[] = [];
  let lo = leadingComments(buf, (s, e) => ranges.push(s, e));
  // The line read last: [start, end), its text and the space before its module name.
  let start = 0;
  let end = 0;
  let line = '';
  let sp = 0;
  // Reads the line starting at s; returns its module's position, -1 when it is not an alias line.
  const readLine = (s: number): number => {
    start = s;
    // A window that holds the usual line, one native call (Buffer#indexOf and #toString each run
    // a JS wrapper first, which costs more than the copy in a cold process).
    const w = latin1Slice(buf, s, Math.min(s + PROBE_WINDOW, buf.length));
    const nl = w.indexOf('\n');
    if (nl >= 0) {
      end = s + nl;
      line = w.slice(0, nl);
    } else {
      end = buf.indexOf(10, s);
      if (end < 0) end = buf.length;
      line = latin1Slice(buf, s, end);
    }
    sp = line.lastIndexOf(' ');
    if (sp <= 6 || !line.startsWith('alias ')) return -1;
    return position.get(line.slice(sp + 1)) ?? -1;
  };
  // Upper bounds seen by earlier searches, as (line start, module position) pairs: each search
  // pushes the lines it moves hi down to (starts falling, positions not rising), so the top is
  // the nearest. A later search for k starts below the nearest one with a position >= k.
  const bounds: number[] = [];
  for (const k of wanted) {
    while (bounds.length && bounds[bounds.length - 1]! < k) {
      bounds.pop();
      bounds.pop();
    }
    // Lines starting before lo belong to modules before k, lines from hi on to k or later; lo and
    // hi are line starts (or the end). Every step moves lo past mid or hi down to at most mid.
    let hi = bounds.length ? bounds[bounds.length - 2]! : buf.length;
    while (lo < hi) {
      const mid = lo + ((hi - lo) >> 1);
      const p = readLine(mid === lo ? lo : Math.max(lo, buf.lastIndexOf(10, mid - 1) + 1));
      if (p < 0) return null;
      if (p < k) lo = end + 1;
      else {
        hi = start;
        bounds.push(start, p);
      }
    }
    // lo: the first line of module k or of a later one. Take k's run.
    while (lo < buf.length) {
      const p = readLine(lo);
      if (p < 0) return null;
      if (p !== k) break;
      ranges.push(start, end);
      keys.push(line.slice(6, sp));
      modules.push(line.slice(sp + 1));
      lo = end + 1;
    }
  }
  return { bytes: copyRanges(buf, ranges), keys, modules, indexable: false };
}

/**
 * The byte ranges [start, end) of buf as lines, each followed by '\n'. Consecutive lines (a
 * module's aliases are neighbours) are copied in one call.
 */
function copyRanges(buf: Buffer, ranges: number[]): Buffer {
  let size = 0;
  for (let i = 0; i < ranges.length; i += 2) size += ranges[i + 1]! - ranges[i]! + 1;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < ranges.length;) {
    const start = ranges[i]!;
    let end = ranges[i + 1]!;
    i += 2;
    while (i < ranges.length && ranges[i] === end + 1) {
      end = ranges[i + 1]!;
      i += 2;
    }
    at += buf.copy(out, at, start, end);
    out[at++] = 0x0a;
  }
  return out;
}

/** Keeps comment lines and the lines whose second space-separated field (softdep, weakdep) is kept. */
function filterBySecondField(text: string, keep: Set<string>): string {
  let out = '';
  eachLineAt(text, (start, end) => {
    let keepLine: boolean;
    if (end === start) keepLine = false;
    else if (text.charCodeAt(start) === 0x23 /* # */) keepLine = true;
    else {
      const a = text.indexOf(' ', start);
      if (a < 0 || a >= end) keepLine = false;
      else {
        let b = text.indexOf(' ', a + 1);
        if (b < 0 || b > end) b = end;
        keepLine = keep.has(text.slice(a + 1, b));
      }
    }
    if (keepLine) out += text.slice(start, end) + '\n';
  });
  return out;
}

/** The entries of the kept modules, in modules.dep order: found by name (each listed once). */
function keptEntries(
  position: Map<string, number>,
  entry: (i: number) => ModDepEntry,
  keep: Set<string>,
): ModDepEntry[] {
  const at: number[] = [];
  for (const name of keep) {
    const i = position.get(name);
    if (i !== undefined) at.push(i);
  }
  at.sort((a, b) => a - b);
  return at.map(entry);
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
  const position = modDepIndex(all);
  const kept =
    position.size === all.length
      ? keptEntries(position, (i) => all[i]!, keepModules)
      : all.filter((e) => keepModules.has(e.name));
  return rewriteKept(kept, symbolOwner, moduleImage);
}

/** rewriteModDep for the kept entries, in modules.dep order. */
function rewriteKept(
  kept: ModDepEntry[],
  symbolOwner?: () => Map<string, string>,
  moduleImage?: (relpath: string) => Uint8Array | ModuleImage | null | undefined,
): ModDepEntry[] {
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

/** Symbol -> owning module, from the kept modules.symbols lines (or the .bin), for kept modules only. */
function symbolOwners(
  indexes: Record<string, Buffer>,
  keep: Set<string>,
  keptSymbols: () => KeptLines | null,
): Map<string, string> {
  const owners = new Map<string, string>();
  const kept = keptSymbols();
  if (kept) {
    const { keys, modules } = kept;
    for (let i = 0; i < keys.length; i++)
      if (keys[i]!.startsWith('symbol:')) owners.set(keys[i]!.slice(7), modules[i]!);
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
  // Name -> position and the entry at a position, when each name is listed once: from the text's
  // index (no entry per line, see ModDepText), else from every entry decoded (modules.dep.bin).
  // With a name listed twice every entry is decoded and every line of a kept name is kept.
  const text = modDepText(indexes);
  let modDep: { position: Map<string, number>; count: number; entry: (i: number) => ModDepEntry } | null =
    null;
  let kept: ModDepEntry[] | null = null;
  if (text && text.position.size === text.count) {
    modDep = { position: text.position, count: text.count, entry: (i) => text.entry(i) };
  } else {
    const all = readModDep(indexes);
    const position = all && modDepIndex(all);
    if (all && position!.size === all.length)
      modDep = { position: position!, count: all.length, entry: (i) => all[i]! };
    else if (all) kept = all.filter((e) => keepModules.has(e.name));
  }
  if (modDep) kept = keptEntries(modDep.position, modDep.entry, keepModules);
  // modules.symbols is read once, for the owners (dep order) and for its output.
  let symbols: KeptLines | null | undefined;
  const keptSymbols = (): KeptLines | null =>
    symbols === undefined
      ? (symbols = indexes['modules.symbols']
          ? keptByLastField(indexes['modules.symbols'], keepModules)
          : null)
      : symbols;
  // Module name -> new position (the priority in every .bin).
  const newIdx = new Map<string, number>();
  let keptPaths: string[] | null = null;
  if (kept) {
    // Built on first use: only modules with two or more direct deps need their imports resolved.
    let owners: Map<string, string> | undefined;
    const dep = rewriteKept(
      kept,
      () => (owners ??= symbolOwners(indexes, keepModules, keptSymbols)),
      options.moduleImage,
    );
    dep.forEach((e, i) => newIdx.set(e.name, i));
    keptPaths = dep.map((e) => uncompressedPath(e.path));
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
  const prio = (name: string, old: number): number => newIdx.get(name) ?? (kept ? newIdx.size + old : old);

  const aliasText = indexes['modules.alias'];
  const alias = aliasText
    ? ((modDep && keptAliasesSorted(aliasText, modDep.position, modDep.count, keepModules)) ??
      keptByLastField(aliasText, keepModules))
    : null;
  // The .bin key of an alias is its normalised pattern; depmod leaves out one it cannot normalise.
  rewritePair(indexes, out, 'modules.alias', alias, normalizeAlias, keepModules, order, prio);
  rewritePair(indexes, out, 'modules.symbols', keptSymbols(), null, keepModules, order, prio);
  for (const f of ['modules.softdep', 'modules.weakdep']) {
    const t = indexes[f];
    if (t) out[f] = Buffer.from(filterBySecondField(latin1(t), keepModules), 'latin1');
  }
  const devname = indexes['modules.devname'];
  if (devname) {
    let body = '';
    const text = latin1(devname);
    eachLineAt(text, (start, end) => {
      const line = text.slice(start, end);
      if (line.startsWith('#') || line === '') return;
      if (keepModules.has(line.split(' ', 1)[0]!)) body += line + '\n';
    });
    out['modules.devname'] = Buffer.from(body ? DEVNAME_HEADER + body : '', 'latin1');
  }
  const orderFile = indexes['modules.order'];
  if (orderFile) out['modules.order'] = filterOrder(orderFile, keptPaths, keepModules);
  return out;
}

/**
 * modules.order keeps the lines naming a kept file (uncompressed paths, as the kernel build writes
 * them): by modules.dep's kept paths, or without modules.dep by each line's module name.
 */
function filterOrder(buf: Buffer, keptPaths: string[] | null, keepModules: Set<string>): Buffer {
  const parts: string[] = [];
  const set = keptPaths ? new Set(keptPaths) : null;
  // As for modules.alias: for a few kept paths one regex scan for whole lines beats a loop per line.
  const re =
    set && set.size > 0 && set.size <= REGEX_FILTER_MAX
      ? new RegExp(`^(?:${[...set].map(escapeRegExp).join('|')})$`, 'gm')
      : null;
  if (!set || set.size > 0) {
    eachPiece(buf, 0, (text) => {
      const lines: string[] = [];
      if (re) {
        re.lastIndex = 0;
        // A match is a whole (non-empty) line: it starts after the previous '\n'.
        while (re.test(text))
          lines.push(text.slice(text.lastIndexOf('\n', re.lastIndex - 1) + 1, re.lastIndex));
      } else {
        eachLineAt(text, (start, end) => {
          if (end === start) return;
          const line = text.slice(start, end);
          if (set ? set.has(line) : keepModules.has(normalizeModuleName(line))) lines.push(line);
        });
      }
      if (lines.length) parts.push(joinLines(lines));
    });
  }
  return Buffer.from(parts.join(''), 'latin1');
}

/**
 * Text + .bin pair whose lines name their module last (alias, symbols). The .bin is built from
 * the kept text lines; without the text it is rebuilt from its own decoded entries.
 */
function rewritePair(
  indexes: Record<string, Buffer>,
  out: Record<string, Buffer>,
  name: string,
  kept: KeptLines | null,
  /** the .bin key of a line's key field (null: as written) */
  binKey: ((field: string) => string | null) | null,
  keep: Set<string>,
  order: IndexWriteOrder,
  prio: (module: string, old: number) => number,
): void {
  const bin = indexes[name + '.bin'];
  if (kept) {
    out[name] = kept.bytes;
    if (bin) {
      const { modules } = kept;
      const prios: number[] = [];
      for (let i = 0; i < modules.length; i++) prios.push(prio(modules[i]!, 0));
      if (!binKey) out[name + '.bin'] = encodeEntries(kept.keys, modules, prios, order, kept.indexable);
      else {
        const keys: string[] = [];
        const values: string[] = [];
        const kprios: number[] = [];
        for (let i = 0; i < modules.length; i++) {
          const key = binKey(kept.keys[i]!);
          if (key === null) continue;
          keys.push(key);
          values.push(modules[i]!);
          kprios.push(prios[i]!);
        }
        out[name + '.bin'] = encodeEntries(keys, values, kprios, order, kept.indexable);
      }
    }
  } else if (bin) {
    const b = new IndexBuilder();
    for (const e of decodeIndex(bin).entries)
      if (keep.has(e.value)) b.insert(e.key, e.value, prio(e.value, e.priority));
    out[name + '.bin'] = b.encode(order);
  }
}
