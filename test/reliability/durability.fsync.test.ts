/**
 * Durability, judged from the system calls the real CLI makes (strace -f) and from what is on disk
 * after an injected crash:
 *  - write-ahead: before every write to the image while an undo log exists, the log was fsynced after
 *    its last write (so a power cut cannot leave an image write without its record);
 *  - `--output`: the copy is fsynced after its last undo-logged write, before its undo log is removed
 *    and the report printed (the zeroing after that owes no fsync); the input image is only ever
 *    opened read-only;
 *  - a FaultDevice crash right after the first image write: the undo log on disk already holds the
 *    original bytes of that write's range.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultDevice } from '../../src/image/fault.js';
import type { BlockDevice } from '../../src/image/blockdev.js';
import { parseUndoLog, undoPath } from '../../src/image/undo.js';
import { SAMPLE_USED, fileSha, tempDir } from '../helpers/images.js';
import { CLI_MAIN, pruneWithHook, sampleBytes, sampleSha, writeSample } from './harness.js';

const hasStrace = spawnSync('strace', ['-V']).status === 0;

interface Call {
  line: number;
  name: string;
  fd: number;
  path: string | undefined;
  result: string;
}

/** Runs the CLI under strace and returns its file calls, with the path each fd named at the time. */
function traced(args: string[], dir: string): { calls: Call[]; status: number | null; stderr: string } {
  const out = path.join(dir, `strace-${Date.now()}.txt`);
  const r = spawnSync(
    'strace',
    [
      '-f',
      '-qq',
      '-e',
      'trace=openat,pwrite64,write,pwritev,writev,fsync,fdatasync,close,unlink,rename',
      '-o',
      out,
      process.execPath,
      CLI_MAIN,
      ...args,
    ],
    { encoding: 'utf8' },
  );
  const fdPath = new Map<number, string>();
  const calls: Call[] = [];
  // With several threads (prune's precheck worker), strace splits a call another thread interrupts
  // into "name(args <unfinished ...>" and "<... name resumed>rest) = result": join them back.
  const unfinished = new Map<string, string>();
  fs.readFileSync(out, 'utf8')
    .split('\n')
    .forEach((raw, line) => {
      let l = raw;
      const u = /^(\d+)\s+(\w+\(.*) <unfinished \.\.\.>$/.exec(l);
      if (u) {
        unfinished.set(u[1]!, u[2]!);
        return;
      }
      const res = /^(\d+)\s+<\.\.\. \w+ resumed>(.*)$/.exec(l);
      if (res) {
        const start = unfinished.get(res[1]!);
        if (start === undefined) return;
        unfinished.delete(res[1]!);
        l = `${res[1]} ${start}${res[2]}`;
      }
      const m = /^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)/.exec(l);
      if (!m) return;
      const [, name, argText, result] = m as unknown as [string, string, string, string];
      if (name === 'openat') {
        const p = /"([^"]*)"/.exec(argText)?.[1];
        if (p && Number(result) >= 0) fdPath.set(Number(result), p);
        calls.push({ line, name, fd: Number(result), path: p, result: argText });
        return;
      }
      if (name === 'unlink' || name === 'rename') {
        calls.push({ line, name, fd: -1, path: /"([^"]*)"/.exec(argText)?.[1], result });
        return;
      }
      const fd = Number(argText.split(',')[0]);
      calls.push({ line, name, fd, path: fdPath.get(fd), result });
      if (name === 'close') fdPath.delete(fd);
    });
  fs.rmSync(out, { force: true });
  return { calls, status: r.status, stderr: r.stderr };
}

const isWrite = (c: Call): boolean => /^(pwrite64|write|pwritev|writev)$/.test(c.name);
const isSync = (c: Call): boolean => c.name === 'fsync' || c.name === 'fdatasync';

