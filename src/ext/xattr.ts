/**
 * Extended attributes: in-inode (after 128 + i_extra_isize) and xattr blocks. Source: e2fsprogs
 * lib/ext2fs/ext2_ext_attr.h, ext_attr.c; ext4-brief §8. The reader needs them only for inline
 * data ("system.data") and diagnostics.
 *
 * Block header (32 bytes): 0x0 u32 h_magic 0xEA020000, 0x4 u32 h_refcount, 0x8 u32 h_blocks,
 *   0xC u32 h_hash, 0x10 u32 h_checksum, 0x14 u32 reserved[3]. Entries start at 0x20.
 * In-inode: u32 magic 0xEA020000 at 128 + i_extra_isize, entries follow; value offsets are relative
 *   to the first entry.
 * Entry: 0x0 u8 e_name_len, 0x1 u8 e_name_index, 0x2 u16 e_value_offs, 0x4 u32 e_value_inum,
 *   0x8 u32 e_value_size, 0xC u32 e_hash, 0x10 name (padded to 4). A zero u32 ends the list.
 */
import { le16, le32 } from '../binary/bytes.js';
import { UlfsError } from '../errors.js';

export const XATTR_MAGIC = 0xea020000;
export const XATTR_BLOCK_HEADER_SIZE = 32;
export const XH = { magic: 0x0, refcount: 0x4, blocks: 0x8, hash: 0xc, checksum: 0x10 } as const;
export const XE = {
  nameLen: 0x0,
  nameIndex: 0x1,
  valueOffs: 0x2,
  valueInum: 0x4,
  valueSize: 0x8,
  hash: 0xc,
  name: 0x10,
} as const;
export const XATTR_ENTRY_HEADER = 16;

const PREFIX: Record<number, string> = {
  1: 'user.',
  2: 'system.posix_acl_access',
  3: 'system.posix_acl_default',
  4: 'trusted.',
  6: 'security.',
  7: 'system.',
  8: 'system.richacl',
};

export interface Xattr {
  nameIndex: number;
  name: string;
  /** Full name with prefix, e.g. "user.foo", "system.data". */
  fullName: string;
  value: Buffer;
  valueInum: number;
}

/**
 * Decodes an entry list in `region` starting at `first`; values are at `valueBase + e_value_offs`.
 * Bounded by the region size.
 */
export function decodeXattrEntries(region: Buffer, first: number, valueBase: number, where: string): Xattr[] {
  const out: Xattr[] = [];
  let off = first;
  const fail = (why: string): never => {
    throw new UlfsError('EXT_BAD_XATTR', `${where}: ${why}`, { offset: off });
  };
  while (off + 4 <= region.length && le32(region, off) !== 0) {
    if (off + XATTR_ENTRY_HEADER > region.length) fail('entry runs past the end');
    const nameLen = region[off + XE.nameLen]!;
    const nameIndex = region[off + XE.nameIndex]!;
    const valueOffs = le16(region, off + XE.valueOffs);
    const valueInum = le32(region, off + XE.valueInum);
    const valueSize = le32(region, off + XE.valueSize);
    if (off + XATTR_ENTRY_HEADER + nameLen > region.length) fail('name runs past the end');
    const name = region.toString('latin1', off + XE.name, off + XE.name + nameLen);
    let value = Buffer.alloc(0);
    if (valueInum === 0 && valueSize > 0) {
      const vs = valueBase + valueOffs;
      if (vs + valueSize > region.length)
        fail(`value of ${valueSize} bytes at ${valueOffs} runs past the end`);
      value = Buffer.from(region.subarray(vs, vs + valueSize));
    }
    const prefix = PREFIX[nameIndex] ?? `index${nameIndex}.`;
    out.push({ nameIndex, name, fullName: prefix.endsWith('.') ? prefix + name : prefix, value, valueInum });
    off += (XATTR_ENTRY_HEADER + nameLen + 3) & ~3;
  }
  return out;
}

/** In-inode xattrs of a large inode (empty if none). */
export function decodeInodeXattrs(raw: Buffer, extraIsize: number, ino: number): Xattr[] {
  const start = 128 + extraIsize;
  if (raw.length <= 128 || start + 4 > raw.length) return [];
  if (le32(raw, start) !== XATTR_MAGIC) return [];
  const region = raw.subarray(start + 4);
  return decodeXattrEntries(region, 0, 0, `inode ${ino} in-inode xattrs`);
}

/** Xattrs of an xattr block. */
export function decodeXattrBlock(data: Buffer, block: number): { refcount: number; attrs: Xattr[] } {
  if (le32(data, XH.magic) !== XATTR_MAGIC) {
    throw new UlfsError('EXT_BAD_XATTR', `xattr block ${block} has a bad magic`, { block });
  }
  return {
    refcount: le32(data, XH.refcount),
    attrs: decodeXattrEntries(data, XATTR_BLOCK_HEADER_SIZE, 0, `xattr block ${block}`),
  };
}
