/**
 * Graph rewrites (ir/model/fuse.ts, applied by importOnnx): each fusion fires on its pattern,
 * with the kernel's spec and sources saying what it absorbed, and the fused graph still computes
 * what ONNX Runtime computes on the same file; each does NOT fire when the intermediate value has
 * a second consumer or is a graph output. Batch-norm folding is exact to 1e-5 relative against the
 * unfolded graph (fp32 rounding of the folded weights, a few ulps, is all that differs).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import { randomArray } from '../../../ir/interpret.ts';
import { importOnnx, runReference, type KernelNode, type ModelGraph } from '../../../ir/model/index.ts';
import { float, int, ints, OnnxGraphBuilder } from '../../../ir/model/zoo/builder.ts';

const count = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

/** A graph builder with input x of `dims` and random weights. */
function graph(dims: number[]): { g: OnnxGraphBuilder; weight: (name: string, d: number[], map?: (v: number) => number) => string } {
  const g = new OnnxGraphBuilder('fuse-test');
  g.input('x', dims);
  let seed = 100;
  const weight = (name: string, d: number[], map: (v: number) => number = (v) => v) => g.initializer(name, d, randomArray(count(d), seed++).map(map));
  return { g, weight };
}

/** BatchNormalization with random statistics (variance positive), as after a trained conv. */
function batchNorm(b: ReturnType<typeof graph>, x: string, name: string, channels: number): string {
  const s = b.weight(`${name}.s`, [channels]), t = b.weight(`${name}.t`, [channels]);
  const m = b.weight(`${name}.m`, [channels]), v = b.weight(`${name}.v`, [channels], (u) => 0.3 + Math.abs(u));
  return b.g.node('BatchNormalization', name, [x, s, t, m, v], { epsilon: float(1e-5) });
}

function largestRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0, scale = 1e-30;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return Number.isNaN(err) ? Infinity : err / scale;
}

/**
 * Imports the model, checks the fused graph's outputs against ONNX Runtime's and against the
 * unfused graph's (the same reference, one node per ONNX op), both to 1e-5 of the largest output.
 */
async function imported(bytes: Uint8Array, dims: number[]): Promise<ModelGraph> {
  const g = importOnnx(bytes);
  const unfused = importOnnx(bytes, { fuse: false });
  const x = randomArray(count(dims), 7);
  const fused = runReference(g, { x }).outputs;
  const plain = runReference(unfused, { x }).outputs;
  const session = await ort.InferenceSession.create(bytes);
  const want = await session.run({ x: new ort.Tensor('float32', x, dims) });
  await session.release();
  for (const o of g.outputs) {
    const runtime = largestRelativeError(fused[o.name]!, want[o.name]!.data as Float32Array);
    assert.ok(runtime <= 1e-5, `${o.name}: fused graph vs ONNX Runtime ${runtime.toExponential(2)}`);
    const self = largestRelativeError(fused[o.name]!, plain[o.name]!);
    assert.ok(self <= 1e-5, `${o.name}: fused vs unfused graph ${self.toExponential(2)}`);
  }
  return g;
}

function kernels(g: ModelGraph): KernelNode[] {
  return g.nodes.filter((n): n is KernelNode => n.kind === 'kernel');
}

function hostKinds(g: ModelGraph): string[] {
  return g.nodes.flatMap((n) => (n.kind === 'host' ? [n.op.kind === 'binary' || n.op.kind === 'unary' ? n.op.op : n.op.kind] : []));
}

const IMAGE = [1, 4, 6, 6];
const OUT = [1, 5, 6, 6];

/** x → Conv 3x3 pad 1 (5 channels) → what `then` adds; the last value is the graph output. */
async function afterConv(then: (b: ReturnType<typeof graph>, conv: string) => string, extraOutputs: string[] = []): Promise<ModelGraph> {
  const b = graph(IMAGE);
  const conv = b.g.node('Conv', 'conv', ['x', b.weight('W', [5, 4, 3, 3])], { pads: ints([1, 1, 1, 1]) });
  const y = then(b, conv);
  b.g.output(y, OUT);
  for (const o of extraOutputs) b.g.output(o, OUT);
  return imported(b.g.encode(), IMAGE);
}

test('Conv + BatchNormalization + Relu: one kernel, batch norm folded into the weights and bias', async () => {
  const g = await afterConv((b, conv) => b.g.node('Relu', 'relu', [batchNorm(b, conv, 'bn', 5)]));
  assert.equal(kernels(g).map((k) => k.problem.spec), ['conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1 +bias +relu']);
  assert.equal(kernels(g)[0]!.sources, ['conv', 'bn', 'relu']);
  assert.equal(hostKinds(g), []);
  assert.is(g.weights.size, 2, 'only the folded weights and bias remain');
});

