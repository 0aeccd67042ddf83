/**
 * Differential check of a kernel against the reference interpreter on seeded random inputs.
 * Runners are target-specific (worker process, qemu, GPU); this only needs one that runs a kernel
 * once on given tensors and returns the output or an error.
 */
import { fillInterior } from '../ir/padding.ts';
import { problemFootprint } from '../ir/footprint.ts';
import { checkAgainstOracle, checkSampledAgainstOracle, randomArray } from '../ir/interpret.ts';
import { elementCount, iterationPoints, type Problem } from '../ir/problem.ts';
import type { Schedule } from '../ir/schedule.ts';
import type { Kernel } from './kernel.ts';
import { assertMemoryFits, assertTensorSizes } from './runtime/memory-limit.ts';

export type RunOutcome = { ok: true; output: Float32Array } | { ok: false; error: string };
/** Runs a kernel once on copies of `tensors`; `threads` overrides the runner's own thread count for a parallel kernel. */
export type KernelRunner = (kernel: Kernel, tensors: Float32Array[], opts: { guard: boolean; threads?: number }) => Promise<RunOutcome>;

export interface Verification {
  verified: boolean;
  /** largest error, normalized by the magnitude summed into each element (see checkAgainstOracle) */
  maxRelError: number;
  tolerance: number;
  error?: string;
}

/** iteration points up to which verification interprets the whole problem (about a second of JS). */
export const FULL_CHECK_POINTS = 5e7;

/**
 * Throws one line (LoopTuneError) when verifying `problem`, and timing it after, would take more
 * memory than this machine allows, or a tensor is too big for a typed array (memory-limit.ts).
 */
export function assertVerifiable(problem: Problem): void {
  assertTensorSizes(problem);
  const fullCheck = iterationPoints(problem) <= FULL_CHECK_POINTS;
  assertMemoryFits(problem.spec, problemFootprint(problem, { fullCheck }).verifyBytes, 'buffers and verification');
}

export async function verifyKernel(
  kernel: Kernel, schedule: Schedule, run: KernelRunner, opts: { seed?: number; guard?: boolean; threads?: number } = {},
): Promise<Verification> {
  const p = schedule.problem;
  assertVerifiable(p);
  const seed = opts.seed ?? 1;
  const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), seed * 7919 + i + 1));
  const init = randomArray(elementCount(p.tensors[0]!), seed * 7919);
  const r = await run(kernel, [init.slice(), ...inputs], { guard: opts.guard ?? false, ...(opts.threads !== undefined ? { threads: opts.threads } : {}) });
  if (!r.ok) return { verified: false, maxRelError: Infinity, tolerance: 0, error: r.error };
  // an overwriting kernel must ignore the random contents it was given: the expected result starts
  // from zero at its data points (a border around a padded output is never written: it keeps them)
  let start: Float32Array | Float64Array = init;
  if (kernel.abi.overwrites) {
    start = Float64Array.from(init);
    fillInterior(p.tensors[0]!, start, 0);
  }
  // past FULL_CHECK_POINTS the interpreter would take minutes: check sampled elements instead
  const c = iterationPoints(p) > FULL_CHECK_POINTS
    ? checkSampledAgainstOracle(p, inputs, start, r.output, 256, seed)
    : checkAgainstOracle(schedule, inputs, start, r.output);
  return { verified: c.ok, maxRelError: c.maxError, tolerance: c.tolerance, ...(c.ok ? {} : { error: `output differs from the interpreter (error ${c.maxError.toExponential(2)} > ${c.tolerance.toExponential(2)})` }) };
}
