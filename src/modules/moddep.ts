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
    if (this.parsed) return this.parsed;
    const rest = this.text.slice(this.restStart, this.restEnd);
    // depmod writes ': ' and single spaces; anything else goes through the tolerant path.
    const deps =
      rest === ''
        ? []
        : rest.startsWith(' ') && !/\s\s|\t|\s$/.test(rest)
          ? rest.slice(1).split(' ')
          : rest.trim().split(/\s+/).filter(Boolean);
    if (deps.length > MODDEP_MAX_MODULES) badLine(this.file, this.lineNo, 'too many dependencies', this.path);
    this.parsed = deps;
    return deps;
  }
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
