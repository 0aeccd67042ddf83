/**
 * The learned cost model: a TF.js network on per-schedule features (features.ts) with two heads,
 *  - `score`: a ranking score, trained with a ranking loss WITHIN each problem (pairwise logistic
 *    over pairs of schedules of the same problem, as AutoTVM; or ListNet's listwise softmax);
 *  - `frac`: a regression head (sigmoid) on GFLOPS / (`scaleGflops` x T) (a fixed per-target figure,
 *    1.25 x the nominal one-core peak, times the T threads of the measurement for thread-aware
 *    models: the figure of T cores), so that predictions are comparable ACROSS problems and convert
 *    back to GFLOPS: predicted GFLOPS = frac x scaleGflops x T.
 * Loss = rank loss + regressionWeight x MSE(frac).
 *
 * Variants (for comparison): arch 'mlp' (default: hidden layers [128, 128], ReLU) or 'linear';
 * features 'program' (the LoopProgram features, default) or 'looptune' (LoopTune's 10x20 vector
 * encoding of the schedule text).
 *
 * Saved as a standard tfjs layers model (model.json + weights.bin, io.ts) whose metadata carries
 * everything else needed to predict: the feature set, the standardization (mean/std per feature),
 * the target and its scale, the cache sizes the features were computed with, and how it was trained.
 *
 * Threads: a prediction is for schedules run on a thread count (`predict(schedules, threads)`,
 * default 1), an input of the program features since version 2 (features.ts, parallel block);
 * training groups carry the count of their records (data.ts). A version-1 model (182 program
 * features, thread-blind) still loads and predicts from the first 182 features, which are unchanged.
 */
import { fail } from '../../ir/errors.ts';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../backend.ts';
import { pretrainedCostModelDir } from '../pretrained-paths.ts';
import { Rng } from '../../ir/random.ts';
import type { Schedule } from '../../ir/schedule.ts';
import type { TuningRecord } from '../../env/records.ts';
import { findBackend } from '../../targets/registry.ts';
import { hostTarget } from '../../targets/runtime/host.ts';
import { initBackend } from '../backend.ts';
import { asGroups, type RecordGroup } from './data.ts';
import {
  FEATURE_COUNT, FeatureCache, LOOPTUNE_FEATURE_COUNT, SERIAL_FEATURE_COUNT, featureContext, featurize, featurizeLooptune, resolveCaches,
  type FeatureContext,
} from './features.ts';
import { fileIO, readModelMetadata } from './io.ts';
import { CUDA_FEATURE_COUNT, featurizeCuda } from './cuda-features.ts';
import { rankingMetrics, type RankingMetrics } from './metrics.ts';

/** 'program': LoopProgram features (CPU targets); 'looptune': LoopTune's 10x20 encoding; 'cuda': GPU mapping + PTX mix (cuda-features.ts). */
export type FeatureSet = 'program' | 'looptune' | 'cuda';
export type Arch = 'mlp' | 'linear';
export type RankLoss = 'pairwise' | 'listwise';
/** 'joint': frac = sigmoid(score), one output ranked AND regressed; 'separate': two heads. */
export type Heads = 'joint' | 'separate';

/** The GPU kernel feature set (cuda-features.ts), for GPU backends. */
const GPU_FEATURES: FeatureSet = 'cuda';

/** The nominal peak of a target whose figures are timings (its Backend's; undefined for other names):
 *  the regression scale is 1.25x it. */
export function nominalPeakOf(target: string): number | undefined {
  const b = findBackend(target);
  return b?.timing === 'native' ? b.nominalPeakGflops : undefined;
}
export const META_KEY = 'looptune';
export const META_FORMAT = 'looptune-costmodel';
/** 2: program features take the thread count (FEATURE_COUNT); 1: thread-blind (SERIAL_FEATURE_COUNT). */
export const META_VERSION = 2;

