/**
 * Volatile writes (zeroed free space) land like ordinary writes but leave no fsync owed; ordinary
 * writes always do, also when volatile ones follow them. Through a partition slice and through the
 * undo-logged device's writeUnlogged, as zero-free and prune use them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice, SliceDevice, writeVolatile } from '../../src/image/blockdev.js';
import { JournaledDevice } from '../../src/image/journaled.js';
import { tempDir } from '../helpers/images.js';

const SIZE = 4 << 20;
const OFFSET = 1 << 20;

describe('volatile writes', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('ulfs-volatile-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function image(name: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, Buffer.alloc(SIZE, 0xaa));
    return file;
  }

  it('land on the file through a slice, and owe no fsync', () => {
    const file = image('slice.img');
    const dev = new FileDevice(file, 'rw');
    const part = new SliceDevice(dev, OFFSET, SIZE - OFFSET);
    writeVolatile(part, 8192, Buffer.alloc(4096));
    expect(dev.needsSync).toBe(false);
    expect(dev.read(OFFSET + 8192, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(dev.read(OFFSET + 8192 - 1, 1)[0]).toBe(0xaa);
    dev.close();
    const onDisk = fs.readFileSync(file);
    expect(onDisk.subarray(OFFSET + 8192, OFFSET + 8192 + 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(onDisk[OFFSET + 8192 + 4096]).toBe(0xaa);
  });

  it('do not clear the fsync owed by an ordinary write before them', () => {
    const dev = new FileDevice(image('order.img'), 'rw');
    dev.write(0, Buffer.from('data'));
    expect(dev.needsSync).toBe(true);
    writeVolatile(dev, 4096, Buffer.alloc(4096));
    expect(dev.needsSync).toBe(true);
    dev.sync();
    expect(dev.needsSync).toBe(false);
    dev.write(8192, Buffer.from('more'));
    expect(dev.needsSync).toBe(true);
    dev.close();
  });

  it('are what JournaledDevice.writeUnlogged does past the head of the image', () => {
    const file = image('journaled.img');
    const dev = new FileDevice(file, 'rw');
    const j = new JournaledDevice(new SliceDevice(dev, OFFSET, SIZE - OFFSET));
    j.write(0, Buffer.from('logged'));
    j.sync();
    expect(dev.needsSync).toBe(false);
    j.writeUnlogged(65536, Buffer.alloc(65536));
    expect(dev.needsSync).toBe(false);
    j.commit();
    j.close();
    dev.close();
    const onDisk = fs.readFileSync(file);
    expect(onDisk.subarray(OFFSET, OFFSET + 6).toString()).toBe('logged');
    expect(onDisk.subarray(OFFSET + 65536, OFFSET + 131072).equals(Buffer.alloc(65536))).toBe(true);
    expect(fs.existsSync(`${file}.ulfs-undo`)).toBe(false);
  });

  it('reach JournaledDevice.writeUnlogged through a slice of it (refused while writes are pending)', () => {
    const file = image('journaled-slice.img');
    const dev = new FileDevice(file, 'rw');
    const j = new JournaledDevice(dev);
    const part = new SliceDevice(j, OFFSET, SIZE - OFFSET);
    j.write(0, Buffer.from('logged'));
    expect(() => writeVolatile(part, 65536, Buffer.alloc(4096))).toThrow(/pending/);
    j.sync();
    writeVolatile(part, 65536, Buffer.alloc(4096));
    expect(dev.needsSync).toBe(false);
    j.commit();
    j.close();
    dev.close();
    expect(
      fs
        .readFileSync(file)
        .subarray(OFFSET + 65536, OFFSET + 69632)
        .equals(Buffer.alloc(4096)),
    ).toBe(true);
  });
});
