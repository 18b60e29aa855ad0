/**
 * prune, step 2: carry out a plan.
 *
 * Order (every step before "commit" is covered by the undo log, IMAGE.ulfs-undo):
 *   1. safety gate on every filesystem we will touch (dirty journal, orphans, unsafe features);
 *   2. root fs: delete the module files and the directories they leave empty, delete the capture file,
 *      rewrite the module index files in place;
 *   3. each initramfs: stream it through the cpio filter (decompress, drop entries, replace indexes,
 *      recompress), spooled in memory up to the file's allocated size, then rewritten in place;
 *   4. sync (undo log first, then the image, both fsynced) and commit (remove the undo log);
 *   5. zero the free blocks of every changed fs (not logged: free blocks carry nothing, and the metadata
 *      is durable by now, so a crash here leaves a complete, valid prune);
 *   6. check the changed filesystems.
 */
import { JournaledDevice } from '../image/journaled.js';
import { SliceDevice, type BlockDevice } from '../image/blockdev.js';
import { ExtFs } from '../ext/fs.js';
import {
  assertConsistent,
  assertWritable,
  removePaths,
  rewriteFile,
  rewriteFileFromChunks,
  zeroFree,
  checkFs,
  type CheckReport,
} from '../ext/write/index.js';
import { filterInitramfs } from '../initramfs/index.js';
import { UlfsError } from '../errors.js';
import type { PrunePlan, PruneOptions } from './plan.js';
import type { FsEntry } from './discover.js';

export interface ApplyResult {
  rootfs: { removedFiles: number; removedDirs: number; bytesFreed: number; indexFilesWritten: number };
  initramfs: {
    path: string;
    partition: number;
    compression: string;
    sizeBefore: number;
    sizeAfter: number;
    modulesBefore: number;
    modulesAfter: number;
  }[];
  zero: {
    blocksScanned: number;
    blocksAlreadyZero: number;
    blocksZeroed: number;
    bytesWritten: number;
  } | null;
  check: { clean: boolean; findings: string[] };
  durations: Record<string, number>;
}

function timer(durations: Record<string, number>) {
  return async <T>(phase: string, fn: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      durations[phase] = Math.round(performance.now() - t0) / 1000 + (durations[phase] ?? 0);
    }
  };
}

/**
 * Collects a stream into memory, refusing once it passes `limit` bytes. The chunks stay as they came
 * (no concatenated copy: that would be the initramfs twice in memory).
 */
async function spool(
  stream: AsyncIterable<Buffer>,
  limit: number,
  what: string,
): Promise<{ chunks: Buffer[]; length: number }> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    n += chunk.length;
    if (n > limit) {
      throw new UlfsError(
        'PRUNE_WONT_FIT',
        `${what}: the new initramfs is larger than the space the old one had (${limit} bytes); ` +
          'try --initramfs-compression keep (or a stronger one), or --no-initramfs',
        { limit },
      );
    }
    parts.push(chunk);
  }
  return { chunks: parts, length: n };
}

/** Bytes allocated to a file: what an in-place rewrite may use. */
function allocatedBytes(fs: ExtFs, ino: number): number {
  const inode = fs.readInode(ino);
  let blocks = 0;
  for (const e of fs.mapFile(inode)) if (!e.unwritten) blocks += e.length;
  return blocks * fs.blockSize;
}

