/**
 * The cost model behind env's Evaluator interface, for the reward sources the experiments name:
 *
 *  - `costmodel`: every evaluation is a prediction. Predicted GFLOPS = the model's regression output
 *    (fraction of a fixed per-target scale, trained on GFLOPS / scale across all problems) x that
 *    scale, so a reward (GFLOPS after - GFLOPS before) / peak means the same on every problem; its
 *    ranking within a problem is the ranking the model was trained for (one joint head: the
 *    ranking loss and the regression act on the same output).
 *  - `hybrid`: predictions, but every `every`-th evaluation (the first one included) is also measured.
 *    Each measurement (1) calibrates the problem: predictions of that problem are multiplied by the
 *    geometric mean of measured / predicted over its recent checks, which removes the model's
 *    per-problem bias from rewards; (2) feeds the model's incremental update (fine-tuning a few
 *    epochs after every `updateEvery` new measurements). A checked evaluation returns the calibrated
 *    prediction, like every other (so rewards do not jump between two sources; `checkResult:
 *    'measured'` returns the measurement instead). Schedules the measured evaluator already has a
 *    record of are answered from it (source 'cached'), free.
 *
 * `costModelPredict(model, threads)` is the PredictFunction agent/search/evolution takes (`options.predict`);
 * `FeedbackEvaluator` wraps a measured evaluator and fine-tunes the model on what it measures
 * (Ansor's loop: evolution + a cost model that learns from the search's own measurements).
 *
 * Threads: predictions are for kernels run on the evaluator's thread count (the measured
 * evaluator's `threads`, or the `threads` option; default 1), and what is learned online is
 * grouped by it, so 1- and 2-thread figures of one schedule never mix.
 */
import type { Schedule } from '../../ir/schedule.ts';
import type { Evaluation, Evaluator, PredictFunction } from '../../env/evaluator.ts';
import type { TuningRecord } from '../../env/records.ts';
import type { RecordGroup } from './data.ts';
import { threadedHostKey } from '../../targets/runtime/host.ts';
import { CostModel, nominalPeakOf } from './model.ts';

export type RewardSource = 'measured' | 'costmodel' | 'hybrid';

/** A model, or a reference to load: 'default', 'default:<target>', a directory. */
export type CostModelRef = CostModel | string;

export async function resolveCostModel(ref: CostModelRef): Promise<CostModel> {
  return typeof ref === 'string' ? CostModel.load(ref) : ref;
}

function defaultPeak(model: CostModel): number {
  return nominalPeakOf(model.target) ?? model.meta.scaleGflops / 1.25;
}

/** Predicted GFLOPS of a batch run on `threads` threads (the PredictFunction for evolution and PredictedEvaluator). */
export function costModelPredict(model: CostModel, threads = 1): PredictFunction {
  return (schedules: readonly Schedule[]) => Array.from(model.predict(schedules, threads).gflops);
}

export interface CostModelEvaluatorOptions {
  model: CostModel;
  /** reward denominator (default: the target's nominal peak x threads); pass the measured peak of the threads when known. */
  peakGflops?: number;
  /** reported target (default: the model's). */
  target?: string;
  /** threads the predicted kernels run on (default 1); pass the measured peak of as many. */
  threads?: number;
}

/** Reward source `costmodel`: every evaluation predicted, batches in one call. */
export class CostModelEvaluator implements Evaluator {
  readonly target: string;
  readonly peakGflops: number;
  readonly model: CostModel;
  readonly threads: number;
  predictions = 0;

  constructor(options: CostModelEvaluatorOptions) {
    this.model = options.model;
    this.target = options.target ?? options.model.target;
    this.threads = options.threads ?? 1;
    this.peakGflops = options.peakGflops ?? defaultPeak(options.model) * this.threads;
    if (!(this.peakGflops > 0)) throw new RangeError(`peakGflops must be positive, got ${this.peakGflops}`);
  }

  async evaluate(schedule: Schedule): Promise<Evaluation> {
    return (await this.evaluateMany([schedule]))[0]!;
  }

  async evaluateMany(schedules: readonly Schedule[]): Promise<Evaluation[]> {
    if (schedules.length === 0) return [];
    const g = this.model.predict(schedules, this.threads).gflops;
    this.predictions += schedules.length;
    return schedules.map((s, i) => ({ gflops: Math.max(0, g[i]!), source: 'predicted' as const, hash: s.hash() }));
  }

  async close(): Promise<void> {}
}

export interface HybridEvaluatorOptions {
  model: CostModel;
  /** the real thing (MeasuredEvaluator, or any Evaluator); not closed by close() unless `ownsMeasured`. */
  measured: Evaluator;
  ownsMeasured?: boolean;
  /** measure every N-th evaluation, the first included (default 10). */
  every?: number;
  /** fine-tune after this many new measurements (default 16; 0 = never). */
  updateEvery?: number;
  /** epochs per fine-tuning (default 2; an epoch is at least 4 steps, see CostModel.update). */
  updateEpochs?: number;
  /** scale predictions per problem by measured/predicted of its checks (default true). */
  calibrate?: boolean;
  /** checks kept per problem for the calibration (default 16). */
  calibrationWindow?: number;
  /** what a checked evaluation returns: 'predicted' (default: every reward from one source, the calibrated
   *  model; the measurement only calibrates and trains) or 'measured' (the true figure, source 'measured'). */
  checkResult?: 'measured' | 'predicted';
}

