/**
 * The reference interpreter: executes a problem under any schedule, honouring tails, in float64.
 * It is the oracle every code generator is checked against. A typed problem (bf16, f16, tf32:
 * ir/dtype.ts) has its multiplied inputs rounded to the type first, as the hardware rounds them,
 * and is checked with typeTolerance; f32 problems take exactly the path they always took.
 */
import {
  applyEpilogueOp, elementCount, isReduction, problemAccesses, tensorStrides, type EpilogueOp, type Problem,
} from './problem.ts';
import type { Schedule } from './schedule.ts';
import { Rng } from './random.ts';
import { roundedArray, typeTolerance } from './dtype.ts';

export type NumericArray = Float32Array | Float64Array;

/**
 * Runs `schedule` on `inputs` (one array per tensor after the output: the inputs, then the
 * epilogue's operands) starting from `initialOutput` (zeros if omitted), then the epilogue on every
 * output element; returns the output in float64.
 */
export function interpret(schedule: Schedule, inputs: readonly NumericArray[], initialOutput?: NumericArray): Float64Array {
  const p = schedule.problem;
  inputs = typedInputs(p, inputs);
  const out = new Float64Array(elementCount(p.tensors[0]!));
  if (initialOutput) out.set(initialOutput);
  walkNest(schedule, pointFunction(p, out, inputs[0]!, inputs[1] ?? inputs[0]!));
  forEachOutput(p, (o, operands) => {
    out[o] = epilogueValue(p, out[o]!, operands, inputs);
  });
  return out;
}

/**
 * The inputs as the kernel multiplies them: for a typed problem the combine's inputs rounded to
 * the type (the epilogue's operands stay f32); f32 problems get the same arrays back.
 */
export function typedInputs(p: Problem, inputs: readonly NumericArray[]): readonly NumericArray[] {
  const t = p.dtype;
  if (t === undefined) return inputs;
  return inputs.map((a, i) => (i < p.inputs.length ? roundedArray(t, a) : a));
}

/** The tolerance of a reduction of `terms` terms: fp32 summation, or the typed problem's (typeTolerance). */
function reductionTolerance(p: Problem, terms: number): number {
  if (p.dtype === undefined) return (terms + 2) * 2 ** -23 + epilogueTolerance(p);
  return typeTolerance(p.dtype, terms) + epilogueTolerance(p);
}

/** Tensor index (ABI order) of each epilogue op's operand, -1 for ops without one. */
function epilogueTensors(p: Problem): number[] {
  let next = 1 + p.inputs.length;
  return (p.epilogue ?? []).map((e) => (e.kind === 'bias' || e.kind === 'residual' ? next++ : -1));
}

/** x after the whole epilogue; `operands[t]` is tensor t's element offset at this output point. */
function epilogueValue(p: Problem, x: number, operands: readonly number[], inputs: readonly NumericArray[]): number {
  const ops = p.epilogue ?? [];
  if (ops.length === 0) return x;
  const tensors = epilogueTensors(p);
  ops.forEach((e, i) => {
    const t = tensors[i]!;
    x = applyEpilogueOp(e, x, t < 0 ? 0 : inputs[t - 1]![operands[t]!]!);
  });
  return x;
}

/**
 * The magnitude an epilogue leaves (see checkAgainstOracle) and the extra tolerance it needs: a
 * bias or residual adds its operand's size, a scale scales it, sigmoid and gelu (approximated by
 * every target to a few ulps of 1) floor it at 1 and allow 16 ulps each.
 */
function epilogueMagnitude(p: Problem, magnitude: number, operands: readonly number[], inputs: readonly NumericArray[]): number {
  const tensors = epilogueTensors(p);
  (p.epilogue ?? []).forEach((e: EpilogueOp, i) => {
    const t = tensors[i]!;
    if (t >= 0) magnitude += Math.abs(inputs[t - 1]![operands[t]!]!);
    else if (e.kind === 'scale') magnitude *= Math.abs(e.value);
    else if (e.kind === 'sigmoid' || e.kind === 'gelu') magnitude = Math.max(magnitude * 1.13, 1);
  });
  return magnitude;
}

function epilogueTolerance(p: Problem): number {
  return (p.epilogue ?? []).filter((e) => e.kind === 'sigmoid' || e.kind === 'gelu').length * 16 * 2 ** -23;
}

