/**
 * The reference run (ir/model/reference.ts) on the zoo's tiny models (ir/model/zoo): imported,
 * run node by node, and equal to ONNX Runtime's outputs on the same file and input; every kernel
 * node's stored output checked against the generic interpreter (ir/interpret.ts
 * checkAgainstOracle: float64, the fp32 tolerance of its reductions), which the reference's
 * direct loops replace for speed; the fused structure each model must have.
 *
 * Tolerance against ONNX Runtime: 1e-4 of the output's largest magnitude. Both compute in fp32
 * storage but sum in different orders (ONNX Runtime's MLAS in fp32 with its own blocking, the
 * reference in float64, rounded per node), over 20-50 layers of reductions of up to ~1000 terms:
 * the differences measured here are 1e-6 to 2e-6; a wrong op, layout or fusion gives errors of
 * order 1.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import { LoopTuneError } from '../../../ir/errors.ts';
import { checkAgainstOracle, interpret, randomArray } from '../../../ir/interpret.ts';
import { copyFromStorage, padded } from '../../../ir/padding.ts';
import { dataShape, elementCount } from '../../../ir/problem.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import {
  evaluateHostOp, evaluateKernel, importOnnx, modelTasks, runReference, type KernelNode, type ModelGraph,
} from '../../../ir/model/index.ts';
import { zooModel, zooSignature, type ZooName } from '../../../ir/model/zoo/index.ts';

const TINY: readonly ZooName[] = ['resnet18-tiny', 'resnet50-tiny', 'mobilenetv2-tiny', 'bert-layer-tiny'];
const ORT_TOLERANCE = 1e-4;

const count = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

/** The model's input shape at `batch` (a symbolic dim is the batch). */
function inputShape(name: ZooName, batch = 1): number[] {
  return zooSignature(name).input.dims.map((d) => (typeof d === 'string' ? batch : d));
}

function load(name: ZooName, batch = 1): { bytes: Uint8Array; graph: ModelGraph; input: string; output: string } {
  const bytes = zooModel(name);
  const { input, output } = zooSignature(name);
  return { bytes, graph: importOnnx(bytes, { inputShapes: { [input.name]: inputShape(name, batch) } }), input: input.name, output: output.name };
}

