/**
 * The zoo's test models (ir/model/zoo): their structure against the architectures' papers and
 * torchvision (op counts, strides, groups, residuals, the shape-folding chain, parameter counts)
 * read back from the encoded bytes, and every model run once by ONNX Runtime (the oracle an
 * importer is checked against): right output dims, finite, not constant, at a sane scale; the
 * symbolic-batch models at batch 1 and 2 with the same image giving the same logits.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import { LoopTuneError } from '../../../ir/errors.ts';
import { decodeModel, type ModelProto, type NodeProto, type ValueInfoProto } from '../../../ir/model/onnx-proto.ts';
import { OnnxGraphBuilder, WeightRandom } from '../../../ir/model/zoo/builder.ts';
import { ZOO_NAMES, zooModel, zooSignature, type ZooName } from '../../../ir/model/zoo/index.ts';

const FULL: readonly ZooName[] = ['resnet18', 'resnet50', 'mobilenetv2', 'bert-layer'];
const TINY: readonly ZooName[] = ['resnet18-tiny', 'resnet50-tiny', 'mobilenetv2-tiny', 'bert-layer-tiny'];

/** Decoded models, built once per test file (the full ones take about a second each). */
const built = new Map<ZooName, { bytes: Uint8Array; model: ModelProto }>();
function zoo(name: ZooName) {
  let entry = built.get(name);
  if (!entry) {
    const bytes = zooModel(name);
    entry = { bytes, model: decodeModel(bytes) };
    built.set(name, entry);
  }
  return entry;
}

const nodes = (name: ZooName): NodeProto[] => zoo(name).model.graph!.node;
const ofType = (name: ZooName, opType: string) => nodes(name).filter((n) => n.opType === opType);
const attr = (node: NodeProto, key: string) => node.attribute.find((a) => a.name === key);
const intsAttr = (node: NodeProto, key: string) => attr(node, key)?.ints ?? [];
const strideOf = (conv: NodeProto) => intsAttr(conv, 'strides')[0] ?? 1;
const kernelOf = (conv: NodeProto) => intsAttr(conv, 'kernel_shape')[0];
const groupOf = (conv: NodeProto) => attr(conv, 'group')?.i ?? 1;

/** Dims of each initializer by name. */
function initializerDims(name: ZooName): Map<string, number[]> {
  return new Map(zoo(name).model.graph!.initializer.map((t) => [t.name, t.dims]));
}

/**
 * Learned parameters as torch counts them: every initializer's elements except batch norms'
 * running statistics (buffers, not parameters) and rank-0 constants (Clip's bounds, divisors).
 */
function parameterCount(name: ZooName): number {
  const buffers = new Set(ofType(name, 'BatchNormalization').flatMap((n) => n.input.slice(3)));
  return zoo(name).model.graph!.initializer
    .filter((t) => t.dims.length > 0 && !buffers.has(t.name))
    .reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
}

/** The node producing `value`, or undefined for graph inputs and initializers. */
function producer(name: ZooName, value: string): NodeProto | undefined {
  return nodes(name).find((n) => n.output.includes(value));
}
const consumers = (name: ZooName, value: string) => nodes(name).filter((n) => n.input.includes(value));

