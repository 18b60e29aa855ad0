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
 * the stream decoder's would.
 */
export function gunzipReusing(
  input: AsyncIterable<Buffer>,
  pool: ChunkPool,
  guard: ExpansionGuard,
  onInputDone?: (chunk: Buffer) => void,
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
    // One call: decodes input[inOff, inOff + inLen) into a pool buffer. Returns the output (null
    // when there was none), the input left, and whether the output buffer was filled.
    const call = (
      flush: number,
      chunk: Buffer,
      inOff: number,
      inLen: number,
    ): [Buffer | null, number, boolean] => {
      const out = pool.get();
      h.writeSync(flush, chunk, inOff, inLen, out, 0, out.length);
      if (failure) throw failure;
      const availOut = state[0]!;
      const have = out.length - availOut;
      if (have === 0) pool.put(out);
      else guard.produced(have);
      return [have ? out.subarray(0, have) : null, state[1]!, availOut === 0];
    };
    try {
      // Set when zlib stops short of the input with output space to spare: the gzip stream (and any
      // member that followed it) has ended, and what is left is padding. node's stream ends its
      // output there and ignores all later input, whatever it holds; so does this. (node's zlib
      // would read a later chunk that starts with a non-zero byte as one more member.)
      let ended = false;
      for await (const chunk of input) {
        let inOff = 0;
        let inLen = chunk.length;
        // Until zlib leaves output space unused: then it has taken all it can of this chunk.
        while (inLen > 0 && !ended) {
          const [out, left, full] = call(zlib.constants.Z_NO_FLUSH, chunk, inOff, inLen);
          inOff += inLen - left;
          inLen = left;
          if (out) yield out;
          if (!full) {
            ended = left > 0;
            break;
          }
        }
        onInputDone?.(chunk); // zlib keeps no pointer into its input after a call
      }
      if (ended) return;
      // The input has ended: finish (zlib reports a stream cut short here).
      for (;;) {
        const [out, , full] = call(zlib.constants.Z_FINISH, EMPTY, 0, 0);
        if (out) yield out;
        if (!full) break;
      }
    } finally {
      z.close();
    }
  })();
}

const EMPTY = Buffer.alloc(0);
