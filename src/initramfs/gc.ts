/**
 * A garbage collection on request, to bound the memory of a long stream.
 *
 * Decompressors hand out a fresh 256 KiB buffer per output chunk (all but gzip, which reuses its
 * buffers: gunzip-reuse.ts), and the cpio walk drops most of them at once (the dropped modules). V8
 * frees a dead buffer's memory only when a GC runs, and our JavaScript allocates too little to
 * trigger one: tens of MB of dead buffers pile up between GCs.
 * Filtering a 500 MB archive peaked at 100-104 MB RSS; with a scavenge (young-generation GC, well
 * under 1 ms here) every 4 MiB of decoded data, at 82-85 MB, no slower. (The filter now counts the
 * bytes of buffers that die rather than all decoded bytes: see GC_EVERY in initramfs.ts.)
 *
 * `gc` is exposed only with node's --expose-gc flag; setting the flag at run time makes contexts
 * created afterwards see it (the technique of the expose-gc package, three lines, not worth a
 * dependency). Where that does not work, this is a no-op.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

type Gc = (options?: { type: 'minor'; execution?: 'sync' | 'async' }) => void;

let gc: Gc | null | undefined;

function load(): Gc | null {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as Gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn: unknown = vm.runInNewContext('gc');
    return typeof fn === 'function' ? (fn as Gc) : null;
  } catch {
    return null;
  }
}

/**
 * Runs a young-generation ('minor') or full ('major') GC now, when the runtime allows it.
 * The full one is `gc()` without options. In Node 20, `gc({ type: 'major' })` does not free a dead
 * buffer that had reached the old generation (gc.test.ts): filtering a 2 GB archive grew to
 * 100 MB RSS with it, and stays at 79-82 MB with `gc()` (80 at 500 MB).
 */
export function collectGarbage(type: 'minor' | 'major'): void {
  if (gc === undefined) gc = load();
  if (type === 'major') gc?.();
  else gc?.({ type });
}
