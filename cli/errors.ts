/**
 * How the CLI reports a failure: always one `looptune: …` line on stderr and exit code 1. User
 * errors (LoopTuneError) print their message; a file-system error names the path and the reason;
 * anything else is a bug and says so. The stack trace is shown only with --debug or
 * LOOPTUNE_DEBUG=1, never by default, and never the minified source line that Node prints when an
 * error escapes into a library's uncaughtException handler (the tfjs wasm backend installs one).
 */
import { LoopTuneError } from '../ir/errors.ts';
import { fsFailure } from '../ir/fs-errors.ts';

/** Debug output is on with --debug anywhere on the command line or LOOPTUNE_DEBUG set (not 0). */
export function debugEnabled(argv: readonly string[] = process.argv): boolean {
  const env = process.env.LOOPTUNE_DEBUG;
  return argv.includes('--debug') || (env !== undefined && env !== '' && env !== '0');
}

/** The single line a failure prints (without the `looptune: ` prefix). */
export function describeFailure(e: unknown): string {
  if (e instanceof LoopTuneError) {
    // several problems (an experiment file's schema errors): the first, and how many more there are
    const more = e.message.split('\n').filter((l) => l.trim() !== '').length - 1;
    return more > 0 ? `${firstLine(e.message)} (and ${more} more problem${more > 1 ? 's' : ''})` : firstLine(e.message);
  }
  const fs = fsFailure(e);
  if (fs instanceof LoopTuneError) return fs.message;
  if (e instanceof Error) return `internal error: ${firstLine(e.message)} (run with --debug for the stack trace)`;
  return `internal error: ${firstLine(String(e))} (run with --debug for the stack trace)`;
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.length > 400 ? `${line.slice(0, 400)}…` : line;
}

/** Prints the failure line (and, when debugging, the trace) and ends the process with code 1. */
export function exitWithFailure(e: unknown): never {
  process.stderr.write(`looptune: ${describeFailure(e)}\n`);
  if (debugEnabled() && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}

/**
 * Routes errors that escape every promise chain (a callback of a child process, a timer) to the
 * same one line. Installed after libraries that register their own handlers have loaded, so the
 * last word is ours.
 */
export function installFailureHandlers(): void {
  process.removeAllListeners('uncaughtException');
  process.removeAllListeners('unhandledRejection');
  process.on('uncaughtException', (e) => exitWithFailure(e));
  process.on('unhandledRejection', (e) => exitWithFailure(e));
}
