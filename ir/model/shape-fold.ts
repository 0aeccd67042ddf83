/**
 * Static shapes and constant folding of an ONNX graph, the first step of the import: every value
 * gets a fixed shape (graph inputs from the file or from `inputShapes`, the rest by each op's shape
 * rule), and every node whose inputs are all known at load time is evaluated here and removed:
 * Constant, Shape (of any tensor: shapes are static), and Gather/Unsqueeze/Squeeze/Concat/Cast/
 * Reshape/arithmetic on constants, the chains exporters write to compute a Reshape's target from
 * Shape(x). What is left are the nodes that compute on activations (fp32 tensors known only at
 * run time), each with its inputs' and outputs' shapes.
 *
 * Unsupported ops, attributes and element types fail here, with one line naming the op and the
 * node and what is supported, before anything is built.
 */
import { fail } from '../errors.ts';
import {
  NodeAttributes, TENSOR_DATA_TYPE, tensorTypeName, tensorValues,
  type ModelProto, type NodeProto, type TensorValueType, type ValueInfoProto,
} from './onnx-proto.ts';
import type { BinaryOp, HostOp, ModelValue, UnaryOp } from './graph.ts';
import { broadcastShapes, evaluateHostOp } from './reference.ts';

/** A value known at load time: an initializer, a Constant, a shape, or anything computed from them. */
export interface ConstantTensor {
  readonly type: TensorValueType;
  readonly shape: readonly number[];
  /** float32 values in a Float32Array, integers in a Float64Array */
  readonly data: Float32Array | Float64Array;
}

/** A node left to run, its name made unique (exporters may leave names empty). */
export interface FoldedNode {
  readonly name: string;
  readonly opType: string;
  /** value names; '' where an optional input is left out */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: NodeAttributes;
}

export interface FoldedGraph {
  readonly name: string;
  /** the default domain's opset version */
  readonly opset: number;
  readonly inputs: readonly ModelValue[];
  readonly outputs: readonly ModelValue[];
  /** every name known at load time */
  readonly constants: ReadonlyMap<string, ConstantTensor>;
  /** the shape of every activation (graph inputs and the outputs of the nodes left) */
  readonly shapes: ReadonlyMap<string, readonly number[]>;
  /** the nodes left, in topological order */
  readonly nodes: readonly FoldedNode[];
}

/** The ops the importer reads (issue 17), in the order the error message lists them. */
export const SUPPORTED_OPS: readonly string[] = [
  'Conv', 'Gemm', 'MatMul', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Relu', 'Clip', 'Sigmoid', 'Erf', 'Sqrt',
  'BatchNormalization', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Flatten', 'Reshape', 'Transpose',
  'Softmax', 'LayerNormalization', 'ReduceMean', 'Concat', 'Identity', 'Constant', 'Shape', 'Gather',
  'Unsqueeze', 'Squeeze', 'Cast',
];

/** The attributes each op may carry; any other could change what the op computes, so it fails. */
const ATTRIBUTES: Record<string, readonly string[]> = {
  Conv: ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'],
  Gemm: ['alpha', 'beta', 'transA', 'transB'],
  Clip: ['min', 'max'],
  BatchNormalization: ['epsilon', 'momentum', 'training_mode', 'spatial'],
  MaxPool: ['auto_pad', 'ceil_mode', 'dilations', 'kernel_shape', 'pads', 'storage_order', 'strides'],
  AveragePool: ['auto_pad', 'ceil_mode', 'count_include_pad', 'dilations', 'kernel_shape', 'pads', 'strides'],
  Flatten: ['axis'],
  Reshape: ['allowzero'],
  Transpose: ['perm'],
  Softmax: ['axis'],
  LayerNormalization: ['axis', 'epsilon', 'stash_type'],
  ReduceMean: ['axes', 'keepdims', 'noop_with_empty_axes'],
  Concat: ['axis'],
  Constant: ['value', 'value_float', 'value_floats', 'value_int', 'value_ints'],
  Shape: ['start', 'end'],
  Gather: ['axis'],
  Unsqueeze: ['axes'],
  Squeeze: ['axes'],
  Cast: ['to', 'saturate'],
};

