/**
 * A read-only consistency checker for what the writer touches (ext4-brief §10.1, §11): it recomputes
 * the block and inode bitmaps from the inode tables and extent/indirect trees, compares them with the
 * on-disk bitmaps, group counters and superblock counters, checks link counts and directory entries,
 * i_blocks, xattr refcounts, and verifies every checksum. It returns findings; it never writes.
 *
 * It is not e2fsck: it checks the invariants e2fsck -fn reports on for the kind of changes this tool
 * makes, so that after a prune "check clean" and "e2fsck -fn clean" agree.
 */
import { le32 } from '../../binary/bytes.js';
import { isUlfsError } from '../../errors.js';
import {
  blockBitmapCsum,
  dxCountOffset,
  DX_ROOT_COUNT_OFFSET,
  hasDirTail,
  inodeBitmapCsum,
  verifyBitmapCsum,
  verifyDirLeafCsum,
  verifyDxCsum,
  verifyExtentBlockCsum,
  verifyGroupDescCsum,
  verifyInodeCsum,
  verifySuperblockCsum,
  verifyXattrBlockCsum,
} from '../checksums.js';
import { countZeroBits, isBlockUninit, isInodeUninit, setBit, testBit } from '../bitmaps.js';
import {
  BG_FREE_BLOCKS_COUNT_HI,
  BG_FREE_BLOCKS_COUNT_LO,
  BG_FREE_INODES_COUNT_HI,
  BG_FREE_INODES_COUNT_LO,
  BG_ITABLE_UNUSED_HI,
  BG_ITABLE_UNUSED_LO,
  BG_USED_DIRS_COUNT_HI,
  BG_USED_DIRS_COUNT_LO,
  groupBlockCount,
  groupFirstBlock,
  superAndGdtRuns,
  S_ORPHAN_FILE_INUM,
} from './geometry.js';
import {
  fileAcl,
  fileType,
  flags,
  FL_EXTENTS,
  FL_INDEX,
  FL_INLINE_DATA,
  generation,
  hasBlockMap,
  iBlocks512,
  links,
  mapInode,
  S_IFDIR,
} from './mapping.js';
import { parseDirBlock } from './dir.js';
import { XATTR_MAGIC } from './remove.js';
import { journalState } from './safety.js';
import type { Volume } from './volume.js';

export interface CheckFinding {
  code: string;
  message: string;
}

export interface CheckReport {
  clean: boolean;
  findings: CheckFinding[];
  /** What was examined. */
  stats: { inodesInUse: number; blocksInUse: number; directories: number };
}

const MAX_FINDINGS = 1000;
const RESIZE_INO = 7;
const DIR_NLINK = 0x20;

