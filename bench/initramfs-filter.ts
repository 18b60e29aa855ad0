/**
 * Benchmark: filter a real Debian initramfs (MODULES=most, from the 'full' kernel if cached, else the
 * cloud one) down to ~40 modules and recompress, ours vs the native pipeline
 *   gzip -dc | cpio -idm; rm ...; find | cpio -o -H newc | gzip -9
 * on the same input. Same for zstd (level from ZSTD_LEVEL, default 19). Prints times and ratios.
 *
 *   npx tsx bench/initramfs-filter.ts [gzip|zstd ...]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { filterInitramfs, listInitramfs } from '../src/initramfs/index.js';
import { getInitramfs, TOOL_ENV } from '../test/fixtures/initramfs-images.js';
import { cacheDir } from '../test/fixtures/kernel.js';

const KEEP = 40;
const zstdLevel = Number(process.env.ZSTD_LEVEL ?? 19);
// The full kernel's MODULES=most initramfs (~130 MB) when its package is cached (bench/prune.ts
// caches it), else the cloud kernel's (~50 MB).
const flavor = fs.readdirSync(cacheDir()).some((f) => /^linux-image-6\.1\.0-\d+-amd64_.*\.deb$/.test(f))
  ? 'full'
  : 'cloud';
const which = process.argv.slice(2).length ? process.argv.slice(2) : ['gzip', 'zstd'];

for (const c of which as ('gzip' | 'zstd')[]) {
  const file = getInitramfs(flavor, c, 'most');
  const { entries, segments } = await listInitramfs(fs.createReadStream(file));
  const kos = entries.filter((e) => e.name.endsWith('.ko'));
  const keep = new Set(
    kos
      .filter((_, i) => i % Math.floor(kos.length / KEEP) === 0)
      .slice(0, KEEP)
      .map((e) => e.name),
  );
  const drop = kos.filter((e) => !keep.has(e.name)).map((e) => e.name);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-bench-'));
  try {
    // Ours.
    const outOurs = path.join(work, 'ours.img');
    let t = performance.now();
    const cpu0 = process.cpuUsage();
    const { output, done } = filterInitramfs(fs.createReadStream(file, { highWaterMark: 1 << 20 }), {
      decide: (e) => (e.name.endsWith('.ko') && !keep.has(e.name) ? 'drop' : 'keep'),
      level: c === 'gzip' ? 9 : zstdLevel,
    });
    await pipeline(output, fs.createWriteStream(outOurs));
    const rep = await done;
    const ours = (performance.now() - t) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const oursCpu = (cpu.user + cpu.system) / 1e6;

    // Native.
    const dir = path.join(work, 'x');
    fs.mkdirSync(dir);
    const listFile = path.join(work, 'drop.txt');
    fs.writeFileSync(listFile, drop.join('\0'));
    const outNative = path.join(work, 'native.img');
    const dec = c === 'gzip' ? 'gzip -dc' : 'zstd -dc -q';
    const enc = c === 'gzip' ? 'gzip -9 -n' : `zstd -q -${zstdLevel}`;
    t = performance.now();
    // bash's `time` reports the user+sys CPU seconds of the whole pipeline on stderr.
    const timed = execFileSync(
      'bash',
      [
        '-c',
        `TIMEFORMAT='%U %S'; time ( ${dec} "${file}" | (cd "${dir}" && cpio -idm --quiet) && (cd "${dir}" && xargs -0 rm -f < "${listFile}" && find . -type d -empty -delete; find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | ${enc} > "${outNative}") ) 2>&1 >/dev/null`,
      ],
      { env: TOOL_ENV, encoding: 'utf8' },
    );
    const nativeCpu = timed
      .trim()
      .split(/\s+/)
      .slice(-2)
      .reduce((a, b) => a + Number(b), 0);
    const native = (performance.now() - t) / 1000;
    console.log(
      JSON.stringify({
        compression: c,
        level: c === 'gzip' ? 9 : zstdLevel,
        input: file,
        inputBytes: fs.statSync(file).size,
        uncompressedBytes: segments.reduce((n, s) => n + s.uncompressedLength, 0),
        modulesBefore: kos.length,
        modulesKept: keep.size,
        removedDirs: rep.removedDirs.length,
        oursSeconds: +ours.toFixed(2),
        oursBytes: fs.statSync(outOurs).size,
        nativeSeconds: +native.toFixed(2),
        nativeBytes: fs.statSync(outNative).size,
        ratio: +(ours / native).toFixed(3),
        oursCpuSeconds: +oursCpu.toFixed(2),
        nativeCpuSeconds: +nativeCpu.toFixed(2),
        loadAverage: os.loadavg()[0],
      }),
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
