/**
 * Benchmark: planning + writing all index files for the Debian 'full' kernel tree (~4,000
 * modules), against `depmod -b` on the pruned tree (which must scan every kept module).
 * Checks that our index files equal depmod's, byte for byte.
 *
 *   npx tsx bench/modules-plan.ts [cloud|full] [runs]
 * CPU figures under tsx include its loader thread; for clean ones bundle first:
 *   npx esbuild bench/modules-plan.ts --bundle --platform=node --format=esm --outfile=/tmp/mp.mjs && node /tmp/mp.mjs full 5
 * "warm" runs get a freshly loaded tree each time (JIT warm, data cold), "cold" is the first run.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseUsageList, planModules } from '../src/modules/index.js';
import { getKernel, type KernelFlavor } from '../test/fixtures/kernel.js';
import { DEPMOD_OUTPUTS, fileImage, loadTree, prunedCopyWithDepmod } from '../test/modules/tree.js';

const flavor = (process.argv[2] ?? 'full') as KernelFlavor;
const runs = Number(process.argv[3] ?? 5);
const k = getKernel(flavor);

// What a small cloud VM typically has loaded (lsmod of a Debian 12 guest): the input, not an answer.
const USED = `virtio_net net_failover failover virtio_blk virtio_scsi virtio_pci virtio_pci_legacy_dev
virtio_pci_modern_dev virtio_balloon virtio_console virtio_rng ext4 crc16 mbcache jbd2 crc32c_generic
crc32c_intel crc32_pclmul ghash_clmulni_intel sha512_ssse3 aesni_intel crypto_simd cryptd button
evdev serio_raw joydev psmouse i2c_piix4 ata_generic ata_piix libata scsi_mod sd_mod t10_pi
crc64_rocksoft crc64 sg nls_ascii nls_cp437 vfat fat efi_pstore configfs ip_tables x_tables autofs4
binfmt_misc drm virtio_gpu`
  .split(/\s+/)
  .join('\n');

function cpuMs(c: NodeJS.CpuUsage): number {
  return (c.user + c.system) / 1000;
}

function timeOnce(): {
  loadMs: number;
  planMs: number;
  writeMs: number;
  cpu: number;
  outDir: string;
  kept: string[];
} {
  const tl = performance.now();
  const tree = loadTree(k.modulesDir, k.version);
  const loadMs = performance.now() - tl;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const lists = parseUsageList(USED, 'used.txt');
  const plan = planModules({
    lists,
    tree,
    force: true,
    indexOptions: { moduleImage: fileImage(k.modulesDir) },
  });
  const planMs = performance.now() - t0;
  const outDir = fs.mkdtempSync('/tmp/ulfs-bench-idx-');
  const t1 = performance.now();
  for (const [name, buf] of Object.entries(plan.indexes)) fs.writeFileSync(path.join(outDir, name), buf);
  const writeMs = performance.now() - t1;
  const cpu = cpuMs(process.cpuUsage(c0));
  return { loadMs, planMs, writeMs, cpu, outDir, kept: plan.kept.map((m) => m.path) };
}

const ours: number[] = [];
const oursCpu: number[] = [];
const loads: number[] = [];
let last = timeOnce();
const cold = last.planMs + last.writeMs;
const coldCpu = last.cpu;
const coldLoad = last.loadMs;
for (let i = 0; i < runs; i++) {
  fs.rmSync(last.outDir, { recursive: true });
  last = timeOnce();
  ours.push(last.planMs + last.writeMs);
  oursCpu.push(last.cpu);
  loads.push(last.loadMs);
}
const depmod: number[] = [];
const depmodCpu: number[] = [];
let copy = prunedCopyWithDepmod(k.modulesDir, k.version, last.kept);
for (let i = 0; i < runs; i++) {
  copy.cleanup();
  copy = prunedCopyWithDepmod(k.modulesDir, k.version, last.kept);
  depmod.push(copy.depmodMs);
}
for (let i = 0; i < runs; i++) {
  const r = execFileSync(
    '/bin/bash',
    ['-c', `TIMEFORMAT='%U %S'; { time depmod -b '${copy.root}' '${k.version}' ; } 2>&1`],
    {
      encoding: 'utf8',
      env: { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH}` },
    },
  );
  const [u, sy] = r.trim().split('\n').pop()!.split(' ').map(Number);
  depmodCpu.push((u! + sy!) * 1000);
}
const mismatches = DEPMOD_OUTPUTS.filter((f) => {
  const mine = fs.existsSync(path.join(last.outDir, f))
    ? fs.readFileSync(path.join(last.outDir, f))
    : fs.readFileSync(path.join(k.modulesDir, f));
  return !mine.equals(fs.readFileSync(path.join(copy.modulesDir, f)));
});
copy.cleanup();
fs.rmSync(last.outDir, { recursive: true });
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(`kernel ${k.version}: ${last.kept.length} modules kept`);
console.log(
  `load tree from disk (list files, read index files): cold ${coldLoad.toFixed(0)} ms, warm median ${med(loads).toFixed(0)} ms`,
);
console.log(
  `ours (plan incl. kept modules' ELF symbol tables + write indexes): cold ${cold.toFixed(0)} ms, warm median ${med(ours).toFixed(0)} ms`,
);
console.log(`  CPU time: cold ${coldCpu.toFixed(0)} ms, warm median ${med(oursCpu).toFixed(0)} ms`);
console.log(
  `depmod -b on the pruned tree: wall median ${med(depmod).toFixed(0)} ms, CPU (user+sys) median ${med(depmodCpu).toFixed(0)} ms`,
);
console.log(
  `wall ratio: warm ${(med(ours) / med(depmod)).toFixed(2)}x, cold ${(cold / med(depmod)).toFixed(2)}x (goal <= 0.5x)`,
);
console.log(
  `CPU ratio:  warm ${(med(oursCpu) / med(depmodCpu)).toFixed(2)}x, cold ${(coldCpu / med(depmodCpu)).toFixed(2)}x`,
);
console.log(`index files differing from depmod: ${mismatches.length ? mismatches.join(' ') : 'none'}`);
