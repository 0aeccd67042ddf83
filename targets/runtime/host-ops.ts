/**
 * The host ops of a ModelGraph (ir/model/graph.ts HostOp) in float32 JavaScript, as the model
 * executor runs them: each op is prepared once for its shapes (strides, collapsed dimensions and
 * scratch space computed then), and the prepared function computes output from inputs with no
 * allocation and no per-element closure call. Arithmetic is float64 (JS numbers), stored as fp32.
 *
 *   const softmax = prepareHostOp({ kind: 'softmax', axis: 3 }, [[1, 12, 128, 128]], [1, 12, 128, 128]);
 *   softmax([x], y);
 *
 * Dimensions that move together in every tensor are merged first (a broadcasting add over
 * [1, 128, 768] + [768] is a loop of 128 rows of 768), so the inner loops run over long
 * contiguous rows wherever the shapes allow.
 *
 * Softmax over the last axis and layer normalization (always over contiguous trailing rows) run
 * as native fp32 AVX-512/AVX2 row kernels where this host can run them (native-host-ops.ts);
 * elsewhere, and with `{ native: false }`, these JS kernels do.
 */
import { fail } from '../../ir/errors.ts';
import { erf as erf64 } from '../../ir/problem.ts';
import type { BinaryOp, HostOp, UnaryOp } from '../../ir/model/graph.ts';
import { nativeLayerNormRows, nativeSoftmaxRows } from './native-host-ops.ts';

/** A host op prepared for fixed shapes: writes `output` from `inputs` (data arrays, row-major). */
export type HostKernel = (inputs: readonly Float32Array[], output: Float32Array) => void;

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export interface PrepareHostOpOptions {
  /** use the native row kernels where they apply and run here (default true); false: JS only */
  native?: boolean;
}

/**
 * Prepares `op` for inputs of `inputShapes` and an output of `outputShape` (graph.ts HostOp gives
 * the inputs per kind); fails in one line when the shapes do not fit the op.
 */
export function prepareHostOp(
  op: HostOp, inputShapes: readonly (readonly number[])[], outputShape: readonly number[], options: PrepareHostOpOptions = {},
): HostKernel {
  const native = options.native ?? true;
  const arity: Record<HostOp['kind'], number | undefined> = {
    binary: 2, unary: 1, clip: 1, softmax: 1, layernorm: 3, transpose: 1, concat: undefined, reshape: 1, reducemean: 1,
  };
  const want = arity[op.kind];
  if (want !== undefined && inputShapes.length !== want) fail(`host op ${op.kind}: takes ${want} input${want > 1 ? 's' : ''}, got ${inputShapes.length}`);
  if (op.kind === 'concat' && inputShapes.length < 1) fail('host op concat: takes at least one input, got none');
  const x = inputShapes[0]!;
  const sameShape = (): void => {
    if (product(x) !== product(outputShape) || x.length !== outputShape.length || x.some((n, d) => n !== outputShape[d])) {
      fail(`host op ${op.kind}: the output ${shapeText(outputShape)} must have the input's shape ${shapeText(x)}`);
    }
  };
  switch (op.kind) {
    case 'binary': return binaryKernel(op.op, inputShapes[0]!, inputShapes[1]!, outputShape);
    case 'unary': sameShape(); return unaryKernel(op.op);
    case 'clip': sameShape(); return clipKernel(op.min, op.max);
    case 'softmax': sameShape(); return softmaxKernel(x, checkAxis('softmax', op.axis, x.length), native);
    case 'layernorm': sameShape(); return layerNormKernel(x, checkAxis('layernorm', op.axis, x.length), inputShapes[1]!, inputShapes[2]!, op.epsilon, native);
    case 'transpose': return transposeKernel(x, op.perm, outputShape);
    case 'concat': return concatKernel(inputShapes, checkAxis('concat', op.axis, outputShape.length), outputShape);
    case 'reshape':
      if (product(x) !== product(outputShape)) fail(`host op reshape: ${shapeText(x)} has ${product(x)} elements, the output ${shapeText(outputShape)} ${product(outputShape)}`);
      return copyKernel;
    case 'reducemean': return reduceMeanKernel(x, op.axes, op.keepdims, outputShape);
  }
}

