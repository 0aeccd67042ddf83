/**
 * KernelRunner for neon kernels, and the neon differential fuzz.
 *
 * qemu-aarch64 costs ~13 ms to start and ~0.1 ms per small kernel once running, so the runner
 * queues jobs and runs them in batches (one harness process per batch, see qemu-runner.ts):
 *
 *   const runner = new Arm64BatchRunner({ batchSize: 50 });
 *   const outcomes = await Promise.all(kernels.map((k, i) => runner.run(k, tensors[i], { guard: true })));
 *
 * A batch starts when `batchSize` jobs are queued, or on the next turn of the event loop (so a
 * caller that awaits every run, like fuzzTarget, still works: one job per process). One harness
 * process runs at a time; results resolve in order. Crashes and hangs are outcomes, not exceptions.
 *
 * `fuzzTarget` awaits one case at a time, which defeats batching, so `fuzzTargetBatched` runs the
 * SAME cases (same seeds, problems, schedules, verification) a chunk at a time; `fuzzNeon` is it
 * for the neon target. tests/targets/arm64/fuzz.test.ts checks that the cases match fuzzTarget's.
 */
import { RANDOM_OPS, Rng, randomProblem, randomSchedule } from '../../ir/random.ts';
import type { Schedule } from '../../ir/schedule.ts';
import type { FuzzFailure, FuzzReport } from '../fuzz.ts';
import type { Kernel } from '../kernel.ts';
import { compileSchedule } from '../registry.ts';
import { verifyKernel, type KernelRunner, type RunOutcome, type Verification } from '../verify.ts';
import { runArm64Batch, type Arm64Job } from './qemu-runner.ts';

export interface Arm64BatchRunnerOptions {
  /** jobs per harness process (default 50) */
  batchSize?: number;
  /** per-kernel timeout in the harness (default 10000 ms) */
  timeoutMs?: number;
  /** kernel repetitions (default 1) */
  reps?: number;
}

interface Queued {
  job: Arm64Job;
  resolve: (r: RunOutcome) => void;
}

export class Arm64BatchRunner {
  readonly batchSize: number;
  private readonly timeoutMs: number;
  private readonly reps: number;
  private queue: Queued[] = [];
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();
  /** harness processes started and jobs run, for reports */
  readonly stats = { batches: 0, jobs: 0 };

  constructor(opts: Arm64BatchRunnerOptions = {}) {
    this.batchSize = Math.max(1, opts.batchSize ?? 50);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.reps = opts.reps ?? 1;
  }

  /** The KernelRunner: queues the job, resolves when its batch has run. */
  readonly run: KernelRunner = (kernel: Kernel, tensors: Float32Array[], opts: { guard: boolean }) => {
    if (kernel.abi.kind !== 'aapcs64') {
      return Promise.resolve({ ok: false, error: `the arm64 runner runs aapcs64 kernels, not ${kernel.abi.kind} (target ${kernel.target})` });
    }
    return new Promise<RunOutcome>((resolve) => {
      this.queue.push({ job: { code: kernel.code, tensors, reps: this.reps, guard: opts.guard }, resolve });
      if (this.queue.length >= this.batchSize) void this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          void this.flush();
        });
      }
    });
  };

  /** Runs everything queued so far (after the batches already started); resolves when it ran. */
  flush(): Promise<void> {
    if (this.queue.length === 0) return this.chain;
    const batch = this.queue;
    this.queue = [];
    this.chain = this.chain.then(async () => {
      this.stats.batches++;
      this.stats.jobs += batch.length;
      let results;
      try {
        results = await runArm64Batch(batch.map((q) => q.job), { timeoutMs: this.timeoutMs });
      } catch (e) {
        results = batch.map(() => ({ ok: false as const, error: `arm64 runner: ${(e as Error).message}` }));
      }
      batch.forEach((q, i) => {
        const r = results[i]!;
        q.resolve(r.ok ? { ok: true, output: r.output } : { ok: false, error: r.error });
      });
    });
    return this.chain;
  }
}

/** A KernelRunner for neon kernels (batched; see Arm64BatchRunner). */
export function arm64Runner(opts: Arm64BatchRunnerOptions = {}): KernelRunner {
  return new Arm64BatchRunner(opts).run;
}

// ---- the batched differential fuzz ----------------------------------------------------------