const BINARY: Record<string, BinaryOp> = { Add: 'add', Sub: 'sub', Mul: 'mul', Div: 'div', Pow: 'pow' };
const UNARY: Record<string, UnaryOp> = { Relu: 'relu', Sigmoid: 'sigmoid', Erf: 'erf', Sqrt: 'sqrt' };
/** Ops evaluated at load time when every input is a constant (Shape and Constant always are). */
const FOLDABLE = new Set(['Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Cast', 'Identity', 'Reshape', 'Flatten', 'Transpose', 'Clip', ...Object.keys(BINARY), ...Object.keys(UNARY)]);

/** "Conv node 'conv1'": how errors name a node. */
export function nodeLabel(node: { readonly opType: string; readonly name: string }): string {
  return `${node.opType} node '${node.name}'`;
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** An axis attribute or input in [-rank, rank) as a non-negative axis. */
export function normalizeAxis(node: FoldedNode, axis: number, rank: number, what = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) fail(`${nodeLabel(node)}: ${what} ${axis} is out of range for a rank-${rank} tensor (expected ${-rank}..${rank - 1})`);
  return axis < 0 ? axis + rank : axis;
}

/** The folded graph of `model`; input shapes with symbolic dimensions come from `inputShapes`. */
export function foldGraph(model: ModelProto, inputShapes: Readonly<Record<string, readonly number[]>> = {}): FoldedGraph {
  const graph = model.graph;
  if (graph === undefined) fail('not an ONNX model: it has no graph');
  const opsetEntry = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (opsetEntry === undefined) fail('ONNX model declares no opset for the default domain (opset_import)');
  const opset = Number(opsetEntry.version);
  const nodes = nameNodes(graph.node);
  // every op and attribute checked before anything is computed, so the first error is the op's
  nodes.forEach((node, i) => checkSupported(node, graph.node[i]!.domain));

  const constants = new Map<string, ConstantTensor>();
  for (const t of graph.initializer) {
    const v = tensorValues(t, `initializer '${t.name}'`);
    constants.set(t.name, { type: v.type, shape: v.dims, data: v.data });
  }
  const inputs = graphInputs(graph.input.filter((v) => !constants.has(v.name)), inputShapes);
  const shapes = new Map<string, readonly number[]>(inputs.map((v) => [v.name, v.shape]));
  const left: FoldedNode[] = [];
  for (const node of nodes) {
    for (const name of node.inputs) {
      if (name !== '' && !constants.has(name) && !shapes.has(name)) {
        fail(`${nodeLabel(node)} reads '${name}', which is no graph input, initializer or earlier node's output (nodes must be in topological order)`);
      }
    }
    const folded = foldNode(node, constants, shapes, opset);
    if (folded !== null) {
      constants.set(node.outputs[0]!, folded);
      continue;
    }
    checkActivationInputs(node, constants);
    shapes.set(node.outputs[0]!, outputShape(node, constants, shapes, opset));
    left.push(node);
  }
  const outputs = graph.output.map((o): ModelValue => {
    if (constants.has(o.name)) fail(`graph output '${o.name}' is a constant (computed from no input); supported: outputs computed from the graph inputs`);
    const shape = shapes.get(o.name);
    if (shape === undefined) fail(`graph output '${o.name}' is produced by no node`);
    const declared = o.type?.tensorType?.shape?.dim ?? [];
    declared.forEach((d, i) => {
      if (d.dimValue !== undefined && Number(d.dimValue) !== shape[i]) {
        fail(`graph output '${o.name}' is declared [${declared.map((x) => x.dimValue ?? x.dimParam ?? '?').join(', ')}] but computes [${shape.join(', ')}]`);
      }
    });
    return { name: o.name, shape };
  });
  return { name: graph.name || 'model', opset, inputs, outputs, constants, shapes, nodes: left };
}

