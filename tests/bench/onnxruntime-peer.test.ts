/**
 * ONNX Runtime as a measured peer: the models it runs compute what looptune's reference
 * interpreter computes (matmul; conv2d at strides 1 and 2, grouped, depthwise and dilated; conv1d;
 * max pools of every rank, strided and dilated, bit for bit; padded convs and pools, average and
 * global average pools, outpad outputs, fused epilogues), the graphs hold the ops a deployed model
 * has (Conv with its bias, then Relu; BERT's erf GELU, which ONNX Runtime fuses), the check would
 * catch a wrong result, and the ModelProto survives an encode/decode round trip. No timings are asserted.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { parseProblem } from '../../ir/spec.ts';
import {
  ATTRIBUTE_TYPE, decodeModel, encodeModel, TENSOR_DATA_TYPE, type GraphProto, type ModelProto,
} from '../../ir/model/onnx-proto.ts';
import { onnxLayerFor, type OnnxLayer } from '../../bench/peers/onnx-layers.ts';
import {
  compareWithInterpreter, onnxLayerOf, onnxRuntimeInputs, onnxRuntimeSessionOptions, runOnnxLayer, timeOnnxRuntime,
} from '../../bench/peers/onnxruntime.ts';

/** ONNX Runtime's output for `bytes` (default: the problem's layer) on the problem's seeded inputs, with those inputs. */
async function runOnOrt(problem: Problem, edit?: (model: ModelProto) => void): Promise<{ inputs: Float32Array[]; output: Float32Array }> {
  const inputs = onnxRuntimeInputs(problem);
  const layer = onnxLayerOf(problem, inputs);
  let bytes = layer.bytes;
  if (edit) {
    const model = decodeModel(bytes);
    edit(model);
    bytes = encodeModel(model);
  }
  const session = await ort.InferenceSession.create(bytes, onnxRuntimeSessionOptions(1));
  const output = new Float32Array(layer.output.dims.reduce((a, b) => a * b, 1)).fill(Number.NaN);
  try {
    await runOnnxLayer(session, layer, inputs, output);
  } finally {
    await session.release();
  }
  return { inputs, output };
}

/** The layer's graph as decoded from its bytes. */
function graphOf(layer: OnnxLayer): GraphProto {
  return decodeModel(layer.bytes).graph!;
}

/** Attributes of a node by name: ints where it has them, else the int. */
function attributes(node: GraphProto['node'][number]): Record<string, number | number[]> {
  return Object.fromEntries(node.attribute.map((a) => [a.name, a.type === ATTRIBUTE_TYPE.INTS ? a.ints : a.i]));
}

