/**
 * The symbols a kernel module imports, in the order depmod sees them, read from the module's ELF
 * image (uncompressed). Only needed to order modules.dep lines exactly like depmod: depmod's
 * direct dependencies of a module are the owners of these symbols, in this order.
 *
 * Source of the facts: kmod `libkmod/libkmod-elf.c` (`kmod_elf_get_dependency_symbols`): every
 * `.symtab` entry after index 0 whose section index is SHN_UNDEF (0) and whose name is not empty,
 * in table order; then the `__versions` entries no such symbol matched.
 *
 * ELF layout used (System V gABI):
 *   e_ident[4] class (1 = 32-bit, 2 = 64-bit), e_ident[5] data (1 = LE, 2 = BE)
 *   64-bit: e_shoff @0x28 (u64), e_shentsize @0x3a, e_shnum @0x3c, e_shstrndx @0x3e
 *   32-bit: e_shoff @0x20 (u32), e_shentsize @0x2e, e_shnum @0x30, e_shstrndx @0x32
 *   section header 64: sh_name @0, sh_offset @0x18 (u64), sh_size @0x20 (u64), sh_info @0x2c;
 *     32: @0, @0x10, @0x14, @0x1c (for .symtab, sh_info = index of the first non-local symbol)
 *   symbol 64 (24 bytes): st_name @0 (u32), st_shndx @6 (u16); 32 (16 bytes): st_name @0, st_shndx @14
 *   __versions entry (64 bytes): crc (u64 on 64-bit, u32 on 32-bit), then a NUL-padded name
 * Returns null when the image is not a readable ELF (the caller then falls back to inference).
 */
const ELF_MAGIC = 0x7f454c46;
const EI_CLASS = 4;
const EI_DATA = 5;
const ELF_HEADER_READ = 0x40;
const MAX_SECTIONS = 65535;
const VERSION_ENTRY_SIZE = 64;
/** How far apart two tables may be and still be read in one go. */
const SHSTR_MARGIN = 4096;