function checkAxis(kind: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < 0 || axis >= rank) fail(`host op ${kind}: axis ${axis} is outside 0..${rank - 1} of a ${rank}-d tensor`);
  return axis;
}

/** Reshape (when it is not an alias) and Identity: the same elements. */
function copyKernel(inputs: readonly Float32Array[], output: Float32Array): void {
  if (inputs[0] !== output) output.set(inputs[0]!);
}

// ---------------------------------------------------------------- loops over collapsed dimensions

/**
 * The dimensions of a loop nest over `shape` with one stride per tensor, merged where every
 * tensor moves contiguously from one to the next (stride[d] = stride[d+1] * shape[d+1]) and
 * without the dimensions of size 1. At least one dimension is left.
 */
function collapse(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!;
    if (n === 1) continue;
    const last = outShape.length - 1;
    const mergeable = last >= 0 && strides.every((s, t) => outStrides[t]![last] === s[d]! * n);
    if (mergeable) {
      outShape[last] = outShape[last]! * n;
      strides.forEach((s, t) => (outStrides[t]![last] = s[d]!));
    } else {
      outShape.push(n);
      strides.forEach((s, t) => outStrides[t]!.push(s[d]!));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  return { shape: outShape, strides: outStrides };
}

/**
 * An odometer over every dimension but the last of a collapsed nest: `row(offsets)` is called once
 * per innermost row with each tensor's element offset at the row's start. The offsets array is
 * the odometer's own (reused, not to be kept).
 */
class RowWalker {
  readonly rows: number;
  readonly #outer: number[];
  readonly #strides: number[][];
  readonly #at: number[];
  readonly offsets: number[];

  constructor(shape: readonly number[], strides: readonly (readonly number[])[]) {
    this.#outer = shape.slice(0, -1);
    this.rows = product(this.#outer);
    this.#strides = strides.map((s) => s.slice(0, -1));
    this.#at = new Array<number>(this.#outer.length).fill(0);
    this.offsets = new Array<number>(strides.length).fill(0);
  }

  /** Rewinds to the first row. */
  reset(): void {
    this.#at.fill(0);
    this.offsets.fill(0);
  }

  /** Moves to the next row (call rows - 1 times after reset). */
  next(): void {
    const at = this.#at, outer = this.#outer, strides = this.#strides, offsets = this.offsets;
    for (let d = outer.length - 1; d >= 0; d--) {
      for (let t = 0; t < offsets.length; t++) offsets[t] = offsets[t]! + strides[t]![d]!;
      if (++at[d]! < outer[d]!) return;
      for (let t = 0; t < offsets.length; t++) offsets[t] = offsets[t]! - strides[t]![d]! * outer[d]!;
      at[d] = 0;
    }
  }
}

// ---------------------------------------------------------------- elementwise

/** Strides of `shape` read at each index of `out` (numpy broadcasting: dimensions of 1 and missing leading ones get 0). */
function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = rowMajorStrides(shape);
  const lead = out.length - shape.length;
  return out.map((n, d) => {
    if (d < lead) return 0;
    const m = shape[d - lead]!;
    if (m !== n && m !== 1) fail(`host op binary: ${shapeText(shape)} does not broadcast to the output ${shapeText(out)}`);
    return m === 1 ? 0 : own[d - lead]!;
  });
}

function binaryKernel(op: BinaryOp, a: readonly number[], b: readonly number[], out: readonly number[]): HostKernel {
  if (a.length > out.length || b.length > out.length) fail(`host op binary: inputs ${shapeText(a)} and ${shapeText(b)} have more dimensions than the output ${shapeText(out)}`);
  const nest = collapse(out, [rowMajorStrides(out), broadcastStrides(a, out), broadcastStrides(b, out)]);
  const n = nest.shape[nest.shape.length - 1]!;
  const inner = nest.strides.map((s) => s[s.length - 1]!);
  const [so, sa, sb] = inner as [number, number, number];
  const walk = new RowWalker(nest.shape, nest.strides);
  const code = BINARY_CODE[op];
  return (inputs, output) => {
    const x = inputs[0]!, y = inputs[1]!;
    walk.reset();
    const offsets = walk.offsets;
    for (let r = 0; r < walk.rows; r++) {
      if (r > 0) walk.next();
      binaryRow(code, x, offsets[1]!, sa, y, offsets[2]!, sb, output, offsets[0]!, so, n);
    }
  };
}

const BINARY_CODE: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3, pow: 4 };

