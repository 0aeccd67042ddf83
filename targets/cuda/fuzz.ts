/**
 * Differential fuzz for the cuda target: random problems under random GPU schedules, run by a
 * KernelRunner (the GPU, or the PTX simulator in sim-runner.ts) and compared to the interpreter.
 * Schedules come three ways, so that every part of the mapping is exercised:
 *  - a random walk of the CPU actions, then the default mapping rule (no annotations);
 *  - the same walk plus random bind_block / bind_thread / stage_shared at random loops;
 *  - a random member of the tuned families (templates.ts: block/thread/register tiles, staging).
 * Problems are the CPU fuzz's (ir/random.ts), plus average and max pools, and about two in five
 * are dressed as real layers (withRandomLayerParts): padded inputs and outputs on convolutions and
 * pools, and fused epilogues (bias, residual, relu, clip, sigmoid, gelu, scale) on any op.
 */
import { DEFAULT_ACTIONS, Rng, randomProblem, randomSchedule } from '../../ir/random.ts';
import type { Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { applyAction } from '../../ir/transforms.ts';
import type { FuzzFailure, FuzzReport } from '../fuzz.ts';
import { verifyKernel, type KernelRunner } from '../verify.ts';
import { compileCuda } from './target.ts';
import { isConvOp, isPoolOp, parseProblem } from '../../ir/spec.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { familyOf, randomTemplateSchedule } from './templates.ts';

const EXAMPLE_SPECS: Record<string, string> = {
  matmul: 'matmul 2x2x2', bmm: 'bmm b1 m2 n2 k2', conv1d: 'conv1d n1 c1 w4 k1 s1', conv2d: 'conv2d n1 c1 h4 w4 k1 r1 s1', conv3d: 'conv3d n1 c1 d2 h2 w2 k1 t1 r1 s1',
};

export const CUDA_FUZZ_OPS = [
  'matmul', 'bmm', 'conv1d', 'conv2d', 'conv3d', 'maxpool2d', 'avgpool2d', 'add', 'mul', 'relu', 'reduce', 'copy', 'transpose',
] as const;

/** Epilogue tokens the fuzz draws from (clip bounds exact in fp32, so the oracle's bounds are the kernel's). */
const EPILOGUE_TOKENS = ['+relu', '+relu6', '+clip-1,2.5', '+sigmoid', '+gelu', '+scale0.5', '+scale-1.25'] as const;

/**
 * The problem dressed as a layer, in two of five draws: convolutions and pools get `pad` and/or
 * `outpad` (outputs written inside a border), and any op up to three epilogue ops, among them a
 * bias (ops with a channel) or a residual, in random order. Returns the problem as it was when
 * the spec it makes is refused.
 */
export function withRandomLayerParts(problem: Problem, rng: Rng): Problem {
  if (rng.next() >= 0.4) return problem;
  const windowed = isConvOp(problem.op) || isPoolOp(problem.op);
  const parts: string[] = [];
  if (windowed && rng.next() < 0.5) parts.push(`pad${rng.int(1, 2)}`);
  if (windowed && rng.next() < 0.4) parts.push(`outpad${rng.int(1, 2)}`);
  const pool: string[] = [...EPILOGUE_TOKENS, '+residual'];
  if (isConvOp(problem.op) || problem.op === 'matmul' || problem.op === 'bmm') pool.push('+bias', '+bias');
  const n = rng.next() < 0.2 && parts.length > 0 ? 0 : rng.int(1, 3);
  for (let i = 0; i < n && pool.length > 0; i++) {
    const k = rng.int(0, pool.length - 1);
    const tok = pool[k]!;
    parts.push(tok);
    // bias and residual once each (the spec refuses them twice)
    for (let j = pool.length - 1; j >= 0; j--) if (pool[j] === tok && (tok === '+bias' || tok === '+residual')) pool.splice(j, 1);
  }
  // window options first, then the epilogue in the order drawn
  parts.sort((a, b) => Number(a.startsWith('+')) - Number(b.startsWith('+')));
  try {
    return parseProblem(`${problem.spec} ${parts.join(' ')}`);
  } catch (e) {
    if (e instanceof LoopTuneError) return problem;
    throw e;
  }
}

/** A problem of the cuda fuzz: ir/random.ts's (an average pool drawn as a max pool's window), maybe dressed as a layer. */
export function randomCudaProblem(rng: Rng, op: string, scale = 1): Problem {
  const base = op === 'avgpool2d'
    ? parseProblem(randomProblem(rng, 'maxpool2d', scale).spec.replace(/^maxpool2d/, 'avgpool2d'))
    : randomProblem(rng, op, scale);
  return withRandomLayerParts(base, rng);
}

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
  /** kernels with a reduction split across blocks (split-k: atomic adds into the output) */
  gridSplit: number;
  /** kernels with interior and boundary bodies (GpuProgram.edges: block loops with tails) */
  edgeSplit: number;
  /** kernels with an epilogue applied at the store, and in a second pass */
  epilogueAtStore: number;
  epiloguePass: number;
  /** problems with a padded input or output */
  padded: number;
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
    split: 0, gridSplit: 0, edgeSplit: 0, epilogueAtStore: 0, epiloguePass: 0, padded: 0, rejected: 0, rejectedSample: [],
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
    const problem = randomCudaProblem(rng, op, (opts.scale ?? 1) * (r < 0.35 && family ? 2.5 : 1));
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
    if (kernel.mapping.gridReductionLoops.length > 0) report.gridSplit++;
    if (kernel.gpu.edges) report.edgeSplit++;
    if (kernel.gpu.epilogue?.place === 'store') report.epilogueAtStore++;
    if (kernel.gpu.epilogue?.place === 'pass') report.epiloguePass++;
    if (problem.tensors.some((t) => t.pad)) report.padded++;
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
