/** `ulfs-offline undo IMAGE` end to end, in-process. */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/image/blockdev.js';
import { JournaledDevice } from '../../src/image/journaled.js';
import { lockImage } from '../../src/image/lock.js';
import { cli } from '../helpers/cli.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ulfs-undocli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha = (p: string): string => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

describe('undo command', () => {
  it('restores an interrupted change, then says there is nothing to undo', async () => {
    const img = path.join(dir, 'a.img');
    fs.writeFileSync(img, randomBytes(256 << 10));
    const before = sha(img);
    const j = new JournaledDevice(new FileDevice(img, 'rw'));
    j.write(1000, Buffer.alloc(3000, 1));
    j.write(200_000, Buffer.alloc(10, 2));
    j.sync();
    j.close(); // no commit: as after a crash
    expect(sha(img)).not.toBe(before);

    const held = lockImage(img);
    const locked = await cli('undo', img);
    held.release();
    expect(locked.code).toBe(5);
    expect(locked.stderr).toMatch(/^ulfs-offline: error IMAGE_LOCKED: /);
    expect(sha(img)).not.toBe(before);

    const r = await cli('undo', img);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^restored 2 ranges \(\d+ bytes\) of .*a\.img from .*a\.img\.ulfs-undo\n$/);
    expect(sha(img)).toBe(before);
    expect(fs.existsSync(img + '.ulfs-lock')).toBe(false);

    const again = await cli('undo', img);
    expect(again.code).toBe(6);
    expect(again.stderr).toMatch(/^ulfs-offline: error UNDO_NOT_FOUND: /);
  });
});
