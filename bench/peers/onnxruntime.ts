/**
 * ONNX Runtime (onnxruntime-node, its MLAS CPU kernels) timed on a looptune Problem: the library a
 * Node user would pick for inference, measured beside looptune on the same machine and threads.
 * The model is the layer as a deployed model has it (onnx-layers.ts: the op with its pads, the
 * epilogue as the ops ONNX Runtime may fuse, weights and bias as initializers, unpadded inputs);
 * before the first timing of a problem its output is checked against looptune's reference
 * interpreter, so a figure is never of a wrong computation.
 */
import * as ort from 'onnxruntime-node';
import { fail } from '../../ir/errors.ts';
import { checkAgainstOracle, checkSampledAgainstOracle, interpret, randomArray } from '../../ir/interpret.ts';
import { copyFromStorage, padded } from '../../ir/padding.ts';
import {
  dataShape, elementCount, flops, iterationPoints, type EpilogueKind, type Problem,
} from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { onnxLayerConstants, onnxLayerFor, type OnnxLayer } from './onnx-layers.ts';

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

/** Seeds of the bias and residual data (after the input's and the weights'). */
const EPILOGUE_SEED = 3;

/**
 * The problem's inputs, seeded, one UNPADDED data array per tensor after the output in ABI order:
 * [graph input, weights] (or [graph input] for a pool), then the epilogue's tensors (bias, residual).
 */
export function onnxRuntimeInputs(problem: Problem): Float32Array[] {
  return problem.tensors.slice(1).map((t, i) => {
    const n = elementCount({ name: t.name, shape: dataShape(t) });
    return randomArray(n, i === 0 ? INPUT_SEED : i < problem.inputs.length ? WEIGHT_SEED : EPILOGUE_SEED + i - problem.inputs.length);
  });
}

/** The layer of `problem` with its constants taken from `inputs` (onnxRuntimeInputs's order). */
export function onnxLayerOf(problem: Problem, inputs: readonly Float32Array[]): OnnxLayer {
  return onnxLayerFor(problem, onnxLayerConstants(problem, inputs));
}

/** What one run feeds: the graph inputs (the layer's input, a residual) from `inputs`, onnxRuntimeInputs's order. */
export function onnxFeeds(layer: OnnxLayer, inputs: readonly Float32Array[]): Record<string, ort.Tensor> {
  return Object.fromEntries(layer.inputs.map((g) => [g.name, new ort.Tensor('float32', inputs[g.tensor - 1]!, g.dims)]));
}

/** One run of `session` on `inputs` (onnxRuntimeInputs's order), writing into `output` (preallocated, the output's data shape). */
export async function runOnnxLayer(
  session: ort.InferenceSession, layer: OnnxLayer, inputs: readonly Float32Array[], output: Float32Array,
): Promise<void> {
  await session.run(onnxFeeds(layer, inputs), { [layer.output.name]: new ort.Tensor('float32', output, layer.output.dims) });
}

/** Epilogue ops that are exact in fp32 (a max pool followed only by them must still match bit for bit). */
const EXACT_EPILOGUE = new Set<EpilogueKind>(['relu', 'clip']);

/**
 * ONNX Runtime's `actual` output (the output's data shape) for `inputs` (unpadded data arrays,
 * onnxRuntimeInputs's order) against the float64 interpreter, which runs on looptune's storage
 * (each input padded with its pad value, the output inside its border) and is read back at the
 * output's interior. Convs, matmuls and average pools get the fp32 tolerance of ir/interpret.ts:
 * the whole output for small problems, sampled elements for large. A max pool is exact, so it must
 * match bit for bit (from -Infinity, where the tolerance, scaled by |initial value|, would accept
 * anything), also after exact epilogue ops (relu, clip); one followed by inexact ones (a sigmoid,
 * a residual) gets the tolerance instead, scaled by the data rather than by -Infinity.
 */
