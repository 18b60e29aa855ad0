/**
 * CRC-16 as ext4's uninit_bg/gdt_csum group descriptor checksum uses it: reflected poly 0xA001
 * (0x8005), caller-chosen init (0xFFFF for ext4), no xorout — i.e. CRC-16/MODBUS.
 * Test vector: crc16(0xFFFF, "123456789") = 0x4B37.
 */
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

export function crc16(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = seed & 0xffff;
  for (let i = start; i < end; i++) c = (TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)) & 0xffff;
  return c;
}
