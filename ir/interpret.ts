/**
 * The reference interpreter: executes a problem under any schedule, honouring tails, in float64.
 * It is the oracle every code generator is checked against.
 */
import { elementCount, tensorStrides, type Problem } from './problem.ts';
import type { Schedule } from './schedule.ts';
import { Rng } from './random.ts';

export type NumericArray = Float32Array | Float64Array;

/**
 * Runs `schedule` on `inputs` (one array per input tensor) starting from `initialOutput` (zeros if
 * omitted); returns the output in float64.
 */
export function interpret(schedule: Schedule, inputs: readonly NumericArray[], initialOutput?: NumericArray): Float64Array {
  const p = schedule.problem;
  const out = new Float64Array(elementCount(p.tensors[0]!));
  if (initialOutput) out.set(initialOutput);
  walkNest(schedule, pointFunction(p, out, inputs[0]!, inputs[1] ?? inputs[0]!));
  return out;
}

/** Calls `point` with the element offsets of the output and the inputs for every point, in schedule order. */
function walkNest(schedule: Schedule, point: PointFn): void {
  const p = schedule.problem;
  const strides = tensorStrides(p);
  const loops = schedule.loops;
  const steps = schedule.steps;
  const range = p.vars.map((v) => v.extent);
  const nT = strides.length;
  // offsets per depth: offs[d * nT + t] is tensor t's element offset on entry to loop d
  const offs = new Float64Array((loops.length + 1) * nT);

  const run = (d: number): void => {
    if (d === loops.length) {
      point(offs[d * nT]!, offs[d * nT + 1]!, nT > 2 ? offs[d * nT + 2]! : 0);
      return;
    }
    const l = loops[d]!;
    const v = l.var;
    const step = steps[d]!;
    const r = range[v]!;
    const full = Math.floor(r / step);
    const rem = r - full * step;
    const base = d * nT;
    const next = base + nT;
    range[v] = step;
    for (let it = 0; it <= full; it++) {
      if (it === full) {
        if (rem === 0) break;
        range[v] = rem;
      }
      for (let t = 0; t < nT; t++) offs[next + t] = offs[base + t]! + strides[t]![v]! * step * it;
      run(d + 1);
    }
    range[v] = r;
  };
  run(0);
}

type PointFn = (o: number, i0: number, i1: number) => void;

function pointFunction(p: Problem, out: Float64Array, a: NumericArray, b: NumericArray): PointFn {
  switch (p.combine) {
    case 'fma': return (o, i, j) => { out[o] = out[o]! + a[i]! * b[j]!; };
    case 'sum': return (o, i) => { out[o] = out[o]! + a[i]!; };
    case 'max': return (o, i) => { out[o] = Math.max(out[o]!, a[i]!); };
    case 'add': return (o, i, j) => { out[o] = a[i]! + b[j]!; };
    case 'mul': return (o, i, j) => { out[o] = a[i]! * b[j]!; };
    case 'relu': return (o, i) => { out[o] = Math.max(a[i]!, 0); };
    case 'copy': return (o, i) => { out[o] = a[i]!; };
  }
}

/**
 * Error of a float32 result against the float64 oracle, normalized per element by the magnitude
 * of what was summed there (|init| + sum |terms|, from interpreting on absolute values), so a
 * long reduction is allowed its rounding: the check passes when the normalized error is at most
 * `(terms + 2) * 2^-23`, a bound on recursive fp32 summation error.
 */
export function checkAgainstOracle(
  schedule: Schedule, inputs: readonly NumericArray[], initialOutput: NumericArray, actual: ArrayLike<number>,
): { maxError: number; tolerance: number; ok: boolean } {
  const p = schedule.problem;
  // one walk computes the result and the magnitude |init| + sum |terms| of every element
  const want = new Float64Array(elementCount(p.tensors[0]!));
  want.set(initialOutput);
  const magnitude = Float64Array.from(initialOutput, Math.abs);
  const absInputs = inputs.map((a) => a.map(Math.abs));
  const value = pointFunction(p, want, inputs[0]!, inputs[1] ?? inputs[0]!);
  const size = pointFunction(p, magnitude, absInputs[0]!, absInputs[1] ?? absInputs[0]!);
  walkNest(schedule, (o, i, j) => {
    value(o, i, j);
    size(o, i, j);
  });
  let terms = 1;
  p.vars.forEach((v, i) => {
    if (p.output.index.every((ix) => ix.terms.every((t) => t.var !== i))) terms *= v.extent;
  });
  const tolerance = (terms + 2) * 2 ** -23;
  let maxError = 0;
  for (let i = 0; i < want.length; i++) {
    const x = actual[i]!;
    const e = want[i]!;
    if (Number.isNaN(x) !== Number.isNaN(e)) return { maxError: Infinity, tolerance, ok: false };
    const err = Math.abs(x - e) / Math.max(magnitude[i]!, 1e-30);
    if (err > maxError) maxError = err;
  }
  return { maxError, tolerance, ok: maxError <= tolerance };
}

/** Largest relative error of `actual` against `expected`, scaled by the magnitude of the values. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 1e-30;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const x = actual[i]!;
    if (Number.isNaN(x) !== Number.isNaN(e)) return Infinity;
    const err = Math.abs(x - e) / Math.max(Math.abs(e), scale * 1e-3);
    if (err > worst) worst = err;
  }
  return worst;
}

/** Deterministic pseudo-random values in [-1, 1) (the seeded Rng of ir/random.ts), for reproducible checks. */
export function randomArray(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const arr = new Float32Array(n);
  for (let i = 0; i < n; i++) arr[i] = rng.next() * 2 - 1;
  return arr;
}
