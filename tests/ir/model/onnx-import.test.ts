/**
 * ONNX import (ir/model/onnx-import.ts, shape-fold.ts): every supported op in a one-node (or
 * few-node) model written here, imported and run by the reference (ir/model/reference.ts), its
 * output equal to ONNX Runtime's on the same file and inputs; static shapes from inputShapes;
 * the one-line errors (unknown op, truncated file, unsupported attribute, symbolic dimension
 * without a shape, computed weights, other element types).
 *
 * Tolerance: ONNX Runtime computes in fp32 and the reference in float64 rounded to fp32 per
 * node, so they differ by fp32 rounding: 2e-6 of the output's largest magnitude for elementwise
 * ops, 1e-5 for reductions (a few hundred fp32 terms at most here).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { LoopTuneError } from '../../../ir/errors.ts';
import { randomArray } from '../../../ir/interpret.ts';
import { importOnnx, loadOnnxFile, runReference, type ModelGraph } from '../../../ir/model/index.ts';
import {
  ATTRIBUTE_TYPE, encodeModel, TENSOR_DATA_TYPE, type AttributeProto, type MessageInit, type NodeProto,
} from '../../../ir/model/onnx-proto.ts';

// ---- a model in a few lines ----

type Attribute = Omit<MessageInit<AttributeProto>, 'name'>;
const int = (i: number): Attribute => ({ type: ATTRIBUTE_TYPE.INT, i });
const ints = (v: number[]): Attribute => ({ type: ATTRIBUTE_TYPE.INTS, ints: v });
const float = (f: number): Attribute => ({ type: ATTRIBUTE_TYPE.FLOAT, f });
const str = (s: string): Attribute => ({ type: ATTRIBUTE_TYPE.STRING, s: new TextEncoder().encode(s) });

interface Weight { readonly dims: number[]; readonly data: ArrayLike<number>; readonly type?: 'int64' | 'float16' }
interface NodeSpec { readonly op: string; readonly inputs: string[]; readonly output: string; readonly name?: string; readonly attrs?: Record<string, Attribute> }
interface ModelSpec {
  readonly inputs: Record<string, (number | string)[]>;
  readonly output: string;
  readonly nodes: NodeSpec[];
  readonly weights?: Record<string, Weight>;
  readonly opset?: number;
  readonly inputType?: number;
}

const dims = (d: (number | string)[]) => ({ dim: d.map((x) => (typeof x === 'number' ? { dimValue: x } : { dimParam: x })) });

function onnx(m: ModelSpec): Uint8Array {
  const node: MessageInit<NodeProto>[] = m.nodes.map((n, k) => ({
    name: n.name ?? `${n.op.toLowerCase()}${k}`, opType: n.op, input: n.inputs, output: [n.output],
    attribute: Object.entries(n.attrs ?? {}).map(([name, a]) => ({ name, ...a })),
  }));
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: m.opset ?? 17 }],
    graph: {
      name: 'test',
      node,
      initializer: Object.entries(m.weights ?? {}).map(([name, w]) => (w.type === 'int64'
        ? { name, dims: w.dims, dataType: TENSOR_DATA_TYPE.INT64, int64Data: [...Array.from(w.data)] }
        : { name, dims: w.dims, dataType: w.type === 'float16' ? TENSOR_DATA_TYPE.FLOAT16 : TENSOR_DATA_TYPE.FLOAT, rawData: new Uint8Array(Float32Array.from(w.data).buffer) })),
      input: Object.entries(m.inputs).map(([name, d]) => ({ name, type: { tensorType: { elemType: m.inputType ?? TENSOR_DATA_TYPE.FLOAT, shape: dims(d) } } })),
      output: [{ name: m.output, type: { tensorType: { elemType: TENSOR_DATA_TYPE.FLOAT } } }],
    },
  });
}

const count = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);
const w = (d: number[], seed: number, map: (x: number) => number = (x) => x): Weight => ({ dims: d, data: randomArray(count(d), seed).map(map) });

/** ONNX Runtime's output on the same file and inputs. */
async function onnxRuntime(bytes: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>, output: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const result = await session.run(Object.fromEntries(Object.entries(feeds).map(([n, f]) => [n, new ort.Tensor('float32', f.data, f.dims)])));
    return result[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Largest |got - want| over the largest |want|. */
function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0, scale = 1e-30;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i]!) !== Number.isNaN(want[i]!)) return Infinity;
    err = Math.max(err, Math.abs(got[i]! - want[i]!) || 0);
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return err / scale;
}

