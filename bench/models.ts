/**
 * Whole models against ONNX Runtime (issue #17): the zoo's ResNet-18, ResNet-50, MobileNetV2 and
 * BERT-base encoder layer (ir/model/zoo: random weights, batch 1, fp32), on 1 and 2 threads. Per
 * model and thread count: `tuneModel` (what `looptune compile` runs: the shipped policy and cost
 * model, the default 60 s budget, a fresh in-memory record store so the figure is tuning from
 * scratch), then `loadModel` on the artifact and onnxruntime-node (the same ONNX bytes, same
 * intra-op threads, graph optimizations on, weights as initializers) timed in alternating rounds
 * in this process, best and median; the outputs compared. Peak memory: each runtime loads and runs
 * the model in a child process of its own (bench/models/rss-child.ts), which reports its maximum
 * RSS beside the RSS of an idle Node.js; looptune's plan reports its arena and weight bytes.
 *
 * `--more S` instead tunes ResNet-18 (or the first --models) at 1 thread for S more seconds
 * (budget 60 + S, the same scheduler, from scratch) to show what longer tuning would still gain:
 * bench/results/models-longer.json and models-longer.html.
 *
 *   npm run bench -- models [--quick] [--models resnet18,bert-layer] [--threads 1,2] [--budget 60] [--more 600]
 *   npm run bench -- models --memory-only     (the memory figures again, from the artifacts a full run wrote)
 *
 * Writes bench/results/models.json and models.html.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, type CompiledModel } from '../agent/compiled-model.ts';
import { tuneModel, type TuneModelResult } from '../agent/tune-model.ts';
import { writeTunedModel } from '../agent/tuned-model.ts';
import { barPlot, esc, linePlot } from '../agent/report/svg.ts';
import { compareOutputs, median } from '../cli/run-model.ts';
import { fail } from '../ir/errors.ts';
import { randomArray } from '../ir/interpret.ts';
import { importOnnx } from '../ir/model/onnx-import.ts';
import { flops } from '../ir/problem.ts';
import { zooModel, zooName, zooSignature, type ZooName } from '../ir/model/zoo/index.ts';
import { hostIsa } from '../targets/runtime/host.ts';
import { onnxRuntimeLibrary, onnxRuntimeSessionOptions } from './peers/onnxruntime.ts';

const MODELS: readonly ZooName[] = ['resnet18', 'resnet50', 'mobilenetv2', 'bert-layer'];
const QUICK_MODELS: readonly ZooName[] = ['resnet18-tiny', 'bert-layer-tiny'];
/** Alternating rounds of timing (looptune then ONNX Runtime); the best round counts. */
const ROUNDS = 3;
/** Timed runs per round go on until at least this long was spent (and at least MIN_RUNS runs). */
const ROUND_SECONDS = 1;
const MIN_RUNS = 5;
const WARMUP_RUNS = 3;
const MODEL_DIR = join(import.meta.dirname, 'models', 'onnx');
const RESULTS = join(import.meta.dirname, 'results');

export interface BenchModelsOptions {
  readonly quick: boolean;
  readonly models?: readonly string[];
  readonly threads?: readonly number[];
  readonly budget?: number;
  readonly more?: number;
  /** re-measure only the memory figures of models.json, from the tuned artifacts it wrote */
  readonly memoryOnly?: boolean;
}

interface Timing {
  readonly bestSeconds: number;
  readonly medianSeconds: number;
}

interface MemoryReading {
  /** the child's maximum resident set (load-time transients included) */
  readonly maxRssBytes: number;
  /** its resident set after the runs, the model still loaded */
  readonly steadyRssBytes: number;
  /** the same child's resident set before it loaded anything (Node.js and the runtime's code) */
  readonly startRssBytes: number;
}

