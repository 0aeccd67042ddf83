/**
 * A whole ONNX model on the cuda backend (agent/gpu-model.ts), on the GPU machine: the device entry
 * point bundled by targets/cuda/bundle.ts as looptune-cuda-model.mjs (cuda-model.sh).
 *
 *   looptune-cuda-model <model.onnx | zoo name> [--batches 1,8] [--budget S] [--runs N] [--check-images K|all]
 *                       [--records F] [--out F] [--simulator]
 *
 * The model is an .onnx file, or the name of a zoo model (ir/model/zoo: resnet18, ...), built here
 * with bench/models/build-models.ts's default seed: the same bytes as its file, without carrying
 * ResNet-18's 47 MB of weights to the GPU machine.
 *
 * Per batch size: the graph imported at that batch (the file's symbolic batch dimension), fused and
 * planned as on the CPU; kernels from the cuda target's first working seed (--budget 0, the
 * default) or tuned within --budget seconds in total (agent/gpu-model-schedules.ts); every kernel
 * verified on the GPU against the interpreter before use. Then:
 *  - check: the outputs of one run on seeded random inputs against the CPU reference
 *    (ir/model/reference.ts, float64 JavaScript, on this machine's CPU), within MODEL_TOLERANCE of
 *    the output's magnitude (cli/run-model.ts). Images are independent, so at a batch above 2 the
 *    first and the last image are checked by default, each against a batch-1 reference run
 *    (--check-images all: every image, in one reference run of the whole batch);
 *  - graph latency: CUDA events around the whole graph's launches (inputs already on the GPU,
 *    outputs left there: what torch's timing around model(x) measures), --runs runs after 5
 *    untimed ones, best and median;
 *  - end to end: wall time of run() (upload, graph, download), best and median of --runs;
 *  - per task: 10 runs with events between nodes, each node's median (its output's clear included),
 *    summed over the nodes of each task (ir/model/graph.ts modelTasks), with GFLOPS and its share.
 * Writes JSON (default bench/results/cuda-model.json). --simulator runs it all without a GPU, in the
 * PTX simulator, its "times" the simulator's wall clock: a smoke test of this script on a tiny model.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { simulatorDevice, type ModelDevice } from '../agent/gpu-model-device.ts';
import { driverDevice } from '../agent/gpu-model-driver.ts';
import { loadGpuModel, type GpuModel, type GpuModelDescription } from '../agent/gpu-model.ts';
import type { GpuSchedulePolicy } from '../agent/gpu-model-schedules.ts';
import { exitWithFailure } from '../cli/errors.ts';
import { compareOutputs, median, MODEL_TOLERANCE } from '../cli/run-model.ts';
import { fail } from '../ir/errors.ts';
import { fsFailure } from '../ir/fs-errors.ts';
import { randomArray } from '../ir/interpret.ts';
import { modelTasks, type ModelGraph } from '../ir/model/graph.ts';
import { importOnnx } from '../ir/model/onnx-import.ts';
import { decodeModel } from '../ir/model/onnx-proto.ts';
import { isZooName, zooModel } from '../ir/model/zoo/index.ts';
import { runReference } from '../ir/model/reference.ts';
import { flops } from '../ir/problem.ts';

const DEFAULT_OUT = join(import.meta.dirname ?? '.', 'results', 'cuda-model.json');
const WARMUP_RUNS = 5;
const PROFILE_RUNS = 10;
const INPUT_SEED = 1;

interface Options {
  batches: string;
  budget: string;
  runs: string;
  checkImages: string;
  records?: string;
  out: string;
  simulator?: boolean;
}

/** The simulator with wall-clock "timing" of each part, for --simulator. */
function wallClockSimulator(): ModelDevice {
  const sim = simulatorDevice();
  return {
    ...sim,
    name: `${sim.name}, wall-clock times`,
    timeParts: (parts) => parts.map((part) => {
      const t0 = performance.now();
      part();
      return (performance.now() - t0) / 1000;
    }),
  };
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function positiveInteger(text: string, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) fail(`${what} must be a positive integer, got "${text}"`);
  return Number(text);
}

