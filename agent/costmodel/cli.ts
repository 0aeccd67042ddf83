/**
 * Library functions behind `looptune costmodel train|eval` (cli.ts wires them):
 *
 *   trainCostModel(['records.jsonl'], { out: 'models/cm', target: 'avx512', epochs: 60 })
 *   evalCostModel('default', 'held-out.jsonl') -> { spearman, pairwiseAccuracy, top10Recall, records, ... }
 *
 * Model references: 'default' = the shipped model for this host's target
 * (agent/pretrained/<target>/costmodel), 'default:avx2' = that target's, else a directory with
 * model.json + weights.bin (or the model.json path).
 */
import { fail } from '../../ir/errors.ts';
import { hostTarget } from '../../targets/runtime/host.ts';
import { readRecordFiles, groupRecords, type GroupStats } from './data.ts';
import type { ProblemMetrics, RankingMetrics } from './metrics.ts';
import { rankingMetrics, spearman as spearmanOf } from './metrics.ts';
import {
  CostModel, groupName, resolveModelPath, type Arch, type CostModelMeta, type FeatureSet, type FitProgress, type FitReport, type RankLoss,
} from './model.ts';

export interface TrainCostModelOptions {
  /** directory to write model.json + weights.bin into. */
  out: string;
  /** target of the records to learn (default: the host's). */
  target?: string;
  /** default 60 (20 when warm-starting). */
  epochs?: number;
  onProgress?: (p: FitProgress) => void;
  arch?: Arch;
  featureSet?: FeatureSet;
  hidden?: number[];
  loss?: RankLoss;
  learningRate?: number;
  seed?: number;
  /** warm start (transfer): fine-tune this model ('default', a path) instead of starting fresh. */
  init?: string;
  /** held-out record files evaluated after training (and during, every 10 epochs, via onProgress). */
  validation?: string[];
}

export interface TrainCostModelResult {
  out: string;
  report: FitReport;
  meta: CostModelMeta;
  data: GroupStats;
  validation?: EvalCostModelResult;
}