/** Runs `once` until ROUND_SECONDS passed (at least MIN_RUNS times); every run's seconds. */
async function timedRuns(once: () => void | Promise<void>): Promise<number[]> {
  const seconds: number[] = [];
  const start = performance.now();
  while (seconds.length < MIN_RUNS || performance.now() - start < ROUND_SECONDS * 1000) {
    const t0 = performance.now();
    await once();
    seconds.push((performance.now() - t0) / 1000);
  }
  return seconds;
}

function summarize(rounds: readonly number[][]): Timing {
  const all = rounds.flat();
  return { bestSeconds: Math.min(...all), medianSeconds: Math.min(...rounds.map(median)) };
}

/** The child measuring one runtime's memory: its JSON line, parsed. */
function memoryOf(runtime: 'looptune' | 'onnxruntime', model: string, tuned: string, threads: number, shapes: Record<string, number[]>): MemoryReading | { error: string } {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(import.meta.dirname, 'models', 'rss-child.ts'), runtime, model, tuned, String(threads), JSON.stringify(shapes)], {
    encoding: 'utf8', maxBuffer: 1 << 20,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as MemoryReading;
    if (typeof parsed.maxRssBytes === 'number') return parsed;
  } catch { /* fall through: the error below says what the child printed */ }
  return { error: `${runtime} child exited ${r.status}: ${(r.stderr || line).trim().split('\n').pop()}` };
}

/** Batch 1: the zoo's symbolic dims (the batch) fixed at 1. */
function batchOne(name: ZooName): Record<string, number[]> {
  const { input } = zooSignature(name);
  return { [input.name]: input.dims.map((d) => (typeof d === 'number' ? d : 1)) };
}

/** flops of one inference: every kernel node's problem (host ops are not counted). */
function modelFlops(bytes: Uint8Array, inputShapes: Record<string, number[]>): { total: number; conv: number } {
  const g = importOnnx(bytes, { inputShapes });
  let total = 0, conv = 0;
  for (const n of g.nodes) {
    if (n.kind !== 'kernel') continue;
    const f = flops(n.problem);
    total += f;
    if (n.problem.op === 'conv2d') conv += f;
  }
  return { total, conv };
}

/** Effective GFLOPS of the conv tasks from the scheduler's per-task seconds (count × seconds). */
function convTaskGflops(r: TuneModelResult): number | undefined {
  let f = 0, s = 0;
  for (const t of r.tasks) {
    if (!t.spec.startsWith('conv2d')) continue;
    f += t.count * (t.seconds * t.gflops * 1e9);
    s += t.count * t.seconds;
  }
  return s > 0 ? f / s / 1e9 : undefined;
}