export interface CostModelMeta {
  format: typeof META_FORMAT;
  version: 1 | 2;
  /** target of the records it learned from ('avx512', 'avx2', 'synthetic', ...). */
  target: string;
  /** target whose caps the features are computed with (= target when it is a code generator). */
  featureTarget: string;
  featureSet: FeatureSet;
  arch: Arch;
  hidden: number[];
  featureCount: number;
  heads: Heads;
  scaleGflops: number;
  caches: { l1d: number; l2: number; l3: number };
  mean: number[];
  std: number[];
  training?: TrainingInfo;
}

export interface TrainingInfo {
  createdAt: string;
  records: number;
  problems: number;
  epochs: number;
  steps: number;
  seconds: number;
  loss: RankLoss;
  finalLoss: number;
  backend: string;
  /** where the records came from (file names), for the report. */
  sources?: string[];
  /** fine-tuned from this model (transfer). */
  warmStartedFrom?: string;
  updates?: number;
}

export interface CostModelOptions {
  /** target of the records ('avx512', 'avx2', or anything, e.g. 'synthetic'). */
  target: string;
  featureSet?: FeatureSet;
  arch?: Arch;
  /** hidden layer widths of the MLP (default [128, 128]). */
  hidden?: number[];
  /** default 'joint' */
  heads?: Heads;
  /** GFLOPS that the regression head's 1.0 stands for (default 1.25 x the target's nominal peak, else 125). */
  scaleGflops?: number;
  /** cache sizes for the features (default: this host's). */
  caches?: { l1d: number; l2: number; l3: number };
  /** initializer seed (default 0). */
  seed?: number;
}

export interface FitProgress {
  epoch: number;
  epochs: number;
  step: number;
  loss: number;
  seconds: number;
  /** metrics on the validation groups after this epoch (when given). */
  validation?: Pick<RankingMetrics, 'spearman' | 'pairwiseAccuracy' | 'top10Recall'>;
}

export interface FitOptions {
  epochs?: number;
  learningRate?: number;
  /** problems per batch (default 32) and schedules sampled per problem (default 16). */
  groupsPerBatch?: number;
  perGroup?: number;
  loss?: RankLoss;
  /** weight of the regression MSE (default 10). */
  regressionWeight?: number;
  /** pairs whose GFLOPS differ by less than this fraction of the problem's best are ignored (default 0.01). */
  margin?: number;
  /** ListNet temperature on normalized throughput (default 0.1). */
  temperature?: number;
  seed?: number;
  /** keep the current standardization (fine-tuning, transfer); default: recompute from the data unless already set. */
  keepNormalization?: boolean;
  /** at least this many steps per epoch (default 1). */
  minStepsPerEpoch?: number;
  /** exactly this many steps per epoch (default: records / (groupsPerBatch x perGroup), at least minStepsPerEpoch). */
  stepsPerEpoch?: number;
  validation?: readonly TuningRecord[] | readonly RecordGroup[];
  /** evaluate on `validation` every this many epochs (default: every epoch). */
  validateEvery?: number;
  onProgress?: (p: FitProgress) => void;
  sources?: string[];
}

export interface FitReport {
  epochs: number;
  steps: number;
  seconds: number;
  finalLoss: number;
  records: number;
  problems: number;
  validation?: RankingMetrics;
}

export interface Prediction {
  /** ranking score (higher = faster), comparable within a problem. */
  score: Float32Array;
  /** predicted GFLOPS = frac head x scaleGflops (x threads for thread-aware models), comparable across problems. */
  gflops: Float32Array;
}

/** Where the shipped default model of a target lives (agent/pretrained/<target>/costmodel). */
export function shippedModelDir(target: string): string {
  return pretrainedCostModelDir(target);
}

/** 'default' -> the shipped model of the host's target; 'default:<target>' -> that target's; else the path. */
export function resolveModelPath(ref: string): string {
  if (ref === 'default') return shippedModelDir(hostTarget());
  const m = /^default:(\w+)$/.exec(ref);
  if (m) return shippedModelDir(m[1]!);
  return ref.endsWith('model.json') ? path.dirname(ref) : ref;
}

