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

/**
 * Big text files are converted to strings in pieces of about this size, cut at line ends. In a
 * cold process fresh memory is what costs (the first touch of each page): a string this small
 * lives in V8's young generation, whose pages are reused once the piece is dead, while one string
 * for the whole file takes fresh pages for every byte (1.3 MB modules.alias, cold process: 9 ms as
 * one string, 4 ms in 64 KiB pieces). Pieces that stay referenced (modules.dep's entries point
 * into theirs) are copied once by the young-generation GC; measured still cheaper than one string.
 */
const PIECE_SIZE = 64 * 1024;

/**
 * Calls fn(text, base) for consecutive pieces of buf from `start`, each ending at a line end (or
 * the end of buf) and at least one line long; text[i] is buf[base + i].
 */
export function eachPiece(buf: Buffer, start: number, fn: (text: string, base: number) => void): void {
  let pos = start;
  // Each piece is non-empty, so this runs at most buf.length times.
  while (pos < buf.length) {
    let end = buf.length;
    if (pos + PIECE_SIZE < buf.length) {
      end = buf.lastIndexOf(10, pos + PIECE_SIZE - 1) + 1;
      // A line longer than a piece: the piece is that line.
      if (end <= pos) end = buf.indexOf(10, pos + PIECE_SIZE) + 1 || buf.length;
    }
    fn(buf.toString('latin1', pos, end), pos);
    pos = end;
  }
}

/** Buffer's native latin1 methods; Node's typings leave them out. */
interface Latin1Buffer {
  latin1Write(s: string, offset: number): number;
  latin1Slice(start: number, end: number): string;
}

/**
 * Writes the latin1 bytes of s into buf at `offset`, returns how many: Buffer#latin1Write, the
 * native method behind buf.write(s, offset, 'latin1'). In a cold process write()'s JS argument
 * handling costs more than copying a short string, and a loop per character more still.
 */
export function latin1Write(buf: Buffer, s: string, offset: number): number {
  return (buf as unknown as Latin1Buffer).latin1Write(s, offset);
}

/** buf.toString('latin1', start, end) without toString's JS argument handling (Buffer#latin1Slice). */
export function latin1Slice(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as Latin1Buffer).latin1Slice(start, end);
}