export function compareWithInterpreter(
  problem: Problem, inputs: readonly Float32Array[], actual: Float32Array,
): { ok: boolean; maxError: number; tolerance: number } {
  const out = problem.tensors[0]!;
  const dataCount = elementCount({ name: out.name, shape: dataShape(out) });
  if (actual.length !== dataCount || inputs.length !== problem.tensors.length - 1) return { ok: false, maxError: Infinity, tolerance: 0 };
  const storage = problem.tensors.slice(1).map((t, i) => padded(t, inputs[i]!));
  /** the output's storage with `data` as its interior and a zero border, as a fresh kernel leaves it */
  const outputStorage = (data: ArrayLike<number>): Float32Array => padded(out, Float32Array.from(data));
  let initial: Float32Array = new Float32Array(elementCount(out));
  if (problem.combine === 'max') {
    initial.fill(-Infinity);
    if ((problem.epilogue ?? []).every((e) => EXACT_EPILOGUE.has(e.kind))) {
      const want = new Float64Array(dataCount);
      copyFromStorage(out, interpret(Schedule.initial(problem), storage, initial), want);
      const maxError = want.reduce((m, x, i) => (x === actual[i] ? m : Math.max(m, Math.abs(x - actual[i]!) || Infinity)), 0);
      return { ok: maxError === 0, maxError, tolerance: 0 };
    }
    // the tolerance scales with |initial| and |terms|, infinite from a -Infinity start or border;
    // the data's minimum as both changes no maximum (every window holds data) and keeps the scale the data's
    const low = inputs[0]!.reduce((m, x) => Math.min(m, x), Infinity);
    const t = problem.tensors[1]!;
    if (t.pad) storage[0] = padded({ ...t, pad: { ...t.pad, value: low } }, inputs[0]!);
    initial = outputStorage(new Float32Array(dataCount).fill(low));
  }
  const got = outputStorage(actual);
  return iterationPoints(problem) <= FULL_CHECK_POINTS
    ? checkAgainstOracle(Schedule.initial(problem), storage, initial, got)
    : checkSampledAgainstOracle(problem, storage, initial, got, SAMPLED_CHECK_ELEMENTS);
}

/** Times ONNX Runtime on `problem` (matmul, conv or pool, with its epilogue): warm-up, then best and median of runs lasting at least minSeconds. */
export async function timeOnnxRuntime(problem: Problem, options: OnnxRuntimeTimingOptions): Promise<OnnxRuntimeTiming> {
  const { threads, minSeconds } = options;
  if (!Number.isInteger(threads) || threads < 1) fail(`ONNX Runtime peer: threads must be a positive integer, got ${threads}`);
  const inputs = onnxRuntimeInputs(problem);
  const layer = onnxLayerOf(problem, inputs);
  const output = new Float32Array(layer.output.dims.reduce((a, b) => a * b, 1));
  // the feeds (the input, a residual) and the output are wrapped once, outside the timed runs
  const feeds = onnxFeeds(layer, inputs);
  const fetches = { [layer.output.name]: new ort.Tensor('float32', output, layer.output.dims) };
  const session = await ort.InferenceSession.create(layer.bytes, onnxRuntimeSessionOptions(threads));
  const run = async () => {
    await session.run(feeds, fetches);
  };
  try {
    if (!checked.has(problem.spec)) {
      await run();
      const check = compareWithInterpreter(problem, inputs, output);
      if (!check.ok) {
        fail(`ONNX Runtime disagrees with the reference interpreter on ${problem.spec}: error ${check.maxError.toExponential(2)} > tolerance ${check.tolerance.toExponential(2)}`);
      }
      checked.add(problem.spec);
    }
    for (let i = 0; i < WARMUP_RUNS; i++) await run();
    const seconds: number[] = [];
    let spent = 0;
    while (spent < minSeconds || seconds.length < MIN_TIMED_RUNS) {
      const start = process.hrtime.bigint();
      await run();
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