/** The graph inputs' declared dims, each symbolic one set to `batch`. */
function inputShapesAt(bytes: Uint8Array, batch: number): Record<string, number[]> {
  const g = decodeModel(bytes).graph;
  if (!g) fail('the ONNX file has no graph');
  const initializers = new Set(g.initializer.map((t) => t.name));
  const shapes: Record<string, number[]> = {};
  for (const v of g.input) {
    if (initializers.has(v.name)) continue;
    const dims = v.type?.tensorType?.shape?.dim ?? [];
    shapes[v.name] = dims.map((d) => (d.dimValue !== undefined && Number(d.dimValue) > 0 ? Number(d.dimValue) : batch));
  }
  return shapes;
}

function stats(seconds: readonly number[]): { bestMs: number; medianMs: number; runs: number } {
  return { bestMs: Math.min(...seconds) * 1e3, medianMs: median(seconds) * 1e3, runs: seconds.length };
}

/** Every batch-indexed array's image k (its first dimension is the batch). */
function imageOf(data: Float32Array, shape: readonly number[], k: number): Float32Array {
  const per = product(shape.slice(1));
  return data.subarray(k * per, (k + 1) * per);
}

interface CheckResult {
  readonly against: string;
  readonly images: readonly number[] | 'all';
  readonly tolerance: number;
  readonly outputs: ReturnType<typeof compareOutputs>[];
  readonly withinTolerance: boolean;
  readonly seconds: number;
}

/** The GPU's outputs against the CPU reference: per checked image, or the whole batch at once. */
function check(bytes: Uint8Array, g: ModelGraph, batch: number, inputs: Record<string, Float32Array>, ours: Record<string, Float32Array>, images: number | 'all'): CheckResult {
  const t0 = performance.now();
  const batched = (shape: readonly number[]) => shape[0] === batch;
  const perImage = images !== 'all' && images < batch && batch > 1 && g.inputs.every((v) => batched(v.shape)) && g.outputs.every((v) => batched(v.shape));
  const results: ReturnType<typeof compareOutputs>[] = [];
  let checked: number[] | 'all' = 'all';
  if (perImage) {
    // the first and the last image (then the ones between, evenly), each through a batch-1 graph
    const count = Math.min(batch, images);
    checked = [...new Set(Array.from({ length: count }, (_, i) => (count === 1 ? 0 : Math.round((i * (batch - 1)) / (count - 1)))))];
    const one = importOnnx(bytes, { inputShapes: inputShapesAt(bytes, 1) });
    for (const k of checked) {
      const ref = runReference(one, Object.fromEntries(g.inputs.map((v) => [v.name, imageOf(inputs[v.name]!, v.shape, k).slice()])));
      for (const v of g.outputs) results.push({ ...compareOutputs(v.name, imageOf(ours[v.name]!, v.shape, k), ref.outputs[v.name]!), name: `${v.name}[${k}]` });
    }
  } else {
    const ref = runReference(g, inputs);
    for (const v of g.outputs) results.push(compareOutputs(v.name, ours[v.name]!, ref.outputs[v.name]!));
  }
  return {
    against: 'the CPU reference (ir/model/reference.ts: float64 JavaScript, stored as fp32 per node)',
    images: checked, tolerance: MODEL_TOLERANCE, outputs: results,
    withinTolerance: results.every((r) => r.withinTolerance), seconds: (performance.now() - t0) / 1000,
  };
}

interface TaskRow {
  spec: string;
  count: number;
  ms: number;
  share: number;
  gflops: number;
  schedules: string[];
  sources: string[];
  tuning?: { budgetSeconds: number; seconds: number; measurements: number; gflops: number }[];
}