test('batch-norm folding: folded weights are W * gamma / sqrt(var + eps) and the bias beta - mean * that, to 1e-5 relative', async () => {
  const b = graph(IMAGE);
  const W = b.weight('W', [5, 4, 3, 3]), B = b.weight('B', [5]);
  const conv = b.g.node('Conv', 'conv', ['x', W, B], { pads: ints([1, 1, 1, 1]) });
  b.g.output(batchNorm(b, conv, 'bn', 5), OUT);
  const bytes = b.g.encode();
  const g = await imported(bytes, IMAGE);
  const k = kernels(g)[0]!;
  assert.is(k.problem.spec, 'conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1 +bias');
  const raw = importOnnx(bytes, { fuse: false });
  const get = (name: string) => raw.weights.get(name)!.data;
  // the unfused graph keeps the statistics as bn:scale = gamma/sqrt(var+eps) and bn:shift = beta - mean*scale
  const scale = get('bn:scale'), shift = get('bn:shift');
  const folded = g.weights.get(k.operands[1]!)!.data, bias = g.weights.get(k.operands[2]!)!.data;
  const wRaw = get('W'), bRaw = get('B');
  for (let i = 0; i < folded.length; i++) {
    const want = wRaw[i]! * scale[Math.floor(i / 36)]!;
    assert.ok(Math.abs(folded[i]! - want) <= 1e-5 * Math.abs(want) + 1e-30, `weight ${i}`);
  }
  for (let c = 0; c < 5; c++) {
    const want = bRaw[c]! * scale[c]! + shift[c]!;
    assert.ok(Math.abs(bias[c]! - want) <= 1e-5 * Math.max(Math.abs(want), Math.abs(shift[c]!)), `bias ${c}`);
  }
});

test('Conv + Add of a per-channel constant [1, K, 1, 1] → +bias', async () => {
  const g = await afterConv((b, conv) => b.g.node('Add', 'add', [conv, b.weight('c', [1, 5, 1, 1])]));
  assert.equal(kernels(g).map((k) => k.problem.spec), ['conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1 +bias']);
  assert.equal(kernels(g)[0]!.sources, ['conv', 'add']);
});

test('an Add of a constant that varies along a spatial dimension is no bias (stays a host add)', async () => {
  const g = await afterConv((b, conv) => b.g.node('Add', 'add', [conv, b.weight('c', [1, 1, 1, 6])]));
  assert.equal(kernels(g).map((k) => k.problem.spec), ['conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1']);
  assert.equal(hostKinds(g), ['add']);
});

for (const [name, attrs, token] of [
  ['Relu', null, '+relu'],
  ['Clip 0..6', [0, 6], '+relu6'],
  ['Clip -0.5..0.25', [-0.5, 0.25], '+clip-0.5,0.25'],
  ['Sigmoid', null, '+sigmoid'],
] as const) {
  test(`Conv + ${name} → ${token}`, async () => {
    const g = await afterConv((b, conv) => {
      if (attrs === null) return b.g.node(name, 'act', [conv]);
      return b.g.node('Clip', 'act', [conv, b.g.scalar('lo', attrs[0]), b.g.scalar('hi', attrs[1])]);
    });
    assert.equal(kernels(g).map((k) => k.problem.spec), [`conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1 ${token}`]);
    assert.equal(kernels(g)[0]!.sources, ['conv', 'act']);
  });
}

test('ResNet\'s skip: Conv + BatchNormalization + Add(input) + Relu is ONE kernel, the skip its +residual', async () => {
  const dims = [1, 4, 6, 6];
  const b = graph(dims);
  const conv = b.g.node('Conv', 'conv', ['x', b.weight('W', [4, 4, 3, 3])], { pads: ints([1, 1, 1, 1]) });
  const y = b.g.node('Relu', 'relu', [b.g.node('Add', 'add', [batchNorm(b, conv, 'bn', 4), 'x'])]);
  b.g.output(y, dims);
  const g = await imported(b.g.encode(), dims);
  const [k] = kernels(g);
  assert.is(g.nodes.length, 1);
  assert.is(k!.problem.spec, 'conv2d n1 c4 h6 w6 k4 r3 s3 stride1 pad1 +bias +residual +relu');
  assert.equal(k!.sources, ['conv', 'bn', 'add', 'relu']);
  assert.is(k!.operands[0], 'x');
  assert.is(k!.operands[3], 'x', 'the residual operand follows the bias');
});

