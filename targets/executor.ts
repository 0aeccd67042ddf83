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
import { arm64Runner } from './arm64/runner.ts';
import { runArm64Kernel } from './arm64/qemu-runner.ts';

export type TimeOutcome = ({ ok: true } & Timing) | { ok: false; error: string };

export interface Executor {
  run: KernelRunner;
  time(kernel: Kernel, opts?: { minSeconds?: number; slowSeconds?: number }): Promise<TimeOutcome>;
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
      const r = await pool.time(kernel, {
        ...(opts?.minSeconds !== undefined ? { minSeconds: opts.minSeconds } : {}),
        ...(opts?.slowSeconds !== undefined ? { slowSeconds: opts.slowSeconds } : {}),
      });
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

/**
 * neon under qemu-aarch64 on an x86 host: correct results, emulated timings (reported as such, never
 * as a fraction of a native peak: peakGflops is NaN).
 */
export function emulatedArm64Executor(): Executor {
  const runner = arm64Runner();
  return {
    native: false,
    run: runner,
    async time(kernel, opts) {
      const tensors = kernel.abi.tensors.map((t) => new Float32Array(t.elements).fill(0.5));
      const samples: number[] = [];
      let reps = 1;
      const minSeconds = opts?.minSeconds ?? 0.05;
      for (let total = 0; samples.length < 3 || total < minSeconds;) {
        const r = await runArm64Kernel(kernel.code, tensors, { reps });
        if (!r.ok) return { ok: false, error: r.error };
        samples.push(r.seconds / reps);
        total += r.seconds;
        if (r.seconds < minSeconds / 5) reps *= 2;
      }
      const best = Math.min(...samples);
      const sorted = [...samples].sort((a, b) => a - b);
      return { ok: true, bestSeconds: best, medianSeconds: sorted[Math.floor(sorted.length / 2)]!, gflops: kernel.flops / best / 1e9, reps, samples: samples.length };
    },
    peakGflops: async () => NaN,
    close: async () => {},
  };
}

/**
 * cuda: kernels run on the first GPU through the CUDA driver API; `openblas` is answered by cuBLAS
 * sgemm (the GPU's BLAS baseline) measured in the same process. Throws one line when there is no
 * CUDA driver.
 */
async function cudaExecutor(): Promise<Executor> {
  const { CudaRunner } = await import('./cuda/runner.ts');
  const { Cublas, timeSgemm } = await import('./cuda/cublas.ts');
  let runner: InstanceType<typeof CudaRunner>;
  try {
    runner = new CudaRunner();
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  let peak: number | undefined;
  const withBuffers = <T>(elements: number[], use: (ptrs: bigint[]) => T): T => {
    const ptrs = elements.map((n) => {
      const p = runner.device.alloc(n * 4);
      runner.device.upload(p, new Float32Array(n).fill(0.5));
      return p;
    });
    try {
      return use(ptrs);
    } finally {
      for (const p of ptrs) runner.device.free(p);
    }
  };
  return {
    native: true,
    run: (kernel, tensors, opts) => runner.run(kernel, tensors, opts),
    async time(kernel, opts) {
      try {
        const k = kernel as Parameters<typeof runner.time>[0];
        return { ok: true, ...withBuffers(kernel.abi.tensors.map((t) => t.elements), (ptrs) => runner.time(k, ptrs, opts?.minSeconds ? { minSeconds: opts.minSeconds } : {})) };
      } catch (e) {
        return { ok: false, error: e instanceof Error ? e.message : String(e) };
      }
    },
    async peakGflops() {
      if (peak === undefined) {
        const { measureGpuPeak } = await import('./cuda/peak.ts');
        peak = measureGpuPeak(runner).gflops;
      }
      return peak;
    },
    async openblas(m, n, k) {
      try {
        const blas = new Cublas();
        return { ok: true, corename: `cuBLAS ${blas.version}`, ...timeSgemm(runner, blas, m, n, k) };
      } catch (e) {
        return { ok: false, error: e instanceof Error ? e.message : String(e) };
      }
    },
    close: async () => {},
  };
}

type ExecutorFactory = (options: PoolOptions) => Executor | Promise<Executor>;
const executors = new Map<string, ExecutorFactory>([
  ['avx2', (o) => x86Executor('avx2', o)],
  ['avx512', (o) => x86Executor('avx512', o)],
  ['llvm-avx2', (o) => x86Executor('avx2', o)],
  ['llvm-avx512', (o) => x86Executor('avx512', o)],
  ['neon', () => emulatedArm64Executor()],
  ['cuda', () => cudaExecutor()],
]);

export function registerExecutor(target: string, factory: ExecutorFactory): void {
  executors.set(target, factory);
}

export function executorFor(target: string, options: PoolOptions = {}): Executor {
  const f = executors.get(target);
  if (!f) fail(`no way to run '${target}' kernels on this machine`);
  const e = f(options);
  if (e instanceof Promise) fail(`'${target}' kernels need an asynchronous executor: use openExecutor`);
  return e;
}

/** Like executorFor, for every target (cuda loads its driver bindings on demand). */
export async function openExecutor(target: string, options: PoolOptions = {}): Promise<Executor> {
  const f = executors.get(target);
  if (!f) fail(`no way to run '${target}' kernels on this machine`);
  return f(options);
}
