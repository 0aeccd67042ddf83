/**
 * ONNX model bytes → ModelGraph. Three steps, each failing with one line before anything is
 * returned (nothing is half-loaded):
 *
 * 1. decode (ir/model/onnx-proto.ts, protobufjs) and fold (ir/model/shape-fold.ts): static shapes,
 *    constants evaluated, unsupported ops, attributes and element types refused;
 * 2. lower every node left into graph nodes, unfused: Conv, Gemm, MatMul and the pools become
 *    kernel nodes (a Problem built from its spec text, so its spec is canonical); everything else
 *    a host node (graph.ts HostOp). BatchNormalization becomes a per-channel scale and shift (two
 *    broadcasting host nodes) that step 3 folds into a preceding convolution;
 * 3. fuse (ir/model/fuse.ts): batch-norm folding, bias, activations, residual adds, GELU chains
 *    and scalar scales into their producers' epilogues.
 *
 * Tensor layouts are ONNX's, which the kernels share (bench/peers/onnx-layers.ts maps the other
 * way): Conv weights [K, C/G, window...], MatMul B [K, N]; Gemm's transB weights are transposed once here.
 * Broadcasting elementwise ops that do not fuse stay host nodes (never add/mul Problems): they
 * are memory-bound and usually broadcast, which the elementwise Problems do not.
 */
import { readFile } from 'node:fs/promises';
import { fail, LoopTuneError } from '../errors.ts';
import { fsFailure } from '../fs-errors.ts';
import { dataShape, type Problem } from '../problem.ts';
import { parseProblem } from '../spec.ts';
import { decodeModel } from './onnx-proto.ts';
import {
  clipBounds, foldGraph, nodeLabel, normalizeAxis, poolWindow, reduceAxes, slidingWindow, transposePerm,
  type ConstantTensor, type FoldedGraph, type FoldedNode,
} from './shape-fold.ts';
import type { HostOp, KernelNode, ModelGraph, ModelNode, ModelValue, ModelWeight } from './graph.ts';
import { fuseGraph } from './fuse.ts';

export interface ImportOptions {
  /** static shapes of graph inputs whose dims are symbolic (e.g. the batch) */
  readonly inputShapes?: Readonly<Record<string, readonly number[]>>;
  /** the graph's name (default: the ONNX graph's) */
  readonly name?: string;
  /** apply ir/model/fuse.ts's rewrites (default true); false leaves one node per ONNX op */
  readonly fuse?: boolean;
}

/** The ModelGraph of an ONNX model's bytes. */
export function importOnnx(bytes: Uint8Array, options: ImportOptions = {}): ModelGraph {
  const model = decodeModel(bytes);
  const folded = foldGraph(model, options.inputShapes ?? {});
  const lowered = lower(folded, options.name ?? folded.name);
  return options.fuse === false ? lowered : fuseGraph(lowered);
}

/** The ModelGraph of an .onnx file. */
export async function loadOnnxFile(path: string, options: ImportOptions = {}): Promise<ModelGraph> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw fsFailure(e);
  }
  try {
    return importOnnx(bytes, options);
  } catch (e) {
    if (e instanceof LoopTuneError) fail(`${path}: ${e.message}`);
    throw e;
  }
}

const SPATIAL_NAMES: Record<number, string[]> = { 1: ['w'], 2: ['h', 'w'], 3: ['d', 'h', 'w'] };
const WINDOW_NAMES: Record<number, string[]> = { 1: ['s'], 2: ['r', 's'], 3: ['t', 'r', 's'] };

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The graph's nodes, weights and values as they are built, one ONNX node at a time. */
class GraphBuilder {
  readonly nodes: ModelNode[] = [];
  readonly weights = new Map<string, ModelWeight>();
  readonly values = new Map<string, ModelValue>();

  constructor(readonly folded: FoldedGraph) {
    for (const v of folded.inputs) this.values.set(v.name, v);
  }

  shape(name: string): readonly number[] {
    const s = this.folded.shapes.get(name) ?? this.folded.constants.get(name)?.shape;
    if (s === undefined) throw new Error(`onnx-import: no shape for '${name}'`);
    return s;
  }

  constant(name: string): ConstantTensor | undefined {
    return name === '' ? undefined : this.folded.constants.get(name);
  }

  /** The name a node reads for input `name`: a value, or a constant made a weight. */
  operand(name: string): string {
    const c = this.constant(name);
    if (c !== undefined) this.addWeight(name, c.shape, c.data instanceof Float32Array ? c.data : Float32Array.from(c.data));
    return name;
  }

