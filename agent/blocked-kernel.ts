/**
 * A conv or pool that runs as its blocked NCHWc twin (ir/layout.ts blockedVariant) on the layer's
 * NCHW tensors: what compileKernel's `layout: 'blocked'` kernels do around the twin's own kernel.
 *
 *   input     NCHW data --(compiled toBlocked, in-process)--> the twin's input storage, written
 *             inside its padding border (filled once), so a padded conv reads it with no staging
 *   weights   packed in JS (blockWeights / blockDepthwiseWeights): per run, or once by `pack`
 *   bias      the same array in both layouts
 *   residual  NCHW data --(compiled toBlocked)--> a blocked buffer
 *   output    the twin's output storage --(compiled fromBlocked)--> NCHW data
 *
 * A layer tensor given as its padded NCHW storage (what run accepts on the NCHW path) is staged
 * through a data buffer with one JS copy: the conversions read and write NCHW data. The
 * conversion kernels run on one thread (as tuneLayouts timed them), each verified once in a
 * measurement worker before it gets here.
 */
import { fail } from '../ir/errors.ts';
import { packBlockedWeights, residualTensor } from '../ir/layout.ts';
import { copyFromStorage, copyIntoStorage, isPadded } from '../ir/padding.ts';
import { dataShape, elementCount, type Problem, type Tensor } from '../ir/problem.ts';
import { isConvOp, layoutBlock } from '../ir/spec.ts';
import type { InProcessKernel, KernelTensor } from '../targets/runtime/in-process-kernel.ts';

/** The compiled conversions around a twin, in-process (ir/layout.ts blockedConversions). */
export interface ConversionKernels {
  readonly input: InProcessKernel;
  readonly residual?: InProcessKernel;
  readonly output: InProcessKernel;
}

/** What an operand of the layer is to the twin. */
type OperandRole = 'input' | 'weights' | 'residual' | 'same';

function arrayOf(t: KernelTensor): Float32Array {
  return t instanceof Float32Array ? t : t.array;
}

function dataLength(t: Tensor): number {
  return elementCount({ name: t.name, shape: dataShape(t) });
}

/**
 * One layer tensor on the NCHW side of a conversion: passed as it is when given as its data, or
 * for a padded tensor given as its storage, through a data buffer of its own.
 */
class NchwSide {
  readonly #tensor: Tensor;
  readonly #data: number;
  readonly #storage: number;
  #buffer: Float32Array | undefined;

  constructor(tensor: Tensor) {
    this.#tensor = tensor;
    this.#data = dataLength(tensor);
    this.#storage = isPadded(tensor) ? elementCount(tensor) : this.#data;
  }

