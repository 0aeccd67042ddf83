/**
 * ONNX Runtime as a measured peer: the one-node models it runs compute what looptune's reference
 * interpreter computes (matmul; conv2d at strides 1 and 2, grouped, depthwise and dilated; conv1d;
 * max pools of every rank, strided and dilated, bit for bit),
 * the check would catch a wrong result,
 * and the ModelProto survives an encode/decode round trip. No timings are asserted.
 */
import * as ort from 'onnxruntime-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import { elementCount, type Problem } from '../../ir/problem.ts';
import { parseProblem } from '../../ir/spec.ts';
import { ATTRIBUTE_TYPE, decodeModel, encodeModel, TENSOR_DATA_TYPE } from '../../ir/model/onnx-proto.ts';
import { onnxLayerFor } from '../../bench/peers/onnx-layers.ts';
import {
  compareWithInterpreter, onnxRuntimeInputs, onnxRuntimeSessionOptions, runOnnxLayer, timeOnnxRuntime,
} from '../../bench/peers/onnxruntime.ts';

/** ONNX Runtime's output for the problem's seeded inputs, with those inputs. */
async function runOnOrt(problem: Problem): Promise<{ inputs: Float32Array[]; output: Float32Array }> {
  const inputs = onnxRuntimeInputs(problem);
  const layer = onnxLayerFor(problem, inputs[1]);
  const session = await ort.InferenceSession.create(layer.bytes, onnxRuntimeSessionOptions(1));
  const output = new Float32Array(elementCount(problem.tensors[0]!)).fill(Number.NaN);
  try {
    await runOnnxLayer(session, layer, inputs[0]!, output);
  } finally {
    await session.release();
  }
  return { inputs, output };
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
  const graph = decodeModel(layer.bytes).graph!;
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
  const layer = onnxLayerFor(problem, weights);
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
  const graph = decodeModel(onnxLayerFor(problem, weights).bytes).graph!;
  const attr = Object.fromEntries(graph.node[0]!.attribute.map((a) => [a.name, a]));
  assert.is(attr.group!.i, 2);
  assert.equal(attr.dilations!.ints, [3, 3]);
  assert.equal(attr.strides!.ints, [2, 2]);
  assert.equal(attr.kernel_shape!.ints, [3, 2]);
  assert.equal(graph.initializer[0]!.dims, [4, 4, 3, 2]);
  assert.equal(graph.output[0]!.type!.tensorType!.shape!.dim.map((d) => d.dimValue), [1, 4, 4, 6]);
  const conv1d = decodeModel(onnxLayerFor(parseProblem('conv1d n1 c4 w20 k6 s3 stride1'), new Float32Array(6 * 4 * 3)).bytes).graph!;
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
  const layer = onnxLayerFor(problem, new Float32Array(5 * 6));
  const graph = decodeModel(layer.bytes).graph!;
  assert.is(graph.node[0]!.opType, 'MatMul');
  assert.equal(graph.node[0]!.input, ['A', 'B']);
  assert.equal(graph.initializer[0]!.dims, [5, 6]);
  assert.equal(layer.input, { name: 'A', dims: [4, 5] });
  assert.equal(layer.output, { name: 'C', dims: [4, 6] });
});

test('other ops and wrong weight sizes are refused with one line', () => {
  assert.throws(() => onnxLayerFor(parseProblem('add 4x4'), new Float32Array(16)), (e: unknown) =>
    e instanceof LoopTuneError && /no ONNX model for add \(only matmul, conv1d\/2d\/3d and maxpool1d\/2d\/3d\)/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => onnxLayerFor(parseProblem('matmul 4x6x5'), new Float32Array(7)), (e: unknown) =>
    e instanceof LoopTuneError && /B of matmul 4x6x5 has 30 elements, got 7/.test(e.message));
});

test('bytes that are not a ModelProto fail with one line', () => {
  assert.throws(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff])), (e: unknown) =>
    e instanceof LoopTuneError && e.message.startsWith('not an ONNX model'));
});

test('a timing names the library and threads, best no slower than median', async () => {
  const t = await timeOnnxRuntime(parseProblem('matmul 8x8x8'), { threads: 1, minSeconds: 0 });
  assert.match(t.library, /^ONNX Runtime 1\.30\.\d+ \(MLAS\)$/);
  assert.is(t.threads, 1);
  assert.ok(t.bestSeconds > 0 && t.bestSeconds <= t.medianSeconds);
  assert.ok(Math.abs(t.gflops - 1024 / t.bestSeconds / 1e9) < 1e-9 * t.gflops);
});

test.run();
