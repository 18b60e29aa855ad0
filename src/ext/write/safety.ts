/**
 * Safety gate (ext4-brief §13.1, §14, §15): refuse to change a filesystem that is not cleanly
 * unmounted, has a journal to replay, has orphans, or uses a feature whose invariants we do not keep.
 * Every refusal is a typed UlfsError raised before the first write, so the image stays untouched.
 */
import { be32, le32 } from '../../binary/bytes.js';
import { UlfsError, hex } from '../../errors.js';
import { verifySuperblockCsum } from '../checksums.js';
import { mapInode, fileType, S_IFREG, hasBlockMap } from './mapping.js';
import {
  COMPAT_ORPHAN_FILE,
  INCOMPAT_RECOVER,
  S_CHECKSUM_TYPE,
  S_JOURNAL_INUM,
  S_ORPHAN_FILE_INUM,
} from './geometry.js';
import type { Volume } from './volume.js';

const STATE_VALID = 0x1;
const STATE_ERROR = 0x2;
const STATE_ORPHAN = 0x4;
const RO_COMPAT_ORPHAN_PRESENT = 0x10000;
const JBD2_MAGIC = 0xc03b3998;
const JSB_START = 0x1c;
const JSB_ERRNO = 0x20;

const KNOWN_INCOMPAT =
  0x1 |
  0x2 |
  0x4 |
  0x8 |
  0x10 |
  0x40 |
  0x80 |
  0x100 |
  0x200 |
  0x400 |
  0x1000 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000 |
  0x20000;
const KNOWN_RO_COMPAT =
  0x1 |
  0x2 |
  0x8 |
  0x10 |
  0x20 |
  0x40 |
  0x80 |
  0x100 |
  0x200 |
  0x400 |
  0x800 |
  0x1000 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000;

/**
 * Features that make writing unsafe: [field, bit, name]. inline_data and casefold are handled per
 * inode instead: a target or directory with INLINE_DATA_FL / CASEFOLD_FL is refused (EXT_INLINE_DATA,
 * EXT_UNSUPPORTED) before anything is written; ordinary inodes on such filesystems are safe.
 */
const UNSAFE_WRITE: ['compat' | 'incompat' | 'roCompat', number, string][] = [
  ['incompat', 0x8, 'journal_dev'],
  ['roCompat', 0x200, 'bigalloc'],
  ['incompat', 0x10000, 'encrypt'],
  ['incompat', 0x10, 'meta_bg'],
  ['roCompat', 0x100, 'quota'],
  ['roCompat', 0x2000, 'project'],
  ['incompat', 0x400, 'ea_inode'],
  ['incompat', 0x100, 'mmp'],
  ['roCompat', 0x4000, 'shared_blocks'],
  ['roCompat', 0x80, 'snapshot'],
  ['compat', 0x100, 'exclude_bitmap'],
  ['roCompat', 0x800, 'replica'],
  ['incompat', 0x1, 'compression'],
  ['incompat', 0x1000, 'dirdata'],
];
/** Zeroing free blocks changes no metadata; only what makes the bitmaps untrustworthy matters. */
const UNSAFE_ZERO: ['compat' | 'incompat' | 'roCompat', number, string][] = [
  ['incompat', 0x8, 'journal_dev'],
  ['roCompat', 0x200, 'bigalloc'],
  ['incompat', 0x100, 'mmp'],
  ['roCompat', 0x80, 'snapshot'],
  ['roCompat', 0x4000, 'shared_blocks'],
];

export type GatePurpose = 'write' | 'zero';

export interface JournalState {
  kind: 'none' | 'internal' | 'external';
  needsRecovery: boolean;
  logEmpty: boolean;
  errno: number;
}

/** Reads the journal superblock of an internal journal (ext4-brief §13.1). */
export function journalState(vol: Volume): JournalState {
  const geo = vol.geo;
  const needsRecovery = (geo.incompat & INCOMPAT_RECOVER) !== 0;
  if (!(geo.compat & 0x4)) return { kind: 'none', needsRecovery, logEmpty: true, errno: 0 };
  const jino = le32(vol.sb, S_JOURNAL_INUM);
  if (jino === 0) return { kind: 'external', needsRecovery, logEmpty: !needsRecovery, errno: 0 };
  const raw = vol.inode(jino);
  const { runs } = mapInode(vol, jino, raw);
  const first = runs.find((r) => r.logical === 0);
  if (!first) throw new UlfsError('EXT_BAD_INODE', `journal inode ${jino} has no block 0`, { ino: jino });
  const jsb = vol.readUncached(first.physical);
  if (be32(jsb, 0) !== JBD2_MAGIC) {
    throw new UlfsError(
      'EXT_BAD_SUPERBLOCK',
      `journal superblock at block ${hex(first.physical)} has magic ${hex(be32(jsb, 0))}`,
    );
  }
  return {
    kind: 'internal',
    needsRecovery,
    logEmpty: be32(jsb, JSB_START) === 0,
    errno: be32(jsb, JSB_ERRNO) | 0,
  };
}

