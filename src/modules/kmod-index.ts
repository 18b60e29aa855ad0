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
import { globToRegExp } from './names.js';
import { latin1Write } from './text.js';

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

/** Whether s holds only 7-bit ASCII without NUL, all a kmod index can hold. */
export function isIndexable(s: string): boolean {
  return !NOT_INDEXABLE.test(s);
}

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

/**
 * Collects (key, value, priority) entries and writes them as a kmod index with depmod's semantics.
 * The default (post-order) writer works from the sorted keys, without building a node tree.
 */
export class IndexBuilder {
  private readonly keys: string[] = [];
  private readonly values: string[] = [];
  private readonly priorities: number[] = [];

  get count(): number {
    return this.keys.length;
  }

  /** Entries are checked when encoded (one scan over all of them). */
  insert(key: string, value: string, priority: number): void {
    this.keys.push(key);
    this.values.push(value);
    this.priorities.push(priority);
  }

  /** Serialises the trie the way depmod does ('post' = kmod <= 33: root last, 'pre' = kmod >= 34: root first). */
  encode(order: IndexWriteOrder = 'post'): Buffer {
    return encodeEntries(this.keys, this.values, this.priorities, order);
  }
}

/**
 * The same for entries given as three parallel arrays (entry i is keys[i] -> values[i] with
 * priorities[i]): callers that have the arrays skip an insert call per entry.
 */
export function encodeEntries(
  keys: string[],
  values: string[],
  priorities: number[],
  order: IndexWriteOrder = 'post',
  /** the caller saw every key and value fit (isIndexable on a text holding them all) */
  checked = false,
): Buffer {
  // One native scan of everything; the per-string check only to name the culprit.
  if (!checked && (NOT_INDEXABLE.test(keys.join('\x01')) || NOT_INDEXABLE.test(values.join('\x01')))) {
    for (let i = 0; i < keys.length; i++) {
      checkAscii(keys[i]!, 'key');
      checkAscii(values[i]!, 'value');
    }
  }
  if (order === 'post') return encodeSortedPost(keys, values, priorities);
  const root = buildTree(keys, values, priorities);
  const total = measure(root);
  // Zeroed: gaps in a child range must read as 0 ("no child").
  const out = Buffer.alloc(INDEX_HEADER_SIZE + total);
  setBe32(out, OFF_MAGIC, INDEX_MAGIC);
  setBe32(out, OFF_VERSION, INDEX_VERSION);
  placePre(root, INDEX_HEADER_SIZE);
  setBe32(out, OFF_ROOT, ref(root));
  writeNodes(root, out);
  return out;
}

/** The node tree depmod builds (`index_insert`), for the pre-order writer. */
function buildTree(keys: string[], values: string[], priorities: number[]): TrieNode {
  const root = newNode('');
  for (let e = 0; e < keys.length; e++) {
    const key = keys[e]!;
    let node = root;
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
        addValue(node, values[e]!, priorities[e]!);
        break;
      }
      const ch = key.charCodeAt(i);
      const child = getChild(node, ch);
      if (!child) {
        const leaf = newNode(key.slice(i + 1));
        addValue(leaf, values[e]!, priorities[e]!);
        setChild(node, ch, leaf);
        break;
      }
      node = child;
      i++;
    }
  }
  return root;
}

/**
 * depmod's post-order file straight from the sorted distinct keys, in one pass over them (the way
 * a compressed trie follows from sorted keys and their common-prefix lengths): the nodes on the
 * path to the last key are open, each by the key length it ends at. A key that shares only l
 * characters with the previous one closes every open node ending past l, writing it (its children
 * are written, so its child table knows their offsets); a node ending at l is opened where the two
 * keys part, if none is open there. A key ending exactly at a node gives it values. The root never
 * has a prefix (depmod's root starts empty and is never split).
 */