/** x**y with the exponents a graph spells as Pow (x*x of a variance, a square root) computed exactly as those. */
function power(x: number, y: number): number {
  if (y === 2) return x * x;
  if (y === 0.5) return Math.sqrt(x);
  return Math.pow(x, y);
}

/** One row of out[o + i*so] = a[ia + i*sa] op b[ib + i*sb]; the op switch stays outside the loops. */
function binaryRow(code: number, a: Float32Array, ia: number, sa: number, b: Float32Array, ib: number, sb: number, out: Float32Array, o: number, so: number, n: number): void {
  if (so === 1 && sa === 1 && sb === 1) {
    switch (code) {
      case 0: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! + b[ib + i]!; return;
      case 1: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! - b[ib + i]!; return;
      case 2: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! * b[ib + i]!; return;
      case 3: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! / b[ib + i]!; return;
      default: for (let i = 0; i < n; i++) out[o + i] = power(a[ia + i]!, b[ib + i]!); return;
    }
  }
  if (so === 1 && sa === 1 && sb === 0) {
    const y = b[ib]!;
    switch (code) {
      case 0: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! + y; return;
      case 1: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! - y; return;
      case 2: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! * y; return;
      case 3: for (let i = 0; i < n; i++) out[o + i] = a[ia + i]! / y; return;
      default: for (let i = 0; i < n; i++) out[o + i] = power(a[ia + i]!, y); return;
    }
  }
  switch (code) {
    case 0: for (let i = 0; i < n; i++) out[o + i * so] = a[ia + i * sa]! + b[ib + i * sb]!; return;
    case 1: for (let i = 0; i < n; i++) out[o + i * so] = a[ia + i * sa]! - b[ib + i * sb]!; return;
    case 2: for (let i = 0; i < n; i++) out[o + i * so] = a[ia + i * sa]! * b[ib + i * sb]!; return;
    case 3: for (let i = 0; i < n; i++) out[o + i * so] = a[ia + i * sa]! / b[ib + i * sb]!; return;
    default: for (let i = 0; i < n; i++) out[o + i * so] = power(a[ia + i * sa]!, b[ib + i * sb]!); return;
  }
}

/**
 * erf by cubic Hermite interpolation on a table over [0, ERF_RANGE]: values from ir/problem.ts's
 * float64 erf, slopes from erf' = 2/sqrt(pi) exp(-x^2). At a step of 1/64 the interpolation error
 * is below 1e-9, far under fp32's half ulp; past ERF_RANGE, 1 - erf(x) < 3e-17.
 */
const ERF_STEPS_PER_UNIT = 64;
const ERF_RANGE = 6;
const ERF_VALUES = new Float64Array(ERF_RANGE * ERF_STEPS_PER_UNIT + 2);
const ERF_SLOPES = new Float64Array(ERF_VALUES.length);
for (let i = 0; i < ERF_VALUES.length; i++) {
  const x = i / ERF_STEPS_PER_UNIT;
  ERF_VALUES[i] = erf64(x);
  ERF_SLOPES[i] = (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) / ERF_STEPS_PER_UNIT; // per table step
}

