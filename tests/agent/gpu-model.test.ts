/**
 * Whole models on the cuda backend without a GPU: agent/gpu-model.ts over the simulator device
 * (agent/gpu-model-device.ts), so every launch runs the very PTX the driver would JIT in the PTX
 * simulator, which also checks every global access against its tensor's bounds. Device memory
 * starts as NaN there: a kernel reading anything nobody wrote shows up in the outputs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { interiorFillProblem, copySchedule, storageCopyProblem } from '../../agent/gpu-model-copies.ts';
import { simulatorDevice, type ModelDevice } from '../../agent/gpu-model-device.ts';
import { loadGpuModel, type GpuModel } from '../../agent/gpu-model.ts';
import { MIN_TUNE_SECONDS, tuneBudgets } from '../../agent/gpu-model-schedules.ts';
import { compareOutputs, MODEL_TOLERANCE } from '../../cli/run-model.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { randomArray } from '../../ir/interpret.ts';
import { modelTasks, type ModelGraph } from '../../ir/model/graph.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';
import { evaluateNode, runReference } from '../../ir/model/reference.ts';
import { zooModel, zooSignature, type ZooName } from '../../ir/model/zoo/index.ts';
import { copyFromStorage, padded } from '../../ir/padding.ts';
import { dataShape, elementCount, type Tensor } from '../../ir/problem.ts';
import { simulate } from '../../targets/cuda/sim.ts';
import { compileCuda } from '../../targets/cuda/target.ts';

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
/** a node against the reference on the GPU model's own inputs to it (see tests/agent/compiled-model.test.ts) */
const NODE_TOLERANCE = 1e-5;

function graphOf(name: ZooName, batch: number): ModelGraph {
  const { input } = zooSignature(name);
  return importOnnx(zooModel(name), { inputShapes: { [input.name]: input.dims.map((d) => (typeof d === 'string' ? batch : d)) } });
}

function randomInputs(g: ModelGraph): Record<string, Float32Array> {
  return Object.fromEntries(g.inputs.map((v, k) => [v.name, randomArray(product(v.shape), 11 + k)]));
}

function isOneLine(e: unknown, pattern: RegExp): boolean {
  return e instanceof LoopTuneError && !e.message.includes('\n') && pattern.test(e.message);
}

