/**
 * IEEE CRC-32 (reflected poly 0xEDB88320, init and xorout 0xFFFFFFFF), as GPT headers and entry
 * arrays use it. Our own table so that every Node >= 20 has it (zlib.crc32 arrived in 20.15).
 * Test vector: crc32("123456789") = 0xCBF43926.
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** Continues a CRC-32: pass the previous result as `crc` (0 to start). */
export function crc32(data: Uint8Array, crc = 0, start = 0, end = data.length): number {
  let c = ~crc >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
