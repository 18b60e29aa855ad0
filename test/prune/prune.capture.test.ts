/** The capture side: the VM script, and reading its output straight from the image. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { SAMPLE_USED, sh, tempDir, unpackSample } from '../helpers/images.js';
import { e2fsckClean } from '../fixtures/ext-images.js';
import { parseUsageList } from '../../src/modules/usage-list.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('ulfs-capture-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('capture-script', () => {
  it('prints a POSIX sh script that writes the capture format, which the parser reads back', async () => {
    const out = path.join(dir, 'used.txt');
    const r = await cli('capture-script', '--output', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^#!\/bin\/sh\n/);
    expect(r.stdout).toMatch(/after the workload has loaded everything/);
    const script = path.join(dir, 'capture.sh');
    // This sandbox may have no /proc/modules: then point the script at a real-format stand-in.
    const proc = fs.existsSync('/proc/modules') ? '/proc/modules' : path.join(dir, 'proc-modules');
    if (proc !== '/proc/modules') {
      fs.writeFileSync(
        proc,
        'virtio_net 65536 0 - Live 0xffffffffc0a1b000\nnet_failover 24576 1 virtio_net, Live 0xffffffffc0a12000\n',
      );
    }
    fs.writeFileSync(script, r.stdout.replaceAll('/proc/modules', proc));
    sh('sh', ['-n', script]); // parses as POSIX sh (dash here)
    sh('sh', [script]);
    const text = fs.readFileSync(out, 'utf8');
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('# ulfs-offline used-modules v1');
    expect(lines[1]).toBe(`# kernel: ${sh('uname', ['-r']).trim()}`);
    expect(lines.slice(2).join('\n')).toBe(fs.readFileSync(proc, 'utf8').trimEnd());
    if (lines.length > 2) {
      const list = parseUsageList(text, out);
      expect(list.formats[out]).toBe('capture');
      expect(list.names.length).toBe(lines.length - 2);
    }
  });

  it('fails with one clear line where there is no /proc/modules', async () => {
    const script = path.join(dir, 'capture2.sh');
    fs.writeFileSync(
      script,
      (await cli('capture-script', '-o', path.join(dir, 'x.txt'))).stdout.replaceAll(
        '/proc/modules',
        '/nonexistent/modules',
      ),
    );
    const r = (await import('node:child_process')).spawnSync('sh', [script], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^capture: .* run this inside the VM/);
    expect(fs.existsSync(path.join(dir, 'x.txt'))).toBe(false);
  });
});

describe('prune --used-in-image', () => {
  it('reads the capture from the image and deletes it afterwards', async () => {
    const img = unpackSample(dir);
    sh('debugfs', ['-w', '-R', `write ${SAMPLE_USED} /root/ulfs-used.txt`, img.spec]);
    const r = await cli('prune', '--used-in-image', '/root/ulfs-used.txt', '--json', img.path);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).kept).toHaveLength(15);
    const root = sh('debugfs', ['-R', 'ls -l /root', img.spec]);
    expect(root).not.toMatch(/ulfs-used/);
    // Only the capture goes: /root stays even when the capture was all it held.
    expect(root).toMatch(/ \.\.\s*$/m);
    expect(e2fsckClean(img.spec).ok).toBe(true);
  });

  it('says what to do when the capture is not in the image', async () => {
    const img = unpackSample(fs.mkdtempSync(path.join(dir, 'n-')));
    const r = await cli('prune', '--used-in-image', '/root/ulfs-used.txt', img.path);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/EXT_NOT_FOUND: .*run the capture script in the VM first/);
  });
});