interface OpCase {
  readonly name: string;
  readonly model: ModelSpec;
  /** input values' transform (e.g. positive for Sqrt) */
  readonly positive?: boolean;
  readonly tolerance?: number;
  /** what the import must have made of it: one kernel spec, or host op kinds */
  readonly expect?: { spec?: string; host?: string[] };
}

const ELEMENTWISE_TOLERANCE = 2e-6;
const REDUCTION_TOLERANCE = 1e-5;

async function checkAgainstOnnxRuntime(c: OpCase): Promise<ModelGraph> {
  const bytes = onnx(c.model);
  const feeds = Object.fromEntries(Object.entries(c.model.inputs).map(([name, d], i) => {
    const shape = d as number[];
    const data = randomArray(count(shape), 11 + i).map((x) => (c.positive ? 0.1 + Math.abs(x) : x));
    return [name, { data, dims: shape }];
  }));
  const g = importOnnx(bytes);
  const got = runReference(g, Object.fromEntries(Object.entries(feeds).map(([n, f]) => [n, f.data]))).outputs[c.model.output]!;
  const want = await onnxRuntime(bytes, feeds, c.model.output);
  assert.is(got.length, want.length, `${c.name}: output size`);
  const err = relativeError(got, want);
  assert.ok(err <= (c.tolerance ?? REDUCTION_TOLERANCE), `${c.name}: relative error ${err.toExponential(2)} against ONNX Runtime`);
  if (c.expect?.spec !== undefined) {
    const kernels = g.nodes.filter((n) => n.kind === 'kernel');
    assert.equal(kernels.map((k) => k.problem.spec), [c.expect.spec], `${c.name}: kernel`);
  }
  if (c.expect?.host !== undefined) assert.equal(g.nodes.map((n) => (n.kind === 'host' ? n.op.kind : 'kernel')), c.expect.host, `${c.name}: nodes`);
  return g;
}

const X = 'x', Y = 'y';
const unary = (op: string, attrs?: Record<string, Attribute>): ModelSpec => ({ inputs: { x: [2, 3, 4] }, output: Y, nodes: [{ op, inputs: [X], output: Y, attrs }] });

