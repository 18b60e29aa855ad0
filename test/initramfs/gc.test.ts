/**
 * gc.ts: the filter paces garbage collections by the bytes it decodes; that only bounds memory if
 * the runtime really hands it a collector. A dead 16 MiB buffer (below the external-memory growth
 * at which V8 collects by itself) must be gone after each kind of collection.
 */
import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../src/initramfs/gc.js';

const MiB = 1 << 20;
const arrayBuffers = (): number => process.memoryUsage().arrayBuffers;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('collectGarbage', () => {
  it('a minor, then a major collection each free a dead buffer', async () => {
    // In one test, minor first: V8 may collect by itself once dead buffers add up, so a second
    // test's check would not show that the first kind worked.
    for (const type of ['minor', 'major'] as const) {
      ((): void => void new Uint8Array(16 * MiB).fill(1))();
      await sleep(0);
      const withGarbage = arrayBuffers();
      collectGarbage(type);
      await sleep(20); // dead buffers are released by a sweeper task after the collection
      expect(withGarbage - arrayBuffers(), type).toBeGreaterThanOrEqual(15 * MiB);
    }
  });

  it('a major collection frees a dead buffer that had moved to the old generation', async () => {
    // What the filter's periodic full GC is for. gc({ type: 'major' }) leaves this buffer alone in
    // Node 20; gc() frees it.
    let live: Uint8Array | null = new Uint8Array(16 * MiB).fill(1);
    collectGarbage('minor');
    collectGarbage('minor'); // survived two scavenges: promoted
    expect(live.length).toBe(16 * MiB);
    live = null;
    await sleep(0);
    const withGarbage = arrayBuffers();
    collectGarbage('major');
    await sleep(20);
    expect(withGarbage - arrayBuffers()).toBeGreaterThanOrEqual(15 * MiB);
  });
});