export interface HybridStats {
  evaluations: number;
  predicted: number;
  measured: number;
  cached: number;
  updates: number;
  updateSeconds: number;
}

interface Check {
  predicted: number;
  measured: number;
}

/** Reward source `hybrid` (see the header). */
export class HybridEvaluator implements Evaluator {
  readonly target: string;
  readonly peakGflops: number;
  readonly model: CostModel;
  readonly measured: Evaluator;
  /** the measured evaluator's thread count: predictions and updates are for it. */
  readonly threads: number;
  readonly stats: HybridStats = { evaluations: 0, predicted: 0, measured: 0, cached: 0, updates: 0, updateSeconds: 0 };
  readonly #every: number;
  readonly #updateEvery: number;
  readonly #updateEpochs: number;
  readonly #calibrate: boolean;
  readonly #window: number;
  readonly #checkResult: 'measured' | 'predicted';
  readonly #ownsMeasured: boolean;
  readonly #checks = new Map<string, Check[]>();
  #pending: RecordGroup[] = [];
  #pendingCount = 0;
  #updating: Promise<void> = Promise.resolve();

  constructor(options: HybridEvaluatorOptions) {
    this.model = options.model;
    this.measured = options.measured;
    this.target = options.measured.target;
    this.peakGflops = options.measured.peakGflops;
    this.threads = options.measured.threads ?? 1;
    this.#every = Math.max(1, Math.floor(options.every ?? 10));
    this.#updateEvery = Math.max(0, Math.floor(options.updateEvery ?? 16));
    this.#updateEpochs = options.updateEpochs ?? 2;
    this.#calibrate = options.calibrate ?? true;
    this.#window = options.calibrationWindow ?? 16;
    this.#checkResult = options.checkResult ?? 'predicted';
    this.#ownsMeasured = options.ownsMeasured ?? false;
  }

