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
 * keeps padded layouts between layers passes). An output with `outpad` likewise; where `run`
 * clears such an output, its border is written with its padding value (a memset of the storage
 * and the border refilled, instead of one fill per row: a border must hold that value anyway).
 *
 * Layouts (`layout`, convs and pools): 'nchw' (the default) runs the problem as given; 'blocked'
 * runs its NCHWc twin (ir/layout.ts blockedVariant, the block = the target's vector lanes: 16 on
 * avx512, 8 on avx2) and 'auto' whichever tuneLayouts measured faster with the conversions
 * charged. `k.layout` says which ('nchw', 'nchw16c', ...). A blocked kernel's `run` still takes the
 * layer's NCHW tensors (agent/blocked-kernel.ts): compiled conversions move the input (straight
 * into the twin's padded storage) and a residual to NCHWc and the output back, and the weights are
 * packed in JS on every run, unless
 *
 *   const w = k.prepare(1, weights);   // packed once; call prepare again when the weights change
 *   k.run([x, w, bias], y);            // x, bias, y in NCHW; w taken zero-copy
 *
 * `k.runBlocked(inputs, output)` takes the twin's tensors (`k.blockedProblem`) directly, zero-copy,
 * for a caller that keeps NCHWc between its layers (loadModel instead runs the twins as graph nodes:
 * ir/model/propagate-layout.ts). Blocked kernels do not accumulate.
 *
 * Safety: generated code runs in the caller's process only after it ran correctly once in a
 * measurement worker (a child process, where a crash is an error result): `tune` verifies its
 * winner there, and a given schedule (and every layout conversion) is verified there before
 * compileKernel returns. The code is mapped once; `run` is one native call (plus a libgomp
 * fork-join on several threads; plus the conversions, one thread each, for a blocked kernel).
 */
import { fail } from '../ir/errors.ts';
import { blockedVariant, conversionSchedules, whyNotBlocked } from '../ir/layout.ts';
import { copyFromStorage, copyIntoStorage, fillBorder, isPadded, padded } from '../ir/padding.ts';
import { ACCUMULATES, dataShape, elementCount, type Combine, type Problem, type Tensor } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';
import { layoutBlock, parseProblem } from '../ir/spec.ts';
import type { Backend } from '../targets/backend.ts';
import type { Kernel } from '../targets/kernel.ts';
import { backend as backendNamed, hostBackend } from '../targets/registry.ts';
import { InProcessKernel, type KernelTensor } from '../targets/runtime/in-process-kernel.ts';
import { defaultThreads, threadCountError } from '../targets/runtime/threads.ts';
import { verifyKernel } from '../targets/verify.ts';
import { BlockedTwin } from './blocked-kernel.ts';
// tuning (and with it TensorFlow.js, ~120 MB resident) is loaded only when a kernel is tuned here
import type { LayoutChoice } from './tune-layout.ts';
import type { TuneOptions, TuneResult } from './tune.ts';

/** The layouts compileKernel can be asked for (see the top of this file). */
export const KERNEL_LAYOUTS = ['nchw', 'blocked', 'auto'] as const;
export type KernelLayout = typeof KERNEL_LAYOUTS[number];

export interface CompileKernelOptionsBase {
  /** an x86 backend or its name (default: the host's best); kernels run in this process */
  target?: Backend | string;
  /** threads of each `run` (default: every core; kernels without a parallel band use one) */
  threads?: number;
  /** accumulating ops add into the output's contents (BLAS beta = 1) instead of overwriting it (layout 'nchw' only) */
  accumulate?: boolean;
  /**
   * 'nchw' (default): the problem as given; 'blocked': a conv's or pool's NCHWc twin, run on NCHW
   * tensors (a given `schedule` is then the twin's: `blockedVariant(problem, lanes)`); 'auto': the
   * faster of the two by tuneLayouts, conversions charged (needs `tune`; an op without a blocked
   * form stays NCHW)
   */
  layout?: KernelLayout;
}

