/** `looptune search`: one baseline searcher on one problem; the winner verified and timed. */
import type { Command } from 'commander';
import { parseProblem } from '../ir/spec.ts';
import { Schedule } from '../ir/schedule.ts';
import { backend } from '../targets/registry.ts';
import { runSchedule, type RunReport } from '../targets/run-schedule.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { runSearch, type SearchTarget } from '../agent/search/run.ts';
import { SEARCHER_NAMES } from '../agent/search/index.ts';
import type { Budget } from '../agent/searcher.ts';
import { describeProgress, progressLine } from './progress.ts';
import { describeSpeedup, formatRun, runFailed, speedupOverDefault } from './format.ts';
import { checkCompare, nonEmpty, parseBudget, seed, threadCount } from './options.ts';
import { threadsFor } from './threads.ts';
import { checkFarmKey, FARM_HELP, FARM_KEY_HELP, farmUrl } from './worker.ts';
import { evaluatorFor } from '../env/evaluator-for.ts';
import type { MeasuredEvaluator } from '../env/evaluator.ts';
import { SEARCH_MIN_SECONDS } from '../agent/search/run.ts';

interface SearchOptions { searcher: string; budget: Budget; target?: string; compare?: string; records?: string; seed: number; threads?: number; json?: boolean; farm?: string; farmKey?: string }

export function registerSearch(program: Command): void {
  program
    .command('search')
    .description('search for a fast schedule with a baseline searcher; prints the best schedule, its GFLOPS, speed-up over the default schedule and OpenBLAS ratio')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256"')
    .option('--searcher <name>', `one of ${SEARCHER_NAMES.join(', ')} (greedy:D lookahead, beam:W width)`, 'evolution')
    .option('--budget <budget>', 'e.g. 10s, 200m (measurements), 50steps, or 10s,200m', parseBudget, { seconds: 10 } as Budget)
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best, measured), neon (analytic cost model; the winner is verified under qemu), cuda (PTX timed on the GPU, with the bind/stage actions), or synthetic (a toy model)')
    .option('--compare <what>', 'also measure a baseline in the same run: openblas (on cuda: cuBLAS for matmul, cuDNN for conv2d; cublas is accepted too)')
    .option('--records <file>', 'tuning records (JSONL): reused as a cache and appended with every measurement', nonEmpty('records path'))
    .option('--seed <n>', 'random seed', seed, 0)
    .option('--threads <n>', 'CPU threads of parallel kernels, the peak and the BLAS (default: every core)', threadCount)
    .option('--json', 'print the result as JSON (the fields of run plus schedule, speedupOverDefault, measurements, seconds)')
    .option('--farm <url>', FARM_HELP, farmUrl)
    .option('--farm-key <key>', FARM_KEY_HELP)
    .action(async (spec: string, opts: SearchOptions) => {
      checkFarmKey(opts);
      const problem = parseProblem(spec);
      const target = (opts.target ?? hostTarget()) as SearchTarget;
      const b = backend(target);
      checkCompare(opts.compare, b);
      // figures of a target that cannot be timed here are predictions (neon: the analytic cost model)
      const predicted = b.timing === 'emulated';
      // on a farm the thread count is the workers' key's (a worker runs one thread unless started with more)
      const threads = opts.farm ? (b.caps.threads ? opts.threads ?? 1 : undefined) : threadsFor(b, opts.threads);
      const farm = opts.farm ? await evaluatorFor(b, {
        farm: { url: opts.farm, ...(opts.farmKey !== undefined ? { key: opts.farmKey } : {}) }, records: opts.records ?? null, minSeconds: SEARCH_MIN_SECONDS, ...(threads !== undefined ? { threads } : {}),
      }) as MeasuredEvaluator : undefined;
      const line = progressLine();
      const r = await runSearch(problem, {
        ...(threads !== undefined ? { threads } : {}),
        searcher: opts.searcher, budget: opts.budget, target, recordsPath: opts.records ?? null, seed: opts.seed,
        ...(farm ? { evaluator: farm } : {}),
        onProgress: (p) => line.update(describeProgress(p)),
      });
      line.done();
      let run: RunReport | undefined;
      if (b.timing !== 'model') {
        // the best schedule, verified against the interpreter and measured side by side with the
        // device's BLAS (with a farm: by one of its workers)
        const device = farm?.device ?? await b.open(threads !== undefined ? { threads } : {});
        try {
          run = await runSchedule(Schedule.parse(problem, r.schedule), b, device, { compareBaseline: opts.compare !== undefined });
        } finally {
          await (farm ?? device).close();
        }
      }
      // under emulation the run only verifies: speed figures stay the search's (predicted) ones
      const measured = run?.native ? run : undefined;
      const out = {
        ...(run ?? { problem: r.problem, target: r.target, gflops: r.gflops, peakGflops: r.peakGflops }),
        ...(run && !run.native ? { gflops: r.gflops, peakGflops: r.peakGflops, predicted: true } : {}),
        schedule: r.schedule, searcher: r.searcher, searchGflops: r.gflops, defaultGflops: r.defaultGflops,
        speedupOverDefault: r.defaultSkipped ? null : speedupOverDefault(measured?.gflops ?? r.gflops, r.defaultGflops),
        measurements: r.measurements, seconds: r.seconds, stopReason: r.stopReason,
      };
      if (opts.json) {
        console.log(JSON.stringify({ ...out, history: r.history }, null, 2));
      } else {
        console.log(`${r.searcher}: ${r.measurements} schedules ${predicted ? 'predicted' : 'measured'} in ${r.seconds.toFixed(1)} s (${r.stopReason})`);
        console.log(`best schedule: ${r.schedule}`);
        if (run) console.log(formatRun(run));
        const byModel = predicted ? ' predicted by the analytic cost model' : '';
        if (r.defaultSkipped) console.log('the default schedule was not timed (too slow for a search of this size)');
        else console.log(`speed-up: ${describeSpeedup(measured?.gflops ?? r.gflops, r.defaultGflops, byModel)}`);
      }
      if (run && runFailed(run)) process.exitCode = 1;
    });
}
