/**
 * Entry points for the CLI (`looptune search`, `looptune compare`): build the evaluator (real
 * measurements behind the tuning records, or the synthetic stand-in), run searchers under one
 * budget, time OpenBLAS alongside where asked, and write the comparison report.
 */
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { flops as problemFlops } from '../../ir/problem.ts';
import { parseProblem } from '../../ir/spec.ts';
import { assertMeasurable } from '../../targets/limits.ts';
import { hostIsa } from '../../targets/runtime/host.ts';
import type { MeasurementPool } from '../../targets/runtime/measure.ts';
import { resolveProblems } from '../../env/datasets.ts';
import { CachingEvaluator, MeasuredEvaluator, NOMINAL_PEAK, PredictedEvaluator, type Evaluator, type NativeTargetName, type PredictFunction } from '../../env/evaluator.ts';
import { RecordStore } from '../../env/records.ts';
import { syntheticEvaluator } from '../../env/synthetic.ts';
import { DEFAULT_TIMED_MAX_FLOPS, type Budget, type HistoryPoint, type SearchProgress, type Searcher, type StopReason } from '../searcher.ts';
import { summarize, geomean, writeCompareReport, type CompareData, type CompareProblem } from '../report/index.ts';
import { createSearcher } from './index.ts';

export const DEFAULT_BUDGET: Budget = Object.freeze({ measurements: 100 });
export const DEFAULT_SEARCHER = 'evolution';
/** Searches time each candidate briefly (best of >= 3 samples over 10 ms); the winner is re-measured
 *  properly by whoever reports it. */
export const SEARCH_MIN_SECONDS = 0.01;
/** GPU kernels: >= 20 ms of CUDA-event samples per candidate (a launch is often tens of microseconds). */
export const CUDA_SEARCH_MIN_SECONDS = 0.02;
export const DEFAULT_COMPARE_SEARCHERS = ['random', 'greedy', 'beam', 'beam-dfs', 'evolution'];

/** 'avx512' | 'avx2' measure real kernels; 'cuda' times PTX kernels on the GPU; 'neon' is predicted by the analytic cost model; 'synthetic' uses env/synthetic.ts (no code runs). */
export type SearchTarget = NativeTargetName | 'cuda' | 'neon' | 'synthetic';

export interface EvaluatorSetup {
  target?: SearchTarget;
  /** tuning records (JSONL); null or absent keeps them in memory. */
  recordsPath?: string | null;
  /** minimum sampled seconds per measurement. */
  minSeconds?: number;
}

/** The evaluator a run uses; `owned` says whether the caller must close it. */
export async function createEvaluator(setup: EvaluatorSetup = {}): Promise<Evaluator & { close(): Promise<void> }> {
  const records = RecordStore.open(setup.recordsPath ?? null);
  const evaluator = await evaluatorOver(records, setup);
  // no kernel beats the machine's peak: this host's records above it are corrupt or forged (the
  // nominal peak bounds them if the probe read lower: a busy machine reads low)
  if (evaluator instanceof CachingEvaluator) {
    const nominal = NOMINAL_PEAK[evaluator.target as NativeTargetName] ?? 0;
    records.rejectAbovePeak(evaluator.target, evaluator.host, Math.max(evaluator.peakGflops, nominal));
  }
  return evaluator;
}

async function evaluatorOver(records: RecordStore, setup: EvaluatorSetup): Promise<Evaluator & { close(): Promise<void> }> {
  if (setup.target === 'synthetic') return syntheticEvaluator({ records });
  if (setup.target === 'neon') {
    // no Arm hardware here: the analytic cost model is the reward (see agent/costmodel/analytic.ts)
    const { analyticPredict } = await import('../costmodel/analytic.ts');
    const { predict, peakGflops } = analyticPredict('neon');
    const e = new PredictedEvaluator({ target: 'neon', peakGflops, predict });
    return Object.assign(e, { close: async () => {} });
  }
  if (setup.target === 'cuda') {
    const { CudaEvaluator } = await import('../../env/cuda-evaluator.ts');
    return CudaEvaluator.create({ records, minSeconds: setup.minSeconds ?? CUDA_SEARCH_MIN_SECONDS });
  }
  if (setup.target !== undefined && setup.target !== 'avx512' && setup.target !== 'avx2') {
    fail(`unknown target '${setup.target}' for search (expected avx512, avx2, cuda, neon or synthetic)`);
  }
  return MeasuredEvaluator.create({
    records,
    ...(setup.target ? { target: setup.target } : {}),
    minSeconds: setup.minSeconds ?? SEARCH_MIN_SECONDS,
  });
}

