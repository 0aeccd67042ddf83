/**
 * `tune`: inference-time tuning of one problem, one call for every backend. What it does is chosen
 * by the backend's properties, never its name:
 *  - a shipped policy (agent/pretrained/<target>/model.json): the policy proposes (greedy rollout +
 *    a beam over its top actions), the best-ranked proposals are measured (ranked by the cost model
 *    when there is one, else by the policy's auxiliary GFLOPS head), and the rest of the budget goes
 *    to the one evolution with the policy as a mutator (agent/ppo/search.ts);
 *  - no policy: the evolution (agent/search/evolution.ts) from the backend's sketches and seeds
 *    (cuda: GPU template points), every generation screened by the target's shipped cost model;
 *  - timing 'emulated' (neon under qemu): the figures are the analytic cost model's, the kernel runs
 *    only to verify.
 *
 * Where the time goes (native CPUs): the measurement worker takes a few hundred ms to start, so the
 * default schedule's measurement is submitted first and the worker starts while the policy loads;
 * tuning records come first: the best recorded schedule of the problem (any host) is a root of the
 * rollouts; schedules already measured on this host cost nothing, but a recorded figure is timed
 * again before it is reported as this run's. The best kernel is verified against the reference
 * interpreter (verifyKernel); if it fails, the next best measured schedule is tried. Verification
 * and the optional baseline timing come after the budget (`verifySeconds`).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../ir/errors.ts';
import { flops, type Problem } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';
import { bandedFor } from '../ir/parallelize.ts';
import { defaultThreads, kernelThreads } from '../targets/runtime/threads.ts';
import { parseProblem } from '../ir/spec.ts';
import { CachingEvaluator, type Evaluation, type Evaluator, type PredictFunction } from '../env/evaluator.ts';
import { evaluatorFor } from '../env/evaluator-for.ts';
import { defaultRecordsPath, RecordStore } from '../env/records.ts';
import { compareWithBaseline, type Backend, type BaselineComparison, type Device } from '../targets/backend.ts';
import type { Kernel } from '../targets/kernel.ts';
import { backend as backendNamed, hostBackend } from '../targets/registry.ts';
import { assertMeasurable } from '../targets/limits.ts';
import { verifyKernel } from '../targets/verify.ts';
import { initBackend } from './backend.ts';
import { loadPolicy, type PolicyNetwork } from './policy/index.ts';
import { policySearcher } from './ppo/search.ts';
import { createSearcher } from './search/index.ts';
import { DEFAULT_TIMED_MAX_FLOPS, type HistoryPoint, type SearchProgress, type Searcher, type StopReason } from './searcher.ts';

export interface LoadedPolicy {
  policy: PolicyNetwork;
  metadata: Record<string, unknown>;
  /** where it was loaded from. */
  path: string;
}

export interface TuneOptions {
  /** a backend or a target name of the registry (default: the host's best x86 ISA). */
  target?: Backend | string;
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
  /** also time the device's vendor library (OpenBLAS sgemm, cuBLAS) in the same run (default: on GPUs,
   *  where it costs little beside the search). */
  compareBaseline?: boolean;
  /** measure on this device (it is not closed); default: the backend's, opened for the call. */
  device?: Device;
  /** minimum sampled seconds per measurement (default 0.01; 0.02 on GPUs). */
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
  /** CPU threads (targets with threads): default every core. Candidates get a parallel outer band
   *  (ir/parallelize.ts) and are timed on them; a small problem's winner is timed on one thread too
   *  and runs there if that is faster. */
  threads?: number;
}

/** Below this many flops tune times the winner on one thread too (a fork-join may cost more than it gains). */
export const SINGLE_THREAD_CHECK_FLOPS = 1e8;

