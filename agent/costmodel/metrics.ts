/**
 * Ranking metrics of a cost model, computed WITHIN each problem and then averaged over problems
 * (a model is only ever asked to order schedules of one problem):
 *  - Spearman's rank correlation of predicted and measured figures (ties get average ranks; a
 *    problem whose predictions or measurements are all equal counts 0);
 *  - pairwise accuracy: over pairs with different measured figures, the fraction the model orders
 *    the same way (a tie in the prediction counts one half);
 *  - top-k recall: the fraction of problems whose measured-best schedule is among the k best
 *    predicted (ties in the measured best: any of them counts).
 * Problems with fewer than 2 schedules are skipped (nothing to rank).
 */

/** Average ranks (1-based) of values, ties sharing their mean rank. */
export function ranks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const r = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && values[order[j + 1]!] === values[order[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[order[k]!] = rank;
    i = j + 1;
  }
  return r;
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma, db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

export function spearman(predicted: ArrayLike<number>, measured: ArrayLike<number>): number {
  if (predicted.length !== measured.length) throw new RangeError('spearman: lengths differ');
  if (predicted.length < 2) return 0;
  return pearson(ranks(predicted), ranks(measured));
}

/**
 * Fraction of pairs with different measured values ordered alike (prediction ties count 1/2); NaN
 * when no such pair. `minRelativeGap` > 0 counts only pairs whose measured values differ by more than
 * that fraction of the larger (pairs closer than the measurement noise say little).
 */
export function pairwiseAccuracy(predicted: ArrayLike<number>, measured: ArrayLike<number>, minRelativeGap = 0): number {
  let good = 0, pairs = 0;
  const n = predicted.length;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dm = measured[i]! - measured[j]!;
      if (dm === 0 || Math.abs(dm) <= minRelativeGap * Math.max(Math.abs(measured[i]!), Math.abs(measured[j]!))) continue;
      const dp = predicted[i]! - predicted[j]!;
      pairs++;
      if (dp === 0) good += 0.5;
      else if (dp > 0 === dm > 0) good++;
    }
  }
  return pairs > 0 ? good / pairs : Number.NaN;
}

/** 1 when a measured-best item is among the k highest predictions (ties at the k-th prediction included). */
export function topKHit(predicted: ArrayLike<number>, measured: ArrayLike<number>, k: number): number {
  const n = predicted.length;
  if (n === 0) return 0;
  let best = -Infinity;
  for (let i = 0; i < n; i++) best = Math.max(best, measured[i]!);
  const sorted = Array.from(predicted).sort((a, b) => b - a);
  const threshold = sorted[Math.min(k, n) - 1]!;
  for (let i = 0; i < n; i++) if (measured[i] === best && predicted[i]! >= threshold) return 1;
  return 0;
}

/** The best measured value among the k highest predictions, over the best measured value (1: the screen keeps the best). */
export function topKBestRatio(predicted: ArrayLike<number>, measured: ArrayLike<number>, k: number): number {
  const n = predicted.length;
  if (n === 0) return Number.NaN;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => predicted[b]! - predicted[a]!);
  let best = -Infinity;
  let kept = -Infinity;
  for (let i = 0; i < n; i++) best = Math.max(best, measured[i]!);
  for (const i of order.slice(0, k)) kept = Math.max(kept, measured[i]!);
  return best > 0 ? kept / best : Number.NaN;
}

export interface ProblemMetrics {
  problem: string;
  schedules: number;
  spearman: number;
  pairwiseAccuracy: number;
  /** pairwise accuracy over pairs more than 5% apart. */
  pairwiseAccuracy5: number;
  top10: number;
  /** the best measured among the k highest predictions over the measured best: what a screen of k keeps */
  top10BestRatio: number;
}

export interface RankingMetrics {
  /** mean over problems of the per-problem Spearman correlation. */
  spearman: number;
  /** mean over problems of the per-problem pairwise accuracy. */
  pairwiseAccuracy: number;
  /** the same over pairs whose measured GFLOPS differ by more than 5% (above timing noise). */
  pairwiseAccuracy5: number;
  /** fraction of problems whose measured-best schedule is in the predicted top 10. */
  top10Recall: number;
  /** mean and worst over problems of the best among the predicted top 10 over the measured best */
  top10BestRatio: number;
  top10WorstRatio: number;
  /** problems ranked (those with at least 2 schedules). */
  problems: number;
  /** schedules over those problems. */
  records: number;
  perProblem: ProblemMetrics[];
}

/** Metrics over groups of (predicted, measured) per problem. */
export function rankingMetrics(groups: readonly { problem: string; predicted: ArrayLike<number>; measured: ArrayLike<number> }[], k = 10): RankingMetrics {
  const per: ProblemMetrics[] = [];
  for (const g of groups) {
    if (g.predicted.length < 2) continue;
    per.push({
      problem: g.problem,
      schedules: g.predicted.length,
      spearman: spearman(g.predicted, g.measured),
      pairwiseAccuracy: pairwiseAccuracy(g.predicted, g.measured),
      pairwiseAccuracy5: pairwiseAccuracy(g.predicted, g.measured, 0.05),
      top10: topKHit(g.predicted, g.measured, k),
      top10BestRatio: topKBestRatio(g.predicted, g.measured, k),
    });
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
  return {
    spearman: mean(per.map((p) => p.spearman)),
    pairwiseAccuracy: mean(per.map((p) => p.pairwiseAccuracy).filter((x) => !Number.isNaN(x))),
    pairwiseAccuracy5: mean(per.map((p) => p.pairwiseAccuracy5).filter((x) => !Number.isNaN(x))),
    top10Recall: mean(per.map((p) => p.top10)),
    top10BestRatio: mean(per.map((p) => p.top10BestRatio)),
    top10WorstRatio: per.length ? Math.min(...per.map((p) => p.top10BestRatio)) : Number.NaN,
    problems: per.length,
    records: per.reduce((a, p) => a + p.schedules, 0),
    perProblem: per,
  };
}
