/**
 * `ulfs-offline initramfs --file HOSTFILE [--json]`: lists the segments (offset, length, compression,
 * entry count) and entries (path, mode, size) of an initramfs. The `initramfs IMAGE PATH [--part N]`
 * form reads the file from inside an image; it is wired by the prune/image layer through
 * runInitramfsList(input, io, json), which takes any byte stream.
 */
import * as fs from 'node:fs';
import { UlfsError } from '../errors.js';
import { listInitramfs, type ByteInput } from '../initramfs/index.js';
import { printJson, type CliIo } from './io.js';
import type { Register } from './program.js';

function modeString(mode: number): string {
  const t = (mode >> 12) & 0xf;
  const c =
    ({ 4: 'd', 8: '-', 10: 'l', 2: 'c', 6: 'b', 1: 'p', 12: 's' } as Record<number, string>)[t] ?? '?';
  const rwx = (b: number): string => `${b & 4 ? 'r' : '-'}${b & 2 ? 'w' : '-'}${b & 1 ? 'x' : '-'}`;
  return c + rwx((mode >> 6) & 7) + rwx((mode >> 3) & 7) + rwx(mode & 7);
}

/** Lists an initramfs read from `input` to io.stdout, as a table or as JSON. */
export async function runInitramfsList(input: ByteInput, io: CliIo, json: boolean): Promise<void> {
  const { segments, entries } = await listInitramfs(input);
  if (json) {
    printJson(io, {
      segments: segments.map((s) => ({
        index: s.index,
        offset: s.offset,
        length: s.length,
        compression: s.compression,
        uncompressedLength: s.uncompressedLength,
        archives: s.archives,
        entries: s.entries,
      })),
      entries: entries.map((e) => ({ path: e.name, mode: e.mode, size: e.size, segment: e.segment })),
    });
    return;
  }
  const lines: string[] = [];
  lines.push('segment  offset      length      compression  entries');
  for (const s of segments) {
    lines.push(
      `${String(s.index).padEnd(8)} ${('0x' + s.offset.toString(16)).padEnd(11)} ${String(s.length).padEnd(11)} ${s.compression.padEnd(12)} ${s.entries}`,
    );
  }
  lines.push('');
  for (const e of entries) lines.push(`${modeString(e.mode)} ${String(e.size).padStart(10)} ${e.name}`);
  io.stdout.write(lines.join('\n') + '\n');
}

export const registerInitramfs: Register = (program, io) => {
  program
    .command('initramfs')
    .description('list the segments and entries of an initramfs (--file: a file on this host)')
    .argument('[image]', 'disk image (not wired yet: use --file)')
    .argument('[path]', 'path of the initramfs inside the image')
    .option('--file <hostfile>', 'an initramfs file on this host')
    .option('--part <n>', 'partition number')
    .option('--json', 'machine-readable output')
    .action(
      async (image: string | undefined, _path: string | undefined, o: { file?: string; json?: boolean }) => {
        if (o.file) {
          if (!fs.existsSync(o.file))
            throw new UlfsError('IMAGE_NOT_FOUND', `no such file: ${o.file}`, { path: o.file });
          await runInitramfsList(fs.createReadStream(o.file, { highWaterMark: 1 << 20 }), io, !!o.json);
          return;
        }
        if (image) {
          throw new UlfsError('USAGE', 'initramfs IMAGE PATH is not available yet; use --file HOSTFILE');
        }
        throw new UlfsError('USAGE', 'initramfs needs --file HOSTFILE (or IMAGE PATH)');
      },
    );
};
