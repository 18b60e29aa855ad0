/** `ulfs-offline undo IMAGE`: puts an image back byte for byte from its undo log. */
import { undo } from '../image/undo.js';
import { withLock } from '../image/lock.js';
import type { Register } from './program.js';

export const registerUndo: Register = (program, io) => {
  program
    .command('undo')
    .description('restore IMAGE from IMAGE.ulfs-undo, left by an interrupted or failed run')
    .argument('<image>', 'the disk image file')
    .option('--moved', 'accept an image that was moved or copied together with its undo log')
    .action(async (image: string, opts: { moved?: boolean }) => {
      const r = await withLock(image, () => undo(image, { allowMoved: opts.moved === true }));
      io.stdout.write(
        `restored ${r.records} range${r.records === 1 ? '' : 's'} (${r.bytes} bytes) of ${image} from ${r.log}` +
          (r.tornBytes > 0 ? `; ignored ${r.tornBytes} bytes of an unfinished log tail` : '') +
          '\n',
      );
    });
};