/** erf(x), accurate to about 1e-9 (see the table above). */
export function fastErf(x: number): number {
  const ax = x < 0 ? -x : x;
  if (!(ax < ERF_RANGE)) return Number.isNaN(x) ? NaN : x < 0 ? -1 : 1;
  const u = ax * ERF_STEPS_PER_UNIT;
  const i = Math.floor(u);
  const t = u - i;
  const y0 = ERF_VALUES[i]!, y1 = ERF_VALUES[i + 1]!, m0 = ERF_SLOPES[i]!, m1 = ERF_SLOPES[i + 1]!;
  // Hermite basis: h00 = 2t^3 - 3t^2 + 1, h10 = t^3 - 2t^2 + t, h01 = -2t^3 + 3t^2, h11 = t^3 - t^2
  const t2 = t * t, t3 = t2 * t;
  const y = (2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0 + (3 * t2 - 2 * t3) * y1 + (t3 - t2) * m1;
  return x < 0 ? -y : y;
}

function unaryKernel(op: UnaryOp): HostKernel {
  switch (op) {
    case 'relu': return (inputs, out) => {
      const x = inputs[0]!;
      for (let i = 0; i < out.length; i++) {
        const v = x[i]!;
        out[i] = v > 0 ? v : 0;
      }
    };
    case 'sigmoid': return (inputs, out) => {
      const x = inputs[0]!;
      for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-x[i]!));
    };
    case 'erf': return (inputs, out) => {
      const x = inputs[0]!;
      for (let i = 0; i < out.length; i++) out[i] = fastErf(x[i]!);
    };
    case 'sqrt': return (inputs, out) => {
      const x = inputs[0]!;
      for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(x[i]!);
    };
    case 'gelu': return (inputs, out) => {
      const x = inputs[0]!;
      for (let i = 0; i < out.length; i++) {
        const v = x[i]!;
        out[i] = 0.5 * v * (1 + fastErf(v * Math.SQRT1_2));
      }
    };
  }
}

function clipKernel(min: number, max: number): HostKernel {
  return (inputs, out) => {
    const x = inputs[0]!;
    for (let i = 0; i < out.length; i++) {
      const v = x[i]!;
      out[i] = v < min ? min : v > max ? max : v;
    }
  };
}

// ---------------------------------------------------------------- normalizations

/** exp(x - max) / sum over `axis`: rows of `n` elements, `inner` apart, in `outer` groups. */
function softmaxKernel(shape: readonly number[], axis: number, native: boolean): HostKernel {
  const outer = product(shape.slice(0, axis)), n = shape[axis]!, inner = product(shape.slice(axis + 1));
  // contiguous rows (nothing but 1s after the axis): the native row kernel, where one runs
  const rows = native && inner === 1 ? nativeSoftmaxRows(outer, n) : undefined;
  if (rows) return rows;
  return (inputs, out) => {
    const x = inputs[0]!;
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        const base = o * n * inner + j;
        let max = -Infinity;
        for (let i = 0, p = base; i < n; i++, p += inner) if (x[p]! > max) max = x[p]!;
        let sum = 0;
        for (let i = 0, p = base; i < n; i++, p += inner) {
          const e = Math.exp(x[p]! - max);
          out[p] = e;
          sum += e;
        }
        const scale = 1 / sum;
        for (let i = 0, p = base; i < n; i++, p += inner) out[p] = out[p]! * scale;
      }
    }
  };
}

/** (x - mean) / sqrt(var + epsilon) * gamma + beta over the trailing dimensions axis..rank-1. */
function layerNormKernel(shape: readonly number[], axis: number, gamma: readonly number[], beta: readonly number[], epsilon: number, native: boolean): HostKernel {
  const cols = product(shape.slice(axis)), rows = product(shape.slice(0, axis));
  if (product(gamma) !== cols || product(beta) !== cols) {
    fail(`host op layernorm: gamma ${shapeText(gamma)} and beta ${shapeText(beta)} must have the ${cols} elements of ${shapeText(shape.slice(axis))}`);
  }
  const nativeRows = native ? nativeLayerNormRows(rows, cols, epsilon) : undefined;
  if (nativeRows) return nativeRows;
  return (inputs, out) => {
    const x = inputs[0]!, g = inputs[1]!, b = inputs[2]!;
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let sum = 0;
      for (let i = 0; i < cols; i++) sum += x[base + i]!;
      const mean = sum / cols;
      let sq = 0;
      for (let i = 0; i < cols; i++) {
        const d = x[base + i]! - mean;
        sq += d * d;
      }
      const inv = 1 / Math.sqrt(sq / cols + epsilon);
      for (let i = 0; i < cols; i++) out[base + i] = (x[base + i]! - mean) * inv * g[i]! + b[i]!;
    }
  };
}

