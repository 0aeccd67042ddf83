/**
 * `tuneModel`: a whole model's distinct kernel tasks (ir/model/graph.ts modelTasks) tuned within
 * one budget, Ansor's task scheduler simplified (issue 17 item 3), and per task the faster of the
 * generated kernel and the vendor library (agent/library-kernel.ts) kept.
 *
 * Round 0: every task gets one quick `tune` (the shipped policy's proposals ranked by the cost
 * model, tune's minimum of 8 measurements), in graph order, `ROUND0_SHARE` of the budget spread
 * over its tune calls (a conv or pool counts twice: it may tune its blocked twin too; at least
 * ROUND0_MIN_SECONDS each, at most tune's default). Round 0 always runs
 * whole: a budget smaller than it is exceeded. A task whose best recorded schedule on this host is
 * in the tuning records skips that search: the schedule is timed again once and verified (one
 * measurement instead of eight or more), which is how a second compile of a model, or another
 * model sharing the task, starts from the first.
 *
 * Then, slice by slice until the budget is spent, the task whose next slice is expected to cut the
 * END-TO-END latency most gets one more `tune` call (SLICE_SECONDS; tune starts from the best
 * recorded schedule, which the records now hold, with a fresh seed). The expected cut of task i,
 * run count_i times per inference at s_i seconds now (its generated kernel g_i, the library l_i):
 *
 *   benefit_i = count_i · max(0, s_i − g_i · (1 − gain_i)),   s_i = min(g_i, l_i)
 *   gain_i    = α · recent_i + (1 − α) · max(GAIN_FLOOR, 1 − p_i / p̂_i) / (1 + n_i)
 *
 * - recent_i: the fraction its last slice cut g_i by (Ansor's backward-looking term; 0 before any);
 * - p_i: its generated kernel's fraction of the peak; p̂_i: the best fraction reached by a similar
 *   task (same op, grouped or not) in this run: the gap to what this machine showed it can do on
 *   that kind of layer (Ansor's forward-looking "similar tasks" term). GAIN_FLOOR keeps the best of
 *   its kind from never being tuned again: it may still gain;
 * - n_i: the slices it already had: diminishing returns (Ansor's −g/t term decays alike);
 * - α = 0.2, Ansor's default weight of the backward-looking term.
 * A task tuning cannot bring under the library gets nothing. Only compute-bound tasks (fma: matmul,
 * bmm, convs) holding at least MIN_SHARE of the estimated latency after round 0 take part: pools,
 * elementwise tasks and tiny ones (a 1x1000 classifier matmul) get round 0 only.
 *
 * Layouts (issue 17 item 2, issue 16's finding): a conv or pool whose NCHW kernel reaches less
 * than BLOCKED_TRY_BELOW of the peak after its round-0 tune also gets a round-0 tune of its
 * blocked NCHWc twin (ir/layout.ts blockedVariant; the register-tile seeds of agent/search/sketch.ts
 * make it quick) and a timing of the conversions around it (input, +residual, output;
 * agent/tune-layout.ts timeConversionParts, timed as they run). After round 0 the layouts are
 * chosen on the whole graph (agent/choose-layouts.ts): the executor keeps NCHWc between blocked
 * layers, so a blocked task is charged only the conversions at the edges of its blocked region;
 * later slices tune the layout chosen. Layers NCHW already runs near the peak are not charged the second
 * search. A task with a library alternative (a 1x1 conv) brings its best NCHW implementation,
 * generated or library, to the layout choice; if it runs blocked, the library is dropped.
 *
 * The library: a matmul-shaped task (agent/library-kernel.ts: matmul, bmm, 1x1 stride-1 unpadded
 * convs) is also run by OpenBLAS sgemm plus its epilogue in JS, timed side by side with the
 * generated kernel (both in this process, same threads, alternating rounds, best of each) after
 * round 0 and again at the end if the generated kernel improved since; the faster is kept and
 * `chosenBecause` says by how much; the library is charged the transposes it leaves as host ops
 * (agent/library-layout-cost.ts: the plan folds them into a generated bmm, not into sgemm). Latencies are kernel time only (host nodes not included);
 * a task's seconds are tune's (the measurement worker) for generated kernels, the side-by-side
 * figure for the library.
 */