const CASES: OpCase[] = [
  {
    name: 'Conv 2-d: bias, stride 2, dilation 2, groups 2, pads per side',
    model: {
      inputs: { x: [1, 4, 9, 10] }, output: Y, weights: { W: w([6, 2, 3, 3], 1), B: w([6], 2) },
      nodes: [{ op: 'Conv', inputs: [X, 'W', 'B'], output: Y, attrs: { strides: ints([2, 2]), dilations: ints([2, 2]), group: int(2), pads: ints([1, 2, 2, 0]), kernel_shape: ints([3, 3]) } }],
    },
    expect: { spec: 'conv2d n1 c4 h9 w10 k6 r3 s3 stride2 groups2 dilation2 pad1,2,2,0 +bias' },
  },
  {
    name: 'Conv 1-d',
    model: { inputs: { x: [2, 3, 11] }, output: Y, weights: { W: w([5, 3, 3], 3) }, nodes: [{ op: 'Conv', inputs: [X, 'W'], output: Y, attrs: { pads: ints([1, 1]) } }] },
    expect: { spec: 'conv1d n2 c3 w11 k5 s3 stride1 pad1' },
  },
  {
    name: 'Conv 3-d',
    model: { inputs: { x: [1, 2, 5, 5, 5] }, output: Y, weights: { W: w([3, 2, 2, 3, 3], 4) }, nodes: [{ op: 'Conv', inputs: [X, 'W'], output: Y, attrs: { strides: ints([1, 1, 1]) } }] },
    expect: { spec: 'conv3d n1 c2 d5 h5 w5 k3 t2 r3 s3 stride1' },
  },
  {
    name: 'Conv with auto_pad VALID',
    model: { inputs: { x: [1, 2, 6, 6] }, output: Y, weights: { W: w([3, 2, 3, 3], 5) }, nodes: [{ op: 'Conv', inputs: [X, 'W'], output: Y, attrs: { auto_pad: str('VALID') } }] },
    expect: { spec: 'conv2d n1 c2 h6 w6 k3 r3 s3 stride1' },
  },
  {
    name: 'Gemm transB=1, alpha, beta, C per column',
    model: {
      inputs: { x: [3, 5] }, output: Y, weights: { B: w([4, 5], 6), C: w([4], 7) },
      nodes: [{ op: 'Gemm', inputs: [X, 'B', 'C'], output: Y, attrs: { transB: int(1), alpha: float(0.5), beta: float(2) } }],
    },
    expect: { spec: 'matmul 3x4x5 +bias' },
  },
  {
    name: 'Gemm with C of the output shape (a residual) and a computed B',
    model: {
      inputs: { x: [3, 5], b: [5, 4] }, output: Y, weights: { C: w([3, 4], 8) },
      nodes: [{ op: 'Gemm', inputs: [X, 'b', 'C'], output: Y, attrs: { alpha: float(2) } }],
    },
    expect: { spec: 'matmul 3x4x5 +scale2 +residual' },
  },
  {
    name: 'MatMul [2, 3, 5] x weight [5, 4]: one matmul over the leading dims',
    model: { inputs: { x: [2, 3, 5] }, output: Y, weights: { B: w([5, 4], 9) }, nodes: [{ op: 'MatMul', inputs: [X, 'B'], output: Y }] },
    expect: { spec: 'matmul 6x4x5' },
  },
  {
    name: 'MatMul batched [2, 3, 4, 5] x [2, 3, 5, 6]: one bmm',
    model: { inputs: { x: [2, 3, 4, 5], b: [2, 3, 5, 6] }, output: Y, nodes: [{ op: 'MatMul', inputs: [X, 'b'], output: Y }] },
    expect: { spec: 'bmm b6 m4 n6 k5' },
  },
  ...(['Add', 'Sub', 'Mul', 'Div'] as const).map((op): OpCase => ({
    name: `${op} broadcasting a weight [3, 1] over [2, 3, 4]`,
    model: { inputs: { x: [2, 3, 4] }, output: Y, weights: { c: w([3, 1], 10, (v) => v + 2) }, nodes: [{ op, inputs: [X, 'c'], output: Y }] },
    tolerance: ELEMENTWISE_TOLERANCE,
    expect: { host: ['binary'] },
  })),
  {
    name: 'Div of two computed tensors, broadcast [4] against [2, 3, 4]',
    model: { inputs: { x: [2, 3, 4], d: [4] }, output: Y, nodes: [{ op: 'Div', inputs: [X, 'd'], output: Y }] },
    positive: true, tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['binary'] },
  },
  {
    name: 'Pow by a constant 3',
    model: { inputs: { x: [2, 3, 4] }, output: Y, weights: { e: { dims: [], data: [3] } }, nodes: [{ op: 'Pow', inputs: [X, 'e'], output: Y }] },
    tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['binary'] },
  },
  { name: 'Relu', model: unary('Relu'), tolerance: 0, expect: { host: ['unary'] } },
  { name: 'Sigmoid', model: unary('Sigmoid'), tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['unary'] } },
  { name: 'Erf', model: unary('Erf'), tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['unary'] } },
  { name: 'Sqrt', model: unary('Sqrt'), positive: true, tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['unary'] } },
  {
    name: 'Clip with only a max (opset 17 inputs, min left out)',
    model: { inputs: { x: [2, 3, 4] }, output: Y, weights: { hi: { dims: [], data: [0.25] } }, nodes: [{ op: 'Clip', inputs: [X, '', 'hi'], output: Y }] },
    tolerance: 0, expect: { host: ['clip'] },
  },
  { name: 'Clip with attributes (opset 10)', model: { ...unary('Clip', { min: float(-0.5), max: float(0.5) }), opset: 10 }, tolerance: 0, expect: { host: ['clip'] } },
  {
    name: 'BatchNormalization on a graph input: a per-channel scale and shift',
    model: {
      inputs: { x: [2, 3, 4, 4] }, output: Y,
      weights: { s: w([3], 12), b: w([3], 13), m: w([3], 14), v: w([3], 15, (x) => 0.5 + Math.abs(x)) },
      nodes: [{ op: 'BatchNormalization', inputs: [X, 's', 'b', 'm', 'v'], output: Y, attrs: { epsilon: float(1e-3) } }],
    },
    tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['binary', 'binary'] },
  },
  {
    name: 'MaxPool 3x3 stride 2 pad 1',
    model: { inputs: { x: [1, 3, 9, 8] }, output: Y, nodes: [{ op: 'MaxPool', inputs: [X], output: Y, attrs: { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) } }] },
    tolerance: 0, expect: { spec: 'maxpool2d n1 c3 h9 w8 r3 s3 stride2 pad1' },
  },
  {
    name: 'MaxPool 1-d with dilation 2',
    model: { inputs: { x: [2, 3, 12] }, output: Y, nodes: [{ op: 'MaxPool', inputs: [X], output: Y, attrs: { kernel_shape: ints([3]), dilations: ints([2]) } }] },
    tolerance: 0, expect: { spec: 'maxpool1d n2 c3 w12 s3 stride1 dilation2' },
  },
  {
    name: 'AveragePool with padding counted (count_include_pad 1)',
    model: { inputs: { x: [1, 3, 7, 7] }, output: Y, nodes: [{ op: 'AveragePool', inputs: [X], output: Y, attrs: { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), count_include_pad: int(1) } }] },
    tolerance: ELEMENTWISE_TOLERANCE, expect: { spec: 'avgpool2d n1 c3 h7 w7 r3 s3 stride1 pad1' },
  },
  {
    name: 'AveragePool 2x2 stride 2, no padding',
    model: { inputs: { x: [1, 3, 8, 8] }, output: Y, nodes: [{ op: 'AveragePool', inputs: [X], output: Y, attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) } }] },
    tolerance: ELEMENTWISE_TOLERANCE,
  },
  {
    name: 'GlobalAveragePool',
    model: { inputs: { x: [2, 5, 4, 3] }, output: Y, nodes: [{ op: 'GlobalAveragePool', inputs: [X], output: Y }] },
    tolerance: ELEMENTWISE_TOLERANCE, expect: { spec: 'avgpool2d n2 c5 h4 w3 r4 s3 stride1' },
  },
  { name: 'Flatten axis 2', model: unary('Flatten', { axis: int(2) }), tolerance: 0, expect: { host: ['reshape'] } },
  {
    name: 'Reshape with 0 and -1 in the target',
    model: { inputs: { x: [2, 3, 4] }, output: Y, weights: { shape: { dims: [3], data: [0, -1, 2], type: 'int64' } }, nodes: [{ op: 'Reshape', inputs: [X, 'shape'], output: Y }] },
    tolerance: 0, expect: { host: ['reshape'] },
  },
  { name: 'Transpose', model: unary('Transpose', { perm: ints([2, 0, 1]) }), tolerance: 0, expect: { host: ['transpose'] } },
  { name: 'Transpose without perm (reversed)', model: unary('Transpose'), tolerance: 0 },
  { name: 'Softmax axis 1 (opset 17: that axis only)', model: unary('Softmax', { axis: int(1) }), tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['softmax'] } },
  {
    name: 'Softmax axis 1 at opset 11: over the flattened dimensions 1..',
    model: { ...unary('Softmax', { axis: int(1) }), opset: 11 }, tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['reshape', 'softmax', 'reshape'] },
  },
  {
    name: 'LayerNormalization over the last axis',
    model: { inputs: { x: [2, 3, 8] }, output: Y, weights: { g: w([8], 16), b: w([8], 17) }, nodes: [{ op: 'LayerNormalization', inputs: [X, 'g', 'b'], output: Y, attrs: { epsilon: float(1e-5) } }] },
    expect: { host: ['layernorm'] },
  },
  {
    name: 'LayerNormalization over axes 1.. without a bias',
    model: { inputs: { x: [2, 3, 4] }, output: Y, weights: { g: w([3, 4], 18) }, nodes: [{ op: 'LayerNormalization', inputs: [X, 'g'], output: Y, attrs: { axis: int(1) } }] },
  },
  { name: 'ReduceMean axes attribute (opset 17), keepdims', model: unary('ReduceMean', { axes: ints([-1, 0]) }), expect: { host: ['reducemean'] } },
  {
    name: 'ReduceMean axes input (opset 18), keepdims 0',
    model: { inputs: { x: [2, 3, 4] }, output: Y, opset: 18, weights: { axes: { dims: [1], data: [1], type: 'int64' } }, nodes: [{ op: 'ReduceMean', inputs: [X, 'axes'], output: Y, attrs: { keepdims: int(0) } }] },
  },
  {
    name: 'Concat of a computed tensor and a weight',
    model: { inputs: { x: [2, 3, 4] }, output: Y, weights: { c: w([2, 2, 4], 19) }, nodes: [{ op: 'Concat', inputs: [X, 'c', X], output: Y, attrs: { axis: int(1) } }] },
    tolerance: 0, expect: { host: ['concat'] },
  },
  { name: 'Identity', model: unary('Identity'), tolerance: 0, expect: { host: ['reshape'] } },
  { name: 'Cast to float (of a float tensor)', model: unary('Cast', { to: int(TENSOR_DATA_TYPE.FLOAT) }), tolerance: 0, expect: { host: ['reshape'] } },
  {
    name: 'Constant node added to a tensor',
    model: {
      inputs: { x: [2, 4] }, output: Y,
      nodes: [
        { op: 'Constant', inputs: [], output: 'k', attrs: { value: { type: ATTRIBUTE_TYPE.TENSOR, t: { dims: [4], dataType: TENSOR_DATA_TYPE.FLOAT, floatData: [1, -2, 0.5, 3] } } } },
        { op: 'Add', inputs: [X, 'k'], output: Y },
      ],
    },
    tolerance: ELEMENTWISE_TOLERANCE, expect: { host: ['binary'] },
  },
  {
    name: 'Shape -> Gather -> Unsqueeze -> Concat -> Reshape folded to a static reshape (opset 11 attributes)',
    model: {
      inputs: { x: [2, 3, 4] }, output: Y, opset: 11,
      weights: { minus1: { dims: [1], data: [-1], type: 'int64' } },
      nodes: [
        { op: 'Shape', inputs: [X], output: 's' },
        { op: 'Constant', inputs: [], output: 'i0', attrs: { value: { type: ATTRIBUTE_TYPE.TENSOR, t: { dims: [], dataType: TENSOR_DATA_TYPE.INT64, int64Data: [0] } } } },
        { op: 'Gather', inputs: ['s', 'i0'], output: 'batch', attrs: { axis: int(0) } },
        { op: 'Unsqueeze', inputs: ['batch'], output: 'batch1', attrs: { axes: ints([0]) } },
        { op: 'Concat', inputs: ['batch1', 'minus1'], output: 'target', attrs: { axis: int(0) } },
        { op: 'Reshape', inputs: [X, 'target'], output: 'flat' },
        { op: 'Unsqueeze', inputs: ['flat'], output: 'flat1', attrs: { axes: ints([1]) } },
        { op: 'Squeeze', inputs: ['flat1'], output: Y, attrs: { axes: ints([1]) } },
      ],
    },
    tolerance: 0, expect: { host: ['reshape', 'reshape', 'reshape'] },
  },
  {
    name: 'Squeeze and Unsqueeze with axes inputs (opset 13+), Cast of shapes folded',
    model: {
      inputs: { x: [2, 1, 4] }, output: Y,
      weights: { ax: { dims: [1], data: [1], type: 'int64' } },
      nodes: [
        { op: 'Squeeze', inputs: [X, 'ax'], output: 'sq' },
        { op: 'Shape', inputs: ['sq'], output: 's' },
        { op: 'Cast', inputs: ['s'], output: 'sf', attrs: { to: int(TENSOR_DATA_TYPE.FLOAT) } },
        { op: 'Unsqueeze', inputs: ['sq', 'ax'], output: 'un' },
        { op: 'ReduceMean', inputs: ['sf'], output: 'meanShape', attrs: { keepdims: int(0) } },
        { op: 'Mul', inputs: ['un', 'meanShape'], output: Y },
      ],
    },
    tolerance: ELEMENTWISE_TOLERANCE,
  },
];