/** Each task's median GPU time per run (its nodes' medians summed), from PROFILE_RUNS profiled runs. */
function taskTimes(m: GpuModel, d: GpuModelDescription): { tasks: TaskRow[]; copiesMs: number; nodesMs: number } {
  const samples = new Map<string, number[]>();
  for (let r = 0; r < PROFILE_RUNS; r++) {
    for (const [name, s] of m.profile()) samples.set(name, [...(samples.get(name) ?? []), s]);
  }
  const nodeMs = new Map([...samples].map(([name, xs]) => [name, median(xs) * 1e3]));
  const nodesMs = [...nodeMs.values()].reduce((a, b) => a + b, 0);
  const byNode = new Map(d.nodes.map((n) => [n.name, n]));
  const kernelOf = new Map(d.kernels.map((k) => [k.spec, k]));
  const tasks = modelTasks(m.graph).map((t): TaskRow => {
    const ms = t.nodes.reduce((a, name) => a + (nodeMs.get(name) ?? 0), 0);
    const runs = [...new Set(t.nodes.map((name) => byNode.get(name)!.runs ?? t.problem.spec))];
    const kernels = runs.map((spec) => kernelOf.get(spec)!);
    const tuning = kernels.flatMap((k) => (k.tuning ? [k.tuning] : []));
    return {
      spec: t.problem.spec, count: t.count, ms, share: ms / nodesMs,
      gflops: (t.count * flops(t.problem)) / (ms / 1e3) / 1e9,
      schedules: [...new Set(kernels.map((k) => k.schedule))], sources: [...new Set(kernels.map((k) => k.source))],
      ...(tuning.length > 0 ? { tuning } : {}),
    };
  });
  return { tasks: tasks.sort((a, b) => b.ms - a.ms), copiesMs: nodeMs.get('copies') ?? 0, nodesMs };
}

async function runBatch(bytes: Uint8Array, batch: number, policy: GpuSchedulePolicy, runs: number, checkImages: number | 'all', simulator: boolean) {
  const inputShapes = inputShapesAt(bytes, batch);
  const g = importOnnx(bytes, { inputShapes });
  const device = simulator ? wallClockSimulator() : driverDevice();
  try {
    const t0 = performance.now();
    const m = await loadGpuModel(g, { device, schedules: policy, onProgress: (line) => console.log(`  ${line}`) });
    const loadSeconds = (performance.now() - t0) / 1000;
    try {
      const d = m.describe();
      const inputs = Object.fromEntries(g.inputs.map((v, k) => [v.name, randomArray(product(v.shape), INPUT_SEED + k)]));
      const outputs = m.run(inputs);
      const checked = check(bytes, g, batch, inputs, outputs, checkImages);
      console.log(`  check: ${checked.outputs.map((o) => `${o.name} ${o.maxRelError.toExponential(2)}`).join(', ')} (${checked.withinTolerance ? 'within' : 'OUTSIDE'} ${MODEL_TOLERANCE}) in ${checked.seconds.toFixed(1)} s`);
      const graph = stats(m.time(inputs, { runs, warmup: WARMUP_RUNS }));
      const wall: number[] = [];
      for (let r = 0; r < runs; r++) {
        const s = performance.now();
        m.run(inputs);
        wall.push((performance.now() - s) / 1000);
      }
      const endToEnd = stats(wall);
      const totalFlops = modelTasks(g).reduce((a, t) => a + t.count * flops(t.problem), 0);
      const where = taskTimes(m, d);
      console.log(`  graph ${graph.bestMs.toFixed(3)} ms best, ${graph.medianMs.toFixed(3)} ms median; end to end ${endToEnd.bestMs.toFixed(3)} / ${endToEnd.medianMs.toFixed(3)} ms; ${(totalFlops / (graph.bestMs / 1e3) / 1e9).toFixed(0)} GFLOPS effective`);
      for (const t of where.tasks) {
        console.log(`    ${t.ms.toFixed(3).padStart(8)} ms ${(100 * t.share).toFixed(1).padStart(5)}% ${t.gflops.toFixed(0).padStart(6)} GFLOPS x${t.count} ${t.spec} [${t.sources.join(',')}]`);
      }
      return {
        batch, inputShapes, device: d.device, loadSeconds, schedules: d.schedules,
        tuningSeconds: d.kernels.reduce((a, k) => a + (k.tuning?.seconds ?? 0), 0),
        check: checked, graph, endToEnd,
        flopsPerRun: totalFlops, gflopsEffective: totalFlops / (graph.bestMs / 1e3) / 1e9,
        perTask: where.tasks, copiesMs: where.copiesMs, profiledNodesMs: where.nodesMs,
        perRun: d.perRun, hostOps: d.hostOps, arenaBytes: d.arenaBytes, unsharedBytes: d.unsharedBytes, weightBytes: d.weightBytes,
        nodes: d.nodes, kernels: d.kernels,
      };
    } finally {
      m.dispose();
    }
  } finally {
    device.dispose();
  }
}