/** Field names follow runSearch's result (agent/search/run.ts) and RunReport (targets/run-schedule.ts). */
export interface TuneResult extends BaselineComparison {
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
  /** the figures are timings of the real hardware (false: predicted, the backend runs under emulation) */
  native: boolean;
  verified: boolean;
  maxRelError: number;
  /** distinct schedules charged (see agent/searcher.ts) / really timed now / repeats. */
  measurements: number;
  timed: number;
  cacheHits: number;
  steps: number;
  /** schedules the policy proposed (before ranking). */
  proposals: number;
  /** what ranked the proposals or screened the search: a cost model, the policy's auxiliary head, or nothing. */
  ranking: 'costmodel' | 'policy' | 'none';
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
  /** the policy folder, or what searched instead (no shipped policy for the target) */
  policy: string;
  /** how the schedule was found, in a phrase */
  strategy: string;
  /** CPU threads the result runs on (1 on targets without threads, or when one thread was faster) */
  threads: number;
  /** threads tune measured on (the peak's) */
  deviceThreads: number;
  /** the winner's GFLOPS on one thread, when tune checked it (a small problem on several threads) */
  singleThreadGflops?: number;
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
/**
 * The fewest schedules `tune` measures with a policy whatever its seconds say: on a slow machine
 * the proposal phase (policy, sketches, first cost-model call) took the whole default second and
 * the default schedule was returned (256^3 at 1.5 GFLOPS on a Zen 3 VM instead of 150).
 */
const TUNE_MIN_MEASUREMENTS = 8;

export function costModelRanker(ref: string, target: string, threads = 1): Promise<PredictFunction | undefined> {
  const key = `${ref === 'default' ? `default:${target}` : path.resolve(ref)}|threads=${threads}`;
  let p = costModelCache.get(key);
  if (!p) {
    p = (async () => {
      try {
        const cm = await import('./costmodel/evaluator.ts');
        return cm.costModelPredict(await cm.resolveCostModel(ref === 'default' ? `default:${target}` : ref), threads);
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

/** Default seconds of a search without a policy on a device: a GPU JIT plus timing costs 30-100 ms per candidate. */
export const SEARCH_TUNE_SECONDS = 5;

/** Whether the target has a shipped policy (agent/pretrained/<target>/model.json). */
export function hasShippedPolicy(target: string): boolean {
  return existsSync(path.join(pretrainedPolicyDir(target), 'model.json'));
}

export async function tune(spec: string | Problem, options: TuneOptions = {}): Promise<TuneResult> {
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const problem = typeof spec === 'string' ? parseProblem(spec) : spec;
  const b = options.target === undefined ? hostBackend() : typeof options.target === 'string' ? backendNamed(options.target) : options.target;
  if (b.timing === 'model') fail(`tune: the ${b.name} target generates no code to tune`);
  const target = b.name;
  const native = b.timing === 'native';
  const usePolicy = options.policy !== undefined || hasShippedPolicy(target);
  // the target's shipped cost model ranks proposals and screens generations (loaded while the device opens)
  const wantsModel = native && options.costModel !== false && !options.predict;
  const minSeconds = options.minSeconds ?? (b.processor === 'gpu' ? 0.02 : 0.01);
  const threads = options.device ? options.device.threads ?? 1 : b.caps.threads ? options.threads ?? defaultThreads() : 1;
  // the model predicts at the device's thread count (a serial kernel on two threads is half its peak)
  const modelPromise = wantsModel ? costModelRanker(options.costModel || 'default', target, threads) : Promise.resolve(undefined);
  const device = options.device ?? (await b.open({ minSeconds, ...(b.caps.threads ? { threads } : {}) }));
  // every candidate runs on the device's threads: a serial proposal gets its outer band parallel
  const banded = (s: Schedule): Schedule => bandedFor(s, threads);
  const ownsDevice = options.device === undefined;
  try {
    const store = options.noRecords || !native ? RecordStore.open(null)
      : options.records instanceof RecordStore ? options.records
        : RecordStore.open(options.records ?? defaultRecordsPath());
    const kernels = new Map<string, Kernel>();
    const measured = new Map<string, MeasuredSchedule>();
    // no hardware to time on: the analytic model gives the figures (agent/costmodel/analytic.ts)
    const predictor = native ? undefined : (await import('./costmodel/analytic.ts')).analyticPredict(b).predict;
    const evaluator = await evaluatorFor(b, {
      device, records: store, minSeconds,
      ...(predictor ? { predict: predictor } : {}),
      onKernel: (s, k) => kernels.set(s.hash(), k),
    });
    const peakGflops = evaluator.peakGflops;
    // a problem the machine cannot hold, verify or time is one line before the search (targets/limits.ts)
    if (native) assertMeasurable(problem, { peakGflops, verify: options.verify ?? true, calls: 1 });
    const caching = evaluator instanceof CachingEvaluator ? evaluator : undefined;
    const host = caching?.host ?? device.host;
    let budgetSeconds = options.budgetSeconds
      ?? (usePolicy || !native ? defaultBudgetSeconds(problem, peakGflops) : SEARCH_TUNE_SECONDS);
    if (!native && options.budgetSeconds === undefined) budgetSeconds = 1;
    // every evaluation the search makes, for the fallback order if verification fails
    const tracking: Evaluator = {
      target, peakGflops,
      ...(evaluator.validate ? { validate: (s: Schedule) => evaluator.validate!(s) } : {}),
      ...(evaluator.sketches ? { sketches: evaluator.sketches } : {}),
      async evaluate(proposal): Promise<Evaluation> {
        const s = banded(proposal);
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
    // start the worker now: the default schedule is measured while the policy loads. A large CPU
    // problem's default kernel (scalar, 0.5-3 GFLOPS) would take the whole budget to time: its
    // figure is predicted instead
    const initial = banded(Schedule.initial(problem));
    const skipDefault = b.processor === 'cpu' && native && flops(problem) > DEFAULT_TIMED_MAX_FLOPS;
    const warm = skipDefault ? Promise.resolve(undefined) : tracking.evaluate(initial);

    const loaded = !usePolicy ? undefined
      : typeof options.policy === 'object' ? options.policy : await loadTunePolicy(options.policy ?? pretrainedPolicyDir(target));
    const recorded = options.noRecords || !caching ? undefined : store.best(problem.spec, target);
    let recordSchedule: Schedule | undefined;
    if (recorded) {
      try {
        recordSchedule = Schedule.parse(problem, recorded.schedule);
      } catch {
        recordSchedule = undefined; // a record from an older schedule syntax: ignore it
      }
    }
    let proposals = 0;
    let searcher: Searcher;
    if (loaded) {
      const depth = options.depth ?? (typeof loaded.metadata.episodeSteps === 'number' ? loaded.metadata.episodeSteps : 10);
      searcher = policySearcher(loaded.policy, {
        beamWidth: options.beamWidth ?? 4, depth,
        roots: () => (recordSchedule ? [recordSchedule] : []),
        onProposals: (n) => (proposals = n),
      });
    } else {
      searcher = createSearcher('evolution');
    }
    const predict = options.predict ?? (await modelPromise);
    if (typeof options.costModel === 'string' && options.costModel !== 'default' && !predict) {
      fail(`tune: cannot load the cost model ${options.costModel}`);
    }
    await warm;
    const setupSeconds = elapsed();
    // the budget counts from the call, but a slow start (a busy machine) never starves the search
    const remaining = Math.max(0.5 * budgetSeconds, budgetSeconds - setupSeconds);
    const r = await searcher.search(problem, {
      evaluator: tracking, seed: options.seed ?? 0,
      budget: loaded ? { seconds: remaining, measurements: options.maxMeasurements ?? 40, minMeasurements: Math.min(TUNE_MIN_MEASUREMENTS, options.maxMeasurements ?? 40) }
        : { seconds: remaining, ...(options.maxMeasurements !== undefined ? { measurements: options.maxMeasurements } : {}) },
      ...(predict ? { predict } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      skipDefault,
    });
    const searchSeconds = elapsed();

    // verify the best; fall back to the next best measured schedule if it fails. A figure read from
    // the records is an earlier run's (possibly stale or doctored): it is timed again first.
    const candidates = [...measured.values()];
    const confirm = confirmRecorded(candidates, (s) => (caching ? caching.measureNow(s) : evaluator.evaluate(s)));
    const kernelOf = (c: MeasuredSchedule) => kernels.get(c.schedule.hash()) ?? b.compile(c.schedule);
    const best = await confirm.next();
    if (!best) {
      // say why where the backend refuses the problem itself (e.g. a typed problem on a CPU)
      const why = b.validate?.(Schedule.initial(problem));
      fail(`tune: no schedule of ${problem.spec} could be measured${why ? `: ${why}` : ''}`);
    }
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
        const v = await verifyKernel(k, cand.schedule, device.run);
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
    // a small problem may lose more to the fork-join than it gains: time the winner on one thread too
    let runThreads = kernelThreads(kernel.abi, threads);
    let singleThreadGflops: number | undefined;
    if (runThreads > 1 && native && flops(problem) < SINGLE_THREAD_CHECK_FLOPS) {
      const one = await device.time(kernel, { threads: 1, minSeconds });
      if (one.ok) {
        singleThreadGflops = one.gflops;
        if (one.gflops > chosen.gflops) {
          runThreads = 1;
          chosen = { ...chosen, gflops: one.gflops, bestSeconds: one.bestSeconds, medianSeconds: one.medianSeconds };
        }
      }
    }
    const verifySeconds = elapsed() - searchSeconds;
    const ranking = predict ? 'costmodel' : loaded ? 'policy' : 'none';
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
      native, verified: verification.verified, maxRelError: verification.maxRelError,
      measurements: r.measurements, timed: r.timed, cacheHits: r.cacheHits, steps: r.steps, proposals,
      ranking,
      ...(recordSchedule ? { recordSchedule: recordSchedule.text() } : {}),
      fromRecords: recordSchedule !== undefined && recordSchedule.hash() === chosen.schedule.hash(),
      recordsRemeasured: confirm.remeasured(),
      seconds: 0, setupSeconds, searchSeconds, verifySeconds, stopReason: r.stopReason, history: r.history,
      policy: loaded ? loaded.path : `none (${target} has no shipped policy)`,
      strategy: loaded ? `policy proposals + evolution with a policy mutator${predict ? ', ranked by the cost model' : ''}`
        : `evolution${predict ? ` screened by the ${target} cost model` : ''}${native ? '' : ` on the analytic cost model, verified under emulation`}`,
      threads: runThreads, deviceThreads: threads,
      ...(singleThreadGflops !== undefined ? { singleThreadGflops } : {}),
    };
    if ((options.compareBaseline ?? b.processor === 'gpu') && native && device.baseline?.coverage(problem) === undefined) {
      Object.assign(result, await compareWithBaseline(problem, device, chosen.gflops));
    } else if (options.compareBaseline && device.baseline) {
      const why = device.baseline.coverage(problem);
      if (why) Object.assign(result, { baselineError: why, openblasError: why });
    }
    await evaluator.close();
    result.seconds = elapsed();
    return result;
  } finally {
    if (ownsDevice) await device.close();
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