import { createHash } from 'node:crypto';
import { fail } from '../ir/errors.ts';
import { randomArray } from '../ir/interpret.ts';
import { importOnnx, type ImportOptions } from '../ir/model/onnx-import.ts';
import { modelTasks, type ModelGraph } from '../ir/model/graph.ts';
import { elementCount, flops, type Problem } from '../ir/problem.ts';
import { blockedVariant } from '../ir/layout.ts';
import { Schedule } from '../ir/schedule.ts';
import { defaultRecordsPath, RecordStore } from '../env/records.ts';
import type { Backend, Device } from '../targets/backend.ts';
import type { Kernel } from '../targets/kernel.ts';
import { backend as backendNamed, hostBackend } from '../targets/registry.ts';
import { hostKey } from '../targets/runtime/host.ts';
import { timeInProcess } from '../targets/runtime/in-process.ts';
import { defaultThreads, threadCountError } from '../targets/runtime/threads.ts';
import { timeRepetitions } from '../targets/runtime/timing.ts';
import { verifyKernel } from '../targets/verify.ts';
import { libraryKernel, whyNotGemm, type LibraryKernel } from './library-kernel.ts';
import type { SearchProgress } from './searcher.ts';
import { sha256Hex, TUNED_MODEL_FORMAT, TUNED_MODEL_VERSION, type TunedModel } from './tuned-model.ts';
import { defaultBudgetSeconds, tune, type LoadedPolicy, type TuneResult } from './tune.ts';
import { timeConversionParts, type ConversionTimes } from './tune-layout.ts';
import { chooseLayouts } from './choose-layouts.ts';
import { libraryLayoutSeconds } from './library-layout-cost.ts';

/** Default total budget of a model, seconds. */
export const DEFAULT_MODEL_BUDGET_SECONDS = 60;
/** Round 0 spreads at most this share of the budget over the tasks. */
export const ROUND0_SHARE = 0.5;
/** ... and gives each task at least this (tune measures its minimum of schedules whatever it is given). */
export const ROUND0_MIN_SECONDS = 0.1;
/** A later slice: this share of the budget, clamped to [MIN_SLICE_SECONDS, MAX_SLICE_SECONDS]. */
export const SLICE_SHARE = 0.05;
export const MIN_SLICE_SECONDS = 0.25;
export const MAX_SLICE_SECONDS = 5;
/** Tasks below this share of the estimated latency after round 0 get no later slices. */
export const MIN_SHARE = 0.01;
/** Ansor's weight of the backward-looking term (the last slice's improvement). */
export const ALPHA = 0.2;
/** The least relative gain a task is expected to make, even the best of its kind. */
export const GAIN_FLOOR = 0.05;
/** Minimum sampled seconds of each side-by-side timing round (generated vs library). */
/** A conv or pool whose NCHW kernel reaches less than this fraction of the peak also tries the blocked layout. */
export const BLOCKED_TRY_BELOW = 0.85;
const SIDE_BY_SIDE_SECONDS = 0.02;
const SIDE_BY_SIDE_ROUNDS = 2;

