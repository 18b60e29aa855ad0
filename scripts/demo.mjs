#!/usr/bin/env node
// `npm run demo`: copies the sample image out of fixtures/, prunes it with the sample usage list and
// prints the report. The sample is made by test/fixtures/make-sample.sh (see fixtures/README.md).
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'ulfs-demo-'));
const img = join(dir, 'sample.img');
try {
  await pipeline(createReadStream(join(repo, 'fixtures/sample.img.gz')), createGunzip(), createWriteStream(img));
  console.log(`sample image: ${img} (${statSync(img).size} bytes)\n`);
  const cli = join(repo, 'dist/cli/main.js');
  const run = (...args) => {
    console.log(`$ ulfs-offline ${args.map((a) => a.replace(dir, '$TMP')).join(' ')}`);
    const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
    console.log('');
    if (r.status !== 0) process.exit(r.status ?? 1);
  };
  run('inspect', img);
  run('prune', '--used', join(repo, 'fixtures/sample-used.txt'), img);
  run('check', img);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
