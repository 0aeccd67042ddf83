/**
 * The Searcher contract shared by every search baseline (and the RL agent's inference-time tuning):
 * given a problem, an Evaluator and a budget, return the best schedule found and its history, with
 * the SAME budget accounting for everyone (SearchContext below).
 *
 * Accounting, per search:
 *  - `measurements`: distinct schedules (structural hash: cursor excluded) this search evaluated. This
 *    is what the budget charges, and what a cold cache would have had to measure. Asking again for a
 *    schedule it already saw is a free cache hit. A schedule that another search (or an earlier run,
 *    through the tuning records) had measured is still charged, so that searchers compared on one
 *    shared cache are charged alike whatever order they run in.
 *  - `timed`: how many of those were really timed now (evaluation source 'measured');
 *    `predictions`: answered by a cost model ('predicted'), from the evaluator or `options.predict`.
 *  - `cacheHits`: evaluations answered without charge (repeats within this search, and schedules the
 *    target cannot run).
 *  - `infeasible`: distinct schedules asked for that the target cannot run at all (Evaluator.validate):
 *    answered with 0 GFLOPS, never measured, never charged. Searches that breed candidates (evolution,
 *    the policy searcher) drop them before asking (`untried`), so they count 0 there; step-by-step
 *    searches (random, greedy, beam) ask and get the free answer.
 *  - `steps`: every evaluation request.
 *  - `seconds`: wall time since the search started.
 * Every search starts by evaluating the default schedule (charged like any other), unless told to
 * predict it instead (`skipDefault`).
 */
import type { Problem } from '../ir/problem.ts';
import type { Schedule } from '../ir/schedule.ts';
import { defaultSchedule } from '../ir/parallelize.ts';
import { Rng } from '../ir/random.ts';
import type { Evaluation, Evaluator, PredictFunction } from '../env/evaluator.ts';
import { actionsForTarget, maxLoopsForTarget } from '../env/loopnest-env.ts';

export interface Budget {
  /** wall-clock seconds. */
  seconds?: number;
  /** distinct schedules evaluated (see the header). */
  measurements?: number;
  /** evaluation requests, cache hits included. */
  steps?: number;
  /** the seconds limit does not end the search before this many measurements (tune's default
   *  budget on a slow machine: its proposal phase alone can take the whole second) */
  minMeasurements?: number;
}

export interface HistoryPoint {
  /** seconds since the search started. */
  t: number;
  measurements: number;
  bestGflops: number;
}

export interface SearchProgress {
  searcher: string;
  problem: string;
  measurements: number;
  steps: number;
  seconds: number;
  bestGflops: number;
  defaultGflops: number;
  /** the largest fraction of any budget limit used so far, 0..1. */
  fraction: number;
}

export interface SearchOptions {
  evaluator: Evaluator;
  budget: Budget;
  /** seeds the searcher's random choices (default 0). */
  seed?: number;
  onProgress?: (p: SearchProgress) => void;
  /** transforms the searcher may apply (default LoopTune's 7). */
  actions?: readonly string[];
  /** at most this many loops (default 10; 16 on cuda). */
  maxLoops?: number;
  /** a cost model to rank candidates before spending measurements on them (evolution uses it). */
  predict?: PredictFunction;
  /** do not measure the default schedule first: its figure is predicted by `predict` (0 without
   *  one). For problems whose default kernel alone would take longer than the budget. */
  skipDefault?: boolean;
}

export type StopReason = 'budget' | 'converged' | 'stalled';

export interface SearchResult {
  searcher: string;
  problem: string;
  best: { schedule: Schedule; gflops: number };
  defaultGflops: number;
  /** best-so-far GFLOPS, one point per improvement plus the start and the end. */
  history: HistoryPoint[];
  measurements: number;
  timed: number;
  predictions: number;
  cacheHits: number;
  /** schedules asked for that the target cannot run (see the header); included in cacheHits. */
  infeasible: number;
  steps: number;
  seconds: number;
  stopReason: StopReason;
}

export interface Searcher {
  readonly name: string;
  search(problem: Problem, options: SearchOptions): Promise<SearchResult>;
}

/**
 * Problems up to this many flops get their default schedule timed by the CLI's search and tune
 * (256^3 is 3.4e7); past it the default kernel (scalar, 0.5-3 GFLOPS) would take seconds to a
 * minute per call, so it is predicted or left out (`skipDefault`).
 */
export const DEFAULT_TIMED_MAX_FLOPS = 1.5e8;

/** Thrown by SearchContext.evaluate once the budget is spent; runSearch catches it. */
export class BudgetExhausted extends Error {
  constructor(readonly reason: StopReason = 'budget') {
    super(`search stopped: ${reason}`);
    this.name = 'BudgetExhausted';
  }
}