for (const c of CASES) {
  test(`${c.name}: reference equals ONNX Runtime`, async () => {
    await checkAgainstOnnxRuntime(c);
  });
}

test('every supported op is covered by a case above', () => {
  const covered = new Set(CASES.flatMap((c) => c.model.nodes.map((n) => n.op)));
  const supported = ['Conv', 'Gemm', 'MatMul', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Relu', 'Clip', 'Sigmoid', 'Erf', 'Sqrt', 'BatchNormalization', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Flatten', 'Reshape', 'Transpose', 'Softmax', 'LayerNormalization', 'ReduceMean', 'Concat', 'Identity', 'Constant', 'Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Cast'];
  assert.equal(supported.filter((op) => !covered.has(op)), []);
});

test('Gemm transB weights are transposed once at load: the kernel reads B [K, N]', () => {
  const B = w([4, 5], 6);
  const g = importOnnx(onnx({ inputs: { x: [3, 5] }, output: Y, weights: { B }, nodes: [{ op: 'Gemm', inputs: [X, 'B'], output: Y, attrs: { transB: int(1) } }] }));
  const k = g.nodes[0]!;
  assert.is(k.kind, 'kernel');
  const weight = g.weights.get(k.kind === 'kernel' ? k.operands[1]! : '')!;
  assert.equal(weight.shape, [5, 4]);
  for (let kk = 0; kk < 5; kk++) for (let n = 0; n < 4; n++) assert.is(weight.data[kk * 4 + n], Math.fround(B.data[n * 5 + kk]!));
  assert.not.ok(g.weights.has('B'), 'the untransposed initializer is dropped');
});