function capsTargetOf(target: string): string {
  return findBackend(target) ? target : 'avx512';
}

/** Compact prepared data: standardized feature rows per problem (and thread count) plus the two targets. */
interface Prepared {
  problem: string;
  threads: number;
  x: Float32Array;
  /** gflops / best of the problem */
  rel: Float32Array;
  /** gflops / (scaleGflops x threads) */
  frac: Float32Array;
  n: number;
}

export class CostModel {
  net: tf.LayersModel;
  meta: CostModelMeta;
  readonly cache = new FeatureCache();
  readonly #cudaCache = new Map<string, Float32Array>();
  #featureContext: FeatureContext | undefined;
  /** records the hybrid evaluator fed in by update(), per problem and thread count (bounded). */
  readonly #online = new Map<string, { problem: string; threads: number; schedules: Schedule[]; gflops: number[] }>();
  #onlineCount = 0;

  private constructor(net: tf.LayersModel, meta: CostModelMeta) {
    this.net = net;
    this.meta = meta;
  }

  /** the CPU feature context (built on first use: GPU models never need it). */
  get featureContext(): FeatureContext {
    this.#featureContext ??= featureContext(this.meta.featureTarget, this.meta.caches);
    return this.#featureContext;
  }

  /** A fresh, untrained model. */
  static async create(options: CostModelOptions): Promise<CostModel> {
    await initBackend();
    const featureSet = options.featureSet ?? (findBackend(options.target)?.processor === 'gpu' ? GPU_FEATURES : 'program');
    const arch = options.arch ?? 'mlp';
    const hidden = arch === 'linear' ? [] : (options.hidden ?? [128, 128]);
    const featureCount = featureSet === 'program' ? FEATURE_COUNT : featureSet === GPU_FEATURES ? CUDA_FEATURE_COUNT : LOOPTUNE_FEATURE_COUNT;
    const nominal = nominalPeakOf(options.target);
    const meta: CostModelMeta = {
      format: META_FORMAT, version: META_VERSION,
      target: options.target,
      featureTarget: capsTargetOf(options.target),
      featureSet, arch, hidden, featureCount, heads: options.heads ?? 'joint',
      scaleGflops: options.scaleGflops ?? (nominal ? nominal * 1.25 : 125),
      caches: resolveCaches(options.caches),
      mean: new Array<number>(featureCount).fill(0),
      std: new Array<number>(featureCount).fill(1),
    };
    return new CostModel(buildNet(featureCount, hidden, options.seed ?? 0, meta.heads), meta);
  }

  /** Loads a saved model: a directory (or its model.json), or 'default' / 'default:<target>'. */
  static async load(ref: string): Promise<CostModel> {
    await initBackend();
    const dir = resolveModelPath(ref);
    if (!existsSync(path.join(dir, 'model.json'))) {
      fail(`no cost model at ${dir} (expected model.json and weights.bin${ref.startsWith('default') ? '; the shipped model for this target has not been trained yet: see bench/costmodel.ts' : ''})`);
    }
    const meta = readModelMetadata(dir)[META_KEY] as CostModelMeta | undefined;
    if (!meta || meta.format !== META_FORMAT) fail(`${dir}/model.json is a tfjs model but not a looptune cost model (no '${META_KEY}' metadata)`);
    const problem = incompatibility(meta);
    if (problem) fail(`${dir}: ${problem}`);
    const net = await tf.loadLayersModel(fileIO(dir));
    return new CostModel(net, meta);
  }

  async save(dir: string): Promise<void> {
    await this.net.save(fileIO(dir, { [META_KEY]: this.meta }));
  }

  dispose(): void {
    this.net.dispose();
  }

  get target(): string {
    return this.meta.target;
  }

  /** GFLOPS that the regression head's 1.0 stands for on `threads` threads (T cores' worth for thread-aware models). */
  regressionScale(threads: number): number {
    return this.meta.scaleGflops * (this.threadAware ? threads : 1);
  }