async function runOnnxRuntime(name: ZooName, batch: number, data: Float32Array): Promise<{ dims: readonly number[]; data: Float32Array }> {
  const { input, output } = zooSignature(name);
  const session = await ort.InferenceSession.create(zoo(name).bytes, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  try {
    const dims = input.dims.map((d) => (typeof d === 'string' ? batch : d));
    const result = await session.run({ [input.name]: new ort.Tensor('float32', data, dims) });
    const tensor = result[output.name]!;
    return { dims: tensor.dims, data: tensor.data as Float32Array };
  } finally {
    await session.release();
  }
}

const elementsOf = (dims: readonly (number | string)[], batch: number) => dims.reduce<number>((a, d) => a * (typeof d === 'string' ? batch : d), 1);

/** Output checks of every run: dims as declared, finite, not all equal, standard deviation neither vanished nor exploded. */
function assertSaneOutput(name: ZooName, batch: number, out: { dims: readonly number[]; data: Float32Array }): void {
  const want = zooSignature(name).output.dims.map((d) => (typeof d === 'string' ? batch : d));
  assert.equal([...out.dims], want, `${name} output dims`);
  assert.ok(out.data.every(Number.isFinite), `${name}: non-finite output`);
  const mean = out.data.reduce((a, b) => a + b, 0) / out.data.length;
  const sd = Math.sqrt(out.data.reduce((a, b) => a + (b - mean) ** 2, 0) / out.data.length);
  assert.ok(sd > 0.01 && sd < 100, `${name}: output standard deviation ${sd}`);
}

test('every zoo model declares opset 17, IR version 8 and unique, non-empty node names', () => {
  for (const name of ZOO_NAMES) {
    const { model } = zoo(name);
    assert.is(model.irVersion, 8, name);
    assert.equal(model.opsetImport.map((o) => [o.domain, o.version]), [['', 17]], name);
    const names = model.graph!.node.map((n) => n.name);
    assert.ok(names.every((n) => n !== ''), `${name}: an unnamed node`);
    assert.is(new Set(names).size, names.length, `${name}: node names repeat`);
  }
});

test('the same name and seed give the same bytes, another seed other weights', () => {
  assert.equal(zooModel('resnet18-tiny', { seed: 1 }), zoo('resnet18-tiny').bytes);
  const other = decodeModel(zooModel('resnet18-tiny', { seed: 2 }));
  const a = zoo('resnet18-tiny').model.graph!.initializer[0]!, b = other.graph!.initializer[0]!;
  assert.is(a.name, b.name);
  assert.not.equal(a.rawData, b.rawData);
});

test('an unknown name or a bad seed fails with one line naming what is accepted', () => {
  const oneLine = (f: () => unknown, pattern: RegExp) => {
    try {
      f();
      assert.unreachable('no error');
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.match((e as Error).message, pattern);
      assert.not.match((e as Error).message, /\n/);
    }
  };
  oneLine(() => zooModel('resnet34' as ZooName), /unknown zoo model "resnet34" \(expected one of: resnet18, .*bert-layer-tiny\)/);
  oneLine(() => zooModel('resnet18-tiny', { seed: 1.5 }), /seed must be an integer in \[0, 2\^32\), got 1.5/);
  oneLine(() => zooModel('resnet18-tiny', { seed: -1 }), /seed must be an integer/);
});

test('the graph builder refuses a name used twice, an undefined input and an output that is no value', () => {
  const g = new OnnxGraphBuilder('probe');
  const x = g.input('x', ['N', 4]);
  g.node('Relu', 'relu', [x]);
  assert.throws(() => g.node('Relu', 'relu', [x], {}, 'other'), (e: Error) => e instanceof LoopTuneError && /two nodes are named relu/.test(e.message));
  assert.throws(() => g.node('Sigmoid', 'sigmoid', [x], {}, 'relu'), /the value relu is defined twice/);
  assert.throws(() => g.node('Add', 'add', [x, 'missing']), /node add \(Add\) reads missing, which no earlier node/);
  assert.throws(() => g.output('nothing', [1]), /graph output nothing is not a value/);
  assert.throws(() => g.initializer('w', [2, 3], new Float32Array(5)), /initializer w has 5 values for dims \[2, 3\]/);
});

test('weights: normal draws have the mean and deviation asked for, uniform ones stay in range', () => {
  const r = new WeightRandom(3);
  const x = r.normal(100_001, 0.5, 2);
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const sd = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length);
  assert.ok(Math.abs(mean - 2) < 0.01 && Math.abs(sd - 0.5) < 0.01, `mean ${mean}, sd ${sd}`);
  const u = r.uniform(10_000, 0.5, 1);
  assert.ok(u.every((v) => v >= 0.5 && v < 1) && Math.abs(u.reduce((a, b) => a + b, 0) / u.length - 0.75) < 0.01);
});

test('every file declares the signature zooSignature gives; image models [N,3,H,W] -> logits [N, classes], N symbolic', () => {
  const declared = (v: ValueInfoProto) => ({
    name: v.name,
    dims: v.type!.tensorType!.shape!.dim.map((d) => d.dimParam || d.dimValue!),
  });
  for (const name of ZOO_NAMES) {
    const graph = zoo(name).model.graph!;
    assert.equal({ input: declared(graph.input[0]!), output: declared(graph.output[0]!) }, zooSignature(name), name);
    assert.is(graph.input.length, 1, `${name} inputs`);
    assert.is(graph.output.length, 1, `${name} outputs`);
  }
  for (const name of ['resnet18', 'resnet50', 'mobilenetv2'] as const) {
    assert.equal(zooSignature(name), { input: { name: 'input', dims: ['N', 3, 224, 224] }, output: { name: 'logits', dims: ['N', 1000] } });
  }
  for (const name of ['resnet18-tiny', 'resnet50-tiny', 'mobilenetv2-tiny'] as const) {
    const { input, output } = zooSignature(name);
    assert.equal([input.name, input.dims[0], input.dims[1], output.name, output.dims[0]], ['input', 'N', 3, 'logits', 'N'], name);
  }
});

