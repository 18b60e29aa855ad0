/** `ulfs-offline capture-script [--output PATH]`: the POSIX sh script to run inside the VM. */
import type { Register } from './program.js';

export const DEFAULT_CAPTURE_PATH = '/root/ulfs-used.txt';

export function captureScript(target: string): string {
  const quoted = `'${target.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh
# ulfs-offline capture script: records which kernel modules this VM has loaded.
# Run it as root INSIDE the VM after the workload has loaded everything it will ever need
# (boot fully, bring up networking and storage, run the workload once), then shut the VM down
# cleanly and run on the host:
#   ulfs-offline prune --used-in-image ${target} hdd.img
set -eu
out=${quoted}
if [ ! -r /proc/modules ]; then
  echo "capture: /proc/modules is not readable: run this inside the VM (a kernel with modules)" >&2
  exit 1
fi
tmp="$out.tmp.$$"
{
  echo '# ulfs-offline used-modules v1'
  echo "# kernel: $(uname -r)"
  cat /proc/modules
} > "$tmp"
mv "$tmp" "$out"
sync
echo "wrote $(($(wc -l < "$out") - 2)) loaded modules to $out" >&2
`;
}

export const registerCaptureScript: Register = (program, io) => {
  program
    .command('capture-script')
    .description('print a POSIX sh script that records the loaded modules inside the VM')
    .option('-o, --output <path>', 'where the script writes the list inside the VM', DEFAULT_CAPTURE_PATH)
    .action((opts: { output: string }) => {
      io.stdout.write(captureScript(opts.output));
    });
};