function peakSourceOf(e: Evaluator): string {
  if (e.target === 'cuda') return 'measured: the GPU FMA peak kernel (targets/cuda/peak.ts)';
  if (e instanceof MeasuredEvaluator) return e.peakSource === 'nominal' ? `nominal: the probe failed (${e.peakError})` : e.peakSource;
  return e.target === 'synthetic' ? 'synthetic' : 'given';
}

export interface OpenblasFigure {
  openblasGflops?: number;
  openblasCorename?: string;
  openblasError?: string;
}

/** OpenBLAS cblas_sgemm on a matmul's shape, in a measurement worker (matmul only). */
export async function timeOpenblas(problem: Problem, evaluator: Evaluator, minSeconds?: number): Promise<OpenblasFigure> {
  if (problem.op !== 'matmul') return { openblasError: `OpenBLAS comparison covers matmul only, not ${problem.op}` };
  if (evaluator.target === 'synthetic') return { openblasError: 'no OpenBLAS figure on the synthetic target' };
  const [m, n, k] = problem.vars.map((v) => v.extent) as [number, number, number];
  if (evaluator.target === 'cuda') {
    // the GPU's BLAS: cuBLAS sgemm on the evaluator's device
    try {
      const { CudaEvaluator } = await import('../../env/cuda-evaluator.ts');
      if (!(evaluator instanceof CudaEvaluator)) return { openblasError: 'cuBLAS needs the GPU evaluator' };
      const r = evaluator.cublasSgemm(m, n, k);
      return { openblasGflops: r.gflops, openblasCorename: r.version };
    } catch (e) {
      return { openblasError: e instanceof Error ? e.message : String(e) };
    }
  }
  let pool: MeasurementPool;
  let owned = false;
  if (evaluator instanceof MeasuredEvaluator) pool = evaluator.pool;
  else {
    const { MeasurementPool: Pool } = await import('../../targets/runtime/measure.ts');
    pool = new Pool();
    owned = true;
  }
  try {
    const r = await pool.openblasSgemm(m, n, k, minSeconds !== undefined ? { minSeconds } : {});
    if (!r.ok) return { openblasError: r.error };
    return { openblasGflops: r.gflops, openblasCorename: r.corename };
  } catch (e) {
    return { openblasError: e instanceof Error ? e.message : String(e) };
  } finally {
    if (owned) await pool.close();
  }
}

export interface RunSearchOptions {
  /** a searcher name (see agent/search/index.ts) or instance; default 'evolution'. */
  searcher?: string | Searcher;
  budget?: Budget;
  target?: SearchTarget;
  recordsPath?: string | null;
  compareOpenblas?: boolean;
  onProgress?: (p: SearchProgress) => void;
  seed?: number;
  /** use this evaluator instead of building one (it is not closed). */
  evaluator?: Evaluator;
  predict?: PredictFunction;
  actions?: readonly string[];
  minSeconds?: number;
  /** do not time the default schedule (default: on native targets, past DEFAULT_TIMED_MAX_FLOPS) */
  skipDefault?: boolean;
}

export interface RunSearchResult extends OpenblasFigure {
  problem: string;
  target: string;
  searcher: string;
  schedule: string;
  gflops: number;
  peakGflops: number;
  peakSource: string;
  fractionOfPeak: number;
  defaultGflops: number;
  /** the default schedule was not timed (too slow): defaultGflops is a prediction or 0 */
  defaultSkipped: boolean;
  speedupOverDefault: number;
  /** the best figure was read from an earlier run's records: `gflops` is its timing now (see confirmFigure). */
  bestRemeasured: boolean;
  measurements: number;
  timed: number;
  cacheHits: number;
  steps: number;
  seconds: number;
  stopReason: StopReason;
  history: HistoryPoint[];
}