export interface TuneModelOptions {
  /** total seconds (default 60); round 0 always completes (see the header) */
  budgetSeconds?: number;
  /** CPU threads every kernel (and OpenBLAS) runs on (default: every core) */
  threads?: number;
  /** an x86 backend or its name (default: the host's best) */
  target?: Backend | string;
  /** tuning records: a JSONL path or a store (default: env/records.ts defaultRecordsPath) */
  records?: string | RecordStore;
  /** neither read nor write a records file: the run keeps its records in memory (later slices still start from earlier ones) */
  noRecords?: boolean;
  /** for ONNX bytes: static shapes of inputs with symbolic dims (ir/model/onnx-import.ts) */
  inputShapes?: ImportOptions['inputShapes'];
  /** the model's name in the artifact (default: the graph's) */
  name?: string;
  /** for a graph: the sha256 of the ONNX bytes it came from (default: a hash of the graph's tasks, shapes and weights) */
  sha256?: string;
  /** also time OpenBLAS on matmul-shaped tasks and keep the faster (default true) */
  library?: boolean;
  /** at most this many schedules measured per tune call (default tune's, 40) */
  maxMeasurementsPerTune?: number;
  /** a policy folder or loaded policy for every tune call (default: the target's shipped one) */
  policy?: string | LoadedPolicy;
  seed?: number;
  /** a conv or pool below this fraction of the peak in NCHW also tries the blocked layout (default BLOCKED_TRY_BELOW; 0: never, Infinity: always) */
  tryBlockedBelow?: number;
  onProgress?: (p: TuneModelProgress) => void;
  /** measure on this device instead of the backend's own (a farm's: targets/farm); it is not closed */
  device?: Device;
}

export interface TuneModelProgress {
  /** 'round0': the first tune of every task; 'scheduler': a later slice */
  readonly phase: 'round0' | 'scheduler';
  /** index into the result's tasks */
  readonly task: number;
  readonly tasks: number;
  readonly spec: string;
  /** seconds since tuneModel started, and the budget */
  readonly seconds: number;
  readonly budgetSeconds: number;
  /** the best-so-far end-to-end estimate (after round 0) */
  readonly estimatedLatency?: number;
  /** the running tune call's own progress */
  readonly search?: SearchProgress;
}

export interface ModelTaskReport {
  readonly spec: string;
  /** how many nodes of the model run it, and their names */
  readonly count: number;
  readonly nodes: readonly string[];
  /** count × seconds over the model's estimated end-to-end latency */
  readonly shareOfLatency: number;
  readonly implementation: 'generated' | 'library';
  /** the generated kernel's layout: 'nchw' or the blocked 'nchw<B>c' (its schedule is then of the blocked twin) */
  readonly layout: string;
  /** a blocked task: its kernel alone and the conversions around it, seconds per call (their sum is generatedSeconds) */
  readonly blocked?: { readonly kernelSeconds: number; readonly conversionSeconds: number; readonly nchwSeconds: number };
  /** the chosen implementation's figures, per call */
  readonly gflops: number;
  readonly seconds: number;
  readonly percentOfPeak: number;
  /** the generated kernel's schedule (kept for a library task too: the fallback where there is no OpenBLAS) */
  readonly schedule: string;
  /** the generated kernel's seconds, tune's figure (the measurement worker) */
  readonly generatedSeconds: number;
  /** where the library was timed: both kernels' seconds side by side in this process (what chose) */
  /** seconds per call side by side; `transposes`: what the library leaves as host ops beside its call (library-layout-cost.ts) */
  readonly sideBySide?: { readonly library: number; readonly generated: number; readonly transposes: number };
  readonly chosenBecause: string;
  /** wall seconds spent on the task (tune calls, the records check, library timings) */
  readonly tuningSeconds: number;
  /** tune calls (round 0 counts one; 0 when round 0 came from the records) */
  readonly tuneCalls: number;
  /** schedules really timed for it in this run */
  readonly measurements: number;
  /** round 0 started from the records: the recorded schedule timed again and verified, no search */
  readonly fromRecords: boolean;
}

export interface LatencyPoint {
  /** seconds since tuneModel started */
  readonly seconds: number;
  /** the best-so-far end-to-end estimate: sum of count × seconds over the tasks */
  readonly estimatedLatency: number;
  /** the task whose tuning gave the point (absent: the end of round 0) */
  readonly task?: string;
}

