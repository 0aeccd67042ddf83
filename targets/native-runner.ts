/** The KernelRunner for x86 kernels: a measurement worker process (crash- and hang-safe), parallel kernels on `threads` threads. */
import type { MeasurementPool } from './runtime/measure.ts';
import type { KernelRunner } from './verify.ts';

export function workerRunner(pool: MeasurementPool, threads = 1): KernelRunner {
  return async (kernel, tensors, opts) => {
    const r = await pool.run(kernel, tensors, { guard: opts.guard, threads: opts.threads ?? threads });
    return r.ok ? { ok: true, output: r.output } : { ok: false, error: r.error };
  };
}
