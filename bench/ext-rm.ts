/**
 * Benchmark: delete every module file of the 'full' Debian kernel (~4,000 files) and the directories
 * they leave empty, ours (removePaths, one batch, fsync included) vs `debugfs -w -f cmds` doing the
 * same deletions, on copies of the same image, side by side in one run (median of N rounds).
 *
 *   npx tsx bench/ext-rm.ts [rounds=3] [blockSize=4096]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileDevice } from '../src/image/blockdev.js';
import { removePaths } from '../src/ext/write/index.js';
import { getKernel, listModuleFiles } from '../test/fixtures/kernel.js';

const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };
const rounds = Number(process.argv[2] ?? 3);
const bs = Number(process.argv[3] ?? 4096);

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { env: ENV, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return r.stdout + r.stderr;
}

const k = getKernel('full');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-bench-rm-'));
try {
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'lib/modules'), { recursive: true });
  fs.cpSync(k.modulesDir, path.join(src, 'lib/modules', k.version), { recursive: true });
  const files = listModuleFiles(k.modulesDir);
  const base = path.join(dir, 'base.img');
  fs.writeFileSync(base, '');
  fs.truncateSync(base, 1536 << 20);
  let t = performance.now();
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', String(bs), '-d', src, base]);
  console.log(
    `image: ${files.length} module files, mke2fs -d ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  fs.rmSync(src, { recursive: true, force: true });

  // directories emptied by removing every module file, deepest first (for debugfs rmdir)
  const prefix = `/lib/modules/${k.version}/`;
  const dirs = new Map<string, number>();
  const walk = (rel: string): number => {
    let n = 0;
    for (const e of fs.readdirSync(path.join(k.modulesDir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        const left = walk(r);
        dirs.set(r, left);
        if (left > 0) n++;
      } else if (!/\.ko(\.(gz|xz|zst))?$/.test(e.name)) n++;
    }
    return n;
  };
  walk('');
  const emptied = [...dirs].filter(([, left]) => left === 0).map(([d]) => d);
  emptied.sort((a, b) => b.split('/').length - a.split('/').length);
  const cmds = path.join(dir, 'cmds');
  fs.writeFileSync(
    cmds,
    [...files.map((f) => `rm ${prefix}${f}`), ...emptied.map((d) => `rmdir ${prefix}${d}`)].join('\n') + '\n',
  );

  const oursT: number[] = [];
  const nativeT: number[] = [];
  const oursCpu: number[] = [];
  const nativeCpu: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const a = path.join(dir, 'ours.img');
    const b = path.join(dir, 'native.img');
    fs.copyFileSync(base, a);
    fs.copyFileSync(base, b);
    sh('sync', []); // flush the copies first: neither side should pay for the other's page cache
    t = performance.now();
    const cpu0 = process.cpuUsage();
    const dev = new FileDevice(a, 'rw');
    const r = removePaths(
      dev,
      files.map((f) => prefix + f),
      { pruneEmptyDirs: true },
    );
    dev.close();
    oursT.push(performance.now() - t);
    const cpu = process.cpuUsage(cpu0);
    oursCpu.push((cpu.user + cpu.system) / 1000);
    sh('sync', []);
    t = performance.now();
    const timed = sh('/usr/bin/time', ['-f', 'CPU %U %S', 'debugfs', '-w', '-f', cmds, b]);
    nativeT.push(performance.now() - t);
    const m = /CPU ([\d.]+) ([\d.]+)/.exec(timed)!;
    nativeCpu.push((Number(m[1]) + Number(m[2])) * 1000);
    if (i === 0) {
      const fsck = spawnSync('e2fsck', ['-fn', a], { env: ENV, encoding: 'utf8' });
      const free = (img: string): string =>
        /^Free blocks:\s+(\d+)/m.exec(sh('debugfs', ['-R', 'stats', img]))![1]!;
      console.log(
        `ours: removed ${r.removedFiles} files, ${r.removedDirs} dirs; e2fsck exit ${fsck.status}; ` +
          `free blocks ours ${free(a)} native ${free(b)} (debugfs rmdir'd ${emptied.length} dirs)`,
      );
    }
  }
  const med = (x: number[]): number => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
  console.log(`ours   ms: ${oursT.map((x) => x.toFixed(0)).join(' ')}  median ${med(oursT).toFixed(0)}`);
  console.log(`debugfs ms: ${nativeT.map((x) => x.toFixed(0)).join(' ')}  median ${med(nativeT).toFixed(0)}`);
  console.log(
    `ours    cpu ms: ${oursCpu.map((x) => x.toFixed(0)).join(' ')}  median ${med(oursCpu).toFixed(0)}`,
  );
  console.log(
    `debugfs cpu ms: ${nativeCpu.map((x) => x.toFixed(0)).join(' ')}  median ${med(nativeCpu).toFixed(0)}`,
  );
  console.log(
    `ratio ours/debugfs: wall ${(med(oursT) / med(nativeT)).toFixed(3)}, cpu ${(med(oursCpu) / med(nativeCpu)).toFixed(3)}`,
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
