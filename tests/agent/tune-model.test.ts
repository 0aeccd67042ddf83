/** agent/tune-model.ts: every task tuned, the artifact, the scheduler's time split, records reuse, the library choice. */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setBackendLogging } from '../../agent/backend.ts';
import { MIN_SLICE_SECONDS, tuneModel, type TuneModelResult } from '../../agent/tune-model.ts';
import { parseTunedModel, sha256Hex } from '../../agent/tuned-model.ts';
import { modelTasks, type KernelNode, type ModelGraph } from '../../ir/model/graph.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';
import { zooModel } from '../../ir/model/zoo/index.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';
import { RUN_TARGET } from '../host.ts';

setBackendLogging(false);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'looptune-tune-model-'));
const bert = zooModel('bert-layer-tiny');
const bertRecords = path.join(tmp, 'bert-records.jsonl');

/** A graph of kernel nodes only: `count` nodes per spec (tuneModel reads the tasks, never runs the graph). */
/** A graph of the tasks' nodes, each reading the previous node's output (its weights left out: tuning does not read them). */
function graphOf(name: string, tasks: readonly (readonly [string, number])[]): ModelGraph {
  const nodes: KernelNode[] = [];
  for (const [spec, count] of tasks) {
    for (let i = 0; i < count; i++) {
      const n = nodes.length;
      nodes.push({ kind: 'kernel', name: `node${n}`, problem: parseProblem(spec), output: `v${n}`, operands: [n === 0 ? 'x' : `v${n - 1}`], sources: [] });
    }
  }
  const last = nodes.length > 0 ? [{ name: nodes[nodes.length - 1]!.output, shape: [1] }] : [];
  return { name, inputs: [{ name: 'x', shape: [1] }], outputs: last, values: new Map(), weights: new Map(), nodes };
}

let first: TuneModelResult;

test('every task of a model is tuned, and the artifact validates and names each one', async () => {
  first = await tuneModel(bert, { budgetSeconds: 1.5, threads: 1, records: bertRecords });
  const expected = modelTasks(importOnnx(bert));
  assert.equal(first.tasks.map((t) => t.spec), expected.map((t) => t.problem.spec));
  assert.equal(first.tasks.map((t) => t.count), expected.map((t) => t.count));
  for (const [i, t] of first.tasks.entries()) {
    assert.is(Schedule.parse(expected[i]!.problem, t.schedule).text(), t.schedule, t.spec);
    assert.ok(t.gflops > 0 && t.seconds > 0 && t.percentOfPeak > 0, `${t.spec}: ${t.gflops} GFLOPS`);
    assert.ok(t.tuneCalls >= 1 && t.measurements >= 1 && !t.fromRecords, `${t.spec}: tuned in round 0`);
    assert.ok(t.tuningSeconds > 0);
    assert.ok(['generated', 'library'].includes(t.implementation));
    // every BERT task is a matmul or bmm: the library was timed beside the generated kernel
    assert.ok(t.sideBySide && t.sideBySide.library > 0 && t.sideBySide.generated > 0, `${t.spec}: no side-by-side timing`);
    assert.match(t.chosenBecause, new RegExp(`^${t.implementation} \\d+\\.\\d\\dx faster: OpenBLAS .* side by side on 1 thread$`));
  }
  const sum = first.tasks.reduce((a, t) => a + t.count * t.seconds, 0);
  assert.ok(Math.abs(first.endToEndEstimateSeconds - sum) <= 1e-12 * sum);
  assert.ok(Math.abs(first.tasks.reduce((a, t) => a + t.shareOfLatency, 0) - 1) < 1e-9);
  assert.ok(first.history.length >= 1);
  assert.is(first.history[first.history.length - 1]!.estimatedLatency, first.endToEndEstimateSeconds);
  assert.ok(first.history.every((p, i) => i === 0 || p.seconds >= first.history[i - 1]!.seconds));

  const artifact = parseTunedModel(JSON.stringify(first.tuned), 'the artifact');
  assert.equal(artifact.tasks.map((t) => t.spec), first.tasks.map((t) => t.spec));
  assert.equal(artifact.tasks.map((t) => [t.schedule, t.implementation]), first.tasks.map((t) => [t.schedule, t.implementation]));
  assert.is(artifact.model.sha256, sha256Hex(bert));
  assert.equal(artifact.model.inputShapes, { hidden_states: [1, 16, 64] });
  assert.is(artifact.target, RUN_TARGET);
  assert.is(artifact.threads, 1);
});

