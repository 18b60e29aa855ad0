/**
 * Module usage lists: which modules a running system used, as the user captured them.
 *
 * Formats, detected per file from its first content line (see docs/modules-and-initramfs.md §1):
 *   capture   `# ulfs-offline used-modules v1`, `# kernel: <uname -r>`, then /proc/modules lines
 *   proc      /proc/modules: `name size refcount deps state address [taints]`
 *   lsmod     header `Module  Size  Used by`, then `name size count [users]`
 *   paths     `modinfo -n` output: absolute paths under /lib/modules/<ver>/ or /usr/lib/modules/<ver>/
 *             ending .ko/.ko.gz/.ko.xz/.ko.zst, or `(builtin)`; plain names may be mixed in
 *   names     one module name (or file name) per line
 * Everywhere: `#` comments, blank lines, CRLF, trailing blanks. Any other line is LIST_BAD_LINE.
 */
import { UlfsError } from '../errors.js';
import { normalizeModuleName } from './names.js';

/** Larger lists are refused before they are read: a real one is a few KiB. */
export const LIST_MAX_BYTES = 16 * 1024 * 1024;
/** Longest accepted line; a module path is well under this. */
export const LIST_MAX_LINE = 4096;

export const CAPTURE_HEADER = '# ulfs-offline used-modules v1';

export type ListFormat = 'capture' | 'proc' | 'lsmod' | 'paths' | 'names';

export interface UsageList {
  /** the files this list was read from */
  sources: string[];
  /** detected format of each file */
  formats: Record<string, ListFormat>;
  /** normalised module names, unique, in first-seen order */
  names: string[];
  /** where each name was first seen, `file:line` */
  where: Record<string, string>;
  /** `(builtin)` lines from modinfo -n (they carry no name) */
  builtinLines: number;
  /** kernel versions named by capture headers */
  kernels: string[];
  /** kernel versions named by /lib/modules/<ver>/ paths */
  pathKernels: string[];
}

const PROC_RE =
  /^(\S+)\s+(\d+)\s+(-?\d+)\s+(\S+)\s+(Live|Loading|Unloading)\s+(0x[0-9a-fA-F]+)(\s+\([A-Z]+\))?$/;
const LSMOD_HEADER_RE = /^Module\s+Size\s+Used by$/;
const LSMOD_RE = /^(\S+)\s+(\d+)\s+(-?\d+)(\s+\S.*)?$/;
const NAME_RE = /^[A-Za-z0-9_-]+(\.ko(\.(gz|xz|zst))?)?$/;
const PATH_RE = /^\/\S*\.ko(\.(gz|xz|zst))?$/;
const PATH_KERNEL_RE = /(?:^|\/)lib\/modules\/([^/]+)\//;
const KERNEL_LINE_RE = /^#\s*kernel:\s*(\S+)$/;
/** Printable ASCII and tab only: anything else is binary garbage or a wrong file. */
const TEXT_RE = /^[\t\x20-\x7e]*$/;

function badLine(file: string, line: number, why: string, text: string): never {
  const shown = text.length > 60 ? text.slice(0, 60) + '...' : text;
  throw new UlfsError('LIST_BAD_LINE', `${file}:${line}: ${why}: ${JSON.stringify(shown)}`, { file, line });
}

/**
 * Parses one usage list. `text` may be a Buffer (checked for size before it is decoded).
 */