test('an Add of two conv outputs fuses into one of them as +residual; the other stays a kernel', async () => {
  const b = graph(IMAGE);
  const c1 = b.g.node('Conv', 'c1', ['x', b.weight('W1', [5, 4, 3, 3])], { pads: ints([1, 1, 1, 1]) });
  const c2 = b.g.node('Conv', 'c2', ['x', b.weight('W2', [5, 4, 1, 1])]);
  b.g.output(b.g.node('Add', 'add', [c1, c2]), OUT);
  const g = await imported(b.g.encode(), IMAGE);
  assert.is(g.nodes.length, 2);
  assert.equal(kernels(g).map((k) => k.problem.spec.endsWith('+residual')).sort(), [false, true]);
});

/** x [1, 4, 8] → MatMul W [8, 6] → Add b [6] → the GELU chain `chain` writes; output [1, 4, 6]. */
async function geluAfterMatmul(chain: (g: OnnxGraphBuilder, x: string) => string): Promise<ModelGraph> {
  const dims = [1, 4, 8];
  const b = graph(dims);
  const h = b.g.node('Add', 'bias', [b.g.node('MatMul', 'mm', ['x', b.weight('W', [8, 6])]), b.weight('b', [6])]);
  b.g.output(chain(b.g, h), [1, 4, 6]);
  return imported(b.g.encode(), dims);
}

const geluChains: [string, (g: OnnxGraphBuilder, x: string) => string][] = [
  ['x/sqrt2 → erf → +1 → *x → *0.5 (BERT\'s export)', (g, x) => {
    const e = g.node('Erf', 'erf', [g.node('Div', 'div', [x, g.scalar('sqrt2', Math.SQRT2)])]);
    return g.node('Mul', 'half', [g.node('Mul', 'mulx', [x, g.node('Add', 'one', [e, g.scalar('c1', 1)])]), g.scalar('c05', 0.5)]);
  }],
  ['(x*0.5) * (1 + erf(x * 1/sqrt2)) (torch\'s export)', (g, x) => {
    const e = g.node('Erf', 'erf', [g.node('Mul', 'div', [x, g.scalar('isqrt2', Math.SQRT1_2)])]);
    return g.node('Mul', 'mulx', [g.node('Mul', 'half', [x, g.scalar('c05', 0.5)]), g.node('Add', 'one', [e, g.scalar('c1', 1)])]);
  }],
  ['x * (0.5 * (1 + erf(x/1.41421))), constants first', (g, x) => {
    const e = g.node('Erf', 'erf', [g.node('Div', 'div', [x, g.scalar('sqrt2', 1.41421)])]);
    return g.node('Mul', 'mulx', [x, g.node('Mul', 'half', [g.scalar('c05', 0.5), g.node('Add', 'one', [g.scalar('c1', 1), e])])]);
  }],
];

for (const [name, chain] of geluChains) {
  test(`MatMul + bias + GELU ${name} → one matmul +bias +gelu`, async () => {
    const g = await geluAfterMatmul(chain);
    assert.equal(kernels(g).map((k) => k.problem.spec), ['matmul 4x6x8 +bias +gelu']);
    assert.equal(hostKinds(g), []);
    assert.equal([...kernels(g)[0]!.sources].sort(), ['bias', 'div', 'erf', 'half', 'mm', 'mulx', 'one'].sort());
  });
}

test('a GELU chain whose erf is also read elsewhere does not fuse', async () => {
  const dims = [1, 4, 8];
  const b = graph(dims);
  const h = b.g.node('MatMul', 'mm', ['x', b.weight('W', [8, 6])]);
  const e = b.g.node('Erf', 'erf', [b.g.node('Div', 'div', [h, b.g.scalar('sqrt2', Math.SQRT2)])]);
  const y = b.g.node('Mul', 'half', [b.g.node('Mul', 'mulx', [h, b.g.node('Add', 'one', [e, b.g.scalar('c1', 1)])]), b.g.scalar('c05', 0.5)]);
  b.g.output(y, [1, 4, 6]);
  b.g.output(b.g.node('Relu', 'other', [e]), [1, 4, 6]);
  const g = await imported(b.g.encode(), dims);
  assert.equal(kernels(g).map((k) => k.problem.spec), ['matmul 4x6x8']);
  assert.not.ok(hostKinds(g).includes('gelu'));
});

