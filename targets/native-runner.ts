/** The KernelRunner for x86 kernels: a measurement worker process (crash- and hang-safe). */
import type { MeasurementPool } from './runtime/measure.ts';
import type { KernelRunner } from './verify.ts';

export function workerRunner(pool: MeasurementPool): KernelRunner {
  return async (kernel, tensors, opts) => {
    const r = await pool.run(kernel, tensors, { guard: opts.guard });
    return r.ok ? { ok: true, output: r.output } : { ok: false, error: r.error };
  };
}
