/**
 * The reference run of a ModelGraph: every node in order, in plain JavaScript, each computed in
 * float64 and stored as fp32 (as an fp32 runtime stores it), so the value after each node is the
 * per-node oracle a compiled model is checked against.
 *
 * Kernel nodes are evaluated by direct loops written from the op's definition (conv, matmul, bmm,
 * pools: ir/spec.ts), not by the generic interpreter (ir/interpret.ts), which walks the schedule
 * point by point with a closure call per point and is several times slower on a model; the tests
 * check these loops against the interpreter node by node. Problems the loops do not cover (a
 * blocked layout, elementwise problems) fall back to the interpreter.
 */
import { fail } from '../errors.ts';
import { copyFromStorage, padded } from '../padding.ts';
import { applyEpilogueOp, dataShape, elementCount, erf, type Problem } from '../problem.ts';
import { convAttributes, isConvOp, isPoolOp, layoutBlock, poolAttributes } from '../spec.ts';
import { interpret } from '../interpret.ts';
import { Schedule } from '../schedule.ts';
import type { BinaryOp, HostOp, ModelGraph, ModelNode, UnaryOp } from './graph.ts';

/** A tensor's shape and its row-major values. */
export interface TensorData {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Row-major element strides of a shape. */
function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

/** The numpy (ONNX) broadcast of two shapes, null when they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1, y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Strides of `shape` read at each index of `out` (broadcast dimensions: stride 0). */
function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = stridesOf(shape);
  const lead = out.length - shape.length;
  return out.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : own[d - lead]!));
}

/** Calls visit(outIndex, offsets...) over the output in row-major order, with each input's broadcast offset. */
function forEachBroadcast(out: readonly number[], strides: readonly (readonly number[])[], visit: (o: number, offsets: number[]) => void): void {
  const total = product(out);
  const at = out.map(() => 0);
  const offsets = strides.map(() => 0);
  for (let o = 0; o < total; o++) {
    visit(o, offsets);
    for (let d = out.length - 1; d >= 0; d--) {
      for (let t = 0; t < strides.length; t++) offsets[t]! += strides[t]![d]!;
      if (++at[d]! < out[d]!) break;
      for (let t = 0; t < strides.length; t++) offsets[t]! -= strides[t]![d]! * out[d]!;
      at[d] = 0;
    }
  }
}

export function binaryValue(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'pow': return Math.pow(a, b);
  }
}

export function unaryValue(op: UnaryOp, x: number): number {
  switch (op) {
    case 'relu': return Math.max(x, 0);
    case 'sigmoid': return 1 / (1 + Math.exp(-x));
    case 'erf': return erf(x);
    case 'sqrt': return Math.sqrt(x);
    case 'gelu': return 0.5 * x * (1 + erf(x / Math.SQRT2));
  }
}

