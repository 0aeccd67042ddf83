/** `looptune tune`: the main job — tune one kernel with the shipped policy (or the target's search). */
import type { Command } from 'commander';
import { LoopTuneError } from '../ir/errors.ts';
import { parseProblem } from '../ir/spec.ts';
import { Schedule } from '../ir/schedule.ts';
import { compileSchedule } from '../targets/registry.ts';
import { executorFor, openExecutor } from '../targets/executor.ts';
import { runSchedule, type RunReport } from '../targets/run-schedule.ts';
import { verifyKernel } from '../targets/verify.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { runSearch } from '../agent/search/run.ts';
import { describeProgress, progressLine } from './progress.ts';
import { describeSpeedup, formatRun, runFailed, speedupOverDefault } from './format.ts';
import { nonEmpty, positiveSeconds, seed } from './options.ts';

/** Default tuning seconds on the GPU: a JIT plus timing costs 30-100 ms per candidate there. */
const CUDA_TUNE_SECONDS = 5;

interface TuneOptions { target?: string; budget: number; policy?: string; compare?: string; records?: string | boolean; seed: number; json?: boolean }

/**
 * tune --target cuda: there is no shipped GPU policy (PPO needs thousands of GPU measurements to
 * learn one), so tuning is the environment's evolution on the GPU, every generation's candidates
 * screened by the shipped cuda cost model, the known-good template points first; the winner is
 * verified against the interpreter and timed beside cuBLAS for matmul.
 */
async function tuneOnGpu(spec: string, seconds: number, opts: TuneOptions): Promise<void> {
  const problem = parseProblem(spec);
  const t0 = performance.now();
  const { costModelRanker } = await import('../agent/tune.ts');
  const predict = await costModelRanker('default', 'cuda');
  if (!predict) process.stderr.write('[cuda] searching without a cost model: the shipped cuda model did not load\n');
  const line = progressLine();
  const r = await runSearch(problem, {
    searcher: 'evolution', budget: { seconds }, target: 'cuda', seed: opts.seed,
    recordsPath: typeof opts.records === 'string' ? opts.records : null,
    ...(predict ? { predict } : {}),
    onProgress: (p) => line.update(describeProgress(p)),
  });
  line.done();
  const executor = await openExecutor('cuda');
  let run: RunReport;
  try {
    run = await runSchedule(Schedule.parse(problem, r.schedule), 'cuda', executor, { compareOpenblas: opts.compare !== undefined || problem.op === 'matmul' });
  } finally {
    await executor.close();
  }
  const out = {
    ...run, searchGflops: r.gflops, defaultGflops: r.defaultGflops, speedupOverDefault: speedupOverDefault(run.gflops, r.defaultGflops),
    ranking: predict ? 'cuda cost model' : 'none', measurements: r.measurements, searchSeconds: r.seconds, seconds: (performance.now() - t0) / 1000,
  };
  if (opts.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(`${problem.spec}   target cuda   evolution${predict ? ' screened by the cuda cost model' : ''}`);
    console.log(`best schedule: ${r.schedule}`);
    console.log(formatRun(run));
    console.log(`tuned in ${out.seconds.toFixed(1)} s: ${r.measurements} schedules timed on the GPU in ${r.seconds.toFixed(1)} s; ${describeSpeedup(run.gflops, r.defaultGflops).replace('schedule', 'mapping')}`);
  }
  if (runFailed(run)) process.exitCode = 1;
}

/**
 * tune --target neon: no Arm hardware to train or measure on, so tuning is an evolutionary search
 * on the analytic cost model within the budget; the result is verified under qemu.
 */
async function tuneUnderEmulation(spec: string, opts: TuneOptions): Promise<void> {
  const line = progressLine();
  const r = await runSearch(parseProblem(spec), {
    searcher: 'evolution', budget: { seconds: opts.budget }, target: 'neon', seed: opts.seed,
    onProgress: (p) => line.update(describeProgress(p)),
  });
  line.done();
  const executor = executorFor('neon');
  let verified = false;
  try {
    const s = Schedule.parse(parseProblem(spec), r.schedule);
    verified = (await verifyKernel(compileSchedule(s, 'neon'), s, executor.run)).verified;
  } finally {
    await executor.close();
  }
  const out = { ...r, verified, predicted: true, note: 'neon: no shipped policy; evolution on the analytic cost model, verified under qemu' };
  if (opts.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(`${r.problem}   target neon (${out.note})`);
    console.log(`best schedule: ${r.schedule}   ${verified ? 'verified' : 'NOT verified'} against the interpreter`);
    console.log(`predicted ${r.gflops.toFixed(1)} GFLOPS of a nominal ${r.peakGflops} peak; ${describeSpeedup(r.gflops, r.defaultGflops, ', predicted')}; ${r.measurements} schedules in ${r.seconds.toFixed(2)} s`);
  }
  if (!verified) process.exitCode = 1;
}