async function benchOne(name: ZooName, bytes: Uint8Array, path: string, threads: number, budget: number): Promise<Record<string, unknown>> {
  const started = performance.now();
  let lastLine = 0;
  const result = await tuneModel(bytes, {
    budgetSeconds: budget, threads, noRecords: true, name, inputShapes: batchOne(name),
    onProgress: (p) => {
      const now = performance.now();
      if (now - lastLine < 10_000) return;
      lastLine = now;
      console.log(`  ${name} ${threads}T: ${p.seconds.toFixed(0)} s, task ${p.task + 1}/${p.tasks} (${p.phase})`);
    },
  });
  const tuningSeconds = (performance.now() - started) / 1000;
  const tunedPath = join(RESULTS, `models-${name}-${threads}t.tuned.json`);
  await writeTunedModel(tunedPath, result.tuned);

  const m: CompiledModel = await loadModel(bytes, { tuned: result.tuned, threads });
  const session = await ort.InferenceSession.create(bytes, onnxRuntimeSessionOptions(threads));
  try {
    const inputs: Record<string, Float32Array> = {};
    m.inputs.forEach((v, k) => { inputs[v.name] = randomArray(v.shape.reduce((a, b) => a * b, 1), 1 + k); });
    const ours: Record<string, Float32Array> = {};
    for (const v of m.outputs) ours[v.name] = new Float32Array(v.shape.reduce((a, b) => a * b, 1));
    const feeds = Object.fromEntries(m.inputs.map((v) => [v.name, new ort.Tensor('float32', inputs[v.name]!, [...v.shape])]));
    const theirs: Record<string, Float32Array> = {};
    for (const v of m.outputs) theirs[v.name] = new Float32Array(v.shape.reduce((a, b) => a * b, 1));
    const fetches = Object.fromEntries(m.outputs.map((v) => [v.name, new ort.Tensor('float32', theirs[v.name]!, [...v.shape])]));
    const runOurs = () => m.runInto(inputs, ours);
    const runTheirs = async () => { await session.run(feeds, fetches); };
    for (let i = 0; i < WARMUP_RUNS; i++) {
      runOurs();
      await runTheirs();
    }
    const errors = m.outputs.map((v) => compareOutputs(v.name, ours[v.name]!, theirs[v.name]!));
    const oursRounds: number[][] = [], theirsRounds: number[][] = [];
    for (let r = 0; r < ROUNDS; r++) {
      oursRounds.push(await timedRuns(runOurs));
      theirsRounds.push(await timedRuns(runTheirs));
    }
    const looptune = summarize(oursRounds), onnxruntime = summarize(theirsRounds);
    const f = modelFlops(bytes, batchOne(name));
    const d = m.describe();
    const row = {
      model: name, threads, tuningSeconds, budgetSeconds: budget, measurements: result.measurements,
      peakGflops: result.peakGflops, gflop: f.total / 1e9,
      looptune, onnxruntime, ratio: onnxruntime.bestSeconds / looptune.bestSeconds,
      looptuneEffectiveGflops: f.total / looptune.bestSeconds / 1e9,
      onnxruntimeEffectiveGflops: f.total / onnxruntime.bestSeconds / 1e9,
      looptunePercentOfPeak: (100 * f.total) / looptune.bestSeconds / 1e9 / result.peakGflops,
      onnxruntimePercentOfPeak: (100 * f.total) / onnxruntime.bestSeconds / 1e9 / result.peakGflops,
      convTaskGflops: convTaskGflops(result),
      estimatedKernelSeconds: result.endToEndEstimateSeconds,
      errors, withinTolerance: errors.every((e) => e.withinTolerance),
      plan: { arenaBytes: d.peakBytes, unsharedBytes: d.unsharedBytes, weightBytes: d.weightBytes, copiesPerRun: d.copiesPerRun, kernels: d.kernels },
      tasks: result.tasks.map((t) => ({
        spec: t.spec, count: t.count, shareOfLatency: t.shareOfLatency, implementation: t.implementation,
        gflops: t.gflops, percentOfPeak: t.percentOfPeak, seconds: t.seconds, tuningSeconds: t.tuningSeconds, measurements: t.measurements,
      })),
      history: result.history,
      memory: threads === 1 ? { looptune: memoryOf('looptune', path, tunedPath, threads, batchOne(name)), onnxruntime: memoryOf('onnxruntime', path, tunedPath, threads, batchOne(name)) } : undefined,
    };
    const ms = (s: number) => (s * 1e3).toFixed(2);
    console.log(`${name} ${threads}T: looptune ${ms(looptune.bestSeconds)} ms (median ${ms(looptune.medianSeconds)}), ONNX Runtime ${ms(onnxruntime.bestSeconds)} ms `
      + `(${ms(onnxruntime.medianSeconds)}): ${row.ratio.toFixed(2)}x; ${row.looptunePercentOfPeak.toFixed(0)}% vs ${row.onnxruntimePercentOfPeak.toFixed(0)}% of peak; `
      + `tuned in ${tuningSeconds.toFixed(1)} s; max rel error ${Math.max(...errors.map((e) => e.maxRelError)).toExponential(1)}`);
    return row;
  } finally {
    m.dispose();
    await session.release();
  }
}

