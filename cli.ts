/**
 * The looptune command line. Every command is a thin layer over the library (index.ts); user
 * errors (LoopTuneError) print one line and exit 1.
 */
import { Command, InvalidArgumentError } from 'commander';
import type { Kernel } from './targets/kernel.ts';
import { LoopTuneError } from './ir/errors.ts';
import { parseProblem } from './ir/spec.ts';
import { Schedule } from './ir/schedule.ts';
import { applyActions } from './ir/transforms.ts';
import { prettyPrint } from './ir/pretty.ts';
import { compileSchedule, getTarget, targetNames } from './targets/registry.ts';
import { lower } from './loopnest/lower.ts';
import { executorFor, openExecutor } from './targets/executor.ts';
import { runSchedule, type RunReport } from './targets/run-schedule.ts';
import { verifyKernel } from './targets/verify.ts';
import { hostTarget } from './targets/runtime/host.ts';
import { peakRecord } from './targets/runtime/peak.ts';
import { runSearch, runCompare, DEFAULT_COMPARE_SEARCHERS, type SearchTarget } from './agent/search/run.ts';
import { SEARCHER_NAMES } from './agent/search/index.ts';
import type { Budget, SearchProgress } from './agent/searcher.ts';

function scheduleFor(spec: string, opts: { schedule?: string; actions?: string }): Schedule {
  const problem = parseProblem(spec);
  let s = opts.schedule ? Schedule.parse(problem, opts.schedule) : Schedule.initial(problem);
  if (opts.actions) s = applyActions(s, opts.actions.split(',').map((a) => a.trim()).filter((a) => a));
  return s;
}

/** "10s" (seconds), "200" or "200m" (measurements), "50steps"; several joined by commas. */
export function parseBudget(text: string): Budget {
  const budget: Budget = {};
  for (const part of text.split(',').map((x) => x.trim()).filter((x) => x)) {
    const m = /^(\d+(?:\.\d+)?)(s|m|steps)?$/.exec(part);
    if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError(`cannot read budget '${part}' (expected e.g. 10s, 200m for measurements, 50steps)`);
    const n = Number(m[1]);
    if (m[2] === 's') budget.seconds = n;
    else if (m[2] === 'steps') budget.steps = Math.ceil(n);
    else budget.measurements = Math.ceil(n);
  }
  return budget;
}

/** Default tuning seconds on the GPU: a JIT plus timing costs 30-100 ms per candidate there. */
const CUDA_TUNE_SECONDS = 5;

/**
 * tune --target cuda: there is no shipped GPU policy (PPO needs thousands of GPU measurements to
 * learn one), so tuning is the environment's evolution on the GPU, every generation's candidates
 * screened by the shipped cuda cost model, the known-good template points first; the winner is
 * verified against the interpreter and timed beside cuBLAS for matmul.
 */
async function tuneOnGpu(spec: string, seconds: number, opts: { compare?: string; records?: string | boolean; seed: number; json?: boolean }): Promise<void> {
  const problem = parseProblem(spec);
  const t0 = performance.now();
  const { costModelRanker } = await import('./agent/tune.ts');
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
    ...run, searchGflops: r.gflops, defaultGflops: r.defaultGflops, speedupOverDefault: run.gflops / r.defaultGflops,
    ranking: predict ? 'cuda cost model' : 'none', measurements: r.measurements, searchSeconds: r.seconds, seconds: (performance.now() - t0) / 1000,
  };
  if (opts.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(`${problem.spec}   target cuda   evolution${predict ? ' screened by the cuda cost model' : ''}`);
    console.log(`best schedule: ${r.schedule}`);
    console.log(formatRun(run));
    console.log(`tuned in ${out.seconds.toFixed(1)} s: ${r.measurements} schedules timed on the GPU in ${r.seconds.toFixed(1)} s; ${out.speedupOverDefault.toFixed(1)}x over the default mapping`);
  }
  if (!run.verified) process.exitCode = 1;
}

