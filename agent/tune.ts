/**
 * `tune`: inference-time tuning of one problem with a trained policy, in about a second.
 *
 * Where the time goes, and why the steps are in this order:
 *  - the measurement worker takes a few hundred ms to start: the default schedule's measurement is
 *    submitted first, so the worker starts while the policy loads;
 *  - the policy is cheap (a forward pass is 0.1-2 ms) and a measurement is not (10-40 ms for a
 *    256^3 matmul): the policy proposes many schedules (greedy rollout + a beam over its top
 *    actions), only its greedy final and the best-ranked proposals are measured (ranked by the cost
 *    model when there is one, else by the policy's auxiliary GFLOPS head), and the rest of the
 *    budget goes to an evolution that uses the policy as one of its mutation operators
 *    (agent/ppo/search.ts);
 *  - tuning records come first: the best recorded schedule of the problem (any host) is a root of
 *    the rollouts and is measured first; schedules already measured on this host cost nothing, but
 *    a recorded figure is timed again (one short measurement) before it is reported as this run's;
 *  - the best kernel is verified against the reference interpreter (verifyKernel); if it fails, the
 *    next best measured schedule is tried. Verification (about 1 s for a 256^3 matmul: the
 *    interpreter) and the optional OpenBLAS timing come after the budget (`verifySeconds`).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../ir/errors.ts';
import { flops, type Problem } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { CachingEvaluator, NOMINAL_PEAK, type Evaluation, type Evaluator, type NativeTargetName, type PredictFunction } from '../env/evaluator.ts';
import { defaultRecordsPath, RecordStore } from '../env/records.ts';
import type { Kernel } from '../targets/kernel.ts';
import { compileSchedule, getTarget } from '../targets/registry.ts';
import { executorFor, type Executor } from '../targets/executor.ts';
import { assertMeasurable } from '../targets/limits.ts';
import { compareWithBlas } from '../targets/run-schedule.ts';
import { hostKey, hostTarget } from '../targets/runtime/host.ts';
import { slowSecondsFor } from '../targets/runtime/timing.ts';
import { verifyKernel } from '../targets/verify.ts';
import { initBackend } from './backend.ts';
import { loadPolicy, type PolicyNetwork } from './policy/index.ts';
import { policySearcher } from './ppo/search.ts';
import { DEFAULT_TIMED_MAX_FLOPS, type HistoryPoint, type SearchProgress, type StopReason } from './searcher.ts';

export interface LoadedPolicy {
  policy: PolicyNetwork;
  metadata: Record<string, unknown>;
  /** where it was loaded from. */
  path: string;
}

export interface TuneOptions {
  /** 'avx512' or 'avx2' (default: the host's best). */
  target?: NativeTargetName;
  /** seconds for proposing and measuring, setup included (default 1; the search itself gets at least
   *  half of it however long the setup took); verification comes after. */
  budgetSeconds?: number;
  /** at most this many distinct schedules measured (default 40). */
  maxMeasurements?: number;
  /** a policy folder (model.json + weights.bin) or a loaded policy (default: the shipped one of the target). */
  policy?: string | LoadedPolicy;
  /** tuning records: a JSONL path or a store (default: env/records.ts defaultRecordsPath, $LOOPTUNE_RECORDS
   *  or records.jsonl in the cache folder). */
  records?: string | RecordStore;
  /** neither read nor write tuning records. */
  noRecords?: boolean;
  /** also time OpenBLAS sgemm on matmuls, in the same run. */
  compareOpenblas?: boolean;
  /** measure with this executor (it is not closed); default executorFor(target). */
  executor?: Executor;
  /** minimum sampled seconds per measurement (default 0.01). */
  minSeconds?: number;
  /** beam width of the proposal (default 4). */
  beamWidth?: number;
  /** rollout depth (default: the policy's training episode length). */
  depth?: number;
  /** a cost model to rank proposals before measuring; overrides `costModel`. */
  predict?: PredictFunction;
  /** rank proposals with this cost model ('default' = agent/costmodel's shipped model of the target,
   *  or a model folder); false: rank with the policy's auxiliary head. Default: 'default' when the
   *  target has a shipped cost model, else the auxiliary head. */
  costModel?: string | false;
  /** verify the returned kernel against the interpreter (default true). */
  verify?: boolean;
  seed?: number;
  onProgress?: (p: SearchProgress) => void;
}