/** Nodes with unique, non-empty names (an unnamed node is called after its op and position). */
function nameNodes(protos: readonly NodeProto[]): FoldedNode[] {
  const used = new Set<string>();
  return protos.map((p, i) => {
    let name = p.name || `${p.opType}_${i}`;
    while (used.has(name)) name = `${name}_${i}`;
    used.add(name);
    return { name, opType: p.opType, inputs: p.input, outputs: p.output, attributes: new NodeAttributes({ ...p, name }) };
  });
}

function checkSupported(node: FoldedNode, domain: string): void {
  if (domain !== '' && domain !== 'ai.onnx') {
    fail(`unsupported op '${domain}.${node.opType}' (node '${node.name}'): only the default ONNX domain is read; supported: ${SUPPORTED_OPS.join(', ')}`);
  }
  if (!SUPPORTED_OPS.includes(node.opType)) fail(`unsupported op '${node.opType}' (node '${node.name}'); supported: ${SUPPORTED_OPS.join(', ')}`);
  const accepted = ATTRIBUTES[node.opType] ?? [];
  for (const name of node.attributes.names()) {
    if (!accepted.includes(name)) {
      fail(`${nodeLabel(node)}: attribute '${name}' is not supported (${node.opType} takes ${accepted.length > 0 ? accepted.join(', ') : 'no attributes'})`);
    }
  }
  if (node.outputs.length === 0 || node.outputs[0] === '') fail(`${nodeLabel(node)} has no output`);
  // the optional extra outputs (BatchNormalization's running statistics, MaxPool's indices, LayerNormalization's mean) are not computed
  node.outputs.slice(1).forEach((o, i) => {
    if (o !== '') fail(`${nodeLabel(node)}: output ${i + 2} ('${o}') is not supported (only the first output is computed)`);
  });
}

/** The graph inputs with their static shapes: fixed dimensions from the file, symbolic ones from `given` (or another input sharing the name). */
function graphInputs(declared: readonly ValueInfoProto[], given: Readonly<Record<string, readonly number[]>>): ModelValue[] {
  for (const name of Object.keys(given)) {
    if (!declared.some((v) => v.name === name)) fail(`inputShapes names '${name}', which is not a graph input (inputs: ${declared.map((v) => v.name).join(', ')})`);
  }
  // symbolic dimensions fixed by a given input shape apply to every input that shares their name
  const symbols = new Map<string, number>();
  for (const v of declared) {
    const shape = given[v.name];
    const dims = v.type?.tensorType?.shape?.dim ?? [];
    if (shape === undefined) continue;
    if (shape.length !== dims.length || shape.some((n) => !Number.isInteger(n) || n < 1)) {
      fail(`inputShapes.${v.name} must be ${dims.length} positive integers (the input is [${dims.map((d) => d.dimValue ?? d.dimParam ?? '?').join(', ')}]), got [${shape.join(', ')}]`);
    }
    dims.forEach((d, i) => {
      if (d.dimValue !== undefined && Number(d.dimValue) !== shape[i]) {
        fail(`inputShapes.${v.name} dimension ${i} is ${shape[i]}, but the model fixes it to ${d.dimValue}`);
      }
      if (d.dimParam) symbols.set(d.dimParam, shape[i]!);
    });
  }
  return declared.map((v) => {
    const tensor = v.type?.tensorType;
    if (tensor === undefined) fail(`graph input '${v.name}' is not a tensor; supported: float tensors`);
    if (tensor.elemType !== TENSOR_DATA_TYPE.FLOAT) fail(`graph input '${v.name}' has element type ${tensorTypeName(tensor.elemType)}; supported: float (float32)`);
    const shape = (tensor.shape?.dim ?? []).map((d, i) => {
      const fixed = given[v.name]?.[i];
      if (fixed !== undefined) return fixed;
      if (d.dimValue !== undefined && Number(d.dimValue) > 0) return Number(d.dimValue);
      const symbol = d.dimParam ? symbols.get(d.dimParam) : undefined;
      if (symbol !== undefined) return symbol;
      fail(`input '${v.name}' has ${d.dimParam ? `symbolic dimension '${d.dimParam}'` : 'an unknown dimension'} (dimension ${i}); give its shape: inputShapes: { ${v.name}: [...] }`);
    });
    if (tensor.shape === undefined) fail(`input '${v.name}' has no shape in the file; give it: inputShapes: { ${v.name}: [...] }`);
    return { name: v.name, shape };
  });
}

