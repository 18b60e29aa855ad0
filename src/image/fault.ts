/**
 * FaultDevice: a BlockDevice wrapper that fails like a crash, for tests. The k-th counted call
 * (1-based; writes, syncs, or both) throws IO_ERROR, optionally after writing only the first
 * `partialBytes` of that write (a torn write). From then on every write and sync throws too: the
 * "process" is dead and nothing more reaches the disk. Reads keep working.
 */
import { UlfsError } from '../errors.js';
import { readUncached, type BlockDevice } from './blockdev.js';

export interface FaultPlan {
  /** 1-based index of the call that fails. */
  failAt: number;
  /** Which calls count. Default 'any' (writes and syncs). */
  on?: 'write' | 'sync' | 'any';
  /** Bytes of the failing write that still reach the device first. Default 0. */
  partialBytes?: number;
}

export class FaultDevice implements BlockDevice {
  writes = 0;
  syncs = 0;
  crashed = false;

  constructor(
    readonly inner: BlockDevice,
    readonly plan: FaultPlan,
  ) {}

  get size(): number {
    return this.inner.size;
  }
  get writable(): boolean {
    return this.inner.writable;
  }
  get name(): string {
    return this.inner.name;
  }
  /** Calls counted so far. */
  get calls(): number {
    const on = this.plan.on ?? 'any';
    return on === 'write' ? this.writes : on === 'sync' ? this.syncs : this.writes + this.syncs;
  }

  private dead(): UlfsError {
    return new UlfsError('IO_ERROR', `${this.name}: injected fault (device is dead)`, { injected: true });
  }

  read(pos: number, length: number): Buffer {
    return this.inner.read(pos, length);
  }
  readInto(buf: Uint8Array, pos: number): void {
    this.inner.readInto(buf, pos);
  }
  readUncachedInto(buf: Uint8Array, pos: number): void {
    readUncached(this.inner, buf, pos);
  }

  write(pos: number, data: Uint8Array): void {
    if (this.crashed) throw this.dead();
    this.writes++;
    if ((this.plan.on ?? 'any') !== 'sync' && this.calls === this.plan.failAt) {
      this.crashed = true;
      const n = Math.min(this.plan.partialBytes ?? 0, data.length);
      if (n > 0) this.inner.write(pos, data.subarray(0, n));
      throw new UlfsError('IO_ERROR', `${this.name}: injected fault at write #${this.writes}`, {
        injected: true,
      });
    }
    this.inner.write(pos, data);
  }

  sync(): void {
    if (this.crashed) throw this.dead();
    this.syncs++;
    if ((this.plan.on ?? 'any') !== 'write' && this.calls === this.plan.failAt) {
      this.crashed = true;
      throw new UlfsError('IO_ERROR', `${this.name}: injected fault at sync #${this.syncs}`, {
        injected: true,
      });
    }
    this.inner.sync();
  }

  close(): void {
    this.inner.close();
  }
}