  /** Whether predictions depend on the thread count (program features of version 2). */
  get threadAware(): boolean {
    return this.meta.featureSet === 'program' && this.meta.featureCount === FEATURE_COUNT;
  }

  /** Raw (unstandardized) feature rows of the schedules run on `threads` threads (GPU and LoopTune features ignore it). */
  features(schedules: readonly Schedule[], threads = 1): Float32Array {
    if (this.meta.featureSet === GPU_FEATURES) return featurizeCuda(schedules, this.#cudaCache);
    if (this.meta.featureSet !== 'program') return featurizeLooptune(schedules);
    const rows = featurize(schedules, this.featureContext, this.cache, threads);
    if (this.threadAware) return rows;
    // a version-1 model: its features are the first SERIAL_FEATURE_COUNT of each row
    const f = this.meta.featureCount;
    const out = new Float32Array(schedules.length * f);
    for (let i = 0; i < schedules.length; i++) out.set(rows.subarray(i * FEATURE_COUNT, i * FEATURE_COUNT + f), i * f);
    return out;
  }

  #standardize(x: Float32Array): Float32Array {
    const f = this.meta.featureCount;
    const { mean, std } = this.meta;
    for (let i = 0; i < x.length; i++) {
      const j = i % f;
      x[i] = (x[i]! - mean[j]!) / std[j]!;
    }
    return x;
  }

