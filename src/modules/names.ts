/**
 * Module names and patterns.
 *
 * A module's name comes from its file name the way kmod derives it (kmod `shared/util.c`,
 * `modname_normalize`/`path_to_modname`): take the base name, stop at the first '.', turn every
 * '-' into '_'. So `kernel/sound/pci/hda/snd-hda-intel.ko.xz` is module `snd_hda_intel`.
 * Alias keys in the .bin index are normalised the same way outside `[...]` ranges
 * (`alias_normalize`).
 */

/** Module name of a path or name: base name up to the first '.', '-' -> '_'. */
export function normalizeModuleName(s: string): string {
  const slash = s.lastIndexOf('/');
  let base = slash >= 0 ? s.slice(slash + 1) : s;
  const dot = base.indexOf('.');
  if (dot >= 0) base = base.slice(0, dot);
  return base.includes('-') ? base.replace(/-/g, '_') : base;
}

/** True when `s` ends in a module file extension: .ko, .ko.gz, .ko.xz, .ko.zst. */
export function isModuleFile(s: string): boolean {
  return /\.ko(\.(gz|xz|zst))?$/.test(s);
}

/** The path with its compression suffix removed (`x.ko.xz` -> `x.ko`), as modules.order lists it. */
export function uncompressedPath(p: string): string {
  return p.replace(/\.ko\.(gz|xz|zst)$/, '.ko');
}

/**
 * An alias pattern as depmod stores it as a .bin key: '-' -> '_' except inside `[...]`.
 * Returns null for an unmatched bracket (depmod skips such an alias in the .bin, keeps it in text).
 */
export function normalizeAlias(alias: string): string | null {
  if (!alias.includes('-') && !alias.includes('[') && !alias.includes(']')) return alias;
  let out = '';
  for (let i = 0; i < alias.length; i++) {
    const c = alias[i]!;
    if (c === '-') out += '_';
    else if (c === ']') return null;
    else if (c === '[') {
      const end = alias.indexOf(']', i);
      if (end < 0) return null;
      out += alias.slice(i, end + 1);
      i = end;
    } else out += c;
  }
  return out;
}

/** True when the string has fnmatch wildcards. */
export function isGlob(s: string): boolean {
  return /[*?[]/.test(s);
}

/**
 * Compiles an fnmatch-style pattern (`*`, `?`, `[...]`, `[!...]`) to a RegExp matching the whole
 * string. `*` also matches '/', so `kernel/drivers/net/*` keeps a whole subtree.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += '[' + body.replace(/\\/g, '\\\\') + ']';
      i = end;
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(re + '$');
}