// ---------------------------------------------------------------- data movement

/** Side of the square tiles a strided transpose moves: 16x16 floats read and written within a few cache lines each. */
const TRANSPOSE_TILE = 16;

function transposeKernel(shape: readonly number[], perm: readonly number[], outShape: readonly number[]): HostKernel {
  const rank = shape.length;
  if (perm.length !== rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    fail(`host op transpose: perm [${perm.join(', ')}] is not a permutation of 0..${rank - 1}`);
  }
  const expected = perm.map((p) => shape[p]!);
  if (outShape.length !== rank || expected.some((n, d) => n !== outShape[d])) {
    fail(`host op transpose: the output of ${shapeText(shape)} by perm [${perm.join(', ')}] is ${shapeText(expected)}, got ${shapeText(outShape)}`);
  }
  const inStrides = rowMajorStrides(shape);
  // walk the output in order; each output dimension moves the input by its source's stride
  const nest = collapse(outShape, [rowMajorStrides(outShape), perm.map((p) => inStrides[p]!)]);
  const dims = nest.shape.length;
  const [os, is] = nest.strides as [number[], number[]];
  const n1 = nest.shape[dims - 1]!, s1 = is[dims - 1]!;
  if (s1 === 1 || dims === 1) {
    // rows contiguous on both sides (after collapsing, o-stride of the last dimension is 1)
    const walk = new RowWalker(nest.shape, nest.strides);
    return (inputs, out) => {
      const x = inputs[0]!;
      walk.reset();
      const offsets = walk.offsets;
      for (let r = 0; r < walk.rows; r++) {
        if (r > 0) walk.next();
        const o = offsets[0]!, i0 = offsets[1]!;
        for (let j = 0; j < n1; j++) out[o + j] = x[i0 + j * s1]!;
      }
    };
  }
  // the last two output dimensions in square tiles, so that reads along the input's rows stay in cache
  const n2 = nest.shape[dims - 2]!, s2 = is[dims - 2]!, o2 = os[dims - 2]!;
  const outerShape = [...nest.shape.slice(0, dims - 2), 1];
  const walk = new RowWalker(outerShape, [[...os.slice(0, dims - 2), 0], [...is.slice(0, dims - 2), 0]]);
  return (inputs, out) => {
    const x = inputs[0]!;
    walk.reset();
    const offsets = walk.offsets;
    for (let r = 0; r < walk.rows; r++) {
      if (r > 0) walk.next();
      const ob = offsets[0]!, ib = offsets[1]!;
      for (let i0 = 0; i0 < n2; i0 += TRANSPOSE_TILE) {
        const i1 = Math.min(n2, i0 + TRANSPOSE_TILE);
        for (let j0 = 0; j0 < n1; j0 += TRANSPOSE_TILE) {
          const j1 = Math.min(n1, j0 + TRANSPOSE_TILE);
          for (let i = i0; i < i1; i++) {
            const orow = ob + i * o2, irow = ib + i * s2;
            for (let j = j0; j < j1; j++) out[orow + j] = x[irow + j * s1]!;
          }
        }
      }
    }
  };
}

/** Rows at least this long are moved with one `set` of a subarray view (the view costs more than a short loop). */
const SET_ROW = 1024;