/** ResNet-18 (or the quick model) tuned 60 + more seconds at 1 thread: the latency curve and the end figure. */
async function longerTuning(name: ZooName, bytes: Uint8Array, budget: number, more: number): Promise<Record<string, unknown>> {
  const r = await tuneModel(bytes, { budgetSeconds: budget + more, threads: 1, noRecords: true, name, inputShapes: batchOne(name) });
  const atBudget = [...r.history].reverse().find((p) => p.seconds <= budget + 1) ?? r.history[0]!;
  const m = await loadModel(bytes, { tuned: r.tuned, threads: 1 });
  try {
    const inputs: Record<string, Float32Array> = {};
    m.inputs.forEach((v, k) => { inputs[v.name] = randomArray(v.shape.reduce((a, b) => a * b, 1), 1 + k); });
    for (let i = 0; i < WARMUP_RUNS; i++) m.run(inputs);
    const rounds: number[][] = [];
    for (let i = 0; i < ROUNDS; i++) rounds.push(await timedRuns(() => { m.run(inputs); }));
    const measured = summarize(rounds);
    return {
      model: name, threads: 1, budgetSeconds: budget + more, seconds: r.seconds,
      estimateAtBudget: atBudget.estimatedLatency, estimateAtEnd: r.endToEndEstimateSeconds,
      gainOverBudget: 1 - r.endToEndEstimateSeconds / atBudget.estimatedLatency, measured, history: r.history,
    };
  } finally {
    m.dispose();
  }
}

function longerPlot(longer: Record<string, unknown>): string {
  return linePlot([{
    name: String(longer.model),
    points: (longer.history as { seconds: number; estimatedLatency: number }[]).map((p) => [p.seconds, p.estimatedLatency * 1e3] as const),
  }], { title: `${String(longer.model)}, 1 thread: ${String(longer.budgetSeconds)} s of tuning`, xLabel: 'seconds', yLabel: 'estimated kernel ms' });
}

function html(rows: readonly Record<string, unknown>[]): string {
  const latency = (threads: number) => barPlot(rows.filter((r) => r.threads === threads).map((r) => ({
    label: String(r.model),
    values: [
      { name: 'looptune', value: 1e3 * (r.looptune as Timing).bestSeconds },
      { name: 'ONNX Runtime', value: 1e3 * (r.onnxruntime as Timing).bestSeconds },
    ],
  })), { title: `latency, batch 1, ${threads} thread${threads > 1 ? 's' : ''} (lower is better)`, yLabel: 'ms' });
  const threadsSeen = [...new Set(rows.map((r) => r.threads as number))];
  const curves = linePlot(rows.filter((r) => r.threads === 1).map((r) => ({
    name: String(r.model),
    points: (r.history as { seconds: number; estimatedLatency: number }[]).map((p, _, all) => [p.seconds, p.estimatedLatency / all[0]!.estimatedLatency] as const),
  })), { title: 'tuning: best-so-far kernel time over tuning seconds, 1 thread (relative to round 0)', xLabel: 'seconds', yLabel: 'latency / round 0' });
  const tables = rows.map((r) => {
    const tasks = (r.tasks as { spec: string; count: number; shareOfLatency: number; gflops: number; percentOfPeak: number; tuningSeconds: number; implementation: string }[])
      .map((t) => `<tr><td>${esc(t.spec)}</td><td>${t.count}</td><td>${(100 * t.shareOfLatency).toFixed(1)}%</td><td>${t.gflops.toFixed(0)}</td><td>${t.percentOfPeak.toFixed(0)}%</td><td>${t.tuningSeconds.toFixed(1)}</td><td>${t.implementation}</td></tr>`).join('');
    return `<h3>${esc(String(r.model))}, ${String(r.threads)} thread(s)</h3><table border="1" cellpadding="3"><tr><th>task</th><th>count</th><th>share</th><th>GFLOPS</th><th>% of peak</th><th>tuning s</th><th>kernel</th></tr>${tasks}</table>`;
  }).join('');
  return `<!doctype html><meta charset="utf-8"><title>looptune models</title>${threadsSeen.map(latency).join('<br>')}<br>${curves}<br>${tables}\n`;
}

