import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32cRaw } from '../../src/binary/crc32c.js';
import { crc16 } from '../../src/binary/crc16.js';
import { crc32 } from '../../src/binary/crc32.js';
import { crc32 as zlibCrc32 } from 'node:zlib';

const digits = Buffer.from('123456789');

describe('checksums', () => {
  it('crc32c raw matches the ext4 test vector', () => {
    expect(crc32cRaw(0xffffffff, digits)).toBe(0x1cf96d7c);
    expect(~crc32cRaw(0xffffffff, digits) >>> 0).toBe(0xe3069283);
  });
  it('crc32c slicing-by-8 equals the bytewise update, chained at any split', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(200), (data, cut) => {
        const k = Math.min(cut, data.length);
        let bytewise = 0xffffffff;
        for (const b of data) bytewise = crc32cRaw(bytewise, Uint8Array.of(b));
        expect(crc32cRaw(crc32cRaw(0xffffffff, data, 0, k), data, k)).toBe(bytewise);
      }),
    );
  });
  it('crc16 is CRC-16/MODBUS', () => {
    expect(crc16(0xffff, digits)).toBe(0x4b37);
  });
  it('crc32 is IEEE and chains', () => {
    expect(crc32(digits)).toBe(0xcbf43926);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (data, cut) => {
        const k = Math.min(cut, data.length);
        expect(crc32(data, crc32(data, 0, 0, k), k)).toBe(zlibCrc32(data));
      }),
    );
  });
});
