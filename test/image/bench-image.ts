/**
 * Hand-run measurements of the image layer (not a test):  npx tsx test/image/bench-image.ts [N]
 *  1. N random 4 KiB writes (a third to 64 hot blocks, rewritten) + N/2 reads through a
 *     JournaledDevice on a 2 GiB sparse image, then sync (undo log + writes + fsyncs), then undo.
 *  2. copySparse of a 2 GiB image holding 256 MiB of data, against `cp --sparse=always`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileDevice } from '../../src/image/blockdev.js';
import { JournaledDevice } from '../../src/image/journaled.js';
import { undo } from '../../src/image/undo.js';
import { copySparse } from '../../src/image/sparse.js';

const N = Number(process.argv[2] ?? 20000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-bench-image-'));
const ms = (t: number): string => `${(performance.now() - t).toFixed(0)} ms`;
try {
  const img = path.join(dir, 'big.img');
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 2 * 2 ** 30);
  const blk = Buffer.alloc(4096, 0xab);
  const j = new JournaledDevice(new FileDevice(img, 'rw'));
  let t = performance.now();
  let x = 12345;
  for (let i = 0; i < N; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    j.write((i % 3 === 0 ? x % 64 : x % 500_000) * 4096, blk);
    if (i % 2 === 0) j.read(((x >> 3) % 500_000) * 4096, 4096);
  }
  console.log(
    `journaled: ${N} writes + ${N / 2} reads: ${ms(t)} (pending ${(j.pendingBytes / 1e6).toFixed(1)} MB)`,
  );
  t = performance.now();
  j.sync();
  const logBytes = fs.statSync(img + '.ulfs-undo').size;
  console.log(`journaled: sync (log ${(logBytes / 1e6).toFixed(1)} MB + writes, fsyncs): ${ms(t)}`);
  j.close();
  t = performance.now();
  const r = undo(img);
  console.log(`undo: ${r.records} records, ${(r.bytes / 1e6).toFixed(1)} MB: ${ms(t)}`);

  const src = path.join(dir, 'data.img');
  const fd = fs.openSync(src, 'w');
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < 256; i++) fs.writeSync(fd, chunk, 0, chunk.length, i * 8 * (1 << 20));
  fs.ftruncateSync(fd, 2 * 2 ** 30);
  fs.closeSync(fd);
  execFileSync('sync');
  t = performance.now();
  copySparse(src, path.join(dir, 'copy1.img'));
  console.log(`copySparse 2 GiB (256 MiB data): ${ms(t)}`);
  t = performance.now();
  execFileSync('cp', ['--sparse=always', src, path.join(dir, 'copy2.img')]);
  execFileSync('sync', [path.join(dir, 'copy2.img')]);
  console.log(`cp --sparse=always + sync: ${ms(t)}`);
  const du = (p: string): string => execFileSync('du', ['-h', p], { encoding: 'utf8' }).split('\t')[0]!;
  console.log(`du: copySparse ${du(path.join(dir, 'copy1.img'))}, cp ${du(path.join(dir, 'copy2.img'))}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
