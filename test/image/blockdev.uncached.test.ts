/**
 * readUncached (O_DIRECT where possible) must return exactly what an ordinary read returns: over
 * holes and data of a sparse file, at aligned and unaligned offsets and lengths, at the end of a file
 * whose size is not a sector multiple, right after buffered writes that are not yet written back, on
 * a partition slice, and on a filesystem without O_DIRECT (tmpfs: falls back).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice, SliceDevice, allocAligned, readUncached } from '../../src/image/blockdev.js';
import { tempDir } from '../helpers/images.js';

const SIZE = 8 * 1024 * 1024 + 1234; // not a multiple of 512: the last direct read is short

function sparseFile(dir: string): { file: string; data: Buffer } {
  const file = path.join(dir, 'img');
  const data = Buffer.alloc(SIZE);
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, SIZE); // holes everywhere ...
  for (const at of [0, 4096 * 3 + 17, 1 << 20, 5 * (1 << 20) + 512, SIZE - 700]) {
    const chunk = randomBytes(Math.min(70_000, SIZE - at)); // ... and data in a few places
    chunk.copy(data, at);
    fs.writeSync(fd, chunk, 0, chunk.length, at);
  }
  fs.closeSync(fd);
  return { file, data };
}

const CASES: [number, number][] = [
  [0, 4 << 20],
  [4096, 65536],
  [17, 4096], // unaligned offset: ordinary read
  [512, 1000], // unaligned length
  [SIZE - 4096 - 1234, 4096 + 1234], // the short tail
  [SIZE - 1234, 1234],
];

/** Every CASES read through readUncached equals the file's bytes there. */
function expectCasesMatch(dev: FileDevice, data: Buffer): void {
  for (const [pos, len] of CASES) {
    const buf = allocAligned(len);
    readUncached(dev, buf, pos);
    expect(buf.equals(data.subarray(pos, pos + len)), `${pos}+${len}`).toBe(true);
  }
}

describe('readUncached', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('ulfs-uncached-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads what readInto reads, holes and data, aligned or not', () => {
    const { file, data } = sparseFile(dir);
    const dev = new FileDevice(file, 'rw');
    try {
      expectCasesMatch(dev, data);
      // buffered writes not yet written back are seen by the direct read that follows
      const fresh = randomBytes(8192);
      dev.write(1 << 21, fresh);
      const buf = allocAligned(1 << 20);
      readUncached(dev, buf, 1 << 21);
      expect(buf.subarray(0, 8192).equals(fresh)).toBe(true);
      expect(buf.subarray(8192).equals(data.subarray((1 << 21) + 8192, (1 << 21) + (1 << 20)))).toBe(true);
      // an unaligned buffer (EINVAL for O_DIRECT) falls back to an ordinary read
      const odd = Buffer.alloc(4096 + 1).subarray(1);
      readUncached(dev, odd, 4096);
      expect(odd.equals(data.subarray(4096, 8192))).toBe(true);
    } finally {
      dev.close();
    }
  });

  it('works through a partition slice and rejects reads past its end', () => {
    const { file, data } = sparseFile(dir);
    const dev = new FileDevice(file, 'r');
    try {
      const part = new SliceDevice(dev, 1 << 20, 4 << 20);
      const buf = allocAligned(2 << 20);
      readUncached(part, buf, 1 << 20);
      expect(buf.equals(data.subarray(2 << 20, 4 << 20))).toBe(true);
      expect(() => readUncached(part, allocAligned(4096), (4 << 20) - 2048)).toThrow(/beyond the end/);
    } finally {
      dev.close();
    }
  });

  it('falls back to ordinary reads where O_DIRECT is refused (tmpfs)', () => {
    if (!fs.existsSync('/dev/shm')) return;
    const shm = fs.mkdtempSync('/dev/shm/ulfs-uncached-');
    try {
      const { file, data } = sparseFile(shm);
      const dev = new FileDevice(file, 'r');
      try {
        expectCasesMatch(dev, data);
      } finally {
        dev.close();
      }
    } finally {
      fs.rmSync(shm, { recursive: true, force: true });
    }
  });
});