/** Activations are fp32: a constant an op computes on must be float32 too (integers only where an op reads shapes, axes or bounds). */
function checkActivationInputs(node: FoldedNode, constants: ReadonlyMap<string, ConstantTensor>): void {
  if (node.opType === 'Gather') fail(`${nodeLabel(node)} gathers from a computed tensor; supported: Gather on constants and shapes (folded at load)`);
  // inputs read as integers at load time: Reshape's shape, ReduceMean/Squeeze/Unsqueeze's axes
  const integerInputs = node.opType === 'Reshape' || node.opType === 'ReduceMean' || node.opType === 'Squeeze' || node.opType === 'Unsqueeze' ? [1] : [];
  node.inputs.forEach((name, i) => {
    const c = constants.get(name);
    if (c !== undefined && c.type !== 'float32' && !integerInputs.includes(i)) {
      fail(`${nodeLabel(node)}: input '${name}' is an integer tensor; supported: float (float32) data`);
    }
  });
  if (node.opType === 'Cast' && node.attributes.int('to', 0) !== TENSOR_DATA_TYPE.FLOAT) {
    fail(`${nodeLabel(node)} casts a computed float tensor to ${tensorTypeName(node.attributes.int('to', 0))}; supported: Cast to float (other casts only on constants and shapes)`);
  }
}

/** An integer list input (a Reshape's shape, an axes list), known at load time. */
function integerInput(node: FoldedNode, i: number, constants: ReadonlyMap<string, ConstantTensor>, what: string): number[] {
  const name = node.inputs[i];
  const c = name ? constants.get(name) : undefined;
  if (c === undefined) fail(`${nodeLabel(node)}: its ${what} ('${name}') must be known at load time (a constant, or computed from shapes)`);
  return [...c.data];
}

/** An input's shape, constant or activation. */
function shapeOfInput(node: FoldedNode, i: number, constants: ReadonlyMap<string, ConstantTensor>, shapes: ReadonlyMap<string, readonly number[]>): readonly number[] {
  const name = node.inputs[i];
  if (!name) fail(`${nodeLabel(node)}: input ${i + 1} is missing`);
  const shape = constants.get(name)?.shape ?? shapes.get(name);
  if (shape === undefined) fail(`${nodeLabel(node)}: input '${name}' is unknown`);
  return shape;
}