/**
 * ResNet structure (torchvision, v1.5): stem 7x7/2 pad 3 conv, BN, ReLU, 3x3/2 pad 1 max pool;
 * blocks of 2 (basic) or 3 (bottleneck) conv+BN, a downsample conv+BN in each stage's first block
 * (stages 2-4 for basic; all 4 for bottleneck, whose first stage widens 64 -> 256), Add then ReLU.
 */
function checkResNet(name: ZooName, blocks: number, convsPerBlock: number, downsamples: number): void {
  const convs = ofType(name, 'Conv');
  assert.is(convs.length, 1 + blocks * convsPerBlock + downsamples, `${name} Conv`);
  assert.is(ofType(name, 'BatchNormalization').length, convs.length, `${name} BatchNormalization`);
  assert.is(ofType(name, 'Relu').length, 1 + blocks * convsPerBlock, `${name} Relu`);
  assert.is(ofType(name, 'Add').length, blocks, `${name} residual Add`);
  for (const op of ['MaxPool', 'GlobalAveragePool', 'Flatten', 'Gemm']) assert.is(ofType(name, op).length, 1, `${name} ${op}`);
  const stem = convs[0]!;
  assert.equal([kernelOf(stem), strideOf(stem), intsAttr(stem, 'pads')], [7, 2, [3, 3, 3, 3]], `${name} stem`);
  const pool = ofType(name, 'MaxPool')[0]!;
  assert.equal([intsAttr(pool, 'kernel_shape'), intsAttr(pool, 'strides'), intsAttr(pool, 'pads')], [[3, 3], [2, 2], [1, 1, 1, 1]]);
  const downsample = convs.filter((c) => c.name.endsWith('downsample.0'));
  assert.is(downsample.length, downsamples, `${name} downsample convs`);
  assert.ok(downsample.every((c) => kernelOf(c) === 1), `${name}: a downsample is not 1x1`);
  // the stride-2 convs: the stem, one per later stage on the main path (a 3x3: v1.5) and its downsample
  const strided = convs.filter((c) => strideOf(c) === 2);
  assert.is(strided.length, 7, `${name} stride-2 convs`);
  assert.is(strided.filter((c) => kernelOf(c) === 3).length, 3, `${name} stride-2 3x3 convs`);
  // every residual Add: both inputs feature maps (no initializer), its output into a ReLU
  const weights = initializerDims(name);
  for (const add of ofType(name, 'Add')) {
    assert.ok(add.input.every((i) => !weights.has(i)), `${add.name} adds a constant`);
    assert.equal(consumers(name, add.output[0]!).map((n) => n.opType), ['Relu'], `${add.name} is not followed by a ReLU`);
  }
  const gemm = ofType(name, 'Gemm')[0]!;
  assert.is(attr(gemm, 'transB')?.i, 1);
  assert.is(gemm.output[0], 'logits');
}

test('resnet18 and resnet18-tiny: 20 convs incl. 3 downsample, 8 residual adds', () => {
  for (const name of ['resnet18', 'resnet18-tiny'] as const) checkResNet(name, 8, 2, 3);
  const d = initializerDims('resnet18');
  assert.equal(d.get('conv1.weight'), [64, 3, 7, 7]);
  assert.equal(d.get('layer2.0.downsample.0.weight'), [128, 64, 1, 1]);
  assert.equal(d.get('layer4.1.conv2.weight'), [512, 512, 3, 3]);
  assert.equal(d.get('fc.weight'), [1000, 512]);
});

test('resnet50: 53 convs incl. 4 downsample, 16 residual adds; resnet50-tiny: 2 bottlenecks a stage', () => {
  checkResNet('resnet50', 16, 3, 4);
  checkResNet('resnet50-tiny', 8, 3, 4);
  const d = initializerDims('resnet50');
  assert.equal(d.get('layer1.0.downsample.0.weight'), [256, 64, 1, 1]);
  assert.equal(d.get('layer3.5.conv3.weight'), [1024, 256, 1, 1]);
  assert.equal(d.get('layer4.0.conv2.weight'), [512, 512, 3, 3]);
  assert.equal(d.get('fc.weight'), [1000, 2048]);
});

