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
import { executorFor } from './targets/executor.ts';
import { runSchedule, type RunReport } from './targets/run-schedule.ts';
import { hostTarget } from './targets/runtime/host.ts';
import { peakRecord } from './targets/runtime/peak.ts';

function scheduleFor(spec: string, opts: { schedule?: string; actions?: string }): Schedule {
  const problem = parseProblem(spec);
  let s = opts.schedule ? Schedule.parse(problem, opts.schedule) : Schedule.initial(problem);
  if (opts.actions) s = applyActions(s, opts.actions.split(',').map((a) => a.trim()).filter((a) => a));
  return s;
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

function formatRun(r: RunReport): string {
  const lines = [`${r.problem}   schedule ${r.schedule}   target ${r.target}`];
  lines.push(r.verified
    ? `verified against the interpreter (max error ${r.maxRelError.toExponential(1)}), codegen ${r.codegenMicros.toFixed(0)} us`
    : `NOT verified: ${r.error ?? 'mismatch'}`);
  if (r.verified && r.gflops > 0) {
    const emulated = r.native ? '' : ' (emulated: not comparable with native figures)';
    lines.push(`best ${(r.bestSeconds * 1e3).toFixed(3)} ms, median ${(r.medianSeconds * 1e3).toFixed(3)} ms: ${r.gflops.toFixed(1)} GFLOPS = ${r.percentOfPeak.toFixed(1)}% of peak ${r.peakGflops.toFixed(1)}${emulated}`);
  }
  if (r.openblasGflops !== undefined) {
    lines.push(`OpenBLAS sgemm (${r.openblasCorename}, 1 thread): ${r.openblasGflops.toFixed(1)} GFLOPS -> ${r.openblasRatio!.toFixed(2)}x OpenBLAS`);
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
    .option('--target <name>', `target for --asm (${targetNames().join(', ')}; default: the host's best)`)
    .action((spec: string, opts: { schedule?: string; actions?: string; json?: boolean; asm?: boolean; target?: string }) => {
      const s = scheduleFor(spec, opts);
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
    .option('--compare <what>', 'also measure a baseline in the same run: openblas')
    .option('--min-seconds <s>', 'minimum measured time per figure', positiveNumber)
    .option('--json', 'print the result as JSON')
    .action(async (spec: string, opts: { schedule?: string; actions?: string; target?: string; compare?: string; minSeconds?: number; json?: boolean }) => {
      if (opts.compare !== undefined && opts.compare !== 'openblas') throw new LoopTuneError(`--compare: unknown baseline '${opts.compare}' (expected openblas)`);
      const s = scheduleFor(spec, opts);
      const target = opts.target ?? hostTarget();
      getTarget(target);
      const executor = executorFor(target);
      try {
        const r = await runSchedule(s, target, executor, {
          compareOpenblas: opts.compare === 'openblas', ...(opts.minSeconds ? { minSeconds: opts.minSeconds } : {}),
        });
        if (opts.json) console.log(JSON.stringify(r, null, 2));
        else console.log(formatRun(r));
        if (!r.verified) process.exitCode = 1;
      } finally {
        await executor.close();
      }
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