function encodeSortedPost(keys: string[], values: string[], priorities: number[]): Buffer {
  // Entry indexes per key; most keys have one value.
  const byKey = new Map<string, number | number[]>();
  for (let e = 0; e < keys.length; e++) {
    const had = byKey.get(keys[e]!);
    if (had === undefined) byKey.set(keys[e]!, e);
    else if (typeof had === 'number') byKey.set(keys[e]!, [had, e]);
    else had.push(e);
  }
  // Default sort compares UTF-16 units: byte order for these 7-bit keys, as the trie's edge order.
  const sorted = [...byKey.keys()].sort();
  const n = sorted.length;

  let size = INDEX_HEADER_SIZE + 64;
  for (let e = 0; e < keys.length; e++) size += keys[e]!.length + values[e]!.length + 16;
  // Zeroed: a NUL after a string and a gap in a child range ("no child") are left as they are.
  // Strings are copied by one native call each and numbers written by a DataView: in a cold
  // process a loop per byte costs a property load and a call per character.
  let out = Buffer.alloc(size);
  let view = new DataView(out.buffer, out.byteOffset, out.length);
  let at = INDEX_HEADER_SIZE;
  const room = (k: number): void => {
    if (at + k <= out.length) return;
    const bigger = Buffer.alloc(Math.max(out.length * 2, at + k));
    out.copy(bigger, 0, 0, at);
    out = bigger;
    view = new DataView(out.buffer, out.byteOffset, out.length);
  };

  // The open nodes, root first: the key length each ends at, where its children start in
  // childChars/childRefs, and the key ending exactly there (index into sorted) or -1. Every open
  // node but the root ends at a different length, so there are at most n + 1.
  const ends = new Int32Array(n + 2);
  const firstChild = new Int32Array(n + 2);
  const valueKey = new Int32Array(n + 2).fill(-1);
  let top = 0;
  // Children written but not yet in their parent's table: (edge character, reference) pairs of
  // disjoint runs of keys, so never more than n. Typed arrays with a top index: shrinking a JS
  // array by setting its length is a runtime call, slow in a cold process.
  const childChars = new Int32Array(n + 1);
  const childRefs = new Int32Array(n + 1);
  let children = 0;

  // Writes the open node on top, whose text is key[0, ends[top]) and whose parent ends at
  // `parentEnd`; returns its reference (an int32: the flag bits make it negative).
  const close = (key: string, parentEnd: number): number => {
    const end = ends[top]!;
    const mark = firstChild[top]!;
    let r = at;
    // Room for the prefix and the child table at once (values are checked below).
    const span = children > mark ? childChars[children - 1]! - childChars[mark]! + 1 : 0;
    room(end - parentEnd + 2 + 4 * span);
    if (end > parentEnd + 1) {
      at += latin1Write(out, key.slice(parentEnd + 1, end), at) + 1;
      r |= NODE_PREFIX;
    }
    if (span > 0) {
      const c0 = childChars[mark]!;
      out[at] = c0;
      out[at + 1] = c0 + span - 1;
      at += 2;
      for (let k = mark; k < children; k++) view.setInt32(at + 4 * (childChars[k]! - c0), childRefs[k]!);
      at += 4 * span;
      children = mark;
      r |= NODE_CHILDS;
    }
    if (valueKey[top]! >= 0) {
      const v = byKey.get(sorted[valueKey[top]!]!)!;
      const list = typeof v === 'number' ? null : orderValues(v, priorities);
      const count = list ? list.length : 1;
      room(4);
      view.setUint32(at, count);
      at += 4;
      for (let k = 0; k < count; k++) {
        const e = list ? list[k]! : (v as number);
        room(5 + values[e]!.length);
        view.setUint32(at, priorities[e]!);
        at += 4 + latin1Write(out, values[e]!, at + 4) + 1;
      }
      r |= NODE_VALUES;
    }
    return r;
  };

  let prev = '';
  // One step past the last key closes every node but the root.
  for (let i = 0; i <= n; i++) {
    const key = i < n ? sorted[i]! : '';
    // l = length of the common prefix of prev and key: 16 characters at a time, then 8, 4, 2, 1,
    // each step one native comparison (a loop per character, in a cold process, costs a property
    // load and two calls per character; symbol keys share long prefixes).
    let l = 0;
    if (i > 0 && i < n) {
      const m = prev.length < key.length ? prev.length : key.length;
      while (l + 16 <= m && prev.startsWith(key.slice(l, l + 16), l)) l += 16;
      for (let step = 8; step > 0; step >>= 1)
        if (l + step <= m && prev.startsWith(key.slice(l, l + step), l)) l += step;
    }
    while (ends[top]! > l) {
      const parentEnd = ends[top - 1]! > l ? ends[top - 1]! : l;
      const ref = close(prev, parentEnd);
      top--;
      // prev and key part at l, below the closed node and past its parent: a node opens there.
      if (ends[top]! < l) {
        top++;
        ends[top] = l;
        firstChild[top] = children;
        valueKey[top] = -1;
      }
      childChars[children] = prev.charCodeAt(parentEnd);
      childRefs[children] = ref;
      children++;
    }
    if (i === n) break;
    // Sorted and distinct: key is longer than l, except an empty first key (the root's value).
    if (key.length === 0) valueKey[0] = i;
    else {
      top++;
      ends[top] = key.length;
      firstChild[top] = children;
      valueKey[top] = i;
    }
    prev = key;
  }
  const rootRef = close('', -1);
  setBe32(out, OFF_MAGIC, INDEX_MAGIC);
  setBe32(out, OFF_VERSION, INDEX_VERSION);
  setBe32(out, OFF_ROOT, rootRef);
  return out.subarray(0, at);
}

