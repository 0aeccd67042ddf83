/**
 * `compileKernel`: a tuned or given schedule as a kernel an application calls in-process, many
 * times, on its own Float32Arrays (zero-copy) or native buffers:
 *
 *   const k = await compileKernel('matmul 256x256x256', { tune: { budgetSeconds: 1 } });
 *   k.run([a, b], c);          // c = a · b ({ accumulate: true } at compile time: c += a · b)
 *   k.dispose();
 *
 * The kernel writes its output: where the schedule's tiles hold each output's whole reduction the
 * generated code starts them at zero (LowerOptions.overwrite); otherwise `run` fills the output
 * with the op's identity before the call.
 *
 * Safety: generated code runs in the caller's process only after it ran correctly once in a
 * measurement worker (a child process, where a crash is an error result): `tune` verifies its
 * winner there, and a given schedule is verified there before compileKernel returns. The code is
 * mapped once; `run` is one native call (plus a libgomp fork-join on several threads).
 */
import { fail } from '../ir/errors.ts';
import { ACCUMULATES, type Combine, type Problem } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import type { Backend } from '../targets/backend.ts';
import type { Kernel } from '../targets/kernel.ts';
import { backend as backendNamed, hostBackend } from '../targets/registry.ts';
import { InProcessKernel, type KernelTensor } from '../targets/runtime/in-process-kernel.ts';
import { defaultThreads, threadCountError } from '../targets/runtime/threads.ts';
import { verifyKernel } from '../targets/verify.ts';
import { tune, type TuneOptions, type TuneResult } from './tune.ts';

export interface CompileKernelOptionsBase {
  /** an x86 backend or its name (default: the host's best); kernels run in this process */
  target?: Backend | string;
  /** threads of each `run` (default: every core; kernels without a parallel band use one) */
  threads?: number;
  /** accumulating ops add into the output's contents (BLAS beta = 1) instead of overwriting it */
  accumulate?: boolean;
}

export type CompileKernelOptions = CompileKernelOptionsBase & ({ schedule: string | Schedule } | { tune: TuneOptions });

export interface RunOptions {
  /** this call's threads instead of the kernel's */
  threads?: number;
}

export interface CompiledKernel {
  readonly problem: Problem;
  readonly schedule: Schedule;
  readonly kernel: Kernel;
  /** threads each run uses by default */
  readonly threads: number;
  /** what tune measured, when the schedule was tuned */
  readonly tuned?: TuneResult;
  /** output = the problem on `inputs` (its inputs in order); every array exactly as long as its tensor */
  run(inputs: readonly KernelTensor[], output: KernelTensor, options?: RunOptions): void;
  dispose(): void;
}

/** The value accumulating combines start from (what the output holds before the first term). */
const IDENTITY: Partial<Record<Combine, number>> = { fma: 0, sum: 0, max: -Infinity };

export async function compileKernel(spec: string | Problem, options: CompileKernelOptions): Promise<CompiledKernel> {
  const problem = typeof spec === 'string' ? parseProblem(spec) : spec;
  const b = options.target === undefined ? hostBackend() : typeof options.target === 'string' ? backendNamed(options.target) : options.target;
  if (b.timing !== 'native' || b.processor !== 'cpu') fail(`compileKernel: ${b.name} kernels cannot run in this process (an x86 target can)`);
  const threads = b.caps.threads ? options.threads ?? defaultThreads() : 1;
  const bad = threadCountError(threads);
  if (bad) fail(`compileKernel: ${bad}`);
  let schedule: Schedule;
  let tuned: TuneResult | undefined;
  if ('tune' in options) {
    tuned = await tune(problem, { ...options.tune, target: b, threads: options.tune.threads ?? threads });
    if (!tuned.verified) fail(`compileKernel: tune found no kernel of ${problem.spec} that passed verification`);
    schedule = tuned.best;
  } else {
    schedule = typeof options.schedule === 'string' ? Schedule.parse(problem, options.schedule) : options.schedule;
    if (schedule.problem.spec !== problem.spec) fail(`compileKernel: the schedule is of ${schedule.problem.spec}, not ${problem.spec}`);
    const why = b.validate?.(schedule);
    if (why) fail(`compileKernel: ${why}`);
  }
  const accumulate = options.accumulate ?? false;
  const kernel = !accumulate ? b.compile(schedule, { overwrite: true }) : tuned ? tuned.kernel : b.compile(schedule);
  // once in a measurement worker, on guarded buffers and the threads runs will use (tune's kernel
  // already was, unless it is recompiled to overwrite)
  if (!tuned || kernel !== tuned.kernel) {
    const device = await b.open({ threads });
    try {
      const v = await verifyKernel(kernel, schedule, device.run, { guard: true, threads });
      if (!v.verified) fail(`compileKernel: the kernel of ${schedule.text()} failed verification in a worker: ${v.error ?? 'mismatch'}`);
    } finally {
      await device.close();
    }
  }
  const native = new InProcessKernel(kernel);
  // an accumulating kernel that was asked to overwrite but could not: clear the output first
  const clear = !accumulate && ACCUMULATES[problem.combine] && !kernel.abi.overwrites;
  const identity = IDENTITY[problem.combine] ?? 0;
  return {
    problem, schedule, kernel, threads, ...(tuned ? { tuned } : {}),
    run(inputs, output, runOptions = {}) {
      if (inputs.length !== problem.inputs.length) throw new RangeError(`${problem.spec} takes ${problem.inputs.length} inputs, got ${inputs.length}`);
      if (clear) (output instanceof Float32Array ? output : output.array).fill(identity);
      native.call([output, ...inputs], runOptions.threads ?? threads);
    },
    dispose: () => native.dispose(),
  };
}
