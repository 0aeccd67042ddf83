/**
 * Which cuda kernel each distinct problem of a GPU model run gets (agent/gpu-model.ts):
 *
 *  - 'seed' (no measurement): the cuda target's seeds in order (targets/cuda/sketches.ts: the
 *    known-good template points of the problem's family fitted to its shape: GEMM seeds for
 *    matmul, conv seeds for convolutions), then the initial schedule under the default GPU mapping
 *    (loopnest/gpu.ts rule 3; pools and other ops have no family). The first that compiles, and
 *    when asked passes verification on the device against the interpreter, is taken;
 *  - 'tune': each compute-bound problem (fma: convs, matmuls) gets one `tune --target cuda` call
 *    (agent/tune.ts: the evolution from the GPU sketches, screened by the shipped cuda cost model,
 *    winner verified on the GPU) with a share of the total budget proportional to its estimated
 *    latency, count x flops (Ansor's task scheduler reduced to its first round); at least
 *    MIN_TUNE_SECONDS each, so a budget below tasks x that is exceeded. Everything else (pools)
 *    takes the seed path. A problem tune fails on falls back to the seed path, saying why.
 * Copies and fills have their own fixed schedule (agent/gpu-model-copies.ts copySchedule).
 */
import { fail, LoopTuneError } from '../ir/errors.ts';
import { GPU_MAX_LOOPS } from '../ir/graph.ts';
import { flops, type Problem } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';
import { cudaBackend } from '../targets/cuda/backend.ts';
import { cudaSketches } from '../targets/cuda/sketches.ts';
import { compileCuda, isCudaKernel, type CudaKernel } from '../targets/cuda/target.ts';
import { verifyKernel, type KernelRunner } from '../targets/verify.ts';

export type GpuSchedulePolicy =
  | { readonly kind: 'seed' }
  | {
    readonly kind: 'tune';
    /** total seconds over the tuned problems */
    readonly budgetSeconds: number;
    /** tuning records (a JSONL path); default: none read or written */
    readonly records?: string;
    readonly seed?: number;
  };

/** Where a kernel's schedule came from. */
export type GpuScheduleSource = 'tuned' | 'seed' | 'initial' | 'copy';

export interface ChosenKernel {
  readonly problem: Problem;
  readonly schedule: Schedule;
  readonly kernel: CudaKernel;
  readonly source: GpuScheduleSource;
  /** checked on the device against the interpreter (tune always checks its winner) */
  readonly verified: boolean;
  /** what was passed over on the way, or why tuning fell back */
  readonly note?: string;
  /** a tuned problem: its budget, the seconds tune took, schedules measured, the GFLOPS it measured */
  readonly tuning?: { readonly budgetSeconds: number; readonly seconds: number; readonly measurements: number; readonly gflops: number };
}

/** The least seconds one tuned problem gets (tune measures its minimum of schedules whatever it is given). */
export const MIN_TUNE_SECONDS = 1;

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}

/** The first candidate that compiles (and verifies, when a runner is given); one line naming every failure otherwise. */
export async function firstWorking(
  problem: Problem, candidates: readonly { schedule: Schedule; source: GpuScheduleSource }[], runner: KernelRunner | undefined,
): Promise<ChosenKernel> {
  const passed: string[] = [];
  for (const c of candidates) {
    let kernel: CudaKernel;
    try {
      kernel = compileCuda(c.schedule);
    } catch (e) {
      passed.push(`${c.source} ${c.schedule.text()}: ${messageOf(e)}`);
      continue;
    }
    if (runner) {
      const v = await verifyKernel(kernel, c.schedule, runner);
      if (!v.verified) {
        passed.push(`${c.source} ${c.schedule.text()}: ${v.error ?? 'verification failed'}`);
        continue;
      }
    }
    return {
      problem, schedule: c.schedule, kernel, source: c.source, verified: runner !== undefined,
      ...(passed.length > 0 ? { note: `passed over: ${passed.join('; ')}` } : {}),
    };
  }
  return fail(`no cuda kernel: ${passed.join('; ') || 'no candidate schedule'}`);
}

/** The seed path: the target's seeds, then the initial schedule (see the top of this file). */
export function seedCandidates(problem: Problem): { schedule: Schedule; source: GpuScheduleSource }[] {
  const seeds = cudaSketches.seeds?.(problem, GPU_MAX_LOOPS) ?? [];
  return [...seeds.map((schedule) => ({ schedule, source: 'seed' as const })), { schedule: Schedule.initial(problem), source: 'initial' }];
}

/** Whether the tune policy searches this problem (compute-bound ones), rather than taking its seed. */
export function isTuned(problem: Problem): boolean {
  return problem.combine === 'fma';
}

/**
 * Seconds per problem of a total budget: proportional to weight (count x flops), at least
 * MIN_TUNE_SECONDS each.
 */
export function tuneBudgets(weights: readonly number[], totalSeconds: number): number[] {
  if (!(totalSeconds >= 0) || !Number.isFinite(totalSeconds)) fail(`tune budget must be a non-negative number of seconds, got ${totalSeconds}`);
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => Math.max(MIN_TUNE_SECONDS, sum > 0 ? (totalSeconds * w) / sum : totalSeconds / weights.length));
}

/**
 * Tunes each problem on the GPU (the cuda backend's own device, opened here and closed before
 * returning). Call it before anything else is on the device: a kernel fault during tuning resets
 * the context, and every allocation and module with it. The problems tune fails on come back with
 * the reason (their caller takes the seed path for them).
 */
export async function tuneKernels(
  problems: readonly { problem: Problem; count: number }[],
  policy: Extract<GpuSchedulePolicy, { kind: 'tune' }>,
  onProgress?: (line: string) => void,
): Promise<{ tuned: ChosenKernel[]; failed: { problem: Problem; why: string }[] }> {
  const { tune } = await import('./tune.ts');
  const b = cudaBackend();
  const device = await b.open({ minSeconds: 0.02 });
  const budgets = tuneBudgets(problems.map((p) => p.count * flops(p.problem)), policy.budgetSeconds);
  const tuned: ChosenKernel[] = [];
  const failed: { problem: Problem; why: string }[] = [];
  try {
    for (const [i, { problem }] of problems.entries()) {
      const budgetSeconds = budgets[i]!;
      const t0 = performance.now();
      try {
        const r = await tune(problem, {
          target: b, device, budgetSeconds, compareBaseline: false, seed: policy.seed ?? 0,
          ...(policy.records !== undefined ? { records: policy.records } : { noRecords: true }),
        });
        if (!r.verified) fail(`tune's best kernel failed verification (${r.maxRelError.toExponential(2)})`);
        if (!isCudaKernel(r.kernel)) fail('tune returned a kernel that is not a cuda kernel');
        tuned.push({
          problem, schedule: r.best, kernel: r.kernel, source: 'tuned', verified: true,
          tuning: { budgetSeconds, seconds: (performance.now() - t0) / 1000, measurements: r.measurements, gflops: r.gflops },
        });
        onProgress?.(`tuned ${problem.spec}: ${r.gflops.toFixed(0)} GFLOPS in ${r.seconds.toFixed(1)} s (${r.measurements} schedules)`);
      } catch (e) {
        if (!(e instanceof LoopTuneError)) throw e;
        failed.push({ problem, why: messageOf(e) });
        onProgress?.(`tune failed on ${problem.spec}: ${messageOf(e)}`);
      }
    }
  } finally {
    await device.close();
  }
  return { tuned, failed };
}