/** Op types of the graph ONNX Runtime runs after its optimizer (level 'all'), from its saved optimized model. */
async function optimizedOps(layer: OnnxLayer): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'looptune-ort-'));
  try {
    const path = join(dir, 'optimized.onnx');
    // severity 3 (errors only): saving an NCHWc-optimized model warns that it is host specific
    const session = await ort.InferenceSession.create(layer.bytes, { ...onnxRuntimeSessionOptions(1), optimizedModelFilePath: path, logSeverityLevel: 3 });
    await session.release();
    return decodeModel(readFileSync(path)).graph!.node.map((n) => n.opType);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const spec of [
  'matmul 7x5x9',
  'conv2d n2 c3 h9 w11 k4 r3 s2 stride1',
  'conv2d n1 c5 h10 w9 k3 r3 s3 stride2',
  // issue 16: depthwise (stride 1 and 2, channel multiplier 2), grouped, dilated, and all at once
  'conv2d n1 c6 h9 w10 k6 r3 s3 stride1 groups6',
  'conv2d n1 c4 h11 w11 k8 r3 s3 stride2 groups4',
  'conv2d n2 c6 h8 w9 k4 r3 s2 stride1 groups2',
  'conv2d n1 c3 h12 w11 k4 r3 s3 stride1 dilation2',
  'conv2d n1 c8 h13 w14 k4 r3 s2 stride2 groups2 dilation3',
  'conv1d n1 c4 w20 k6 s3 stride2 groups2 dilation2',
  // issue 16: max pools (ResNet's 3x3/2 on a small input, stride 1, odd sizes, dilated, 1-d, 3-d)
  'maxpool2d n1 c4 h13 w13 r3 s3 stride2',
  'maxpool2d n2 c3 h9 w11 r2 s3 stride1',
  'maxpool2d n1 c2 h12 w11 r3 s2 stride2 dilation2',
  'maxpool1d n2 c3 w17 s3 stride2',
  'maxpool3d n1 c2 d6 h7 w8 t2 r3 s2 stride2',
  // padded convs: symmetric, asymmetric (ONNX order, begins then ends), stride 2, grouped, depthwise, 1-d, 3-d
  'conv2d n1 c3 h9 w9 k4 r3 s3 stride1 pad1',
  'conv2d n1 c3 h8 w9 k4 r3 s3 stride1 pad0,1,2,1',
  'conv2d n1 c5 h10 w9 k3 r3 s3 stride2 pad1',
  'conv2d n2 c6 h8 w9 k4 r3 s2 stride1 groups2 pad1,0,1,1',
  'conv2d n1 c4 h11 w11 k8 r3 s3 stride2 groups4 pad1',
  'conv2d n1 c3 h12 w11 k4 r3 s3 stride1 dilation2 pad2',
  'conv1d n1 c4 w20 k6 s3 stride2 groups2 pad1,2',
  'conv3d n1 c2 d5 h6 w5 k3 t3 r3 s3 stride1 pad1',
  // fused epilogues: ResNet's conv +bias +relu, MobileNet's relu6, a residual block's end, BERT's GELU
  'conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 +bias +relu',
  'conv2d n1 c4 h9 w9 k8 r3 s3 stride2 groups4 pad1 +bias +relu6',
  'conv2d n1 c4 h7 w7 k4 r3 s3 stride1 pad1 +bias +residual +relu',
  'conv2d n1 c4 h7 w7 k4 r1 s1 stride1 +residual +bias',
  'conv2d n1 c3 h8 w8 k5 r3 s3 stride1 +relu +bias +sigmoid',
  'conv2d n1 c3 h8 w8 k5 r3 s3 stride1 pad1 +bias +clip-1,2.5 +scale0.5',
  'matmul 33x17x9 +bias +gelu',
  'matmul 7x5x9 +sigmoid',
  'matmul 12x10x7 +residual +gelu +relu',
  // average pools (count_include_pad=1: the border counts in the divisor), global, padded max pools
  'avgpool2d n1 c4 h9 w9 r3 s3 stride2 pad1',
  'avgpool2d n1 c3 h10 w9 r2 s3 stride1 pad0,1,1,2 +relu',
  'avgpool2d n1 c2 h11 w10 r3 s2 stride2 dilation2 pad1',
  'avgpool1d n2 c3 w17 s3 stride2 pad1 +scale0.5',
  'avgpool3d n1 c2 d6 h7 w8 t2 r3 s2 stride2 pad1',
  'globalavgpool n1 c16 h7 w7',
  'globalavgpool n2 c5 h4 w6 +sigmoid',
  'maxpool2d n1 c4 h12 w12 r3 s3 stride2 pad1',
  'maxpool2d n1 c3 h9 w10 r3 s2 stride1 pad0,1,2,1 +relu',
  'maxpool1d n1 c3 w15 s3 stride2 pad1 +clip-0.5,0.5',
  'maxpool2d n1 c4 h12 w12 r3 s3 stride2 pad1 +sigmoid',
  'maxpool2d n1 c2 h8 w8 r2 s2 stride2 +residual',
  // outputs written inside a border: ORT's result is the interior
  'conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu',
  'maxpool2d n1 c4 h12 w12 r3 s3 stride2 pad1 outpad1',
  'avgpool2d n1 c3 h8 w8 r2 s2 stride2 outpad2',
]) {
  test(`ONNX Runtime computes what the interpreter computes: ${spec}`, async () => {
    const problem = parseProblem(spec);
    const { inputs, output } = await runOnOrt(problem);
    const check = compareWithInterpreter(problem, inputs, output);
    assert.ok(check.ok, `max error ${check.maxError} > ${check.tolerance}`);
  });
}