/** Evaluates the node at load time when it can be (its inputs all constants, or a Shape), else null. */
function foldNode(node: FoldedNode, constants: ReadonlyMap<string, ConstantTensor>, shapes: ReadonlyMap<string, readonly number[]>, opset: number): ConstantTensor | null {
  const a = node.attributes;
  if (node.opType === 'Constant') return constantAttribute(node);
  if (node.opType === 'Shape') {
    const shape = shapeOfInput(node, 0, constants, shapes);
    const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + shape.length : x, 0), shape.length);
    const dims = shape.slice(clamp(a.int('start', 0)), clamp(a.int('end', shape.length)));
    return { type: 'int64', shape: [dims.length], data: Float64Array.from(dims) };
  }
  if (!FOLDABLE.has(node.opType)) return null;
  const inputs = node.inputs.map((name) => (name === '' ? undefined : constants.get(name)));
  if (inputs.some((c, i) => c === undefined && node.inputs[i] !== '')) return null;
  const x = inputs[0]!;
  const shape = outputShape(node, constants, shapes, opset);
  // float results are rounded to fp32 once, as the op computes them in fp32
  const relaid = (type: TensorValueType, data: ArrayLike<number>): ConstantTensor => ({
    type, shape, data: type === 'float32' ? (data instanceof Float32Array ? data : Float32Array.from(data)) : Float64Array.from(data),
  });
  const host = (op: HostOp, operands: readonly ConstantTensor[]): Float64Array => evaluateHostOp(op, operands, shape);
  switch (node.opType) {
    case 'Identity': case 'Reshape': case 'Flatten': case 'Squeeze': case 'Unsqueeze':
      return relaid(x.type, x.data);
    case 'Transpose':
      return relaid(x.type, host({ kind: 'transpose', perm: transposePerm(node, x.shape.length) }, [x]));
    case 'Concat':
      return relaid(x.type, host({ kind: 'concat', axis: normalizeAxis(node, a.int('axis', 0), x.shape.length) }, inputs as ConstantTensor[]));
    case 'Gather': return gather(node, x, inputs[1]!);
    case 'Cast': {
      const to = a.int('to', 0);
      if (to === TENSOR_DATA_TYPE.FLOAT) return relaid('float32', x.data);
      if (to === TENSOR_DATA_TYPE.INT64 || to === TENSOR_DATA_TYPE.INT32) return relaid('int64', Float64Array.from(x.data, Math.trunc));
      if (to === TENSOR_DATA_TYPE.BOOL) return relaid('int64', Float64Array.from(x.data, (v) => (v !== 0 ? 1 : 0)));
      fail(`${nodeLabel(node)}: casts to ${tensorTypeName(to)}; supported: float, int64, int32, bool`);
    }
    case 'Clip': {
      const { min, max } = clipBounds(node, constants);
      return relaid(x.type, host({ kind: 'clip', min, max }, [x]));
    }
    default: {
      const binary = BINARY[node.opType];
      if (binary) {
        const b = inputs[1]!;
        if (x.type !== b.type) fail(`${nodeLabel(node)}: inputs '${node.inputs[0]}' (${x.type}) and '${node.inputs[1]}' (${b.type}) differ in element type`);
        const data = host({ kind: 'binary', op: binary }, [x, b]);
        // integer arithmetic (on shapes) truncates, as ONNX's int64 Div does
        return relaid(x.type, x.type === 'int64' ? data.map(Math.trunc) : data);
      }
      return relaid('float32', host({ kind: 'unary', op: UNARY[node.opType]! }, [x]));
    }
  }
}

function constantAttribute(node: FoldedNode): ConstantTensor {
  const a = node.attributes;
  const t = a.tensor('value');
  if (t !== undefined) {
    const v = tensorValues(t, `${nodeLabel(node)} value`);
    return { type: v.type, shape: v.dims, data: v.data };
  }
  if (a.has('value_float')) return { type: 'float32', shape: [], data: Float32Array.of(a.float('value_float', 0)) };
  if (a.has('value_int')) return { type: 'int64', shape: [], data: Float64Array.of(a.int('value_int', 0)) };
  const ints = a.ints('value_ints');
  if (ints !== undefined) return { type: 'int64', shape: [ints.length], data: Float64Array.from(ints) };
  const floats = a.floats('value_floats');
  if (floats !== undefined) return { type: 'float32', shape: [floats.length], data: Float32Array.from(floats) };
  fail(`${nodeLabel(node)}: needs one of value, value_float, value_floats, value_int, value_ints`);
}

/** Gather on constants: out = data indexed along `axis` by every index (negative from the end). */
function gather(node: FoldedNode, data: ConstantTensor, indices: ConstantTensor): ConstantTensor {
  const axis = normalizeAxis(node, node.attributes.int('axis', 0), data.shape.length);
  const n = data.shape[axis]!;
  const outer = product(data.shape.slice(0, axis)), inner = product(data.shape.slice(axis + 1));
  const out = data.type === 'float32' ? new Float32Array(outer * indices.data.length * inner) : new Float64Array(outer * indices.data.length * inner);
  indices.data.forEach((raw, j) => {
    const i = raw < 0 ? raw + n : raw;
    if (!Number.isInteger(i) || i < 0 || i >= n) fail(`${nodeLabel(node)}: index ${raw} is out of range for dimension ${axis} of size ${n}`);
    for (let o = 0; o < outer; o++) {
      for (let q = 0; q < inner; q++) out[(o * indices.data.length + j) * inner + q] = data.data[(o * n + i) * inner + q]!;
    }
  });
  return { type: data.type, shape: [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)], data: out };
}

