/**
 * Every failure the tool reports on purpose is a UlfsError with a stable `code` (never reworded once
 * published), a one-line message that names offsets and values in hex, and a `data` object for
 * machines (`--json`). The CLI maps the code's kind to an exit status and prints one line.
 *
 * Codes are grouped by area. Add new codes to the catalogue below (keep each area's block sorted);
 * a code that is not in the catalogue does not type-check.
 */

/** What kind of failure, which decides the exit status. */
export type ErrorKind =
  | 'usage' // the command line is wrong
  | 'corrupt' // the input (image, archive, list, index) is malformed or inconsistent
  | 'unsupported' // valid input that this tool does not handle (yet)
  | 'refused' // the image cannot be changed safely now (dirty journal, undo log present, ...)
  | 'notFound' // a path, partition, kernel or module that is not there
  | 'io' // the operating system said no
  | 'internal'; // a bug

export const EXIT = {
  ok: 0,
  inconsistent: 1, // `check` found problems
  usage: 2,
  corrupt: 3,
  unsupported: 4,
  refused: 5,
  notFound: 6,
  io: 7,
  internal: 70,
} as const;

export const CATALOGUE = {
  // generic
  USAGE: 'usage',
  INTERNAL: 'internal',
  IO_ERROR: 'io',
  LIMIT_EXCEEDED: 'corrupt',

  // image/: block devices and partition tables
  IMAGE_NOT_FOUND: 'notFound',
  IMAGE_TRUNCATED: 'corrupt',
  IMAGE_READ_ONLY: 'internal',
  IMAGE_OUT_OF_RANGE: 'corrupt',
  IMAGE_LOCKED: 'refused',
  MBR_BAD_SIGNATURE: 'corrupt',
  MBR_BAD_PARTITION: 'corrupt',
  MBR_EBR_LOOP: 'corrupt',
  MBR_EBR_TOO_MANY: 'corrupt',
  GPT_BAD_HEADER: 'corrupt',
  GPT_BAD_CRC: 'corrupt',
  GPT_BAD_ENTRIES: 'corrupt',
  PART_NOT_FOUND: 'notFound',
  PART_OVERLAP: 'corrupt',
  PART_BEYOND_END: 'corrupt',
  FS_NOT_FOUND: 'notFound',
  ROOT_NOT_FOUND: 'notFound',
  BOOT_NOT_FOUND: 'notFound',
  UNDO_PRESENT: 'refused',
  UNDO_NOT_FOUND: 'notFound',
  UNDO_BAD_LOG: 'corrupt',
  UNDO_MISMATCH: 'refused',

  // ext/: reading
  EXT_BAD_MAGIC: 'corrupt',
  EXT_BAD_SUPERBLOCK: 'corrupt',
  EXT_BAD_GROUP_DESC: 'corrupt',
  EXT_BAD_INODE: 'corrupt',
  EXT_BAD_EXTENT: 'corrupt',
  EXT_EXTENT_DEPTH: 'corrupt',
  EXT_EXTENT_LOOP: 'corrupt',
  EXT_BAD_BLOCK_MAP: 'corrupt',
  EXT_BAD_DIRENT: 'corrupt',
  EXT_BAD_HTREE: 'corrupt',
  EXT_BAD_JOURNAL: 'corrupt',
  EXT_BAD_CHECKSUM: 'corrupt',
  EXT_BAD_XATTR: 'corrupt',
  EXT_BLOCK_OUT_OF_RANGE: 'corrupt',
  EXT_SYMLINK_LOOP: 'corrupt',
  EXT_DIR_LOOP: 'corrupt',
  EXT_UNKNOWN_INCOMPAT: 'unsupported',
  EXT_UNSUPPORTED: 'unsupported',
  EXT_INLINE_DATA: 'unsupported',
  EXT_NOT_FOUND: 'notFound',
  EXT_NOT_A_DIRECTORY: 'usage',
  EXT_IS_A_DIRECTORY: 'usage',
  EXT_NOT_A_FILE: 'usage',

  // ext/: writing
  EXT_JOURNAL_DIRTY: 'refused',
  EXT_ORPHANS: 'refused',
  EXT_FS_NOT_CLEAN: 'refused',
  EXT_UNSAFE_FEATURE: 'refused',
  EXT_INODE_PROTECTED: 'refused',
  EXT_DIR_NOT_EMPTY: 'refused',
  EXT_TOO_LARGE: 'refused',
  EXT_BITMAP_MISMATCH: 'corrupt',
  EXT_INCONSISTENT: 'corrupt',

  // initramfs/
  INITRAMFS_UNKNOWN_FORMAT: 'corrupt',
  INITRAMFS_GARBAGE: 'corrupt',
  INITRAMFS_TOO_LARGE: 'refused',
  COMPRESS_TRUNCATED: 'corrupt',
  COMPRESS_CORRUPT: 'corrupt',
  COMPRESS_BOMB: 'corrupt',
  COMPRESS_UNSUPPORTED: 'unsupported',
  COMPRESS_UNAVAILABLE: 'unsupported',
  CPIO_BAD_MAGIC: 'corrupt',
  CPIO_BAD_HEADER: 'corrupt',
  CPIO_TRUNCATED: 'corrupt',
  CPIO_NAME_TOO_LONG: 'corrupt',
  CPIO_BAD_CRC: 'corrupt',
  CPIO_NO_TRAILER: 'corrupt',
  CPIO_HOLD_LIMIT: 'unsupported',

  // modules/
  LIST_EMPTY: 'usage',
  LIST_BAD_LINE: 'corrupt',
  LIST_TOO_LARGE: 'corrupt',
  LIST_WRONG_KERNEL: 'refused',
  LIST_UNRESOLVED: 'refused',
  KERNEL_NOT_FOUND: 'notFound',
  KERNEL_AMBIGUOUS: 'usage',
  MODDEP_BAD_LINE: 'corrupt',
  MODDEP_CYCLE: 'corrupt',
  MODDEP_MISSING: 'refused',
  KMOD_INDEX_BAD: 'corrupt',

  // prune/
  PRUNE_NOTHING_TO_DO: 'usage',
  PRUNE_WONT_FIT: 'refused',
  PRUNE_CHECK_FAILED: 'internal',
  PRUNE_INITRAMFS_ORDER: 'unsupported',
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof CATALOGUE;

export class UlfsError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = 'UlfsError';
    this.code = code;
    this.data = data;
  }

  get kind(): ErrorKind {
    return CATALOGUE[this.code];
  }

  get exitCode(): number {
    return EXIT[this.kind];
  }
}

export function isUlfsError(e: unknown): e is UlfsError {
  return e instanceof UlfsError;
}

/** Formats a number as 0x-prefixed hex, for messages. */
export function hex(n: number | bigint): string {
  return '0x' + n.toString(16);
}

/** Throws LIMIT_EXCEEDED (or the given code) when `value` is over `max`: every on-disk count is bounded. */
export function bound(
  value: number,
  max: number,
  what: string,
  code: ErrorCode = 'LIMIT_EXCEEDED',
  data: Record<string, unknown> = {},
): number {
  if (!(value <= max)) {
    throw new UlfsError(code, `${what} is ${value}, over the limit of ${max}`, { ...data, value, max });
  }
  return value;
}
