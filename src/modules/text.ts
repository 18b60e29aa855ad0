/**
 * Index text files as strings, decoded once per Buffer (plan and rewrite read the same files; the
 * Buffers are never changed in place). latin1 keeps every byte as one UTF-16 unit, so lengths and
 * offsets match the file and re-encoding gives the same bytes.
 */
const cache = new WeakMap<Buffer, string>();

export function latin1(buf: Buffer): string {
  let s = cache.get(buf);
  if (s === undefined) {
    s = buf.toString('latin1');
    cache.set(buf, s);
  }
  return s;
}
