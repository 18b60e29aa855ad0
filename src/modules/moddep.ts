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

/** A parsed line whose dependency list is split only when asked (most lines of a big tree never are). */
class TextEntry implements ModDepEntry {
  private parsed: string[] | undefined;
  constructor(
    readonly path: string,
    readonly name: string,
    private readonly rest: string,
    private readonly file: string,
    private readonly lineNo: number,
  ) {}

  get deps(): string[] {
    if (this.parsed) return this.parsed;
    const rest = this.rest;
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

/** Parses modules.dep text; entries in file order. */
export function decodeModDep(text: string, file = 'modules.dep'): ModDepEntry[] {
  const out: ModDepEntry[] = [];
  let start = 0;
  let lineNo = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    if (end - start > MODDEP_MAX_LINE) badLine(file, lineNo, 'line too long', text.slice(start, start + 80));
    const line = text.slice(start, end);
    start = end + 1;
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) badLine(file, lineNo, "no '<path>:' at the start", line);
    if (out.length >= MODDEP_MAX_MODULES)
      badLine(file, lineNo, `more than ${MODDEP_MAX_MODULES} modules`, line);
    const path = line.slice(0, colon);
    out.push(new TextEntry(path, normalizeModuleName(path), line.slice(colon + 1), file, lineNo));
  }
  return out;
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