export interface TuneModelResult {
  /** the artifact (agent/tuned-model.ts), ready for writeTunedModel */
  readonly tuned: TunedModel;
  /** in graph order of first occurrence */
  readonly tasks: readonly ModelTaskReport[];
  /** kernel time of one inference: sum of count × seconds */
  readonly endToEndEstimateSeconds: number;
  /** the estimate over tuning seconds, one point after round 0 and one per slice */
  readonly history: readonly LatencyPoint[];
  readonly target: string;
  readonly threads: number;
  readonly peakGflops: number;
  /** schedules really timed, over every task */
  readonly measurements: number;
  /** wall seconds of the whole call */
  readonly seconds: number;
}

/** What the scheduler keeps of one task while tuning. */
interface TaskState {
  readonly index: number;
  readonly problem: Problem;
  readonly count: number;
  readonly nodes: readonly string[];
  readonly flops: number;
  /** "conv2d", "conv2d grouped": tasks of one kind set each other's expected % of peak */
  readonly kind: string;
  /** what is tuned: the problem itself, or its blocked twin once that layout won */
  tuning: Problem;
  layout: string;
  /** a blocked task: seconds of the conversions around its kernel (part of generatedSeconds), and the NCHW kernel's seconds it beat */
  conversionSeconds: number;
  nchwSeconds?: number;
  schedule: Schedule;
  kernel: Kernel;
  generatedSeconds: number;
  generatedGflops: number;
  fromRecords: boolean;
  tuningSeconds: number;
  tuneCalls: number;
  slices: number;
  measurements: number;
  /** the fraction the last slice cut the generated seconds by */
  recentGain: number;
  eligible: boolean;
  library?: LibraryState;
}

interface LibraryState {
  readonly kernel: LibraryKernel;
  seconds: number;
  /** per call: the transposes the library leaves as host ops, which the generated kernel folds (library-layout-cost.ts) */
  readonly layoutSeconds: number;
  /** the generated kernel's side-by-side seconds, and the schedule hash it was measured with */
  generatedSeconds: number;
  comparedHash: string;
}

function taskKind(p: Problem): string {
  return /\bgroups\d+/.test(p.spec) ? `${p.op} grouped` : p.op;
}

/** A stable hash of what a graph computes (tasks, shapes, weights), for graphs given without their ONNX bytes. */
function graphSha256(g: ModelGraph): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ name: g.name, inputs: g.inputs, outputs: g.outputs, nodes: g.nodes.map((n) => (n.kind === 'kernel' ? [n.name, n.problem.spec, n.operands, n.output] : [n.name, n.op, n.inputs, n.output])) }));
  for (const [name, w] of [...g.weights].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    h.update(name);
    h.update(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
  }
  return h.digest('hex');
}

