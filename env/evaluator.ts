/**
 * Where GFLOPS come from. An Evaluator turns a schedule into a figure: measured (generate code, time
 * it in a measurement worker), cached (a tuning record of an earlier measurement), or predicted (a
 * cost model). The environment and every searcher see only this interface.
 *
 * A kernel that fails to compile, crashes or hangs evaluates to 0 GFLOPS with `error` set; evaluate()
 * never throws for a bad schedule.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import type { Schedule } from '../ir/schedule.ts';
import type { Backend, Device, PeakReading, SketchSource } from '../targets/backend.ts';
import { hostKey } from '../targets/runtime/host.ts';
import { RecordStore, recordKey } from './records.ts';

export type { SketchSource } from '../targets/backend.ts';

export type EvaluationSource = 'measured' | 'cached' | 'predicted';

export interface Evaluation {
  gflops: number;
  source: EvaluationSource;
  /** the schedule's structural hash (cursor excluded). */
  hash: string;
  error?: string;
  bestSeconds?: number;
  medianSeconds?: number;
  /** schedule → executable bytes, microseconds (measured evaluations only). */
  codegenMicros?: number;
}

export interface Evaluator {
  /** target name (records and reports carry it): 'avx512', 'avx2', 'synthetic', ... */
  readonly target: string;
  /** the denominator of rewards and "% of peak" figures. */
  readonly peakGflops: number;
  evaluate(schedule: Schedule): Promise<Evaluation>;
  /** several at once (a cost model predicts a batch in one call); defaults to evaluate() in order. */
  evaluateMany?(schedules: readonly Schedule[]): Promise<Evaluation[]>;
  /** why `schedule` cannot be measured at all on this target (undefined when it can); checked without
   *  measuring, so searches skip such schedules free of charge (the cuda target: no legal GPU mapping). */
  validate?(schedule: Schedule): string | undefined;
  /** how searches draw fresh schedules on this target (Ansor's sketches); absent: the CPU sketches of
   *  agent/search/sketch.ts. Set by evaluators whose target needs other ones (cuda: GPU tilings). */
  readonly sketches?: SketchSource;
  /** CPU threads its parallel kernels run on (absent: 1); searches then draw parallel sketches */
  readonly threads?: number;
  /** measurements it runs at once (absent: 1); above 1 (a farm), searches ask for a generation at once */
  readonly concurrency?: number;
  close?(): Promise<void>;
}

/** What a raw measurement returns (CachingEvaluator adds the source, hash and caching). */
export interface Measurement {
  gflops: number;
  /** the farm worker that timed it (recorded with it) */
  servedBy?: string;
  bestSeconds?: number;
  medianSeconds?: number;
  error?: string;
  codegenMicros?: number;
}

export type MeasureFunction = (schedule: Schedule) => Promise<Measurement>;

export interface EvaluatorStats {
  /** real measurements run. */
  measured: number;
  /** answered from the records (file or earlier in this process). */
  cached: number;
  /** measurements that failed (0 GFLOPS, error set). */
  failed: number;
}

export interface CachingEvaluatorOptions {
  target: string;
  peakGflops: number;
  measure: MeasureFunction;
  /** shared tuning records (default: a fresh in-memory store). */
  records?: RecordStore;
  /** measurements run at once (default 1: clean timings on a small machine). */
  concurrency?: number;
  /** host written into records and required of cached records (default: this CPU's hostKey). */
  host?: string;
  /** write failed measurements to the records file too (default false: they are remembered in memory only,
   *  so that a fixed code generator retries them in the next run). */
  persistFailures?: boolean;
}

/**
 * Any measure function behind the record cache: a schedule already measured on this host for this
 * problem and target is answered from the records ('cached') and costs no measurement. Concurrent
 * requests for one schedule share a single measurement.
 */
export class CachingEvaluator implements Evaluator {
  readonly target: string;
  readonly peakGflops: number;
  readonly records: RecordStore;
  readonly host: string;
  readonly stats: EvaluatorStats = { measured: 0, cached: 0, failed: 0 };
  readonly #measure: MeasureFunction;
  readonly #limit: LimitFunction;
  readonly #persistFailures: boolean;
  readonly #failures = new Map<string, Measurement>();
  readonly #inFlight = new Map<string, Promise<Evaluation>>();
  readonly concurrency: number;