/** evaluations in a row that charge nothing before a search counts as stalled (it only revisits). */
export const STALL_LIMIT = 5000;

/** The one place budgets are charged and best-so-far is tracked. */
export class SearchContext {
  readonly problem: Problem;
  readonly evaluator: Evaluator;
  readonly budget: Budget;
  readonly rng: Rng;
  readonly actions: readonly string[];
  readonly maxLoops: number;
  readonly predictFn: PredictFunction | undefined;
  readonly searcher: string;
  /** the default schedule: LoopTune's, with a parallel outer band when the evaluator runs several threads */
  readonly initial: Schedule;
  measurements = 0;
  timed = 0;
  predictions = 0;
  cacheHits = 0;
  infeasible = 0;
  steps = 0;
  best: { schedule: Schedule; gflops: number };
  defaultGflops = 0;
  readonly history: HistoryPoint[] = [];
  readonly #seen = new Map<string, Evaluation>();
  readonly #t0 = performance.now();
  readonly #onProgress: ((p: SearchProgress) => void) | undefined;
  #sinceCharge = 0;
  /** evaluations awaiting their measurement (evaluateAll): charged against the budget before they land */
  #pending = 0;

  constructor(searcher: string, problem: Problem, options: SearchOptions) {
    const b = options.budget ?? {};
    for (const [k, v] of Object.entries(b)) {
      if (v !== undefined && !(typeof v === 'number' && v > 0)) throw new RangeError(`budget.${k} must be a positive number, got ${String(v)}`);
    }
    if (b.seconds === undefined && b.measurements === undefined && b.steps === undefined) {
      throw new RangeError('a search budget needs seconds, measurements or steps');
    }
    this.searcher = searcher;
    this.problem = problem;
    this.evaluator = options.evaluator;
    this.budget = b;
    this.rng = new Rng(options.seed ?? 0);
    this.actions = options.actions ?? actionsForTarget(options.evaluator.target);
    this.maxLoops = options.maxLoops ?? maxLoopsForTarget(options.evaluator.target);
    this.predictFn = options.predict;
    this.#onProgress = options.onProgress;
    this.initial = defaultSchedule(problem, options.evaluator.threads ?? 1);
    this.best = { schedule: this.initial, gflops: 0 };
  }

