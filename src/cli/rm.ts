/**
 * `ulfs-offline rm IMAGE PATH... [--part N] [-r] [--dry-run] [--json]`: remove files (and with -r
 * directory trees) from an ext filesystem inside an image. Writes go through the undo log
 * (JournaledDevice): an interrupted run is put back with `ulfs-offline undo IMAGE`.
 *
 * Also exports the partition selection shared by `zero-free` and `check`: --part N, a bare
 * filesystem image, the only ext partition, or the root filesystem found by discovery.
 */
import type { Register } from './program.js';
import { parsePartNumber, printJson, type CliIo } from './io.js';
import { UlfsError } from '../errors.js';
import type { BlockDevice, FileDevice } from '../image/blockdev.js';
import { openImage, findPartition, openPartition, type PartitionTable } from '../image/partitions.js';
import { JournaledDevice } from '../image/journaled.js';
import { discover } from '../prune/discover.js';
import { assertConsistent, removePaths } from '../ext/write/index.js';

export interface Target {
  label: string;
  number: number;
  dev: BlockDevice;
}

function hasExtMagic(dev: BlockDevice): boolean {
  return dev.size >= 1024 + 0x3a && dev.read(1024 + 0x38, 2).readUInt16LE(0) === 0xef53;
}

/** Picks the filesystem(s) a command works on. */
export function selectTargets(
  image: string,
  dev: FileDevice,
  table: PartitionTable,
  opts: { part?: number; all?: boolean },
): Target[] {
  const labelOf = (n: number): string => (n === 0 ? image : `${image}${n}`);
  if (opts.part !== undefined) {
    const p = findPartition(table, opts.part);
    return [{ label: labelOf(p.number), number: p.number, dev: openPartition(dev, p) }];
  }
  const candidates: Target[] = [];
  for (const p of table.partitions) {
    if (p.extended || p.beyondEnd) continue;
    const slice = openPartition(dev, p);
    if (hasExtMagic(slice)) candidates.push({ label: labelOf(p.number), number: p.number, dev: slice });
  }
  if (candidates.length === 0) throw new UlfsError('FS_NOT_FOUND', `no ext filesystem in ${image}`);
  if (opts.all || candidates.length === 1) return candidates;
  const d = discover(dev, image, { countModules: false });
  if (d.root) {
    const root = candidates.find((c) => c.number === d.root!.number);
    if (root) return [root];
  }
  throw new UlfsError(
    'USAGE',
    `${image} has ${candidates.length} ext filesystems and no root was found: pass --part N`,
    {
      partitions: candidates.map((c) => c.number),
    },
  );
}

export const registerRm: Register = (program, io: CliIo) => {
  program
    .command('rm')
    .description('remove files (with -r: directory trees) from an ext filesystem in IMAGE, with an undo log')
    .argument('<image>', 'the disk image file (or a bare filesystem image)')
    .argument('<paths...>', 'absolute paths inside the filesystem')
    .option('--part <n>', 'partition number', parsePartNumber)
    .option('-r, --recursive', 'remove directories and their contents')
    .option('--prune-empty', 'then remove every directory the removals left empty')
    .option('--dry-run', 'report what would be removed, write nothing')
    .option('--json', 'print the report as JSON')
    .action(
      (
        image: string,
        paths: string[],
        opts: { part?: number; recursive?: boolean; pruneEmpty?: boolean; dryRun?: boolean; json?: boolean },
      ) => {
        const img = openImage(image, opts.dryRun ? 'r' : 'rw');
        let report;
        let label: string;
        try {
          const [t] = selectTargets(image, img.dev, img.table, { part: opts.part });
          label = t!.label;
          const ropts = { recursive: opts.recursive === true, pruneEmptyDirs: opts.pruneEmpty === true };
          if (opts.dryRun) {
            report = removePaths(t!.dev, paths, { ...ropts, dryRun: true });
          } else {
            assertConsistent(t!.dev, t!.label);
            const jdev = new JournaledDevice(t!.dev, { imagePath: image });
            try {
              report = removePaths(jdev, paths, ropts);
              jdev.commit();
            } finally {
              jdev.close();
            }
          }
        } finally {
          img.close();
        }
        if (opts.json) printJson(io, { filesystem: label, dryRun: opts.dryRun === true, ...report });
        else {
          io.stdout.write(
            `${opts.dryRun ? 'would remove' : 'removed'} ${report.removedFiles} file${report.removedFiles === 1 ? '' : 's'} and ` +
              `${report.removedDirs} director${report.removedDirs === 1 ? 'y' : 'ies'} from ${label}, ` +
              `freeing ${report.blocksFreed} blocks (${report.bytesFreed} bytes) and ${report.inodesFreed} inodes\n`,
          );
        }
      },
    );
};