  constructor(options: CachingEvaluatorOptions) {
    if (!(options.peakGflops > 0)) throw new RangeError(`peakGflops must be positive, got ${options.peakGflops}`);
    this.target = options.target;
    this.peakGflops = options.peakGflops;
    this.records = options.records ?? RecordStore.open(null);
    this.host = options.host ?? hostKey();
    this.#measure = options.measure;
    this.concurrency = options.concurrency ?? 1;
    this.#limit = pLimit(this.concurrency);
    this.#persistFailures = options.persistFailures ?? false;
  }

  /** a cached evaluation if there is one, without measuring. */
  lookup(schedule: Schedule): Evaluation | undefined {
    const problem = schedule.problem.spec;
    const hash = schedule.hash();
    const failure = this.#failures.get(recordKey(problem, this.target, hash));
    if (failure) return { ...failure, gflops: 0, source: 'cached', hash };
    const r = this.records.get(problem, this.target, hash, this.host);
    if (!r) return undefined;
    return {
      gflops: r.gflops, source: 'cached', hash,
      ...(r.error !== undefined ? { error: r.error } : {}),
      ...(r.bestSeconds !== undefined ? { bestSeconds: r.bestSeconds } : {}),
      ...(r.medianSeconds !== undefined ? { medianSeconds: r.medianSeconds } : {}),
    };
  }

  evaluate(schedule: Schedule): Promise<Evaluation> {
    const hit = this.lookup(schedule);
    if (hit) {
      this.stats.cached++;
      return Promise.resolve(hit);
    }
    const key = recordKey(schedule.problem.spec, this.target, schedule.hash());
    const pending = this.#inFlight.get(key);
    if (pending) {
      // Someone is measuring it right now: the answer is theirs, this request costs nothing.
      this.stats.cached++;
      return pending.then((e) => ({ ...e, source: 'cached' as const }));
    }
    const promise = this.#limit(() => this.#run(schedule)).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, promise);
    return promise;
  }

  async evaluateMany(schedules: readonly Schedule[]): Promise<Evaluation[]> {
    return Promise.all(schedules.map((s) => this.evaluate(s)));
  }

  /**
   * `gflops` of `schedule` as this run's own: when it is the figure of an earlier run's record
   * (stale, or doctored below the peak bound), the schedule is timed again, once, before it is reported.
   */
  async confirm(schedule: Schedule, gflops: number): Promise<{ gflops: number; remeasured: boolean }> {
    const record = this.records.get(schedule.problem.spec, this.target, schedule.hash(), this.host);
    if (!record || !this.records.fromEarlierRun(record) || record.gflops !== gflops) return { gflops, remeasured: false };
    return { gflops: (await this.measureNow(schedule)).gflops, remeasured: true };
  }

  /** Times `schedule` now, past the records and without adding to them: a figure read from the
   *  records is an earlier run's, and is confirmed this way before a run reports it as its own. */
  async measureNow(schedule: Schedule): Promise<Evaluation> {
    let m: Measurement;
    try {
      m = await this.#limit(() => this.#measure(schedule));
    } catch (e) {
      m = { gflops: 0, error: e instanceof Error ? e.message : String(e) };
    }
    this.stats.measured++;
    const gflops = Number.isFinite(m.gflops) && m.gflops > 0 ? m.gflops : 0;
    return {
      gflops, source: 'measured', hash: schedule.hash(),
      ...(m.error !== undefined || gflops === 0 ? { error: m.error ?? 'measurement gave no time' } : {}),
      ...(m.bestSeconds !== undefined ? { bestSeconds: m.bestSeconds } : {}),
      ...(m.medianSeconds !== undefined ? { medianSeconds: m.medianSeconds } : {}),
    };
  }