/**
 * A reported figure as this run's own: a figure the search took from an earlier run's records (stale,
 * or doctored below the peak check) is timed again, once, before it is reported.
 */
async function confirmFigure(evaluator: Evaluator, schedule: Schedule, gflops: number): Promise<{ gflops: number; remeasured: boolean }> {
  if (!(evaluator instanceof CachingEvaluator)) return { gflops, remeasured: false };
  const record = evaluator.records.get(schedule.problem.spec, evaluator.target, schedule.hash(), evaluator.host);
  if (!record || !evaluator.records.fromEarlierRun(record) || record.gflops !== gflops) return { gflops, remeasured: false };
  return { gflops: (await evaluator.measureNow(schedule)).gflops, remeasured: true };
}

export async function runSearch(spec: string | Problem, options: RunSearchOptions = {}): Promise<RunSearchResult> {
  const problem = typeof spec === 'string' ? parseProblem(spec) : spec;
  const searcher = createSearcher(options.searcher ?? DEFAULT_SEARCHER);
  const evaluator = options.evaluator ?? (await createEvaluator({
    ...(options.target ? { target: options.target } : {}),
    recordsPath: options.recordsPath ?? null,
    ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
  }));
  try {
    // a problem the machine cannot hold or time is one line before the first measurement (targets/limits.ts)
    if (evaluator instanceof MeasuredEvaluator) assertMeasurable(problem, { peakGflops: evaluator.peakGflops, verify: false, calls: 1 });
    // on a CPU the default kernel of a large problem would take the budget to time (see DEFAULT_TIMED_MAX_FLOPS)
    const skipDefault = options.skipDefault ?? (evaluator instanceof MeasuredEvaluator && problemFlops(problem) > DEFAULT_TIMED_MAX_FLOPS);
    const r = await searcher.search(problem, {
      evaluator,
      budget: options.budget ?? DEFAULT_BUDGET,
      seed: options.seed ?? 0,
      skipDefault,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.predict ? { predict: options.predict } : {}),
      ...(options.actions ? { actions: options.actions } : {}),
    });
    const best = await confirmFigure(evaluator, r.best.schedule, r.best.gflops);
    const initial = Schedule.initial(problem);
    const defaultGflops = skipDefault ? r.defaultGflops
      : initial.hash() === r.best.schedule.hash() ? best.gflops
        : (await confirmFigure(evaluator, initial, r.defaultGflops)).gflops;
    const blas = options.compareOpenblas ? await timeOpenblas(problem, evaluator, options.minSeconds) : {};
    return {
      problem: problem.spec, target: evaluator.target, searcher: searcher.name,
      schedule: r.best.schedule.text(), gflops: best.gflops,
      peakGflops: evaluator.peakGflops, peakSource: peakSourceOf(evaluator),
      fractionOfPeak: best.gflops / evaluator.peakGflops,
      defaultGflops, defaultSkipped: skipDefault,
      speedupOverDefault: skipDefault ? NaN : defaultGflops > 0 ? best.gflops / defaultGflops : Infinity,
      bestRemeasured: best.remeasured,
      measurements: r.measurements, timed: r.timed, cacheHits: r.cacheHits, steps: r.steps,
      seconds: r.seconds, stopReason: r.stopReason, history: r.history,
      ...blas,
    };
  } finally {
    if (!options.evaluator) await evaluator.close?.();
  }
}

export interface CompareProgress extends SearchProgress {
  problemIndex: number;
  problemCount: number;
}

export interface RunCompareOptions {
  searchers?: readonly (string | Searcher)[];
  budget?: Budget;
  target?: SearchTarget;
  /** where report.html and report.json go; omitted: no files are written. */
  outDir?: string;
  onProgress?: (p: CompareProgress) => void;
  seed?: number;
  recordsPath?: string | null;
  compareOpenblas?: boolean;
  /** use at most this many problems (the first ones of the list/split). */
  limit?: number;
  evaluator?: Evaluator;
  predict?: PredictFunction;
  title?: string;
  minSeconds?: number;
}