test('the check against the interpreter catches a wrong result', async () => {
  const problem = parseProblem('conv2d n1 c5 h10 w9 k3 r3 s3 stride2');
  const { inputs, output } = await runOnOrt(problem);
  // other weights, and one element off by a thousandth, must both be reported
  assert.not.ok(compareWithInterpreter(problem, [inputs[0]!, inputs[1]!.map((x) => -x)], output).ok);
  const offByOne = output.slice();
  offByOne[offByOne.length - 1]! *= 1.001;
  assert.not.ok(compareWithInterpreter(problem, inputs, offByOne).ok);
});

test('a max pool is MaxPool(I) with its window, strides, dilations and no pads; the check is exact', async () => {
  const problem = parseProblem('maxpool2d n1 c2 h12 w11 r3 s2 stride2 dilation2');
  const layer = onnxLayerFor(problem);
  const graph = graphOf(layer);
  assert.is(graph.node[0]!.opType, 'MaxPool');
  assert.equal(graph.node[0]!.input, ['I']);
  assert.equal(graph.initializer, []);
  const attr = Object.fromEntries(graph.node[0]!.attribute.map((a) => [a.name, a.ints.length > 0 ? a.ints : a.i]));
  assert.equal(attr, { kernel_shape: [3, 2], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [2, 2], ceil_mode: 0 });
  assert.equal(layer.output, { name: 'O', dims: [1, 2, 4, 5] });
  // windows of 2: the seeded input has windows of negative numbers only, so starting from 0 would be caught
  const pairs = parseProblem('maxpool1d n1 c4 w31 s2 stride2');
  const { inputs, output } = await runOnOrt(pairs);
  assert.ok(output.some((x) => x < 0));
  assert.ok(compareWithInterpreter(pairs, inputs, output).ok);
  const clamped = output.map((x) => Math.max(x, 0));
  assert.not.ok(compareWithInterpreter(pairs, inputs, clamped).ok);
  const nudged = output.slice();
  nudged[3] = Math.fround(nudged[3]! * (1 + 2 ** -20));
  assert.not.ok(compareWithInterpreter(pairs, inputs, nudged).ok, 'a max pool must match bit for bit');
  assert.throws(() => onnxLayerFor(parseProblem('conv2d n1 c2 h5 w5 k2 r2 s2 stride1')), (e: unknown) =>
    e instanceof LoopTuneError && /W of conv2d .* has 16 elements, got none/.test(e.message));
});

test('the encoded model decodes to the same graph, and re-encodes to the same bytes', () => {
  const problem = parseProblem('conv2d n1 c2 h7 w8 k3 r3 s2 stride2');
  const [, weights] = onnxRuntimeInputs(problem);
  const layer = onnxLayerFor(problem, { weights });
  const model = decodeModel(layer.bytes);
  assert.is(model.irVersion, 8);
  assert.equal(model.opsetImport.map((o) => [o.domain, o.version]), [['', 17]]);
  const graph = model.graph!;
  assert.is(graph.node.length, 1);
  const node = graph.node[0]!;
  assert.is(node.opType, 'Conv');
  assert.equal(node.input, ['I', 'W']);
  assert.equal(node.output, ['O']);
  const attr = Object.fromEntries(node.attribute.map((a) => [a.name, a]));
  assert.equal(attr.strides!.ints, [2, 2]);
  assert.is(attr.strides!.type, ATTRIBUTE_TYPE.INTS);
  assert.equal(attr.kernel_shape!.ints, [3, 2]);
  assert.equal(attr.pads!.ints, [0, 0, 0, 0]);
  assert.is(attr.group!.i, 1);
  assert.equal(graph.input.map((v) => v.name), ['I']);
  assert.equal(graph.input[0]!.type!.tensorType!.shape!.dim.map((d) => d.dimValue), [1, 2, 7, 8]);
  assert.equal(graph.output[0]!.type!.tensorType!.shape!.dim.map((d) => d.dimValue), [1, 3, 3, 4]);
  const w = graph.initializer[0]!;
  assert.is(w.name, 'W');
  assert.is(w.dataType, TENSOR_DATA_TYPE.FLOAT);
  assert.equal(w.dims, [3, 2, 3, 2]);
  assert.equal(new Float32Array(Uint8Array.from(w.rawData).buffer), weights);
  assert.equal(encodeModel(model), layer.bytes);
});