export async function applyPlan(
  imageDev: BlockDevice,
  plan: PrunePlan,
  opts: PruneOptions,
): Promise<ApplyResult> {
  const durations: Record<string, number> = {};
  const time = timer(durations);
  const touched = new Map<number, FsEntry>();
  touched.set(plan.root.number, plan.root);
  for (const i of plan.initramfs) touched.set(i.fs.number, i.fs);
  for (const f of touched.values()) assertWritable(f.ext!);
  // Deleting on an inconsistent filesystem can destroy what it keeps (a block claimed by a deleted
  // and a kept file would be freed, then zeroed): check first, refuse unless clean.
  await time('precheck', () => {
    for (const f of touched.values()) assertConsistent(f.ext!, f.label);
  });

  const jdev = new JournaledDevice(imageDev);
  // One ExtFs per touched partition, reading and writing through the journaled device.
  const open = new Map<number, ExtFs>();
  const extOf = (f: FsEntry): ExtFs => {
    let fs = open.get(f.number);
    if (!fs) {
      fs = ExtFs.open(new SliceDevice(jdev, f.partition.start, f.partition.size));
      open.set(f.number, fs);
    }
    return fs;
  };

  let committed = false;
  try {
    const rootFs = extOf(plan.root);
    const rootfs = await time('rootfs', () => {
      const paths = [...plan.removeFiles];
      if (plan.usedInImage) paths.push(plan.usedInImage);
      const r = removePaths(rootFs, paths, { pruneEmptyDirs: true });
      let written = 0;
      for (const [path, data] of plan.indexWrites) {
        rewriteFile(rootFs, rootFs.lookup(path), data);
        written++;
      }
      jdev.sync();
      return {
        removedFiles: r.removedFiles,
        removedDirs: r.removedDirs,
        bytesFreed: r.bytesFreed,
        indexFilesWritten: written,
      };
    });

    const initramfs: ApplyResult['initramfs'] = [];
    for (const ip of plan.initramfs) {
      await time('initramfs', async () => {
        const fs = extOf(ip.fs);
        const ino = fs.lookup(ip.info.path);
        const limit = allocatedBytes(fs, ino);
        const { output, done } = filterInitramfs(fs.createReadStream(ino), {
          decide: (e) => {
            if (ip.drop.has(e.name)) return 'drop';
            const r = ip.replace.get(e.name);
            return r ? { replace: r } : 'keep';
          },
          compression: opts.initramfsCompression ?? 'keep',
          level: opts.initramfsLevel,
        });
        const [data] = await Promise.all([spool(output as AsyncIterable<Buffer>, limit, ip.info.path), done]);
        await rewriteFileFromChunks(fs, ino, data.chunks);
        jdev.sync();
        initramfs.push({
          path: ip.info.path,
          partition: ip.info.partition,
          compression:
            opts.initramfsCompression && opts.initramfsCompression !== 'keep'
              ? opts.initramfsCompression
              : ip.compression,
          sizeBefore: ip.info.size,
          sizeAfter: data.length,
          modulesBefore: ip.modulesBefore,
          modulesAfter: ip.modulesAfter,
        });
      });
    }

    await time('commit', () => jdev.commit());
    committed = true;

    // Zeroing and checking go straight to the image: the change is complete and durable.
    let zero: ApplyResult['zero'] = null;
    if (opts.zero !== false) {
      zero = await time('zero', () => {
        const total = { blocksScanned: 0, blocksAlreadyZero: 0, blocksZeroed: 0, bytesWritten: 0 };
        for (const f of touched.values()) {
          const fs = ExtFs.open(new SliceDevice(imageDev, f.partition.start, f.partition.size));
          const z = zeroFree(fs, {
            onProgress:
              opts.onProgress && ((done: number, all: number) => opts.onProgress!('zero', done, all)),
          });
          total.blocksScanned += z.blocksScanned;
          total.blocksAlreadyZero += z.blocksAlreadyZero;
          total.blocksZeroed += z.blocksZeroed;
          total.bytesWritten += z.bytesWritten;
        }
        imageDev.sync();
        return total;
      });
    }

    const check = await time('check', () => {
      const findings: string[] = [];
      for (const f of touched.values()) {
        const r: CheckReport = checkFs(
          ExtFs.open(new SliceDevice(imageDev, f.partition.start, f.partition.size)),
        );
        for (const x of r.findings) findings.push(`${f.label}: ${x.message}`);
      }
      return { clean: findings.length === 0, findings };
    });

    return { rootfs, initramfs, zero, check, durations };
  } finally {
    if (!committed) jdev.close(); // leaves the undo log: `ulfs-offline undo IMAGE` restores the image
  }
}