  /** A constant input the op needs at load time (weights, bias, statistics); `what` names it in the error. */
  requireConstant(node: FoldedNode, i: number, what: string): ConstantTensor {
    const name = node.inputs[i];
    const c = name ? this.constant(name) : undefined;
    if (c === undefined) fail(`${nodeLabel(node)}: its ${what} ('${name ?? ''}') must be a constant (an initializer); a computed ${what} is not supported`);
    return c;
  }

  addWeight(name: string, shape: readonly number[], data: Float32Array): string {
    if (!this.weights.has(name)) this.weights.set(name, { name, shape: [...shape], data });
    return name;
  }

  /** A weight made here (a transposed or scaled initializer): a fresh name derived from `base`. */
  newWeight(base: string, shape: readonly number[], data: Float32Array): string {
    let name = base;
    for (let i = 1; this.weights.has(name) || this.folded.constants.has(name) || this.folded.shapes.has(name); i++) name = `${base}_${i}`;
    return this.addWeight(name, shape, data);
  }

  /** A value made here between two nodes lowered from one ONNX node. */
  newValue(base: string, shape: readonly number[]): string {
    let name = base;
    for (let i = 1; this.values.has(name) || this.folded.shapes.has(name) || this.folded.constants.has(name); i++) name = `${base}_${i}`;
    this.values.set(name, { name, shape: [...shape] });
    return name;
  }

  /** `base`, or base_1, base_2... when a node already has that name (derived names such as 'bn:scale' may meet an ONNX one). */
  private nodeName(base: string): string {
    let name = base;
    for (let i = 1; this.nodes.some((n) => n.name === name); i++) name = `${base}_${i}`;
    return name;
  }

  host(name: string, op: HostOp, inputs: readonly string[], output: string, source: string): void {
    if (!this.values.has(output)) this.values.set(output, { name: output, shape: this.shape(output) });
    this.nodes.push({ kind: 'host', name: this.nodeName(name), op, inputs: inputs.map((i) => this.operand(i)), output, sources: [source] });
  }

  kernel(node: FoldedNode, spec: string, operands: readonly string[]): void {
    const output = node.outputs[0]!;
    const problem = problemOf(node, spec);
    const outShape = this.shape(output);
    if (product(dataShape(problem.tensors[0]!)) !== product(outShape)) {
      throw new Error(`onnx-import: ${problem.spec} writes ${product(dataShape(problem.tensors[0]!))} elements, '${output}' has shape [${outShape.join(', ')}]`);
    }
    this.values.set(output, { name: output, shape: outShape });
    const k: KernelNode = { kind: 'kernel', name: this.nodeName(node.name), problem, output, operands: operands.map((o) => this.operand(o)), sources: [node.name] };
    this.nodes.push(k);
  }
}

/** The Problem of a spec the importer wrote; a spec the problem builder refuses (e.g. padding wider than the window) names the node. */
function problemOf(node: FoldedNode, spec: string): Problem {
  try {
    return parseProblem(spec);
  } catch (e) {
    if (e instanceof LoopTuneError) fail(`${nodeLabel(node)}: not supported as ${spec.split(' ')[0]}: ${e.message}`);
    throw e;
  }
}

function lower(folded: FoldedGraph, name: string): ModelGraph {
  const b = new GraphBuilder(folded);
  for (const node of folded.nodes) lowerNode(b, node);
  return { name, inputs: folded.inputs, outputs: folded.outputs, values: b.values, weights: b.weights, nodes: b.nodes };
}

/** One window attribute (strides, dilations) the same on every spatial dimension, as the spec takes it. */
function uniform(node: FoldedNode, name: string, values: readonly number[]): number {
  if (values.some((v) => v !== values[0])) fail(`${nodeLabel(node)}: ${name} [${values.join(', ')}] differ between dimensions; supported: the same ${name.replace(/s$/, '')} on every spatial dimension`);
  return values[0]!;
}

function padToken(pads: readonly number[]): string {
  return pads.every((p) => p === 0) ? '' : ` pad${pads.join(',')}`;
}