test('groups and dilations reach the Conv node, weights [K, C/G, R, S]', () => {
  const problem = parseProblem('conv2d n1 c8 h13 w14 k4 r3 s2 stride2 groups2 dilation3');
  const [, weights] = onnxRuntimeInputs(problem);
  const graph = graphOf(onnxLayerFor(problem, { weights }));
  const attr = Object.fromEntries(graph.node[0]!.attribute.map((a) => [a.name, a]));
  assert.is(attr.group!.i, 2);
  assert.equal(attr.dilations!.ints, [3, 3]);
  assert.equal(attr.strides!.ints, [2, 2]);
  assert.equal(attr.kernel_shape!.ints, [3, 2]);
  assert.equal(graph.initializer[0]!.dims, [4, 4, 3, 2]);
  assert.equal(graph.output[0]!.type!.tensorType!.shape!.dim.map((d) => d.dimValue), [1, 4, 4, 6]);
  const conv1d = graphOf(onnxLayerFor(parseProblem('conv1d n1 c4 w20 k6 s3 stride1'), { weights: new Float32Array(6 * 4 * 3) }));
  assert.equal(Object.fromEntries(conv1d.node[0]!.attribute.map((a) => [a.name, a.ints.length > 0 ? a.ints : a.i])),
    { kernel_shape: [3], strides: [1], pads: [0, 0], dilations: [1], group: 1 });
});

test('the check catches an ORT result computed without the groups', async () => {
  // the depthwise layer's weights read as an ungrouped conv over the same channels: a different result
  const problem = parseProblem('conv2d n1 c4 h11 w11 k8 r3 s3 stride2 groups4');
  const { inputs, output } = await runOnOrt(problem);
  assert.ok(compareWithInterpreter(problem, inputs, output).ok);
  const ungrouped = parseProblem('conv2d n1 c4 h11 w11 k8 r3 s3 stride2');
  const wrong = await runOnOrt(ungrouped);
  assert.not.ok(compareWithInterpreter(problem, inputs, wrong.output).ok);
});

test('a matmul model is MatMul(A input, B initializer) with the problem shapes', () => {
  const problem = parseProblem('matmul 4x6x5');
  const layer = onnxLayerFor(problem, { weights: new Float32Array(5 * 6) });
  const graph = graphOf(layer);
  assert.is(graph.node[0]!.opType, 'MatMul');
  assert.equal(graph.node[0]!.input, ['A', 'B']);
  assert.equal(graph.initializer[0]!.dims, [5, 6]);
  assert.equal(layer.inputs, [{ name: 'A', dims: [4, 5], tensor: 1 }]);
  assert.equal(layer.output, { name: 'C', dims: [4, 6] });
});

test('other ops and wrong weight sizes are refused with one line', () => {
  assert.throws(() => onnxLayerFor(parseProblem('add 4x4'), { weights: new Float32Array(16) }), (e: unknown) =>
    e instanceof LoopTuneError && /no ONNX model for add \(only matmul, conv1d\/2d\/3d, maxpool1d\/2d\/3d and avgpool1d\/2d\/3d\)/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => onnxLayerFor(parseProblem('matmul 4x6x5'), { weights: new Float32Array(7) }), (e: unknown) =>
    e instanceof LoopTuneError && /B of matmul 4x6x5 has 30 elements, got 7/.test(e.message));
  assert.throws(() => onnxLayerFor(parseProblem('matmul 4x6x5 +bias'), { weights: new Float32Array(30) }), (e: unknown) =>
    e instanceof LoopTuneError && /bias of matmul 4x6x5 \+bias has 6 elements, got none/.test(e.message));
});

test('bytes that are not a ModelProto fail with one line', () => {
  assert.throws(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff])), (e: unknown) =>
    e instanceof LoopTuneError && e.message.startsWith('not an ONNX model'));
});