/** Positional access to a module file, so only the header and symbol sections are read. */
export interface ModuleImage {
  size: number;
  read(pos: number, len: number): Uint8Array;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * `stop`, when given, sees each imported symbol in order and ends the walk by returning true (the
 * caller needs only the first few owners); the list read so far is returned.
 */
export function readElfImports(
  image: Uint8Array | ModuleImage,
  stop?: (symbol: string) => boolean,
): string[] | null {
  const size = image instanceof Uint8Array ? image.length : image.size;
  const get = (pos: number, len: number): Buffer | null => {
    if (pos < 0 || len < 0 || pos + len > size) return null;
    const u = image instanceof Uint8Array ? image.subarray(pos, pos + len) : image.read(pos, len);
    return u.length === len ? asBuffer(u) : null;
  };
  const h = get(0, Math.min(ELF_HEADER_READ, size));
  if (!h || h.length < ELF_HEADER_READ || h.readUInt32BE(0) !== ELF_MAGIC) return null;
  const is64 = h[EI_CLASS] === 2;
  const le = h[EI_DATA] === 1;
  if (!is64 && h[EI_CLASS] !== 1) return null;
  // Plain byte reads (Buffer#readUInt* validate every call, which shows in a cold run).
  const u16 = (b: Buffer, o: number): number => {
    if (o + 2 > b.length) throw new RangeError('past end');
    return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
  };
  const u32 = (b: Buffer, o: number): number => {
    if (o + 4 > b.length) throw new RangeError('past end');
    return le
      ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0
      : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  };
  const uN = (b: Buffer, o: number): number => {
    if (!is64) return u32(b, o);
    const lo = u32(b, le ? o : o + 4);
    const hi = u32(b, le ? o + 4 : o);
    return hi >= 0x200000 ? -1 : hi * 0x1_0000_0000 + lo;
  };
  try {
    const shoff = uN(h, is64 ? 0x28 : 0x20);
    const shentsize = u16(h, is64 ? 0x3a : 0x2e);
    const shnum = u16(h, is64 ? 0x3c : 0x30);
    const shstrndx = u16(h, is64 ? 0x3e : 0x32);
    if (
      shoff <= 0 ||
      shnum === 0 ||
      shnum > MAX_SECTIONS ||
      shentsize < (is64 ? 0x40 : 0x28) ||
      shstrndx >= shnum
    )
      return null;
    // The section name table usually sits right before the section headers (as the linker writes
    // them): read up to SHSTR_MARGIN bytes before the headers too, one read instead of two.
    const shLen = shnum * shentsize;
    const shFrom = Math.max(0, shoff - SHSTR_MARGIN);
    const shArea = get(shFrom, shoff + shLen - shFrom);
    if (!shArea) return null;
    const sh = shArea.subarray(shoff - shFrom);
    const sec = (i: number): { name: number; off: number; size: number; info: number } => {
      const o = i * shentsize;
      return is64
        ? { name: u32(sh, o), off: uN(sh, o + 0x18), size: uN(sh, o + 0x20), info: u32(sh, o + 0x2c) }
        : { name: u32(sh, o), off: u32(sh, o + 0x10), size: u32(sh, o + 0x14), info: u32(sh, o + 0x1c) };
    };
    const shstrSec = sec(shstrndx);
    const shstr =
      shstrSec.off >= shFrom && shstrSec.off + shstrSec.size <= shoff
        ? shArea.subarray(shstrSec.off - shFrom, shstrSec.off - shFrom + shstrSec.size)
        : get(shstrSec.off, shstrSec.size);
    if (!shstr) return null;
    // String tables are read as latin1 strings once: V8's string builtins stay cheap in a cold
    // process, a Buffer method call per symbol does not.
    const cstr = (t: string, off: number): string | null => {
      if (off >= t.length) return null;
      const end = t.indexOf('\0', off);
      return end < 0 ? null : t.slice(off, end);
    };
    const shstrText = shstr.toString('latin1');
    let symSec: { off: number; size: number; info: number } | null = null;
    let strSec: { off: number; size: number } | null = null;
    // __versions is read only if the walk gets that far (a caller's `stop` usually ends it first).
    let versionsSec: { off: number; size: number } | null = null;
    for (let i = 0; i < shnum; i++) {
      const s = sec(i);
      const name = cstr(shstrText, s.name);
      if (name === '.symtab') symSec = s;
      else if (name === '.strtab') strSec = s;
      else if (name === '__versions') versionsSec = s;
    }
    if (!symSec || !strSec) return null;
    const symSize = is64 ? 24 : 16;
    const shndxAt = is64 ? 6 : 14;
    if (symSec.size % symSize !== 0 || symSec.off < 0 || strSec.off < 0) return null;
    // Local symbols come first and are never undefined (gABI: sh_info is the index of the first
    // non-local one), so the walk and the read start there, at index 1 or later.
    const count = symSec.size / symSize;
    const first = symSec.info > 1 && symSec.info <= count ? symSec.info : 1;
    const symFrom = symSec.off + first * symSize;
    const symEnd = symSec.off + symSec.size;
    // The string table usually follows the symbol table: one read for both.
    let symtab: Buffer | null;
    let strtab: Buffer | null;
    if (strSec.off >= symEnd && strSec.off - symEnd <= SHSTR_MARGIN) {
      const both = get(symFrom, strSec.off + strSec.size - symFrom);
      symtab = both && both.subarray(0, symEnd - symFrom);
      strtab = both && both.subarray(strSec.off - symFrom);
    } else {
      symtab = get(symFrom, symEnd - symFrom);
      strtab = get(strSec.off, strSec.size);
    }
    if (!symtab || !strtab) return null;
    const strtabText = strtab.toString('latin1');
    const out: string[] = [];
    for (let off = 0; off < symtab.length; off += symSize) {
      if (u16(symtab, off + shndxAt) !== 0) continue;
      const name = cstr(strtabText, u32(symtab, off));
      if (name === null) return null;
      if (name === '') continue;
      out.push(name);
      if (stop?.(name)) return out;
    }
    const versions = versionsSec && get(versionsSec.off, versionsSec.size);
    if (versions && versions.length % VERSION_ENTRY_SIZE === 0) {
      const seen = new Set(out);
      const crcLen = is64 ? 8 : 4;
      const v = versions.toString('latin1');
      for (let off = 0; off < v.length; off += VERSION_ENTRY_SIZE) {
        const end = v.indexOf('\0', off + crcLen);
        const name = v.slice(
          off + crcLen,
          end < 0 || end > off + VERSION_ENTRY_SIZE ? off + VERSION_ENTRY_SIZE : end,
        );
        if (seen.has(name)) continue;
        out.push(name);
        if (stop?.(name)) return out;
      }
    }
    return out;
  } catch {
    // A read past the end (RangeError) means a damaged image: no imports known.
    return null;
  }
}
