/**
 * Entry points for the CLI (`looptune search`, `looptune compare`): build the evaluator (real
 * measurements behind the tuning records, or the synthetic stand-in), run searchers under one
 * budget, time OpenBLAS alongside where asked, and write the comparison report.
 */
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { defaultSchedule } from '../../ir/parallelize.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { flops as problemFlops } from '../../ir/problem.ts';
import { parseProblem } from '../../ir/spec.ts';
import { compareWithBaseline, type Backend, type BaselineComparison } from '../../targets/backend.ts';
import { assertMeasurable } from '../../targets/limits.ts';
import { backend, findBackend, hostBackend } from '../../targets/registry.ts';
import { hostIsa } from '../../targets/runtime/host.ts';
import { resolveProblems } from '../../env/datasets.ts';
import { CachingEvaluator, MeasuredEvaluator, type Evaluator, type NativeTargetName, type PredictFunction } from '../../env/evaluator.ts';
import { evaluatorFor, type OwnedEvaluator } from '../../env/evaluator-for.ts';
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

/** A target name of the registry (targets/registry.ts): native ones measure real kernels, 'neon' is
 *  predicted by the analytic cost model (verified under qemu), 'synthetic' is a model (no code runs). */
export type SearchTarget = NativeTargetName | 'cuda' | 'neon' | 'synthetic' | (string & {});

export interface EvaluatorSetup {
  target?: SearchTarget;
  /** tuning records (JSONL); null or absent keeps them in memory. */
  recordsPath?: string | null;
  /** minimum sampled seconds per measurement. */
  minSeconds?: number;
  /** CPU threads of parallel kernels, the peak and the baseline (targets with threads; default 1) */
  threads?: number;
}

/** Searches time each candidate briefly; a GPU launch is often tens of microseconds, so longer there. */
function searchMinSeconds(b: Backend): number {
  return b.processor === 'gpu' ? CUDA_SEARCH_MIN_SECONDS : SEARCH_MIN_SECONDS;
}

/** The evaluator a search uses (evaluatorFor); the caller closes it. */
export async function createEvaluator(setup: EvaluatorSetup = {}): Promise<OwnedEvaluator> {
  const b = setup.target === undefined ? hostBackend() : backend(setup.target);
  // no hardware to time on (neon under qemu): the analytic cost model is the reward (agent/costmodel/analytic.ts)
  const predict = b.timing === 'emulated' ? (await import('../costmodel/analytic.ts')).analyticPredict(b).predict : undefined;
  return evaluatorFor(b, {
    records: setup.recordsPath ?? null,
    ...(setup.threads !== undefined && b.caps.threads ? { threads: setup.threads } : {}),
    minSeconds: setup.minSeconds ?? searchMinSeconds(b),
    ...(predict ? { predict } : {}),
  });
}

function peakSourceOf(e: Evaluator): string {
  if (e instanceof MeasuredEvaluator) {
    if (e.peakSource === 'nominal') return `nominal: the probe failed (${e.peakError})`;
    return e.peakMethod ? `${e.peakSource}: ${e.peakMethod}` : e.peakSource;
  }
  return findBackend(e.target)?.timing === 'model' ? e.target : 'given';
}

/** The device's vendor library (OpenBLAS sgemm, cuBLAS) on a problem, beside `gflops`: on the
 *  evaluator's own device when it measures, else on a device of its target opened for it. */
export async function timeBaseline(problem: Problem, evaluator: Evaluator, gflops: number, minSeconds?: number): Promise<BaselineComparison> {
  const opts = minSeconds !== undefined ? { minSeconds } : {};
  if (evaluator instanceof MeasuredEvaluator) return compareWithBaseline(problem, evaluator.device, gflops, opts);
  const b = findBackend(evaluator.target);
  if (!b || b.timing !== 'native') {
    const why = `no baseline figure on the ${evaluator.target} target (its figures are not timings)`;
    return { baselineError: why, openblasError: why };
  }
  const device = await b.open(evaluator.threads !== undefined ? { threads: evaluator.threads } : {});
  try {
    return await compareWithBaseline(problem, device, gflops, opts);
  } finally {
    await device.close();
  }
}

