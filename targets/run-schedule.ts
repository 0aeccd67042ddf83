/**
 * `looptune run`: compile a schedule, verify it against the interpreter, measure it, and put it
 * next to the machine's peak and (for matmul-shaped problems) OpenBLAS measured in the same run.
 */
import type { Schedule } from '../ir/schedule.ts';
import type { Problem } from '../ir/problem.ts';
import { compileSchedule, getTarget } from './registry.ts';
import type { Executor } from './executor.ts';
import { assertVerifiable, verifyKernel } from './verify.ts';
import type { Kernel } from './kernel.ts';
import { assertTimeable } from './limits.ts';

export interface RunReport {
  problem: string;
  schedule: string;
  target: string;
  gflops: number;
  peakGflops: number;
  percentOfPeak: number;
  bestSeconds: number;
  medianSeconds: number;
  codegenMicros: number;
  verified: boolean;
  maxRelError: number;
  /** timings are native (false when emulated) */
  native: boolean;
  openblasGflops?: number;
  openblasCorename?: string;
  /** our GFLOPS / OpenBLAS GFLOPS */
  openblasRatio?: number;
  error?: string;
}

/** M, N, K when the problem is a plain row-major matmul (OpenBLAS's sgemm can compute it). */
export function gemmShape(p: Problem): { m: number; n: number; k: number } | null {
  if (p.op !== 'matmul') return null;
  const [m, n, k] = p.vars.map((v) => v.extent);
  return { m: m!, n: n!, k: k! };
}

export async function runSchedule(
  schedule: Schedule, target: string, executor: Executor, opts: { compareOpenblas?: boolean; minSeconds?: number; kernel?: Kernel } = {},
): Promise<RunReport> {
  // refuse what cannot fit or finish before compiling or allocating anything
  assertVerifiable(schedule.problem);
  const kernel = opts.kernel ?? compileSchedule(schedule, getTarget(target));
  const peakGflops = await executor.peakGflops();
  if (executor.native) assertTimeable(schedule.problem, peakGflops);
  const v = await verifyKernel(kernel, schedule, executor.run);
  const base = {
    problem: schedule.problem.spec, schedule: schedule.text(), target, peakGflops,
    codegenMicros: kernel.codegenMicros, verified: v.verified, maxRelError: v.maxRelError, native: executor.native,
  };
  if (!v.verified) {
    return { ...base, gflops: 0, percentOfPeak: 0, bestSeconds: NaN, medianSeconds: NaN, error: v.error ?? 'verification failed' };
  }
  const t = await executor.time(kernel, opts.minSeconds === undefined ? {} : { minSeconds: opts.minSeconds });
  if (!t.ok) return { ...base, gflops: 0, percentOfPeak: 0, bestSeconds: NaN, medianSeconds: NaN, error: t.error };
  const report: RunReport = {
    ...base, gflops: t.gflops, percentOfPeak: Number.isFinite(peakGflops) ? (100 * t.gflops) / peakGflops : NaN, bestSeconds: t.bestSeconds, medianSeconds: t.medianSeconds,
  };
  if (opts.compareOpenblas && gemmShape(schedule.problem) && executor.openblas) {
    const { openblasError, ...blas } = await compareWithBlas(schedule.problem, executor, t.gflops);
    Object.assign(report, blas);
    if (openblasError) report.error = `OpenBLAS: ${openblasError}`;
  }
  return report;
}

export interface BlasComparison {
  openblasGflops?: number;
  openblasCorename?: string;
  /** our GFLOPS / the BLAS's */
  openblasRatio?: number;
  openblasError?: string;
}

/** The executor's BLAS sgemm (OpenBLAS, or cuBLAS on cuda) on a matmul's shape, beside `gflops`. */
export async function compareWithBlas(problem: Problem, executor: Executor, gflops: number): Promise<BlasComparison> {
  const shape = gemmShape(problem);
  if (!shape) return { openblasError: `OpenBLAS comparison covers matmul only, not ${problem.op}` };
  if (!executor.openblas) return { openblasError: 'this executor has no BLAS to compare with' };
  const o = await executor.openblas(shape.m, shape.n, shape.k);
  if (!o.ok) return { openblasError: o.error };
  return { openblasGflops: o.gflops, openblasCorename: o.corename, openblasRatio: gflops / o.gflops };
}