function lowerNode(b: GraphBuilder, node: FoldedNode): void {
  const a = node.attributes;
  const x = node.inputs[0]!;
  const out = node.outputs[0]!;
  const xs = b.shape(x);
  switch (node.opType) {
    case 'Conv': return lowerConv(b, node);
    case 'MaxPool': case 'AveragePool': case 'GlobalAveragePool': return lowerPool(b, node);
    case 'Gemm': return lowerGemm(b, node);
    case 'MatMul': return lowerMatMul(b, node);
    case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow':
      return b.host(node.name, { kind: 'binary', op: node.opType.toLowerCase() as 'add' }, [x, node.inputs[1]!], out, node.name);
    case 'Relu': case 'Sigmoid': case 'Erf': case 'Sqrt':
      return b.host(node.name, { kind: 'unary', op: node.opType.toLowerCase() as 'relu' }, [x], out, node.name);
    case 'Clip':
      return b.host(node.name, { kind: 'clip', ...clipBounds(node, b.folded.constants) }, [x], out, node.name);
    case 'Identity': case 'Flatten': case 'Reshape': case 'Squeeze': case 'Unsqueeze': case 'Cast':
      return b.host(node.name, { kind: 'reshape' }, [x], out, node.name);
    case 'Transpose':
      return b.host(node.name, { kind: 'transpose', perm: transposePerm(node, xs.length) }, [x], out, node.name);
    case 'Concat':
      return b.host(node.name, { kind: 'concat', axis: normalizeAxis(node, a.int('axis', 0), xs.length) }, node.inputs, out, node.name);
    case 'ReduceMean': {
      const axes = reduceAxes(node, xs.length, b.folded.constants);
      const op: HostOp = axes.length === 0 ? { kind: 'reshape' } : { kind: 'reducemean', axes, keepdims: a.int('keepdims', 1) === 1 };
      return b.host(node.name, op, [x], out, node.name);
    }
    case 'Softmax': return lowerSoftmax(b, node);
    case 'LayerNormalization': return lowerLayerNorm(b, node);
    case 'BatchNormalization': return lowerBatchNorm(b, node);
    default:
      fail(`${nodeLabel(node)}: not supported on computed tensors`);
  }
}

/** conv{1,2,3}d with its pads, stride, dilation and groups; its bias input as +bias. */
function lowerConv(b: GraphBuilder, node: FoldedNode): void {
  const xs = b.shape(node.inputs[0]!);
  const w = b.requireConstant(node, 1, 'weights');
  const window = w.shape.slice(2);
  const { strides, dilations, pads } = slidingWindow(node, xs, window);
  const rank = window.length;
  const group = node.attributes.int('group', 1);
  const bias = node.inputs[2] ? b.requireConstant(node, 2, 'bias') : undefined;
  if (bias !== undefined && product(bias.shape) !== w.shape[0]) fail(`${nodeLabel(node)}: bias has ${product(bias.shape)} values for ${w.shape[0]} output channels`);
  const sizes = [
    `n${xs[0]}`, `c${xs[1]}`, ...SPATIAL_NAMES[rank]!.map((d, i) => `${d}${xs[2 + i]}`),
    `k${w.shape[0]}`, ...WINDOW_NAMES[rank]!.map((d, i) => `${d}${window[i]}`),
  ];
  const spec = `conv${rank}d ${sizes.join(' ')} stride${uniform(node, 'strides', strides)} groups${group} dilation${uniform(node, 'dilations', dilations)}${padToken(pads)}${bias ? ' +bias' : ''}`;
  b.kernel(node, spec, [node.inputs[0]!, node.inputs[1]!, ...(bias ? [node.inputs[2]!] : [])]);
}

/** maxpool/avgpool{1,2,3}d; a global average pool is an average pool over the whole input. */
function lowerPool(b: GraphBuilder, node: FoldedNode): void {
  const xs = b.shape(node.inputs[0]!);
  const window = poolWindow(node, xs);
  const rank = window.length;
  const isMax = node.opType === 'MaxPool';
  const global = node.opType === 'GlobalAveragePool';
  const { strides, dilations, pads } = global
    ? { strides: window.map(() => 1), dilations: window.map(() => 1), pads: [...window, ...window].map(() => 0) }
    : slidingWindow(node, xs, window);
  if (isMax && node.attributes.int('storage_order', 0) !== 0) fail(`${nodeLabel(node)}: storage_order 1 is not supported (supported: 0, row-major)`);
  if (!isMax && !global && node.attributes.int('count_include_pad', 0) === 0 && pads.some((p) => p > 0)) {
    fail(`${nodeLabel(node)}: count_include_pad 0 with padding is not supported (looptune divides by the whole window); supported: count_include_pad 1, or no padding`);
  }
  const sizes = [`n${xs[0]}`, `c${xs[1]}`, ...SPATIAL_NAMES[rank]!.map((d, i) => `${d}${xs[2 + i]}`), ...WINDOW_NAMES[rank]!.map((d, i) => `${d}${window[i]}`)];
  const spec = `${isMax ? 'max' : 'avg'}pool${rank}d ${sizes.join(' ')} stride${uniform(node, 'strides', strides)} dilation${uniform(node, 'dilations', dilations)}${padToken(pads)}`;
  b.kernel(node, spec, [node.inputs[0]!]);
}