/** depmod's value order for one key: ascending priority, a later insertion before an earlier equal one. */
function orderValues(entries: number[], priorities: number[]): number[] {
  return [...entries].sort((a, b) => priorities[a]! - priorities[b]! || b - a);
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

/** Pre-order offsets: the node, then each child subtree in edge order. */
function placePre(n: TrieNode, at: number): number {
  n.offset = at;
  at += n.size;
  if (n.children) for (const k of n.children) at = placePre(k, at);
  return at;
}

/**
 * Copies a 7-bit string (checked on insert) byte by byte: keys and values are short, and a loop
 * beats a Buffer method call (a JS wrapper each) in a cold process.
 */
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
    if (f.ref & NODE_VALUES) at = readValuesAt(buf, at, key, entries);
    // Push in reverse so children come off the stack in edge order (key order overall).
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!);
  }
  return { entries, order: rootOff === INDEX_HEADER_SIZE ? 'pre' : 'post' };
}

/** Exact-match lookup in a decoded entry list: the values of `key`, lowest priority first. */
export function lookupIndex(entries: IndexEntry[], key: string): IndexEntry[] {
  return entries.filter((e) => e.key === key);
}

/** One node read in place (for lookups that visit a few nodes instead of decoding the file). */
interface NodeView {
  prefix: string;
  /** child range; first > last when the node has none */
  first: number;
  last: number;
  /** offset of the child reference table */
  childAt: number;
  /** offset of the value count, or -1 */
  valuesAt: number;
}

function checkHeader(buf: Buffer): number {
  if (buf.length < INDEX_HEADER_SIZE) bad(`file of ${buf.length} bytes is shorter than the header`, 0);
  const magic = be32(buf, OFF_MAGIC);
  if (magic !== INDEX_MAGIC) bad(`bad magic ${hex(magic)}, expected ${hex(INDEX_MAGIC)}`, OFF_MAGIC);
  const version = be32(buf, OFF_VERSION);
  if (version >>> 16 !== INDEX_VERSION_MAJOR) bad(`unsupported version ${hex(version)}`, OFF_VERSION);
  return be32(buf, OFF_ROOT);
}

function readNode(buf: Buffer, r: number): NodeView {
  const off = r & NODE_MASK;
  if (off < INDEX_HEADER_SIZE || off > buf.length)
    bad(`node reference ${hex(r)} points outside the file`, off);
  if ((r & NODE_FLAGS & ~(NODE_PREFIX | NODE_VALUES | NODE_CHILDS)) !== 0)
    bad(`node reference ${hex(r)} has unknown flags`, off);
  let at = off;
  let prefix = '';
  if (r & NODE_PREFIX) [prefix, at] = readString(buf, at, 'prefix');
  let first = 1;
  let last = 0;
  let childAt = 0;
  if (r & NODE_CHILDS) {
    if (at + 2 > buf.length) bad('child range runs past the end of the file', at);
    first = buf[at]!;
    last = buf[at + 1]!;
    if (first > last || last >= INDEX_CHILDMAX) bad(`bad child range ${hex(first)}..${hex(last)}`, at);
    childAt = at + 2;
    at = childAt + 4 * (last - first + 1);
    if (at > buf.length) bad(`child references run past the end of the file`, childAt);
  }
  return { prefix, first, last, childAt, valuesAt: r & NODE_VALUES ? at : -1 };
}