/** Clip's bounds: attributes before opset 11, constant inputs after; a missing bound is unbounded. */
export function clipBounds(node: FoldedNode, constants: ReadonlyMap<string, ConstantTensor>): { min: number; max: number } {
  const bound = (i: number, attr: 'min' | 'max', fallback: number): number => {
    if (node.attributes.has(attr)) return node.attributes.float(attr, fallback);
    const name = node.inputs[i];
    if (!name) return fallback;
    const c = constants.get(name);
    if (c === undefined || c.data.length !== 1) fail(`${nodeLabel(node)}: its ${attr} ('${name}') must be a constant scalar`);
    return c.data[0]!;
  };
  return { min: bound(1, 'min', -Infinity), max: bound(2, 'max', Infinity) };
}

export function transposePerm(node: FoldedNode, rank: number): number[] {
  const perm = node.attributes.ints('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (perm.length !== rank || [...perm].sort((x, y) => x - y).some((p, i) => p !== i)) {
    fail(`${nodeLabel(node)}: perm [${perm.join(', ')}] is not a permutation of the ${rank} dimensions`);
  }
  return perm;
}

/** Squeeze and Unsqueeze axes: the attribute (before opset 13) or the second input. */
function axesOf(node: FoldedNode, constants: ReadonlyMap<string, ConstantTensor>): number[] | undefined {
  const attr = node.attributes.ints('axes');
  if (attr !== undefined) return attr;
  return node.inputs[1] ? integerInput(node, 1, constants, 'axes') : undefined;
}

/** Reshape's target with its 0 (copy the input's dimension, unless allowzero) and -1 (inferred) entries resolved. */
function reshapeTarget(node: FoldedNode, input: readonly number[], target: readonly number[]): number[] {
  const allowZero = node.attributes.int('allowzero', 0) === 1;
  const dims = target.map((d, i) => (d === 0 && !allowZero ? input[i] ?? fail(`${nodeLabel(node)}: shape entry ${i} is 0 but the input has rank ${input.length}`) : d));
  const free = dims.filter((d) => d === -1).length;
  if (free > 1 || dims.some((d) => d < -1)) fail(`${nodeLabel(node)}: shape [${target.join(', ')}] is not a valid Reshape target`);
  const known = product(dims.filter((d) => d !== -1));
  const total = product(input);
  const out = dims.map((d) => (d === -1 ? total / known : d));
  if (product(out) !== total || out.some((d) => !Number.isInteger(d))) {
    fail(`${nodeLabel(node)}: cannot reshape [${input.join(', ')}] (${total} elements) to [${target.join(', ')}]`);
  }
  return out;
}

/**
 * Output sizes of a sliding window (Conv, MaxPool, AveragePool): floor((in + pads - span) / stride) + 1
 * per spatial dimension. auto_pad NOTSET (explicit pads) or VALID (none); ceil_mode 0.
 */
export function slidingWindow(node: FoldedNode, input: readonly number[], window: readonly number[]): {
  readonly strides: number[]; readonly dilations: number[]; readonly pads: number[]; readonly out: number[];
} {
  const a = node.attributes;
  const rank = input.length - 2;
  if (rank < 1 || rank > 3) fail(`${nodeLabel(node)}: input has rank ${input.length}; supported: rank 3, 4 or 5 (1, 2 or 3 spatial dimensions)`);
  if (window.length !== rank) fail(`${nodeLabel(node)}: kernel of ${window.length} dimensions on an input with ${rank} spatial dimensions`);
  const autoPad = a.string('auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') fail(`${nodeLabel(node)}: auto_pad ${autoPad} is not supported (supported: NOTSET with explicit pads, VALID)`);
  if (a.int('ceil_mode', 0) !== 0) fail(`${nodeLabel(node)}: ceil_mode ${a.int('ceil_mode', 0)} is not supported (supported: ceil_mode 0)`);
  const list = (name: string, fallback: number, length: number): number[] => {
    const v = a.ints(name) ?? new Array<number>(length).fill(fallback);
    if (v.length !== length) fail(`${nodeLabel(node)}: ${name} has ${v.length} entries, ${length} expected`);
    return v;
  };
  const strides = list('strides', 1, rank), dilations = list('dilations', 1, rank);
  const pads = autoPad === 'VALID' ? new Array<number>(2 * rank).fill(0) : list('pads', 0, 2 * rank);
  if ([...strides, ...dilations].some((x) => x < 1) || pads.some((x) => x < 0)) fail(`${nodeLabel(node)}: strides and dilations must be positive and pads non-negative`);
  const out = input.slice(2).map((n, d) => {
    const span = dilations[d]! * (window[d]! - 1) + 1;
    const size = Math.floor((n + pads[d]! + pads[d + rank]! - span) / strides[d]!) + 1;
    if (size < 1) fail(`${nodeLabel(node)}: window ${window[d]} spans more than the padded input (${n + pads[d]! + pads[d + rank]!}) in dimension ${d + 2}`);
    return size;
  });
  return { strides, dilations, pads, out };
}