/** Calls `visit` with the output's element offset and every tensor's offset at each output point (the output variables' odometer). */
function forEachOutput(p: Problem, visit: (output: number, offsets: readonly number[]) => void): void {
  if ((p.epilogue ?? []).length === 0) return;
  const strides = tensorStrides(p);
  const base = problemAccesses(p).map((a) => a.offset ?? 0);
  const outVars = p.vars.map((_, v) => v).filter((v) => !isReduction(p, v));
  const at = outVars.map(() => 0);
  const offsets = base.slice();
  const total = outVars.reduce((a, v) => a * p.vars[v]!.extent, 1);
  for (let n = 0; n < total; n++) {
    for (let t = 0; t < offsets.length; t++) {
      let o = base[t]!;
      outVars.forEach((v, i) => (o += strides[t]![v]! * at[i]!));
      offsets[t] = o;
    }
    visit(offsets[0]!, offsets);
    for (let d = at.length - 1; d >= 0; d--) {
      if (++at[d]! < p.vars[outVars[d]!]!.extent) break;
      at[d] = 0;
    }
  }
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
  problemAccesses(p).forEach((a, t) => (offs[t] = a.offset ?? 0));

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
 * checkAgainstOracle for problems too large to interpret whole (a 4096^3 matmul is 69 G points): the
 * same float64 oracle and tolerance on `samples` output elements chosen with `seed` (the first and
 * last element always among them), each computed from its definition: the output variables fixed,
 * every reduction variable walked over its range.
 */
export function checkSampledAgainstOracle(
  problem: Problem, inputs: readonly NumericArray[], initialOutput: NumericArray, actual: ArrayLike<number>, samples = 256, seed = 1,
): { maxError: number; tolerance: number; ok: boolean; checked: number } {
  const p = problem;
  inputs = typedInputs(p, inputs);
  const strides = tensorStrides(p);
  const outVars = p.vars.map((_, v) => v).filter((v) => !isReduction(p, v));
  const redVars = p.vars.map((_, v) => v).filter((v) => isReduction(p, v));
  const terms = redVars.reduce((a, v) => a * p.vars[v]!.extent, 1);
  const tolerance = reductionTolerance(p, terms);
  const base = problemAccesses(p).map((a) => a.offset ?? 0);
  const rng = new Rng(seed);
  const a = inputs[0]!, b = inputs[1] ?? inputs[0]!;
  let maxError = 0;
  let checked = 0;
  for (let n = 0; n < samples; n++) {
    // the output point: all zeros, all last, then random
    const at = outVars.map((v) => (n === 0 ? 0 : n === 1 ? p.vars[v]!.extent - 1 : rng.int(0, p.vars[v]!.extent - 1)));
    const offset = (t: number, red: readonly number[]) =>
      base[t]! + outVars.reduce((x, v, i) => x + strides[t]![v]! * at[i]!, 0) + redVars.reduce((x, v, i) => x + strides[t]![v]! * red[i]!, 0);
    const o = offset(0, redVars.map(() => 0));
    let want = initialOutput[o]!;
    let magnitude = Math.abs(want);
    const red = redVars.map(() => 0);
    for (let k = 0; k < terms; k++) {
      const i = offset(1, red);
      const j = strides.length > 2 ? offset(2, red) : i;
      switch (p.combine) {
        case 'fma': want += a[i]! * b[j]!; magnitude += Math.abs(a[i]! * b[j]!); break;
        case 'sum': want += a[i]!; magnitude += Math.abs(a[i]!); break;
        case 'max': want = Math.max(want, a[i]!); magnitude = Math.max(magnitude, Math.abs(a[i]!)); break;
        case 'add': want = a[i]! + b[j]!; magnitude = Math.abs(a[i]!) + Math.abs(b[j]!); break;
        case 'mul': want = a[i]! * b[j]!; magnitude = Math.abs(want); break;
        case 'relu': want = Math.max(a[i]!, 0); magnitude = Math.abs(a[i]!); break;
        case 'copy': want = a[i]!; magnitude = Math.abs(want); break;
      }
      // next reduction point (odometer, innermost last)
      for (let d = red.length - 1; d >= 0; d--) {
        if (++red[d]! < p.vars[redVars[d]!]!.extent) break;
        red[d] = 0;
      }
    }
    const operands = strides.map((_, t) => offset(t, redVars.map(() => 0)));
    want = epilogueValue(p, want, operands, inputs);
    magnitude = epilogueMagnitude(p, magnitude, operands, inputs);
    const x = actual[o]!;
    checked++;
    if (Number.isNaN(x) !== Number.isNaN(want)) return { maxError: Infinity, tolerance, ok: false, checked };
    const err = Math.abs(x - want) / Math.max(magnitude, 1e-30);
    if (err > maxError) maxError = err;
  }
  return { maxError, tolerance, ok: maxError <= tolerance, checked };
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
  inputs = typedInputs(p, inputs);
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
  forEachOutput(p, (o, operands) => {
    want[o] = epilogueValue(p, want[o]!, operands, inputs);
    magnitude[o] = epilogueMagnitude(p, magnitude[o]!, operands, inputs);
  });
  let terms = 1;
  p.vars.forEach((v, i) => {
    if (p.output.index.every((ix) => ix.terms.every((t) => t.var !== i))) terms *= v.extent;
  });
  const tolerance = reductionTolerance(p, terms);
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