/** The reference of the child under edge character `ch`, or 0. */
function childRef(buf: Buffer, n: NodeView, ch: number): number {
  return ch >= n.first && ch <= n.last ? be32(buf, n.childAt + 4 * (ch - n.first)) : 0;
}

function readValues(buf: Buffer, n: NodeView, key: string, out: IndexEntry[]): void {
  if (n.valuesAt >= 0) readValuesAt(buf, n.valuesAt, key, out);
}

/** Reads the value list at `at` (u32 count, then priority + NUL-terminated value each); returns its end. */
function readValuesAt(buf: Buffer, at: number, key: string, out: IndexEntry[]): number {
  if (at + 4 > buf.length) bad('value count runs past the end of the file', at);
  const count = be32(buf, at);
  at += 4;
  // Each value needs at least 5 bytes (priority + NUL).
  if (count > (buf.length - at) / 5) bad(`value count ${hex(count)} does not fit in the file`, at - 4);
  for (let i = 0; i < count; i++) {
    if (at + 4 > buf.length) bad('value runs past the end of the file', at);
    const priority = be32(buf, at);
    const [value, next] = readString(buf, at + 4, 'value');
    out.push({ key, value, priority });
    at = next;
  }
  return at;
}

const WILDCARDS = [0x2a /* * */, 0x3f /* ? */, 0x5b /* [ */];

/**
 * Every entry whose key, read as an fnmatch pattern, matches `key`: kmod's `index_searchwild`
 * (how modprobe resolves an alias through modules.alias.bin). Walks only the path of `key` plus the
 * subtrees that start with a wildcard, reading nodes in place. Bounded: at most one node visit per
 * byte of the file, and the chain depth is limited.
 */
export function searchIndexWild(buf: Buffer, key: string): IndexEntry[] {
  const rootRef = checkHeader(buf);
  const out: IndexEntry[] = [];
  if ((rootRef & NODE_MASK) === 0) return out;
  let budget = buf.length;
  const visit = (r: number): NodeView => {
    if (--budget < 0) bad('node visits exceed the file size (shared or looping nodes)', r & NODE_MASK);
    return readNode(buf, r);
  };
  // A subtree whose key already holds a wildcard: collect its keys, fnmatch each against the rest.
  // `head` = key text before the wildcard, `pattern` = key text from it, `rest` = what it must match.
  const all = (n: NodeView, j: number, head: string, pattern: string, rest: string, depth: number): void => {
    if (depth > INDEX_MAX_DEPTH) bad(`trie deeper than ${INDEX_MAX_DEPTH}`, n.childAt);
    pattern += n.prefix.slice(j);
    for (let ch = n.first; ch <= n.last; ch++) {
      const c = childRef(buf, n, ch);
      if (c & NODE_MASK) all(visit(c), 0, head, pattern + String.fromCharCode(ch), rest, depth + 1);
    }
    if (n.valuesAt >= 0 && globToRegExp(pattern).test(rest)) readValues(buf, n, head + pattern, out);
  };
  let n: NodeView | null = visit(rootRef);
  let i = 0;
  for (let depth = 0; n; depth++) {
    if (depth > INDEX_MAX_DEPTH) bad(`trie deeper than ${INDEX_MAX_DEPTH}`, n.childAt);
    const p = n.prefix;
    for (let j = 0; j < p.length; j++) {
      const ch = p.charCodeAt(j);
      if (WILDCARDS.includes(ch)) {
        all(n, j, key.slice(0, i + j), '', key.slice(i + j), depth);
        return out;
      }
      if (ch !== key.charCodeAt(i + j)) return out;
    }
    i += p.length;
    for (const w of WILDCARDS) {
      const c = childRef(buf, n, w);
      if (c & NODE_MASK) all(visit(c), 0, key.slice(0, i), String.fromCharCode(w), key.slice(i), depth + 1);
    }
    if (i === key.length) {
      readValues(buf, n, key, out);
      return out;
    }
    const c = childRef(buf, n, key.charCodeAt(i++));
    n = c & NODE_MASK ? visit(c) : null;
  }
  return out;
}
