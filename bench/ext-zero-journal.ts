/**
 * Measures what zeroing a clean journal's log area (zeroFree { journal: true }) gains in `xz` output
 * size, on a 256 MiB ext4 image whose 16 MiB journal log holds stale transaction data (written with
 * debugfs jo/jw/jc, then replayed by e2fsck -fy, which leaves the old log contents in place).
 *
 *   npx tsx bench/ext-zero-journal.ts
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileDevice } from '../src/image/blockdev.js';
import { zeroFree } from '../src/ext/write/index.js';

const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };
function sh(cmd: string, args: string[], input?: string, allowFail = false): string {
  const r = spawnSync(cmd, args, { env: ENV, encoding: 'utf8', input, maxBuffer: 1 << 28 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r.stdout + r.stderr;
}
function xzSize(p: string): number {
  const r = spawnSync('xz', ['-T1', '-6', '-c', p], { maxBuffer: 1 << 30 });
  return r.stdout.length;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-bench-jzero-'));
try {
  const img = path.join(dir, 'j.img');
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 256 << 20);
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-J', 'size=16', img]);
  // fill most of the log with pseudo-random transactions, then replay them (harmless targets: free blocks)
  const data = path.join(dir, 'data');
  // incompressible stand-in for stale metadata (an upper bound of the gain per log block)
  fs.writeFileSync(data, randomBytes(4096 * 1000));
  const cmds: string[] = ['jo'];
  for (let t = 0; t < 3; t++) {
    const blocks = Array.from({ length: 1000 }, (_, i) => 40000 + t * 1000 + i).join(',');
    cmds.push(`jw -b ${blocks} ${data}`, 'jc');
  }
  sh('debugfs', ['-w', '-f', '-', img], cmds.join('\n') + '\n');
  sh('e2fsck', ['-fy', img], undefined, true);
  const dev = new FileDevice(img, 'rw');
  const plain = zeroFree(dev);
  dev.close();
  const before = xzSize(img);
  const dev2 = new FileDevice(img, 'rw');
  const withJournal = zeroFree(dev2, { journal: true });
  dev2.close();
  const after = xzSize(img);
  const fsck = spawnSync('e2fsck', ['-fn', img], { env: ENV, encoding: 'utf8' });
  console.log(
    `zero-free: ${plain.blocksZeroed} free blocks zeroed; then journal: ${withJournal.journalBlocksZeroed} log blocks zeroed`,
  );
  console.log(
    `xz -6 size: ${before} bytes -> ${after} bytes (saves ${before - after}, ${((100 * (before - after)) / before).toFixed(1)}%)`,
  );
  console.log(`e2fsck -fn exit ${fsck.status}: ${fsck.stdout.trim().split('\n').pop()}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