async function onnxRuntime(bytes: Uint8Array, input: string, data: Float32Array, dims: number[], output: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return (await session.run({ [input]: new ort.Tensor('float32', data, dims) }))[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0, scale = 1e-30;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return Number.isNaN(err) ? Infinity : err / scale;
}

for (const name of TINY) {
  test(`${name}: imported, run by the reference, equal to ONNX Runtime within ${ORT_TOLERANCE} (relative to the largest output)`, async () => {
    const { bytes, graph, input, output } = load(name);
    const shape = inputShape(name);
    const x = randomArray(count(shape), 5);
    const got = runReference(graph, { [input]: x }).outputs[output]!;
    const want = await onnxRuntime(bytes, input, x, shape, output);
    assert.is(got.length, want.length);
    const err = relativeError(got, want);
    assert.ok(err <= ORT_TOLERANCE, `${name}: relative error ${err.toExponential(2)}`);
    // the output is not degenerate: a constant output would match anything
    assert.ok(Math.max(...want) - Math.min(...want) > 1e-3, `${name}: output varies`);
  });

  test(`${name}: every kernel node's output equals the interpreter's on the same operands (per-node check)`, () => {
    const { graph, input } = load(name);
    const run = runReference(graph, { [input]: randomArray(count(inputShape(name)), 6) }, { keepValues: true });
    const read = (n: string) => run.values.get(n) ?? graph.weights.get(n)!.data;
    let checked = 0;
    for (const node of graph.nodes) {
      if (node.kind !== 'kernel') continue;
      const p = node.problem;
      const storage = p.tensors.slice(1).map((t, i) => padded(t, read(node.operands[i]!)));
      const initial = new Float32Array(elementCount(p.tensors[0]!)).fill(p.combine === 'max' ? -Infinity : 0);
      const check = checkAgainstOracle(Schedule.initial(p), storage, initial, read(node.output));
      assert.ok(check.ok, `${node.name} (${p.spec}): error ${check.maxError.toExponential(2)} > ${check.tolerance.toExponential(2)}`);
      checked++;
    }
    assert.ok(checked >= 8, `${checked} kernel nodes checked`);
  });
}

test('resnet18-tiny at batch 2 (its symbolic N fixed at load) equals ONNX Runtime, image by image', async () => {
  const { bytes, graph, input, output } = load('resnet18-tiny', 2);
  const shape = inputShape('resnet18-tiny', 2);
  assert.is(graph.inputs[0]!.shape[0], 2);
  const x = randomArray(count(shape), 8);
  const got = runReference(graph, { [input]: x }).outputs[output]!;
  const want = await onnxRuntime(bytes, input, x, shape, output);
  assert.ok(relativeError(got, want) <= ORT_TOLERANCE);
  const half = got.length / 2;
  assert.ok(relativeError(got.subarray(0, half), got.subarray(half)) > 1e-3, 'two different images give different logits');
});

test('resnet18-tiny fuses completely: every batch norm folded, every skip a +residual, host nodes only the flatten', () => {
  const { graph } = load('resnet18-tiny');
  const hosts = graph.nodes.filter((n) => n.kind === 'host');
  assert.equal(hosts.map((n) => (n.kind === 'host' ? n.op.kind : '')), ['reshape']);
  const kernels = graph.nodes.filter((n): n is KernelNode => n.kind === 'kernel');
  const convs = kernels.filter((k) => k.problem.op === 'conv2d');
  assert.is(convs.length, 20, 'ResNet-18: 17 convs of the blocks and stem, 3 downsamples');
  assert.ok(convs.every((k) => k.problem.spec.includes('+bias')), 'every conv carries its folded batch norm');
  assert.is(convs.filter((k) => k.problem.spec.endsWith('+bias +residual +relu')).length, 8, 'the 8 basic blocks end in one kernel each');
  const tasks = modelTasks(graph);
  assert.is(tasks.reduce((n, t) => n + t.count, 0), kernels.length);
  assert.is(new Set(tasks.map((t) => t.problem.spec)).size, tasks.length);
  assert.ok(tasks.some((t) => t.count > 1), 'repeated layers are one task');
});

test('bert-layer-tiny: GELU fused into the intermediate matmul, attention scale into QK^T, residuals into the output matmuls', () => {
  const { graph } = load('bert-layer-tiny');
  const specs = graph.nodes.flatMap((n) => (n.kind === 'kernel' ? [n.problem.spec] : []));
  assert.ok(specs.some((s) => /^matmul \d+x\d+x\d+ \+bias \+gelu$/.test(s)), specs.join('; '));
  assert.ok(specs.some((s) => /^bmm b4 m16 n16 k16 \+scale0\.25$/.test(s)), specs.join('; '));
  assert.is(specs.filter((s) => s.endsWith('+bias +residual')).length, 2);
  const hostKinds = graph.nodes.flatMap((n) => (n.kind === 'host' ? [n.op.kind] : []));
  assert.equal([...new Set(hostKinds)].sort(), ['layernorm', 'reshape', 'softmax', 'transpose']);
});

test('mobilenetv2-tiny: depthwise convs as groups = channels, ReLU6 fused, the inverted residuals as +residual', () => {
  const { graph } = load('mobilenetv2-tiny');
  const specs = graph.nodes.flatMap((n) => (n.kind === 'kernel' ? [n.problem.spec] : []));
  const depthwise = specs.filter((s) => /groups(\d+)/.test(s) && / c(\d+) /.exec(s)![1] === /groups(\d+)/.exec(s)![1]);
  assert.ok(depthwise.length >= 5 && depthwise.every((s) => s.endsWith('+bias +relu6')), depthwise.join('; '));
  assert.ok(specs.some((s) => s.endsWith('+bias +residual')));
});

test('evaluateKernel: direct loops equal the interpreter on convs (groups, dilation, pads), pools and matmuls, epilogues included', () => {
  for (const spec of [
    'conv2d n2 c4 h7 w6 k6 r3 s3 stride2 groups2 dilation2 pad2,1,1,2 +bias +relu',
    'conv1d n1 c3 w9 k4 s3 stride1 pad1 +residual +sigmoid',
    'conv3d n1 c2 d4 h4 w4 k3 t2 r2 s2 stride1 +bias',
    'maxpool2d n1 c3 h7 w7 r3 s3 stride2 pad1 +relu6',
    'avgpool2d n2 c3 h6 w6 r3 s3 stride1 pad1',
    'matmul 5x7x3 +bias +gelu',
    'bmm b3 m4 n5 k6 +scale0.5 +residual',
  ]) {
    const p = parseProblem(spec);
    const operands = p.tensors.slice(1).map((t, i) => randomArray(count(dataShape(t)), 30 + i));
    const got = evaluateKernel(p, operands);
    const storage = p.tensors.slice(1).map((t, i) => padded(t, operands[i]!));
    const initial = new Float64Array(elementCount(p.tensors[0]!)).fill(p.combine === 'max' ? -Infinity : 0);
    const want = new Float64Array(count(dataShape(p.tensors[0]!)));
    copyFromStorage(p.tensors[0]!, interpret(Schedule.initial(p), storage, initial), want);
    assert.is(got.length, want.length, spec);
    assert.ok(relativeError(got, want) <= 1e-12, `${spec}: ${relativeError(got, want)}`);
  }
});

test('evaluateHostOp: softmax rows sum to 1, layernorm rows have mean 0 and variance 1 before gamma and beta', () => {
  const x = { shape: [3, 5], data: randomArray(15, 4) };
  const soft = evaluateHostOp({ kind: 'softmax', axis: 1 }, [x], [3, 5]);
  for (let r = 0; r < 3; r++) assert.ok(Math.abs(soft.subarray(5 * r, 5 * r + 5).reduce((a, b) => a + b, 0) - 1) < 1e-12);
  const ones = { shape: [5], data: new Float32Array(5).fill(1) }, zeros = { shape: [5], data: new Float32Array(5) };
  const norm = evaluateHostOp({ kind: 'layernorm', axis: 1, epsilon: 0 }, [x, ones, zeros], [3, 5]);
  for (let r = 0; r < 3; r++) {
    const row = norm.subarray(5 * r, 5 * r + 5);
    const mean = row.reduce((a, b) => a + b, 0) / 5;
    assert.ok(Math.abs(mean) < 1e-12 && Math.abs(row.reduce((a, b) => a + b * b, 0) / 5 - 1) < 1e-12);
  }
});

test('runReference: a missing or mis-sized input is one line', () => {
  const { graph, input } = load('bert-layer-tiny');
  const lineOf = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      assert.instance(e, LoopTuneError);
      return (e as Error).message;
    }
    return assert.unreachable('no error') as never;
  };
  assert.match(lineOf(() => runReference(graph, {})), `reference: input '${input}' of bert-layer-tiny not given`);
  assert.match(lineOf(() => runReference(graph, { [input]: new Float32Array(3) })), `reference: input '${input}' has 3 elements, 1024 expected for shape [1, 16, 64]`);
});

test.run();
