/**
 * The filter's look-ahead in unusual archive orders: a surviving entry that turns up after its
 * directory was removed (GNU cpio writes deferred hard links at the end), and a pending directory
 * whose fate stays open longer than the hold queue allows. Archives are built with our encoder in
 * orders GNU cpio can produce, and judged by GNU cpio -i.
 */
import { describe, expect, it } from 'vitest';
import {
  CPIO_TRAILER,
  S_IFDIR,
  S_IFREG,
  encodeCpioHeader,
  Later,
  filterInitramfs,
  listInitramfs,
  pad4,
  type CpioHeader,
} from '../../src/initramfs/index.js';
import { HOLD_BYTES } from '../../src/initramfs/filter.js';
import { chunked, collect, extractWithCpio } from './util.js';

function entry(name: string, kind: 'd' | 'f', data = Buffer.alloc(0), ino = 1, nlink = 1): Buffer {
  const h: CpioHeader = {
    format: 'newc',
    ino,
    mode: kind === 'd' ? S_IFDIR | 0o755 : S_IFREG | 0o644,
    uid: 0,
    gid: 0,
    nlink: kind === 'd' ? 2 : nlink,
    mtime: 0,
    fileSize: data.length,
    devMajor: 0,
    devMinor: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    nameSize: 0,
    check: 0,
    lowerCase: false,
  };
  return Buffer.concat([
    encodeCpioHeader(h, Buffer.from(name)),
    data,
    Buffer.alloc(pad4(data.length) - data.length),
  ]);
}
const trailer = (): Buffer => entry(CPIO_TRAILER, 'f');

