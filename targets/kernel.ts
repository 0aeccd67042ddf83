/**
 * The contract every CPU printer fulfils: a Target turns a LoopProgram into a Kernel (a Backend,
 * targets/backend.ts, wraps it with the lowering and a device).
 *
 * Kernel ABI (native targets): `void kernel(float *t0, ..., float *tN, int64_t reps, int64_t tid, int64_t threads)`.
 * Pointers follow `abi.tensors` order: the output tensor first, then the inputs in the problem's
 * order. All pointers are 64-byte aligned. `reps` repeats the whole nest so that one native call
 * can time many runs (reps >= 1). Accumulating ops (fma, sum, max) add into the output's existing
 * contents (BLAS beta = 1); assigning ops (add, mul, relu, copy) overwrite it.
 * x86-64 uses the System V ABI (rdi, rsi, rdx, rcx, r8, r9, then the stack); AArch64 uses AAPCS64
 * (x0..x7). A kernel with a parallel band (`abi.parallel`) runs only thread `tid`'s chunks of it
 * (loopnest/program.ts threadRange), so `threads` calls with tid = 0..threads-1, on as many threads
 * or one after another, compute the whole nest once; other kernels ignore tid and threads (and must
 * run on one thread: every call computes everything).
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
  /** the kernel splits a parallel band by (tid, threads) */
  parallel?: boolean;
  /** output = result: an accumulating op that overwrites its output (LowerOptions.overwrite) */
  overwrites?: boolean;
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