/**
 * Y = alpha * A B + beta * C as matmul MxNxK: B [K, N] (a transB weight transposed once, alpha
 * folded into a constant B, else +scale), C per column as +bias, C of Y's shape as +residual.
 */
function lowerGemm(b: GraphBuilder, node: FoldedNode): void {
  const a = node.attributes;
  if (a.int('transA', 0) !== 0) fail(`${nodeLabel(node)}: transA 1 is not supported (supported: transA 0, A stored [M, K])`);
  const [M, K] = b.shape(node.inputs[0]!) as [number, number];
  const alpha = a.float('alpha', 1), beta = a.float('beta', 1);
  const transB = a.int('transB', 0) === 1;
  const bName = node.inputs[1]!;
  const bConst = b.constant(bName);
  const N = transB ? b.shape(bName)[0]! : b.shape(bName)[1]!;
  let weight = bName;
  const tokens: string[] = [];
  if (bConst !== undefined && (transB || alpha !== 1)) {
    // B [K, N] = alpha * (transB ? B^T : B), rounded to fp32 once
    const data = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) data[k * N + n] = alpha * bConst.data[transB ? n * K + k : k * N + n]!;
    weight = b.newWeight(`${bName}:${transB ? 'transposed' : 'scaled'}`, [K, N], data);
  } else if (transB) {
    fail(`${nodeLabel(node)}: transB 1 needs a constant B (an initializer); a computed B is supported with transB 0`);
  } else if (alpha !== 1) {
    tokens.push(`scale${alpha}`);
  }
  const operands = [node.inputs[0]!, weight];
  const cName = node.inputs[2] ?? '';
  if (cName !== '' && beta !== 0) {
    const c = b.constant(cName);
    const cs = b.shape(cName);
    if (c !== undefined) {
      // per column ([N], [1, N], a scalar) is a bias; anything else broadcasts to a residual of Y's shape
      const perColumn = cs.every((d, i) => d === 1 || (i === cs.length - 1 && d === N));
      const full = perColumn ? [N] : [M, N];
      const data = new Float32Array(product(full));
      const strideRow = cs.length === 2 && cs[0] === M ? cs[1]! : 0, strideCol = cs[cs.length - 1] === N ? 1 : 0;
      for (let i = 0; i < data.length; i++) {
        const m = perColumn ? 0 : Math.floor(i / N), n = i % N;
        data[i] = beta * c.data[m * strideRow + n * strideCol]!;
      }
      tokens.push(perColumn ? 'bias' : 'residual');
      operands.push(beta === 1 && product(cs) === data.length ? cName : b.newWeight(`${cName}:${perColumn ? 'bias' : 'broadcast'}`, full, data));
    } else {
      if (beta !== 1 || cs.join() !== [M, N].join()) fail(`${nodeLabel(node)}: a computed C must have Y's shape [${M}, ${N}] and beta 1, got [${cs.join(', ')}] and beta ${beta}`);
      tokens.push('residual');
      operands.push(cName);
    }
  }
  b.kernel(node, `matmul ${M}x${N}x${K}${tokens.map((t) => ` +${t}`).join('')}`, operands);
}

/**
 * A [..., M, K] times B [K, N] is one matmul of (product of A's leading dims) rows; A and B of
 * equal batch dims [b..., M, K] x [b..., K, N] are one bmm over their product.
 */
function lowerMatMul(b: GraphBuilder, node: FoldedNode): void {
  const [aName, bName] = node.inputs as [string, string];
  const as = b.shape(aName), bs = b.shape(bName);
  const K = as[as.length - 1]!, N = bs[bs.length - 1]!, M = as[as.length - 2]!;
  const aBatch = as.slice(0, -2), bBatch = bs.slice(0, -2);
  if (product(bBatch) === 1) {
    b.kernel(node, `matmul ${product(as.slice(0, -1))}x${N}x${K}`, [aName, bName]);
    return;
  }
  if (aBatch.length !== bBatch.length || aBatch.some((d, i) => d !== bBatch[i])) {
    fail(`${nodeLabel(node)}: batch dimensions [${aBatch.join(', ')}] and [${bBatch.join(', ')}] differ; supported: equal batch dimensions, or a B of rank 2`);
  }
  b.kernel(node, `bmm b${product(aBatch)} m${M} n${N} k${K}`, [aName, bName]);
}