export function parseUsageList(text: string | Buffer, fileName: string): UsageList {
  const size = typeof text === 'string' ? text.length : text.length;
  if (size > LIST_MAX_BYTES) {
    throw new UlfsError(
      'LIST_TOO_LARGE',
      `${fileName}: ${size} bytes, over the limit of ${LIST_MAX_BYTES} for a usage list`,
      {
        file: fileName,
        size,
        max: LIST_MAX_BYTES,
      },
    );
  }
  const str = typeof text === 'string' ? text : text.toString('latin1');
  const list: UsageList = {
    sources: [fileName],
    formats: {},
    names: [],
    where: Object.create(null) as Record<string, string>,
    builtinLines: 0,
    kernels: [],
    pathKernels: [],
  };
  const add = (name: string, line: number): void => {
    if (!Object.hasOwn(list.where, name)) {
      list.where[name] = `${fileName}:${line}`;
      list.names.push(name);
    }
  };
  let format: ListFormat | undefined;
  let lineNo = 0;
  let start = 0;
  let captureKernelSeen = false;
  while (start <= str.length) {
    let end = str.indexOf('\n', start);
    if (end < 0) end = str.length;
    lineNo++;
    if (end - start > LIST_MAX_LINE)
      badLine(fileName, lineNo, `line longer than ${LIST_MAX_LINE} characters`, str.slice(start, start + 60));
    const raw = str.slice(start, end);
    start = end + 1;
    if (!TEXT_RE.test(raw.endsWith('\r') ? raw.slice(0, -1) : raw))
      badLine(fileName, lineNo, 'not text (binary data?)', raw);
    const line = raw.replace(/[\s]+$/, '').replace(/^[ \t]+/, '');
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (format === undefined && line === CAPTURE_HEADER) {
        format = 'capture';
        continue;
      }
      if (format === 'capture' && !captureKernelSeen) {
        const m = KERNEL_LINE_RE.exec(line);
        if (m) {
          captureKernelSeen = true;
          if (!list.kernels.includes(m[1]!)) list.kernels.push(m[1]!);
        }
      }
      continue;
    }
    // Trailing comment after a name or path.
    const hash = line.search(/\s#/);
    const body = hash >= 0 ? line.slice(0, hash).trimEnd() : line;
    if (format === undefined) {
      if (LSMOD_HEADER_RE.test(body)) {
        format = 'lsmod';
        continue;
      }
      if (PROC_RE.test(body)) format = 'proc';
      else if (PATH_RE.test(body) || body === '(builtin)') format = 'paths';
      else if (NAME_RE.test(body)) format = 'names';
      else badLine(fileName, lineNo, 'not a module name, path, lsmod or /proc/modules line', body);
    }
    switch (format) {
      case 'capture':
      case 'proc': {
        const m = PROC_RE.exec(body);
        if (!m) badLine(fileName, lineNo, 'not a /proc/modules line', body);
        add(normalizeModuleName(m[1]!), lineNo);
        break;
      }
      case 'lsmod': {
        if (LSMOD_HEADER_RE.test(body)) break;
        const m = LSMOD_RE.exec(body);
        if (!m) badLine(fileName, lineNo, 'not an lsmod line', body);
        add(normalizeModuleName(m[1]!), lineNo);
        break;
      }
      case 'paths':
      case 'names': {
        if (body === '(builtin)') {
          list.builtinLines++;
        } else if (PATH_RE.test(body)) {
          const k = PATH_KERNEL_RE.exec(body);
          if (k && !list.pathKernels.includes(k[1]!)) list.pathKernels.push(k[1]!);
          add(normalizeModuleName(body), lineNo);
        } else if (NAME_RE.test(body)) {
          add(normalizeModuleName(body), lineNo);
        } else badLine(fileName, lineNo, 'not a module name or module path', body);
        break;
      }
    }
  }
  if (format === 'capture' && !captureKernelSeen) {
    throw new UlfsError('LIST_BAD_LINE', `${fileName}: capture header without a '# kernel: <version>' line`, {
      file: fileName,
    });
  }
  list.formats[fileName] = format ?? 'names';
  if (list.names.length === 0 && list.builtinLines === 0) {
    throw new UlfsError('LIST_EMPTY', `${fileName}: no module names in the list`, { file: fileName });
  }
  return list;
}

/** The union of several lists (names in first-seen order across the lists). */
export function mergeUsageLists(lists: UsageList[]): UsageList {
  const out: UsageList = {
    sources: [],
    formats: {},
    names: [],
    where: Object.create(null) as Record<string, string>,
    builtinLines: 0,
    kernels: [],
    pathKernels: [],
  };
  for (const l of lists) {
    for (const s of l.sources) if (!out.sources.includes(s)) out.sources.push(s);
    Object.assign(out.formats, l.formats);
    for (const n of l.names) {
      if (!Object.hasOwn(out.where, n)) {
        out.where[n] = l.where[n]!;
        out.names.push(n);
      }
    }
    out.builtinLines += l.builtinLines;
    for (const k of l.kernels) if (!out.kernels.includes(k)) out.kernels.push(k);
    for (const k of l.pathKernels) if (!out.pathKernels.includes(k)) out.pathKernels.push(k);
  }
  return out;
}