export function checkVolume(vol: Volume): CheckReport {
  const geo = vol.geo;
  const findings: CheckFinding[] = [];
  const add = (code: string, message: string): void => {
    if (findings.length < MAX_FINDINGS) findings.push({ code, message });
  };
  const S = geo.seed;

  // --- journal / orphans: e2fsck -n would not be clean
  try {
    const js = journalState(vol);
    if (js.needsRecovery) add('JOURNAL_NEEDS_RECOVERY', 'the journal needs recovery');
    else if (!js.logEmpty) add('JOURNAL_NOT_EMPTY', 'needs_recovery is clear but the journal has data');
    if (js.errno) add('JOURNAL_ABORTED', `the journal has errno ${js.errno}`);
  } catch (e) {
    add(isUlfsError(e) ? e.code : 'JOURNAL', `journal: ${(e as Error).message}`);
  }
  if (geo.lastOrphan) add('ORPHANS', `s_last_orphan is ${geo.lastOrphan}`);

  // --- superblock and descriptors
  if (geo.metadataCsum && !verifySuperblockCsum(vol.sb)) add('SB_CSUM', 'superblock checksum does not match');
  for (let g = 0; g < geo.groupCount; g++) {
    if (geo.gdtCsum && !verifyGroupDescCsum(vol.sb, S, g, vol.desc(g)))
      add('GD_CSUM', `group descriptor ${g} checksum does not match`);
  }

  // --- expected block usage: fixed metadata
  const used = new Uint8Array(Math.ceil(geo.blocksCount / 8));
  const mark = (b: number): boolean => {
    if (testBit(used, b)) return false;
    setBit(used, b);
    return true;
  };
  for (let g = 0; g < geo.groupCount; g++) {
    for (const [s, c] of superAndGdtRuns(geo, g)) for (let k = 0; k < c; k++) mark(s + k);
    const l = vol.locs[g]!;
    for (const b of [l.blockBitmap, l.inodeBitmap]) {
      if (b < geo.blocksCount) mark(b);
      else add('GD_LOCATION', `group ${g} bitmap at ${b} is outside the filesystem`);
    }
    for (let k = 0; k < geo.itableBlocks; k++) if (l.inodeTable + k < geo.blocksCount) mark(l.inodeTable + k);
  }

  // --- walk inode tables
  const inUse = new Uint8Array(Math.ceil((geo.inodesCount + 1) / 8));
  const refs = new Uint32Array(geo.inodesCount + 1);
  const isDir = new Uint8Array(Math.ceil((geo.inodesCount + 1) / 8));
  const xattrRefs = new Map<number, number>();
  const dirsPerGroup = new Uint32Array(geo.groupCount);
  const dirInodes: number[] = [];
  let inodesInUse = 0;
  const orphanFileIno = le32(vol.sb, S_ORPHAN_FILE_INUM);
  for (let g = 0; g < geo.groupCount; g++) {
    const l = vol.locs[g]!;
    if (isInodeUninit(geo, l)) continue;
    const unused = geo.gdtCsum ? vol.descCount(vol.desc(g), BG_ITABLE_UNUSED_LO, BG_ITABLE_UNUSED_HI) : 0;
    const live = Math.max(0, geo.ipg - unused);
    if (live === 0) continue;
    const bytes = live * geo.inodeSize;
    const table = vol.dev.read(l.inodeTable * geo.bs, Math.ceil(bytes / geo.bs) * geo.bs);
    for (let i = 0; i < live; i++) {
      const ino = g * geo.ipg + i + 1;
      const raw = table.subarray(i * geo.inodeSize, (i + 1) * geo.inodeSize);
      const n = links(raw);
      if (n === 0 && ino >= geo.firstIno) continue;
      if (n === 0 && ino !== RESIZE_INO && ino !== geo.journalInum) continue;
      if (geo.metadataCsum && !verifyInodeCsum(S, ino, raw, geo.inodeSize))
        add('INODE_CSUM', `inode ${ino} checksum does not match`);
      setBit(inUse, ino);
      inodesInUse++;
      const dir = fileType(raw) === S_IFDIR;
      if (dir) {
        setBit(isDir, ino);
        dirsPerGroup[g]!++;
        dirInodes.push(ino);
      }
      let owned = 0;
      if (
        hasBlockMap(raw, geo.bs, geo.hugeFile) &&
        (raw.subarray(0x28, 0x28 + 60).some((x) => x !== 0) || flags(raw) & FL_EXTENTS)
      ) {
        try {
          // the cached inode copy in vol must match this raw: map from a private view
          const map = mapInode(vol, ino, raw);
          for (const r of map.runs) {
            for (let k = 0; k < r.length; k++) {
              if (!mark(r.physical + k) && ino !== RESIZE_INO)
                add('BLOCK_CLAIMED_TWICE', `block ${r.physical + k} (inode ${ino}) is claimed twice`);
            }
            owned += r.length;
          }
          for (const b of map.treeBlocks) {
            if (!mark(b) && ino !== RESIZE_INO)
              add('BLOCK_CLAIMED_TWICE', `tree block ${b} (inode ${ino}) is claimed twice`);
            if (
              map.extents &&
              geo.metadataCsum &&
              !verifyExtentBlockCsum(S, ino, generation(raw), vol.block(b))
            ) {
              add('EXTENT_CSUM', `inode ${ino} extent block ${b} checksum does not match`);
            }
          }
          owned += map.treeBlocks.length;
        } catch (e) {
          add(isUlfsError(e) ? e.code : 'MAP', `inode ${ino}: ${(e as Error).message}`);
        }
      }
      const acl = fileAcl(raw);
      if (acl) {
        if (acl >= geo.blocksCount || acl < geo.firstDataBlock)
          add('XATTR_BLOCK', `inode ${ino} xattr block ${acl} is out of range`);
        else {
          const prev = xattrRefs.get(acl) ?? 0;
          xattrRefs.set(acl, prev + 1);
          if (prev === 0 && !mark(acl))
            add('BLOCK_CLAIMED_TWICE', `xattr block ${acl} is also used as another block`);
          owned++;
        }
      }
      if (ino !== RESIZE_INO && iBlocks512(raw, geo.bs, geo.hugeFile) !== owned * (geo.bs / 512)) {
        add(
          'I_BLOCKS',
          `inode ${ino} i_blocks is ${iBlocks512(raw, geo.bs, geo.hugeFile)}, should be ${owned * (geo.bs / 512)}`,
        );
      }
    }
  }

  // --- xattr blocks: magic, checksum, refcount
  for (const [blk, count] of xattrRefs) {
    const b = vol.readUncached(blk);
    if (le32(b, 0) !== XATTR_MAGIC) {
      add('XATTR_MAGIC', `xattr block ${blk} has a bad magic`);
      continue;
    }
    if (geo.metadataCsum && !verifyXattrBlockCsum(S, blk, b))
      add('XATTR_CSUM', `xattr block ${blk} checksum does not match`);
    if (le32(b, 4) !== count)
      add('XATTR_REFCOUNT', `xattr block ${blk} has reference count ${le32(b, 4)}, should be ${count}`);
  }

  // --- directories: entries, checksums, reference counts
  // entries inside inline-data directories are not parsed: reference counts are then incomplete
  let refsComplete = true;
  for (const dino of dirInodes) {
    const raw = vol.inode(dino);
    if (flags(raw) & FL_INLINE_DATA) refsComplete = false;
    if (!hasBlockMap(raw, geo.bs, geo.hugeFile)) continue;
    let runs;
    try {
      runs = mapInode(vol, dino, raw).runs.sort((a, b) => a.logical - b.logical);
    } catch {
      continue; // already reported
    }
    const gen = generation(raw);
    const indexed = (flags(raw) & FL_INDEX) !== 0;
    for (const r of runs) {
      if (r.unwritten) continue;
      for (let k = 0; k < r.length; k++) {
        const blk = r.physical + k;
        const b = vol.readUncached(blk);
        const co = indexed ? (r.logical + k === 0 ? DX_ROOT_COUNT_OFFSET : dxCountOffset(b)) : null;
        if (geo.metadataCsum) {
          if (co !== null && !hasDirTail(b)) {
            if (!verifyDxCsum(S, dino, gen, b, co))
              add('DX_CSUM', `directory ${dino} index block ${blk} checksum does not match`);
          } else if (hasDirTail(b)) {
            if (!verifyDirLeafCsum(S, dino, gen, b))
              add('DIR_CSUM', `directory ${dino} block ${blk} checksum does not match`);
          } else add('DIR_NO_TAIL', `directory ${dino} block ${blk} has no checksum tail`);
        }
        let entries;
        try {
          entries = parseDirBlock(b, geo.bs, geo.hasFiletype, dino, blk);
        } catch (e) {
          add(isUlfsError(e) ? e.code : 'DIRENT', (e as Error).message);
          continue;
        }
        for (const e of entries) {
          if (!e.ino) continue;
          if (e.ino > geo.inodesCount) {
            add(
              'DIRENT_BAD_INODE',
              `entry '${e.name}' in directory ${dino} points to inode ${e.ino}, out of range`,
            );
            continue;
          }
          if (!testBit(inUse, e.ino))
            add(
              'DIRENT_UNUSED_INODE',
              `entry '${e.name}' in directory ${dino} has deleted/unused inode ${e.ino}`,
            );
          refs[e.ino]!++;
        }
      }
    }
  }
  const dirNlink = (geo.roCompat & DIR_NLINK) !== 0;
  for (let ino = 1; refsComplete && ino <= geo.inodesCount; ino++) {
    if (!testBit(inUse, ino)) continue;
    if (ino < geo.firstIno && ino !== 2) continue;
    if (ino === orphanFileIno) continue;
    const raw = vol.inode(ino);
    const n = links(raw);
    const r = refs[ino]!;
    if (r === 0) add('UNATTACHED_INODE', `inode ${ino} is in use but no directory entry refers to it`);
    else if (n !== r && !(testBit(isDir, ino) && dirNlink && n === 1))
      add('LINK_COUNT', `inode ${ino} ref count is ${n}, should be ${r}`);
  }

  // --- bitmaps and counters
  let sumFreeBlocks = 0;
  let sumFreeInodes = 0;
  let blocksInUse = 0;
  for (let g = 0; g < geo.groupCount; g++) {
    const l = vol.locs[g]!;
    const d = vol.desc(g);
    const first = groupFirstBlock(geo, g);
    const nb = groupBlockCount(geo, g);
    let onDisk: Buffer;
    try {
      onDisk = vol.blockBitmap(g);
    } catch (e) {
      add(isUlfsError(e) ? e.code : 'BITMAP', (e as Error).message);
      continue;
    }
    if (!isBlockUninit(geo, l)) {
      if (geo.metadataCsum && !verifyBitmapCsum(d, 'block', blockBitmapCsum(S, onDisk, geo.cpg))) {
        add('BBM_CSUM', `group ${g} block bitmap does not match checksum`);
      }
      if (countZeroBits(onDisk.subarray(geo.bpg >>> 3), geo.bs * 8 - geo.bpg) !== 0 && geo.bpg % 8 === 0) {
        add('BITMAP_PADDING', `padding at end of block bitmap of group ${g} is not set`);
      }
    }
    const plus: number[] = [];
    const minus: number[] = [];
    let computedFree = 0;
    for (let i = 0; i < nb; i++) {
      const b = first + i;
      const want = testBit(used, b);
      const have = testBit(onDisk, i);
      if (!want) computedFree++;
      else blocksInUse++;
      if (want && !have) plus.push(b);
      else if (!want && have) minus.push(b);
    }
    if (plus.length || minus.length) {
      const show = (a: number[], s: string): string =>
        a.length ? ` ${s}${a.slice(0, 8).join(` ${s}`)}${a.length > 8 ? ' …' : ''}` : '';
      add(
        'BLOCK_BITMAP_DIFF',
        `block bitmap differences in group ${g}:${show(plus, '+')}${show(minus, '-')}`,
      );
    }
    const descFree = vol.descCount(d, BG_FREE_BLOCKS_COUNT_LO, BG_FREE_BLOCKS_COUNT_HI);
    if (descFree !== computedFree)
      add(
        'GROUP_FREE_BLOCKS',
        `free blocks count wrong for group ${g} (${descFree}, counted=${computedFree})`,
      );
    sumFreeBlocks += computedFree;

    // inodes
    let ibm: Buffer;
    try {
      ibm = vol.inodeBitmap(g);
    } catch (e) {
      add(isUlfsError(e) ? e.code : 'BITMAP', (e as Error).message);
      continue;
    }
    if (
      !isInodeUninit(geo, l) &&
      geo.metadataCsum &&
      !verifyBitmapCsum(d, 'inode', inodeBitmapCsum(S, ibm, geo.ipg))
    ) {
      add('IBM_CSUM', `group ${g} inode bitmap does not match checksum`);
    }
    const iplus: number[] = [];
    const iminus: number[] = [];
    let freeInodes = 0;
    for (let i = 0; i < geo.ipg; i++) {
      const ino = g * geo.ipg + i + 1;
      const want = testBit(inUse, ino) || ino < geo.firstIno;
      const have = testBit(ibm, i);
      if (!want) freeInodes++;
      if (want && !have) iplus.push(ino);
      else if (!want && have) iminus.push(ino);
    }
    if (iplus.length || iminus.length) {
      add(
        'INODE_BITMAP_DIFF',
        `inode bitmap differences in group ${g}: ${[...iplus.map((x) => '+' + x), ...iminus.map((x) => '-' + x)].slice(0, 8).join(' ')}`,
      );
    }
    const descFreeI = vol.descCount(d, BG_FREE_INODES_COUNT_LO, BG_FREE_INODES_COUNT_HI);
    if (descFreeI !== freeInodes)
      add(
        'GROUP_FREE_INODES',
        `free inodes count wrong for group ${g} (${descFreeI}, counted=${freeInodes})`,
      );
    const dirs = vol.descCount(d, BG_USED_DIRS_COUNT_LO, BG_USED_DIRS_COUNT_HI);
    if (dirs !== dirsPerGroup[g])
      add('GROUP_USED_DIRS', `directories count wrong for group ${g} (${dirs}, counted=${dirsPerGroup[g]})`);
    if (geo.gdtCsum) {
      const unused = vol.descCount(d, BG_ITABLE_UNUSED_LO, BG_ITABLE_UNUSED_HI);
      if (unused > descFreeI) add('ITABLE_UNUSED', `group ${g} has invalid unused inodes count ${unused}`);
    }
    sumFreeInodes += freeInodes;
  }
  const sf = vol.superFree();
  if (sf.blocks !== sumFreeBlocks)
    add('SB_FREE_BLOCKS', `free blocks count wrong (${sf.blocks}, counted=${sumFreeBlocks})`);
  if (sf.inodes !== sumFreeInodes)
    add('SB_FREE_INODES', `free inodes count wrong (${sf.inodes}, counted=${sumFreeInodes})`);
  return {
    clean: findings.length === 0,
    findings,
    stats: { inodesInUse, blocksInUse, directories: dirInodes.length },
  };
}