  get seconds(): number {
    return (performance.now() - this.#t0) / 1000;
  }

  /** largest used fraction of any limit. */
  get fraction(): number {
    const b = this.budget;
    return Math.min(1, Math.max(
      b.seconds ? this.seconds / b.seconds : 0,
      b.measurements ? this.measurements / b.measurements : 0,
      b.steps ? this.steps / b.steps : 0,
    ));
  }

  get exhausted(): boolean {
    const b = this.budget;
    return (b.measurements !== undefined && this.measurements + this.#pending >= b.measurements)
      || (b.steps !== undefined && this.steps >= b.steps)
      || this.#outOfTime;
  }

  /** The seconds limit is reached (and the minimum of measurements made). */
  get #outOfTime(): boolean {
    const b = this.budget;
    return b.seconds !== undefined && this.seconds >= b.seconds && this.measurements >= (b.minMeasurements ?? 0);
  }

  /** whether the target can run `s` at all (Evaluator.validate; always true where it has no such check). */
  feasible(s: Schedule): boolean {
    return this.evaluator.validate?.(s) === undefined;
  }

  /**
   * Whether a candidate is worth asking for: not yet evaluated by this search and runnable on the
   * target. The one filter every breeding search applies, so that schedules without a kernel are
   * skipped alike everywhere, free of charge and without a step.
   */
  untried(s: Schedule): boolean {
    return this.known(s) === undefined && this.feasible(s);
  }

  /** GFLOPS if this search already evaluated `s` (then asking again is free), else undefined. */
  known(s: Schedule): number | undefined {
    return this.#seen.get(s.hash())?.gflops;
  }

  /**
   * GFLOPS of each of `list`, in order: one at a time, or up to the evaluator's concurrency at once
   * (a farm measures a generation in parallel; measurements in flight count against the budget).
   * Throws BudgetExhausted like evaluate; what was measured before stays charged and recorded.
   */
  async evaluateAll(list: readonly Schedule[]): Promise<number[]> {
    const width = Math.max(1, this.evaluator.concurrency ?? 1);
    const out: number[] = [];
    for (let i = 0; i < list.length; i += width) {
      // every one in flight lands before a BudgetExhausted ends the search: none after its result
      const settled = await Promise.allSettled(list.slice(i, i + width).map((s) => this.evaluate(s)));
      for (const r of settled) {
        if (r.status === 'rejected') throw r.reason;
        out.push(r.value);
      }
    }
    return out;
  }

  /** GFLOPS of `s`; throws BudgetExhausted when no budget is left for this request. */
  async evaluate(s: Schedule): Promise<number> {
    return (await this.evaluation(s)).gflops;
  }

  /** The full evaluation of `s` (a repeat within this search comes back with source 'cached'). */
  async evaluation(s: Schedule): Promise<Evaluation> {
    const hash = s.hash();
    const seen = this.#seen.get(hash);
    if (seen !== undefined) {
      const b = this.budget;
      if ((b.steps !== undefined && this.steps >= b.steps) || this.#outOfTime) {
        throw new BudgetExhausted();
      }
      this.steps++;
      this.cacheHits++;
      if (++this.#sinceCharge > STALL_LIMIT) throw new BudgetExhausted('stalled');
      return { ...seen, source: 'cached' };
    }
    if (this.exhausted) throw new BudgetExhausted();
    const obstacle = this.evaluator.validate?.(s);
    if (obstacle !== undefined) {
      // no kernel exists for it on this target: nothing to measure, nothing charged
      const e: Evaluation = { gflops: 0, source: 'cached', hash, error: obstacle };
      this.#seen.set(hash, e);
      this.steps++;
      this.cacheHits++;
      this.infeasible++;
      if (++this.#sinceCharge > STALL_LIMIT) throw new BudgetExhausted('stalled');
      return e;
    }
    let e: Evaluation;
    this.#pending++;
    try {
      e = await this.evaluator.evaluate(s);
    } finally {
      this.#pending--;
    }
    this.steps++;
    this.measurements++;
    this.#sinceCharge = 0;
    if (e.source === 'measured') this.timed++;
    else if (e.source === 'predicted') this.predictions++;
    this.#seen.set(hash, e);
    if (e.gflops > this.best.gflops || this.history.length === 0) {
      this.best = { schedule: s, gflops: e.gflops };
      this.history.push({ t: this.seconds, measurements: this.measurements, bestGflops: e.gflops });
    }
    this.#onProgress?.(this.progress());
    return e;
  }

  /**
   * An Evaluator that charges this search: hand it to a LoopNestEnv to run a policy (an RL agent's
   * inference-time tuning) under exactly the same accounting as the search baselines. Its evaluate()
   * throws BudgetExhausted once the budget is spent, which runWithBudget turns into a result.
   */
  chargingEvaluator(): Evaluator {
    const source = this.evaluator;
    return {
      target: source.target,
      peakGflops: source.peakGflops,
      evaluate: (s) => this.evaluation(s),
      ...(source.validate ? { validate: (s: Schedule) => source.validate!(s) } : {}),
      ...(source.sketches ? { sketches: source.sketches } : {}),
    };
  }

  /** Cost-model scores of candidates (counted as predictions, not charged); undefined without a model. */
  async predict(schedules: readonly Schedule[]): Promise<number[] | undefined> {
    if (!this.predictFn || schedules.length === 0) return undefined;
    if (this.exhausted) throw new BudgetExhausted();
    const v = await this.predictFn(schedules);
    this.predictions += schedules.length;
    return v;
  }

  progress(): SearchProgress {
    return {
      searcher: this.searcher, problem: this.problem.spec, measurements: this.measurements, steps: this.steps,
      seconds: this.seconds, bestGflops: this.best.gflops, defaultGflops: this.defaultGflops, fraction: this.fraction,
    };
  }

  result(stopReason: StopReason): SearchResult {
    const seconds = this.seconds;
    const last = this.history[this.history.length - 1];
    const history = [...this.history];
    if (!last || last.measurements !== this.measurements || last.t !== seconds) {
      history.push({ t: seconds, measurements: this.measurements, bestGflops: this.best.gflops });
    }
    return {
      searcher: this.searcher, problem: this.problem.spec, best: this.best, defaultGflops: this.defaultGflops, history,
      measurements: this.measurements, timed: this.timed, predictions: this.predictions, cacheHits: this.cacheHits,
      infeasible: this.infeasible, steps: this.steps, seconds, stopReason,
    };
  }
}

/**
 * Runs a search body under the common accounting: evaluates the default schedule first, then the
 * body until it returns (converged) or the budget runs out.
 */
export async function runWithBudget(
  searcher: string,
  problem: Problem,
  options: SearchOptions,
  body: (ctx: SearchContext) => Promise<StopReason | void>,
): Promise<SearchResult> {
  const ctx = new SearchContext(searcher, problem, options);
  let reason: StopReason = 'budget';
  try {
    if (options.skipDefault) {
      ctx.defaultGflops = Math.max(0, (await options.predict?.([ctx.initial]))?.[0] ?? 0);
    } else {
      ctx.defaultGflops = await ctx.evaluate(ctx.initial);
    }
    reason = (await body(ctx)) ?? 'converged';
  } catch (e) {
    if (!(e instanceof BudgetExhausted)) throw e;
    reason = e.reason;
  }
  return ctx.result(reason);
}