export async function tuneModel(model: ModelGraph | Uint8Array, options: TuneModelOptions = {}): Promise<TuneModelResult> {
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const budget = options.budgetSeconds ?? DEFAULT_MODEL_BUDGET_SECONDS;
  if (!(budget > 0) || !Number.isFinite(budget)) fail(`tuneModel: budgetSeconds must be a positive number of seconds, got ${budget}`);
  const isBytes = model instanceof Uint8Array;
  const graph = isBytes ? importOnnx(model, options.inputShapes ? { inputShapes: options.inputShapes } : {}) : model;
  const sha256 = isBytes ? sha256Hex(model) : options.sha256 ?? graphSha256(graph);
  const b = options.target === undefined ? hostBackend() : typeof options.target === 'string' ? backendNamed(options.target) : options.target;
  if (b.timing !== 'native' || b.processor !== 'cpu') fail(`tuneModel: ${b.name} kernels cannot run in this process (an x86 target can)`);
  const threads = options.device ? options.device.threads ?? 1 : b.caps.threads ? options.threads ?? defaultThreads() : 1;
  const bad = threadCountError(threads);
  if (bad) fail(`tuneModel: ${bad}`);
  const found = modelTasks(graph);
  if (found.length === 0) fail(`tuneModel: ${graph.name} has no kernel tasks to tune (only host ops)`);
  const store = options.noRecords ? RecordStore.open(null)
    : options.records instanceof RecordStore ? options.records : RecordStore.open(options.records ?? defaultRecordsPath());
  const useLibrary = options.library ?? true;
  const device = options.device ?? await b.open({ threads });
  try {
    const peakGflops = (await device.peak()).gflops;
    let measured = 0;
    const progress = (index: number, phase: TuneModelProgress['phase'], extra: Partial<TuneModelProgress> = {}): void =>
      options.onProgress?.({ phase, task: index, tasks: found.length, spec: found[index]!.problem.spec, seconds: elapsed(), budgetSeconds: budget, ...extra });
    /** One tune call of a task (its `calls`-th: the seed), charged to the run's measurements. */
    const tuneOnce = async (index: number, problem: Problem, calls: number, seconds: number, phase: TuneModelProgress['phase'], estimate?: number): Promise<TuneResult> => {
      const r = await tune(problem, {
        target: b, device, records: store, budgetSeconds: seconds, seed: (options.seed ?? 0) + calls,
        ...(options.maxMeasurementsPerTune !== undefined ? { maxMeasurements: options.maxMeasurementsPerTune } : {}),
        ...(options.policy !== undefined ? { policy: options.policy } : {}),
        ...(options.onProgress ? { onProgress: (search: SearchProgress) => progress(index, phase, { search, ...(estimate !== undefined ? { estimatedLatency: estimate } : {}) }) } : {}),
      });
      if (!r.verified) fail(`tuneModel: tune found no kernel of ${problem.spec} that passed verification`);
      measured += r.timed + r.recordsRemeasured;
      return r;
    };

    // round 0: every task once, from the records where they hold it
    const states: TaskState[] = [];
    const twins = new Map<string, { twin: Problem; tuned: ReturnType<typeof tuned>; conversions: ConversionTimes }>();
    // a conv or pool may tune its blocked twin too: two calls of round 0 for it
    const round0Calls = found.reduce((n, t) => n + (blockedVariant(t.problem, b.caps.vectorLanes) ? 2 : 1), 0);
    const round0 = Math.max(ROUND0_MIN_SECONDS, (ROUND0_SHARE * budget) / round0Calls);
    for (const [index, t] of found.entries()) {
      const start = performance.now();
      progress(index, 'round0');
      const recorded = await fromRecords(t.problem, b, device, store);
      const r = recorded ? undefined : await tuneOnce(index, t.problem, 0, Math.min(round0, defaultBudgetSeconds(t.problem, peakGflops)), 'round0');
      if (recorded) measured++;
      const s: TaskState = {
        index, problem: t.problem, count: t.count, nodes: t.nodes, flops: flops(t.problem), kind: taskKind(t.problem),
        tuning: t.problem, layout: 'nchw', conversionSeconds: 0,
        ...(recorded ?? tuned(t.problem, r!)),
        fromRecords: recorded !== undefined, tuningSeconds: 0, tuneCalls: recorded ? 0 : 1, slices: 0,
        measurements: recorded ? 1 : r!.timed + r!.recordsRemeasured, recentGain: 0, eligible: false,
      };
      const twin = blockedVariant(t.problem, b.caps.vectorLanes);
      if (twin && s.generatedGflops < (options.tryBlockedBelow ?? BLOCKED_TRY_BELOW) * peakGflops) {
        const recordedTwin = await fromRecords(twin, b, device, store);
        const rt = recordedTwin ? undefined : await tuneOnce(index, twin, 0, Math.min(round0, defaultBudgetSeconds(twin, peakGflops)), 'round0');
        s.measurements += recordedTwin ? 1 : rt!.timed + rt!.recordsRemeasured;
        if (recordedTwin) measured++;
        else s.tuneCalls++;
        twins.set(t.problem.spec, { twin, tuned: recordedTwin ?? tuned(twin, rt!), conversions: await timeConversionParts(t.problem, twin, b, device, 0.01) });
      }
      if (useLibrary && whyNotGemm(t.problem) === undefined) {
        const kernel = libraryKernel(t.problem, { threads });
        const pair = sideBySide(s.kernel, kernel, threads);
        const layoutSeconds = libraryLayoutSeconds(graph, new Set(t.nodes)) / t.count;
        s.library = { kernel, seconds: pair.library, layoutSeconds, generatedSeconds: pair.generated, comparedHash: s.schedule.hash() };
      }
      s.tuningSeconds = (performance.now() - start) / 1000;
      states.push(s);
    }
    // layouts, on the whole graph: blocked layers feed each other without conversions (choose-layouts.ts)
    const lanes = b.caps.vectorLanes;
    const decision = chooseLayouts(graph, new Map([...twins].map(([spec, t]) => {
      const s = states.find((x) => x.problem.spec === spec)!;
      // NCHW at its best: the generated kernel, or the library where it won side by side
      return [spec, { nchwSeconds: currentSeconds(s), blockedSeconds: t.tuned.generatedSeconds, conversions: t.conversions, block: lanes }];
    })));
    for (const s of states) {
      const t = twins.get(s.problem.spec);
      if (!t || !decision.blocked.has(s.problem.spec)) continue;
      const conversionSeconds = decision.conversionSeconds.get(s.problem.spec) ?? 0;
      s.nchwSeconds = currentSeconds(s);
      // sgemm reads NCHW: a blocked task has no library alternative
      s.library?.kernel.dispose();
      delete s.library;
      Object.assign(s, t.tuned, { tuning: t.twin, layout: `nchw${lanes}c`, conversionSeconds });
      s.generatedSeconds = t.tuned.generatedSeconds + conversionSeconds;
      s.generatedGflops = s.flops / s.generatedSeconds / 1e9;
    }
    const history: LatencyPoint[] = [{ seconds: elapsed(), estimatedLatency: estimatedLatency(states) }];
    const total0 = history[0]!.estimatedLatency;
    for (const s of states) s.eligible = s.problem.combine === 'fma' && (s.count * currentSeconds(s)) / total0 >= MIN_SHARE;

    // later slices, each to the task with the largest expected cut of the end-to-end latency
    const slice = Math.min(MAX_SLICE_SECONDS, Math.max(MIN_SLICE_SECONDS, SLICE_SHARE * budget));
    for (;;) {
      const left = budget - elapsed();
      if (left < MIN_SLICE_SECONDS) break;
      const next = pickTask(states, peakGflops);
      if (!next) break;
      const start = performance.now();
      const r = await tuneOnce(next.index, next.tuning, next.tuneCalls, Math.min(slice, left), 'scheduler', history[history.length - 1]!.estimatedLatency);
      next.tuneCalls++;
      next.slices++;
      next.measurements += r.timed + r.recordsRemeasured;
      const candidate = tuned(next.tuning, r);
      candidate.generatedSeconds += next.conversionSeconds;
      candidate.generatedGflops = next.flops / candidate.generatedSeconds / 1e9;
      const before = next.generatedSeconds;
      next.recentGain = candidate.generatedSeconds < before ? (before - candidate.generatedSeconds) / before : 0;
      if (next.recentGain > 0) Object.assign(next, candidate);
      next.tuningSeconds += (performance.now() - start) / 1000;
      history.push({ seconds: elapsed(), estimatedLatency: estimatedLatency(states), task: next.problem.spec });
    }

    // the final choice of library vs generated, side by side with the generated kernel that won
    for (const s of states) {
      if (!s.library || s.library.comparedHash === s.schedule.hash()) continue;
      const start = performance.now();
      const pair = sideBySide(s.kernel, s.library.kernel, threads);
      Object.assign(s.library, { seconds: pair.library, generatedSeconds: pair.generated, comparedHash: s.schedule.hash() });
      s.tuningSeconds += (performance.now() - start) / 1000;
    }
    for (const s of states) s.library?.kernel.dispose();
    const end = estimatedLatency(states);
    if (history[history.length - 1]!.estimatedLatency !== end) history.push({ seconds: elapsed(), estimatedLatency: end });
    const tasks = states.map((s) => report(s, peakGflops, threads, end));
    const result: TunedModel = {
      format: TUNED_MODEL_FORMAT, version: TUNED_MODEL_VERSION,
      model: { name: options.name ?? graph.name, sha256, inputShapes: Object.fromEntries(graph.inputs.map((v) => [v.name, [...v.shape]])) },
      target: b.name, threads, host: hostKey(), createdAt: new Date().toISOString(),
      tasks: tasks.map((t) => ({ spec: t.spec, schedule: t.schedule, implementation: t.implementation, layout: t.layout, gflops: t.gflops, seconds: t.seconds })),
    };
    return { tuned: result, tasks, endToEndEstimateSeconds: end, history, target: b.name, threads, peakGflops, measurements: measured, seconds: elapsed() };
  } finally {
    if (!options.device) await device.close();
  }
}