/** A host op on its inputs (HostOp's order), in float64; `outShape` is the output's shape. */
export function evaluateHostOp(op: HostOp, inputs: readonly TensorData[], outShape: readonly number[]): Float64Array {
  const out = new Float64Array(product(outShape));
  const x = inputs[0]!;
  switch (op.kind) {
    case 'binary': {
      const [a, b] = inputs as [TensorData, TensorData];
      const sa = broadcastStrides(a.shape, outShape), sb = broadcastStrides(b.shape, outShape);
      forEachBroadcast(outShape, [sa, sb], (o, [i, j]) => (out[o] = binaryValue(op.op, a.data[i!]!, b.data[j!]!)));
      return out;
    }
    case 'unary':
      for (let i = 0; i < out.length; i++) out[i] = unaryValue(op.op, x.data[i]!);
      return out;
    case 'clip':
      for (let i = 0; i < out.length; i++) out[i] = Math.min(Math.max(x.data[i]!, op.min), op.max);
      return out;
    case 'reshape':
      for (let i = 0; i < out.length; i++) out[i] = x.data[i]!;
      return out;
    case 'softmax': {
      const n = x.shape[op.axis]!, inner = product(x.shape.slice(op.axis + 1)), outer = product(x.shape.slice(0, op.axis));
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const base = o * n * inner + i;
          let max = -Infinity, sum = 0;
          for (let j = 0; j < n; j++) max = Math.max(max, x.data[base + j * inner]!);
          for (let j = 0; j < n; j++) sum += out[base + j * inner] = Math.exp(x.data[base + j * inner]! - max);
          for (let j = 0; j < n; j++) out[base + j * inner]! /= sum;
        }
      }
      return out;
    }
    case 'layernorm': {
      const [, gamma, beta] = inputs as [TensorData, TensorData, TensorData];
      const d = product(x.shape.slice(op.axis)), outer = product(x.shape.slice(0, op.axis));
      for (let o = 0; o < outer; o++) {
        let mean = 0, variance = 0;
        for (let i = 0; i < d; i++) mean += x.data[o * d + i]!;
        mean /= d;
        for (let i = 0; i < d; i++) variance += (x.data[o * d + i]! - mean) ** 2;
        const inv = 1 / Math.sqrt(variance / d + op.epsilon);
        for (let i = 0; i < d; i++) out[o * d + i] = (x.data[o * d + i]! - mean) * inv * gamma.data[i]! + beta.data[i]!;
      }
      return out;
    }
    case 'transpose': {
      const own = stridesOf(x.shape);
      const strides = op.perm.map((p) => own[p]!);
      forEachBroadcast(outShape, [strides], (o, [i]) => (out[o] = x.data[i!]!));
      return out;
    }
    case 'concat': {
      const outer = product(outShape.slice(0, op.axis));
      let at = 0;
      const row = product(outShape.slice(op.axis));
      for (const t of inputs) {
        const block = product(t.shape.slice(op.axis));
        for (let o = 0; o < outer; o++) for (let i = 0; i < block; i++) out[o * row + at + i] = t.data[o * block + i]!;
        at += block;
      }
      return out;
    }
    case 'reducemean': {
      // the output's strides per input dimension: 0 along a reduced axis
      const kept = x.shape.map((n, d) => (op.axes.includes(d) ? 1 : n));
      const strides = broadcastStrides(kept, x.shape).map((s, d) => (op.axes.includes(d) ? 0 : s));
      forEachBroadcast(x.shape, [strides], (i, [o]) => (out[o!]! += x.data[i]!));
      const count = product(op.axes.map((a) => x.shape[a]!));
      for (let o = 0; o < out.length; o++) out[o]! /= count;
      return out;
    }
  }
}

/**
 * A kernel problem's output DATA (dataShape of tensors[0], row-major), in float64, from its
 * operands' data (unpadded, ABI order: inputs, then epilogue tensors).
 */
export function evaluateKernel(problem: Problem, operands: readonly ArrayLike<number>[]): Float64Array {
  if (operands.length !== problem.tensors.length - 1) fail(`reference: ${problem.spec} takes ${problem.tensors.length - 1} operands, got ${operands.length}`);
  problem.tensors.slice(1).forEach((t, i) => {
    const want = product(dataShape(t));
    if (operands[i]!.length !== want) fail(`reference: operand ${t.name} of ${problem.spec} has ${operands[i]!.length} elements, ${want} expected`);
  });
  const direct = layoutBlock(problem) === null ? directKernel(problem, operands) : null;
  if (direct === null) return interpreted(problem, operands);
  applyEpilogue(problem, direct, operands);
  return direct;
}

/** The generic interpreter on the problem's storage (padded inputs, the output inside its border), read back at the output's data. */
function interpreted(problem: Problem, operands: readonly ArrayLike<number>[]): Float64Array {
  const storage = problem.tensors.slice(1).map((t, i) => padded(t, Float64Array.from(operands[i]!)));
  const out = problem.tensors[0]!;
  const initial = new Float64Array(elementCount(out)).fill(problem.combine === 'max' ? -Infinity : 0);
  const result = new Float64Array(product(dataShape(out)));
  copyFromStorage(out, interpret(Schedule.initial(problem), storage, initial), result);
  return result;
}

/** The op's main computation (before the epilogue) by a direct loop, or null for ops it does not cover. */
function directKernel(p: Problem, operands: readonly ArrayLike<number>[]): Float64Array | null {
  const outShape = dataShape(p.tensors[0]!);
  if (p.op === 'matmul' || p.op === 'bmm') {
    const [A, B] = operands as [ArrayLike<number>, ArrayLike<number>];
    const b = p.op === 'bmm' ? outShape[0]! : 1;
    const M = outShape[outShape.length - 2]!, N = outShape[outShape.length - 1]!;
    const K = p.tensors[1]!.shape[p.tensors[1]!.shape.length - 1]!;
    const C = new Float64Array(b * M * N);
    for (let q = 0; q < b; q++) {
      for (let m = 0; m < M; m++) {
        const c0 = (q * M + m) * N;
        for (let k = 0; k < K; k++) {
          const a = A[(q * M + m) * K + k]!;
          const b0 = (q * K + k) * N;
          for (let n = 0; n < N; n++) C[c0 + n] += a * B[b0 + n]!;
        }
      }
    }
    return C;
  }
  if (isConvOp(p.op)) return directConv(p, operands[0]!, operands[1]!, outShape);
  if (isPoolOp(p.op)) return directPool(p, operands[0]!, outShape);
  return null;
}