export interface RunCompareResult {
  data: CompareData;
  /** written files (when outDir was given). */
  html?: string;
  json?: string;
}

/**
 * Every searcher on every problem, each with the same budget and seed, on one shared evaluator (its
 * cache is shared, but each search is charged its own distinct schedules: see agent/searcher.ts).
 * `problemsOrDataset`: a dataset reference ("mm64-256:test", "resnet18-conv2d"), a spec, or a list.
 */
export async function runCompare(problemsOrDataset: string | readonly (string | Problem)[], options: RunCompareOptions = {}): Promise<RunCompareResult> {
  let problems = resolveProblems(problemsOrDataset);
  if (options.limit !== undefined) problems = problems.slice(0, options.limit);
  if (problems.length === 0) fail('compare: no problems');
  const searchers = (options.searchers ?? DEFAULT_COMPARE_SEARCHERS).map((s) => createSearcher(s));
  const names = searchers.map((s) => s.name);
  if (new Set(names).size !== names.length) fail(`compare: searcher names must differ (got ${names.join(', ')})`);
  const budget = options.budget ?? DEFAULT_BUDGET;
  const seed = options.seed ?? 0;
  const evaluator = options.evaluator ?? (await createEvaluator({
    ...(options.target ? { target: options.target } : {}),
    recordsPath: options.recordsPath ?? null,
    ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
  }));
  const peak = evaluator.peakGflops;
  const out: CompareProblem[] = [];
  try {
    for (const [pi, problem] of problems.entries()) {
      const entry: CompareProblem = { spec: problem.spec, flops: problemFlops(problem), defaultGflops: 0, results: [] };
      for (const searcher of searchers) {
        const r = await searcher.search(problem, {
          evaluator, budget, seed,
          ...(options.predict ? { predict: options.predict } : {}),
          ...(options.onProgress ? { onProgress: (p: SearchProgress) => options.onProgress!({ ...p, problemIndex: pi, problemCount: problems.length }) } : {}),
        });
        entry.defaultGflops = r.defaultGflops;
        entry.results.push({
          searcher: searcher.name, gflops: r.best.gflops, fractionOfPeak: r.best.gflops / peak,
          speedupOverDefault: r.defaultGflops > 0 ? r.best.gflops / r.defaultGflops : 0,
          schedule: r.best.schedule.text(), measurements: r.measurements, timed: r.timed, cacheHits: r.cacheHits,
          steps: r.steps, seconds: r.seconds, stopReason: r.stopReason, history: r.history,
        });
      }
      if (options.compareOpenblas) {
        const b = await timeOpenblas(problem, evaluator, options.minSeconds);
        if (b.openblasGflops !== undefined) entry.openblasGflops = b.openblasGflops;
        if (b.openblasError !== undefined) entry.openblasError = b.openblasError;
      }
      out.push(entry);
    }
  } finally {
    if (!options.evaluator) await evaluator.close?.();
  }
  const blas = out.filter((p) => p.openblasGflops).map((p) => p.openblasGflops! / peak);
  const data: CompareData = {
    title: options.title ?? `looptune compare: ${typeof problemsOrDataset === 'string' ? problemsOrDataset : `${problems.length} problems`}`,
    createdAt: new Date().toISOString(),
    host: evaluator.target === 'synthetic' ? 'synthetic' : hostIsa().model,
    target: evaluator.target,
    peakGflops: peak,
    peakSource: peakSourceOf(evaluator),
    budget: { ...budget },
    seed,
    searchers: names,
    problems: out,
    summary: summarize(out, names),
    ...(blas.length ? { openblasGeomeanFractionOfPeak: geomean(blas) } : {}),
    ...(evaluator.target === 'cuda' ? { blasName: 'cuBLAS' } : {}),
  };
  if (!options.outDir) return { data };
  return { data, ...writeCompareReport(options.outDir, data) };
}
