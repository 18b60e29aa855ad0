/**
 * The command line: one file per subcommand, each exporting `register(program, io)`.
 * `runCli` runs in-process (the tests use it) and returns the exit status instead of exiting.
 */
import { Command, CommanderError } from 'commander';
import { UlfsError, EXIT, isUlfsError } from '../errors.js';
import type { CliIo } from './io.js';

export type Register = (program: Command, io: CliIo) => void;

// Subcommands register here, in the order `--help` lists them.
const COMMANDS: Register[] = [];

export function addCommands(...regs: Register[]): void {
  COMMANDS.push(...regs);
}

export function buildProgram(io: CliIo): Command {
  const program = new Command();
  program
    .name('ulfs-offline')
    .description('Prune unused kernel modules from Linux VM images: offline, rootless, in pure TypeScript')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  for (const reg of COMMANDS) reg(program, io);
  for (const cmd of program.commands)
    cmd.exitOverride().configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  return program;
}

/** One line for the user; the stack only with ULFS_DEBUG=1. */
export function formatError(e: unknown): { line: string; exit: number } {
  if (isUlfsError(e)) return { line: `ulfs-offline: error ${e.code}: ${e.message}`, exit: e.exitCode };
  if (e instanceof CommanderError) return { line: '', exit: e.exitCode === 0 ? 0 : EXIT.usage };
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) {
    return { line: `ulfs-offline: error IO_ERROR: ${err.message}`, exit: EXIT.io };
  }
  return { line: `ulfs-offline: internal error: ${err?.message ?? String(e)}`, exit: EXIT.internal };
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  pendingExit = 0;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return takeExitCode();
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message (help, version, or the usage error).
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      return EXIT.usage;
    }
    const { line, exit } = formatError(e);
    io.stderr.write(line + '\n');
    if (process.env.ULFS_DEBUG && e instanceof Error) io.stderr.write(String(e.stack) + '\n');
    return exit;
  }
}

/** Commands that finish with a non-error, non-zero status (check: inconsistent) set this. */
let pendingExit = 0;
export function setExitStatus(code: number): void {
  pendingExit = code;
}
function takeExitCode(): number {
  const c = pendingExit;
  pendingExit = 0;
  return c;
}
export { UlfsError };