/**
 * O[n, g*Kg+k, o...] = sum over c, window of I[n, g*Cg+c, o*stride + w*dilation - pad] * W[g*Kg+k, c, w...],
 * reads outside the input being zero. Spatial dimensions are flattened through per-dimension
 * offset tables, so one loop serves conv1d, conv2d and conv3d.
 */
function directConv(p: Problem, I: ArrayLike<number>, W: ArrayLike<number>, outShape: readonly number[]): Float64Array {
  const { stride, dilation, groups, pads } = convAttributes(p);
  const inShape = dataShape(p.tensors[1]!);
  const wShape = p.tensors[2]!.shape;
  const [N, C] = inShape as [number, number];
  const K = outShape[1]!;
  const Cg = C / groups, Kg = K / groups;
  const inSpatial = inShape.slice(2), outSpatial = outShape.slice(2), window = wShape.slice(2);
  const rank = inSpatial.length;
  const inPlane = product(inSpatial), outPlane = product(outSpatial), wPlane = product(window);
  const inStrides = stridesOf(inSpatial);
  const out = new Float64Array(N * K * outPlane);
  // for every output position and window position: the input offset, or -1 when it reads padding
  const taps = new Int32Array(outPlane * wPlane);
  const oAt = outSpatial.map(() => 0);
  for (let o = 0; o < outPlane; o++) {
    const wAt = window.map(() => 0);
    for (let w = 0; w < wPlane; w++) {
      let offset = 0;
      for (let d = 0; d < rank && offset >= 0; d++) {
        const i = oAt[d]! * stride[d]! + wAt[d]! * dilation[d]! - pads[d]!;
        offset = i < 0 || i >= inSpatial[d]! ? -1 : offset + i * inStrides[d]!;
      }
      taps[o * wPlane + w] = offset;
      for (let d = rank - 1; d >= 0; d--) {
        if (++wAt[d]! < window[d]!) break;
        wAt[d] = 0;
      }
    }
    for (let d = rank - 1; d >= 0; d--) {
      if (++oAt[d]! < outSpatial[d]!) break;
      oAt[d] = 0;
    }
  }
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const g = Math.floor(k / Kg);
      const o0 = (n * K + k) * outPlane;
      for (let c = 0; c < Cg; c++) {
        const i0 = (n * C + g * Cg + c) * inPlane;
        const w0 = (k * Cg + c) * wPlane;
        for (let w = 0; w < wPlane; w++) {
          const weight = W[w0 + w]!;
          for (let o = 0; o < outPlane; o++) {
            const t = taps[o * wPlane + w]!;
            if (t >= 0) out[o0 + o] += weight * I[i0 + t]!;
          }
        }
      }
    }
  }
  return out;
}

/** Max pool (padding never wins) or the average pool's window sum (padding counts as zero; the epilogue divides). */
function directPool(p: Problem, I: ArrayLike<number>, outShape: readonly number[]): Float64Array {
  const { window, stride, dilation, pads } = poolAttributes(p);
  const isMax = p.op.startsWith('maxpool');
  const inShape = dataShape(p.tensors[1]!);
  const planes = inShape[0]! * inShape[1]!;
  const inSpatial = inShape.slice(2), outSpatial = outShape.slice(2);
  const inPlane = product(inSpatial), outPlane = product(outSpatial), wPlane = product(window);
  const inStrides = stridesOf(inSpatial);
  const out = new Float64Array(planes * outPlane).fill(isMax ? -Infinity : 0);
  const oAt = outSpatial.map(() => 0);
  for (let o = 0; o < outPlane; o++) {
    const wAt = window.map(() => 0);
    for (let w = 0; w < wPlane; w++) {
      let offset = 0;
      for (let d = 0; d < inSpatial.length && offset >= 0; d++) {
        const i = oAt[d]! * stride[d]! + wAt[d]! * dilation[d]! - pads[d]!;
        offset = i < 0 || i >= inSpatial[d]! ? -1 : offset + i * inStrides[d]!;
      }
      if (offset >= 0) {
        for (let q = 0; q < planes; q++) {
          const x = I[q * inPlane + offset]!;
          const at = q * outPlane + o;
          out[at] = isMax ? Math.max(out[at]!, x) : out[at]! + x;
        }
      }
      for (let d = window.length - 1; d >= 0; d--) {
        if (++wAt[d]! < window[d]!) break;
        wAt[d] = 0;
      }
    }
    for (let d = outSpatial.length - 1; d >= 0; d--) {
      if (++oAt[d]! < outSpatial[d]!) break;
      oAt[d] = 0;
    }
  }
  return out;
}