function featureName(field: string, bit: number): string {
  return `unknown ${field} feature ${hex(bit)}`;
}

/** Non-zero entries in the orphan file (compat orphan_file), bounded by its size. */
function orphanFileHasEntries(vol: Volume): boolean {
  const ino = le32(vol.sb, S_ORPHAN_FILE_INUM);
  if (!ino) return false;
  const raw = vol.inode(ino);
  if (fileType(raw) !== S_IFREG || !hasBlockMap(raw, vol.bs, vol.geo.hugeFile)) return false;
  const { runs } = mapInode(vol, ino, raw);
  for (const r of runs) {
    for (let k = 0; k < r.length && k < 4096; k++) {
      const b = vol.readUncached(r.physical + k);
      // the last 8 bytes are the {magic, checksum} tail
      for (let off = 0; off < vol.bs - 8; off += 4) if (le32(b, off) !== 0) return true;
    }
  }
  return false;
}

/**
 * Throws unless the filesystem can be changed safely now. `write`: unlink/rmdir/rewrite;
 * `zero`: zeroing free blocks (no metadata changes).
 */
export function assertWritableVolume(vol: Volume, purpose: GatePurpose = 'write'): void {
  const geo = vol.geo;
  const fields = { compat: geo.compat, incompat: geo.incompat, roCompat: geo.roCompat };
  for (const [field, bit, name] of purpose === 'write' ? UNSAFE_WRITE : UNSAFE_ZERO) {
    if (fields[field] & bit) {
      throw new UlfsError(
        'EXT_UNSAFE_FEATURE',
        `the filesystem uses ${name}, which this tool cannot ${purpose === 'write' ? 'modify' : 'zero'} safely`,
        {
          feature: name,
        },
      );
    }
  }
  const unknownIn = geo.incompat & ~KNOWN_INCOMPAT;
  if (unknownIn)
    throw new UlfsError('EXT_UNSAFE_FEATURE', `the filesystem uses ${featureName('incompat', unknownIn)}`, {
      feature: hex(unknownIn),
    });
  const unknownRo = geo.roCompat & ~KNOWN_RO_COMPAT;
  if (unknownRo)
    throw new UlfsError('EXT_UNSAFE_FEATURE', `the filesystem uses ${featureName('ro_compat', unknownRo)}`, {
      feature: hex(unknownRo),
    });
  if (geo.creatorOs !== 0) {
    throw new UlfsError(
      'EXT_UNSAFE_FEATURE',
      `the filesystem was created by OS ${geo.creatorOs}, not Linux (different inode layout)`,
      {
        feature: 'creator_os',
      },
    );
  }
  if (geo.metadataCsum && vol.sb[S_CHECKSUM_TYPE] !== 1) {
    throw new UlfsError(
      'EXT_UNSAFE_FEATURE',
      `metadata_csum with checksum type ${vol.sb[S_CHECKSUM_TYPE]} (only crc32c = 1 is known)`,
      {
        feature: 'checksum_type',
      },
    );
  }
  if (geo.metadataCsum && !verifySuperblockCsum(vol.sb)) {
    throw new UlfsError('EXT_BAD_CHECKSUM', `the superblock checksum does not match`);
  }
  const fix = 'boot the system and shut it down cleanly, or run e2fsck -fy on the filesystem, then retry';
  const js = journalState(vol);
  if (js.needsRecovery) {
    throw new UlfsError(
      'EXT_JOURNAL_DIRTY',
      `the journal needs recovery (the filesystem was not unmounted cleanly): ${fix}`,
      { ...js },
    );
  }
  if (!js.logEmpty) {
    throw new UlfsError(
      'EXT_JOURNAL_DIRTY',
      `the journal holds transactions (s_start != 0) although needs_recovery is clear: ${fix}`,
      { ...js },
    );
  }
  if (js.errno !== 0) {
    throw new UlfsError('EXT_JOURNAL_DIRTY', `the journal was aborted (errno ${js.errno}): ${fix}`, {
      ...js,
    });
  }
  if (geo.lastOrphan !== 0 || geo.state & STATE_ORPHAN || geo.roCompat & RO_COMPAT_ORPHAN_PRESENT) {
    throw new UlfsError(
      'EXT_ORPHANS',
      `the filesystem has orphan inodes to process (s_last_orphan ${geo.lastOrphan}): ${fix}`,
      {
        lastOrphan: geo.lastOrphan,
      },
    );
  }
  if (geo.compat & COMPAT_ORPHAN_FILE && orphanFileHasEntries(vol)) {
    throw new UlfsError('EXT_ORPHANS', `the orphan file is not empty: ${fix}`);
  }
  if (!(geo.state & STATE_VALID) || geo.state & STATE_ERROR) {
    throw new UlfsError(
      'EXT_FS_NOT_CLEAN',
      `the filesystem state is ${hex(geo.state)} (not clean or has errors): run e2fsck -fy, then retry`,
      {
        state: geo.state,
      },
    );
  }
}
