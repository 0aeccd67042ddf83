/**
 * The contract every code generator fulfils: a Target turns a LoopProgram into a Kernel.
 *
 * Kernel ABI (native targets): `void kernel(float *t0, float *t1, ..., float *tN, int64_t reps)`.
 * Pointers follow `abi.tensors` order: the output tensor first, then the inputs in the problem's
 * order. All pointers are 64-byte aligned. `reps` repeats the whole nest so that one native call
 * can time many runs (reps >= 1). Accumulating ops (fma, sum, max) add into the output's existing
 * contents (BLAS beta = 1); assigning ops (add, mul, relu, copy) overwrite it.
 * x86-64 uses the System V ABI (rdi, rsi, rdx, rcx, r8, r9); AArch64 uses AAPCS64 (x0..x7).
 */
import type { LoopProgram } from '../loopnest/program.ts';

export interface TargetCaps {
  /** fp32 lanes of one vector register (1 for a scalar-only target). */
  vectorLanes: number;
  /** vector registers of the ISA the tile may use (accumulators, operands, and the ones below). */
  vectorRegisters: number;
  /** registers available when the nest cannot be vectorized and runs one element per register. */
  scalarRegisters: number;
  /** relu keeps a zero vector in a register of its own */
  zeroRegisterForRelu: boolean;
  /** partial vectors need a lane-mask vector register (AVX2's vmaskmovps; AVX-512 uses opmasks) */
  maskRegisterForTails: boolean;
  /** whether partial vectors can be loaded/stored without touching memory past the tail. */
  hasMaskedTails: boolean;
  /** FMA latency in cycles and FMA pipes: at least latency x ports accumulators hide latency. */
  fmaLatency: number;
  fmaPorts: number;
  /** most vector operations the lowering may fully unroll into one micro-kernel body. */
  unrollBudget: number;
  /** when the emitter can pack an input's box into a dense buffer, the rule for doing it (loopnest/lower.ts). */
  packing?: PackingRule;
}

/** When the lowering packs (see decidePacking in loopnest/lower.ts). */
export interface PackingRule {
  /** pack only tensors with a row stride that is a multiple of this many elements (cache-set conflicts) */
  strideMultiple: number;
  /** largest box packed, elements (it should stay in L2) */
  maxElements: number;
  /** fewest reads of each packed element (uses of the box by loops that do not move it) */
  minReuse: number;
}

export interface TensorArg {
  name: string;
  /** number of fp32 elements the kernel may touch (the dense tensor size). */
  elements: number;
}

export interface KernelAbi {
  kind: 'sysv-x86-64' | 'aapcs64' | 'cuda';
  tensors: TensorArg[];
}

export interface Kernel {
  target: string;
  /** machine code (native targets) ... */
  code: Uint8Array;
  /** ... or module text (PTX, LLVM IR) for targets that are not raw bytes. */
  text?: string;
  abi: KernelAbi;
  /** floating-point operations of one repetition. */
  flops: number;
  program: LoopProgram;
  /** wall time spent turning the schedule into executable bytes, in microseconds. */
  codegenMicros: number;
}

export interface Target {
  name: string;
  caps: TargetCaps;
  compile(program: LoopProgram): Kernel;
  /** human-readable listing of the kernel (disassembly or module text). */
  disassemble?(kernel: Kernel): string;
}