export type CompileKernelOptions = CompileKernelOptionsBase & ({ schedule: string | Schedule } | { tune: TuneOptions });

export interface RunOptions {
  /** this call's threads instead of the kernel's */
  threads?: number;
}

/**
 * An operand held in the form the kernel reads (`CompiledKernel.prepare`): `run` and `runBlocked`
 * take it in that operand's place, zero-copy. It belongs to one kernel and one operand, and it is
 * a snapshot where the kernel packs or pads (a blocked kernel's weights): prepare again when the
 * values change.
 */
export class PreparedOperand {
  /** the operand's index in `run`'s list */
  readonly operand: number;
  readonly #owner: object;
  readonly #tensor: KernelTensor;

  constructor(owner: object, operand: number, tensor: KernelTensor) {
    this.#owner = owner;
    this.operand = operand;
    this.#tensor = tensor;
  }

  /** The tensor `h` holds, when it was prepared by `owner` for operand `operand`; fails in one line otherwise. */
  static open(h: PreparedOperand, owner: object, operand: number, what: string): KernelTensor {
    if (h.#owner !== owner) fail(`${what}: operand ${operand} was prepared by another kernel (prepare it with this one)`);
    if (h.operand !== operand) fail(`${what}: operand ${operand} is a prepared operand ${h.operand} (pass it in its own place)`);
    return h.#tensor;
  }
}

/** A tensor argument of run: the caller's memory, or an operand prepared by this kernel. */
export type KernelOperand = KernelTensor | PreparedOperand;

export interface CompiledKernel {
  /** the problem as given: run's tensors */
  readonly problem: Problem;
  /** the layout that runs: 'nchw' (the problem's own), or 'nchw<B>c' for the blocked twin */
  readonly layout: string;
  /** the blocked twin that runs (runBlocked's tensors), when `layout` is blocked */
  readonly blockedProblem?: Problem;
  /** the schedule that runs (of `blockedProblem` when blocked) */
  readonly schedule: Schedule;
  readonly kernel: Kernel;
  /** threads each run uses by default */
  readonly threads: number;
  /** what tune measured, when the schedule was tuned (the chosen layout's tuning) */
  readonly tuned?: TuneResult;
  /** both layouts' measurements, for layout 'auto' */
  readonly layoutChoice?: LayoutChoice;
  /**
   * output = the problem on `inputs` (its inputs, then the epilogue's bias/residual, in order);
   * every array as long as its tensor's data, or for a padded tensor, its padded storage; in NCHW
   * whatever the kernel's layout
   */
  run(inputs: readonly KernelOperand[], output: KernelTensor, options?: RunOptions): void;
  /**
   * Operand `operand` of run (0 = the first input) held as the kernel reads it: a blocked kernel's
   * weights packed (a bias as it is; activations are converted per run and cannot be prepared), a
   * padded tensor's data in its storage, anything else the array itself
   */
  prepare(operand: number, x: KernelTensor): PreparedOperand;
  /** A blocked kernel on the twin's own tensors (`blockedProblem`: NCHWc, weights packed), zero-copy */
  runBlocked(inputs: readonly KernelOperand[], output: KernelTensor, options?: RunOptions): void;
  dispose(): void;
}

/** The value accumulating combines start from (what the output holds before the first term). */
const IDENTITY: Partial<Record<Combine, number>> = { fma: 0, sum: 0, max: -Infinity };

/** The schedule that will run, of `problem` or of its blocked twin, and what chose it. */
interface Chosen {
  readonly schedule: Schedule;
  /** the schedule is of the blocked twin */
  readonly blocked: boolean;
  readonly tuned?: TuneResult;
  readonly layoutChoice?: LayoutChoice;
}

export async function compileKernel(spec: string | Problem, options: CompileKernelOptions): Promise<CompiledKernel> {
  const problem = typeof spec === 'string' ? parseProblem(spec) : spec;
  const b = options.target === undefined ? hostBackend() : typeof options.target === 'string' ? backendNamed(options.target) : options.target;
  if (b.timing !== 'native' || b.processor !== 'cpu') fail(`compileKernel: ${b.name} kernels cannot run in this process (an x86 target can)`);
  const threads = b.caps.threads ? options.threads ?? defaultThreads() : 1;
  const bad = threadCountError(threads);
  if (bad) fail(`compileKernel: ${bad}`);
  const layout = options.layout ?? 'nchw';
  if (!KERNEL_LAYOUTS.includes(layout)) fail(`compileKernel: layout must be ${KERNEL_LAYOUTS.map((l) => `'${l}'`).join(', ')}, got ${JSON.stringify(layout)}`);
  const accumulate = options.accumulate ?? false;
  if (accumulate && layout !== 'nchw') fail(`compileKernel: accumulate needs layout 'nchw' (a ${layout} kernel converts its output from NCHWc; it cannot add into it)`);
  const chosen = await chooseSchedule(problem, b, threads, layout, options);
  const { schedule, tuned, blocked } = chosen;
  const runs = schedule.problem;
  const kernel = !accumulate ? b.compile(schedule, { overwrite: true }) : tuned ? tuned.kernel : b.compile(schedule);
  const conversions = blocked ? conversionSchedules(problem, runs) : undefined;
  const compiled = (s: Schedule) => ({ schedule: s, kernel: b.compile(s, { overwrite: true }) });
  const conversionKernels = conversions
    ? { input: compiled(conversions.input), output: compiled(conversions.output), ...(conversions.residual ? { residual: compiled(conversions.residual) } : {}) }
    : undefined;
  // once in a measurement worker, on guarded buffers and the threads runs will use (tune's kernel
  // already was, unless it is recompiled to overwrite); the conversions run on one thread
  const toVerify = [
    ...(!tuned || kernel !== tuned.kernel ? [{ kernel, schedule, threads }] : []),
    ...Object.values(conversionKernels ?? {}).map((c) => ({ ...c, threads: 1 })),
  ];
  if (toVerify.length > 0) {
    const device = await b.open({ threads });
    try {
      for (const v of toVerify) {
        const r = await verifyKernel(v.kernel, v.schedule, device.run, { guard: true, threads: v.threads });
        if (!r.verified) fail(`compileKernel: the kernel of ${v.schedule.problem.spec} (${v.schedule.text()}) failed verification in a worker: ${r.error ?? 'mismatch'}`);
      }
    } finally {
      await device.close();
    }
  }
  const native = new InProcessKernel(kernel);
  // an accumulating kernel that was asked to overwrite but could not: clear the output first
  const clear = !accumulate && ACCUMULATES[runs.combine] && !kernel.abi.overwrites;
  const direct = new DirectRun(runs, native, clear ? IDENTITY[runs.combine] ?? 0 : undefined);
  const twin = conversionKernels
    ? new BlockedTwin(problem, runs, {
      input: new InProcessKernel(conversionKernels.input.kernel),
      output: new InProcessKernel(conversionKernels.output.kernel),
      ...(conversionKernels.residual ? { residual: new InProcessKernel(conversionKernels.residual.kernel) } : {}),
    })
    : undefined;
  const B = layoutBlock(runs);
  const layoutName = B === null ? 'nchw' : `nchw${B}c`;
  // prepared operands carry this, so a handle of another kernel is told apart
  const owner = {};
  const operands = problem.tensors.length - 1;
  /** `inputs` with this kernel's prepared operands opened (`prepared` says which ones were) */
  const prepared = new Array<boolean>(operands).fill(false);
  const resolve = (inputs: readonly KernelOperand[], of: Problem, what: string): KernelTensor[] => {
    if (inputs.length !== operands) fail(`${what}: ${of.spec} takes ${operands} tensors after the output (${of.tensors.slice(1).map((t) => t.name).join(', ')}), got ${inputs.length}`);
    const tensors: KernelTensor[] = [];
    for (let i = 0; i < operands; i++) {
      const x = inputs[i]!;
      prepared[i] = x instanceof PreparedOperand;
      tensors.push(x instanceof PreparedOperand ? PreparedOperand.open(x, owner, i, what) : x);
    }
    return tensors;
  };
  return {
    problem, layout: layoutName, schedule, kernel, threads,
    ...(blocked ? { blockedProblem: runs } : {}), ...(tuned ? { tuned } : {}), ...(chosen.layoutChoice ? { layoutChoice: chosen.layoutChoice } : {}),
    run(inputs, output, runOptions = {}) {
      const tensors = resolve(inputs, problem, 'run');
      const t = runOptions.threads ?? threads;
      if (!twin) direct.run(tensors, output, t);
      else twin.run(tensors, prepared, output, (twinTensors) => direct.run(twinTensors, twin.twinOutput, t));
    },
    prepare(operand, x) {
      if (!Number.isInteger(operand) || operand < 0 || operand >= operands) {
        fail(`prepare: operand must be 0..${operands - 1} (${problem.tensors.slice(1).map((t, i) => `${i} ${t.name}`).join(', ')}), got ${operand}`);
      }
      return new PreparedOperand(owner, operand, twin ? twin.pack(operand, x) : direct.prepare(operand, x));
    },
    runBlocked(inputs, output, runOptions = {}) {
      if (!twin) fail(`runBlocked: this kernel runs ${problem.spec} as given (${layoutName}), not a blocked twin: call run, or compile with layout 'blocked' (or 'auto' and check k.layout)`);
      direct.run(resolve(inputs, runs, 'runBlocked'), output, runOptions.threads ?? threads);
    },
    dispose: () => {
      native.dispose();
      twin?.dispose();
    },
  };
}

/** The backend's blocked twin of `problem` (block = its vector lanes); fails in one line where there is none. */
function twinOf(problem: Problem, b: Backend): Problem {
  const lanes = b.caps.vectorLanes;
  const why = whyNotBlocked(problem, lanes);
  if (why !== null) fail(`compileKernel: layout 'blocked' (block ${lanes}, ${b.name}'s vector lanes): ${why}`);
  return blockedVariant(problem, lanes)!;
}

/** Tunes `p` or reads the given schedule of it. */
async function tuneOrParse(p: Problem, b: Backend, threads: number, options: CompileKernelOptions): Promise<Omit<Chosen, 'blocked'>> {
  if ('tune' in options) {
    const { tune } = await import('./tune.ts');
    const tuned = await tune(p, { ...options.tune, target: b, threads: options.tune.threads ?? threads });
    if (!tuned.verified) fail(`compileKernel: tune found no kernel of ${p.spec} that passed verification`);
    return { schedule: tuned.best, tuned };
  }
  const schedule = typeof options.schedule === 'string' ? Schedule.parse(p, options.schedule) : options.schedule;
  if (schedule.problem.spec !== p.spec) fail(`compileKernel: the schedule is of ${schedule.problem.spec}, not ${p.spec}`);
  const why = b.validate?.(schedule);
  if (why) fail(`compileKernel: ${why}`);
  return { schedule };
}

async function chooseSchedule(problem: Problem, b: Backend, threads: number, layout: KernelLayout, options: CompileKernelOptions): Promise<Chosen> {
  if (layout === 'nchw') return { ...(await tuneOrParse(problem, b, threads, options)), blocked: false };
  if (layout === 'blocked') return { ...(await tuneOrParse(twinOf(problem, b), b, threads, options)), blocked: true };
  if (!('tune' in options)) fail(`compileKernel: layout 'auto' chooses by measurement: give { tune: {...} }, not a schedule`);
  const { tuneLayouts } = await import('./tune-layout.ts');
  const choice = await tuneLayouts(problem, { ...options.tune, target: b, threads: options.tune.threads ?? threads });
  const tuned = choice.layout !== 'nchw' ? choice.blocked! : choice.nchw;
  if (!tuned.verified) fail(`compileKernel: tune found no kernel of ${tuned.problem} that passed verification`);
  return { schedule: tuned.best, tuned, layoutChoice: choice, blocked: tuned === choice.blocked };
}

/**
 * The kernel called on its own problem's tensors: padded ones staged (PaddedStaging), the output
 * cleared to `clearTo` first where the kernel does not start from zero itself.
 */
class DirectRun {
  readonly #native: InProcessKernel;
  readonly #clearTo: number | undefined;
  readonly #staging: PaddedStaging[];