async function main(): Promise<void> {
  const program = new Command()
    .name('looptune-cuda-model')
    .description('a whole ONNX model on the cuda backend: check against the CPU reference, latency, per-task time')
    .argument('<model>', 'an .onnx file, or a zoo model name (resnet18, ...: built here, seed 1, as bench/models/build-models.ts writes it)')
    .option('--batches <list>', 'batch sizes, comma-separated', '1,8')
    .option('--budget <seconds>', 'total tuning seconds per batch size (0: the cuda seeds, no measurement)', '0')
    .option('--runs <n>', 'timed runs (graph latency and end to end)', '50')
    .option('--check-images <k>', "images checked against the CPU reference per batch ('all', or the first and last ... k)", '2')
    .option('--records <file>', 'tuning records to read and append (default: none)')
    .option('--out <file>', 'the JSON report', DEFAULT_OUT)
    .option('--simulator', 'no GPU: the PTX simulator, wall-clock times (a smoke test on a tiny model)')
    .parse(process.argv);
  const file = program.args[0]!;
  const o = program.opts<Options>();
  const batches = o.batches.split(',').map((b) => positiveInteger(b.trim(), '--batches'));
  const budget = Number(o.budget);
  if (!(budget >= 0) || !Number.isFinite(budget)) fail(`--budget must be a non-negative number of seconds, got "${o.budget}"`);
  if (budget > 0 && o.simulator) fail('--budget tunes on the GPU; the simulator runs the seed path only (--budget 0)');
  const runs = positiveInteger(o.runs, '--runs');
  const checkImages = o.checkImages === 'all' ? 'all' : positiveInteger(o.checkImages, '--check-images');
  const policy: GpuSchedulePolicy = budget === 0 ? { kind: 'seed' } : { kind: 'tune', budgetSeconds: budget, ...(o.records !== undefined ? { records: o.records } : {}) };
  let bytes: Uint8Array;
  if (!existsSync(file) && isZooName(file)) {
    bytes = zooModel(file);
  } else {
    try {
      bytes = new Uint8Array(readFileSync(file));
    } catch (e) {
      throw fsFailure(e);
    }
  }
  const report = {
    benchmark: 'cuda-model', model: file, date: new Date().toISOString(), device: '', budgetSecondsPerBatch: budget,
    batches: [] as Awaited<ReturnType<typeof runBatch>>[],
  };
  for (const batch of batches) {
    console.log(`${file} at batch ${batch}:`);
    report.batches.push(await runBatch(bytes, batch, policy, runs, checkImages, o.simulator === true));
  }
  report.device = report.batches[0]?.device ?? '';
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, `${JSON.stringify(report, null, 1)}\n`);
  console.log(`wrote ${o.out}`);
  if (report.batches.some((b) => !b.check.withinTolerance)) process.exitCode = 2;
}

main().catch(exitWithFailure);
