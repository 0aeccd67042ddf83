/** `--threads N`: the one option every measuring command shares (default: every core). */
import type { Command } from 'commander';
import type { Backend } from '../targets/backend.ts';
import { defaultThreads } from '../targets/runtime/threads.ts';
import { threadCount } from './options.ts';

export function withThreadsOption(command: Command): Command {
  return command.option('--threads <n>', 'CPU threads of parallel kernels, the peak and the BLAS baseline (default: every core; targets without threads use one)', threadCount);
}

/** The threads a command measures `b` on: the option, else every core; undefined where `b` has no threads. */
export function threadsFor(b: Backend, requested: number | undefined): number | undefined {
  return b.caps.threads ? requested ?? defaultThreads() : undefined;
}
