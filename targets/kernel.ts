/**
 * The contract every CPU printer fulfils: a Target turns a LoopProgram into a Kernel (a Backend,
 * targets/backend.ts, wraps it with the lowering and a device).
 *
 * Kernel ABI (native targets): `void kernel(float *t0, float *t1, ..., float *tN, int64_t reps)`.
 * Pointers follow `abi.tensors` order: the output tensor first, then the inputs in the problem's
 * order. All pointers are 64-byte aligned. `reps` repeats the whole nest so that one native call
 * can time many runs (reps >= 1). Accumulating ops (fma, sum, max) add into the output's existing
 * contents (BLAS beta = 1); assigning ops (add, mul, relu, copy) overwrite it.
 * x86-64 uses the System V ABI (rdi, rsi, rdx, rcx, r8, r9); AArch64 uses AAPCS64 (x0..x7).
 */
import type { LoopProgram } from '../loopnest/program.ts';
import type { TargetCaps } from '../loopnest/caps.ts';

/** The caps are declared by the lowering that asks them (loopnest/caps.ts); re-exported for the targets. */
export type { PackingRule, TargetCaps } from '../loopnest/caps.ts';

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