/** Re-measures the memory of every 1-thread row of models.json with the artifacts the full run wrote. */
async function memoryOnly(): Promise<unknown> {
  const file = join(RESULTS, 'models.json');
  const { readFileSync } = await import('node:fs');
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { rows: Record<string, unknown>[] };
  for (const r of saved.rows) {
    if (r.threads !== 1) continue;
    const name = zooName(String(r.model));
    const path = join(MODEL_DIR, `${name}.onnx`);
    writeFileSync(path, zooModel(name));
    const tunedPath = join(RESULTS, `models-${name}-1t.tuned.json`);
    r.memory = { looptune: memoryOf('looptune', path, tunedPath, 1, batchOne(name)), onnxruntime: memoryOf('onnxruntime', path, tunedPath, 1, batchOne(name)) };
    console.log(name, JSON.stringify(r.memory));
  }
  writeFileSync(file, JSON.stringify(saved, null, 2) + '\n');
  return saved.rows.map((r) => r.memory);
}

export async function benchModels(opts: BenchModelsOptions): Promise<unknown> {
  if (opts.memoryOnly) return memoryOnly();
  if (opts.more) {
    const name = opts.models?.length ? zooName(opts.models[0]!) : opts.quick ? QUICK_MODELS[0]! : MODELS[0]!;
    const longer = await longerTuning(name, zooModel(name), opts.budget ?? (opts.quick ? 5 : 60), opts.more);
    console.log(JSON.stringify({ ...longer, history: undefined }, null, 2));
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, 'models-longer.json'), JSON.stringify({ host: hostIsa().model, date: new Date().toISOString(), longer }, null, 2) + '\n');
    writeFileSync(join(RESULTS, 'models-longer.html'), `<!doctype html><meta charset="utf-8"><title>looptune: longer tuning</title>${longerPlot(longer)}\n`);
    return longer;
  }
  const names = (opts.models?.length ? opts.models.map(zooName) : opts.quick ? QUICK_MODELS : MODELS);
  const threadCounts = opts.threads?.length ? opts.threads : [1, 2];
  const budget = opts.budget ?? (opts.quick ? 5 : 60);
  if (!(budget > 0)) fail(`models: --budget must be positive, got ${budget}`);
  mkdirSync(MODEL_DIR, { recursive: true });
  mkdirSync(RESULTS, { recursive: true });
  const rows: Record<string, unknown>[] = [];
  for (const name of names) {
    const bytes = zooModel(name);
    const path = join(MODEL_DIR, `${name}.onnx`);
    writeFileSync(path, bytes);
    for (const threads of threadCounts) rows.push(await benchOne(name, bytes, path, threads, budget));
  }
  const summary = {
    library: onnxRuntimeLibrary(),
    /** models where looptune's best latency <= ONNX Runtime's, per thread count (goal: all) */
    atLeastOnnxRuntime: Object.fromEntries(threadCounts.map((t) => [t, `${rows.filter((r) => r.threads === t && (r.ratio as number) >= 1).length}/${rows.filter((r) => r.threads === t).length}`])),
    ratios: rows.map((r) => ({ model: r.model, threads: r.threads, ratio: r.ratio, tuningSeconds: r.tuningSeconds })),
    allWithinTolerance: rows.every((r) => r.withinTolerance),
  };
  console.log(JSON.stringify(summary, null, 2));
  writeFileSync(join(RESULTS, 'models.json'), JSON.stringify({ host: hostIsa().model, date: new Date().toISOString(), summary, rows }, null, 2) + '\n');
  writeFileSync(join(RESULTS, 'models.html'), html(rows));
  return summary;
}
