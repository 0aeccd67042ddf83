import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, type CompiledModel } from '../../agent/compiled-model.ts';
import { sha256Hex, TUNED_MODEL_FORMAT, type TunedModel } from '../../agent/tuned-model.ts';
import { compareOutputs, MODEL_TOLERANCE } from '../../cli/run-model.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { randomArray } from '../../ir/interpret.ts';
import { modelTasks, type ModelGraph } from '../../ir/model/graph.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';
import { blockedVariant, whyNotBlocked } from '../../ir/layout.ts';
import { evaluateNode } from '../../ir/model/reference.ts';
import { zooModel, zooSignature, type ZooName } from '../../ir/model/zoo/index.ts';
import { Schedule } from '../../ir/schedule.ts';
import { hostBackend } from '../../targets/registry.ts';
import { hostKey } from '../../targets/runtime/host.ts';

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
/**
 * A kernel node against the reference on the SAME inputs (the compiled model's own values), so
 * errors do not compound: fp32 sums of at most a few thousand terms in another order, 1e-7 to 1e-6
 * of the output's magnitude here; 1e-5 still fails any wrong window, offset or epilogue.
 */
const NODE_TOLERANCE = 1e-5;

function isOneLine(e: unknown, pattern: RegExp): boolean {
  return e instanceof LoopTuneError && !e.message.includes('\n') && pattern.test(e.message);
}

/** Fails unless `p` rejects with an error `check` accepts. */
async function rejects(p: Promise<unknown>, check: (e: unknown) => boolean): Promise<void> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, 'expected a rejection');
  assert.ok(check(error), `unexpected error: ${error instanceof Error ? error.message : String(error)}`);
}

/** The zoo model's input shapes with the symbolic batch set to 1. */
function shapesOf(name: ZooName): Record<string, number[]> {
  const { input } = zooSignature(name);
  return { [input.name]: input.dims.map((d) => (typeof d === 'string' ? 1 : d)) };
}

function randomInputs(g: ModelGraph, seed: number): Record<string, Float32Array> {
  return Object.fromEntries(g.inputs.map((v, k) => [v.name, randomArray(product(v.shape), seed + k)]));
}

async function onnxRuntime(bytes: Uint8Array, g: ModelGraph, inputs: Record<string, Float32Array>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  try {
    const feeds = Object.fromEntries(g.inputs.map((v) => [v.name, new ort.Tensor('float32', inputs[v.name]!, [...v.shape])]));
    const r = await session.run(feeds);
    return Object.fromEntries(g.outputs.map((v) => [v.name, r[v.name]!.data as Float32Array]));
  } finally {
    await session.release();
  }
}

async function assertMatchesOnnxRuntime(m: CompiledModel, bytes: Uint8Array, outputs: Record<string, Float32Array>, inputs: Record<string, Float32Array>, what: string): Promise<void> {
  const theirs = await onnxRuntime(bytes, m.graph, inputs);
  for (const v of m.outputs) {
    const c = compareOutputs(v.name, outputs[v.name]!, theirs[v.name]!);
    assert.ok(c.withinTolerance, `${what}: ${v.name} differs from ONNX Runtime by ${c.maxRelError.toExponential(2)} of its magnitude (tolerance ${MODEL_TOLERANCE})`);
  }
}

