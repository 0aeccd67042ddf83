/**
 * Search baselines benchmark (issue 4): every searcher on the first N problems of the matmul test
 * split with the same time budget, side by side with OpenBLAS measured in the same run; plus the
 * measurement rate (schedules measured per second) on 128^3 matmuls.
 * Writes bench/results/search.json and the HTML report bench/results/search/report.html.
 *
 *   npm run bench -- search [--quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { runCompare, createEvaluator } from '../agent/search/run.ts';
import { geomean } from '../agent/report/index.ts';
import { parseProblem } from '../ir/spec.ts';
import { Rng, randomSchedule } from '../ir/random.ts';
import { hostTarget } from '../targets/runtime/host.ts';

/** Distinct random schedules of matmul 128^3 measured back to back through the search evaluator. */
async function measurementRate(target: 'avx512' | 'avx2', count: number): Promise<{ schedules: number; seconds: number; perSecond: number }> {
  const evaluator = await createEvaluator({ target });
  try {
    const p = parseProblem('matmul 128x128x128');
    const rng = new Rng(128);
    const seen = new Set<string>();
    const schedules = [];
    while (schedules.length < count) {
      const s = randomSchedule(p, rng, 20);
      if (!seen.has(s.hash())) {
        seen.add(s.hash());
        schedules.push(s);
      }
    }
    const t0 = performance.now();
    for (const s of schedules) await evaluator.evaluate(s);
    const seconds = (performance.now() - t0) / 1000;
    return { schedules: count, seconds, perSecond: count / seconds };
  } finally {
    await evaluator.close();
  }
}

export async function benchSearch(opts: { quick?: boolean } = {}): Promise<object> {
  const target = hostTarget();
  const problems = opts.quick ? 3 : 20;
  const seconds = opts.quick ? 2 : 10;
  const searchers = ['random', 'greedy', 'beam', 'beam-dfs', 'evolution'];
  const rate = await measurementRate(target, opts.quick ? 50 : 200);
  console.log(`measurement rate, matmul 128^3 (${target}): ${rate.perSecond.toFixed(1)} schedules/s`);
  let lastKey = '';
  const r = await runCompare('mm64-256:test', {
    searchers, budget: { seconds }, target, limit: problems, compareBaseline: true,
    outDir: 'bench/results/search', title: `${searchers.join(', ')} on ${problems} mm64-256 test problems, ${seconds} s each`,
    onProgress: (p) => {
      // one line per problem and searcher when it starts (bench output usually goes to a log)
      const key = `${p.problemIndex}/${p.searcher}`;
      if (key !== lastKey) console.log(`[${p.problemIndex + 1}/${p.problemCount}] ${p.searcher} ${p.problem}`);
      lastKey = key;
    },
  });
  const data = r.data;
  const perSearcher = data.searchers.map((name) => {
    const rows = data.problems.map((p) => ({ p, res: p.results.find((x) => x.searcher === name)! }));
    const blas = rows.filter(({ p }) => p.openblasGflops);
    return {
      searcher: name,
      geomeanSpeedupOverDefault: geomean(rows.map(({ res }) => res.speedupOverDefault)),
      geomeanFractionOfOpenblas: geomean(blas.map(({ p, res }) => res.gflops / p.openblasGflops!)),
      geomeanFractionOfPeak: geomean(rows.map(({ res }) => res.fractionOfPeak)),
      meanMeasurements: rows.reduce((a, { res }) => a + res.measurements, 0) / rows.length,
    };
  });
  for (const s of perSearcher) {
    console.log(`${s.searcher.padEnd(14)} speed-up over default ${s.geomeanSpeedupOverDefault.toFixed(1)}x (geomean), ${(100 * s.geomeanFractionOfOpenblas).toFixed(1)}% of OpenBLAS, ${(100 * s.geomeanFractionOfPeak).toFixed(1)}% of peak, ${s.meanMeasurements.toFixed(0)} measurements`);
  }
  const result = { target, problems, budgetSeconds: seconds, peakGflops: data.peakGflops, measurementRate128: rate, searchers: perSearcher, report: r.html, compare: data };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/search.json', JSON.stringify(result, null, 2) + '\n');
  console.log('wrote bench/results/search.json and bench/results/search/report.html');
  return result;
}
