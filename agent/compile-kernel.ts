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
 * with the op's identity before the call. A fused epilogue (+bias, +relu, ...) applies to the
 * finished value; its tensors (bias, residual) follow the inputs in `run`'s list.
 *
 * Padded layers: a padded tensor may be passed as its data (unpadded: `run` copies it into a
 * buffer of its own whose border it filled once: a copy in JavaScript that measured 0.6 ms beside
 * a 3.9 ms 3x3 layer and 1.7-2.4 ms beside a 0.23 ms depthwise one, `npm run bench -- layers
 * --cost-only`)
 * or as its padded storage (zero-copy, the border is the caller's: what a model executor that
 * keeps padded layouts between layers passes). An output with `outpad` likewise.
 *
 * Safety: generated code runs in the caller's process only after it ran correctly once in a
 * measurement worker (a child process, where a crash is an error result): `tune` verifies its
 * winner there, and a given schedule is verified there before compileKernel returns. The code is
 * mapped once; `run` is one native call (plus a libgomp fork-join on several threads).
 */
import { fail } from '../ir/errors.ts';
import { copyFromStorage, copyIntoStorage, fillInterior, isPadded } from '../ir/padding.ts';
import { ACCUMULATES, dataShape, elementCount, type Combine, type Problem, type Tensor } from '../ir/problem.ts';
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
  /**
   * output = the problem on `inputs` (its inputs, then the epilogue's bias/residual, in order);
   * every array as long as its tensor's data, or for a padded tensor, its padded storage
   */
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
  const staging = problem.tensors.map((t) => new PaddedStaging(t));
  const operands = problem.tensors.length - 1;
  return {
    problem, schedule, kernel, threads, ...(tuned ? { tuned } : {}),
    run(inputs, output, runOptions = {}) {
      if (inputs.length !== operands) throw new RangeError(`${problem.spec} takes ${operands} tensors after the output (${problem.tensors.slice(1).map((t) => t.name).join(', ')}), got ${inputs.length}`);
      const tensors: KernelTensor[] = [staging[0]!.output(output, clear ? identity : undefined)];
      for (let i = 0; i < operands; i++) tensors.push(staging[i + 1]!.input(inputs[i]!));
      native.call(tensors, runOptions.threads ?? threads);
      staging[0]!.finish(output);
    },
    dispose: () => native.dispose(),
  };
}

function arrayOf(t: KernelTensor): Float32Array {
  return t instanceof Float32Array ? t : t.array;
}

/**
 * One tensor's way into the kernel: its storage passed as it is, or for a padded tensor given as
 * its data, a buffer of its own (border filled once) that the data is copied into or out of.
 */
class PaddedStaging {
  readonly #tensor: Tensor;
  readonly #storage: number;
  readonly #data: number;
  readonly #padded: boolean;
  #buffer: Float32Array | undefined;
  #staged = false;

  constructor(tensor: Tensor) {
    this.#tensor = tensor;
    this.#storage = elementCount(tensor);
    this.#data = elementCount({ name: tensor.name, shape: dataShape(tensor) });
    this.#padded = isPadded(tensor);
  }

  #check(x: KernelTensor): boolean {
    if (x.length === this.#storage) return false;
    if (this.#padded && x.length === this.#data) return true;
    const padded = this.#padded ? ` (its data) or ${this.#storage} (its padded storage)` : '';
    throw new RangeError(`${this.#tensor.name} must have ${this.#padded ? this.#data : this.#storage} elements${padded}, got ${x.length}`);
  }

  #own(): Float32Array {
    this.#buffer ??= new Float32Array(this.#storage).fill(this.#tensor.pad?.value ?? 0);
    return this.#buffer;
  }

  input(x: KernelTensor): KernelTensor {
    if (!this.#check(x)) return x;
    const buffer = this.#own();
    copyIntoStorage(this.#tensor, arrayOf(x), buffer);
    return buffer;
  }

  /** The buffer the kernel writes, its interior first filled with `clearTo` when given. */
  output(x: KernelTensor, clearTo: number | undefined): KernelTensor {
    this.#staged = this.#check(x);
    if (this.#staged) {
      const buffer = this.#own();
      if (clearTo !== undefined) fillInterior(this.#tensor, buffer, clearTo);
      else copyIntoStorage(this.#tensor, arrayOf(x), buffer); // an accumulating run adds into the caller's values
      return buffer;
    }
    if (clearTo !== undefined) {
      if (this.#padded) fillInterior(this.#tensor, arrayOf(x), clearTo);
      else arrayOf(x).fill(clearTo);
    }
    return x;
  }

  finish(x: KernelTensor): void {
    if (this.#staged) copyFromStorage(this.#tensor, this.#buffer!, arrayOf(x));
  }
}