/**
 * MobileNetV2 structure (Table 2: t,c,n,s = 1,16,1,1 / 6,24,2,2 / 6,32,3,2 / 6,64,4,2 / 6,96,3,1 /
 * 6,160,3,2 / 6,320,1,1): per block a depthwise 3x3 (group = its channels) with the block's stride,
 * an expansion 1x1 except in the t=1 block, a projection 1x1; ReLU6 (Clip 0..6) after the stem,
 * every expansion and every depthwise conv and the last 1x1; a residual Add in every block after a
 * stage's first except where the stage has one block.
 */
function checkMobileNetV2(name: ZooName, blocksPerStage: readonly number[]): void {
  const blocks = blocksPerStage.reduce((a, b) => a + b, 0);
  const residuals = blocksPerStage.reduce((a, n) => a + n - 1, 0);
  const convs = ofType(name, 'Conv');
  // stem + (expansion, depthwise, projection) per block - the t=1 block's expansion + last 1x1
  assert.is(convs.length, 1 + 3 * blocks - 1 + 1, `${name} Conv`);
  assert.is(ofType(name, 'BatchNormalization').length, convs.length, `${name} BatchNormalization`);
  const weights = initializerDims(name);
  const depthwise = convs.filter((c) => groupOf(c) > 1);
  assert.is(depthwise.length, blocks, `${name} depthwise convs`);
  for (const c of depthwise) {
    const [out, perGroup] = weights.get(c.input[1]!)!;
    assert.equal([groupOf(c), perGroup, kernelOf(c)], [out, 1, 3], `${c.name} is not a depthwise 3x3`);
  }
  // strides 2: the stem and the first depthwise conv of the four stride-2 stages
  assert.is(convs.filter((c) => strideOf(c) === 2).length, 5, `${name} stride-2 convs`);
  assert.is(depthwise.filter((c) => strideOf(c) === 2).length, 4, `${name} stride-2 depthwise convs`);
  const clips = ofType(name, 'Clip');
  assert.is(clips.length, 1 + 2 * blocks - 1 + 1, `${name} Clip (ReLU6)`);
  const scalar = (value: string) => {
    const t = zoo(name).model.graph!.initializer.find((i) => i.name === value)!;
    assert.equal(t.dims, []);
    return new Float32Array(Uint8Array.from(t.rawData).buffer)[0];
  };
  for (const clip of clips) assert.equal([scalar(clip.input[1]!), scalar(clip.input[2]!)], [0, 6], `${clip.name} bounds`);
  const adds = ofType(name, 'Add');
  assert.is(adds.length, residuals, `${name} residual Add`);
  // a residual adds the block's input to its projection's batch norm (a linear bottleneck: no ReLU6 before it)
  for (const add of adds) assert.ok(add.input.some((i) => producer(name, i)?.opType === 'BatchNormalization'), `${add.name}`);
  for (const op of ['GlobalAveragePool', 'Flatten', 'Gemm']) assert.is(ofType(name, op).length, 1, `${name} ${op}`);
  assert.is(attr(ofType(name, 'Gemm')[0]!, 'transB')?.i, 1);
}

test('mobilenetv2: 17 depthwise convs, 10 residual adds, 35 ReLU6; the tiny one at most 2 blocks a stage', () => {
  checkMobileNetV2('mobilenetv2', [1, 2, 3, 4, 3, 3, 1]);
  checkMobileNetV2('mobilenetv2-tiny', [1, 2, 2, 2, 2, 2, 1]);
  const d = initializerDims('mobilenetv2');
  assert.equal(d.get('features.0.0.weight'), [32, 3, 3, 3]);
  assert.equal(d.get('features.18.0.weight'), [1280, 320, 1, 1]);
  assert.equal(d.get('classifier.1.weight'), [1000, 1280]);
});

/**
 * BERT layer structure: 6 projections (Q, K, V, attention output, FFN in and out) as MatMul+Add,
 * 2 attention MatMuls, the scale Div, Softmax on the last axis, GELU's Div/Erf/Add/Mul/Mul, 2
 * residual Adds, 2 LayerNormalizations; 4 Reshapes (3 head splits, 1 merge) each with its shape
 * from Shape -> Gather -> Unsqueeze -> Concat on the reshaped tensor.
 */