/** Case `i` of a fuzz run with `seed`: exactly the case fuzzTarget (targets/fuzz.ts) generates. */
export function fuzzCase(seed: number, i: number): { op: string; schedule: Schedule } {
  const rng = new Rng(seed * 1_000_003 + i);
  const op = RANDOM_OPS[i % RANDOM_OPS.length]!;
  const problem = randomProblem(rng, op);
  const schedule: Schedule = randomSchedule(problem, rng, rng.int(0, 24));
  return { op, schedule };
}

export interface BatchedFuzzOptions {
  target: string;
  cases: number;
  seed?: number;
  /** the batching runner (default: a new Arm64BatchRunner with `batchSize`) */
  runner?: Arm64BatchRunner;
  /** cases compiled and run together (default 50) */
  batchSize?: number;
  onProgress?: (done: number, failed: number) => void;
}

type CaseResult =
  | { i: number; op: string; schedule: Schedule; codegen: string }
  | { i: number; op: string; schedule: Schedule; v: Verification };

/**
 * fuzzTarget's loop, a chunk of cases at a time: the chunk's kernels are compiled and queued
 * together (one harness process), and the next chunk is compiled while this one runs. Same cases,
 * same verification, same report (failures in case order).
 */
export async function fuzzTargetBatched(opts: BatchedFuzzOptions): Promise<FuzzReport> {
  const seed = opts.seed ?? 1;
  const batchSize = opts.batchSize ?? opts.runner?.batchSize ?? 50;
  const runner = opts.runner ?? new Arm64BatchRunner({ batchSize });
  const t0 = performance.now();
  const report: FuzzReport = {
    target: opts.target, seed, cases: 0, mismatches: 0, crashes: 0, codegenErrors: 0, failures: [], perOp: {}, seconds: 0,
  };
  const fail = (f: FuzzFailure) => {
    if (report.failures.length < 20) report.failures.push(f);
  };
  const record = (results: CaseResult[]) => {
    for (const r of results) {
      const problem = r.schedule.problem.spec;
      const schedule = r.schedule.text();
      report.perOp[r.op] = (report.perOp[r.op] ?? 0) + 1;
      report.cases++;
      if ('codegen' in r) {
        report.codegenErrors++;
        fail({ kind: 'codegen', problem, schedule, message: r.codegen });
        continue; // fuzzTarget reports no progress for a codegen error either
      }
      const v = r.v;
      if (!v.verified) {
        const crashed = v.maxRelError === Infinity && v.error !== undefined && !v.error.startsWith('output differs');
        if (crashed) report.crashes++;
        else report.mismatches++;
        fail({ kind: crashed ? 'crash' : 'mismatch', problem, schedule, message: v.error ?? '' });
      }
      opts.onProgress?.(r.i + 1, report.mismatches + report.crashes + report.codegenErrors);
    }
  };
  const chunk = (start: number, end: number): Promise<CaseResult[]> => {
    const pending: Promise<CaseResult>[] = [];
    for (let i = start; i < end; i++) {
      const { op, schedule } = fuzzCase(seed, i);
      let kernel: Kernel;
      try {
        kernel = compileSchedule(schedule, opts.target);
      } catch (e) {
        pending.push(Promise.resolve({ i, op, schedule, codegen: (e as Error).message }));
        continue;
      }
      pending.push(
        verifyKernel(kernel, schedule, runner.run, { seed: i + 1, guard: true })
          .catch((e: unknown): Verification => ({ verified: false, maxRelError: Infinity, tolerance: 0, error: `verification failed: ${(e as Error).message}` }))
          .then((v) => ({ i, op, schedule, v })),
      );
    }
    void runner.flush();
    return Promise.all(pending);
  };
  let previous: Promise<CaseResult[]> | null = null;
  for (let start = 0; start < opts.cases; start += batchSize) {
    const current = chunk(start, Math.min(opts.cases, start + batchSize));
    if (previous) record(await previous);
    previous = current;
  }
  if (previous) record(await previous);
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

/**
 * The neon differential fuzz, for `npm run fuzz -- --target neon --cases N`:
 *   const report = await fuzzNeon(cases, seed, (done, failed) => bar.update(done, { failed }));
 * Same FuzzReport as fuzzTarget. ~2.5 ms a case on one core (compile, qemu, interpreter).
 */
export function fuzzNeon(cases: number, seed = 1, onProgress?: (done: number, failed: number) => void): Promise<FuzzReport> {
  return fuzzTargetBatched({ target: 'neon', cases, seed, batchSize: 50, ...(onProgress ? { onProgress } : {}) });
}
