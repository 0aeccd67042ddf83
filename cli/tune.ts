/** `looptune tune`: the main job: tune one kernel (agent/tune.ts; one call for every target). */
import { InvalidArgumentError, type Command } from 'commander';
import { parseProblem } from '../ir/spec.ts';
import { backend } from '../targets/registry.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { SEARCH_TUNE_SECONDS } from '../agent/tune.ts';
import { describeProgress, progressLine } from './progress.ts';
import { describeBaseline, describeSpeedup } from './format.ts';
import { checkCompare, nonEmpty, positiveSeconds, seed, threadCount } from './options.ts';
import { checkFarmKey, FARM_HELP, FARM_KEY_HELP, farmUrl } from './worker.ts';

interface TuneOptions { target?: string; budget: number; policy?: string; compare?: string; records?: string | boolean; seed: number; threads?: number; json?: boolean; layout: string; farm?: string; farmKey?: string }

function layoutMode(raw: string): string {
  if (raw !== 'auto' && raw !== 'nchw') throw new InvalidArgumentError(`--layout must be nchw or auto, got "${raw.slice(0, 40)}"`);
  return raw;
}

export function registerTune(program: Command): void {
  program
    .command('tune')
    .description('tune a kernel with the shipped policy (records first, then policy proposals, a few measurements, verification); the main job')
    .argument('<spec>', 'problem, e.g. "matmul 512x512x512"')
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best), neon (analytic cost model, verified under qemu), or cuda (evolution on the GPU, candidates screened by the cuda cost model)')
    .option('--budget <seconds>', `seconds for proposing and measuring (e.g. 1 or 1s); when not given, large problems get about 40 measurements at peak and targets without a policy (cuda) ${SEARCH_TUNE_SECONDS} s`, positiveSeconds, 1)
    .option('--policy <dir>', 'a policy folder (default: agent/pretrained/<target>)', nonEmpty('policy folder'))
    .option('--compare <what>', 'also measure the BLAS in the same run: openblas (on cuda: cuBLAS for matmul, cuDNN for conv2d; cublas is accepted too)')
    .option('--records <file>', 'tuning records (default $LOOPTUNE_RECORDS or the cache folder\'s looptune/records.jsonl)', nonEmpty('records path'))
    .option('--no-records', 'neither read nor write tuning records (measure the policy itself)')
    .option('--seed <n>', 'random seed', seed, 0)
    .option('--threads <n>', 'CPU threads (default: every core; a small problem\'s winner stays on one if that is faster)', threadCount)
    .option('--json', 'print the result as JSON (the field names of search)')
    .option('--layout <mode>', 'nchw (as given) or auto: a conv or pool also tuned in the blocked NCHWc layout, the faster kept (its conversions timed and charged)', layoutMode, 'nchw')
    .option('--farm <url>', FARM_HELP, farmUrl)
    .option('--farm-key <key>', FARM_KEY_HELP)
    .action(async (spec: string, opts: TuneOptions, command: Command) => {
      checkFarmKey(opts);
      const b = backend(opts.target ?? hostTarget());
      checkCompare(opts.compare, b);
      const budgetGiven = command.getOptionValueSource('budget') !== 'default';
      const { tune } = await import('../agent/tune.ts');
      // a farm's device: every measurement and the verification run on its workers (closed when the process ends)
      const device = opts.farm
        ? await (await import('../targets/farm/remote-device.ts')).openRemoteDevice(b, { url: opts.farm, threads: opts.threads ?? 1, ...(opts.farmKey !== undefined ? { key: opts.farmKey } : {}) })
        : undefined;
      const line = progressLine();
      const tuneOptions = {
        target: b, seed: opts.seed, ...(device ? { device } : {}),
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        ...(opts.compare !== undefined ? { compareBaseline: true } : {}),
        ...(budgetGiven ? { budgetSeconds: opts.budget } : {}),
        ...(opts.policy ? { policy: opts.policy } : {}),
        ...(opts.records === false ? { noRecords: true } : typeof opts.records === 'string' ? { records: opts.records } : {}),
        onProgress: (p: Parameters<typeof describeProgress>[0]) => line.update(describeProgress(p)),
      };
      let layoutLine: string | undefined;
      let r;
      if (opts.layout === 'auto') {
        const { tuneLayouts } = await import('../agent/tune-layout.ts');
        const c = await tuneLayouts(parseProblem(spec), tuneOptions);
        r = c.layout === 'nchw' ? c.nchw : c.blocked!;
        layoutLine = c.blocked
          ? `layout ${c.layout}: NCHW ${c.nchw.gflops.toFixed(1)} GFLOPS; ${c.blockedSpec} ${c.blocked.gflops.toFixed(1)} GFLOPS alone, `
            + `${((c.nchwSeconds / (c.blockedSeconds! + c.conversionSeconds!)) * c.nchw.gflops).toFixed(1)} with its conversions (${(c.conversionSeconds! * 1e6).toFixed(0)} us); kept between layers: ${c.keptLayout}`
          : 'layout nchw: no blocked layout applies to this problem';
      } else {
        r = await tune(parseProblem(spec), tuneOptions);
      }
      line.done();
      await device?.close();
      if (layoutLine && !opts.json) console.log(layoutLine);
      if (r.ranking === 'none' && !opts.policy && r.native) process.stderr.write(`[${r.target}] searched without a cost model: the shipped ${r.target} model did not load\n`);
      const { best: _b, kernel: _k, ...fields } = r;
      if (opts.json) {
        console.log(JSON.stringify({ ...fields, codegenMicros: r.kernel.codegenMicros }, null, 2));
      } else {
        console.log(`${r.problem}   target ${r.target}   ${r.strategy}   policy ${r.policy}`);
        console.log(`best schedule: ${r.schedule}${r.fromRecords ? '  (from tuning records)' : ''}`);
        console.log(r.verified ? `verified against the interpreter (max error ${r.maxRelError.toExponential(1)})` : 'NOT verified');
        const speedup = r.defaultPredicted ? 'the default schedule was not timed (too slow for the budget)'
          : describeSpeedup(r.gflops, r.defaultGflops, r.native ? '' : ', predicted');
        const on = r.deviceThreads > 1 ? ` on ${r.threads} thread${r.threads > 1 ? 's' : ''}` : '';
        const peakOf = r.deviceThreads > 1 ? ` (${r.deviceThreads} cores)` : '';
        console.log(r.native
          ? `${r.gflops.toFixed(1)} GFLOPS${on} = ${r.percentOfPeak.toFixed(1)}% of peak ${r.peakGflops.toFixed(1)}${peakOf}; ${speedup}`
          : `predicted ${r.gflops.toFixed(1)} GFLOPS of a nominal ${r.peakGflops} peak; ${speedup}`);
        if (r.singleThreadGflops !== undefined) console.log(`on one thread: ${r.singleThreadGflops.toFixed(1)} GFLOPS${r.threads === 1 ? ' (faster: the kernel runs there)' : ''}`);
        if (r.baseline) console.log(describeBaseline(r.baseline));
        else if (r.baselineError && opts.compare) console.log(`${b.baselineFamily ?? 'baseline'}: ${r.baselineError}`);
        console.log(`tuned in ${r.seconds.toFixed(2)} s (setup ${r.setupSeconds.toFixed(2)}, search ${r.searchSeconds.toFixed(2)}, verify ${r.verifySeconds.toFixed(2)}); ${r.measurements} schedules ${r.native ? 'measured' : 'predicted'}${r.proposals ? ` of ${r.proposals} proposed` : ''} (ranked by ${r.ranking})`);
      }
      if (!r.verified) process.exitCode = 1;
    });
}
