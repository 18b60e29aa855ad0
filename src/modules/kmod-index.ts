/**
 * kmod binary index files (modules.dep.bin, modules.alias.bin, modules.symbols.bin,
 * modules.builtin.bin, modules.builtin.alias.bin): a Patricia trie of keys, each key carrying a
 * list of (priority, value) pairs.
 *
 * Source: kmod-project/kmod `libkmod/libkmod-index.c` (format comment, readers) and
 * `tools/depmod.c` (`index_insert`, `index_write__node`, `index_write`). Facts restated, no code copied.
 *
 * Layout, every integer big-endian u32, every string NUL-terminated 7-bit ASCII:
 *
 *   header  0  magic    0xB007F457
 *           4  version  0x00020001 (readers only check the major half, version >>> 16 === 2)
 *           8  root     node reference
 *
 *   node reference: offset (bits 0-27) | PREFIX 0x80000000 | VALUES 0x40000000 | CHILDS 0x20000000;
 *                   offset 0 means "no node" (used for gaps in a child range)
 *
 *   node at offset:  [PREFIX] prefix\0
 *                    [CHILDS] u8 first, u8 last (< 128), u32 child[last - first + 1]
 *                    [VALUES] u32 count, count x { u32 priority, value\0 } (ascending priority)
 *
 * The key of a value is the concatenation along the path: prefix, edge char, prefix, ...
 *
 * Write order: kmod up to 33 writes the trie post-order (children before their parent, so the
 * root is the last node); kmod 34 and later write it pre-order (root at offset 12). The trie
 * itself is canonical (independent of insertion order), so given the same (key, value, priority)
 * set and the same order, the bytes are the same as depmod's. Values with equal priority: depmod
 * puts a later insertion before an earlier one.
 */
import { be32, setBe32 } from '../binary/bytes.js';
import { UlfsError, hex } from '../errors.js';

export const INDEX_MAGIC = 0xb007f457;
export const INDEX_VERSION = 0x00020001;
export const INDEX_VERSION_MAJOR = 2;
export const INDEX_HEADER_SIZE = 12;
const OFF_MAGIC = 0;
const OFF_VERSION = 4;
const OFF_ROOT = 8;

export const NODE_PREFIX = 0x80000000;
export const NODE_VALUES = 0x40000000;
export const NODE_CHILDS = 0x20000000;
export const NODE_FLAGS = 0xf0000000;
export const NODE_MASK = 0x0fffffff;
/** Edge characters are 7-bit: a child range ends below 128. */
export const INDEX_CHILDMAX = 128;

/** Deepest node chain the decoder follows; real keys are a few hundred characters at most. */
export const INDEX_MAX_DEPTH = 4096;

export interface IndexEntry {
  key: string;
  value: string;
  priority: number;
}

export type IndexWriteOrder = 'post' | 'pre';

interface TrieValue {
  priority: number;
  value: string;
}

interface TrieNode {
  prefix: string;
  /** edge chars, ascending, and the child under each (parallel arrays: nodes have few children) */
  chars: number[] | null;
  children: TrieNode[] | null;
  values: TrieValue[] | null;
  /** filled by the writer */
  size: number;
  total: number;
  offset: number;
}

function newNode(prefix: string): TrieNode {
  return {
    prefix,
    chars: null,
    children: null,
    values: null,
    size: 0,
    total: 0,
    offset: 0,
  };
}

const NOT_INDEXABLE = /[^\x01-\x7f]/;

function checkAscii(s: string, what: string): void {
  const m = NOT_INDEXABLE.exec(s);
  if (m) {
    throw new UlfsError(
      'KMOD_INDEX_BAD',
      `${what} ${JSON.stringify(s)} has byte ${hex(m[0].charCodeAt(0))}: only 7-bit ASCII fits a kmod index`,
      {
        key: s,
      },
    );
  }
}

function addValue(node: TrieNode, value: string, priority: number): void {
  const vals = (node.values ??= []);
  // Before the first value whose priority is >= the new one (depmod's order for ties).
  let i = 0;
  while (i < vals.length && vals[i]!.priority < priority) i++;
  vals.splice(i, 0, { priority, value });
}

