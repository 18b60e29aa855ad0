/**
 * modules.dep (text) and its binary twin modules.dep.bin.
 *
 * Text, one line per module in depmod's module order (modules.order first, kmod `tools/depmod.c`
 * `output_deps`):   `<relpath>:[ <dep relpath>]...\n`
 * The dependency list is the module's FULL transitive closure, sorted by depmod's topological
 * index (see dep-sort.ts). Paths are relative to /lib/modules/<version>/ and keep the file's
 * compression suffix.
 *
 * Bin (`output_deps_bin`): key = module name, value = the same text as the line without '\n',
 * priority = the module's position in that order.
 */
import { UlfsError } from '../errors.js';
import { decodeIndex } from './kmod-index.js';
import { normalizeModuleName } from './names.js';
import { eachPiece } from './text.js';

/** depmod itself stores module indexes in 16 bits. */
export const MODDEP_MAX_MODULES = 65535;
export const MODDEP_MAX_LINE = 1 << 20;

export interface ModDepEntry {
  /** relative path as written in modules.dep */
  path: string;
  name: string;
  /** dependency paths in the stored order (the full closure) */
  deps: string[];
}

function badLine(file: string, line: number, why: string, text: string): never {
  const shown = text.length > 80 ? text.slice(0, 80) + '...' : text;
  throw new UlfsError('MODDEP_BAD_LINE', `${file}:${line}: ${why}: ${JSON.stringify(shown)}`, { file, line });
}

/**
 * A parsed line whose dependency list is split only when asked (most lines of a big tree never
 * are): it keeps the offsets of its dependency text in the file, not a copy.
 */
class TextEntry implements ModDepEntry {
  // `declare`: set in the constructor only. Emitted class fields (ES2022) would define every
  // property once more per object, which shows for 4,000 entries in a cold process.
  declare readonly path: string;
  declare readonly name: string;
  declare private readonly text: string;
  declare private readonly restStart: number;
  declare private readonly restEnd: number;
  declare private readonly lineNo: number;
  declare private readonly file: string;
  declare private parsed: string[] | undefined;

  constructor(
    path: string,
    name: string,
    text: string,
    restStart: number,
    restEnd: number,
    lineNo: number,
    file: string,
  ) {
    this.path = path;
    this.name = name;
    this.text = text;
    this.restStart = restStart;
    this.restEnd = restEnd;
    this.lineNo = lineNo;
    this.file = file;
    this.parsed = undefined;
  }

  get deps(): string[] {
    return (this.parsed ??= splitDeps(
      this.text.slice(this.restStart, this.restEnd),
      this.path,
      this.file,
      () => this.lineNo,
    ));
  }
}

/** The dependency paths of a line from the text after its colon. */
function splitDeps(rest: string, path: string, file: string, lineNo: () => number): string[] {
  // depmod writes ': ' and single spaces; anything else goes through the tolerant path.
  const deps =
    rest === ''
      ? []
      : rest.startsWith(' ') && !/\s\s|\t|\s$/.test(rest)
        ? rest.slice(1).split(' ')
        : rest.trim().split(/\s+/).filter(Boolean);
  if (deps.length > MODDEP_MAX_MODULES) badLine(file, lineNo(), 'too many dependencies', path);
  return deps;
}

/**
 * Parses modules.dep text; entries in file order. One pass of two native searches per line; the
 * module name is cut straight from the text (see normalizeModuleName for the rule).
 */
export function decodeModDep(text: string, file = 'modules.dep'): ModDepEntry[] {
  const out: ModDepEntry[] = [];
  decodeLines(text, file, out, 0);
  return out;
}

/** The same from the file's bytes, converted to strings piece by piece (see eachPiece). */
export function decodeModDepBuffer(buf: Buffer, file = 'modules.dep'): ModDepEntry[] {
  const out: ModDepEntry[] = [];
  let lineNo = 0;
  eachPiece(buf, 0, (text) => {
    lineNo = decodeLines(text, file, out, lineNo);
  });
  return out;
}

/** A path's module name: its base name up to the first '.' (directories taken whole). */
const PATH_NAME = /^(?:[^\n/]*\/)*([^\n.]*)[^\n]*/gm;

/** A line of modules.dep, read when asked for. */
class LineEntry implements ModDepEntry {
  declare readonly path: string;
  declare readonly name: string;
  declare private readonly line: string;
  declare private readonly lineNo: () => number;
  declare private readonly file: string;
  declare private parsed: string[] | undefined;

  constructor(line: string, lineNo: () => number, file: string) {
    this.path = line.slice(0, line.indexOf(':'));
    this.name = normalizeModuleName(this.path);
    this.line = line;
    this.lineNo = lineNo;
    this.file = file;
    this.parsed = undefined;
  }

  get deps(): string[] {
    return (this.parsed ??= splitDeps(
      this.line.slice(this.path.length + 1),
      this.path,
      this.file,
      this.lineNo,
    ));
  }
}

/**
 * modules.dep text indexed by module name, for a plan that keeps a few dozen of thousands of
 * modules. In a cold process JS code runs interpreted (a few hundred instructions an operation),
 * and fresh memory costs at its first touch, and more when the GC copies what stays alive. So the
 * file is read in 64 KiB pieces that die young, with few operations per line (the names come from
 * one regex replace per piece), and what stays is each name's position and its line's byte
 * offset; an entry (path, dependencies) is made when asked for.
 */
export class ModDepText {
  /** module name -> position among the module lines (the last, for a name listed twice) */
  declare readonly position: Map<string, number>;
  /** number of module lines */
  declare readonly count: number;
  /** the module lines' paths are exactly the files given to the constructor, each once */
  declare readonly listsExactly: boolean;
  declare private readonly buf: Buffer;
  declare private readonly file: string;
  /** byte offset of each module line */
  declare private readonly starts: number[];
  declare private readonly entries: Map<number, ModDepEntry>;

