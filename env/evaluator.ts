/**
 * Where GFLOPS come from. An Evaluator turns a schedule into a figure: measured (generate code, time
 * it in a measurement worker), cached (a tuning record of an earlier measurement), or predicted (a
 * cost model). The environment and every searcher see only this interface.
 *
 * A kernel that fails to compile, crashes or hangs evaluates to 0 GFLOPS with `error` set; evaluate()
 * never throws for a bad schedule.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import type { Problem } from '../ir/problem.ts';
import type { Rng } from '../ir/random.ts';
import type { Schedule } from '../ir/schedule.ts';
import type { MeasurementPool } from '../targets/runtime/measure.ts';
import { hostKey } from '../targets/runtime/host.ts';
import { slowSecondsFor } from '../targets/runtime/timing.ts';
import { RecordStore, recordKey } from './records.ts';

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
  close?(): Promise<void>;
}

/** A target's sketches: well-structured random schedules that searches start from and draw fresh members from. */
export interface SketchSource {
  /** a random sketch of `problem` within `maxLoops` loops, or undefined when the draw does not fit. */
  sample(problem: Problem, rng: Rng, maxLoops: number): Schedule | undefined;
  /** known-good schedules a search measures before any random one (none when absent). */
  seeds?(problem: Problem, maxLoops: number): Schedule[];
  /** share of a search's fresh schedules drawn as sketches; the rest are random action walks. */
  readonly share: number;
}

/** What a raw measurement returns (CachingEvaluator adds the source, hash and caching). */
export interface Measurement {
  gflops: number;
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

  constructor(options: CachingEvaluatorOptions) {
    if (!(options.peakGflops > 0)) throw new RangeError(`peakGflops must be positive, got ${options.peakGflops}`);
    this.target = options.target;
    this.peakGflops = options.peakGflops;
    this.records = options.records ?? RecordStore.open(null);
    this.host = options.host ?? hostKey();
    this.#measure = options.measure;
    this.#limit = pLimit(options.concurrency ?? 1);
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

export interface MeasuredEvaluatorOptions {
  /** default: the host's best ('avx512' where it has AVX-512F). */
  target?: NativeTargetName;
  /** a shared store, a JSONL path, or null for memory only (default null). */
  records?: RecordStore | string | null;
  /** measurements at once (default 1). */
  concurrency?: number;
  /** minimum sampled time per measurement in seconds (default: the pool's, 0.05). */
  minSeconds?: number;
  /** per-kernel time limit in seconds (default 10). */
  timeoutSeconds?: number;
  /** skip the peak probe and use this figure. */
  peakGflops?: number;
  /** reuse a pool (it is then not closed by close()). */
  pool?: MeasurementPool;
  persistFailures?: boolean;
}

/** how the peak figure was obtained: probed now, from peak()'s cache, given by the caller, or a nominal
 *  fallback (the probe failed: see `peakError`). */
export type PeakSource = 'measured' | 'cached' | 'given' | 'nominal';

/** Nominal single-core fp32 peaks used when the probe fails (FACTS.md: Zen 5 figures), and as a floor of the
 *  bound on recorded figures (env/records.ts rejectAbovePeak: a probe on a busy machine reads low). */
export const NOMINAL_PEAK: Record<NativeTargetName, number> = { avx512: 230, avx2: 115 };

/**
 * Real measurements: compileSchedule (lowering + x86 emitter) and MeasurementPool.time in a worker
 * process, behind the record cache. The code generator and runtime are imported lazily, so that the
 * environment loads (and runs on other evaluators) even where they are unavailable.
 */
export class MeasuredEvaluator extends CachingEvaluator {
  readonly pool: MeasurementPool;
  readonly peakSource: PeakSource;
  readonly peakError: string | undefined;
  readonly #ownsPool: boolean;

  private constructor(options: CachingEvaluatorOptions, pool: MeasurementPool, ownsPool: boolean, peakSource: PeakSource, peakError?: string) {
    super(options);
    this.pool = pool;
    this.#ownsPool = ownsPool;
    this.peakSource = peakSource;
    this.peakError = peakError;
  }

  static async create(options: MeasuredEvaluatorOptions = {}): Promise<MeasuredEvaluator> {
    const { hostTarget } = await import('../targets/runtime/host.ts');
    const target: NativeTargetName = options.target ?? hostTarget();
    const [{ compileSchedule }, { MeasurementPool: Pool }] = await Promise.all([
      import('../targets/registry.ts'),
      import('../targets/runtime/measure.ts'),
    ]);
    let peakGflops: number;
    let peakSource: PeakSource;
    let peakError: string | undefined;
    if (options.peakGflops !== undefined) {
      peakGflops = options.peakGflops;
      peakSource = 'given';
    } else {
      try {
        const { peakRecord } = await import('../targets/runtime/peak.ts');
        const rec = await peakRecord(target);
        peakGflops = rec.gflops;
        peakSource = rec.cached ? 'cached' : 'measured';
      } catch (e) {
        peakGflops = NOMINAL_PEAK[target];
        peakSource = 'nominal';
        peakError = e instanceof Error ? e.message : String(e);
      }
    }
    const ownsPool = options.pool === undefined;
    const pool = options.pool ?? new Pool({
      concurrency: options.concurrency ?? 1,
      ...(options.timeoutSeconds !== undefined ? { timeoutSeconds: options.timeoutSeconds } : {}),
      ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
    });
    const records = options.records instanceof RecordStore ? options.records : RecordStore.open(options.records ?? null);
    const measure: MeasureFunction = async (schedule) => {
      let kernel;
      try {
        kernel = compileSchedule(schedule, target);
      } catch (e) {
        return { gflops: 0, error: `code generation failed: ${e instanceof Error ? e.message : String(e)}` };
      }
      const r = await pool.time(kernel, {
        ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
        slowSeconds: slowSecondsFor(kernel.flops, peakGflops),
      });
      if (!r.ok) return { gflops: 0, error: r.error, codegenMicros: kernel.codegenMicros };
      return { gflops: r.gflops, bestSeconds: r.bestSeconds, medianSeconds: r.medianSeconds, codegenMicros: kernel.codegenMicros };
    };
    return new MeasuredEvaluator({
      target, peakGflops, measure, records,
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.persistFailures !== undefined ? { persistFailures: options.persistFailures } : {}),
    }, pool, ownsPool, peakSource, peakError);
  }

  override async close(): Promise<void> {
    if (this.#ownsPool) await this.pool.close();
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