export interface RunSearchOptions {
  /** a searcher name (see agent/search/index.ts) or instance; default 'evolution'. */
  searcher?: string | Searcher;
  budget?: Budget;
  target?: SearchTarget;
  recordsPath?: string | null;
  /** time the device's vendor library on the problem too (OpenBLAS sgemm, cuBLAS) */
  compareBaseline?: boolean;
  onProgress?: (p: SearchProgress) => void;
  seed?: number;
  /** use this evaluator instead of building one (it is not closed). */
  evaluator?: Evaluator;
  predict?: PredictFunction;
  actions?: readonly string[];
  minSeconds?: number;
  /** do not time the default schedule (default: on native targets, past DEFAULT_TIMED_MAX_FLOPS) */
  skipDefault?: boolean;
  /** CPU threads (see EvaluatorSetup.threads) */
  threads?: number;
}

export interface RunSearchResult extends BaselineComparison {
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

/** A reported figure as this run's own (CachingEvaluator.confirm); other evaluators' figures are. */
function confirmFigure(evaluator: Evaluator, schedule: Schedule, gflops: number): Promise<{ gflops: number; remeasured: boolean }> {
  return evaluator instanceof CachingEvaluator ? evaluator.confirm(schedule, gflops) : Promise.resolve({ gflops, remeasured: false });
}

export async function runSearch(spec: string | Problem, options: RunSearchOptions = {}): Promise<RunSearchResult> {
  const problem = typeof spec === 'string' ? parseProblem(spec) : spec;
  const searcher = createSearcher(options.searcher ?? DEFAULT_SEARCHER);
  const evaluator = options.evaluator ?? (await createEvaluator({
    ...(options.target ? { target: options.target } : {}),
    recordsPath: options.recordsPath ?? null,
    ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
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
    const initial = defaultSchedule(problem, evaluator.threads ?? 1);
    const defaultGflops = skipDefault ? r.defaultGflops
      : initial.hash() === r.best.schedule.hash() ? best.gflops
        : (await confirmFigure(evaluator, initial, r.defaultGflops)).gflops;
    const blas = options.compareBaseline ? await timeBaseline(problem, evaluator, best.gflops, options.minSeconds) : {};
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
  /** time the device's vendor library on each problem too */
  compareBaseline?: boolean;
  /** use at most this many problems (the first ones of the list/split). */
  limit?: number;
  evaluator?: Evaluator;
  predict?: PredictFunction;
  title?: string;
  minSeconds?: number;
  /** CPU threads (see EvaluatorSetup.threads) */
  threads?: number;
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
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
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
      if (options.compareBaseline) {
        const best = Math.max(0, ...entry.results.map((r) => r.gflops));
        const b = await timeBaseline(problem, evaluator, best, options.minSeconds);
        if (b.baseline) {
          entry.baseline = b.baseline;
          entry.openblasGflops = b.baseline.gflops;
        }
        if (b.baselineError !== undefined) entry.openblasError = b.baselineError;
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
    host: findBackend(evaluator.target)?.timing === 'model' ? evaluator.target : evaluator instanceof MeasuredEvaluator ? evaluator.device.host : hostIsa().model,
    target: evaluator.target,
    peakGflops: peak,
    peakSource: peakSourceOf(evaluator),
    budget: { ...budget },
    seed,
    searchers: names,
    problems: out,
    summary: summarize(out, names),
    ...(blas.length ? { openblasGeomeanFractionOfPeak: geomean(blas) } : {}),
    // the baseline's family ('OpenBLAS', 'cuBLAS') from the name of the library that ran
    ...(out.find((p) => p.baseline)?.baseline ? { blasName: out.find((p) => p.baseline)!.baseline!.library.split(' ')[0]! } : {}),
  };
  if (!options.outDir) return { data };
  return { data, ...writeCompareReport(options.outDir, data) };
}