  async #run(schedule: Schedule): Promise<Evaluation> {
    const hash = schedule.hash();
    let m: Measurement;
    try {
      m = await this.#measure(schedule);
    } catch (e) {
      m = { gflops: 0, error: e instanceof Error ? e.message : String(e) };
    }
    const gflops = Number.isFinite(m.gflops) && m.gflops > 0 ? m.gflops : 0;
    const failed = m.error !== undefined || gflops === 0;
    this.stats.measured++;
    if (failed) this.stats.failed++;
    const error = m.error ?? (failed ? 'measurement gave no time' : undefined);
    if (failed && !this.#persistFailures) {
      this.#failures.set(recordKey(schedule.problem.spec, this.target, hash), { ...m, gflops: 0, error: error! });
    } else {
      this.records.add({
        problem: schedule.problem.spec, target: this.target, schedule: schedule.text(), hash, gflops,
        ...(m.bestSeconds !== undefined ? { bestSeconds: m.bestSeconds } : {}),
        ...(m.medianSeconds !== undefined ? { medianSeconds: m.medianSeconds } : {}),
        ...(error !== undefined ? { error } : {}),
        ...(m.servedBy !== undefined ? { servedBy: m.servedBy } : {}),
        timestamp: new Date().toISOString(), host: this.host,
      });
    }
    return {
      gflops, source: 'measured', hash,
      ...(error !== undefined ? { error } : {}),
      ...(m.bestSeconds !== undefined ? { bestSeconds: m.bestSeconds } : {}),
      ...(m.medianSeconds !== undefined ? { medianSeconds: m.medianSeconds } : {}),
      ...(m.codegenMicros !== undefined ? { codegenMicros: m.codegenMicros } : {}),
    };
  }

  async close(): Promise<void> {}
}

export type NativeTargetName = 'avx512' | 'avx2';

/** how the peak figure was obtained: probed now, from peak()'s cache, given by the caller, a nominal
 *  fallback (the probe failed: see `peakError`), or the target's model. */
export type PeakSource = 'measured' | 'cached' | 'given' | 'nominal' | 'model';

export interface MeasuredEvaluatorParts {
  backend: Backend;
  device: Device;
  ownsDevice: boolean;
  peak: PeakReading | { gflops: number; source: 'given' };
}

/**
 * Real measurements: Backend.compile and Device.time, behind the record cache (built by
 * env/evaluator-for.ts, the one place evaluators are made). A backend's launch feasibility
 * (`validate`) and sketches are the evaluator's.
 */
export class MeasuredEvaluator extends CachingEvaluator {
  readonly backend: Backend;
  readonly device: Device;
  readonly peakSource: PeakSource;
  readonly peakError: string | undefined;
  /** how the peak was measured (e.g. the GPU's FMA kernel), for reports */
  readonly peakMethod: string | undefined;
  readonly sketches: SketchSource | undefined;
  readonly threads: number;
  readonly #ownsDevice: boolean;

  constructor(options: CachingEvaluatorOptions, parts: MeasuredEvaluatorParts) {
    super(options);
    this.backend = parts.backend;
    this.device = parts.device;
    this.#ownsDevice = parts.ownsDevice;
    this.peakSource = parts.peak.source;
    this.peakError = 'error' in parts.peak ? parts.peak.error : undefined;
    this.peakMethod = 'method' in parts.peak ? parts.peak.method : undefined;
    this.sketches = parts.backend.sketches;
    this.threads = parts.device.threads ?? 1;
  }

  validate(schedule: Schedule): string | undefined {
    return this.backend.validate?.(schedule);
  }

  override async close(): Promise<void> {
    if (this.#ownsDevice) await this.device.close();
  }
}

export type PredictFunction = (schedules: readonly Schedule[]) => number[] | Promise<number[]>;

/** GFLOPS from a cost model: `predict` scores a batch of schedules (higher is faster). */
export class PredictedEvaluator implements Evaluator {
  readonly target: string;
  readonly peakGflops: number;
  predictions = 0;
  readonly #predict: PredictFunction;

  constructor(options: { target: string; peakGflops: number; predict: PredictFunction }) {
    if (!(options.peakGflops > 0)) throw new RangeError(`peakGflops must be positive, got ${options.peakGflops}`);
    this.target = options.target;
    this.peakGflops = options.peakGflops;
    this.#predict = options.predict;
  }

  async evaluate(schedule: Schedule): Promise<Evaluation> {
    return (await this.evaluateMany([schedule]))[0]!;
  }

  async evaluateMany(schedules: readonly Schedule[]): Promise<Evaluation[]> {
    if (schedules.length === 0) return [];
    const values = await this.#predict(schedules);
    if (values.length !== schedules.length) throw new Error(`predict returned ${values.length} values for ${schedules.length} schedules`);
    this.predictions += schedules.length;
    return schedules.map((s, i) => ({ gflops: Math.max(0, values[i]!), source: 'predicted' as const, hash: s.hash() }));
  }
}