  /**
   * Checks every line as decodeModDep does (and throws its errors). Given the module files, also
   * checks whether the lines list exactly those.
   */
  constructor(buf: Buffer, fileList?: readonly string[], file = 'modules.dep') {
    const position = new Map<string, number>();
    const starts: number[] = [];
    const files = fileList ? new Set(fileList) : null;
    let exact = files !== null;
    let suspect = false;
    eachPiece(buf, 0, (text, base) => {
      const len = text.length;
      if (len > MODDEP_MAX_LINE) suspect = true;
      // Without comment or empty lines (depmod writes none) every line is a module line.
      const c0 = text.charCodeAt(0);
      const plain = !(c0 === 0x23 || c0 === 0x0a || text.includes('\n#') || text.includes('\n\n'));
      const paths: string[] = [];
      let start = 0;
      while (start < len) {
        let end = text.indexOf('\n', start);
        if (end < 0) end = len;
        if (plain || (end > start && text.charCodeAt(start) !== 0x23) /* # */) {
          const colon = text.indexOf(':', start);
          if (colon <= start || colon > end) suspect = true;
          else {
            const path = text.slice(start, colon);
            if (exact && !files!.has(path)) exact = false;
            paths.push(path);
            starts.push(base + start);
          }
        }
        start = end + 1;
      }
      if (!paths.length) return;
      // The module names of all the paths by one regex replace (normalizeModuleName: the base
      // name up to its first '.', '-' -> '_'): native passes instead of three calls per line, and
      // copies, so none keeps the piece alive (a slice of it would).
      let names = paths.join('\n').replace(PATH_NAME, '$1');
      if (names.includes('-')) names = names.replace(/-/g, '_');
      const list = names.split('\n');
      for (let i = 0, at = starts.length - list.length; i < list.length; i++, at++)
        position.set(list[i]!, at);
    });
    // The full decoder throws the error that names the bad line (a long piece may hold none).
    if (suspect || starts.length > MODDEP_MAX_MODULES) decodeModDepBuffer(buf, file);
    this.position = position;
    this.count = starts.length;
    // Every line's path is a file; with each name (so each path) listed once and as many lines as
    // files, every file is listed.
    this.listsExactly = exact && position.size === starts.length && starts.length === files!.size;
    this.buf = buf;
    this.file = file;
    this.starts = starts;
    this.entries = new Map();
  }

  /** The entry of module line i (0 <= i < count). */
  entry(i: number): ModDepEntry {
    let e = this.entries.get(i);
    if (!e) {
      const buf = this.buf;
      const start = this.starts[i]!;
      let end = buf.indexOf(10, start);
      if (end < 0) end = buf.length;
      // Only for an error message: the line's number, from the newlines before it.
      const lineNo = (): number => buf.toString('latin1', 0, start).split('\n').length;
      e = new LineEntry(buf.toString('latin1', start, end), lineNo, this.file);
      this.entries.set(i, e);
    }
    return e;
  }

  /** The entry of module `name` (the last line of a name listed twice). */
  named(name: string): ModDepEntry | undefined {
    const i = this.position.get(name);
    return i === undefined ? undefined : this.entry(i);
  }
}

/** Appends the entries of the lines of text to out; lineNo = lines before text. Returns the count after. */
function decodeLines(text: string, file: string, out: ModDepEntry[], lineNo: number): number {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    if (end - start > MODDEP_MAX_LINE) badLine(file, lineNo, 'line too long', text.slice(start, start + 80));
    const lineStart = start;
    start = end + 1;
    if (end === lineStart || text.charCodeAt(lineStart) === 0x23 /* # */) continue;
    const colon = text.indexOf(':', lineStart);
    if (colon <= lineStart || colon > end)
      badLine(file, lineNo, "no '<path>:' at the start", text.slice(lineStart, end));
    if (out.length >= MODDEP_MAX_MODULES)
      badLine(file, lineNo, `more than ${MODDEP_MAX_MODULES} modules`, text.slice(lineStart, end));
    const slash = text.lastIndexOf('/', colon);
    const base = slash < lineStart ? lineStart : slash + 1;
    const dot = text.indexOf('.', base);
    let name = text.slice(base, dot < 0 || dot > colon ? colon : dot);
    if (name.includes('-')) name = name.replace(/-/g, '_');
    out.push(new TextEntry(text.slice(lineStart, colon), name, text, colon + 1, end, lineNo, file));
  }
  return lineNo;
}

/** Reads modules.dep.bin into the same entries, in priority order (the text file's order). */
export function decodeModDepBin(buf: Buffer): ModDepEntry[] {
  const { entries } = decodeIndex(buf);
  const rows = entries.map((e) => {
    const colon = e.value.indexOf(':');
    if (colon <= 0) {
      throw new UlfsError(
        'KMOD_INDEX_BAD',
        `modules.dep.bin: value of ${JSON.stringify(e.key)} has no '<path>:'`,
        { key: e.key },
      );
    }
    const rest = e.value.slice(colon + 1).trim();
    return {
      priority: e.priority,
      entry: {
        path: e.value.slice(0, colon),
        name: e.key,
        deps: rest === '' ? [] : rest.split(/\s+/),
      } as ModDepEntry,
    };
  });
  rows.sort((a, b) => a.priority - b.priority);
  return rows.map((r) => r.entry);
}

/** Writes entries as modules.dep text. */
export function encodeModDep(entries: ModDepEntry[]): string {
  let s = '';
  for (const e of entries) s += e.deps.length ? `${e.path}: ${e.deps.join(' ')}\n` : `${e.path}:\n`;
  return s;
}