function checkBertLayer(name: ZooName, hidden: number, heads: number, intermediate: number): void {
  const count = (op: string) => ofType(name, op).length;
  assert.equal(
    ['MatMul', 'Add', 'Div', 'Softmax', 'Erf', 'Mul', 'LayerNormalization', 'Reshape', 'Transpose', 'Shape', 'Gather', 'Unsqueeze', 'Concat'].map(count),
    [8, 6 + 2 + 1, 2, 1, 1, 2, 2, 4, 4, 4, 8, 8, 4], `${name} op counts`,
  );
  assert.is(attr(ofType(name, 'Softmax')[0]!, 'axis')?.i, -1);
  for (const ln of ofType(name, 'LayerNormalization')) {
    assert.is(attr(ln, 'axis')?.i, -1);
    assert.ok(Math.abs(attr(ln, 'epsilon')!.f - 1e-12) < 1e-18, `${ln.name} epsilon`);
  }
  for (const reshape of ofType(name, 'Reshape')) {
    const concat = producer(name, reshape.input[1]!)!;
    assert.is(concat.opType, 'Concat', `${reshape.name} shape`);
    const leading = concat.input.slice(0, 2).map((i) => producer(name, i)!);
    assert.equal(leading.map((n) => n.opType), ['Unsqueeze', 'Unsqueeze']);
    const gathers = leading.map((u) => producer(name, u.input[0]!)!);
    assert.equal(gathers.map((n) => n.opType), ['Gather', 'Gather']);
    const shapes = gathers.map((gather) => producer(name, gather.input[0]!)!);
    assert.ok(shapes.every((s) => s.opType === 'Shape' && s.input[0] === reshape.input[0]), `${reshape.name}: the shape is not read from the reshaped tensor`);
  }
  assert.equal(ofType(name, 'Transpose').map((t) => intsAttr(t, 'perm')), [[0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3], [0, 2, 1, 3]]);
  const d = initializerDims(name);
  for (const p of ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense']) {
    assert.equal(d.get(`${p}.weight`), [hidden, hidden], p);
  }
  assert.equal(d.get('intermediate.dense.weight'), [hidden, intermediate]);
  assert.equal(d.get('output.dense.weight'), [intermediate, hidden]);
  const scale = zoo(name).model.graph!.initializer.find((t) => t.name === ofType(name, 'Div').find((n) => n.name === 'attention.self.scale')!.input[1])!;
  assert.is(new Float32Array(Uint8Array.from(scale.rawData).buffer)[0], Math.sqrt(hidden / heads));
}

test('bert-layer: the attention, GELU and LayerNorm ops as torch exports them; the tiny one too', () => {
  checkBertLayer('bert-layer', 768, 12, 3072);
  checkBertLayer('bert-layer-tiny', 64, 4, 256);
  assert.equal(zooSignature('bert-layer'), {
    input: { name: 'hidden_states', dims: [1, 128, 768] }, output: { name: 'output', dims: [1, 128, 768] },
  });
});

test('full-size models have the published parameter counts', () => {
  // torchvision's resnet18, resnet50 and mobilenet_v2 (sum of p.numel() over parameters)
  assert.is(parameterCount('resnet18'), 11_689_512);
  assert.is(parameterCount('resnet50'), 25_557_032);
  assert.is(parameterCount('mobilenetv2'), 3_504_872);
  // BERT-base layer: 4 hidden x hidden projections and the 2 FFN matrices with biases, 2 LayerNorms
  const h = 768, f = 3072;
  assert.is(parameterCount('bert-layer'), 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h);
});

test('ONNX Runtime runs every tiny model at batch 1, and the image models at batch 2 with the same logits per image', async () => {
  for (const name of TINY) {
    const { input } = zooSignature(name);
    const one = new WeightRandom(11).normal(elementsOf(input.dims, 1), 1);
    const out1 = await runOnnxRuntime(name, 1, one);
    assertSaneOutput(name, 1, out1);
    if (typeof input.dims[0] !== 'string') continue;
    const two = new Float32Array(2 * one.length);
    two.set(one);
    two.set(new WeightRandom(12).normal(one.length, 1), one.length);
    const out2 = await runOnnxRuntime(name, 2, two);
    assertSaneOutput(name, 2, out2);
    const first = out2.data.subarray(0, out1.data.length), second = out2.data.subarray(out1.data.length);
    const scale = out1.data.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    assert.ok(first.every((x, i) => Math.abs(x - out1.data[i]!) <= 1e-5 * scale), `${name}: image 0 of a batch of 2 differs from batch 1`);
    assert.ok(second.some((x, i) => x !== first[i]), `${name}: two images, one answer`);
  }
});

test('ONNX Runtime runs every full-size model once at batch 1', async () => {
  for (const name of FULL) {
    const { input } = zooSignature(name);
    const out = await runOnnxRuntime(name, 1, new WeightRandom(13).normal(elementsOf(input.dims, 1), 1));
    assertSaneOutput(name, 1, out);
    built.delete(name); // let the weights go before the next model
  }
});

test.run();