/**
 * The problem's epilogue on every output element, in order. A bias follows the output channel
 * (dimension 1 of a conv, the last dimension of a matmul or bmm: ir/spec.ts biasChannel), a
 * residual the output position.
 */
function applyEpilogue(p: Problem, out: Float64Array, operands: readonly ArrayLike<number>[]): void {
  const ops = p.epilogue ?? [];
  if (ops.length === 0) return;
  const shape = dataShape(p.tensors[0]!);
  const channelDim = isConvOp(p.op) ? 1 : shape.length - 1;
  const channels = shape[channelDim]!, inner = product(shape.slice(channelDim + 1));
  let next = p.inputs.length;
  const tensorOf = ops.map((e) => (e.kind === 'bias' || e.kind === 'residual' ? operands[next++]! : null));
  for (let i = 0; i < out.length; i++) {
    let x = out[i]!;
    ops.forEach((e, j) => {
      const t = tensorOf[j];
      const operand = t === null ? 0 : e.kind === 'bias' ? t![Math.floor(i / inner) % channels]! : t![i]!;
      x = applyEpilogueOp(e, x, operand);
    });
    out[i] = x;
  }
}

/** The output of one node, fp32, from the values and weights `read` returns by name. */
export function evaluateNode(g: ModelGraph, node: ModelNode, read: (name: string) => Float32Array): Float32Array {
  const shapeOf = (name: string): readonly number[] => {
    const v = g.values.get(name) ?? g.weights.get(name);
    if (v === undefined) fail(`reference: node '${node.name}' reads '${name}', which is neither a value nor a weight of ${g.name}`);
    return v.shape;
  };
  const outShape = shapeOf(node.output);
  const result = node.kind === 'kernel'
    ? evaluateKernel(node.problem, node.operands.map(read))
    : evaluateHostOp(node.op, node.inputs.map((name) => ({ shape: shapeOf(name), data: read(name) })), outShape);
  if (result.length !== product(outShape)) fail(`reference: node '${node.name}' computed ${result.length} elements for '${node.output}' of shape [${outShape.join(', ')}]`);
  return Float32Array.from(result);
}

export interface ReferenceRun {
  /** the graph outputs by name */
  readonly outputs: Record<string, Float32Array>;
  /** every value computed (inputs and node outputs) when keepValues, else the inputs and outputs */
  readonly values: ReadonlyMap<string, Float32Array>;
}

/** Runs the graph node by node on `inputs` (one array per graph input, its element count). */
export function runReference(g: ModelGraph, inputs: Readonly<Record<string, Float32Array>>, options: { keepValues?: boolean } = {}): ReferenceRun {
  const values = new Map<string, Float32Array>();
  for (const v of g.inputs) {
    const data = inputs[v.name];
    if (data === undefined) fail(`reference: input '${v.name}' of ${g.name} not given (inputs: ${g.inputs.map((i) => i.name).join(', ')})`);
    if (data.length !== product(v.shape)) fail(`reference: input '${v.name}' has ${data.length} elements, ${product(v.shape)} expected for shape [${v.shape.join(', ')}]`);
    values.set(v.name, data);
  }
  // the last node reading each value: after it, the value is dropped unless kept
  const lastUse = new Map<string, number>();
  g.nodes.forEach((n, i) => (n.kind === 'kernel' ? n.operands : n.inputs).forEach((name) => lastUse.set(name, i)));
  const keep = new Set([...g.inputs, ...g.outputs].map((v) => v.name));
  const read = (name: string): Float32Array => {
    const v = values.get(name) ?? g.weights.get(name)?.data;
    if (v === undefined) fail(`reference: '${name}' is read before it is computed`);
    return v;
  };
  g.nodes.forEach((node, i) => {
    values.set(node.output, evaluateNode(g, node, read));
    if (options.keepValues) return;
    for (const name of node.kind === 'kernel' ? node.operands : node.inputs) {
      if (lastUse.get(name) === i && !keep.has(name)) values.delete(name);
    }
  });
  const outputs: Record<string, Float32Array> = {};
  for (const v of g.outputs) outputs[v.name] = read(v.name);
  return { outputs, values };
}