/** One status line on stderr while a long run goes on (only when stderr is a terminal). */
function progressLine(): { update(text: string): void; done(): void } {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    update(text) {
      const now = Date.now();
      if (!tty || now - last < 100) return;
      last = now;
      process.stderr.write(`\r\x1b[K${text}`);
    },
    done() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

function describeProgress(p: SearchProgress): string {
  return `${p.searcher} ${p.problem}: ${p.measurements} measured, best ${p.bestGflops.toFixed(1)} GFLOPS (default ${p.defaultGflops.toFixed(1)}), ${p.seconds.toFixed(1)} s, ${(100 * p.fraction).toFixed(0)}% of budget`;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function describeDecision(k: Kernel): string {
  const d = k.program.decision;
  const p = k.program.problem;
  const vec = d.vectorVar === null ? `scalar (${d.scalarReason ?? 'no unit-stride variable'})` : `${d.lanes} lanes along ${p.vars[d.vectorVar]!.name}`;
  return `${d.accumulators} accumulators, ${d.unrolledOps} unrolled ops per body, ${vec}; unrolled from loop ${d.unrollFrom}, registers held from loop ${d.tileFrom}`;
}

function formatCostModelEval(r: { spearman: number; pairwiseAccuracy: number; top10Recall: number; records: number; problems: number }): string {
  return `${r.records} records of ${r.problems} problems: Spearman ${r.spearman.toFixed(3)}, pairwise accuracy ${r.pairwiseAccuracy.toFixed(3)}, top-10 recall ${r.top10Recall.toFixed(2)} (within each problem, averaged)`;
}

function formatRun(r: RunReport): string {
  const lines = [`${r.problem}   schedule ${r.schedule}   target ${r.target}`];
  lines.push(r.verified
    ? `verified against the interpreter (max error ${r.maxRelError.toExponential(1)}), codegen ${r.codegenMicros.toFixed(0)} us`
    : `NOT verified: ${r.error ?? 'mismatch'}`);
  if (r.verified && r.gflops > 0) {
    const timing = `best ${(r.bestSeconds * 1e3).toFixed(3)} ms, median ${(r.medianSeconds * 1e3).toFixed(3)} ms: ${r.gflops.toFixed(1)} GFLOPS`;
    lines.push(!r.native ? `${timing} under emulation (not comparable with native figures)`
      : Number.isFinite(r.peakGflops) ? `${timing} = ${r.percentOfPeak.toFixed(1)}% of peak ${r.peakGflops.toFixed(1)}` : timing);
  }
  if (r.openblasGflops !== undefined) {
    const cublas = r.openblasCorename?.startsWith('cuBLAS');
    lines.push(cublas
      ? `${r.openblasCorename} sgemm: ${r.openblasGflops.toFixed(1)} GFLOPS -> ${r.openblasRatio!.toFixed(2)}x cuBLAS`
      : `OpenBLAS sgemm (${r.openblasCorename}, 1 thread): ${r.openblasGflops.toFixed(1)} GFLOPS -> ${r.openblasRatio!.toFixed(2)}x OpenBLAS`);
  }
  if (r.error && r.verified) lines.push(`error: ${r.error}`);
  return lines.join('\n');
}

export function buildCli(): Command {
  const program = new Command();
  program
    .name('looptune')
    .description('Reinforcement-learning loop optimizer for tensor programs with direct machine-code generation.')
    .showHelpAfterError('(run looptune --help for usage)');

  program
    .command('show')
    .description('print a problem\'s scheduled loop nest and its textual schedule')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256" or "conv2d n1 c64 h56 w56 k64 r3 s3 stride1"')
    .option('--schedule <text>', 'start from this schedule, e.g. "m:64 n:4 k:256 m:4 n:64"')
    .option('--actions <list>', 'comma-separated actions applied at the cursor, e.g. split_16,down,swap_up')
    .option('--json', 'print the schedule as JSON')
    .option('--asm', 'also print the generated machine code (disassembled) and the register tile')
    .option('--ir', 'print the LLVM IR of the nest (the llvm-avx2/llvm-avx512 targets\' input)')
    .option('--ptx', 'print only the PTX module of the cuda target (ready for ptxas)')
    .option('--target <name>', `target for --asm (${targetNames().join(', ')}; default: the host's best)`)
    .action(async (spec: string, opts: { schedule?: string; actions?: string; json?: boolean; asm?: boolean; ir?: boolean; ptx?: boolean; target?: string }) => {
      const s = scheduleFor(spec, opts);
      if (opts.ptx || opts.target === 'cuda') {
        const { compileCuda } = await import('./targets/cuda/target.ts');
        const { describeMapping } = await import('./targets/cuda/mapping.ts');
        const k = compileCuda(s);
        if (!opts.ptx) {
          console.log(prettyPrint(s));
          console.log(`schedule: ${s.text()}`);
          console.log(describeMapping(k.mapping));
        }
        console.log(k.text);
        return;
      }
      if (opts.ir) {
        const { llvmIr } = await import('./targets/llvm/index.ts');
        const name = opts.target ?? `llvm-${hostTarget()}`;
        const isa = name.endsWith('avx2') ? 'avx2' : 'avx512';
        console.log(llvmIr(lower(s, getTarget(isa).caps)));
        return;
      }
      if (opts.asm) {
        const target = getTarget(opts.target ?? hostTarget());
        const k = compileSchedule(s, target);
        console.log(prettyPrint(s));
        console.log(`schedule: ${s.text()}`);
        console.log(`register tile: ${describeDecision(k)}`);
        console.log(`${target.name}: ${k.code.length} bytes in ${k.codegenMicros.toFixed(0)} us`);
        console.log(target.disassemble ? target.disassemble(k) : '(this target has no disassembler)');
        return;
      }
      if (opts.json) {
        console.log(JSON.stringify({
          problem: s.problem.spec,
          schedule: s.text(),
          cursor: s.cursor,
          hash: s.hash(),
          loops: s.loops.map((l, i) => ({ var: s.problem.vars[l.var]!.name, size: l.size, tail: l.tail, step: s.steps[i] })),
        }, null, 2));
        return;
      }
      console.log(prettyPrint(s));
      console.log(`schedule: ${s.text()}`);
    });
  program
    .command('run')
    .description('compile a schedule, verify it against the interpreter, measure it (GFLOPS, % of peak, OpenBLAS ratio)')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256"')
    .option('--schedule <text>', 'schedule text, e.g. "m:64 n:4 k:256 m:4 n:64"')
    .option('--actions <list>', 'comma-separated actions applied at the cursor')
    .option('--target <name>', `target (${targetNames().join(', ')}; default: the host's best)`)
    .option('--compare <what>', 'also measure the BLAS baseline in the same run: openblas (cuBLAS for --target cuda)')
    .option('--min-seconds <s>', 'minimum measured time per figure', positiveNumber)
    .option('--json', 'print the result as JSON')
    .action(async (spec: string, opts: { schedule?: string; actions?: string; target?: string; compare?: string; minSeconds?: number; json?: boolean }) => {
      if (opts.compare !== undefined && opts.compare !== 'openblas' && opts.compare !== 'cublas') {
        throw new LoopTuneError(`--compare: unknown baseline '${opts.compare}' (expected openblas, or cublas for --target cuda)`);
      }
      const s = scheduleFor(spec, opts);
      const target = opts.target ?? hostTarget();
      getTarget(target);
      const executor = await openExecutor(target);
      try {
        const r = await runSchedule(s, target, executor, {
          compareOpenblas: opts.compare !== undefined, ...(opts.minSeconds ? { minSeconds: opts.minSeconds } : {}),
        });
        if (opts.json) console.log(JSON.stringify(r, null, 2));
        else console.log(formatRun(r));
        if (!r.verified) process.exitCode = 1;
      } finally {
        await executor.close();
      }
    });

  program
    .command('search')
    .description('search for a fast schedule with a baseline searcher; prints the best schedule, its GFLOPS, speed-up over the default schedule and OpenBLAS ratio')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256"')
    .option('--searcher <name>', `one of ${SEARCHER_NAMES.join(', ')} (greedy:D lookahead, beam:W width)`, 'evolution')
    .option('--budget <budget>', 'e.g. 10s, 200m (measurements), 50steps, or 10s,200m', parseBudget, { seconds: 10 } as Budget)
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best, measured), neon (analytic cost model; the winner is verified under qemu), cuda (PTX timed on the GPU, with the bind/stage actions), or synthetic (a toy model)')
    .option('--compare <what>', 'also measure a baseline in the same run: openblas (cuBLAS sgemm for --target cuda; cublas is accepted too)')
    .option('--records <file>', 'tuning records (JSONL): reused as a cache and appended with every measurement')
    .option('--seed <n>', 'random seed', (v) => Number(v), 0)
    .option('--json', 'print the result as JSON (the fields of run plus schedule, speedupOverDefault, measurements, seconds)')
    .action(async (spec: string, opts: { searcher: string; budget: Budget; target?: string; compare?: string; records?: string; seed: number; json?: boolean }) => {
      if (opts.compare !== undefined && opts.compare !== 'openblas' && opts.compare !== 'cublas') throw new LoopTuneError(`--compare: unknown baseline '${opts.compare}' (expected openblas, or cublas for --target cuda)`);
      const problem = parseProblem(spec);
      const target = (opts.target ?? hostTarget()) as SearchTarget;
      const line = progressLine();
      const r = await runSearch(problem, {
        searcher: opts.searcher, budget: opts.budget, target, recordsPath: opts.records ?? null, seed: opts.seed,
        onProgress: (p) => line.update(describeProgress(p)),
      });
      line.done();
      let run: RunReport | undefined;
      if (target !== 'synthetic') {
        // the best schedule, verified against the interpreter and measured side by side with OpenBLAS
        const executor = await openExecutor(target);
        try {
          run = await runSchedule(Schedule.parse(problem, r.schedule), target, executor, { compareOpenblas: opts.compare !== undefined });
        } finally {
          await executor.close();
        }
      }
      // under emulation the run only verifies: speed figures stay the search's (predicted) ones
      const measured = run?.native ? run : undefined;
      const out = {
        ...(run ?? { problem: r.problem, target: r.target, gflops: r.gflops, peakGflops: r.peakGflops }),
        ...(run && !run.native ? { gflops: r.gflops, peakGflops: r.peakGflops, predicted: true } : {}),
        schedule: r.schedule, searcher: r.searcher, searchGflops: r.gflops, defaultGflops: r.defaultGflops,
        speedupOverDefault: r.defaultSkipped ? null : (measured?.gflops ?? r.gflops) / r.defaultGflops,
        measurements: r.measurements, seconds: r.seconds, stopReason: r.stopReason,
      };
      if (opts.json) {
        console.log(JSON.stringify({ ...out, history: r.history }, null, 2));
      } else {
        console.log(`${r.searcher}: ${r.measurements} schedules ${target === 'neon' ? 'predicted' : 'measured'} in ${r.seconds.toFixed(1)} s (${r.stopReason})`);
        console.log(`best schedule: ${r.schedule}`);
        if (run) console.log(formatRun(run));
        const predicted = target === 'neon' ? ' predicted by the analytic cost model' : '';
        if (r.defaultSkipped) console.log('the default schedule was not timed (too slow for a search of this size)');
        else console.log(`speed-up over the default schedule (${r.defaultGflops.toFixed(2)} GFLOPS${predicted}): ${out.speedupOverDefault!.toFixed(1)}x`);
      }
      if (run && !run.verified) process.exitCode = 1;
    });

  program
    .command('tune')
    .description('tune a kernel with the shipped policy (records first, then policy proposals, a few measurements, verification); the main job')
    .argument('<spec>', 'problem, e.g. "matmul 512x512x512"')
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best), neon (analytic cost model, verified under qemu), or cuda (evolution on the GPU, candidates screened by the cuda cost model)')
    .option('--budget <seconds>', `seconds for proposing and measuring (e.g. 1 or 1s); when not given, large problems get about 40 measurements at peak and cuda ${CUDA_TUNE_SECONDS} s`, (v) => positiveNumber(v.replace(/s$/, '')), 1)
    .option('--policy <dir>', 'a policy folder (default: agent/pretrained/<target>)')
    .option('--compare <what>', 'also measure the BLAS in the same run: openblas (cuBLAS on cuda, where cublas is accepted too)')
    .option('--records <file>', 'tuning records (default $LOOPTUNE_RECORDS or ~/.cache/looptune/records.jsonl)')
    .option('--no-records', 'neither read nor write tuning records (measure the policy itself)')
    .option('--seed <n>', 'random seed', (v) => Number(v), 0)
    .option('--json', 'print the result as JSON (the field names of search)')
    .action(async (spec: string, opts: { target?: string; budget: number; policy?: string; compare?: string; records?: string | boolean; seed: number; json?: boolean }, command: Command) => {
      const target = opts.target ?? hostTarget();
      if (opts.compare !== undefined && opts.compare !== 'openblas' && !(target === 'cuda' && opts.compare === 'cublas')) {
        throw new LoopTuneError(`--compare: unknown baseline '${opts.compare}' (expected openblas${target === 'cuda' ? ' or cublas' : ''})`);
      }
      if (target === 'cuda') {
        await tuneOnGpu(spec, command.getOptionValueSource('budget') === 'default' ? CUDA_TUNE_SECONDS : opts.budget, opts);
        return;
      }
      if (target === 'neon') {
        // no Arm hardware to train or measure on: tuning is an evolutionary search on the analytic
        // cost model within the budget; the result is verified under qemu
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
          console.log(`predicted ${r.gflops.toFixed(1)} GFLOPS of a nominal ${r.peakGflops} peak; ${r.speedupOverDefault.toFixed(1)}x over the default schedule (predicted); ${r.measurements} schedules in ${r.seconds.toFixed(2)} s`);
        }
        if (!verified) process.exitCode = 1;
        return;
      }
      if (target !== 'avx512' && target !== 'avx2') throw new LoopTuneError(`tune: target '${target}' has no shipped policy here (expected avx512, avx2 or neon)`);
      const { tune } = await import('./agent/tune.ts');
      const line = progressLine();
      const r = await tune(parseProblem(spec), {
        target, seed: opts.seed, compareOpenblas: opts.compare === 'openblas',
        ...(command.getOptionValueSource('budget') === 'default' ? {} : { budgetSeconds: opts.budget }),
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
          : `${r.speedupOverDefault.toFixed(1)}x over the default schedule (${r.defaultGflops.toFixed(2)} GFLOPS)`}`);
        if (r.openblasGflops !== undefined) console.log(`OpenBLAS sgemm (${r.openblasCorename}, 1 thread): ${r.openblasGflops.toFixed(1)} GFLOPS -> ${r.openblasRatio!.toFixed(2)}x OpenBLAS`);
        else if (r.openblasError && opts.compare) console.log(`OpenBLAS: ${r.openblasError}`);
        console.log(`tuned in ${r.seconds.toFixed(2)} s (setup ${r.setupSeconds.toFixed(2)}, search ${r.searchSeconds.toFixed(2)}, verify ${r.verifySeconds.toFixed(2)}); ${r.measurements} schedules measured of ${r.proposals} proposed (ranked by ${r.ranking})`);
      }
      if (!r.verified) process.exitCode = 1;
    });

  program
    .command('train')
    .description('train a PPO policy from an experiment file (progress bar, checkpoints; resumes after a kill)')
    .argument('<experiment>', 'e.g. experiments/ppo-mm-avx512.yaml')
    .option('--fresh', 'start over instead of resuming from the newest checkpoint')
    .option('--stop-after <n>', 'stop after n iterations (resume later)', (v) => Number(v))
    .option('--variant <name...>', 'train only these variants of the file')
    .action(async (file: string, o: { fresh?: boolean; stopAfter?: number; variant?: string[] }) => {
      const { trainExperiment } = await import('./experiments/runner.ts');
      const r = await trainExperiment(file, {
        resume: !o.fresh, ...(o.stopAfter ? { stopAfter: o.stopAfter } : {}), ...(o.variant ? { variants: o.variant } : {}),
      });
      for (const v of r.variants) {
        console.log(`${v.name}: iteration ${v.iteration}, ${v.globalStep} env steps, ${v.stepsPerSecond?.toFixed(1) ?? '-'} steps/s, checkpoint ${v.checkpoint ?? '-'}${v.policyDir ? `, policy ${v.policyDir}` : ''}`);
      }
    });

  program
    .command('eval')
    .description('run an experiment\'s policy on its test split (writes eval.json in the run folder)')
    .argument('<experiment>', 'e.g. experiments/ppo-mm-avx512.yaml')
    .option('--checkpoint <dir>', 'a policy or checkpoints folder (default: the newest checkpoint)')
    .option('--problems <n>', 'only the first n test problems', (v) => Number(v))
    .option('--variant <name>', 'which variant of the file')
    .action(async (file: string, o: { checkpoint?: string; problems?: number; variant?: string }) => {
      const { evalExperiment } = await import('./experiments/runner.ts');
      const r = await evalExperiment(file, {
        ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}), ...(o.problems ? { problems: o.problems } : {}), ...(o.variant ? { variant: o.variant } : {}),
      });
      console.log(JSON.stringify(r.map((x) => ({ variant: x.variant, policy: x.policy, ...x.summary })), null, 2));
    });

  program
    .command('export')
    .description('ship an experiment\'s trained policy (tfjs files + manifest) to agent/pretrained/<target>')
    .argument('<experiment>', 'e.g. experiments/ppo-mm-avx512.yaml')
    .option('--to <dir>', 'destination (default agent/pretrained/<target>)')
    .option('--variant <name>', 'which variant of the file')
    .option('--checkpoint <dir>', 'a checkpoint other than the newest')
    .action(async (file: string, o: { to?: string; variant?: string; checkpoint?: string }) => {
      const { exportPolicy } = await import('./experiments/runner.ts');
      const r = await exportPolicy(file, { ...(o.to ? { to: o.to } : {}), ...(o.variant ? { variant: o.variant } : {}), ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}) });
      console.log(JSON.stringify(r.manifest, null, 2));
    });

  program
    .command('compare')
    .description('searchers side by side with equal budgets (or, given an experiment file, PPO against its baselines); writes an HTML report with SVG plots and JSON')
    .argument('<problems>', 'a spec, a dataset and split such as "mm64-256:test", or an experiment file (.yaml)')
    .option('--searchers <list>', 'comma-separated searchers', DEFAULT_COMPARE_SEARCHERS.join(','))
    .option('--budget <budget>', 'per problem and searcher, e.g. 10s or 200m', parseBudget, { seconds: 10 } as Budget)
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best), neon (analytic cost model), cuda (timed on the GPU; cuBLAS is its BLAS), or synthetic')
    .option('--limit <n>', 'use only the first N problems', (v) => Number(v))
    .option('--out <dir>', 'report folder', 'runs/compare')
    .option('--compare <what>', 'also measure OpenBLAS per matmul: openblas')
    .option('--records <file>', 'tuning records (JSONL) shared by all searchers')
    .option('--seed <n>', 'random seed', (v) => Number(v), 0)
    .option('--checkpoint <dir>', 'with an experiment file: the policy to compare (default: its newest checkpoint)')
    .action(async (problems: string, opts: { searchers: string; budget: Budget; target?: string; limit?: number; out: string; compare?: string; records?: string; seed: number; checkpoint?: string }) => {
      if (/\.ya?ml$/.test(problems)) {
        const { compareExperiment } = await import('./experiments/runner.ts');
        const r = await compareExperiment(problems, {
          ...(opts.limit !== undefined ? { problems: opts.limit } : {}), ...(opts.checkpoint ? { checkpoint: opts.checkpoint } : {}),
        });
        console.log(`report: ${r.html}`);
        return;
      }
      const line = progressLine();
      const r = await runCompare(problems, {
        searchers: opts.searchers.split(',').map((x) => x.trim()).filter((x) => x),
        budget: opts.budget, target: (opts.target ?? hostTarget()) as SearchTarget, outDir: opts.out,
        compareOpenblas: opts.compare === 'openblas', recordsPath: opts.records ?? null, seed: opts.seed,
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        onProgress: (p) => line.update(`[${p.problemIndex + 1}/${p.problemCount}] ${describeProgress(p)}`),
      });
      line.done();
      console.log(`report: ${r.html ?? '(none)'}\ndata: ${r.json ?? '(none)'}`);
    });

  const costmodel = program
    .command('costmodel')
    .description('the learned cost model: train it from tuning records, evaluate its ranking quality');
  costmodel
    .command('train')
    .description('train a cost model on tuning records (JSONL) and save it in the tfjs format')
    .argument('<records...>', 'record files, e.g. agent/costmodel/shipped/records-avx512.jsonl')
    .option('--out <dir>', 'where model.json and weights.bin go', 'runs/costmodel')
    .option('--target <name>', 'the records\' target (default: the host\'s)')
    .option('--epochs <n>', 'training epochs', (v) => Number(v))
    .option('--init <model>', 'warm start (transfer) from this model ("default" or a folder)')
    .option('--validation <file>', 'held-out records evaluated after training')
    .action(async (records: string[], opts: { out: string; target?: string; epochs?: number; init?: string; validation?: string }) => {
      const { trainCostModel } = await import('./agent/costmodel/cli.ts');
      const line = progressLine();
      const r = await trainCostModel(records, {
        out: opts.out, target: opts.target ?? hostTarget(),
        ...(opts.epochs ? { epochs: opts.epochs } : {}), ...(opts.init ? { init: opts.init } : {}),
        ...(opts.validation ? { validation: [opts.validation] } : {}),
        onProgress: (p) => line.update(`epoch ${p.epoch}/${p.epochs} loss ${p.loss.toFixed(4)} (${p.seconds.toFixed(1)} s)`),
      });
      line.done();
      console.log(`saved ${r.out}`);
      if (r.validation) console.log(formatCostModelEval(r.validation));
    });
  costmodel
    .command('eval')
    .description('ranking quality on records: Spearman and pairwise accuracy within each problem, top-10 recall of the measured best')
    .argument('<model>', '"default" (the shipped model for the host target) or a model folder')
    .argument('<records>', 'record file (JSONL)')
    .option('--json', 'print {spearman, pairwiseAccuracy, top10Recall, records, ...} as JSON')
    .action(async (model: string, records: string, opts: { json?: boolean }) => {
      const { evalCostModel } = await import('./agent/costmodel/cli.ts');
      const r = await evalCostModel(model, records);
      if (opts.json) {
        const { perProblem: _, ...summary } = r;
        console.log(JSON.stringify(summary, null, 2));
      } else console.log(formatCostModelEval(r));
    });

  program
    .command('peak')
    .description("measure this machine's single-core fp32 FMA peak with a generated kernel of independent FMA chains")
    .option('--target <isa>', 'avx2 or avx512 (default: the host\'s best)')
    .option('--fresh', 'measure again instead of using the cached figure')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { target?: string; fresh?: boolean; json?: boolean }) => {
      const isa = opts.target ?? hostTarget();
      if (isa !== 'avx2' && isa !== 'avx512') throw new LoopTuneError(`peak: unknown target '${isa}' (expected avx2 or avx512)`);
      const r = await peakRecord(isa, { fresh: opts.fresh ?? false });
      if (opts.json) console.log(JSON.stringify(r, null, 2));
      else {
        console.log(`${isa} peak: ${r.gflops.toFixed(1)} GFLOPS (${r.chains} independent FMA chains; ${r.model})${r.cached ? ' [cached; --fresh to re-measure]' : ''}`);
        console.log(r.perChains.map((c) => `  ${c.chains} chains: ${c.gflops.toFixed(1)}`).join('\n'));
      }
    });
  return program;
}

async function main(): Promise<void> {
  try {
    await buildCli().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof LoopTuneError) {
      console.error(`looptune: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
}

await main();