export async function trainCostModel(recordFiles: string[], options: TrainCostModelOptions): Promise<TrainCostModelResult> {
  if (recordFiles.length === 0) fail('trainCostModel: no record files');
  const target = options.target ?? hostTarget();
  const { groups, stats } = groupRecords(readRecordFiles(recordFiles), { target });
  if (stats.used === 0) fail(`no usable ${target} records in ${recordFiles.join(', ')} (${stats.records} records: ${stats.otherTarget} of other targets, ${stats.failed} failed)`);
  const validation = options.validation?.length
    ? groupRecords(readRecordFiles(options.validation), { target }).groups
    : undefined;
  let model: CostModel;
  if (options.init) {
    model = await CostModel.load(options.init);
    if (model.target !== target) fail(`warm start: ${options.init} is a ${model.target} model, the records are ${target}`);
    model.meta.training = { ...(model.meta.training ?? ({} as never)), warmStartedFrom: options.init };
  } else {
    model = await CostModel.create({
      target,
      ...(options.arch ? { arch: options.arch } : {}),
      ...(options.featureSet ? { featureSet: options.featureSet } : {}),
      ...(options.hidden ? { hidden: options.hidden } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
    });
  }
  try {
    const report = await model.fit(groups, {
      epochs: options.epochs ?? (options.init ? 20 : 60),
      learningRate: options.learningRate ?? (options.init ? 3e-4 : 1e-3),
      keepNormalization: options.init !== undefined,
      sources: recordFiles,
      ...(options.loss ? { loss: options.loss } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(validation ? { validation, validateEvery: 10 } : {}),
    });
    await model.save(options.out);
    const result: TrainCostModelResult = { out: options.out, report, meta: model.meta, data: stats };
    if (validation) result.validation = evaluateModel(model, validation, options.validation!.join(','), options.out);
    return result;
  } finally {
    model.dispose();
  }
}

export interface EvalCostModelResult {
  model: string;
  target: string;
  recordFile: string;
  /** mean over problems of the within-problem Spearman correlation. */
  spearman: number;
  /** mean over problems of the within-problem pairwise accuracy. */
  pairwiseAccuracy: number;
  /** pairwise accuracy over pairs more than 5% apart (above timing noise). */
  pairwiseAccuracy5: number;
  /** fraction of problems whose measured-best schedule is in the predicted top 10. */
  top10Recall: number;
  /** mean and worst over problems of the best measured among the predicted top 10 over the measured best (a screen of 10) */
  top10BestRatio: number;
  top10WorstRatio: number;
  /** schedules evaluated (those of problems with >= 2 schedules). */
  records: number;
  problems: number;
  /** median over schedules of |predicted - measured| / measured GFLOPS (the cross-problem scale). */
  gflopsMedianRelativeError: number;
  /** mean over schedules of |predicted - measured| GFLOPS (what a reward difference / peak sees). */
  gflopsMeanAbsoluteError: number;
  /** Spearman over ALL schedules pooled (does the predicted GFLOPS order problems too?). */
  pooledSpearman: number;
  perProblem: ProblemMetrics[];
  /** the ranking metrics of the groups measured on each thread count (records' host keys, data.ts threadsOfHost). */
  byThreads: Record<string, ThreadsMetrics>;
  /** prediction time per schedule, one batch of all records, features included (microseconds). */
  microsPerSchedule: number;
}

export type ThreadsMetrics = Pick<RankingMetrics, 'spearman' | 'pairwiseAccuracy' | 'pairwiseAccuracy5' | 'top10Recall' | 'records' | 'problems'>;

function evaluateModel(model: CostModel, groups: ReturnType<typeof groupRecords>['groups'], recordFile: string, modelPath: string): EvalCostModelResult {
  const preds = groups.map((g) => model.predict(g.schedules, g.threads ?? 1));
  // prediction time: one batch of everything, features not cached (after the warm-up above)
  const all = groups.flatMap((g) => g.schedules);
  model.cache.clear();
  const t0 = performance.now();
  model.predict(all);
  const micros = ((performance.now() - t0) * 1000) / Math.max(1, all.length);
  const entries = groups.map((g, i) => ({ problem: groupName(g), predicted: preds[i]!.score, measured: g.gflops, threads: g.threads ?? 1 }));
  const m: RankingMetrics = rankingMetrics(entries);
  const byThreads: Record<string, ThreadsMetrics> = {};
  for (const t of [...new Set(entries.map((e) => e.threads))].sort((a, b) => a - b)) {
    const r = rankingMetrics(entries.filter((e) => e.threads === t));
    byThreads[String(t)] = {
      spearman: r.spearman, pairwiseAccuracy: r.pairwiseAccuracy, pairwiseAccuracy5: r.pairwiseAccuracy5, top10Recall: r.top10Recall,
      records: r.records, problems: r.problems,
    };
  }
  const rel: number[] = [];
  const allP: number[] = [], allM: number[] = [];
  let absSum = 0;
  groups.forEach((g, i) => g.gflops.forEach((v, k) => {
    const p = preds[i]!.gflops[k]!;
    rel.push(Math.abs(p - v) / v);
    absSum += Math.abs(p - v);
    allP.push(p);
    allM.push(v);
  }));
  rel.sort((a, b) => a - b);
  return {
    model: modelPath, target: model.target, recordFile,
    spearman: m.spearman, pairwiseAccuracy: m.pairwiseAccuracy, pairwiseAccuracy5: m.pairwiseAccuracy5, top10Recall: m.top10Recall,
    top10BestRatio: m.top10BestRatio, top10WorstRatio: m.top10WorstRatio,
    records: m.records, problems: m.problems,
    gflopsMedianRelativeError: rel.length ? rel[rel.length >> 1]! : Number.NaN,
    gflopsMeanAbsoluteError: rel.length ? absSum / rel.length : Number.NaN,
    pooledSpearman: spearmanOf(allP, allM),
    perProblem: m.perProblem,
    byThreads,
    microsPerSchedule: micros,
  };
}

/**
 * Ranking quality of a model on measured records: Spearman and pairwise accuracy WITHIN each problem,
 * averaged over problems; top-10 recall over problems. Only records of the model's target count.
 */
export async function evalCostModel(modelPathOrDefault: string, recordFile: string | string[]): Promise<EvalCostModelResult> {
  const model = await CostModel.load(modelPathOrDefault);
  try {
    const files = Array.isArray(recordFile) ? recordFile : [recordFile];
    const { groups, stats } = groupRecords(readRecordFiles(files), { target: model.target });
    if (stats.used === 0) fail(`no usable ${model.target} records in ${files.join(', ')}`);
    return evaluateModel(model, groups, files.join(','), resolveModelPath(modelPathOrDefault));
  } finally {
    model.dispose();
  }
}
