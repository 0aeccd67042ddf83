/**
 * What measuring a problem may cost, checked before anything is compiled or allocated, so that a
 * problem too big for the machine is one line instead of swapping, an OOM kill or a timeout:
 *  - memory: the footprint of verification (or of timing alone) against the machine's allowance
 *    (runtime/memory-limit.ts, LOOPTUNE_MAX_MEMORY), and no tensor past the typed-array limit;
 *  - time: even a kernel at the machine's peak must finish the calls of one timing within a
 *    measurement's limit (MeasurementPool's job timeout, 10 s by default).
 * runSchedule (looptune run) checks both; search and tune call assertMeasurable up front (their
 * measurement entries, MeasurementPool.run/time and verifyKernel, check memory again).
 */
import { fail } from '../ir/errors.ts';
import { problemFootprint } from '../ir/footprint.ts';
import { flops, type Problem } from '../ir/problem.ts';
import { DEFAULT_JOB_TIMEOUT_SECONDS } from './runtime/measure.ts';
import { assertMemoryFits, assertTensorSizes } from './runtime/memory-limit.ts';
import { assertVerifiable } from './verify.ts';

/** Kernel calls one full timing takes at the least: a warm-up, then three samples (runtime/timing.ts). */
export const TIMED_CALLS = 4;

export interface TimeLimitOptions {
  /** calls of the kernel one measurement makes (default TIMED_CALLS; 1 where slow kernels are timed by their warm-up call) */
  calls?: number;
  /** the measurement's limit, seconds (default DEFAULT_JOB_TIMEOUT_SECONDS) */
  timeoutSeconds?: number;
}

/**
 * Throws one line when even a kernel at the machine's peak could not be timed within the
 * measurement limit. A peak that is not a positive number (emulated targets) skips the check.
 */
export function assertTimeable(problem: Problem, peakGflops: number, options: TimeLimitOptions = {}): void {
  if (!(peakGflops > 0) || !Number.isFinite(peakGflops)) return;
  const calls = options.calls ?? TIMED_CALLS;
  const timeoutSeconds = options.timeoutSeconds ?? DEFAULT_JOB_TIMEOUT_SECONDS;
  const work = flops(problem);
  const callSeconds = work / (peakGflops * 1e9);
  if (calls * callSeconds > timeoutSeconds) {
    fail(
      `${problem.spec} is ${work.toExponential(2)} flops: a call takes at least ${callSeconds.toFixed(1)} s at this machine's peak ` +
        `(${peakGflops.toFixed(0)} GFLOPS)${calls > 1 ? ` and timing needs ${calls} calls` : ''}, past the ${timeoutSeconds} s a measurement may take`,
    );
  }
}

/** Memory and time checks for a search or tune on a native target: `verify` when the result is verified too. */
export function assertMeasurable(problem: Problem, options: TimeLimitOptions & { peakGflops: number; verify: boolean }): void {
  if (options.verify) assertVerifiable(problem);
  else {
    assertTensorSizes(problem);
    assertMemoryFits(problem.spec, problemFootprint(problem, { fullCheck: false }).timeBytes, 'the buffers it is timed on');
  }
  assertTimeable(problem, options.peakGflops, options);
}