function getChild(node: TrieNode, ch: number): TrieNode | undefined {
  const chars = node.chars;
  if (!chars) return undefined;
  for (let i = 0; i < chars.length; i++) if (chars[i] === ch) return node.children![i];
  return undefined;
}

function setChild(node: TrieNode, ch: number, child: TrieNode): void {
  const chars = (node.chars ??= []);
  const kids = (node.children ??= []);
  let i = chars.length;
  while (i > 0 && chars[i - 1]! > ch) i--;
  chars.splice(i, 0, ch);
  kids.splice(i, 0, child);
}

/** An in-memory trie with depmod's insertion semantics. */
export class IndexBuilder {
  private readonly root = newNode('');
  count = 0;

  insert(key: string, value: string, priority: number): void {
    checkAscii(key, 'key');
    checkAscii(value, 'value');
    let node = this.root;
    let i = 0;
    // Bounded by the key length: every step consumes at least one key character or ends.
    for (;;) {
      const p = node.prefix;
      let j = 0;
      while (j < p.length && key.charCodeAt(i + j) === p.charCodeAt(j)) j++;
      if (j < p.length) {
        // Split: node keeps prefix[0..j), a new child at prefix[j] takes the rest and the contents.
        const rest = newNode(p.slice(j + 1));
        rest.chars = node.chars;
        rest.children = node.children;
        rest.values = node.values;
        node.prefix = p.slice(0, j);
        node.chars = null;
        node.children = null;
        node.values = null;
        setChild(node, p.charCodeAt(j), rest);
      }
      i += j;
      if (i === key.length) {
        addValue(node, value, priority);
        this.count++;
        return;
      }
      const ch = key.charCodeAt(i);
      const child = getChild(node, ch);
      if (!child) {
        const leaf = newNode(key.slice(i + 1));
        addValue(leaf, value, priority);
        setChild(node, ch, leaf);
        this.count++;
        return;
      }
      node = child;
      i++;
    }
  }

  /** Serialises the trie the way depmod does ('post' = kmod <= 33, 'pre' = kmod >= 34). */
  encode(order: IndexWriteOrder = 'post'): Buffer {
    if (order === 'post') return encodePost(this.root);
    const total = measure(this.root);
    const out = Buffer.alloc(INDEX_HEADER_SIZE + total);
    setBe32(out, OFF_MAGIC, INDEX_MAGIC);
    setBe32(out, OFF_VERSION, INDEX_VERSION);
    placePre(this.root, INDEX_HEADER_SIZE);
    setBe32(out, OFF_ROOT, ref(this.root));
    writeNodes(this.root, out);
    return out;
  }
}

/**
 * Post-order in one pass, as depmod does it: each child is written before its parent, so the
 * parent's child table already knows the offsets. Writes into a buffer that doubles when full.
 */
function encodePost(root: TrieNode): Buffer {
  let out = Buffer.alloc(4096);
  let at = INDEX_HEADER_SIZE;
  const room = (n: number): void => {
    if (at + n <= out.length) return;
    let size = out.length * 2;
    while (size < at + n) size *= 2;
    const bigger = Buffer.alloc(size);
    out.copy(bigger, 0, 0, at);
    out = bigger;
  };
  const write = (n: TrieNode): number => {
    let childRefs: number[] | null = null;
    if (n.children) {
      childRefs = new Array<number>(n.children.length);
      for (let i = 0; i < n.children.length; i++) childRefs[i] = write(n.children[i]!);
    }
    const offset = at;
    let r = offset;
    if (n.prefix.length) {
      room(n.prefix.length + 1);
      at = putAscii(out, at, n.prefix);
      r |= NODE_PREFIX;
    }
    if (n.chars) {
      const chars = n.chars;
      const first = chars[0]!;
      const span = chars[chars.length - 1]! - first + 1;
      room(2 + 4 * span);
      out[at++] = first;
      out[at++] = first + span - 1;
      // Gaps in the range stay 0 ("no child"): the buffer is allocated zeroed.
      for (let i = 0; i < chars.length; i++) setBe32(out, at + 4 * (chars[i]! - first), childRefs![i]!);
      at += 4 * span;
      r |= NODE_CHILDS;
    }
    if (n.values) {
      room(4);
      setBe32(out, at, n.values.length);
      at += 4;
      for (const v of n.values) {
        room(5 + v.value.length);
        setBe32(out, at, v.priority);
        at = putAscii(out, at + 4, v.value);
      }
      r |= NODE_VALUES;
    }
    return r >>> 0;
  };
  const rootRef = write(root);
  const file = out.subarray(0, at);
  setBe32(file, OFF_MAGIC, INDEX_MAGIC);
  setBe32(file, OFF_VERSION, INDEX_VERSION);
  setBe32(file, OFF_ROOT, rootRef);
  return Buffer.from(file);
}

