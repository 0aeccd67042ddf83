/**
 * How kernels of a target are executed and timed. x86 targets (including the LLVM ones, which
 * produce x86 bytes) run in measurement worker processes; other targets register their own
 * executor (qemu for neon, the CUDA driver for cuda).
 */
import { fail } from '../ir/errors.ts';
import type { Kernel } from './kernel.ts';
import { MeasurementPool, type PoolOptions } from './runtime/measure.ts';
import { peak } from './runtime/peak.ts';
import type { Timing } from './runtime/timing.ts';
import { hostIsa } from './runtime/host.ts';
import { workerRunner } from './native-runner.ts';
import type { KernelRunner } from './verify.ts';

export type TimeOutcome = ({ ok: true } & Timing) | { ok: false; error: string };

export interface Executor {
  run: KernelRunner;
  time(kernel: Kernel, opts?: { minSeconds?: number }): Promise<TimeOutcome>;
  /** the machine's peak GFLOPS for this target: the denominator of rewards and "% of peak" */
  peakGflops(): Promise<number>;
  /** OpenBLAS sgemm (C += A*B) on this machine, when the executor has it */
  openblas?(m: number, n: number, k: number): Promise<({ ok: true; corename: string } & Timing) | { ok: false; error: string }>;
  /** whether timings are native (false under emulation: never compare them with native figures) */
  native: boolean;
  close(): Promise<void>;
}

/** x86 executor: the ISA whose peak is the reference for a target name like 'avx512' or 'llvm-avx2'. */
export function x86Executor(isa: 'avx2' | 'avx512', options: PoolOptions = {}): Executor {
  const host = hostIsa();
  if (isa === 'avx512' ? !host.avx512 : !(host.avx2 && host.fma)) fail(`this CPU (${host.model}) cannot run ${isa} code`);
  const pool = new MeasurementPool(options);
  return {
    native: true,
    run: workerRunner(pool),
    async time(kernel, opts) {
      const r = await pool.time(kernel, opts?.minSeconds === undefined ? {} : { minSeconds: opts.minSeconds });
      return r.ok ? r : { ok: false, error: r.error };
    },
    peakGflops: () => peak(isa, { pool }),
    async openblas(m, n, k) {
      const r = await pool.openblasSgemm(m, n, k);
      return r.ok ? r : { ok: false, error: r.error };
    },
    close: () => pool.close(),
  };
}

type ExecutorFactory = (options: PoolOptions) => Executor;
const executors = new Map<string, ExecutorFactory>([
  ['avx2', (o) => x86Executor('avx2', o)],
  ['avx512', (o) => x86Executor('avx512', o)],
  ['llvm-avx2', (o) => x86Executor('avx2', o)],
  ['llvm-avx512', (o) => x86Executor('avx512', o)],
]);

export function registerExecutor(target: string, factory: ExecutorFactory): void {
  executors.set(target, factory);
}

export function executorFor(target: string, options: PoolOptions = {}): Executor {
  const f = executors.get(target);
  if (!f) fail(`no way to run '${target}' kernels on this machine`);
  return f(options);
}