  #run(x: Float32Array, rows: number): { score: Float32Array; frac: Float32Array } {
    const f = this.meta.featureCount;
    const score = new Float32Array(rows);
    const frac = new Float32Array(rows);
    const CHUNK = 8192;
    for (let start = 0; start < rows; start += CHUNK) {
      const n = Math.min(CHUNK, rows - start);
      const [s, q] = tf.tidy(() => {
        const xt = tf.tensor2d(x.subarray(start * f, (start + n) * f), [n, f]);
        const out = this.net.apply(xt) as tf.Tensor[];
        return [out[0]!.dataSync() as Float32Array, out[1]!.dataSync() as Float32Array];
      });
      score.set(s!, start);
      frac.set(q!, start);
    }
    return { score, frac };
  }

  /** Batched prediction (features included) for the schedules run on `threads` threads. */
  predict(schedules: readonly Schedule[], threads = 1): Prediction {
    if (schedules.length === 0) return { score: new Float32Array(0), gflops: new Float32Array(0) };
    const x = this.#standardize(this.features(schedules, threads));
    const { score, frac } = this.#run(x, schedules.length);
    const gflops = new Float32Array(frac.length);
    const scale = this.regressionScale(threads);
    for (let i = 0; i < frac.length; i++) gflops[i] = frac[i]! * scale;
    return { score, gflops };
  }

  #prepare(groups: readonly RecordGroup[]): Prepared[] {
    const out: Prepared[] = [];
    for (const g of groups) {
      if (g.schedules.length === 0) continue;
      const best = Math.max(...g.gflops);
      if (!(best > 0)) continue;
      const threads = g.threads ?? 1;
      out.push({
        problem: g.problem, threads,
        x: this.features(g.schedules, threads).slice(),
        rel: Float32Array.from(g.gflops, (v) => v / best),
        frac: Float32Array.from(g.gflops, (v) => Math.min(1, v / this.regressionScale(threads))),
        n: g.schedules.length,
      });
    }
    return out;
  }

  #setNormalization(prepared: readonly Prepared[]): void {
    const f = this.meta.featureCount;
    const sum = new Float64Array(f), sq = new Float64Array(f);
    let n = 0;
    for (const p of prepared) {
      for (let r = 0; r < p.n; r++) {
        for (let j = 0; j < f; j++) {
          const v = p.x[r * f + j]!;
          sum[j]! += v;
          sq[j]! += v * v;
        }
      }
      n += p.n;
    }
    if (n === 0) return;
    this.meta.mean = Array.from(sum, (s) => Math.fround(s / n));
    this.meta.std = Array.from(sq, (s, j) => {
      const m = sum[j]! / n;
      const sd = Math.sqrt(Math.max(0, s / n - m * m));
      return sd > 1e-4 ? Math.fround(sd) : 1;
    });
  }

  /**
   * Trains on records (or groups) of this model's target. Recomputes the standardization unless
   * `keepNormalization` (use that to fine-tune a trained model).
   */
  async fit(data: readonly TuningRecord[] | readonly RecordGroup[], options: FitOptions = {}): Promise<FitReport> {
    await initBackend();
    const t0 = performance.now();
    const groups = asGroups(data, this.meta.target);
    const raw = this.#prepare(groups);
    if (raw.length === 0) fail(`no usable ${this.meta.target} records to train on`);
    if (!options.keepNormalization) this.#setNormalization(raw);
    for (const p of raw) this.#standardize(p.x);
    const validation = options.validation ? asGroups(options.validation, this.meta.target) : undefined;

    const epochs = options.epochs ?? 60;
    const G = options.groupsPerBatch ?? 32;
    const K = options.perGroup ?? 16;
    const lossKind = options.loss ?? 'pairwise';
    const lambda = options.regressionWeight ?? 10;
    const margin = options.margin ?? 0.01;
    const tau = options.temperature ?? 0.1;
    const rng = new Rng(options.seed ?? 1);
    const f = this.meta.featureCount;
    const totalRows = raw.reduce((a, p) => a + p.n, 0);
    const stepsPerEpoch = options.stepsPerEpoch ?? Math.max(options.minStepsPerEpoch ?? 1, Math.ceil(totalRows / (G * K)));
    const optimizer = tf.train.adam(options.learningRate ?? 1e-3);
    // problems drawn proportionally to their record counts (every record about equally often)
    const cumulative: number[] = [];
    raw.reduce((a, p, i) => (cumulative[i] = a + p.n), 0);
    const drawGroup = (): Prepared => {
      const u = rng.next() * totalRows;
      let lo = 0, hi = cumulative.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cumulative[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      return raw[lo]!;
    };

    const xb = new Float32Array(G * K * f);
    const yFrac = new Float32Array(G * K);
    const rel = new Float32Array(G * K);
    const pairMask = new Float32Array(G * K * K);
    const idx = new Int32Array(K);
    let step = 0;
    let lastLoss = Number.NaN;
    let report: FitReport = { epochs, steps: 0, seconds: 0, finalLoss: Number.NaN, records: totalRows, problems: raw.length };
    for (let epoch = 1; epoch <= epochs; epoch++) {
      let epochLoss = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        for (let g = 0; g < G; g++) {
          const p = drawGroup();
          // K rows: a partial shuffle when there are enough, else all rows then random repeats
          if (p.n >= K) {
            const perm = Array.from({ length: p.n }, (_, i) => i);
            for (let i = 0; i < K; i++) {
              const j = i + Math.floor(rng.next() * (p.n - i));
              [perm[i], perm[j]] = [perm[j]!, perm[i]!];
              idx[i] = perm[i]!;
            }
          } else {
            for (let i = 0; i < K; i++) idx[i] = i < p.n ? i : Math.floor(rng.next() * p.n);
          }
          for (let i = 0; i < K; i++) {
            const r = idx[i]!;
            xb.set(p.x.subarray(r * f, (r + 1) * f), (g * K + i) * f);
            yFrac[g * K + i] = p.frac[r]!;
            rel[g * K + i] = p.rel[r]!;
          }
          for (let i = 0; i < K; i++) {
            for (let j = 0; j < K; j++) {
              const d = rel[g * K + i]! - rel[g * K + j]!;
              pairMask[(g * K + i) * K + j] = d > margin ? 1 : 0;
            }
          }
        }
        const lossValue = tf.tidy(() => {
          const x = tf.tensor2d(xb, [G * K, f]);
          const yf = tf.tensor1d(yFrac);
          const relT = tf.tensor2d(rel, [G, K]);
          const mask = tf.tensor3d(pairMask, [G, K, K]);
          const pairs = Math.max(1, pairMask.reduce((a, b) => a + b, 0));
          const cost = optimizer.minimize(() => {
            const [score, frac] = this.net.apply(x, { training: true }) as tf.Tensor[];
            const sc = score!.reshape([G, K]);
            let rank: tf.Tensor;
            if (lossKind === 'pairwise') {
              const diff = sc.expandDims(2).sub(sc.expandDims(1)); // s_i - s_j
              rank = tf.softplus(diff.neg()).mul(mask).sum().div(pairs);
            } else {
              const target = tf.softmax(relT.div(tau));
              rank = target.mul(tf.logSoftmax(sc)).sum().neg().div(G);
            }
            const reg = frac!.reshape([G * K]).sub(yf).square().mean();
            return rank.add(reg.mul(lambda)) as tf.Scalar;
          }, true);
          return cost!.dataSync()[0]!;
        });
        epochLoss += lossValue;
        step++;
      }
      lastLoss = epochLoss / stepsPerEpoch;
      const validateEvery = options.validateEvery ?? 1;
      let vm: RankingMetrics | undefined;
      if (validation && (epoch % validateEvery === 0 || epoch === epochs)) vm = this.evaluateGroups(validation);
      options.onProgress?.({
        epoch, epochs, step, loss: lastLoss, seconds: (performance.now() - t0) / 1000,
        ...(vm ? { validation: { spearman: vm.spearman, pairwiseAccuracy: vm.pairwiseAccuracy, top10Recall: vm.top10Recall } } : {}),
      });
      if (vm) report.validation = vm;
    }
    optimizer.dispose();
    const seconds = (performance.now() - t0) / 1000;
    report = { ...report, steps: step, seconds, finalLoss: lastLoss };
    const prev = this.meta.training;
    this.meta.training = {
      createdAt: new Date().toISOString(), records: totalRows, problems: raw.length, epochs, steps: step,
      seconds, loss: lossKind, finalLoss: lastLoss, backend: tf.getBackend(),
      ...(options.sources ? { sources: options.sources } : prev?.sources ? { sources: prev.sources } : {}),
      ...(prev?.warmStartedFrom ? { warmStartedFrom: prev.warmStartedFrom } : {}),
      ...(prev?.updates ? { updates: prev.updates } : {}),
    };
    return report;
  }

  /**
   * Incremental update: remembers the new records (per problem, at most `memory` in all) and
   * fine-tunes a few epochs, keeping the standardization. An "epoch" here is sized by the NEW records
   * (at least 4 steps), its batches drawn from everything remembered: the cost of an update grows
   * with what is new, not with the memory.
   */
  async update(newData: readonly TuningRecord[] | readonly RecordGroup[], options: FitOptions & { memory?: number } = {}): Promise<FitReport> {
    const groups = asGroups(newData, this.meta.target);
    const newRows = groups.reduce((a, g) => a + g.schedules.length, 0);
    const memory = options.memory ?? 4096;
    for (const g of groups) {
      const threads = g.threads ?? 1;
      const key = `${g.problem}|${threads}`;
      let m = this.#online.get(key);
      if (!m) this.#online.set(key, (m = { problem: g.problem, threads, schedules: [], gflops: [] }));
      g.schedules.forEach((s, i) => {
        const j = m!.schedules.findIndex((x) => x.hash() === s.hash());
        if (j >= 0) m!.gflops[j] = Math.max(m!.gflops[j]!, g.gflops[i]!);
        else {
          m!.schedules.push(s);
          m!.gflops.push(g.gflops[i]!);
          this.#onlineCount++;
        }
      });
    }
    // forget the oldest problems first when over the memory bound
    for (const [k, m] of this.#online) {
      if (this.#onlineCount <= memory) break;
      this.#onlineCount -= m.schedules.length;
      this.#online.delete(k);
    }
    const all: RecordGroup[] = [...this.#online.values()].map((m) => ({
      problem: m.problem, schedules: m.schedules, gflops: m.gflops, ...(m.threads > 1 ? { threads: m.threads } : {}),
    }));
    if (all.length === 0) return { epochs: 0, steps: 0, seconds: 0, finalLoss: Number.NaN, records: 0, problems: 0 };
    const { training } = this.meta;
    const G = options.groupsPerBatch ?? Math.min(8, all.length);
    const K = options.perGroup ?? 16;
    const report = await this.fit(all, {
      epochs: 4, learningRate: 3e-4, groupsPerBatch: G, perGroup: K, stepsPerEpoch: Math.max(4, Math.ceil(newRows / (G * K))),
      ...options, keepNormalization: true,
    });
    // an update keeps the description of the original training, counting updates
    this.meta.training = training ? { ...training, updates: (training.updates ?? 0) + 1 } : this.meta.training;
    return report;
  }

  /** Metrics of the ranking (score head) and of the GFLOPS head on held-out groups (each predicted at its thread count). */
  evaluateGroups(groups: readonly RecordGroup[], head: 'score' | 'gflops' = 'score'): RankingMetrics {
    return rankingMetrics(groups.filter((g) => g.schedules.length > 0).map((g) => {
      const p = this.predict(g.schedules, g.threads ?? 1);
      return { problem: groupName(g), predicted: head === 'score' ? p.score : p.gflops, measured: g.gflops };
    }));
  }
}