/** The generated-kernel fields of a task from tune's result. */
function tuned(problem: Problem, r: TuneResult): Pick<TaskState, 'schedule' | 'kernel' | 'generatedSeconds' | 'generatedGflops'> {
  return { schedule: r.best, kernel: r.kernel, generatedSeconds: r.bestSeconds ?? flops(problem) / (r.gflops * 1e9), generatedGflops: r.gflops };
}

/** The best recorded schedule of the task on this device, timed again and verified; undefined if there is none or it fails. */
async function fromRecords(problem: Problem, b: Backend, device: Device, store: RecordStore): Promise<Pick<TaskState, 'schedule' | 'kernel' | 'generatedSeconds' | 'generatedGflops'> | undefined> {
  const record = store.best(problem.spec, b.name, device.host);
  if (!record) return undefined;
  let schedule: Schedule;
  try {
    schedule = Schedule.parse(problem, record.schedule);
  } catch {
    return undefined; // a record of an older schedule syntax
  }
  if (b.validate?.(schedule)) return undefined;
  const kernel = b.compile(schedule);
  const timed = await device.time(kernel, { minSeconds: 0.01 });
  if (!timed.ok) return undefined;
  const v = await verifyKernel(kernel, schedule, device.run);
  if (!v.verified) return undefined;
  return { schedule, kernel, generatedSeconds: timed.bestSeconds, generatedGflops: timed.gflops };
}