function ref(n: TrieNode): number {
  let r = n.offset;
  if (n.prefix.length) r |= NODE_PREFIX;
  if (n.chars) r |= NODE_CHILDS;
  if (n.values) r |= NODE_VALUES;
  return r >>> 0;
}

/** Sets node.size (own bytes) and node.total (subtree bytes); returns total. */
function measure(n: TrieNode): number {
  let size = n.prefix.length ? n.prefix.length + 1 : 0;
  let total = 0;
  if (n.chars) {
    size += 2 + 4 * (n.chars[n.chars.length - 1]! - n.chars[0]! + 1);
    for (const k of n.children!) total += measure(k);
  }
  if (n.values) {
    size += 4;
    for (const v of n.values) size += 4 + v.value.length + 1;
  }
  n.size = size;
  n.total = size + total;
  return n.total;
}

function placePre(n: TrieNode, at: number): number {
  n.offset = at;
  at += n.size;
  if (n.children) for (const k of n.children) at = placePre(k, at);
  return at;
}

/** Copies a 7-bit string (checked on insert) byte by byte: cheaper than Buffer#write for short strings. */
function putAscii(out: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[at++] = s.charCodeAt(i);
  out[at++] = 0;
  return at;
}

function writeNodes(n: TrieNode, out: Buffer): void {
  let at = n.offset;
  if (n.prefix.length) at = putAscii(out, at, n.prefix);
  if (n.chars) {
    const chars = n.chars;
    const first = chars[0]!;
    const last = chars[chars.length - 1]!;
    out[at++] = first;
    out[at++] = last;
    // Gaps in the range stay 0 ("no child"): the buffer is allocated zeroed.
    for (let i = 0; i < chars.length; i++) {
      const k = n.children![i]!;
      setBe32(out, at + 4 * (chars[i]! - first), ref(k));
      writeNodes(k, out);
    }
    at += 4 * (last - first + 1);
  }
  if (n.values) {
    setBe32(out, at, n.values.length);
    at += 4;
    for (const v of n.values) {
      setBe32(out, at, v.priority);
      at = putAscii(out, at + 4, v.value);
    }
  }
}

/** Builds an index file from entries (any order; ties in priority keep depmod's rule). */
export function encodeIndex(entries: Iterable<IndexEntry>, order: IndexWriteOrder = 'post'): Buffer {
  const b = new IndexBuilder();
  for (const e of entries) b.insert(e.key, e.value, e.priority);
  return b.encode(order);
}

function bad(what: string, off: number, data: Record<string, unknown> = {}): never {
  throw new UlfsError('KMOD_INDEX_BAD', `kmod index: ${what} at offset ${hex(off)}`, {
    offset: off,
    ...data,
  });
}

/** Reads a NUL-terminated ASCII string inside the file; returns [string, offset after the NUL]. */
function readString(buf: Buffer, off: number, what: string): [string, number] {
  const end = buf.indexOf(0, off);
  if (end < 0) bad(`${what} runs past the end of the file`, off);
  return [buf.toString('latin1', off, end), end + 1];
}

export interface DecodedIndex {
  /** entries in key order (the trie's traversal order), values of a key in stored order */
  entries: IndexEntry[];
  /** 'post' when the root comes after its children, 'pre' when it is the first node */
  order: IndexWriteOrder;
}