test('MatMul + Div by a scalar → +scale of its inverse; batched MatMul + Mul by a scalar → +scale', async () => {
  const dims = [1, 4, 8];
  const b = graph(dims);
  b.g.output(b.g.node('Div', 'div', [b.g.node('MatMul', 'mm', ['x', b.weight('W', [8, 6])]), b.g.scalar('d', 8)]), [1, 4, 6]);
  const g = await imported(b.g.encode(), dims);
  assert.equal(kernels(g).map((k) => k.problem.spec), ['matmul 4x6x8 +scale0.125']);

  const bmm = graph([2, 3, 4]);
  const xt = bmm.g.node('Transpose', 'xt', ['x'], { perm: ints([0, 2, 1]) });
  bmm.g.output(bmm.g.node('Mul', 'mul', [bmm.g.scalar('m', 0.5), bmm.g.node('MatMul', 'mm', ['x', xt])]), [2, 3, 3]);
  const gb = await imported(bmm.g.encode(), [2, 3, 4]);
  assert.equal(kernels(gb).map((k) => k.problem.spec), ['bmm b2 m3 n3 k4 +scale0.5']);
  assert.equal(kernels(gb)[0]!.sources, ['mm', 'mul']);
});

test('Gemm (transB) + BatchNormalization-like per-column Mul and Add fold into the weights and bias', async () => {
  const dims = [3, 8];
  const b = graph(dims);
  const y = b.g.node('Gemm', 'fc', ['x', b.weight('W', [6, 8]), b.weight('c', [6])], { transB: int(1) });
  b.g.output(b.g.node('Add', 'shift', [b.g.node('Mul', 'scale', [y, b.weight('s', [6])]), b.weight('t', [1, 6])]), [3, 6]);
  const g = await imported(b.g.encode(), dims);
  assert.equal(kernels(g).map((k) => k.problem.spec), ['matmul 3x6x8 +bias']);
  assert.equal(kernels(g)[0]!.sources, ['fc', 'scale', 'shift']);
});

// ---- where the intermediate has a second consumer, or is a graph output, nothing fuses ----

test('no fusion when the conv output has a second consumer: bias, relu, residual, batch norm all stay host nodes', async () => {
  const patterns: [string, (b: ReturnType<typeof graph>, conv: string) => string][] = [
    ['add', (b, conv) => b.g.node('Add', 'add', [conv, b.weight('c', [1, 5, 1, 1])])],
    ['relu', (b, conv) => b.g.node('Relu', 'relu', [conv])],
    ['sigmoid', (b, conv) => b.g.node('Sigmoid', 'sig', [conv])],
    ['mul', (b, conv) => batchNorm(b, conv, 'bn', 5)],
    ['mul', (b, conv) => b.g.node('Mul', 'mul', [conv, b.g.scalar('k', 3)])],
  ];
  for (const [kind, then] of patterns) {
    // the conv's output is also read by an Add of itself: two reads
    const g = await afterConv((b, conv) => b.g.node('Add', 'twice', [then(b, conv), conv]));
    assert.equal(kernels(g).map((k) => k.problem.spec), ['conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1'], kind);
    assert.ok(hostKinds(g).includes(kind), `${kind} stays a host node`);
  }
});

test('no fusion through a graph output: a conv output also returned keeps its Relu separate', async () => {
  const b = graph(IMAGE);
  const conv = b.g.node('Conv', 'conv', ['x', b.weight('W', [5, 4, 3, 3])], { pads: ints([1, 1, 1, 1]) });
  b.g.output(b.g.node('Relu', 'relu', [conv]), OUT);
  b.g.output(conv, OUT);
  const g = await imported(b.g.encode(), IMAGE);
  assert.equal(kernels(g).map((k) => k.problem.spec), ['conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1']);
  assert.equal(hostKinds(g), ['relu']);
});

test('no residual when the other operand broadcasts the output to a larger shape', async () => {
  const dims = [1, 4, 8];
  const b = graph(dims);
  const z = b.g.input('z', [3, 4, 6]);
  b.g.output(b.g.node('Add', 'add', [b.g.node('MatMul', 'mm', ['x', b.weight('W', [8, 6])]), z]), [3, 4, 6]);
  const g = importOnnx(b.g.encode());
  assert.equal(kernels(g).map((k) => k.problem.spec), ['matmul 4x6x8']);
  assert.equal(hostKinds(g), ['add']);
});

test('a second per-channel Add after bias and relu is not a second bias', async () => {
  const g = await afterConv((b, conv) => b.g.node('Add', 'add2', [b.g.node('Relu', 'relu', [b.g.node('Add', 'add1', [conv, b.weight('c1', [5, 1, 1])])]), b.weight('c2', [5, 1, 1])]));
  assert.equal(kernels(g).map((k) => k.problem.spec), ['conv2d n1 c4 h6 w6 k5 r3 s3 stride1 pad1 +bias +relu']);
  assert.equal(hostKinds(g), ['add']);
});

test.run();