describe('filter look-ahead', () => {
  it('a removed directory is written again before a late surviving entry inside it', async () => {
    const a = Buffer.concat([
      entry('.', 'd'),
      entry('a', 'd', undefined, 2),
      entry('a/x.ko', 'f', Buffer.from('xx'), 3),
      entry('b', 'd', undefined, 4),
      entry('b/y', 'f', Buffer.from('y'), 5),
      entry('a/late', 'f', Buffer.from('late'), 6), // out of order, like a deferred hard link
      trailer(),
    ]);
    const { output, done } = filterInitramfs(chunked(a, 3), {
      decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep'),
    });
    const out = await collect(output);
    const rep = await done;
    expect(rep.removed).toEqual(['a/x.ko']);
    expect(rep.removedDirs).toEqual([]); // removed, then revived
    const tree = extractWithCpio(out);
    expect([...tree.keys()].sort()).toEqual(['a', 'a/late', 'b', 'b/y']);
  });

  it('newc hard links: dropping the data-carrying last link moves the data; nlink follows', async () => {
    const data = Buffer.from('shared contents');
    const a = Buffer.concat([
      entry('d', 'd', undefined, 1),
      entry('d/l1', 'f', Buffer.alloc(0), 7, 3),
      entry('d/l2', 'f', Buffer.alloc(0), 7, 3),
      entry('d/l3.ko', 'f', data, 7, 3),
      trailer(),
    ]);
    const { output } = filterInitramfs(chunked(a, 1), {
      decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep'),
    });
    const out = await collect(output);
    const tree = extractWithCpio(out);
    expect(tree.get('d/l1')!.size).toBe(data.length);
    expect(tree.get('d/l2')!.sha).toBe(tree.get('d/l1')!.sha);
    expect(tree.has('d/l3.ko')).toBe(false);
    const { entries } = await listInitramfs(chunked(out, 64));
    expect(entries.filter((e) => e.ino === 7).map((e) => [e.name, e.nlink, e.size])).toEqual([
      ['d/l1', 2, 0],
      ['d/l2', 2, data.length],
    ]);
  });

  it('a pending directory is kept (not lost, not reordered) when the hold queue overflows', async () => {
    const big = Buffer.alloc(HOLD_BYTES / 4, 0x61);
    const parts = [entry('.', 'd'), entry('z', 'd', undefined, 2)];
    // Entries that sort before "z/" and are not inside it keep "z" pending (find order, not sorted).
    for (let i = 0; i < 6; i++) parts.push(entry(`m${i}`, 'f', big, 10 + i));
    parts.push(entry('z/gone.ko', 'f', Buffer.from('k'), 30), trailer());
    const a = Buffer.concat(parts);
    const { output, done } = filterInitramfs(chunked(a, 65536), {
      decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep'),
    });
    const out = await collect(output);
    const rep = await done;
    expect(rep.removed).toEqual(['z/gone.ko']);
    expect(rep.removedDirs).toEqual([]); // settled as kept when the queue overflowed
    const tree = extractWithCpio(out);
    expect([...tree.keys()].sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'z']);
    // Order kept: "z" still comes right after ".".
    expect(out.indexOf('z\0')).toBeLessThan(out.indexOf('m0\0'));
  });

  it('a directory named twice does not stall the output (found by the property test)', async () => {
    const a = Buffer.concat([entry('_', 'd', undefined, 1), entry('_', 'd', undefined, 2), trailer()]);
    const kept = await collect(filterInitramfs(chunked(a, 1), { decide: () => 'keep' }).output);
    expect(kept.equals(a)).toBe(true);
    // The first one's contents all go: it stays all the same (safe), the output still completes.
    const b = Buffer.concat([
      entry('d', 'd', undefined, 1),
      entry('d/x.ko', 'f', Buffer.from('x'), 2),
      entry('d', 'd', undefined, 3),
      entry('d/y', 'f', Buffer.from('y'), 4),
      trailer(),
    ]);
    const { output, done } = filterInitramfs(chunked(b, 5), {
      decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep'),
    });
    await collect(output);
    const rep = await done;
    expect(rep.removed).toEqual(['d/x.ko']);
    const { entries } = await listInitramfs(
      chunked(
        await collect(
          filterInitramfs(chunked(b, 5), { decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep') })
            .output,
        ),
        7,
      ),
    );
    expect(entries.map((e) => e.name)).toEqual(['d', 'd', 'd/y']);
  });

  it('decide is asked once per entry, never for the trailer, and dropped data is not needed', async () => {
    const a = Buffer.concat([
      entry('.', 'd'),
      entry('m', 'd', undefined, 2),
      entry('m/x.ko', 'f', Buffer.alloc(300_000, 7), 3),
      entry('m/y', 'f', Buffer.from('y'), 4),
      trailer(),
    ]);
    const asked: string[] = [];
    const { output, done } = filterInitramfs(chunked(a, 4096), {
      decide: (e) => {
        asked.push(e.name);
        return e.name.endsWith('.ko') ? 'drop' : 'keep';
      },
    });
    const out = await collect(output);
    expect((await done).removed).toEqual(['m/x.ko']);
    expect(asked).toEqual(['.', 'm', 'm/x.ko', 'm/y']);
    const { entries } = await listInitramfs(chunked(out, 100));
    expect(entries.map((e) => e.name)).toEqual(['.', 'm', 'm/y']);
  });
});

describe('filter: decisions taken later', () => {
  const archive = (): Buffer =>
    Buffer.concat([
      entry('.', 'd'),
      entry('m', 'd', undefined, 2),
      entry('m/a.ko', 'f', Buffer.from('module a'), 3),
      entry('m/index', 'f', Buffer.from('a b c\n'), 4),
      entry('m/b.ko', 'f', Buffer.from('module b'), 5),
      entry('z', 'f', Buffer.from('after'), 6),
      trailer(),
    ]);

  it('an entry decided later holds the output behind it, then is replaced; inspect sees kept data', async () => {
    const later = new Later();
    const seen: string[] = [];
    const { output, done } = filterInitramfs(chunked(archive(), 5), {
      decide: (e) => {
        if (e.name === 'm/index') return { later };
        if (e.name === 'z') later.settle({ replace: Buffer.from(`kept: ${seen.join(' ')}\n`) });
        if (e.name.endsWith('.ko')) return { inspect: (d) => void seen.push(Buffer.concat(d).toString()) };
        return 'keep';
      },
    });
    const out = await collect(output);
    const rep = await done;
    expect(later.data!.toString()).toBe('a b c\n');
    expect(seen).toEqual(['module a', 'module b']);
    // Held in place: what came after it waited (the order is the input's).
    const { entries } = await listInitramfs(chunked(out, 9));
    expect(entries.map((e) => e.name)).toEqual(['.', 'm', 'm/a.ko', 'm/index', 'm/b.ko', 'z']);
    const tree = extractWithCpio(out);
    expect(tree.get('m/index')!.size).toBe('kept: module a module b\n'.length);
    expect(rep.segments[0]!.changed).toBe(true);
  });

  it('settled "keep" in onArchiveEnd: the archive comes out byte for byte', async () => {
    const later = new Later();
    const a = archive();
    const { output, done } = filterInitramfs(chunked(a, 7), {
      decide: (e) => (e.name === 'z' ? { later } : 'keep'),
      onArchiveEnd: () => later.settle('keep'),
    });
    expect((await collect(output)).equals(a)).toBe(true);
    expect((await done).segments[0]!.changed).toBe(false);
  });

  it('a decision never taken is a bug (INTERNAL); one that holds back too much is CPIO_HOLD_LIMIT', async () => {
    const never = filterInitramfs(chunked(archive(), 64), {
      decide: (e) => (e.name === 'm/index' ? { later: new Later() } : 'keep'),
    });
    await expect(collect(never.output)).rejects.toMatchObject({ code: 'INTERNAL' });
    const big = Buffer.alloc(HOLD_BYTES / 4, 0x61);
    const parts = [entry('first', 'f', Buffer.from('x'), 1)];
    for (let i = 0; i < 6; i++) parts.push(entry(`f${i}`, 'f', big, 10 + i));
    parts.push(trailer());
    const held = filterInitramfs(chunked(Buffer.concat(parts), 65536), {
      decide: (e) => (e.name === 'first' ? { later: new Later() } : 'keep'),
    });
    await expect(collect(held.output)).rejects.toMatchObject({ code: 'CPIO_HOLD_LIMIT' });
    await expect(held.done).rejects.toMatchObject({ code: 'CPIO_HOLD_LIMIT' });
  });
});

describe('filter memory', () => {
  it('passes kept data through as views of the input chunks: no copy, whatever the chunking', async () => {
    // Entries whose data spans several input chunks, as module files do in a decoded stream.
    const big = Buffer.alloc(100_000, 7);
    const a = Buffer.concat([
      entry('d', 'd', undefined, 1),
      entry('d/a.ko', 'f', big, 2),
      entry('d/b.ko', 'f', big, 3),
      entry('d/keep', 'f', big, 4),
      trailer(),
    ]);
    const inputChunks: Buffer[] = [];
    for (let at = 0; at < a.length; at += 16_384) inputChunks.push(Buffer.from(a.subarray(at, at + 16_384)));
    const inputMemory = new Set(inputChunks.map((c) => c.buffer));
    const { output, done } = filterInitramfs(
      (async function* () {
        yield* inputChunks;
      })(),
      { decide: (e) => (e.name.endsWith('.ko') ? 'drop' : 'keep') },
    );
    const outChunks: Buffer[] = [];
    for await (const c of output) outChunks.push(c as Buffer);
    await done;
    // Every byte of the kept file's data arrives in a chunk that is a view of an input chunk: the
    // output stream neither copies the data nor concatenates chunks.
    const dataChunks = outChunks.filter((c) => c.length > 0 && c.every((b) => b === 7));
    expect(dataChunks.reduce((n, c) => n + c.length, 0)).toBeGreaterThanOrEqual(big.length);
    for (const c of dataChunks) expect(inputMemory.has(c.buffer)).toBe(true);
    expect([...extractWithCpio(Buffer.concat(outChunks)).keys()].sort()).toEqual(['d', 'd/keep']);
  });
});