test('a padded conv reads its unpadded input with ONNX pads, begins then ends', () => {
  const problem = parseProblem('conv2d n1 c3 h8 w9 k4 r3 s3 stride1 pad0,1,2,1');
  const layer = onnxLayerOf(problem, onnxRuntimeInputs(problem));
  const graph = graphOf(layer);
  assert.equal(graph.node.map((n) => n.opType), ['Conv']);
  assert.equal(attributes(graph.node[0]!).pads, [0, 1, 2, 1]);
  // looptune stores I as 1x3x10x11; the graph input is the data
  assert.equal(layer.inputs, [{ name: 'I', dims: [1, 3, 8, 9], tensor: 1 }]);
  assert.equal(graph.input[0]!.type!.tensorType!.shape!.dim.map((d) => d.dimValue), [1, 3, 8, 9]);
  assert.equal(layer.output, { name: 'O', dims: [1, 4, 8, 9] });
});

test('conv +bias +relu is Conv(I, W, bias) then Relu, which ONNX Runtime fuses', async () => {
  const problem = parseProblem('conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 +bias +relu');
  const layer = onnxLayerOf(problem, onnxRuntimeInputs(problem));
  const graph = graphOf(layer);
  assert.equal(graph.node.map((n) => [n.opType, n.input]), [['Conv', ['I', 'W', 'bias']], ['Relu', [graph.node[0]!.output[0]!]]]);
  assert.equal(graph.node[1]!.output, ['O']);
  assert.equal(graph.initializer.map((t) => [t.name, t.dims]), [['W', [8, 8, 3, 3]], ['bias', [8]]]);
  assert.equal(attributes(graph.node[0]!).pads, [1, 1, 1, 1]);
  const ops = await optimizedOps(layer);
  assert.not.ok(ops.includes('Relu'), `Relu left unfused: ${ops.join(', ')}`);
});

test('a bias after another op is an Add broadcast along the channel; relu6 is Clip(0, 6)', () => {
  const late = parseProblem('conv2d n1 c3 h8 w8 k5 r3 s3 stride1 +relu +bias +sigmoid');
  const graph = graphOf(onnxLayerOf(late, onnxRuntimeInputs(late)));
  assert.equal(graph.node.map((n) => n.opType), ['Conv', 'Relu', 'Add', 'Sigmoid']);
  assert.equal(graph.node[0]!.input, ['I', 'W']);
  assert.equal(graph.node[2]!.input[1], 'bias');
  assert.equal(graph.initializer.find((t) => t.name === 'bias')!.dims, [5, 1, 1]);
  const six = parseProblem('conv2d n1 c4 h9 w9 k8 r3 s3 stride2 groups4 pad1 +bias +relu6');
  const clip = graphOf(onnxLayerOf(six, onnxRuntimeInputs(six)));
  assert.equal(clip.node.map((n) => n.opType), ['Conv', 'Clip']);
  const [, min, max] = clip.node[1]!.input;
  const scalar = (name: string | undefined) => {
    const t = clip.initializer.find((i) => i.name === name)!;
    assert.equal(t.dims, [], 'Clip takes rank-0 min and max');
    return new Float32Array(Uint8Array.from(t.rawData).buffer)[0];
  };
  assert.is(scalar(min), 0);
  assert.is(scalar(max), 6);
  assert.is(attributes(clip.node[0]!).group, 4);
});

