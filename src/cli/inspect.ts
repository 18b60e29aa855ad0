/** `ulfs-offline inspect IMAGE [--json]`: what is in the image, read-only. */
import type { Register } from './program.js';
import { printJson } from './io.js';
import { openImage } from '../image/partitions.js';
import { discover, type Discovery, type FsEntry } from '../prune/discover.js';
import { basename, humanBytes } from './format.js';

function journalText(f: FsEntry): string {
  const j = f.ext!.journalState();
  if (j.kind === 'none') return 'none';
  if (j.needsRecovery || !j.logEmpty) return 'needs recovery';
  return j.errno !== 0 ? `aborted (errno ${j.errno})` : 'clean';
}

export function inspectJson(d: Discovery) {
  return {
    table: {
      kind: d.table.kind,
      sectorSize: d.table.sectorSize,
      diskId: d.table.diskGuid ?? null,
      warnings: d.table.warnings,
    },
    partitions: d.filesystems.map((f) => ({
      number: f.number,
      name: f.label,
      start: f.partition.start,
      size: f.partition.size,
      type: f.partition.type,
      typeName: f.partition.typeName ?? null,
      partName: f.partition.name ?? null,
      bootable: f.partition.bootable ?? false,
      role: f.roles.length === 0 ? null : f.roles.join('+'),
      roles: f.roles,
      error: f.error ? { code: f.error.code, message: f.error.message } : null,
      fs: f.ext
        ? {
            type: f.ext.fsType,
            label: f.ext.sb.volumeName,
            uuid: f.ext.sb.uuid,
            blockSize: f.ext.blockSize,
            blocks: f.ext.sb.blocksCount,
            freeBlocks: f.ext.sb.freeBlocksCount,
            inodes: f.ext.sb.inodesCount,
            freeInodes: f.ext.sb.freeInodesCount,
            features: f.ext.usedFeatures(),
            journal: journalText(f),
          }
        : null,
    })),
    kernels: d.kernels.map((k) => ({
      version: k.version,
      partition: k.partition,
      moduleDir: k.moduleDir,
      moduleCount: k.moduleCount,
      moduleBytes: k.moduleBytes,
      image: k.image ?? null,
    })),
    initramfs: d.initramfs.map((i) => ({
      path: i.path,
      partition: i.partition,
      size: i.size,
      version: i.version,
    })),
  };
}

export const registerInspect: Register = (program, io) => {
  program
    .command('inspect')
    .description('show partitions, filesystems, kernels and initramfs files (read-only)')
    .argument('<image>', 'disk image file')
    .option('--json', 'machine-readable output')
    .action((image: string, opts: { json?: boolean }) => {
      const img = openImage(image, 'r');
      try {
        const d = discover(img.dev, basename(image));
        if (opts.json) return printJson(io, inspectJson(d));
        const out: string[] = [];
        const t = d.table;
        out.push(
          `${basename(image)}: ${t.kind === 'none' ? 'no partition table (bare filesystem)' : `${t.kind.toUpperCase()} partition table`}, ${t.sectorSize}-byte sectors, ${humanBytes(img.dev.size)}`,
        );
        for (const w of t.warnings) out.push(`  warning: ${w}`);
        for (const f of d.filesystems) {
          const p = f.partition;
          const type = `${p.type}${p.typeName ? ` (${p.typeName})` : ''}`;
          const roles = f.roles.length ? `  [${f.roles.join(', ')}]` : '';
          out.push(
            `  ${f.label}  start ${p.start}  size ${humanBytes(p.size)}  type ${type}${p.name ? `  name "${p.name}"` : ''}${roles}`,
          );
          if (f.ext) {
            const s = f.ext.sb;
            out.push(
              `      ${f.ext.fsType}  label "${s.volumeName}"  UUID ${s.uuid}  block size ${f.ext.blockSize}  journal ${journalText(f)}`,
            );
            out.push(
              `      blocks ${s.blocksCount} (free ${s.freeBlocksCount})  inodes ${s.inodesCount} (free ${s.freeInodesCount})`,
            );
            out.push(`      features: ${f.ext.usedFeatures().join(' ')}`);
          } else if (f.error) {
            out.push(`      unreadable: ${f.error.code}: ${f.error.message}`);
          }
        }
        out.push('kernels:');
        if (d.kernels.length === 0) out.push('  (none found)');
        for (const k of d.kernels) {
          out.push(
            `  ${k.version}  ${k.moduleDir} on ${basename(image)}${k.partition || ''}: ${k.moduleCount} module files, ${humanBytes(k.moduleBytes)}${k.image ? `  kernel ${k.image}` : ''}`,
          );
        }
        out.push('initramfs:');
        if (d.initramfs.length === 0) out.push('  (none found)');
        for (const i of d.initramfs)
          out.push(`  ${i.path} on ${basename(image)}${i.partition || ''}: ${i.size} bytes`);
        io.stdout.write(out.join('\n') + '\n');
      } finally {
        img.close();
      }
    });
};