test('a second run starts from the records (one measurement per task), and so does another model sharing a task', async () => {
  const second = await tuneModel(bert, { budgetSeconds: 0.3, threads: 1, records: bertRecords });
  assert.equal(second.tasks.map((t) => t.spec), first.tasks.map((t) => t.spec));
  for (const t of second.tasks) {
    assert.ok(t.fromRecords, `${t.spec} was searched again`);
    assert.is(t.measurements, 1, `${t.spec}: ${t.measurements} measurements`);
    assert.is(t.tuneCalls, 0);
  }
  assert.is(second.measurements, second.tasks.length);
  assert.ok(first.measurements >= 4 * second.measurements, `first run ${first.measurements} measurements, second ${second.measurements}`);
  const other = await tuneModel(graphOf('other', [[first.tasks[0]!.spec, 1], ['matmul 8x24x16', 1]]), { budgetSeconds: 0.3, threads: 1, records: bertRecords, library: false });
  assert.equal(other.tasks.map((t) => t.fromRecords), [true, false]);
  assert.is(other.tasks[0]!.schedule, second.tasks[0]!.schedule, 'the shared task runs the recorded schedule');
});

test('the scheduler gives the most time to the task with the largest share of the latency', async () => {
  const graph = graphOf('scheduled', [
    ['matmul 192x192x192', 2], ['matmul 64x64x64', 1], ['matmul 8x16x8', 1], ['maxpool2d n1 c8 h16 w16 r2 s2 stride2', 1],
  ]);
  const r = await tuneModel(graph, { budgetSeconds: 3, threads: 1, noRecords: true, library: false });
  const [big, medium, tiny, pool] = r.tasks;
  assert.ok(r.tasks.filter((t) => t !== big).every((t) => t.shareOfLatency < big!.shareOfLatency), 'the 192^3 matmul dominates the latency');
  assert.ok(big!.tuneCalls > 1, `the largest task had ${big!.tuneCalls} tune calls`);
  for (const t of [medium!, tiny!, pool!]) assert.ok(big!.tuningSeconds > t.tuningSeconds, `${t.spec} had ${t.tuningSeconds} s, the largest task ${big!.tuningSeconds} s`);
  // tiny tasks (under 1% of the latency) and pools get round 0 only
  assert.is(tiny!.tuneCalls, 1);
  assert.is(pool!.tuneCalls, 1);
  const slices = r.history.filter((p) => p.task !== undefined);
  assert.ok(slices.length === r.tasks.reduce((a, t) => a + t.tuneCalls - 1, 0));
  assert.ok(slices.filter((p) => p.task === big!.spec).length > slices.length / 2);
  // a slice keeps the best kernel so far: the estimate never goes up while tuning
  const points = r.history.slice(0, 1 + slices.length);
  assert.ok(points.every((p, i) => i === 0 || p.estimatedLatency <= points[i - 1]!.estimatedLatency));
  assert.ok(r.seconds >= 3 - MIN_SLICE_SECONDS, 'slices go on until less than one is left of the budget');
  assert.match(pool!.chosenBecause, /^generated: no library alternative \(maxpool2d computes max/);
});

test('a task where OpenBLAS is faster runs on the library, and the artifact records it', async () => {
  // tune limited to one measurement keeps the default (scalar) schedule: OpenBLAS is far faster there
  const graph = graphOf('library', [['matmul 128x128x256 +bias', 1], ['maxpool2d n1 c8 h16 w16 r2 s2 stride2', 1]]);
  const r = await tuneModel(graph, { budgetSeconds: 0.5, threads: 1, noRecords: true, maxMeasurementsPerTune: 1 });
  const [mm, pool] = r.tasks;
  assert.is(mm!.implementation, 'library');
  assert.ok(mm!.sideBySide!.library < mm!.sideBySide!.generated);
  assert.is(mm!.seconds, mm!.sideBySide!.library);
  assert.match(mm!.chosenBecause, /^library \d+\.\d\dx faster: OpenBLAS \S+ \(\w+\) sgemm \+ JS epilogue [\d.]+ us vs generated [\d.]+ us, side by side on 1 thread$/);
  const ratio = Number(/^library (\d+\.\d\d)x/.exec(mm!.chosenBecause)![1]);
  assert.ok(Math.abs(ratio - mm!.sideBySide!.generated / mm!.sideBySide!.library) < 0.01, 'the ratio is of the side-by-side figures');
  assert.is(pool!.implementation, 'generated');
  const artifact = parseTunedModel(JSON.stringify(r.tuned), 'the artifact');
  assert.equal(artifact.tasks.map((t) => t.implementation), ['library', 'generated']);
  // a library task keeps its generated schedule too (the fallback without OpenBLAS)
  assert.is(Schedule.parse(parseProblem(mm!.spec), artifact.tasks[0]!.schedule).text(), mm!.schedule);
});

test('a conv below the threshold also tries NCHWc: the faster of NCHW and blocked-plus-conversions at the region\'s edges is kept, and the artifact says which', async () => {
  // a 7x7-output conv (ResNet's last stage, small): its NCHW kernel is far from the peak, its blocked twin is not
  const spec = 'conv2d n1 c32 h7 w7 k32 r3 s3 stride1 pad1 +bias +relu';
  const graph = graphOf('layout', [[spec, 2]]);
  const r = await tuneModel(graph, { budgetSeconds: 0.5, threads: 1, noRecords: true, tryBlockedBelow: Infinity });
  const [t] = r.tasks;
  const artifact = parseTunedModel(JSON.stringify(r.tuned), 'the artifact');
  assert.is(artifact.tasks[0]!.layout, t!.layout);
  if (t!.layout === 'nchw') {
    assert.is(t!.blocked, undefined);
    Schedule.parse(parseProblem(spec), t!.schedule);
  } else {
    assert.match(t!.layout, /^nchw\d+c$/);
    const b = t!.blocked!;
    // two nodes in a chain: the input converted before the first, the output after the last, nothing between
    assert.ok(b.kernelSeconds + b.conversionSeconds < b.nchwSeconds, 'blocked won only by beating NCHW with its conversions charged');
    assert.ok(Math.abs(b.kernelSeconds + b.conversionSeconds - t!.generatedSeconds) <= 1e-12, 'the task is charged its conversions');
    assert.ok(b.conversionSeconds > 0);
    assert.throws(() => Schedule.parse(parseProblem(spec), t!.schedule), /./, 'the schedule is of the blocked twin, not of the NCHW problem');
  }
  // never tried: always NCHW
  const never = await tuneModel(graph, { budgetSeconds: 0.3, threads: 1, noRecords: true, tryBlockedBelow: 0 });
  assert.is(never.tasks[0]!.layout, 'nchw');
});

test('bad input is refused in one line', async () => {
  for (const [run, why] of [
    [() => tuneModel(graphOf('empty', []), { budgetSeconds: 1 }), /has no kernel tasks/],
    [() => tuneModel(bert, { budgetSeconds: -1 }), /budgetSeconds must be a positive number/],
    [() => tuneModel(bert, { threads: 0 }), /thread/],
    [() => tuneModel(new Uint8Array([1, 2, 3, 4, 5]), { budgetSeconds: 1 }), /./],
  ] as const) {
    try {
      await run();
      assert.unreachable('accepted');
    } catch (e) {
      assert.is((e as Error).name, 'LoopTuneError', String(e));
      assert.match((e as Error).message, why);
      assert.not.match((e as Error).message, /\n/);
    }
  }
});

test.run();
