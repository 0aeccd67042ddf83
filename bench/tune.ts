/**
 * `looptune tune` on the matmul test split (issue 6): the shipped policy with a 1 s budget and no
 * tuning records (the policy itself is measured), its kernel re-timed properly beside OpenBLAS in
 * the same run; on a subset, the evolutionary search given 60 s for the "fraction of evolution"
 * figure; and large matmuls (512-2048) with the default budget (a second, more on large problems),
 * where one call of a bad kernel takes seconds. Writes bench/results/tune.json.
 *
 *   npm run bench -- tune [--quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { defaultBudgetSeconds, tune } from '../agent/tune.ts';
import { runSearch } from '../agent/search/run.ts';
import { geomean } from '../agent/report/index.ts';
import { resolveProblems } from '../env/datasets.ts';
import { Rng } from '../ir/random.ts';
import { backend } from '../targets/registry.ts';
import { hostTarget } from '../targets/runtime/host.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchTune(opts: { quick?: boolean } = {}): Promise<object> {
  const target = hostTarget();
  const all = resolveProblems('mm64-256:test');
  // 50 problems sampled with a fixed seed; evolution's 60 s run on the first 10 of them
  const rng = new Rng(50);
  const sample = [...all].sort(() => rng.next() - 0.5).slice(0, opts.quick ? 3 : 50);
  const evolutionCount = opts.quick ? 1 : 10;
  const executor = await backend(target).open();
  const rows: Record<string, unknown>[] = [];
  const large: Record<string, unknown>[] = [];
  try {
    for (const [i, problem] of sample.entries()) {
      const r = await tune(problem, { target, budgetSeconds: 1, noRecords: true, device: executor, compareBaseline: true, seed: i });
      const timing = await executor.time(r.kernel, { minSeconds: 0.1 });
      const gflops = timing.ok ? timing.gflops : 0;
      const row: Record<string, unknown> = {
        problem: problem.spec, schedule: r.schedule, verified: r.verified, seconds: r.seconds,
        searchGflops: r.gflops, gflops, defaultGflops: r.defaultGflops, speedupOverDefault: gflops / r.defaultGflops,
        openblasGflops: r.openblasGflops, fractionOfOpenblas: r.openblasGflops ? gflops / r.openblasGflops : null,
        percentOfPeak: (100 * gflops) / r.peakGflops, measurements: r.measurements,
      };
      if (i < evolutionCount) {
        const e = await runSearch(problem, { searcher: 'evolution', budget: { seconds: 60 }, target, seed: i });
        row.evolution60sGflops = e.gflops;
        row.fractionOfEvolution = r.gflops / e.gflops;
      }
      console.log(`${problem.spec.padEnd(24)} ${gflops.toFixed(1).padStart(6)} GFLOPS ${(row.speedupOverDefault as number).toFixed(1)}x default, ${row.fractionOfOpenblas === null ? '-' : (row.fractionOfOpenblas as number).toFixed(2)}x OpenBLAS, ${r.seconds.toFixed(2)} s${row.fractionOfEvolution ? `, ${(row.fractionOfEvolution as number).toFixed(2)} of evolution-60s` : ''}`);
      rows.push(row);
    }
    if (!opts.quick) {
      for (const n of [512, 1024, 2048]) {
        const problem = `matmul ${n}x${n}x${n}`;
        const r = await tune(problem, { target, noRecords: true, device: executor, compareBaseline: true, seed: 0 });
        const timing = await executor.time(r.kernel, { minSeconds: 0.3 });
        const gflops = timing.ok ? timing.gflops : 0;
        large.push({
          problem, schedule: r.schedule, verified: r.verified, seconds: r.seconds, budgetSeconds: defaultBudgetSeconds(r.best.problem, r.peakGflops),
          gflops, percentOfPeak: (100 * gflops) / r.peakGflops, openblasGflops: r.openblasGflops,
          fractionOfOpenblas: r.openblasGflops ? gflops / r.openblasGflops : null, measurements: r.measurements, defaultPredicted: r.defaultPredicted,
        });
        console.log(`${problem.padEnd(24)} ${gflops.toFixed(1).padStart(6)} GFLOPS ${((100 * gflops) / r.peakGflops).toFixed(1)}% of peak, ${r.openblasGflops ? (gflops / r.openblasGflops).toFixed(2) : '-'}x OpenBLAS, ${r.seconds.toFixed(2)} s, ${r.measurements} measured`);
      }
    }
  } finally {
    await executor.close();
  }
  const num = (k: string) => rows.map((r) => r[k]).filter((x): x is number => typeof x === 'number' && x > 0);
  const summary = {
    problems: rows.length,
    verified: rows.filter((r) => r.verified).length,
    geomeanSpeedupOverDefault: geomean(num('speedupOverDefault')),
    geomeanFractionOfOpenblas: geomean(num('fractionOfOpenblas')),
    medianSeconds: median(num('seconds')),
    geomeanFractionOfEvolution60s: geomean(num('fractionOfEvolution')),
    evolutionProblems: num('fractionOfEvolution').length,
  };
  console.log(JSON.stringify(summary, null, 2));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/tune.json', JSON.stringify({ target, budgetSeconds: 1, summary, rows, large }, null, 2) + '\n');
  return summary;
}
