/**
 * gzip decoding into reused output buffers, for the filter's decoded stream.
 *
 * A node:zlib stream hands out a fresh buffer for every output chunk. Most decoded bytes of a
 * pruned initramfs are read past (the dropped modules) and die at once, but fresh memory costs at
 * its first touch (a page fault per 4 KiB, 15-17 µs each on the bench VM) and each dead buffer waits
 * for a GC. Here the output goes into buffers from a ChunkPool, which the ByteReader hands back when
 * it has consumed them without letting a view out (see reader.ts), so most of the stream reuses the
 * same few hundred KiB. The input's chunks can be handed back too (onInputDone): each is done with
 * once zlib has taken all of it.
 *
 * It drives the zlib handle of a node:zlib Gunzip synchronously: `handle.writeSync`, the call behind
 * zlib.gunzipSync, with our own output buffer. That handle is node's internal object (stable since
 * Node 10, and what other packages use for the same reason); when it is missing or looks different,
 * gunzipReusing returns null and the caller uses the public stream. The decoding runs on the calling
 * thread, one output buffer per call.
 */
import * as zlib from 'node:zlib';
import type { ChunkPool } from '../binary/chunk-pool.js';
import type { ExpansionGuard } from './compression.js';
import type { GzipBlockSource } from './gzip-splice.js';

/** Output buffer size: a zlib call's worth of output. */
export const REUSE_CHUNK = 256 << 10;

interface ZlibHandle {
  writeSync(
    flush: number,
    input: Buffer,
    inOff: number,
    inLen: number,
    out: Buffer,
    outOff: number,
    outLen: number,
  ): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

interface GunzipInternals {
  _handle?: ZlibHandle;
  _writeState?: unknown;
  close(): void;
}

/** The handle and its result array [avail_out, avail_in] of a Gunzip, when they look as expected. */
function internals(z: GunzipInternals): { h: ZlibHandle; state: Uint32Array } | null {
  const h = z._handle;
  const state = z._writeState;
  if (!h || typeof h.writeSync !== 'function' || !(state instanceof Uint32Array) || state.length < 2)
    return null;
  return { h, state };
}

let supported: boolean | undefined;

/**
 * The decoded bytes of the gzip stream `input`, as views of pool buffers (each valid until given
 * back to the pool); null when node's zlib handle is not the one this was written for. Each input
 * chunk is passed to onInputDone once decoded from (zlib has copied what it needs). Errors are
 * zlib's, with its codes (wrap them with compressionError); `guard` sees every output byte count as
 * the stream decoder's would. With `blocks`, the deflate block boundaries are recorded there, and
 * the input chunks go to it (it hands them to onInputDone when no copy can need them).
 */
export function gunzipReusing(
  input: AsyncIterable<Buffer>,
  pool: ChunkPool,
  guard: ExpansionGuard,
  onInputDone?: (chunk: Buffer) => void,
  blocks?: GzipBlockSource,
): AsyncGenerator<Buffer> | null {
  if (supported === undefined) {
    const probe = zlib.createGunzip() as unknown as GunzipInternals;
    supported = internals(probe) !== null;
    probe.close();
  }
  if (!supported) return null;
  return (async function* (): AsyncGenerator<Buffer> {
    const z = zlib.createGunzip() as unknown as GunzipInternals;
    const { h, state } = internals(z)!;
    let failure: Error | undefined;
    // node's own handler destroys the stream object and emits later; ours records the error for
    // the loop to throw right after the call.
    h.onerror = (message, errno, code) => {
      failure = Object.assign(new Error(message), { errno, code });
    };
    // Decoding goes into `out` (a pool buffer) at `outAt`; a buffer is yielded when full, or when an
    // input chunk is used up, and never written into after that (its reader may hand it back).
    let out: Buffer | null = null;
    let outAt = 0;
    /** Decoded bytes so far, and compressed bytes before the current chunk (for `blocks`). */
    let decoded = 0;
    let chunkStart = 0;
    // One call: decodes input[inOff, inOff + inLen). Returns the input left, and whether the output
    // buffer was filled.
    const call = (flush: number, chunk: Buffer, inOff: number, inLen: number): [number, boolean] => {
      out ??= pool.get();
      h.writeSync(flush, chunk, inOff, inLen, out, outAt, out.length - outAt);
      if (failure) throw failure;
      const availOut = state[0]!;
      const have = out.length - outAt - availOut;
      if (have) guard.produced(have);
      outAt += have;
      decoded += have;
      return [state[1]!, availOut === 0];
    };
    /** The output so far (null when none), after which a new buffer is started. */
    const take = (): Buffer | null => {
      const b = out;
      const n = outAt;
      out = null;
      outAt = 0;
      if (!b) return null;
      if (n === 0) {
        pool.put(b);
        return null;
      }
      return b.subarray(0, n);
    };
    // With `blocks`, zlib stops at every deflate block boundary (Z_BLOCK), which is recorded.
    const flush = blocks ? zlib.constants.Z_BLOCK : zlib.constants.Z_NO_FLUSH;
    try {
      // Set when zlib stops short of the input with output space to spare: the gzip stream (and any
      // member that followed it) has ended, and what is left is padding. node's stream ends its
      // output there and ignores all later input, whatever it holds; so does this. (node's zlib
      // would read a later chunk that starts with a non-zero byte as one more member.) With Z_BLOCK
      // zlib also stops so at each block boundary: there the next call gets on; at the end it cannot.
      let ended = false;
      for await (const chunk of input) {
        blocks?.input(chunk);
        let inOff = 0;
        let inLen = chunk.length;
        while (inLen > 0 && !ended) {
          const before = decoded;
          const [left, full] = call(flush, chunk, inOff, inLen);
          const progress = left !== inLen || decoded !== before;
          inOff += inLen - left;
          inLen = left;
          if (full) {
            const b = take();
            if (b) yield b;
          } else if (left > 0) {
            if (!blocks || !progress) ended = true;
            else blocks.boundary(chunkStart + inOff, decoded);
          }
        }
        chunkStart += chunk.length;
        // zlib keeps no pointer into its input after a call; `blocks` hands the chunk back itself.
        if (!blocks) onInputDone?.(chunk);
        const b = take();
        if (b) yield b;
      }
      if (ended) return;
      // The input has ended: finish (zlib reports a stream cut short here).
      for (;;) {
        const [, full] = call(zlib.constants.Z_FINISH, EMPTY, 0, 0);
        const b = take();
        if (b) yield b;
        if (!full) break;
      }
    } finally {
      z.close();
    }
  })();
}

const EMPTY = Buffer.alloc(0);