/** Every node's output against the reference evaluated on the compiled model's own inputs to that node. */
function assertNodesMatchReference(m: CompiledModel, inputs: Record<string, Float32Array>, what: string): number {
  const g = m.graph;
  const values = new Map<string, Float32Array>(Object.entries(inputs));
  let checked = 0;
  m.run(inputs, {
    afterNode: (node, value) => {
      values.set(node.output, value);
      const want = evaluateNode(g, node, (name) => values.get(name) ?? g.weights.get(name)!.data);
      let err = 0, scale = 0;
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(want[i]! - value[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      assert.ok(err <= NODE_TOLERANCE * Math.max(scale, 1e-3), `${what}: node ${node.name} differs from the reference by ${err} (scale ${scale})`);
      checked++;
    },
  });
  return checked;
}

const CASES: { name: ZooName; threads: number; copies: number }[] = [
  // the one copy of the convnets: the caller's image into the stem conv's border
  { name: 'resnet18-tiny', threads: 2, copies: 1 },
  { name: 'resnet50-tiny', threads: 1, copies: 1 },
  { name: 'mobilenetv2-tiny', threads: 1, copies: 1 },
  { name: 'bert-layer-tiny', threads: 1, copies: 0 },
];

for (const c of CASES) {
  test(`${c.name} on ${c.threads} thread(s): outputs match ONNX Runtime, every node matches the reference, ${c.copies} copy per run`, async () => {
    const bytes = zooModel(c.name);
    const m = await loadModel(bytes, { threads: c.threads, inputShapes: shapesOf(c.name) });
    try {
      const d = m.describe();
      assert.is(d.threads, c.threads);
      assert.is(d.copiesPerRun, c.copies, JSON.stringify(d.copies));
      assert.is(d.nodes.length, m.graph.nodes.length);
      const tasks = modelTasks(m.graph);
      assert.is(d.tasks.length, tasks.length);
      assert.ok(d.kernels >= tasks.length && d.kernels <= m.graph.nodes.filter((n) => n.kind === 'kernel').length, `${d.kernels} kernels for ${tasks.length} tasks`);
      for (const n of d.nodes) if (n.kind === 'kernel') assert.is(n.scheduleSource, 'cost-model default', n.name);
      assert.ok(d.peakBytes > 0 && d.peakBytes <= d.unsharedBytes, `arena ${d.peakBytes} of ${d.unsharedBytes}`);

      // two runs on different inputs through the same arena, each against ONNX Runtime
      for (const seed of [1, 50]) {
        const inputs = randomInputs(m.graph, seed);
        const outputs = m.run(inputs);
        await assertMatchesOnnxRuntime(m, bytes, outputs, inputs, `${c.name} seed ${seed}`);
        // runInto writes the caller's arrays with the same values
        const into = Object.fromEntries(m.outputs.map((v) => [v.name, new Float32Array(product(v.shape)).fill(NaN)]));
        m.runInto(inputs, into);
        for (const v of m.outputs) assert.equal(into[v.name], outputs[v.name]);
      }
      const checked = assertNodesMatchReference(m, randomInputs(m.graph, 7), c.name);
      assert.is(checked, m.graph.nodes.length);
    } finally {
      m.dispose();
    }
  });
}

test('a tuned artifact: its schedules run, a library task runs OpenBLAS, the other tasks get defaults', async () => {
  const name: ZooName = 'bert-layer-tiny';
  const bytes = zooModel(name);
  const dir = mkdtempSync(path.join(tmpdir(), 'looptune-compiled-model-'));
  try {
    const modelFile = path.join(dir, 'model.onnx');
    writeFileSync(modelFile, bytes);
    const probe = await loadModel(bytes, { threads: 1 });
    const tasks = modelTasks(probe.graph);
    probe.dispose();
    const target = hostBackend().name;
    const tuned: TunedModel = {
      format: TUNED_MODEL_FORMAT, version: 1,
      model: { name, sha256: sha256Hex(bytes), inputShapes: {} },
      target, threads: 1, host: hostKey(), createdAt: new Date(0).toISOString(),
      tasks: [
        { spec: tasks[0]!.problem.spec, schedule: Schedule.initial(tasks[0]!.problem).text(), implementation: 'generated', layout: 'nchw', gflops: 1 },
        { spec: tasks[1]!.problem.spec, schedule: Schedule.initial(tasks[1]!.problem).text(), implementation: 'library' },
      ],
    };
    const tunedFile = path.join(dir, 'model.tuned.json');
    writeFileSync(tunedFile, JSON.stringify(tuned));
    const m = await loadModel(modelFile, { tuned: tunedFile });
    try {
      const d = m.describe();
      assert.is(d.threads, 1, 'the artifact\'s threads');
      for (const n of d.nodes) {
        if (n.kind !== 'kernel') continue;
        const i = tasks.findIndex((t) => t.problem.spec === n.spec);
        assert.is(n.scheduleSource, i <= 1 ? 'tuned' : 'cost-model default', n.name);
        if (i <= 1) assert.is(n.schedule, Schedule.initial(tasks[i]!.problem).text());
        // OpenBLAS is a system package of the test setup (tests/setup/ensure-system-packages.sh)
        assert.is(n.implementation, i === 1 ? 'library' : 'generated', n.name);
        if (i === 1) assert.match(n.library ?? '', /OpenBLAS/);
      }
      const inputs = randomInputs(m.graph, 3);
      await assertMatchesOnnxRuntime(m, bytes, m.run(inputs), inputs, 'tuned bert-layer-tiny');
    } finally {
      m.dispose();
    }

    // refused in one line: another model's artifact, another target's, a malformed file, a bad schedule
    const write = (t: unknown) => {
      writeFileSync(tunedFile, typeof t === 'string' ? t : JSON.stringify(t));
      return tunedFile;
    };
    await rejects(loadModel(bytes, { tuned: write({ ...tuned, model: { ...tuned.model, sha256: sha256Hex(new Uint8Array([1])) } }) }), (e: unknown) => isOneLine(e, /tuned for another model/));
    const other = target === 'avx512' ? 'avx2' : 'avx512';
    await rejects(loadModel(bytes, { tuned: write(tuned), target: other }), (e: unknown) => isOneLine(e, new RegExp(`tuned for target ${target}, not ${other}`)));
    await rejects(loadModel(bytes, { tuned: write('{"format": "looptune-tuned-model", "version": 1, ') }), (e: unknown) => isOneLine(e, /model\.tuned\.json: not a tuned model \(invalid JSON/));
    await rejects(loadModel(bytes, { tuned: write({ ...tuned, threads: 0 }) }), (e: unknown) => isOneLine(e, /malformed tuned model: threads/));
    await rejects(loadModel(bytes, { tuned: write({ ...tuned, tasks: [{ ...tuned.tasks[0]!, schedule: 'm:3 zz:4' }] }) }), (e: unknown) => isOneLine(e, /model\.tuned\.json: task "matmul/));
    await rejects(loadModel(bytes, { tuned: path.join(dir, 'missing.json') }), (e: unknown) => isOneLine(e, /missing\.json: no such file/));
    // a matmul claimed to be tuned in the blocked layout, which only convs and pools have
    const lanes = hostBackend().caps.vectorLanes;
    await rejects(loadModel(bytes, { tuned: write({ ...tuned, tasks: [{ ...tuned.tasks[0]!, layout: `nchw${lanes}c` }] }) }), (e: unknown) => isOneLine(e, /model\.tuned\.json: task "matmul .*" is tuned in layout nchw\d+c, but it has none: matmul has no blocked layout/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tasks tuned in the blocked layout run as NCHWc twins, converted only at the edges of the blocked region', async () => {
  const name: ZooName = 'resnet18-tiny';
  const bytes = zooModel(name);
  const lanes = hostBackend().caps.vectorLanes;
  const g = importOnnx(bytes, { inputShapes: shapesOf(name) });
  // every conv the target's block divides, in the blocked layout
  const tasks = modelTasks(g).filter((t) => t.problem.op === 'conv2d' && whyNotBlocked(t.problem, lanes) === null);
  assert.ok(tasks.length >= 2, `tasks that block by ${lanes}`);
  const tuned: TunedModel = {
    format: TUNED_MODEL_FORMAT, version: 1,
    model: { name, sha256: sha256Hex(bytes), inputShapes: shapesOf(name) },
    target: hostBackend().name, threads: 1, host: hostKey(), createdAt: new Date(0).toISOString(),
    tasks: tasks.map((t) => ({ spec: t.problem.spec, schedule: Schedule.initial(blockedVariant(t.problem, lanes)!).text(), implementation: 'generated', layout: `nchw${lanes}c` })),
  };
  const m = await loadModel(bytes, { tuned });
  try {
    const d = m.describe();
    const twins = d.nodes.filter((n) => n.kind === 'kernel' && n.scheduleSource === 'tuned');
    assert.equal(twins.map((n) => n.name).sort(), tasks.flatMap((t) => t.nodes).sort());
    assert.ok(twins.every((n) => n.layout === `nchw${lanes}c`));
    // blocked layers feed each other directly: fewer conversions than blocked layers, none a copy of the executor
    const conversions = d.nodes.filter((n) => n.kind === 'kernel' && n.scheduleSource === 'layout conversion');
    assert.ok(conversions.length > 0 && conversions.length < twins.length, `${conversions.length} conversions around ${twins.length} blocked layers`);
    assert.not.ok(d.copies.some((c) => /runs in nchw/.test(c.reason)), 'no node converts its own tensors on each run');
    const inputs = randomInputs(m.graph, 5);
    await assertMatchesOnnxRuntime(m, bytes, m.run(inputs), inputs, 'resnet18-tiny with blocked tasks');
    assert.is(assertNodesMatchReference(m, inputs, 'resnet18-tiny with blocked tasks'), m.graph.nodes.length);
  } finally {
    m.dispose();
  }
});

test('run refuses wrong inputs and outputs in one line, and any run after dispose', async () => {
  const m = await loadModel(zooModel('bert-layer-tiny'), { threads: 1 });
  const inputs = randomInputs(m.graph, 1);
  const input = m.inputs[0]!.name;
  assert.throws(() => m.run({}), (e: unknown) => isOneLine(e, new RegExp(`input '${input}' not given`)));
  assert.throws(() => m.run({ [input]: new Float32Array(3) }), (e: unknown) => isOneLine(e, /has 3 elements/));
  assert.throws(() => m.run({ ...inputs, extra: new Float32Array(1) }), (e: unknown) => isOneLine(e, /'extra' is not an input/));
  assert.throws(() => m.runInto(inputs, {}), (e: unknown) => isOneLine(e, /output 'output' not given/));
  m.dispose();
  assert.throws(() => m.run(inputs), (e: unknown) => isOneLine(e, /disposed/));
});

test.run();