  /** Whether `x` is the padded storage (true) or the data (false); fails on any other length. */
  check(x: KernelTensor, what: string): boolean {
    if (x.length === this.#data) return false;
    if (x.length === this.#storage) return true;
    const padded = this.#storage !== this.#data ? ` (its NCHW data) or ${this.#storage} (its padded NCHW storage)` : ' (NCHW)';
    fail(`${what}: ${this.#tensor.name} must have ${this.#data} elements${padded}, got ${x.length}`);
  }

  #own(): Float32Array {
    this.#buffer ??= new Float32Array(this.#data);
    return this.#buffer;
  }

  /** The data a conversion reads (`x` itself, or its interior copied out). */
  read(x: KernelTensor, staged: boolean): KernelTensor {
    if (!staged) return x;
    const buffer = this.#own();
    copyFromStorage(this.#tensor, arrayOf(x), buffer);
    return buffer;
  }

  /** Where a conversion writes `x`'s data (`x` itself, or a buffer that `finish` copies into its interior). */
  write(x: KernelTensor, staged: boolean): KernelTensor {
    return staged ? this.#own() : x;
  }

  finish(x: KernelTensor, staged: boolean): void {
    if (staged) copyIntoStorage(this.#tensor, this.#buffer!, arrayOf(x));
  }
}

export class BlockedTwin {
  /** 'nchw<B>c' */
  readonly layout: string;
  readonly #problem: Problem;
  readonly #kernels: ConversionKernels;
  readonly #roles: OperandRole[];
  readonly #sides: NchwSide[];
  /** the twin's input, output and residual storage, ours: the input's border is filled once here */
  readonly #input: Float32Array;
  readonly #output: Float32Array;
  readonly #residual: Float32Array | undefined;
  readonly #pack: (w: Float32Array) => Float32Array;

  constructor(problem: Problem, twin: Problem, kernels: ConversionKernels) {
    const B = layoutBlock(twin);
    if (B === null) fail(`BlockedTwin: ${twin.spec} is not in a blocked layout`);
    this.layout = `nchw${B}c`;
    this.#problem = problem;
    this.#kernels = kernels;
    const residual = residualTensor(problem);
    if ((residual !== null) !== (kernels.residual !== undefined)) fail(`BlockedTwin: ${problem.spec} needs a residual conversion exactly when it has a +residual`);
    // operand i of run is tensor i + 1: the input, a conv's weights, then the epilogue's tensors
    this.#roles = problem.tensors.slice(1).map((_, i) => (i === 0 ? 'input' : i === 1 && isConvOp(problem.op) ? 'weights' : i + 1 === residual ? 'residual' : 'same'));
    this.#sides = problem.tensors.map((t) => new NchwSide(t));
    const inputPad = twin.tensors[1]!.pad?.value ?? 0;
    this.#input = new Float32Array(elementCount(twin.tensors[1]!)).fill(inputPad);
    this.#output = new Float32Array(elementCount(twin.tensors[0]!));
    this.#residual = residual === null ? undefined : new Float32Array(elementCount(twin.tensors[residual]!));
    this.#pack = packerOf(problem, B);
  }

  /** The twin's output storage `run` hands to `runTwin` (a border, if any, stays zero). */
  get twinOutput(): Float32Array {
    return this.#output;
  }

  /**
   * Operand `operand` of the layer (its NCHW form) as the twin reads it, for `prepare`: the
   * weights packed into a new array; a bias as it is. Activations are converted on every run and
   * cannot be prepared.
   */
  pack(operand: number, x: KernelTensor): KernelTensor {
    const role = this.#roles[operand]!;
    const t = this.#problem.tensors[operand + 1]!;
    if (role === 'input' || role === 'residual') {
      const can = this.#roles.flatMap((r, i) => (r === 'weights' || r === 'same' ? [`${i} (${this.#problem.tensors[i + 1]!.name})`] : []));
      fail(`prepare: operand ${operand} (${t.name}) is an activation, converted to ${this.layout} on every run; prepare takes ${can.length > 0 ? can.join(' or ') : 'no operand of this layer'}`);
    }
    this.#sides[operand + 1]!.check(x, 'prepare');
    return role === 'weights' ? this.#pack(arrayOf(x)) : x;
  }

  /**
   * The layer on NCHW tensors: `inputs[i]` in the layer's form, or already in the twin's where
   * `prepared[i]` (a prepared operand); converts them into the twin's tensors, calls `runTwin`
   * (which writes `twinOutput`), converts its output back into `output`.
   */
  run(inputs: readonly KernelTensor[], prepared: readonly boolean[], output: KernelTensor, runTwin: (tensors: readonly KernelTensor[]) => void): void {
    // every length is checked before anything runs
    const outStaged = this.#sides[0]!.check(output, 'run');
    const staged = inputs.map((x, i) => (prepared[i] ? false : this.#sides[i + 1]!.check(x, 'run')));
    const tensors = inputs.map((x, i): KernelTensor => {
      if (prepared[i]) return x;
      switch (this.#roles[i]!) {
        case 'input':
          this.#kernels.input.call([this.#input, this.#sides[i + 1]!.read(x, staged[i]!)]);
          return this.#input;
        case 'residual':
          this.#kernels.residual!.call([this.#residual!, this.#sides[i + 1]!.read(x, staged[i]!)]);
          return this.#residual!;
        case 'weights':
          // once per run: what `prepare` saves
          return this.#pack(arrayOf(this.#sides[i + 1]!.read(x, staged[i]!)));
        case 'same':
          return this.#sides[i + 1]!.read(x, staged[i]!);
      }
    });
    runTwin(tensors);
    const side = this.#sides[0]!;
    this.#kernels.output.call([side.write(output, outStaged), this.#output]);
    side.finish(output, outStaged);
  }

  dispose(): void {
    this.#kernels.input.dispose();
    this.#kernels.residual?.dispose();
    this.#kernels.output.dispose();
  }
}

/** The JS packer of a conv's weights W[K, C/G, <window>] into the twin's; pools have no weights. */
function packerOf(problem: Problem, B: number): (w: Float32Array) => Float32Array {
  return isConvOp(problem.op) ? (w) => packBlockedWeights(problem, B, w) : (w) => w;
}