function concatKernel(shapes: readonly (readonly number[])[], axis: number, outShape: readonly number[]): HostKernel {
  const rank = outShape.length;
  let total = 0;
  for (const s of shapes) {
    if (s.length !== rank || s.some((n, d) => d !== axis && n !== outShape[d])) {
      fail(`host op concat: input ${shapeText(s)} does not match the output ${shapeText(outShape)} outside axis ${axis}`);
    }
    total += s[axis]!;
  }
  if (total !== outShape[axis]) fail(`host op concat: the inputs' sizes along axis ${axis} sum to ${total}, the output has ${outShape[axis]}`);
  const outer = product(outShape.slice(0, axis)), inner = product(outShape.slice(axis + 1));
  const chunks = shapes.map((s) => s[axis]! * inner);
  const outChunk = outShape[axis]! * inner;
  return (inputs, out) => {
    let start = 0;
    for (let k = 0; k < inputs.length; k++) {
      const x = inputs[k]!, n = chunks[k]!;
      for (let o = 0; o < outer; o++) {
        const from = o * n, to = o * outChunk + start;
        if (n >= SET_ROW) out.set(x.subarray(from, from + n), to);
        else for (let i = 0; i < n; i++) out[to + i] = x[from + i]!;
      }
      start += n;
    }
  };
}

function reduceMeanKernel(shape: readonly number[], axes: readonly number[], keepdims: boolean, outShape: readonly number[]): HostKernel {
  const rank = shape.length;
  const reduced = new Set<number>();
  for (const a of axes) reduced.add(checkAxis('reducemean', a, rank));
  const expected = keepdims ? shape.map((n, d) => (reduced.has(d) ? 1 : n)) : shape.filter((_, d) => !reduced.has(d));
  if (product(expected) !== product(outShape) || (expected.length > 0 && expected.length !== outShape.length) || expected.some((n, d) => n !== outShape[d])) {
    fail(`host op reducemean: the mean of ${shapeText(shape)} over axes [${axes.join(', ')}]${keepdims ? ' (keepdims)' : ''} is ${shapeText(expected)}, got ${shapeText(outShape)}`);
  }
  const count = product(shape.filter((_, d) => reduced.has(d)));
  // the output's stride of each input dimension (0 on the reduced ones)
  const keptStrides = rowMajorStrides(shape.map((n, d) => (reduced.has(d) ? 1 : n)));
  const nest = collapse(shape, [rowMajorStrides(shape), shape.map((_, d) => (reduced.has(d) ? 0 : keptStrides[d]!))]);
  const dims = nest.shape.length;
  const [, os] = nest.strides as [number[], number[]];
  const reducedDims = os.filter((s, d) => s === 0 && nest.shape[d]! > 1).length;
  // one block of reduced dimensions after merging: outer x n (reduced) x inner, summed row by row
  const single = reducedDims <= 1;
  const r = os.findIndex((s, d) => s === 0 && nest.shape[d]! > 1);
  const outer = single && r >= 0 ? product(nest.shape.slice(0, r)) : 0;
  const n = single && r >= 0 ? nest.shape[r]! : 0;
  const inner = single && r >= 0 ? product(nest.shape.slice(r + 1)) : 0;
  const acc = new Float64Array(Math.max(1, product(outShape)));
  const walk = new RowWalker(nest.shape, nest.strides);
  const innerN = nest.shape[dims - 1]!, innerIs = nest.strides[0]![dims - 1]!, innerOs = os[dims - 1]!;
  return (inputs, out) => {
    const x = inputs[0]!;
    if (r < 0) {
      out.set(x); // nothing reduced (every reduced axis has size 1)
      return;
    }
    if (single) {
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < inner; j++) acc[j] = 0;
        for (let i = 0; i < n; i++) {
          const base = (o * n + i) * inner;
          for (let j = 0; j < inner; j++) acc[j] = acc[j]! + x[base + j]!;
        }
        for (let j = 0; j < inner; j++) out[o * inner + j] = acc[j]! / count;
      }
      return;
    }
    acc.fill(0);
    walk.reset();
    const offsets = walk.offsets;
    for (let row = 0; row < walk.rows; row++) {
      if (row > 0) walk.next();
      const i0 = offsets[0]!, o0 = offsets[1]!;
      for (let j = 0; j < innerN; j++) acc[o0 + j * innerOs] = acc[o0 + j * innerOs]! + x[i0 + j * innerIs]!;
    }
    for (let i = 0; i < out.length; i++) out[i] = acc[i]! / count;
  };
}