/** Field names follow runSearch's result (agent/search/run.ts) and RunReport (targets/run-schedule.ts). */
export interface TuneResult {
  problem: string;
  target: string;
  searcher: string;
  /** the tuned schedule's text; `best` is the Schedule itself. */
  schedule: string;
  best: Schedule;
  kernel: Kernel;
  gflops: number;
  peakGflops: number;
  fractionOfPeak: number;
  percentOfPeak: number;
  defaultGflops: number;
  /** the default schedule was too slow to time within the budget: its figure is the cost model's */
  defaultPredicted: boolean;
  speedupOverDefault: number;
  bestSeconds?: number;
  medianSeconds?: number;
  openblasGflops?: number;
  openblasCorename?: string;
  openblasRatio?: number;
  openblasError?: string;
  verified: boolean;
  maxRelError: number;
  /** distinct schedules charged (see agent/searcher.ts) / really timed now / repeats. */
  measurements: number;
  timed: number;
  cacheHits: number;
  steps: number;
  /** schedules the policy proposed (before ranking). */
  proposals: number;
  /** what ranked the proposals: 'costmodel' or 'policy' (the auxiliary head). */
  ranking: 'costmodel' | 'policy';
  /** the best recorded schedule of the problem, if the records had one. */
  recordSchedule?: string;
  /** the result is the recorded schedule (the policy found nothing faster); its figure is timed now. */
  fromRecords: boolean;
  /** figures read from the records that were timed again before one was reported (see confirmRecorded). */
  recordsRemeasured: number;
  /** wall time of the whole call; its parts: search (setup, proposals, measurements), verification. */
  seconds: number;
  /** until the default schedule was measured and the policy loaded (worker start-up included). */
  setupSeconds: number;
  searchSeconds: number;
  verifySeconds: number;
  stopReason: StopReason;
  history: HistoryPoint[];
  policy: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** The shipped policy folder of a target (agent/pretrained/<target>). */
export function pretrainedPolicyDir(target: string): string {
  return path.join(here, 'pretrained', target);
}

export { defaultRecordsPath };

/** At most this many recorded figures are timed again per call; a candidate past it is not reported. */
const MAX_REMEASURED = 5;

const policyCache = new Map<string, LoadedPolicy>();

/** Loads (once per process) the policy of a folder. */
export async function loadTunePolicy(dir: string): Promise<LoadedPolicy> {
  const key = path.resolve(dir);
  const hit = policyCache.get(key);
  if (hit) return hit;
  if (!existsSync(path.join(dir, 'model.json'))) {
    fail(`no policy at ${dir} (train one: npx looptune train experiments/ppo-mm-<target>.yaml, then export)`);
  }
  await initBackend();
  const { policy, metadata } = loadPolicy(dir);
  const loaded = { policy, metadata, path: dir };
  policyCache.set(key, loaded);
  return loaded;
}

const costModelCache = new Map<string, Promise<PredictFunction | undefined>>();

/**
 * A cost model's PredictFunction, loaded once per process; undefined if it cannot be loaded.
 * 'default' is the target's shipped model, found by the cost model's own rule (resolveModelPath),
 * which also holds in the GPU machine's bundle.
 */
export function costModelRanker(ref: string, target: string): Promise<PredictFunction | undefined> {
  const key = ref === 'default' ? `default:${target}` : path.resolve(ref);
  let p = costModelCache.get(key);
  if (!p) {
    p = (async () => {
      try {
        const cm = await import('./costmodel/evaluator.ts');
        return cm.costModelPredict(await cm.resolveCostModel(ref === 'default' ? key : ref));
      } catch {
        return undefined;
      }
    })();
    costModelCache.set(key, p);
  }
  return p;
}

/** The manifest of a shipped policy, if it has one. */
export function readManifest(dir: string): Record<string, unknown> | undefined {
  const f = path.join(dir, 'manifest.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>) : undefined;
}

/**
 * The default budget: a second, or on large problems enough for about 40 measurements of a kernel
 * at peak (each takes ~4 calls): a 2048^3 matmul needs 70 ms per call at peak on this machine, so
 * one second would time three candidates.
 */
export function defaultBudgetSeconds(problem: Problem, peakGflops: number): number {
  const callSeconds = flops(problem) / (peakGflops * 1e9);
  return Math.max(1, Math.round(40 * 4 * callSeconds * 10) / 10);
}

export async function tune(spec: string | Problem, options: TuneOptions = {}): Promise<TuneResult> {
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const problem = typeof spec === 'string' ? parseProblem(spec) : spec;
  const target = options.target ?? hostTarget();
  getTarget(target);
  const minSeconds = options.minSeconds ?? 0.01;
  let budgetSeconds = options.budgetSeconds ?? 1;
  const executor = options.executor ?? executorFor(target, { minSeconds });
  const ownsExecutor = options.executor === undefined;
  try {
    const store = options.noRecords ? RecordStore.open(null)
      : options.records instanceof RecordStore ? options.records
        : RecordStore.open(options.records ?? defaultRecordsPath());
    const peakGflops = await executor.peakGflops();
    // a problem the machine cannot hold, verify or time is one line before the search (targets/limits.ts)
    if (executor.native) assertMeasurable(problem, { peakGflops, verify: options.verify ?? true, calls: 1 });
    const host = hostKey();
    // no kernel beats the peak (the nominal one if the probe read lower: a busy machine reads low)
    store.rejectAbovePeak(target, host, Math.max(peakGflops, NOMINAL_PEAK[target]));
    if (options.budgetSeconds === undefined) budgetSeconds = defaultBudgetSeconds(problem, peakGflops);
    const kernels = new Map<string, Kernel>();
    const measured = new Map<string, MeasuredSchedule>();
    const evaluator = new CachingEvaluator({
      target, peakGflops, records: store, host,
      measure: async (s) => {
        let kernel: Kernel;
        try {
          kernel = compileSchedule(s, target);
        } catch (e) {
          return { gflops: 0, error: `code generation failed: ${e instanceof Error ? e.message : String(e)}` };
        }
        kernels.set(s.hash(), kernel);
        const r = await executor.time(kernel, { minSeconds, slowSeconds: slowSecondsFor(kernel.flops, peakGflops) });
        if (!r.ok) return { gflops: 0, error: r.error, codegenMicros: kernel.codegenMicros };
        return { gflops: r.gflops, bestSeconds: r.bestSeconds, medianSeconds: r.medianSeconds, codegenMicros: kernel.codegenMicros };
      },
    });
    // every evaluation the search makes, for the fallback order if verification fails
    const tracking: Evaluator = {
      target, peakGflops,
      async evaluate(s): Promise<Evaluation> {
        const e = await evaluator.evaluate(s);
        if (e.gflops > 0 && !measured.has(e.hash)) {
          const record = e.source === 'cached' ? store.get(problem.spec, target, e.hash, host) : undefined;
          measured.set(e.hash, {
            schedule: s, gflops: e.gflops, recorded: record !== undefined && store.fromEarlierRun(record),
            ...(e.bestSeconds !== undefined ? { bestSeconds: e.bestSeconds } : {}),
            ...(e.medianSeconds !== undefined ? { medianSeconds: e.medianSeconds } : {}),
          });
        }
        return e;
      },
    };
    // start the worker now: the default schedule is measured while the policy loads
    const initial = Schedule.initial(problem);
    // a large problem's default kernel (scalar, 0.5-3 GFLOPS) would take the whole budget to time:
    // its figure is predicted instead
    const skipDefault = flops(problem) > DEFAULT_TIMED_MAX_FLOPS;
    const warm = skipDefault ? Promise.resolve(undefined) : tracking.evaluate(initial);

    const loaded = typeof options.policy === 'object' ? options.policy : await loadTunePolicy(options.policy ?? pretrainedPolicyDir(target));
    const recorded = options.noRecords ? undefined : store.best(problem.spec, target);
    let recordSchedule: Schedule | undefined;
    if (recorded) {
      try {
        recordSchedule = Schedule.parse(problem, recorded.schedule);
      } catch {
        recordSchedule = undefined; // a record from an older schedule syntax: ignore it
      }
    }
    const depth = options.depth ?? (typeof loaded.metadata.episodeSteps === 'number' ? loaded.metadata.episodeSteps : 10);
    let proposals = 0;
    const searcher = policySearcher(loaded.policy, {
      beamWidth: options.beamWidth ?? 4, depth,
      roots: () => (recordSchedule ? [recordSchedule] : []),
      onProposals: (n) => (proposals = n),
    });
    const predict = options.predict
      ?? (options.costModel === false ? undefined : await costModelRanker(options.costModel ?? 'default', target));
    if (typeof options.costModel === 'string' && options.costModel !== 'default' && !predict) {
      fail(`tune: cannot load the cost model ${options.costModel}`);
    }
    await warm;
    const setupSeconds = elapsed();
    // the budget counts from the call, but a slow start (a busy machine) never starves the search
    const remaining = Math.max(0.5 * budgetSeconds, budgetSeconds - setupSeconds);
    const r = await searcher.search(problem, {
      evaluator: tracking, budget: { seconds: remaining, measurements: options.maxMeasurements ?? 40 }, seed: options.seed ?? 0,
      ...(predict ? { predict } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      skipDefault,
    });
    const searchSeconds = elapsed();

    // verify the best; fall back to the next best measured schedule if it fails. A figure read from
    // the records is an earlier run's (possibly stale or doctored): it is timed again first.
    const candidates = [...measured.values()];
    const confirm = confirmRecorded(candidates, (s) => evaluator.measureNow(s));
    const kernelOf = (c: MeasuredSchedule) => kernels.get(c.schedule.hash()) ?? compileSchedule(c.schedule, target);
    const best = await confirm.next();
    if (!best) fail(`tune: no schedule of ${problem.spec} could be measured`);
    // the default's figure is reported too (the speed-up over it): this call's own as well
    const defaultEntry = skipDefault ? undefined : measured.get(initial.hash());
    if (defaultEntry?.recorded) await confirm.remeasure(defaultEntry);
    const defaultGflops = defaultEntry ? defaultEntry.gflops : r.defaultGflops;
    let chosen = best;
    let kernel = kernelOf(chosen);
    let verification = { verified: false, maxRelError: NaN };
    if (options.verify ?? true) {
      for (let tries = 0, cand: MeasuredSchedule | undefined = best; tries < 5 && cand; tries++, cand = await confirm.next()) {
        const k = kernelOf(cand);
        const v = await verifyKernel(k, cand.schedule, executor.run);
        if (v.verified) {
          chosen = cand;
          kernel = k;
          verification = { verified: true, maxRelError: v.maxRelError };
          break;
        }
        verification = { verified: false, maxRelError: v.maxRelError };
        confirm.drop(cand);
      }
    }
    const verifySeconds = elapsed() - searchSeconds;
    const result: TuneResult = {
      problem: problem.spec, target, searcher: r.searcher,
      schedule: chosen.schedule.text(), best: chosen.schedule, kernel,
      gflops: chosen.gflops, peakGflops,
      fractionOfPeak: chosen.gflops / peakGflops, percentOfPeak: (100 * chosen.gflops) / peakGflops,
      defaultGflops, defaultPredicted: skipDefault,
      // a predicted default is too rough for a ratio (the model never saw schedules that slow)
      speedupOverDefault: skipDefault ? NaN : defaultGflops > 0 ? chosen.gflops / defaultGflops : Infinity,
      ...(chosen.bestSeconds !== undefined ? { bestSeconds: chosen.bestSeconds } : {}),
      ...(chosen.medianSeconds !== undefined ? { medianSeconds: chosen.medianSeconds } : {}),
      verified: verification.verified, maxRelError: verification.maxRelError,
      measurements: r.measurements, timed: r.timed, cacheHits: r.cacheHits, steps: r.steps, proposals,
      ranking: predict ? 'costmodel' : 'policy',
      ...(recordSchedule ? { recordSchedule: recordSchedule.text() } : {}),
      fromRecords: recordSchedule !== undefined && recordSchedule.hash() === chosen.schedule.hash(),
      recordsRemeasured: confirm.remeasured(),
      seconds: 0, setupSeconds, searchSeconds, verifySeconds, stopReason: r.stopReason, history: r.history, policy: loaded.path,
    };
    if (options.compareOpenblas) Object.assign(result, await compareWithBlas(problem, executor, chosen.gflops));
    result.seconds = elapsed();
    return result;
  } finally {
    if (ownsExecutor) await executor.close();
  }
}

/** A schedule tune measured (or answered from the records: `recorded`) during the call. */
interface MeasuredSchedule {
  schedule: Schedule;
  gflops: number;
  bestSeconds?: number;
  medianSeconds?: number;
  /** the figure is a record of an earlier run, not yet timed in this call. */
  recorded: boolean;
}

/**
 * The candidates, best first, each figure this call's own: `next()` returns the fastest remaining
 * candidate after timing it again (`measureNow`) if its figure came from the records, so a stale or
 * doctored record is never reported; at most MAX_REMEASURED are timed, recorded ones past that are
 * passed over. `remeasure` times one candidate again; `drop` removes one (it failed verification).
 */
function confirmRecorded(candidates: MeasuredSchedule[], measureNow: (s: Schedule) => Promise<Evaluation>) {
  let remeasured = 0;
  const remeasure = async (c: MeasuredSchedule): Promise<void> => {
    remeasured++;
    const fresh = await measureNow(c.schedule);
    c.gflops = fresh.gflops;
    c.bestSeconds = fresh.bestSeconds;
    c.medianSeconds = fresh.medianSeconds;
    c.recorded = false;
  };
  return {
    async next(): Promise<MeasuredSchedule | undefined> {
      for (;;) {
        candidates.sort((a, b) => b.gflops - a.gflops);
        const top = candidates[0];
        if (!top || !(top.gflops > 0)) return undefined;
        if (!top.recorded) return top;
        if (remeasured >= MAX_REMEASURED) {
          candidates.shift();
          continue;
        }
        await remeasure(top);
      }
    },
    remeasure,
    drop(c: MeasuredSchedule): void {
      const i = candidates.indexOf(c);
      if (i >= 0) candidates.splice(i, 1);
    },
    remeasured: () => remeasured,
  };
}
