import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pairwiseAccuracy, rankingMetrics, ranks, spearman, topKBestRatio, topKHit } from '../../../agent/costmodel/metrics.ts';

const close = (a: number, b: number, msg?: string) => assert.ok(Math.abs(a - b) < 1e-9, `${msg ?? ''} ${a} != ${b}`);

test('ranks average ties', () => {
  assert.equal(Array.from(ranks([10, 30, 20, 30])), [1, 3.5, 2, 3.5]);
});

test('perfect and reversed rankings', () => {
  const measured = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const perfect = measured.map((x) => x * 3 + 1);
  const reversed = measured.map((x) => -x);
  close(spearman(perfect, measured), 1);
  close(pairwiseAccuracy(perfect, measured), 1);
  assert.is(topKHit(perfect, measured, 10), 1);
  close(spearman(reversed, measured), -1);
  close(pairwiseAccuracy(reversed, measured), 0);
  // the measured best (12) is predicted worst: not in the top 10 of 12
  assert.is(topKHit(reversed, measured, 10), 0);
  assert.is(topKHit(reversed, measured, 12), 1);
  // a screen of the predicted top k keeps the best of those: all of it, or 10/12 of the best when reversed
  close(topKBestRatio(perfect, measured, 1), 1);
  close(topKBestRatio(reversed, measured, 10), 10 / 12);
  close(topKBestRatio(reversed, measured, 1), 1 / 12);
});

test('a hand-computed example', () => {
  // measured ranks 1 2 3 4, predicted ranks 2 1 3 4: d^2 = 1+1 = 2, rho = 1 - 6*2/(4*15) = 0.8
  const measured = [10, 20, 30, 40];
  const predicted = [0.2, 0.1, 0.3, 0.9];
  close(spearman(predicted, measured), 0.8);
  // 6 pairs, one swapped
  close(pairwiseAccuracy(predicted, measured), 5 / 6);
  // measured ties are skipped; a predicted tie counts one half
  close(pairwiseAccuracy([1, 1, 2], [1, 2, 2]), (0.5 + 1) / 2);
  assert.ok(Number.isNaN(pairwiseAccuracy([1, 2], [5, 5])));
  // with a 5% gap, the pair (100, 103) no longer counts
  close(pairwiseAccuracy([2, 1, 3], [100, 103, 200], 0.05), 1);
  close(pairwiseAccuracy([2, 1, 3], [100, 103, 200], 0), 2 / 3);
});

test('rankingMetrics averages within-problem figures over problems and skips singletons', () => {
  const m = rankingMetrics([
    { problem: 'a', predicted: [1, 2, 3], measured: [1, 2, 3] },
    { problem: 'b', predicted: [3, 2, 1], measured: [1, 2, 3] },
    { problem: 'c', predicted: [1], measured: [5] },
  ]);
  assert.is(m.problems, 2);
  assert.is(m.records, 6);
  close(m.spearman, 0);
  close(m.pairwiseAccuracy, 0.5);
  close(m.top10Recall, 1); // 3 schedules: everything is in a top 10
  assert.equal(m.perProblem.map((p) => p.problem), ['a', 'b']);
  // within-problem, not pooled: a model that orders problems wrongly but schedules rightly is perfect
  const w = rankingMetrics([
    { problem: 'x', predicted: [100, 200], measured: [1, 2] },
    { problem: 'y', predicted: [1, 2], measured: [100, 200] },
  ]);
  close(w.spearman, 1);
  close(w.pairwiseAccuracy, 1);
});

test.run();
