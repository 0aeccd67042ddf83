/** `looptune compare`: searchers side by side at equal budgets, or an experiment's policy against its baselines. */
import type { Command } from 'commander';
import { hostTarget } from '../targets/runtime/host.ts';
import { runCompare, DEFAULT_COMPARE_SEARCHERS, type SearchTarget } from '../agent/search/run.ts';
import type { Budget } from '../agent/searcher.ts';
import { describeProgress, progressLine } from './progress.ts';
import { nonEmpty, parseBudget, positiveInteger, seed, threadCount } from './options.ts';
import { threadsFor } from './threads.ts';
import { backend } from '../targets/registry.ts';

interface CompareOptions { searchers: string; budget: Budget; target?: string; limit?: number; out: string; compare?: string; records?: string; seed: number; checkpoint?: string; threads?: number }

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description('searchers side by side with equal budgets (or, given an experiment file, PPO against its baselines); writes an HTML report with SVG plots and JSON')
    .argument('<problems>', 'a spec, a dataset and split such as "mm64-256:test", or an experiment file (.yaml)')
    .option('--searchers <list>', 'comma-separated searchers', DEFAULT_COMPARE_SEARCHERS.join(','))
    .option('--budget <budget>', 'per problem and searcher, e.g. 10s or 200m', parseBudget, { seconds: 10 } as Budget)
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best), neon (analytic cost model), cuda (timed on the GPU; cuBLAS is its BLAS), or synthetic')
    .option('--limit <n>', 'use only the first N problems', positiveInteger)
    .option('--out <dir>', 'report folder', nonEmpty('report folder'), 'runs/compare')
    .option('--threads <n>', 'CPU threads of parallel kernels, the peak and the BLAS (default: every core; problem lists only)', threadCount)
    .option('--compare <what>', 'also measure OpenBLAS per matmul: openblas')
    .option('--records <file>', 'tuning records (JSONL) shared by all searchers', nonEmpty('records path'))
    .option('--seed <n>', 'random seed', seed, 0)
    .option('--checkpoint <dir>', 'with an experiment file: the policy to compare (default: its newest checkpoint)', nonEmpty('checkpoint folder'))
    .action(async (problems: string, opts: CompareOptions) => {
      if (/\.ya?ml$/.test(problems)) {
        const { compareExperiment } = await import('../experiments/runner.ts');
        const r = await compareExperiment(problems, {
          ...(opts.limit !== undefined ? { problems: opts.limit } : {}), ...(opts.checkpoint ? { checkpoint: opts.checkpoint } : {}),
        });
        console.log(`report: ${r.html}`);
        return;
      }
      const target = (opts.target ?? hostTarget()) as SearchTarget;
      const threads = threadsFor(backend(target), opts.threads);
      const line = progressLine();
      const r = await runCompare(problems, {
        ...(threads !== undefined ? { threads } : {}),
        searchers: opts.searchers.split(',').map((x) => x.trim()).filter((x) => x),
        budget: opts.budget, target, outDir: opts.out,
        compareBaseline: opts.compare === 'openblas', recordsPath: opts.records ?? null, seed: opts.seed,
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        onProgress: (p) => line.update(`[${p.problemIndex + 1}/${p.problemCount}] ${describeProgress(p)}`),
      });
      line.done();
      console.log(`report: ${r.html ?? '(none)'}\ndata: ${r.json ?? '(none)'}`);
    });
}