/** Softmax over one axis; before opset 13 ONNX flattens the input to 2-d at the axis first (a reshape pair where the axis is not the last). */
function lowerSoftmax(b: GraphBuilder, node: FoldedNode): void {
  const x = node.inputs[0]!, out = node.outputs[0]!;
  const xs = b.shape(x);
  const axis = normalizeAxis(node, node.attributes.int('axis', b.folded.opset >= 13 ? -1 : 1), xs.length);
  if (b.folded.opset >= 13 || axis === xs.length - 1) {
    b.host(node.name, { kind: 'softmax', axis }, [x], out, node.name);
    return;
  }
  const flat = b.newValue(`${out}:flat`, [product(xs.slice(0, axis)), product(xs.slice(axis))]);
  const soft = b.newValue(`${out}:softmax`, b.values.get(flat)!.shape);
  b.host(`${node.name}:flatten`, { kind: 'reshape' }, [x], flat, node.name);
  b.host(node.name, { kind: 'softmax', axis: 1 }, [flat], soft, node.name);
  b.host(`${node.name}:unflatten`, { kind: 'reshape' }, [soft], out, node.name);
}

function lowerLayerNorm(b: GraphBuilder, node: FoldedNode): void {
  const a = node.attributes;
  const x = node.inputs[0]!;
  const xs = b.shape(x);
  const axis = normalizeAxis(node, a.int('axis', -1), xs.length);
  if (a.int('stash_type', 1) !== 1) fail(`${nodeLabel(node)}: stash_type ${a.int('stash_type', 1)} is not supported (supported: 1, float32 statistics)`);
  const normalized = xs.slice(axis);
  const gamma = node.inputs[1]!;
  const check = (name: string, what: string) => {
    if (product(b.shape(name)) !== product(normalized)) fail(`${nodeLabel(node)}: ${what} has shape [${b.shape(name).join(', ')}]; supported: the normalized shape [${normalized.join(', ')}]`);
  };
  check(gamma, 'scale');
  let beta = node.inputs[2] ?? '';
  if (beta === '') beta = b.newWeight(`${node.name}:zero_bias`, normalized, new Float32Array(product(normalized)));
  else check(beta, 'bias');
  b.host(node.name, { kind: 'layernorm', axis, epsilon: a.float('epsilon', 1e-5) }, [x, gamma, beta], node.outputs[0]!, node.name);
}

/**
 * y = (x - mean) / sqrt(var + epsilon) * scale + B as y = x * s + t per channel (s and t computed
 * in float64, stored fp32, shaped [1, C, 1...] to broadcast over NC...): two host nodes that
 * fuse.ts folds into a preceding convolution's weights and bias.
 */
function lowerBatchNorm(b: GraphBuilder, node: FoldedNode): void {
  const a = node.attributes;
  if (a.int('training_mode', 0) !== 0) fail(`${nodeLabel(node)}: training_mode 1 is not supported (supported: inference, training_mode 0)`);
  if (a.int('spatial', 1) !== 1) fail(`${nodeLabel(node)}: spatial 0 is not supported (supported: spatial 1, statistics per channel)`);
  const x = node.inputs[0]!, out = node.outputs[0]!;
  const xs = b.shape(x);
  if (xs.length < 2) fail(`${nodeLabel(node)}: input of rank ${xs.length}; supported: rank 2 or more [N, C, ...]`);
  const C = xs[1]!;
  const [scale, bias, mean, variance] = ['scale', 'bias', 'mean', 'variance'].map((what, i) => {
    const c = b.requireConstant(node, i + 1, what);
    if (c.data.length !== C) fail(`${nodeLabel(node)}: ${what} has ${c.data.length} values for ${C} channels`);
    return c.data;
  }) as [Float64Array, Float64Array, Float64Array, Float64Array];
  const epsilon = a.float('epsilon', 1e-5);
  const s = new Float32Array(C), t = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    const inv = scale[c]! / Math.sqrt(variance[c]! + epsilon);
    s[c] = inv;
    t[c] = bias[c]! - mean[c]! * inv;
  }
  const channelShape = xs.map((d, i) => (i === 1 ? d : 1));
  const sName = b.newWeight(`${node.name}:scale`, channelShape, s);
  const tName = b.newWeight(`${node.name}:shift`, channelShape, t);
  const scaled = b.newValue(`${out}:scaled`, xs);
  b.host(`${node.name}:scale`, { kind: 'binary', op: 'mul' }, [x, sName], scaled, node.name);
  b.host(`${node.name}:shift`, { kind: 'binary', op: 'add' }, [scaled, tName], out, node.name);
}
