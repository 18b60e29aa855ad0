/**
 * Benchmark: zero-free on a 2 GiB ext4 filesystem with ~1.5 GiB of free blocks full of garbage,
 * ours (zeroFree) vs native `zerofree`, each on its own copy of the same image, side by side in one
 * run. Both copies are synced to disk before timing; both runs end with the data written (ours
 * fsyncs; zerofree closes through libext2fs). Checks afterwards that zerofree -n finds nothing left.
 *
 *   npx tsx bench/ext-zero.ts [rounds=2]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileDevice } from '../src/image/blockdev.js';
import { zeroFree } from '../src/ext/write/index.js';

const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };
const rounds = Number(process.argv[2] ?? 2);

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { env: ENV, encoding: 'utf8', input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r.stdout + r.stderr;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-bench-zero-'));
try {
  const base = path.join(dir, 'base.img');
  fs.writeFileSync(base, '');
  fs.truncateSync(base, 2048 * 1024 * 1024);
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', base]);
  // 1.5 GiB of garbage written as a file, then deleted: its blocks stay dirty and free
  const garbage = path.join(dir, 'garbage.bin');
  const fd = fs.openSync(garbage, 'w');
  const chunk = Buffer.alloc(8 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let i = 0; i < 192; i++) fs.writeSync(fd, chunk);
  fs.closeSync(fd);
  sh('debugfs', ['-w', '-f', '-', base], `write ${garbage} g\nmkdir keep\nwrite ${garbage} keep/small\n`);
  sh('debugfs', ['-w', '-R', 'rm /g', base]);
  fs.rmSync(garbage);
  const stats = sh('debugfs', ['-R', 'stats', base]);
  console.log(`fs: 2 GiB, free blocks ${/^Free blocks:\s+(\d+)/m.exec(stats)![1]} (4 KiB)`);

  const oursT: number[] = [];
  const nativeT: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const a = path.join(dir, 'ours.img');
    const b = path.join(dir, 'native.img');
    fs.copyFileSync(base, a);
    fs.copyFileSync(base, b);
    sh('sync', []);
    let t = performance.now();
    const dev = new FileDevice(a, 'rw');
    const r = zeroFree(dev);
    dev.close();
    oursT.push(performance.now() - t);
    sh('sync', []);
    t = performance.now();
    const out = sh('zerofree', ['-v', b]);
    nativeT.push(performance.now() - t);
    if (i === 0) {
      const left = sh('zerofree', ['-n', '-v', a]);
      console.log(`ours: ${JSON.stringify(r)}`);
      console.log(
        `zerofree -v: ${/(\d+\/\d+\/\d+)/.exec(out)?.[1]} ; zerofree -n -v on ours: ${/(\d+\/\d+\/\d+)/.exec(left)?.[1]}`,
      );
    }
    fs.rmSync(a);
    fs.rmSync(b);
  }
  const med = (x: number[]): number => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
  console.log(`ours     ms: ${oursT.map((x) => x.toFixed(0)).join(' ')}  median ${med(oursT).toFixed(0)}`);
  console.log(
    `zerofree ms: ${nativeT.map((x) => x.toFixed(0)).join(' ')}  median ${med(nativeT).toFixed(0)}`,
  );
  console.log(`ratio ours/zerofree = ${(med(oursT) / med(nativeT)).toFixed(3)}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