test('kernel operands hold the element count of the problem tensors\' data (a padded conv reads its unpadded input)', () => {
  const g = importOnnx(onnx(CASES[0]!.model));
  for (const node of g.nodes) {
    if (node.kind !== 'kernel') continue;
    node.operands.forEach((name, i) => {
      const t = node.problem.tensors[i + 1]!;
      const shape = (g.values.get(name) ?? g.weights.get(name))!.shape;
      const data = t.shape.map((n, d) => n - (t.pad?.before[d] ?? 0) - (t.pad?.after[d] ?? 0));
      assert.is(count(shape), count(data), `${node.name} operand ${name}`);
    });
  }
});

// ---- static shapes ----

const symbolic: ModelSpec = { inputs: { x: ['N', 3] }, output: Y, weights: { B: w([3, 2], 20) }, nodes: [{ op: 'MatMul', inputs: [X, 'B'], output: Y }] };

test('a symbolic batch is fixed by inputShapes', async () => {
  const bytes = onnx(symbolic);
  const g = importOnnx(bytes, { inputShapes: { x: [5, 3] } });
  assert.equal(g.inputs, [{ name: 'x', shape: [5, 3] }]);
  assert.equal(g.outputs, [{ name: 'y', shape: [5, 2] }]);
  const x = randomArray(15, 3);
  const want = await onnxRuntime(bytes, { x: { data: x, dims: [5, 3] } }, Y);
  assert.ok(relativeError(runReference(g, { x }).outputs.y!, want) <= REDUCTION_TOLERANCE);
});