/** A group's name in metrics: the problem, with its thread count above one. */
export function groupName(g: Pick<RecordGroup, 'problem' | 'threads'>): string {
  return (g.threads ?? 1) > 1 ? `${g.problem} threads=${g.threads}` : g.problem;
}

/** Why this code cannot run a saved model (undefined when it can), in one line. */
function incompatibility(meta: CostModelMeta): string | undefined {
  const version = meta.version as number;
  if (!(version >= 1 && version <= META_VERSION)) {
    return `cost model format version ${String(meta.version)} is newer than this looptune reads (1..${META_VERSION}): update looptune or retrain the model (bench/costmodel.ts train)`;
  }
  if (meta.featureSet === 'program' && meta.featureCount !== FEATURE_COUNT && meta.featureCount !== SERIAL_FEATURE_COUNT) {
    return `cost model takes ${meta.featureCount} program features; this looptune computes ${FEATURE_COUNT} (${SERIAL_FEATURE_COUNT} for version-1 models): retrain it (bench/costmodel.ts train)`;
  }
  if (meta.featureSet === 'looptune' && meta.featureCount !== LOOPTUNE_FEATURE_COUNT) {
    return `cost model takes ${meta.featureCount} LoopTune features; this looptune computes ${LOOPTUNE_FEATURE_COUNT}: retrain it (bench/costmodel.ts train)`;
  }
  if (!Array.isArray(meta.mean) || meta.mean.length !== meta.featureCount || !Array.isArray(meta.std) || meta.std.length !== meta.featureCount) {
    return `cost model metadata is damaged: its standardization does not have ${meta.featureCount} features`;
  }
  return undefined;
}

function buildNet(inputs: number, hidden: number[], seed: number, heads: Heads): tf.LayersModel {
  const input = tf.input({ shape: [inputs], name: 'features' });
  let h: tf.SymbolicTensor = input;
  hidden.forEach((units, i) => {
    h = tf.layers.dense({
      units, activation: 'relu', name: `hidden${i}`,
      kernelInitializer: tf.initializers.heNormal({ seed: seed * 101 + i + 1 }),
    }).apply(h) as tf.SymbolicTensor;
  });
  const score = tf.layers.dense({
    units: 1, name: 'score', kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 101 + 50 }),
  }).apply(h) as tf.SymbolicTensor;
  const frac = (heads === 'joint'
    ? tf.layers.activation({ activation: 'sigmoid', name: 'frac' }).apply(score)
    : tf.layers.dense({
      units: 1, activation: 'sigmoid', name: 'frac', kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 101 + 51 }),
    }).apply(h)) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: [score, frac], name: 'looptune_costmodel' });
}
