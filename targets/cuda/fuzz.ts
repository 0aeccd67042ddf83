/**
 * Differential fuzz for the cuda target: random problems under random GPU schedules, run by a
 * KernelRunner (the GPU, or the PTX simulator in sim-runner.ts) and compared to the interpreter.
 * Schedules come three ways, so that every part of the mapping is exercised:
 *  - a random walk of the CPU actions, then the default mapping rule (no annotations);
 *  - the same walk plus random bind_block / bind_thread / stage_shared at random loops;
 *  - a random member of the tuned families (templates.ts: block/thread/register tiles, staging).
 */
import { DEFAULT_ACTIONS, Rng, randomProblem, randomSchedule } from '../../ir/random.ts';
import type { Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { applyAction } from '../../ir/transforms.ts';
import type { FuzzFailure, FuzzReport } from '../fuzz.ts';
import { verifyKernel, type KernelRunner } from '../verify.ts';
import { compileCuda } from './target.ts';
import { parseProblem } from '../../ir/spec.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { familyOf, randomTemplateSchedule } from './templates.ts';

const EXAMPLE_SPECS: Record<string, string> = {
  matmul: 'matmul 2x2x2', bmm: 'bmm b1 m2 n2 k2', conv1d: 'conv1d n1 c1 w4 k1 s1', conv2d: 'conv2d n1 c1 h4 w4 k1 r1 s1', conv3d: 'conv3d n1 c1 d2 h2 w2 k1 t1 r1 s1',
};

export const CUDA_FUZZ_OPS = ['matmul', 'bmm', 'conv1d', 'conv2d', 'conv3d', 'add', 'mul', 'relu', 'reduce', 'copy', 'transpose'] as const;

/** A random schedule with random GPU annotations (see the header for the three kinds). */
export function randomCudaSchedule(problem: Problem, rng: Rng, r = rng.next()): { schedule: Schedule; kind: 'default' | 'annotated' | 'template' } {
  if (r < 0.35) {
    const t = randomTemplateSchedule(problem, rng, 60);
    if (t) return { schedule: t, kind: 'template' };
  }
  let s = randomSchedule(problem, rng, rng.int(0, 16), DEFAULT_ACTIONS, 10);
  if (r < 0.6) return { schedule: s, kind: 'default' };
  const n = s.loops.length;
  const tries = rng.int(1, 2 * n);
  for (let i = 0; i < tries; i++) {
    const at = s.withCursor(rng.int(0, n - 1));
    const a = rng.next();
    const action = a < 0.35 ? 'bind_block' : a < 0.8 ? 'bind_thread' : 'stage_shared';
    const res = applyAction(at, action);
    if (res.ok) s = res.schedule;
  }
  return { schedule: s, kind: 'annotated' };
}

export interface CudaFuzzOptions {
  cases: number;
  seed?: number;
  runner: KernelRunner;
  ops?: readonly string[];
  /** problem size scale for randomProblem (1 = the CPU fuzz's sizes) */
  scale?: number;
  onProgress?: (done: number, failed: number) => void;
}

export interface CudaFuzzReport extends FuzzReport {
  perKind: Record<string, number>;
  staged: number;
  /** kernels with a reduction split across threads */
  split: number;
  /** schedules the mapping rule refuses with a one-line reason (not failures: the env masks them) */
  rejected: number;
  rejectedSample: string[];
}

export async function fuzzCuda(opts: CudaFuzzOptions): Promise<CudaFuzzReport> {
  const seed = opts.seed ?? 1;
  const ops = opts.ops ?? CUDA_FUZZ_OPS;
  const t0 = performance.now();
  const report: CudaFuzzReport = {
    target: 'cuda', seed, cases: 0, mismatches: 0, crashes: 0, codegenErrors: 0, failures: [], perOp: {}, seconds: 0, perKind: {}, staged: 0,
    split: 0, rejected: 0, rejectedSample: [],
  };
  const note = (f: FuzzFailure) => {
    if (report.failures.length < 20) report.failures.push(f);
  };
  for (let i = 0; i < opts.cases; i++) {
    const rng = new Rng(seed * 1_000_003 + i);
    const op = ops[i % ops.length]!;
    // the tuned families need room for their tiles: their problems are drawn larger
    const r = rng.next();
    const family = familyOf(parseProblem(EXAMPLE_SPECS[op] ?? 'add 1x1')) !== null;
    const problem = randomProblem(rng, op, (opts.scale ?? 1) * (r < 0.35 && family ? 2.5 : 1));
    const { schedule, kind } = randomCudaSchedule(problem, rng, r);
    report.perOp[op] = (report.perOp[op] ?? 0) + 1;
    report.perKind[kind] = (report.perKind[kind] ?? 0) + 1;
    report.cases++;
    let kernel;
    try {
      kernel = compileCuda(schedule);
    } catch (e) {
      if (e instanceof LoopTuneError && e.message.startsWith('cuda:')) {
        report.rejected++;
        if (report.rejectedSample.length < 5) report.rejectedSample.push(`${problem.spec} | ${schedule.text()}: ${e.message}`);
        continue;
      }
      report.codegenErrors++;
      note({ kind: 'codegen', problem: problem.spec, schedule: schedule.text(), message: (e as Error).message });
      continue;
    }
    if (kernel.mapping.staged !== null) report.staged++;
    if (kernel.mapping.reductionThreads > 1) report.split++;
    const v = await verifyKernel(kernel, schedule, opts.runner, { seed: i + 1, guard: true });
    if (!v.verified) {
      const crashed = v.maxRelError === Infinity && v.error !== undefined && !v.error.startsWith('output differs');
      if (crashed) report.crashes++;
      else report.mismatches++;
      note({ kind: crashed ? 'crash' : 'mismatch', problem: problem.spec, schedule: schedule.text(), message: v.error ?? '' });
    }
    opts.onProgress?.(i + 1, report.mismatches + report.crashes + report.codegenErrors);
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}
