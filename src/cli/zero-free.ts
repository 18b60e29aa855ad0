/**
 * `ulfs-offline zero-free IMAGE [--part N | --all] [--dry-run] [--json] [--journal]`: overwrite with
 * zeros every free block of an ext filesystem that is not zero yet (zerofree semantics), so the image
 * compresses well and sparse copies stay sparse. Free blocks carry nothing, so this is not logged.
 */
import type { Register } from './program.js';
import { parsePartNumber, printJson, type CliIo } from './io.js';
import { openImage } from '../image/partitions.js';
import { sumZeroReports, zeroFree, type ZeroReport } from '../ext/write/index.js';
import { selectTargets } from './rm.js';

export const registerZeroFree: Register = (program, io: CliIo) => {
  program
    .command('zero-free')
    .description('overwrite free blocks of ext filesystems in IMAGE with zeros (like zerofree)')
    .argument('<image>', 'the disk image file (or a bare filesystem image)')
    .option('--part <n>', 'partition number', parsePartNumber)
    .option('--all', 'every ext filesystem in the image')
    .option('--journal', 'also zero the log area of a clean journal')
    .option('--dry-run', 'count only, write nothing')
    .option('--json', 'print the report as JSON')
    .action(
      (
        image: string,
        opts: { part?: number; all?: boolean; journal?: boolean; dryRun?: boolean; json?: boolean },
      ) => {
        const img = openImage(image, opts.dryRun ? 'r' : 'rw');
        const per: ({ filesystem: string } & ZeroReport)[] = [];
        try {
          const targets = selectTargets(image, img.dev, img.table, { part: opts.part, all: opts.all });
          for (const t of targets) {
            let last = -1;
            const r = zeroFree(t.dev, {
              dryRun: opts.dryRun === true,
              journal: opts.journal === true,
              onProgress:
                io.isTTY && !opts.json
                  ? (done, total) => {
                      const pct = Math.floor((100 * done) / Math.max(1, total));
                      if (pct !== last) io.stderr.write(`\r${t.label}: ${pct}%`);
                      last = pct;
                    }
                  : undefined,
            });
            if (io.isTTY && !opts.json) io.stderr.write('\n');
            per.push({ filesystem: t.label, ...r });
          }
        } finally {
          img.close();
        }
        const total = sumZeroReports(per);
        if (opts.json) printJson(io, { dryRun: opts.dryRun === true, ...total, filesystems: per });
        else
          for (const r of per) {
            io.stdout.write(
              `${r.filesystem}: ${r.blocksScanned} free blocks scanned, ${r.blocksAlreadyZero} already zero, ` +
                `${r.blocksZeroed} ${opts.dryRun ? 'to zero' : 'zeroed'} (${r.bytesWritten} bytes written)\n`,
            );
          }
      },
    );
};