test('a symbolic dimension shared by two inputs is inferred from the one given', () => {
  const bytes = onnx({ inputs: { x: ['N', 3], z: ['N', 3] }, output: Y, nodes: [{ op: 'Add', inputs: [X, 'z'], output: Y }] });
  const g = importOnnx(bytes, { inputShapes: { x: [4, 3] } });
  assert.equal(g.inputs.map((v) => v.shape), [[4, 3], [4, 3]]);
});

/** The one-line message of the LoopTuneError `fn` throws. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.instance(e, LoopTuneError);
    const message = (e as Error).message;
    assert.not.match(message, /\n/, 'one line');
    return message;
  }
  assert.unreachable('no error');
  return '';
}

test('a symbolic dimension without a shape: one line naming the input and the dimension', () => {
  assert.match(errorOf(() => importOnnx(onnx(symbolic))), "input 'x' has symbolic dimension 'N' (dimension 0); give its shape: inputShapes: { x: [...] }");
});

test('inputShapes of the wrong rank, against a fixed dimension, or for no input: one line each', () => {
  assert.match(errorOf(() => importOnnx(onnx(symbolic), { inputShapes: { x: [5] } })), 'inputShapes.x must be 2 positive integers');
  assert.match(errorOf(() => importOnnx(onnx(symbolic), { inputShapes: { x: [5, 4] } })), 'inputShapes.x dimension 1 is 4, but the model fixes it to 3');
  assert.match(errorOf(() => importOnnx(onnx(symbolic), { inputShapes: { x: [5, 3], q: [1] } })), "inputShapes names 'q', which is not a graph input (inputs: x)");
});

// ---- errors ----

test('an unknown op: one line naming the op and the node, and what is supported', () => {
  const bytes = onnx({ inputs: { x: [2, 3] }, output: Y, nodes: [{ op: 'Relu', inputs: [X], output: 'r' }, { op: 'HardSwish', name: 'act7', inputs: ['r'], output: Y }] });
  const message = errorOf(() => importOnnx(bytes));
  assert.match(message, "unsupported op 'HardSwish' (node 'act7'); supported: Conv, Gemm, MatMul");
});

test('an op of another domain is refused, naming the domain', () => {
  const bytes = encodeModel({
    irVersion: 8, opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'ms', node: [{ name: 'g1', opType: 'Gelu', domain: 'com.microsoft', input: ['x'], output: ['y'] }],
      input: [{ name: 'x', type: { tensorType: { elemType: TENSOR_DATA_TYPE.FLOAT, shape: dims([2]) } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: TENSOR_DATA_TYPE.FLOAT } } }],
    },
  });
  assert.match(errorOf(() => importOnnx(bytes)), "unsupported op 'com.microsoft.Gelu' (node 'g1')");
});

test('truncated or garbage bytes: one line saying the file is not an ONNX model', () => {
  const bytes = onnx(CASES[0]!.model);
  for (const cut of [bytes.subarray(0, Math.floor(bytes.length / 2)), bytes.subarray(0, bytes.length - 3), Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f])]) {
    assert.match(errorOf(() => importOnnx(cut)), /^not an ONNX model: /);
  }
  assert.match(errorOf(() => importOnnx(new Uint8Array(0))), 'not an ONNX model: it has no graph');
});

test('unsupported attributes: one line naming the op, the node, the attribute and what is supported', () => {
  const conv = (attrs: Record<string, Attribute>) => onnx({ inputs: { x: [1, 2, 6, 6] }, output: Y, weights: { W: w([3, 2, 3, 3], 1) }, nodes: [{ op: 'Conv', name: 'c1', inputs: [X, 'W'], output: Y, attrs }] });
  assert.match(errorOf(() => importOnnx(conv({ auto_pad: str('SAME_UPPER') }))), "Conv node 'c1': auto_pad SAME_UPPER is not supported (supported: NOTSET with explicit pads, VALID)");
  assert.match(errorOf(() => importOnnx(conv({ strides: ints([2, 1]) }))), "Conv node 'c1': strides [2, 1] differ between dimensions");
  assert.match(errorOf(() => importOnnx(conv({ foo: int(1) }))), "Conv node 'c1': attribute 'foo' is not supported (Conv takes auto_pad, dilations, group, kernel_shape, pads, strides)");
  const pool = onnx({ inputs: { x: [1, 2, 6, 6] }, output: Y, nodes: [{ op: 'MaxPool', name: 'p1', inputs: [X], output: Y, attrs: { kernel_shape: ints([3, 3]), ceil_mode: int(1) } }] });
  assert.match(errorOf(() => importOnnx(pool)), "MaxPool node 'p1': ceil_mode 1 is not supported (supported: ceil_mode 0)");
  const avg = onnx({ inputs: { x: [1, 2, 6, 6] }, output: Y, nodes: [{ op: 'AveragePool', name: 'a1', inputs: [X], output: Y, attrs: { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) } }] });
  assert.match(errorOf(() => importOnnx(avg)), "AveragePool node 'a1': count_include_pad 0 with padding is not supported");
});

test('a Conv whose weights are computed: one line', () => {
  const bytes = onnx({ inputs: { x: [1, 2, 6, 6], k: [3, 2, 3, 3] }, output: Y, nodes: [{ op: 'Conv', name: 'c2', inputs: [X, 'k'], output: Y }] });
  assert.match(errorOf(() => importOnnx(bytes)), "Conv node 'c2': its weights ('k') must be a constant (an initializer)");
});

test('element types other than float32: one line naming the tensor and the type', () => {
  assert.match(errorOf(() => importOnnx(onnx({ ...unary('Relu'), inputType: TENSOR_DATA_TYPE.INT64 }))), "graph input 'x' has element type int64; supported: float (float32)");
  const half = onnx({ inputs: { x: [2, 2] }, output: Y, weights: { h: { dims: [2], data: [1, 2], type: 'float16' } }, nodes: [{ op: 'Add', inputs: [X, 'h'], output: Y }] });
  assert.match(errorOf(() => importOnnx(half)), "initializer 'h' has element type float16");
});

test('Gather on a computed tensor (an embedding lookup) is refused with one line', () => {
  const bytes = onnx({ inputs: { x: [4, 3] }, output: Y, weights: { i: { dims: [2], data: [0, 2], type: 'int64' } }, nodes: [{ op: 'Gather', name: 'emb', inputs: [X, 'i'], output: Y }] });
  assert.match(errorOf(() => importOnnx(bytes)), "Gather node 'emb' gathers from a computed tensor");
});

test('loadOnnxFile reads a file; a missing file is one line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'looptune-onnx-'));
  try {
    const path = join(dir, 'relu.onnx');
    writeFileSync(path, onnx(unary('Relu')));
    const g = await loadOnnxFile(path, { name: 'relu-model' });
    assert.is(g.name, 'relu-model');
    assert.is(g.nodes.length, 1);
    writeFileSync(path, new Uint8Array([0xff, 0xff, 0xff]));
    await loadOnnxFile(path).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, `${path}: not an ONNX model`));
    await loadOnnxFile(join(dir, 'none.onnx')).then(() => assert.unreachable(), (e: Error) => {
      assert.instance(e, LoopTuneError);
      assert.match(e.message, 'no such file or folder');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
