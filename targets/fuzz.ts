/**
 * Differential fuzz: random problems of every op kind under random legal schedules (odd sizes,
 * tails, sizes of 1, strided convolutions), compiled for a target, run on guarded buffers (a
 * PROT_NONE page right after each tensor, so any out-of-bounds access crashes), and compared to
 * the interpreter. Crashes and hangs are results, not exceptions. With `threads`, most schedules
 * get a random parallel band (collapsed loops, tails) and run on a thread count drawn from it.
 */
import { RANDOM_OPS, Rng, randomBand, randomProblem, randomSchedule } from '../ir/random.ts';
import type { Op, Problem } from '../ir/problem.ts';
import type { Schedule } from '../ir/schedule.ts';
import { lower } from '../loopnest/lower.ts';
import { walkProgram } from '../loopnest/program.ts';
import type { Target } from './kernel.ts';
import { backend } from './registry.ts';
import { verifyKernel, type KernelRunner } from './verify.ts';

export interface FuzzFailure {
  kind: 'mismatch' | 'crash' | 'codegen';
  problem: string;
  schedule: string;
  message: string;
}

export interface FuzzReport {
  target: string;
  seed: number;
  cases: number;
  mismatches: number;
  crashes: number;
  codegenErrors: number;
  /** the first few failures, with what reproduces them */
  failures: FuzzFailure[];
  perOp: Record<string, number>;
  /** kernels whose program packs an input (PackNode; x86 fuzz only) */
  packed?: number;
  /** kernels that overwrite their output (zero-started tiles) */
  overwriting?: number;
  /** kernels with a parallel band, by the threads they ran on */
  parallelByThreads?: Record<string, number>;
  /** kernels that both pack and have a parallel band (each thread packs its own chunks' box) */
  packedParallel?: number;
  /** kernels with an epilogue, by where the lowering put it: in the register tile, or a separate pass */
  epilogueInTile?: number;
  epiloguePass?: number;
  seconds: number;
}

export interface FuzzOptions {
  /** a target name, or a Target (e.g. with changed caps, to force a lowering rule) */
  target: string | Target;
  cases: number;
  seed?: number;
  runner: KernelRunner;
  onProgress?: (done: number, failed: number) => void;
  /** op kinds to draw from, round robin (default every op) */
  ops?: readonly Op[];
  /** problem and schedule generators (default randomProblem, and randomSchedule of 0..24 actions) */
  problemFor?: (rng: Rng, op: Op) => Problem;
  scheduleFor?: (problem: Problem, rng: Rng) => Schedule;
  /** thread counts to draw from: 4 of 5 schedules get a random parallel band and run on one of them */
  threads?: readonly number[];
  /** compile half of the cases to overwrite their output (LowerOptions.overwrite) */
  overwrite?: boolean;
}

export async function fuzzTarget(opts: FuzzOptions): Promise<FuzzReport> {
  const seed = opts.seed ?? 1;
  const t0 = performance.now();
  const report: FuzzReport = {
    target: typeof opts.target === 'string' ? opts.target : opts.target.name,
    seed, cases: 0, mismatches: 0, crashes: 0, codegenErrors: 0, failures: [], perOp: {}, packed: 0, seconds: 0,
  };
  const fail = (f: FuzzFailure) => {
    if (report.failures.length < 20) report.failures.push(f);
  };
  for (let i = 0; i < opts.cases; i++) {
    const rng = new Rng(seed * 1_000_003 + i);
    const ops = opts.ops ?? RANDOM_OPS;
    const op = ops[i % ops.length]!;
    const problem = opts.problemFor ? opts.problemFor(rng, op) : randomProblem(rng, op);
    let schedule: Schedule = opts.scheduleFor ? opts.scheduleFor(problem, rng) : randomSchedule(problem, rng, rng.int(0, 24));
    const threads = opts.threads ? rng.pick(opts.threads) : 1;
    if (opts.threads && rng.next() < 0.8) schedule = randomBand(schedule, rng);
    report.perOp[op] = (report.perOp[op] ?? 0) + 1;
    report.cases++;
    let kernel;
    try {
      // a printer with changed caps compiles through the lowering directly
      const overwrite = opts.overwrite === true && rng.next() < 0.5;
      kernel = typeof opts.target === 'string' ? backend(opts.target).compile(schedule, { overwrite }) : opts.target.compile(lower(schedule, opts.target.caps, { overwrite }));
    } catch (e) {
      report.codegenErrors++;
      fail({ kind: 'codegen', problem: problem.spec, schedule: schedule.text(), message: (e as Error).message });
      continue;
    }
    let packs = false;
    walkProgram(kernel.program.body, (n) => (packs ||= n.kind === 'pack'));
    if (packs) report.packed = (report.packed ?? 0) + 1;
    if (kernel.program.epilogue) {
      let pass = false;
      walkProgram(kernel.program.body, (n) => (pass ||= n.kind === 'tile' && n.epilogue === true && n.body.length === 0));
      if (pass) report.epiloguePass = (report.epiloguePass ?? 0) + 1;
      else report.epilogueInTile = (report.epilogueInTile ?? 0) + 1;
    }
    if (kernel.abi.overwrites) report.overwriting = (report.overwriting ?? 0) + 1;
    if (kernel.abi.parallel) {
      const by = (report.parallelByThreads ??= {});
      by[threads] = (by[threads] ?? 0) + 1;
      if (packs) report.packedParallel = (report.packedParallel ?? 0) + 1;
    }
    const v = await verifyKernel(kernel, schedule, opts.runner, { seed: i + 1, guard: true, threads });
    if (!v.verified) {
      const crashed = v.maxRelError === Infinity && v.error !== undefined && !v.error.startsWith('output differs');
      if (crashed) report.crashes++;
      else report.mismatches++;
      fail({ kind: crashed ? 'crash' : 'mismatch', problem: problem.spec, schedule: schedule.text(), message: v.error ?? '' });
    }
    opts.onProgress?.(i + 1, report.mismatches + report.crashes + report.codegenErrors);
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}