  /** measured / predicted for the problem (1 before its first check, or without calibration). */
  calibration(problem: string): number {
    if (!this.#calibrate) return 1;
    const cs = this.#checks.get(problem);
    if (!cs || cs.length === 0) return 1;
    let logSum = 0;
    for (const c of cs) logSum += Math.log(c.measured / c.predicted);
    return Math.min(5, Math.max(0.2, Math.exp(logSum / cs.length)));
  }

  async evaluate(schedule: Schedule): Promise<Evaluation> {
    return (await this.evaluateMany([schedule]))[0]!;
  }

  async evaluateMany(schedules: readonly Schedule[]): Promise<Evaluation[]> {
    const out = new Array<Evaluation>(schedules.length);
    const toPredict: number[] = [];
    const toCheck: number[] = [];
    schedules.forEach((s, i) => {
      const cached = this.#lookup(s);
      if (cached) {
        this.stats.cached++;
        out[i] = cached;
        return;
      }
      const n = this.stats.evaluations++;
      (n % this.#every === 0 ? toCheck : toPredict).push(i);
    });
    const all = [...toPredict, ...toCheck];
    const raw = all.length ? this.model.predict(all.map((i) => schedules[i]!), this.threads).gflops : new Float32Array(0);
    const rawOf = new Map(all.map((i, k) => [i, Math.max(1e-6, raw[k]!)]));
    for (const i of toPredict) {
      const s = schedules[i]!;
      this.stats.predicted++;
      out[i] = { gflops: rawOf.get(i)! * this.calibration(s.problem.spec), source: 'predicted', hash: s.hash() };
    }
    for (const i of toCheck) {
      const s = schedules[i]!;
      const e = await this.measured.evaluate(s);
      this.stats.measured++;
      const predicted = rawOf.get(i)!;
      if (e.gflops > 0 && e.error === undefined) this.#feed(s, predicted, e.gflops);
      out[i] = this.#checkResult === 'measured'
        ? e
        : { gflops: predicted * this.calibration(s.problem.spec), source: 'predicted', hash: s.hash() };
    }
    await this.#updating;
    return out;
  }

  #lookup(s: Schedule): Evaluation | undefined {
    const m = this.measured as Evaluator & { lookup?: (s: Schedule) => Evaluation | undefined };
    const hit = typeof m.lookup === 'function' ? m.lookup(s) : undefined;
    return hit && hit.error === undefined && hit.gflops > 0 ? hit : undefined;
  }

  #feed(s: Schedule, predicted: number, measured: number): void {
    const problem = s.problem.spec;
    let cs = this.#checks.get(problem);
    if (!cs) this.#checks.set(problem, (cs = []));
    cs.push({ predicted, measured });
    if (cs.length > this.#window) cs.shift();
    if (this.#updateEvery === 0) return;
    let g = this.#pending.find((x) => x.problem === problem);
    if (!g) this.#pending.push((g = { problem, schedules: [], gflops: [], ...(this.threads > 1 ? { threads: this.threads } : {}) }));
    g.schedules.push(s);
    g.gflops.push(measured);
    if (++this.#pendingCount >= this.#updateEvery) {
      const batch = this.#pending;
      this.#pending = [];
      this.#pendingCount = 0;
      this.#updating = this.#updating.then(async () => {
        const t0 = performance.now();
        await this.model.update(batch, { epochs: this.#updateEpochs });
        this.stats.updates++;
        this.stats.updateSeconds += (performance.now() - t0) / 1000;
        // the model moved: its old predictions no longer describe its bias
        for (const b of batch) this.#checks.delete(b.problem);
        for (const b of batch) {
          const p = this.model.predict(b.schedules, this.threads).gflops;
          this.#checks.set(b.problem, b.schedules.map((_, k) => ({ predicted: Math.max(1e-6, p[k]!), measured: b.gflops[k]! })).slice(-this.#window));
        }
      });
    }
  }

  async close(): Promise<void> {
    await this.#updating;
    if (this.#ownsMeasured) await this.measured.close?.();
  }
}

export interface FeedbackEvaluatorOptions {
  model: CostModel;
  measured: Evaluator;
  /** fine-tune after this many new real measurements (default 16). */
  updateEvery?: number;
  updateEpochs?: number;
}

/**
 * Passes evaluations through to `measured` and fine-tunes `model` on every `updateEvery` new real
 * measurements: pair it with `costModelPredict(model)` in a search so the model learns the problem
 * being searched.
 */
export class FeedbackEvaluator implements Evaluator {
  readonly target: string;
  readonly peakGflops: number;
  readonly threads: number;
  updates = 0;
  readonly #model: CostModel;
  readonly #measured: Evaluator;
  readonly #updateEvery: number;
  readonly #epochs: number;
  #pending: TuningRecord[] = [];

  constructor(options: FeedbackEvaluatorOptions) {
    this.#model = options.model;
    this.#measured = options.measured;
    this.target = options.measured.target;
    this.peakGflops = options.measured.peakGflops;
    this.threads = options.measured.threads ?? 1;
    this.#updateEvery = options.updateEvery ?? 16;
    this.#epochs = options.updateEpochs ?? 4;
  }

  async evaluate(s: Schedule): Promise<Evaluation> {
    const e = await this.#measured.evaluate(s);
    if (e.error === undefined && e.gflops > 0) {
      this.#pending.push({
        problem: s.problem.spec, target: this.#model.target, schedule: s.text(), hash: e.hash, gflops: e.gflops,
        timestamp: '', host: threadedHostKey('', this.threads),
      });
      if (this.#pending.length >= this.#updateEvery) {
        const batch = this.#pending;
        this.#pending = [];
        // grouped by problem and (through the host key) thread count
        await this.#model.update(batch, { epochs: this.#epochs });
        this.updates++;
      }
    }
    return e;
  }

  async close(): Promise<void> {}
}

export interface RewardEvaluatorOptions {
  reward: RewardSource;
  /** the measured evaluator (required for 'measured' and 'hybrid'). */
  measured?: Evaluator;
  /** model or reference (default 'default': the shipped model for the host target). */
  model?: CostModelRef;
  every?: number;
  updateEvery?: number;
  peakGflops?: number;
  /** threads of the predicted kernels for 'costmodel' (default: the measured evaluator's, else 1). */
  threads?: number;
}

/** The evaluator for a reward source (what an experiment's YAML `reward:` selects). */
export async function createRewardEvaluator(o: RewardEvaluatorOptions): Promise<Evaluator> {
  if (o.reward === 'measured') {
    if (!o.measured) throw new Error("reward 'measured' needs a measured evaluator");
    return o.measured;
  }
  const model = await resolveCostModel(o.model ?? 'default');
  if (o.reward === 'costmodel') {
    const peak = o.peakGflops ?? o.measured?.peakGflops;
    const threads = o.threads ?? o.measured?.threads;
    return new CostModelEvaluator({ model, ...(peak !== undefined ? { peakGflops: peak } : {}), ...(threads !== undefined ? { threads } : {}) });
  }
  if (o.reward === 'hybrid') {
    if (!o.measured) throw new Error("reward 'hybrid' needs a measured evaluator for its checks");
    return new HybridEvaluator({
      model, measured: o.measured,
      ...(o.every !== undefined ? { every: o.every } : {}),
      ...(o.updateEvery !== undefined ? { updateEvery: o.updateEvery } : {}),
    });
  }
  throw new Error(`unknown reward source '${String(o.reward)}' (expected measured, costmodel or hybrid)`);
}
