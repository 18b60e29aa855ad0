/** Where a command writes. The tests pass in-memory sinks; main.ts passes the process streams. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** True when stdout/stderr is a terminal: progress bars only then. */
  isTTY: boolean;
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Parses a --part N style option: a positive integer. */
export function parsePartNumber(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 4096) throw new Error(`not a partition number: ${v}`);
  return n;
}
