/**
 * ext2/3/4 feature bits (superblock s_feature_compat 0x5C, s_feature_incompat 0x60,
 * s_feature_ro_compat 0x64) and their e2fsprogs names.
 * Source: e2fsprogs lib/ext2fs/ext2_fs.h, lib/e2p/feature.c; ext4-brief §2.1.
 */

export const COMPAT = {
  DIR_PREALLOC: 0x1,
  IMAGIC_INODES: 0x2,
  HAS_JOURNAL: 0x4,
  EXT_ATTR: 0x8,
  RESIZE_INODE: 0x10,
  DIR_INDEX: 0x20,
  LAZY_BG: 0x40,
  EXCLUDE_BITMAP: 0x100,
  SPARSE_SUPER2: 0x200,
  FAST_COMMIT: 0x400,
  STABLE_INODES: 0x800,
  ORPHAN_FILE: 0x1000,
} as const;

export const RO_COMPAT = {
  SPARSE_SUPER: 0x1,
  LARGE_FILE: 0x2,
  BTREE_DIR: 0x4,
  HUGE_FILE: 0x8,
  GDT_CSUM: 0x10,
  DIR_NLINK: 0x20,
  EXTRA_ISIZE: 0x40,
  HAS_SNAPSHOT: 0x80,
  QUOTA: 0x100,
  BIGALLOC: 0x200,
  METADATA_CSUM: 0x400,
  REPLICA: 0x800,
  READONLY: 0x1000,
  PROJECT: 0x2000,
  SHARED_BLOCKS: 0x4000,
  VERITY: 0x8000,
  ORPHAN_PRESENT: 0x10000,
} as const;

export const INCOMPAT = {
  COMPRESSION: 0x1,
  FILETYPE: 0x2,
  RECOVER: 0x4,
  JOURNAL_DEV: 0x8,
  META_BG: 0x10,
  EXTENTS: 0x40,
  BIT64: 0x80,
  MMP: 0x100,
  FLEX_BG: 0x200,
  EA_INODE: 0x400,
  DIRDATA: 0x1000,
  CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000,
  INLINE_DATA: 0x8000,
  ENCRYPT: 0x10000,
  CASEFOLD: 0x20000,
} as const;

/** Every incompat bit we know the meaning of; anything else is EXT_UNKNOWN_INCOMPAT. */
export const KNOWN_INCOMPAT = Object.values(INCOMPAT).reduce((a, b) => a | b, 0);

const COMPAT_NAMES: Record<number, string> = {
  0x1: 'dir_prealloc',
  0x2: 'imagic_inodes',
  0x4: 'has_journal',
  0x8: 'ext_attr',
  0x10: 'resize_inode',
  0x20: 'dir_index',
  0x40: 'lazy_bg',
  0x100: 'exclude_bitmap',
  0x200: 'sparse_super2',
  0x400: 'fast_commit',
  0x800: 'stable_inodes',
  0x1000: 'orphan_file',
};
const RO_COMPAT_NAMES: Record<number, string> = {
  0x1: 'sparse_super',
  0x2: 'large_file',
  0x4: 'btree_dir',
  0x8: 'huge_file',
  0x10: 'uninit_bg',
  0x20: 'dir_nlink',
  0x40: 'extra_isize',
  0x80: 'snapshot',
  0x100: 'quota',
  0x200: 'bigalloc',
  0x400: 'metadata_csum',
  0x800: 'replica',
  0x1000: 'read-only',
  0x2000: 'project',
  0x4000: 'shared_blocks',
  0x8000: 'verity',
  0x10000: 'orphan_present',
};
const INCOMPAT_NAMES: Record<number, string> = {
  0x1: 'compression',
  0x2: 'filetype',
  0x4: 'needs_recovery',
  0x8: 'journal_dev',
  0x10: 'meta_bg',
  0x40: 'extent',
  0x80: '64bit',
  0x100: 'mmp',
  0x200: 'flex_bg',
  0x400: 'ea_inode',
  0x1000: 'dirdata',
  0x2000: 'metadata_csum_seed',
  0x4000: 'large_dir',
  0x8000: 'inline_data',
  0x10000: 'encrypt',
  0x20000: 'casefold',
};

function names(bits: number, table: Record<number, string>, kind: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < 32; i++) {
    const bit = 2 ** i;
    if ((bits >>> 0) & bit) out.push(table[bit] ?? `FEATURE_${kind}${i}`);
  }
  return out;
}

/** Feature names as e2fsprogs prints them (dumpe2fs "Filesystem features"), compat then incompat then ro_compat. */
export function featureNames(compat: number, incompat: number, roCompat: number): string[] {
  return [
    ...names(compat, COMPAT_NAMES, 'C'),
    ...names(incompat, INCOMPAT_NAMES, 'I'),
    ...names(roCompat, RO_COMPAT_NAMES, 'R'),
  ];
}

/**
 * ext2 / ext3 / ext4 the way blkid decides it (util-linux libblkid superblocks/ext.c): anything
 * beyond what ext3 supports (incompat filetype|recover|meta_bg, ro_compat sparse_super|large_file|
 * btree_dir) is ext4; otherwise a journal makes it ext3.
 */
export function classifyFs(compat: number, incompat: number, roCompat: number): 'ext2' | 'ext3' | 'ext4' {
  const ext3Incompat = INCOMPAT.FILETYPE | INCOMPAT.RECOVER | INCOMPAT.META_BG;
  const ext3Ro = RO_COMPAT.SPARSE_SUPER | RO_COMPAT.LARGE_FILE | RO_COMPAT.BTREE_DIR;
  if (incompat & ~ext3Incompat || roCompat & ~ext3Ro) return 'ext4';
  return compat & COMPAT.HAS_JOURNAL ? 'ext3' : 'ext2';
}
