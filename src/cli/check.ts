/**
 * `ulfs-offline check IMAGE [--part N] [--json]`: read-only consistency check of an ext filesystem
 * (recomputed bitmaps and counters, link counts, every checksum). Exit 0 clean, 1 inconsistent.
 */
import type { Register } from './program.js';
import { setExitStatus } from './program.js';
import { parsePartNumber, printJson, type CliIo } from './io.js';
import { EXIT } from '../errors.js';
import { openImage } from '../image/partitions.js';
import { checkFs } from '../ext/write/index.js';
import { selectTargets } from './rm.js';

export const registerCheck: Register = (program, io: CliIo) => {
  program
    .command('check')
    .description('check an ext filesystem in IMAGE for consistency (read-only); exit 1 when it is not')
    .argument('<image>', 'the disk image file (or a bare filesystem image)')
    .option('--part <n>', 'partition number', parsePartNumber)
    .option('--json', 'print the findings as JSON')
    .action((image: string, opts: { part?: number; json?: boolean }) => {
      const img = openImage(image, 'r');
      let label: string;
      let r;
      try {
        const [t] = selectTargets(image, img.dev, img.table, { part: opts.part });
        label = t!.label;
        r = checkFs(t!.dev);
      } finally {
        img.close();
      }
      if (opts.json) printJson(io, { filesystem: label, ...r });
      else {
        for (const f of r.findings) io.stdout.write(`${label}: ${f.code}: ${f.message}\n`);
        io.stdout.write(
          `${label}: ${r.clean ? 'clean' : `${r.findings.length} problem${r.findings.length === 1 ? '' : 's'}`} ` +
            `(${r.stats.inodesInUse} inodes, ${r.stats.blocksInUse} blocks in use)\n`,
        );
      }
      if (!r.clean) setExitStatus(EXIT.inconsistent);
    });
};
