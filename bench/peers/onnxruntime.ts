/**
 * ONNX Runtime (onnxruntime-node, its MLAS CPU kernels) timed on a looptune Problem: the library a
 * Node user would pick for inference, measured beside looptune on the same machine and threads.
 * The model is the problem as one ONNX node with the weights as a constant initializer
 * (onnx-layers.ts); before the first timing of a problem its output is checked against looptune's
 * reference interpreter, so a figure is never of a wrong computation.
 */
import * as ort from 'onnxruntime-node';
import { fail } from '../../ir/errors.ts';
import { checkAgainstOracle, checkSampledAgainstOracle, interpret, randomArray } from '../../ir/interpret.ts';
import { elementCount, flops, iterationPoints, type Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { onnxLayerFor, type OnnxLayer } from './onnx-layers.ts';

export interface OnnxRuntimeTimingOptions {
  /** intra-op threads (ONNX Runtime's own pool) */
  readonly threads: number;
  /** timed runs go on until at least this long was spent in them */
  readonly minSeconds: number;
}

export interface OnnxRuntimeTiming {
  readonly library: string;
  readonly threads: number;
  /** from the best run */
  readonly gflops: number;
  readonly bestSeconds: number;
  readonly medianSeconds: number;
}

/** Up to this many iteration points the whole output is checked; beyond, sampled elements. */
const FULL_CHECK_POINTS = 1 << 22;
/** Output elements a sampled check computes from their definition. */
const SAMPLED_CHECK_ELEMENTS = 256;
/** Untimed runs before timing: first-run allocation, weight pre-packing, warm caches. */
const WARMUP_RUNS = 3;
/** At least this many timed runs, however long one takes, so that a median means something. */
const MIN_TIMED_RUNS = 5;
const INPUT_SEED = 1;
const WEIGHT_SEED = 2;

/** Problem specs whose ONNX Runtime output already matched the interpreter in this process. */
const checked = new Set<string>();

export function onnxRuntimeLibrary(): string {
  return `ONNX Runtime ${ort.env.versions.common} (MLAS)`;
}

/** The session options of every timing: `threads` intra-op threads, one sequential inter-op stream. */
export function onnxRuntimeSessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

/** The problem's inputs, seeded: [graph input, weights], or [graph input] for a pool. */
export function onnxRuntimeInputs(problem: Problem): Float32Array[] {
  return problem.tensors.slice(1).map((t, i) => randomArray(elementCount(t), i === 0 ? INPUT_SEED : WEIGHT_SEED));
}

/** One run of `session` on `input`, writing into `output` (preallocated, so that a run allocates nothing). */
export async function runOnnxLayer(session: ort.InferenceSession, layer: OnnxLayer, input: Float32Array, output: Float32Array): Promise<void> {
  const feeds = { [layer.input.name]: new ort.Tensor('float32', input, layer.input.dims) };
  await session.run(feeds, { [layer.output.name]: new ort.Tensor('float32', output, layer.output.dims) });
}

/**
 * ONNX Runtime's `actual` output for `inputs` against the float64 interpreter, with the fp32
 * tolerance of ir/interpret.ts: the whole output for small problems, sampled elements for large.
 * A max pool is exact, so it must match bit for bit (from -Infinity, where the tolerance, scaled
 * by |initial value|, would accept anything).
 */
export function compareWithInterpreter(
  problem: Problem, inputs: readonly Float32Array[], actual: Float32Array,
): { ok: boolean; maxError: number; tolerance: number } {
  if (problem.combine === 'max') {
    const want = interpret(Schedule.initial(problem), inputs, new Float32Array(elementCount(problem.tensors[0]!)).fill(-Infinity));
    const maxError = want.reduce((m, x, i) => (x === actual[i] ? m : Math.max(m, Math.abs(x - actual[i]!) || Infinity)), 0);
    return { ok: maxError === 0 && want.length === actual.length, maxError, tolerance: 0 };
  }
  const initial = new Float32Array(elementCount(problem.tensors[0]!));
  return iterationPoints(problem) <= FULL_CHECK_POINTS
    ? checkAgainstOracle(Schedule.initial(problem), inputs, initial, actual)
    : checkSampledAgainstOracle(problem, inputs, initial, actual, SAMPLED_CHECK_ELEMENTS);
}

/** Times ONNX Runtime on `problem` (matmul, conv or max pool): warm-up, then best and median of runs lasting at least minSeconds. */
export async function timeOnnxRuntime(problem: Problem, options: OnnxRuntimeTimingOptions): Promise<OnnxRuntimeTiming> {
  const { threads, minSeconds } = options;
  if (!Number.isInteger(threads) || threads < 1) fail(`ONNX Runtime peer: threads must be a positive integer, got ${threads}`);
  const inputs = onnxRuntimeInputs(problem);
  const input = inputs[0]!;
  const layer = onnxLayerFor(problem, inputs[1]);
  const output = new Float32Array(elementCount(problem.tensors[0]!));
  const session = await ort.InferenceSession.create(layer.bytes, onnxRuntimeSessionOptions(threads));
  try {
    if (!checked.has(problem.spec)) {
      await runOnnxLayer(session, layer, input, output);
      const check = compareWithInterpreter(problem, inputs, output);
      if (!check.ok) {
        fail(`ONNX Runtime disagrees with the reference interpreter on ${problem.spec}: error ${check.maxError.toExponential(2)} > tolerance ${check.tolerance.toExponential(2)}`);
      }
      checked.add(problem.spec);
    }
    for (let i = 0; i < WARMUP_RUNS; i++) await runOnnxLayer(session, layer, input, output);
    const seconds: number[] = [];
    let spent = 0;
    while (spent < minSeconds || seconds.length < MIN_TIMED_RUNS) {
      const start = process.hrtime.bigint();
      await runOnnxLayer(session, layer, input, output);
      const s = Number(process.hrtime.bigint() - start) / 1e9;
      seconds.push(s);
      spent += s;
    }
    seconds.sort((a, b) => a - b);
    const bestSeconds = seconds[0]!;
    const medianSeconds = seconds[Math.floor(seconds.length / 2)]!;
    return { library: onnxRuntimeLibrary(), threads, gflops: flops(problem) / bestSeconds / 1e9, bestSeconds, medianSeconds };
  } finally {
    await session.release();
  }
}