/** The window of a pool: kernel_shape, or the whole input for GlobalAveragePool. */
export function poolWindow(node: FoldedNode, input: readonly number[]): number[] {
  if (node.opType === 'GlobalAveragePool') return input.slice(2);
  const window = node.attributes.ints('kernel_shape');
  if (window === undefined) fail(`${nodeLabel(node)}: kernel_shape is required`);
  return window;
}

/** ReduceMean's axes (attribute before opset 18, input after), sorted and non-negative; all axes when none are given. */
export function reduceAxes(node: FoldedNode, rank: number, constants: ReadonlyMap<string, ConstantTensor>): number[] {
  const given = node.attributes.ints('axes') ?? (node.inputs[1] ? integerInput(node, 1, constants, 'axes') : []);
  if (given.length === 0) {
    if (node.attributes.int('noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return [...new Set(given.map((x) => normalizeAxis(node, x, rank, 'axes entry')))].sort((x, y) => x - y);
}

/** The shape of the node's (first) output, from its inputs' shapes and the constants it reads. */
export function outputShape(node: FoldedNode, constants: ReadonlyMap<string, ConstantTensor>, shapes: ReadonlyMap<string, readonly number[]>, opset: number): number[] {
  const input = (i: number) => shapeOfInput(node, i, constants, shapes);
  const a = node.attributes;
  const x = input(0);
  switch (node.opType) {
    case 'Conv': {
      const w = input(1);
      const window = w.slice(2);
      const given = a.ints('kernel_shape');
      if (given !== undefined && given.join() !== window.join()) fail(`${nodeLabel(node)}: kernel_shape [${given.join(', ')}] differs from the weights' [${window.join(', ')}]`);
      const group = a.int('group', 1);
      if (x[1] !== w[1]! * group) fail(`${nodeLabel(node)}: input has ${x[1]} channels, the weights [${w.join(', ')}] with group ${group} expect ${w[1]! * group}`);
      return [x[0]!, w[0]!, ...slidingWindow(node, x, window).out];
    }
    case 'MaxPool': case 'AveragePool': case 'GlobalAveragePool': {
      const window = poolWindow(node, x);
      return [x[0]!, x[1]!, ...(node.opType === 'GlobalAveragePool' ? window.map(() => 1) : slidingWindow(node, x, window).out)];
    }
    case 'Gemm': {
      const b = input(1);
      if (x.length !== 2 || b.length !== 2) fail(`${nodeLabel(node)}: A and B must be matrices, got [${x.join(', ')}] and [${b.join(', ')}]`);
      const [M, K] = a.int('transA', 0) ? [x[1]!, x[0]!] : [x[0]!, x[1]!];
      const [KB, N] = a.int('transB', 0) ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
      if (K !== KB) fail(`${nodeLabel(node)}: A is ${M}x${K} but B is ${KB}x${N}`);
      return [M, N];
    }
    case 'MatMul': {
      const b = input(1);
      if (x.length < 2 || b.length < 2) fail(`${nodeLabel(node)}: inputs of rank ${x.length} and ${b.length}; supported: rank 2 or more (no matrix-vector products)`);
      const K = x[x.length - 1]!, KB = b[b.length - 2]!;
      if (K !== KB) fail(`${nodeLabel(node)}: [${x.join(', ')}] times [${b.join(', ')}]: inner sizes ${K} and ${KB} differ`);
      const batch = broadcastShapes(x.slice(0, -2), b.slice(0, -2));
      if (batch === null) fail(`${nodeLabel(node)}: batch dimensions of [${x.join(', ')}] and [${b.join(', ')}] do not broadcast`);
      return [...batch, x[x.length - 2]!, b[b.length - 1]!];
    }
    case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow': {
      const b = input(1);
      const out = broadcastShapes(x, b);
      if (out === null) fail(`${nodeLabel(node)}: shapes [${x.join(', ')}] and [${b.join(', ')}] do not broadcast`);
      return out;
    }
    case 'Relu': case 'Sigmoid': case 'Erf': case 'Sqrt': case 'Clip': case 'Identity': case 'Cast': case 'BatchNormalization':
      return [...x];
    case 'Softmax': {
      normalizeAxis(node, a.int('axis', opset >= 13 ? -1 : 1), x.length);
      return [...x];
    }
    case 'LayerNormalization': {
      normalizeAxis(node, a.int('axis', -1), x.length);
      return [...x];
    }
    case 'Flatten': {
      const axis = a.int('axis', 1);
      const at = axis < 0 ? axis + x.length : axis;
      if (at < 0 || at > x.length) fail(`${nodeLabel(node)}: axis ${axis} is out of range for a rank-${x.length} tensor (expected ${-x.length}..${x.length})`);
      return [product(x.slice(0, at)), product(x.slice(at))];
    }
    case 'Reshape':
      return reshapeTarget(node, x, integerInput(node, 1, constants, 'shape'));
    case 'Transpose': {
      const perm = transposePerm(node, x.length);
      return perm.map((p) => x[p]!);
    }
    case 'ReduceMean': {
      const axes = reduceAxes(node, x.length, constants);
      const keep = a.int('keepdims', 1) === 1;
      return keep ? x.map((n, d) => (axes.includes(d) ? 1 : n)) : x.filter((_, d) => !axes.includes(d));
    }
    case 'Concat': {
      const axis = normalizeAxis(node, a.int('axis', 0), x.length);
      const all = node.inputs.map((_, i) => input(i));
      for (const s of all) {
        if (s.length !== x.length || s.some((n, d) => d !== axis && n !== x[d])) fail(`${nodeLabel(node)}: cannot concatenate [${x.join(', ')}] and [${s.join(', ')}] along axis ${axis}`);
      }
      return x.map((n, d) => (d === axis ? all.reduce((sum, s) => sum + s[d]!, 0) : n));
    }
    case 'Unsqueeze': {
      const axes = axesOf(node, constants);
      if (axes === undefined) fail(`${nodeLabel(node)}: needs axes`);
      const rank = x.length + axes.length;
      const at = new Set(axes.map((ax) => normalizeAxis(node, ax, rank, 'axes entry')));
      if (at.size !== axes.length) fail(`${nodeLabel(node)}: axes [${axes.join(', ')}] repeat an axis`);
      const out: number[] = [];
      let next = 0;
      for (let d = 0; d < rank; d++) out.push(at.has(d) ? 1 : x[next++]!);
      return out;
    }
    case 'Squeeze': {
      const axes = axesOf(node, constants);
      const at = new Set(axes === undefined ? x.flatMap((n, d) => (n === 1 ? [d] : [])) : axes.map((ax) => normalizeAxis(node, ax, x.length, 'axes entry')));
      for (const d of at) if (x[d] !== 1) fail(`${nodeLabel(node)}: cannot squeeze dimension ${d} of size ${x[d]}`);
      return x.filter((_, d) => !at.has(d));
    }
    case 'Gather': {
      const indices = input(1);
      const axis = normalizeAxis(node, a.int('axis', 0), x.length);
      return [...x.slice(0, axis), ...indices, ...x.slice(axis + 1)];
    }
    default:
      fail(`${nodeLabel(node)}: no shape rule (supported: ${SUPPORTED_OPS.join(', ')})`);
  }
}