/** Whether the library beat the generated kernel in their last side-by-side timing. */
function libraryChosen(s: TaskState): boolean {
  return s.library !== undefined && librarySeconds(s.library) < s.library.generatedSeconds;
}

/** The library's seconds per call with the transposes it leaves unfolded. */
function librarySeconds(lib: LibraryState): number {
  return lib.seconds + lib.layoutSeconds;
}

/** The task's seconds per call now: the library's where it won side by side, else the generated kernel's (tune's figure). */
function currentSeconds(s: TaskState): number {
  return libraryChosen(s) ? librarySeconds(s.library!) : s.generatedSeconds;
}

function estimatedLatency(states: readonly TaskState[]): number {
  return states.reduce((a, s) => a + s.count * currentSeconds(s), 0);
}

/** The eligible task with the largest expected cut of the end-to-end latency (the header's formula), or undefined when none expects any. */
function pickTask(states: readonly TaskState[], peakGflops: number): TaskState | undefined {
  const bestOfKind = new Map<string, number>();
  for (const s of states) bestOfKind.set(s.kind, Math.max(bestOfKind.get(s.kind) ?? 0, s.generatedGflops / peakGflops));
  let best: TaskState | undefined;
  let bestBenefit = 0;
  for (const s of states) {
    if (!s.eligible) continue;
    const p = s.generatedGflops / peakGflops;
    const target = Math.max(bestOfKind.get(s.kind)!, p);
    const optimistic = Math.max(GAIN_FLOOR, target > 0 ? 1 - p / target : 1) / (1 + s.slices);
    const gain = ALPHA * s.recentGain + (1 - ALPHA) * optimistic;
    const benefit = s.count * Math.max(0, currentSeconds(s) - s.generatedSeconds * (1 - gain));
    if (benefit > bestBenefit) {
      best = s;
      bestBenefit = benefit;
    }
  }
  return best;
}