/**
 * Decodes a whole index file. Bounded: every offset must lie inside the file and after the
 * header, each node is visited once (a shared or looping reference is corruption), the chain
 * depth is limited, and every count is checked against the bytes left before it sizes anything.
 */
export function decodeIndex(buf: Buffer): DecodedIndex {
  if (buf.length < INDEX_HEADER_SIZE) bad(`file of ${buf.length} bytes is shorter than the header`, 0);
  const magic = be32(buf, OFF_MAGIC);
  if (magic !== INDEX_MAGIC) bad(`bad magic ${hex(magic)}, expected ${hex(INDEX_MAGIC)}`, OFF_MAGIC);
  const version = be32(buf, OFF_VERSION);
  if (version >>> 16 !== INDEX_VERSION_MAJOR) bad(`unsupported version ${hex(version)}`, OFF_VERSION);
  const rootRef = be32(buf, OFF_ROOT);
  const entries: IndexEntry[] = [];
  const visited = new Set<number>();
  const rootOff = rootRef & NODE_MASK;
  if (rootOff === 0) return { entries, order: 'pre' };

  // Explicit stack instead of recursion: depth stays bounded and no JS stack overflow.
  interface Frame {
    ref: number;
    key: string;
    depth: number;
  }
  const stack: Frame[] = [{ ref: rootRef, key: '', depth: 0 }];
  while (stack.length) {
    const f = stack.pop()!;
    const off = f.ref & NODE_MASK;
    if (off < INDEX_HEADER_SIZE || off > buf.length)
      bad(`node reference ${hex(f.ref)} points outside the file`, off);
    if ((f.ref & NODE_FLAGS & ~(NODE_PREFIX | NODE_VALUES | NODE_CHILDS)) !== 0)
      bad(`node reference ${hex(f.ref)} has unknown flags`, off);
    if (visited.has(off)) bad(`node reached twice (loop or shared node)`, off);
    visited.add(off);
    if (f.depth > INDEX_MAX_DEPTH) bad(`trie deeper than ${INDEX_MAX_DEPTH}`, off);
    let at = off;
    let key = f.key;
    if (f.ref & NODE_PREFIX) {
      const [p, next] = readString(buf, at, 'prefix');
      key += p;
      at = next;
    }
    const kids: Frame[] = [];
    if (f.ref & NODE_CHILDS) {
      if (at + 2 > buf.length) bad('child range runs past the end of the file', at);
      const first = buf[at]!;
      const last = buf[at + 1]!;
      at += 2;
      if (first > last || last >= INDEX_CHILDMAX) bad(`bad child range ${hex(first)}..${hex(last)}`, at - 2);
      const n = last - first + 1;
      if (at + 4 * n > buf.length) bad(`${n} child references run past the end of the file`, at);
      for (let i = 0; i < n; i++) {
        const r = be32(buf, at + 4 * i);
        if ((r & NODE_MASK) !== 0)
          kids.push({ ref: r, key: key + String.fromCharCode(first + i), depth: f.depth + 1 });
      }
      at += 4 * n;
    }
    if (f.ref & NODE_VALUES) {
      if (at + 4 > buf.length) bad('value count runs past the end of the file', at);
      const count = be32(buf, at);
      at += 4;
      // Each value needs at least 5 bytes (priority + NUL).
      if (count > (buf.length - at) / 5) bad(`value count ${hex(count)} does not fit in the file`, at - 4);
      for (let i = 0; i < count; i++) {
        if (at + 4 > buf.length) bad('value runs past the end of the file', at);
        const priority = be32(buf, at);
        const [value, next] = readString(buf, at + 4, 'value');
        entries.push({ key, value, priority });
        at = next;
      }
    }
    // Push in reverse so children come off the stack in edge order (key order overall).
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!);
  }
  return { entries, order: rootOff === INDEX_HEADER_SIZE ? 'pre' : 'post' };
}

/** Exact-match lookup in a decoded entry list: the values of `key`, lowest priority first. */
export function lookupIndex(entries: IndexEntry[], key: string): IndexEntry[] {
  return entries.filter((e) => e.key === key);
}