test('matmul +bias +gelu is MatMul, Add(bias[N]) and the erf GELU as BERT exports it; ONNX Runtime fuses it into Gelu', async () => {
  const problem = parseProblem('matmul 33x17x9 +bias +gelu');
  const layer = onnxLayerOf(problem, onnxRuntimeInputs(problem));
  const graph = graphOf(layer);
  assert.equal(graph.node.map((n) => n.opType), ['MatMul', 'Add', 'Div', 'Erf', 'Add', 'Mul', 'Mul']);
  const [, add, div, erf, one, times, half] = graph.node;
  assert.equal(add!.input, [graph.node[0]!.output[0]!, 'bias']);
  assert.equal(graph.initializer.find((t) => t.name === 'bias')!.dims, [17]);
  const x = add!.output[0]!;
  const value = (name: string | undefined) =>
    new Float32Array(Uint8Array.from(graph.initializer.find((t) => t.name === name)!.rawData).buffer)[0];
  // x / sqrt2 → erf → + 1 → * x → * 0.5
  assert.is(div!.input[0], x);
  assert.is(value(div!.input[1]), Math.fround(Math.SQRT2));
  assert.equal(erf!.input, [div!.output[0]!]);
  assert.is(value(one!.input[1]), 1);
  assert.equal(times!.input, [x, one!.output[0]!]);
  assert.is(value(half!.input[1]), 0.5);
  assert.equal(half!.output, ['C']);
  const ops = await optimizedOps(layer);
  assert.ok(ops.some((op) => op.endsWith('Gelu')) && !ops.includes('Erf'), `GELU not fused: ${ops.join(', ')}`);
});

test('a residual is a second graph input, fed each run', async () => {
  const problem = parseProblem('conv2d n1 c4 h7 w7 k4 r3 s3 stride1 pad1 +bias +residual +relu');
  const inputs = onnxRuntimeInputs(problem);
  const layer = onnxLayerOf(problem, inputs);
  assert.equal(layer.inputs, [{ name: 'I', dims: [1, 4, 7, 7], tensor: 1 }, { name: 'R', dims: [1, 4, 7, 7], tensor: 4 }]);
  const graph = graphOf(layer);
  assert.equal(graph.input.map((v) => v.name), ['I', 'R']);
  assert.equal(graph.node.map((n) => n.opType), ['Conv', 'Add', 'Relu']);
  assert.is(graph.node[1]!.input[1], 'R');
  assert.not.ok(graph.initializer.some((t) => t.name === 'R'));
  // another residual must change the result
  const { output } = await runOnOrt(problem);
  assert.ok(compareWithInterpreter(problem, inputs, output).ok);
  const other = inputs.slice();
  other[3] = other[3]!.map((r) => r + 0.25);
  assert.not.ok(compareWithInterpreter(problem, other, output).ok);
  const t = await timeOnnxRuntime(problem, { threads: 1, minSeconds: 0 });
  assert.ok(t.bestSeconds > 0);
});

test('the check catches a missing epilogue op', async () => {
  for (const [spec, without] of [
    ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 +bias +relu', 'conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 +bias'],
    ['conv2d n1 c4 h7 w7 k4 r3 s3 stride1 pad1 +bias +residual', 'conv2d n1 c4 h7 w7 k4 r3 s3 stride1 pad1 +bias'],
    ['matmul 7x5x9 +bias +gelu', 'matmul 7x5x9 +bias'],
    ['avgpool2d n1 c4 h9 w9 r3 s3 stride2 pad1 +scale0.5', 'avgpool2d n1 c4 h9 w9 r3 s3 stride2 pad1'],
  ] as const) {
    const problem = parseProblem(spec);
    const wrong = await runOnOrt(parseProblem(without));
    assert.not.ok(compareWithInterpreter(problem, onnxRuntimeInputs(problem), wrong.output).ok, `${without} passed as ${spec}`);
  }
  // after a max pool, an inexact op is checked with a tolerance, still tight
  const sig = parseProblem('maxpool2d n1 c4 h12 w12 r3 s3 stride2 pad1 +sigmoid');
  const { inputs, output } = await runOnOrt(sig);
  assert.ok(compareWithInterpreter(sig, inputs, output).ok);
  const nudged = output.slice();
  nudged[5]! += 1e-4;
  assert.not.ok(compareWithInterpreter(sig, inputs, nudged).ok);
});