  constructor(problem: Problem, native: InProcessKernel, clearTo: number | undefined) {
    this.#native = native;
    this.#clearTo = clearTo;
    this.#staging = problem.tensors.map((t) => new PaddedStaging(t));
  }

  run(inputs: readonly KernelTensor[], output: KernelTensor, threads: number): void {
    const staging = this.#staging;
    const tensors: KernelTensor[] = [staging[0]!.output(output, this.#clearTo)];
    for (let i = 0; i < inputs.length; i++) tensors.push(staging[i + 1]!.input(inputs[i]!));
    this.#native.call(tensors, threads);
    staging[0]!.finish(output);
  }

  /** Operand `operand` as the kernel reads it, to keep: a padded tensor's data in new storage, else `x` itself. */
  prepare(operand: number, x: KernelTensor): KernelTensor {
    const s = this.#staging[operand + 1]!;
    return s.check(x) ? padded(s.tensor, arrayOf(x)) : x;
  }
}

/**
 * The interior of `storage` set to `value`, its border to the tensor's padding value: one memset
 * over the whole storage and the border refilled where its value differs, far faster than a fill
 * per row (a blocked tensor's rows are 16 floats).
 */
function clearStorage(t: Tensor, storage: Float32Array, value: number): void {
  storage.fill(value);
  if (isPadded(t) && (t.pad?.value ?? 0) !== value) fillBorder(t, storage, t.pad!.value);
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

  get tensor(): Tensor {
    return this.#tensor;
  }

  /** Whether `x` is the data of a padded tensor (staged: true) or the storage (false); fails on any other length. */
  check(x: KernelTensor): boolean {
    if (x.length === this.#storage) return false;
    if (this.#padded && x.length === this.#data) return true;
    const both = this.#padded ? ` (its data) or ${this.#storage} (its padded storage)` : '';
    fail(`${this.#tensor.name} must have ${this.#padded ? this.#data : this.#storage} elements${both}, got ${x.length}`);
  }

  #own(): Float32Array {
    this.#buffer ??= new Float32Array(this.#storage).fill(this.#tensor.pad?.value ?? 0);
    return this.#buffer;
  }

  input(x: KernelTensor): KernelTensor {
    if (!this.check(x)) return x;
    const buffer = this.#own();
    copyIntoStorage(this.#tensor, arrayOf(x), buffer);
    return buffer;
  }

  /** The buffer the kernel writes, its interior first filled with `clearTo` when given. */
  output(x: KernelTensor, clearTo: number | undefined): KernelTensor {
    this.#staged = this.check(x);
    if (this.#staged) {
      const buffer = this.#own();
      if (clearTo !== undefined) clearStorage(this.#tensor, buffer, clearTo);
      else copyIntoStorage(this.#tensor, arrayOf(x), buffer); // an accumulating run adds into the caller's values
      return buffer;
    }
    if (clearTo !== undefined) clearStorage(this.#tensor, arrayOf(x), clearTo);
    return x;
  }

  finish(x: KernelTensor): void {
    if (this.#staged) copyFromStorage(this.#tensor, this.#buffer!, arrayOf(x));
  }
}
