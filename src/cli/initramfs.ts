/**
 * `ulfs-offline initramfs --file HOSTFILE [--json]`: lists the segments (offset, length, compression,
 * entry count) and entries (path, mode, size) of an initramfs. The `initramfs IMAGE PATH [--part N]`
 * form reads the file from inside an image; it is wired by the prune/image layer through
 * runInitramfsList(input, io, json), which takes any byte stream.
 */
import * as fs from 'node:fs';
import { UlfsError } from '../errors.js';
import { listInitramfs, type ByteInput } from '../initramfs/index.js';
import { parsePartNumber, printJson, type CliIo } from './io.js';
import { openImage } from '../image/partitions.js';
import { discover, pickFilesystem } from '../prune/discover.js';
import { basename, modeString } from './format.js';
import type { Register } from './program.js';

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
    .argument('[image]', 'disk image')
    .argument('[path]', 'path of the initramfs inside the image (default: the only one found)')
    .option('--file <hostfile>', 'an initramfs file on this host')
    .option('--part <n>', 'partition number (default: the boot filesystem)', parsePartNumber)
    .option('--json', 'machine-readable output')
    .action(
      async (
        image: string | undefined,
        path: string | undefined,
        o: { file?: string; part?: number; json?: boolean },
      ) => {
        if (o.file) {
          if (!fs.existsSync(o.file))
            throw new UlfsError('IMAGE_NOT_FOUND', `no such file: ${o.file}`, { path: o.file });
          await runInitramfsList(fs.createReadStream(o.file, { highWaterMark: 1 << 20 }), io, !!o.json);
          return;
        }
        if (image) {
          const img = openImage(image, 'r');
          try {
            const d = discover(img.dev, basename(image), { countModules: false });
            let file = path;
            let part = o.part;
            if (file === undefined) {
              if (d.initramfs.length !== 1) {
                throw new UlfsError(
                  'USAGE',
                  d.initramfs.length === 0
                    ? 'no initramfs found in the image; name one: initramfs IMAGE PATH'
                    : `${d.initramfs.length} initramfs files (${d.initramfs.map((i) => i.path).join(', ')}): name one`,
                );
              }
              file = d.initramfs[0]!.path;
              part ??= d.initramfs[0]!.partition;
            }
            const fs = (part === undefined && d.boot ? d.boot : pickFilesystem(d, part)).ext!;
            const ino = fs.lookup(file);
            if (fs.stat(ino).type !== 'file')
              throw new UlfsError('EXT_NOT_A_FILE', `${file} is not a regular file`);
            await runInitramfsList(fs.createReadStream(ino), io, !!o.json);
          } finally {
            img.close();
          }
          return;
        }
        throw new UlfsError('USAGE', 'initramfs needs --file HOSTFILE (or IMAGE PATH)');
      },
    );
};