test('an average pool is AveragePool with count_include_pad=1 and its pads, dividing by the whole window', async () => {
  const problem = parseProblem('avgpool2d n1 c4 h9 w9 r3 s3 stride2 pad1');
  const layer = onnxLayerFor(problem);
  const graph = graphOf(layer);
  // the pool's own 1/9 is AveragePool's division, not a Mul
  assert.equal(graph.node.map((n) => n.opType), ['AveragePool']);
  assert.equal(attributes(graph.node[0]!), { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1, ceil_mode: 0 });
  assert.equal(graph.initializer, []);
  assert.equal(layer.output, { name: 'O', dims: [1, 4, 5, 5] });
  // count_include_pad=0 divides the border windows by fewer points: looptune's problem is not that
  const excluding = await runOnOrt(problem, (m) => {
    m.graph!.node[0]!.attribute.find((a) => a.name === 'count_include_pad')!.i = 0;
  });
  assert.not.ok(compareWithInterpreter(problem, excluding.inputs, excluding.output).ok);
  // a user's scale after the pool's is a Mul; a dilated average pool needs opset 19
  const scaled = graphOf(onnxLayerFor(parseProblem('avgpool1d n2 c3 w17 s3 stride2 pad1 +scale0.5')));
  assert.equal(scaled.node.map((n) => n.opType), ['AveragePool', 'Mul']);
  const dilated = decodeModel(onnxLayerFor(parseProblem('avgpool2d n1 c2 h11 w10 r3 s2 stride2 dilation2 pad1')).bytes);
  assert.equal(dilated.opsetImport.map((o) => o.version), [19]);
  assert.equal(attributes(dilated.graph!.node[0]!).dilations, [2, 2]);
});

test('a global average pool is GlobalAveragePool; a padded whole-input window is not', () => {
  const layer = onnxLayerFor(parseProblem('globalavgpool n1 c16 h7 w7'));
  const graph = graphOf(layer);
  assert.equal(graph.node.map((n) => [n.opType, n.input, n.attribute.length]), [['GlobalAveragePool', ['I'], 0]]);
  assert.equal(layer.output, { name: 'O', dims: [1, 16, 1, 1] });
  assert.equal(graphOf(onnxLayerFor(parseProblem('avgpool2d n1 c2 h3 w3 r3 s3 stride1 pad1'))).node[0]!.opType, 'AveragePool');
});

test("ResNet's stem max pool: MaxPool with pads 1 on the unpadded input", () => {
  const layer = onnxLayerFor(parseProblem('maxpool2d n1 c4 h12 w12 r3 s3 stride2 pad1'));
  const graph = graphOf(layer);
  assert.equal(attributes(graph.node[0]!), { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], ceil_mode: 0 });
  assert.equal(layer.inputs, [{ name: 'I', dims: [1, 4, 12, 12], tensor: 1 }]);
  assert.equal(layer.output, { name: 'O', dims: [1, 4, 6, 6] });
});

test('an outpad output is compared at its interior: ORT returns the data shape', async () => {
  const problem = parseProblem('conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu');
  const layer = onnxLayerOf(problem, onnxRuntimeInputs(problem));
  // looptune stores O as 1x8x11x11
  assert.equal(problem.tensors[0]!.shape, [1, 8, 11, 11]);
  assert.equal(layer.output, { name: 'O', dims: [1, 8, 9, 9] });
  const { inputs, output } = await runOnOrt(problem);
  assert.ok(compareWithInterpreter(problem, inputs, output).ok);
  // the same numbers without the border: the same check passes; a storage-sized array is refused
  const plain = parseProblem('conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 +bias +relu');
  assert.ok(compareWithInterpreter(plain, inputs, output).ok);
  assert.not.ok(compareWithInterpreter(problem, inputs, new Float32Array(8 * 11 * 11)).ok);
  const shifted = output.slice(1);
  assert.not.ok(compareWithInterpreter(problem, inputs, Float32Array.of(...shifted, 0)).ok);
});

test('a timing names the library and threads, best no slower than median', async () => {
  const t = await timeOnnxRuntime(parseProblem('matmul 8x8x8'), { threads: 1, minSeconds: 0 });
  assert.match(t.library, /^ONNX Runtime 1\.30\.\d+ \(MLAS\)$/);
  assert.is(t.threads, 1);
  assert.ok(t.bestSeconds > 0 && t.bestSeconds <= t.medianSeconds);
  assert.ok(Math.abs(t.gflops - 1024 / t.bestSeconds / 1e9) < 1e-9 * t.gflops);
});

test.run();