function throwsLine(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isOneLine(e, pattern), `unexpected error: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  assert.unreachable('expected an error');
}

/** Runs once with every node checked against the reference on its own inputs; returns the outputs. */
function runChecked(m: GpuModel, inputs: Record<string, Float32Array>): { outputs: Record<string, Float32Array>; checked: number } {
  const g = m.graph;
  const values = new Map<string, Float32Array>(Object.entries(inputs));
  let checked = 0;
  const outputs = m.run(inputs, {
    afterNode: (node, value) => {
      values.set(node.output, value);
      const want = evaluateNode(g, node, (name) => values.get(name) ?? g.weights.get(name)!.data);
      let err = 0, scale = 0;
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Number.isNaN(value[i]!) ? Infinity : Math.abs(want[i]! - value[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      assert.ok(err <= NODE_TOLERANCE * Math.max(scale, 1e-3), `node ${node.name} differs from the reference by ${err} (scale ${scale})`);
      checked++;
    },
  });
  return { outputs, checked };
}

function assertMatchesReference(m: GpuModel, inputs: Record<string, Float32Array>, outputs: Record<string, Float32Array>): void {
  const ref = runReference(m.graph, inputs);
  for (const v of m.outputs) {
    const c = compareOutputs(v.name, outputs[v.name]!, ref.outputs[v.name]!);
    assert.ok(c.withinTolerance, `${v.name} differs from the reference by ${c.maxRelError.toExponential(2)} of its magnitude (tolerance ${MODEL_TOLERANCE})`);
  }
}

test('resnet18-tiny at batch 2 in the simulator: outputs and every node match the reference, all of it on the GPU', async () => {
  const g = graphOf('resnet18-tiny', 2);
  // every kernel node is checked against the reference below (on its real inputs); the device
  // verification of each kernel before use is the bert case's
  const m = await loadGpuModel(g, { device: simulatorDevice(), verify: false });
  try {
    const inputs = randomInputs(g);
    const { outputs, checked } = runChecked(m, inputs);
    assert.is(checked, g.nodes.length);
    assertMatchesReference(m, inputs, outputs);
    // a second run on other inputs: clears and borders hold up across runs
    const again = Object.fromEntries(Object.entries(inputs).map(([name, x]) => [name, x.map((v) => 1 - 2 * v)]));
    assertMatchesReference(m, again, m.run(again));

    const d = m.describe();
    assert.is(d.device, simulatorDevice().name);
    assert.is(d.hostOps, 'none: every node runs on the GPU');
    assert.is(d.nodes.length, g.nodes.length);
    for (const n of d.nodes) assert.ok(n.implementation === 'cuda' || (n.implementation === 'alias' && n.op === 'reshape'), `${n.name}: ${n.implementation}`);
    assert.is(d.tasks.length, modelTasks(g).length);
    // the image into the stem conv's zero border; the stem's output (read by the max pool: -Infinity
    // border) and the max pool's (read by convs: zero border) cleared by fill kernels, the rest by memset
    assert.equal({ copies: d.perRun.copies, fills: d.perRun.fills, hostOps: d.perRun.hostOps }, { copies: 1, fills: 2, hostOps: 0 });
    assert.is(d.perRun.memsets, d.nodes.filter((n) => n.implementation === 'cuda').length - 2);
    for (const k of d.kernels) assert.ok(['seed', 'initial', 'copy'].includes(k.source), `${k.spec}: ${k.source}`);
    const convs = d.nodes.filter((n) => n.spec?.startsWith('conv2d'));
    assert.ok(convs.length > 0 && convs.every((n) => n.source === 'seed'), 'every conv takes a cuda conv seed');
    assert.ok(d.arenaBytes > 0 && d.arenaBytes <= d.unsharedBytes);
  } finally {
    m.dispose();
  }
});

test('bert-layer-tiny in the simulator: host ops go through the host, the rest (bmm, transposed reads) on the GPU', async () => {
  const g = graphOf('bert-layer-tiny', 1);
  const m = await loadGpuModel(g, { device: simulatorDevice() });
  try {
    const inputs = randomInputs(g);
    const { outputs, checked } = runChecked(m, inputs);
    assert.is(checked, g.nodes.length);
    assertMatchesReference(m, inputs, outputs);
    const d = m.describe();
    const host = d.nodes.filter((n) => n.implementation === 'host');
    assert.ok(host.some((n) => n.op === 'softmax') && host.some((n) => n.op === 'layernorm'), JSON.stringify(host));
    for (const n of host) assert.ok((n.transferred ?? 0) > 0, n.name);
    assert.is(d.perRun.hostOps, host.length);
    assert.match(d.hostOps, new RegExp(`^${host.length} host ops run on the CPU`));
    assert.ok(d.nodes.some((n) => n.spec?.startsWith('bmm') && n.implementation === 'cuda'));
    // each kernel ran once on the device against the interpreter before use
    assert.ok(d.kernels.length > 0 && d.kernels.every((k) => k.verified), JSON.stringify(d.kernels.filter((k) => !k.verified)));
  } finally {
    m.dispose();
  }
});

/** Runs a problem's copy kernel in the simulator on the given tensors (output first). */
function simulateCopy(p: ReturnType<typeof storageCopyProblem>, tensors: Float32Array[]): void {
  const k = compileCuda(copySchedule(p));
  simulate(k.text!, k.launch, tensors);
}

const bordered = (shape: number[], before: number[], after: number[], value: number): Tensor => ({
  name: 'T', shape: shape.map((n, d) => n + before[d]! + after[d]!), pad: { before, after, value },
});

test('storage copies between dense and bordered storages, and interior fills, as cuda copy kernels', () => {
  const data = [2, 3, 5, 300];
  const x = randomArray(product(data), 3);
  const dense: Tensor = { name: 'D', shape: data };
  const wide = bordered(data, [0, 0, 1, 2], [0, 0, 1, 0], 0);
  const other = bordered(data, [0, 0, 2, 1], [0, 0, 0, 3], -Infinity);
  // dense -> bordered: the interior holds the data, the border keeps its value
  const a = new Float32Array(elementCount(wide));
  simulateCopy(storageCopyProblem(dense, wide), [a, x.slice()]);
  assert.equal(Array.from(a), Array.from(padded(wide, x)));
  // bordered -> bordered with another border
  const b = padded(other, new Float32Array(product(data)));
  simulateCopy(storageCopyProblem(wide, other), [b, a]);
  assert.equal(Array.from(b), Array.from(padded(other, x)));
  // bordered -> dense
  const c = new Float32Array(product(data));
  simulateCopy(storageCopyProblem(other, dense), [c, b]);
  assert.equal(Array.from(c), Array.from(x));
  // a dense copy is one loop of 256 threads per block
  const flat = storageCopyProblem(dense, dense);
  assert.is(flat.vars.length, 1);
  assert.is(compileCuda(copySchedule(flat)).launch.block[0], 256);
  // fill: every data point -Infinity, the zero border as it was
  const fill = interiorFillProblem(wide);
  const w = padded(wide, x);
  simulateCopy(fill, [w, new Float32Array([-Infinity])]);
  const inside = new Float32Array(product(dataShape(wide)));
  copyFromStorage(wide, w, inside);
  assert.ok(inside.every((v) => v === -Infinity));
  assert.is(w.filter((v) => v === 0).length, elementCount(wide) - product(data));
});

test('one line for a node no kernel passes, bad inputs, and timing without a clock', async () => {
  const g = graphOf('resnet18-tiny', 1);
  // a device that refuses every kernel: the first kernel node is named, with each candidate's reason
  const refusing: ModelDevice = { ...simulatorDevice(), runner: async () => ({ ok: false, error: 'refused by the test device' }) };
  let error: unknown;
  try {
    await loadGpuModel(g, { device: refusing });
  } catch (e) {
    error = e;
  }
  assert.ok(isOneLine(error, /^node conv1 \(conv2d n1 c3 h56 w56 k8 r7 s7 stride2 pad3 \+bias \+relu \[O in .*\]\): no cuda kernel: seed .*refused by the test device.*; initial .*refused by the test device$/),
    error instanceof Error ? error.message : String(error));

  const m = await loadGpuModel(g, { device: simulatorDevice(), verify: false });
  try {
    const input = randomArray(product(g.inputs[0]!.shape), 1);
    throwsLine(() => m.run({ input: input.subarray(1) }), /^run: input 'input' has \d+ elements, \d+ expected for shape \[1, 3, 56, 56\]$/);
    throwsLine(() => m.run({ input, image: input }), /^run: 'image' is not an input of resnet18-tiny \(inputs: input\)$/);
    throwsLine(() => m.time({ input }), /^time: PTX simulator .* has no clock \(time on the GPU\)$/);
    assert.ok(m.describe().kernels.every((k) => !k.verified));
  } finally {
    m.dispose();
  }
  throwsLine(() => m.run({}), /^run: the GPU model was disposed$/);
  let missing: unknown;
  try {
    await loadGpuModel('/nonexistent/model.onnx', { device: simulatorDevice() });
  } catch (e) {
    missing = e;
  }
  assert.ok(isOneLine(missing, /nonexistent\/model\.onnx/), missing instanceof Error ? missing.message : String(missing));
});

test('tune budgets follow each problem\'s count x flops, at least MIN_TUNE_SECONDS each', () => {
  assert.equal(tuneBudgets([3, 1], 40), [30, 10]);
  assert.equal(tuneBudgets([1000, 1], 10), [10 * 1000 / 1001, MIN_TUNE_SECONDS]);
  throwsLine(() => tuneBudgets([1], -1), /^tune budget must be a non-negative number of seconds, got -1$/);
});

test.run();