export function registerTune(program: Command): void {
  program
    .command('tune')
    .description('tune a kernel with the shipped policy (records first, then policy proposals, a few measurements, verification); the main job')
    .argument('<spec>', 'problem, e.g. "matmul 512x512x512"')
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best), neon (analytic cost model, verified under qemu), or cuda (evolution on the GPU, candidates screened by the cuda cost model)')
    .option('--budget <seconds>', `seconds for proposing and measuring (e.g. 1 or 1s); when not given, large problems get about 40 measurements at peak and cuda ${CUDA_TUNE_SECONDS} s`, positiveSeconds, 1)
    .option('--policy <dir>', 'a policy folder (default: agent/pretrained/<target>)', nonEmpty('policy folder'))
    .option('--compare <what>', 'also measure the BLAS in the same run: openblas (cuBLAS on cuda, where cublas is accepted too)')
    .option('--records <file>', 'tuning records (default $LOOPTUNE_RECORDS or the cache folder\'s looptune/records.jsonl)', nonEmpty('records path'))
    .option('--no-records', 'neither read nor write tuning records (measure the policy itself)')
    .option('--seed <n>', 'random seed', seed, 0)
    .option('--json', 'print the result as JSON (the field names of search)')
    .action(async (spec: string, opts: TuneOptions, command: Command) => {
      const target = opts.target ?? hostTarget();
      if (opts.compare !== undefined && opts.compare !== 'openblas' && !(target === 'cuda' && opts.compare === 'cublas')) {
        throw new LoopTuneError(`--compare: unknown baseline '${opts.compare}' (expected openblas${target === 'cuda' ? ' or cublas' : ''})`);
      }
      const budgetGiven = command.getOptionValueSource('budget') !== 'default';
      if (target === 'cuda') return tuneOnGpu(spec, budgetGiven ? opts.budget : CUDA_TUNE_SECONDS, opts);
      if (target === 'neon') return tuneUnderEmulation(spec, opts);
      if (target !== 'avx512' && target !== 'avx2') throw new LoopTuneError(`tune: target '${target}' has no shipped policy here (expected avx512, avx2 or neon)`);
      const { tune } = await import('../agent/tune.ts');
      const line = progressLine();
      const r = await tune(parseProblem(spec), {
        target, seed: opts.seed, compareOpenblas: opts.compare === 'openblas',
        ...(budgetGiven ? { budgetSeconds: opts.budget } : {}),
        ...(opts.policy ? { policy: opts.policy } : {}),
        ...(opts.records === false ? { noRecords: true } : typeof opts.records === 'string' ? { records: opts.records } : {}),
        onProgress: (p) => line.update(describeProgress(p)),
      });
      line.done();
      const { best: _b, kernel: _k, ...fields } = r;
      if (opts.json) {
        console.log(JSON.stringify({ ...fields, codegenMicros: r.kernel.codegenMicros }, null, 2));
      } else {
        console.log(`${r.problem}   target ${r.target}   policy ${r.policy}`);
        console.log(`best schedule: ${r.schedule}${r.fromRecords ? '  (from tuning records)' : ''}`);
        console.log(r.verified ? `verified against the interpreter (max error ${r.maxRelError.toExponential(1)})` : 'NOT verified');
        console.log(`${r.gflops.toFixed(1)} GFLOPS = ${r.percentOfPeak.toFixed(1)}% of peak ${r.peakGflops.toFixed(1)}; ${r.defaultPredicted
          ? 'the default schedule was not timed (too slow for the budget)'
          : describeSpeedup(r.gflops, r.defaultGflops)}`);
        if (r.openblasGflops !== undefined) console.log(`OpenBLAS sgemm (${r.openblasCorename}, 1 thread): ${r.openblasGflops.toFixed(1)} GFLOPS -> ${r.openblasRatio!.toFixed(2)}x OpenBLAS`);
        else if (r.openblasError && opts.compare) console.log(`OpenBLAS: ${r.openblasError}`);
        console.log(`tuned in ${r.seconds.toFixed(2)} s (setup ${r.setupSeconds.toFixed(2)}, search ${r.searchSeconds.toFixed(2)}, verify ${r.verifySeconds.toFixed(2)}); ${r.measurements} schedules measured of ${r.proposals} proposed (ranked by ${r.ranking})`);
      }
      if (!r.verified) process.exitCode = 1;
    });
}