/**
 * Seconds per call of the generated kernel and the library kernel, both in this process on the
 * same threads, timed in alternating rounds (best of each): side by side, as every ratio is.
 */
function sideBySide(generated: Kernel, library: LibraryKernel, threads: number): { generated: number; library: number } {
  const p = library.problem;
  const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), 17 + i));
  const output = new Float32Array(elementCount(p.tensors[0]!));
  let g = Infinity, l = Infinity;
  for (let round = 0; round < SIDE_BY_SIDE_ROUNDS; round++) {
    g = Math.min(g, timeInProcess(generated, { threads, minSeconds: SIDE_BY_SIDE_SECONDS }).bestSeconds);
    l = Math.min(l, timeRepetitions((reps) => {
      for (let r = 0; r < reps; r++) library.run(inputs, output);
    }, library.flops, { minSeconds: SIDE_BY_SIDE_SECONDS }).bestSeconds);
  }
  return { generated: g, library: l };
}

function micros(seconds: number): string {
  return `${(seconds * 1e6).toFixed(seconds < 1e-4 ? 2 : 1)} us`;
}

function report(s: TaskState, peakGflops: number, threads: number, endToEnd: number): ModelTaskReport {
  const on = `${threads} thread${threads > 1 ? 's' : ''}`;
  let chosenBecause: string;
  if (s.library) {
    const lib = s.library;
    const transposes = lib.layoutSeconds > 0 ? ` + ${micros(lib.layoutSeconds)} of transposes it leaves as host ops` : '';
    const pair = `${lib.kernel.library} sgemm${(s.problem.epilogue ?? []).length > 0 ? ' + JS epilogue' : ''} ${micros(lib.seconds)}${transposes} vs generated ${micros(lib.generatedSeconds)}, side by side on ${on}`;
    chosenBecause = libraryChosen(s)
      ? `library ${(lib.generatedSeconds / librarySeconds(lib)).toFixed(2)}x faster: ${pair}`
      : `generated ${(librarySeconds(lib) / lib.generatedSeconds).toFixed(2)}x faster: ${pair}`;
  } else if (s.layout !== 'nchw') {
    chosenBecause = `generated in ${s.layout}: NCHWc kept between blocked layers beat NCHW (${micros(s.nchwSeconds ?? 0)}); the library reads NCHW`;
  } else {
    const why = whyNotGemm(s.problem);
    chosenBecause = why === undefined ? 'generated: the library was not compared (library: false)' : `generated: no library alternative (${why})`;
  }
  const seconds = currentSeconds(s);
  const gflops = s.flops / seconds / 1e9;
  return {
    spec: s.problem.spec, count: s.count, nodes: s.nodes, shareOfLatency: (s.count * seconds) / endToEnd,
    implementation: libraryChosen(s) ? 'library' : 'generated', layout: s.layout,
    ...(s.nchwSeconds !== undefined ? { blocked: { kernelSeconds: s.generatedSeconds - s.conversionSeconds, conversionSeconds: s.conversionSeconds, nchwSeconds: s.nchwSeconds } } : {}),
    gflops, seconds, percentOfPeak: (100 * gflops) / peakGflops,
    schedule: s.schedule.text(), generatedSeconds: s.generatedSeconds,
    ...(s.library ? { sideBySide: { library: s.library.seconds, generated: s.library.generatedSeconds, transposes: s.library.layoutSeconds } } : {}),
    chosenBecause, tuningSeconds: s.tuningSeconds, tuneCalls: s.tuneCalls, measurements: s.measurements, fromRecords: s.fromRecords,
  };
}