let dir: string;
beforeAll(() => {
  expect(fs.existsSync(CLI_MAIN), `${CLI_MAIN} missing: run \`npm run build\``).toBe(true);
  dir = tempDir('ulfs-durable-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!hasStrace)('fsync order of the real CLI (strace)', () => {
  it('prune: every image write while the undo log exists follows an fsync of the log', () => {
    const img = writeSample(path.join(dir, 'wal.img'));
    const log = undoPath(img);
    const t = traced(['prune', '--used', SAMPLE_USED, '--quiet', img], dir);
    expect(t.status, t.stderr).toBe(0);
    let logExists = false;
    let logDirty = false;
    let logWrites = 0;
    let guarded = 0;
    for (const c of t.calls) {
      if (c.name === 'openat' && c.path === log) logExists = true;
      if (c.name === 'unlink' && c.path === log) logExists = false;
      if (c.path === log && isWrite(c)) {
        logDirty = true;
        logWrites++;
      }
      if (c.path === log && isSync(c)) logDirty = false;
      if (c.path === img && isWrite(c) && logExists) {
        expect(logDirty, `strace line ${c.line}: image write with unsynced undo log writes`).toBe(false);
        guarded++;
      }
    }
    expect(logWrites, 'the undo log was never written').toBeGreaterThan(1);
    expect(guarded, 'no image write happened under the log').toBeGreaterThan(0);
    expect(fs.existsSync(log)).toBe(false);
  });

  it('prune --output: the copy is fsynced after its last logged write, before its undo log goes and before the report; the input is opened read-only', () => {
    const img = writeSample(path.join(dir, 'in.img'));
    const copy = path.join(dir, 'out.img');
    const copyLog = undoPath(copy);
    const t = traced(['prune', '--used', SAMPLE_USED, '--json', '--output', copy, img], dir);
    expect(t.status, t.stderr).toBe(0);
    const report = t.calls.findIndex((c) => c.fd === 1 && isWrite(c));
    expect(report, 'no report on stdout').toBeGreaterThan(0);
    // The commit: the copy's undo log is removed. Every write before it is undo-logged and must be
    // durable by then; the writes after it zero free blocks, which nothing depends on, so they owe
    // no fsync (a crash can only leave some of them undone).
    const commit = t.calls.findIndex((c) => c.name === 'unlink' && c.path === copyLog);
    expect(commit, 'the copy had no undo log removed').toBeGreaterThan(0);
    expect(commit).toBeLessThan(report);
    let lastWrite = -1;
    t.calls.forEach((c, i) => {
      if (i < commit && c.path === copy && isWrite(c)) lastWrite = i;
    });
    expect(lastWrite).toBeGreaterThan(0);
    const syncAfter = t.calls.findIndex((c, i) => i > lastWrite && c.path === copy && isSync(c));
    expect(syncAfter, 'no fsync of the copy after its last logged write').toBeGreaterThan(lastWrite);
    expect(syncAfter).toBeLessThan(commit);
    // The sparse copy itself is complete and durable before it is opened for the prune.
    const firstRw = t.calls.findIndex(
      (c) => c.name === 'openat' && c.path === copy && /O_RDWR/.test(c.result),
    );
    const copyWrites = t.calls.slice(0, firstRw).filter((c) => c.path === copy && isWrite(c));
    expect(copyWrites.length).toBeGreaterThan(0);
    const lastCopyWrite = t.calls.indexOf(copyWrites[copyWrites.length - 1]!);
    expect(
      t.calls.slice(lastCopyWrite, firstRw).some((c) => c.path === copy && isSync(c)),
      'copySparse did not fsync before the prune opened the copy',
    ).toBe(true);
    for (const c of t.calls.filter((c) => c.name === 'openat' && c.path === img))
      expect(c.result).toMatch(/O_RDONLY/);
    expect(fileSha(img)).toBe(sampleSha());
  });
});

/** Records the writes that reach the device under it (`inner` lets JournaledDevice find the file). */
class Recorder implements BlockDevice {
  writes: { pos: number; length: number }[] = [];
  constructor(readonly inner: BlockDevice) {}
  get size(): number {
    return this.inner.size;
  }
  get writable(): boolean {
    return this.inner.writable;
  }
  get name(): string {
    return this.inner.name;
  }
  read(pos: number, length: number): Buffer {
    return this.inner.read(pos, length);
  }
  readInto(buf: Uint8Array, pos: number): void {
    this.inner.readInto(buf, pos);
  }
  write(pos: number, data: Uint8Array): void {
    this.inner.write(pos, data);
    this.writes.push({ pos, length: data.length });
  }
  sync(): void {
    this.inner.sync();
  }
  close(): void {
    this.inner.close();
  }
}

describe('undo log durability under an injected crash', () => {
  it('a crash right after the first image write: the log on disk already holds that range', async () => {
    const img = writeSample(path.join(dir, 'first.img'));
    let rec!: Recorder;
    const r = await pruneWithHook(
      img,
      (d) => new FaultDevice((rec = new Recorder(d)), { failAt: 2, on: 'write' }),
    );
    expect(r.dev.crashed).toBe(true);
    expect(rec.writes).toHaveLength(1); // exactly one write reached the image
    const first = rec.writes[0]!;
    expect(fileSha(img)).not.toBe(sampleSha());
    const fd = fs.openSync(undoPath(img), 'r');
    try {
      const log = parseUndoLog(fd, undoPath(img));
      expect(log.batches).toBeGreaterThan(0);
      const original = sampleBytes();
      // Every byte of the first write is covered by a committed record holding the original bytes.
      let covered = 0;
      for (const x of log.records) {
        const s = Math.max(x.offset, first.pos);
        const e = Math.min(x.offset + x.length, first.pos + first.length);
        if (s >= e) continue;
        const data = Buffer.alloc(x.length);
        fs.readSync(fd, data, 0, x.length, x.dataPos);
        expect(data.equals(original.subarray(x.offset, x.offset + x.length))).toBe(true);
        covered += e - s;
      }
      expect(covered).toBe(first.length);
    } finally {
      fs.closeSync(fd);
    }
  });
});
