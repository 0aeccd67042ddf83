/**
 * The cuda target: Schedule -> GpuProgram (loopnest/gpu.ts, every mapping decision) -> PTX
 * (ptx.ts, a printer). A Kernel's `text` is the PTX module and `code` its UTF-8 bytes (what
 * cuModuleLoadDataEx takes, plus a NUL); `launch` gives the entry name, grid and block dims. The
 * ABI passes one global pointer per tensor, output first; there is no repetition count (the runner
 * launches again).
 *
 * Bindings, staging and tiles are GPU notions the CPU's LoopProgram does not carry, so this target
 * compiles from the schedule (compileCuda, which its Backend uses), never from a
 * LoopProgram's text.
 */
import { fail } from '../../ir/errors.ts';
import { flops, type Problem } from '../../ir/problem.ts';
import { storageArray } from '../../ir/dtype.ts';
import type { Schedule } from '../../ir/schedule.ts';
import {
  describeMapping, lowerGpu, MAX_ACCUMULATORS, MAX_UNROLLED, type GpuLoweringOptions, type GpuMapping, type GpuProgram,
} from '../../loopnest/gpu.ts';
import type { LoopProgram } from '../../loopnest/program.ts';
import type { Kernel, Target, TargetCaps } from '../kernel.ts';
import { printPtx, type CudaLaunch, type PrintedPtx } from './ptx.ts';
import { printMmaPtx } from './mma-ptx.ts';
import { printWgmmaPtx } from './wgmma-ptx.ts';

/** How a kernel's tensor sits in device memory: fp32, or 16-bit patterns (a typed problem's inputs). */
export type CudaStorage = 'f32' | 'bf16' | 'f16';

export interface CudaKernel extends Kernel {
  launch: CudaLaunch;
  /** per ABI tensor: its storage; fp32 tensors (and so every tensor of an f32 problem) are uploaded as they are */
  storage: readonly CudaStorage[];
  mapping: GpuMapping;
  /** the plan the PTX prints */
  gpu: GpuProgram;
}

/** What a caller may choose about a kernel (the rest is the lowering's): the register cap; a tensor-core kernel's pipeline depth, and whether it overwrites its output instead of accumulating. */
export type CudaCompileOptions = Pick<GpuLoweringOptions, 'maxRegisters' | 'stages' | 'overwrite'>;

/** Kernels longer than this are lowered again with a smaller unroll budget (ptxas time grows fast with size). */
export const MAX_PTX_LINES = 16000;

export function isCudaKernel(k: Kernel): k is CudaKernel {
  return k.abi.kind === 'cuda' && (k as CudaKernel).launch !== undefined;
}

/** Caps for the shared lowering (used for the cost model; PTX comes from the GPU lowering). */
export function cudaCaps(): TargetCaps {
  return {
    vectorLanes: 1,
    vectorRegisters: MAX_ACCUMULATORS,
    scalarRegisters: MAX_ACCUMULATORS,
    hasMaskedTails: true,
    zeroRegisterForRelu: false,
    maskRegisterForTails: false,
    // fp32 FFMA: 4-cycle latency, 4 warp schedulers per SM
    fmaLatency: 4,
    fmaPorts: 4,
    unrollBudget: MAX_UNROLLED,
    // f32 temporaries per value of ptx.ts's epilogue (constants are immediates): the operand, exp's
    // argument, erf's argument, its square, numerator and denominator
    epilogueScratch: { bias: 1, residual: 1, scale: 0, relu: 0, clip: 0, sigmoid: 1, gelu: 4 },
  };
}

/** Lowers and prints; a kernel over MAX_PTX_LINES is lowered again with a quarter of the unroll budget. */
export function lowerAndPrint(schedule: Schedule, options: CudaCompileOptions = {}): { program: GpuProgram; printed: PrintedPtx } {
  let budget = MAX_UNROLLED;
  for (;;) {
    const program = lowerGpu(schedule, { ...options, maxUnrolled: budget });
    // a tensor-core plan: sm_90a wgmma when the schedule's atom is m64 nN k16, else mma.sync
    if (program.mma) return { program, printed: program.mma.wgmma ? printWgmmaPtx(program.mma.wgmma) : printMmaPtx(program.mma) };
    const printed = printPtx(program);
    const lines = printed.ptx.length / 28; // about 28 characters a line
    if (lines <= MAX_PTX_LINES || budget <= 1) return { program, printed };
    budget = Math.max(1, Math.floor(budget / 4));
  }
}

/** A LoopProgram stand-in for the Kernel contract: the tensors, and the GPU register tile as its decision. */
function scheduleProgram(s: Schedule, m: GpuMapping): LoopProgram {
  const p = s.problem;
  return {
    problem: p,
    schedule: s.text(),
    combine: p.combine,
    tensors: p.tensors.map((t) => ({ name: t.name, elements: t.shape.reduce((a, b) => a * b, 1) })),
    decision: {
      lanes: 1, vectorVar: null,
      unrollFrom: m.unrollFrom, tileFrom: m.tileFrom,
      accumulators: m.accumulators, unrolledOps: m.unrolledOps,
      zeroRegister: false, maskRegister: false,
    },
    body: [],
  };
}

const encoder = new TextEncoder();

/** The storage of each ABI tensor: a bf16/f16 problem's combine inputs are 16-bit, everything else fp32 (tf32 reads fp32). */
export function storageOf(p: Problem): CudaStorage[] {
  const t = p.dtype;
  const typed: CudaStorage = t === 'bf16' || t === 'f16' ? t : 'f32';
  return p.tensors.map((_, i) => (i >= 1 && i <= p.inputs.length ? typed : 'f32'));
}

/** A tensor as the kernel reads it (host values rounded into 16-bit patterns where its storage says so). */
export function deviceArray(storage: CudaStorage, values: Float32Array): Float32Array | Uint16Array {
  return storage === 'f32' ? values : storageArray(storage, values);
}

/** Schedule -> PTX kernel (what searches use, and the cuda Backend's compile). */
export function compileCuda(schedule: Schedule, options: CudaCompileOptions = {}): CudaKernel {
  const t0 = performance.now();
  const { program, printed } = lowerAndPrint(schedule, options);
  return cudaKernelOf(schedule, program, printed, t0);
}

/**
 * The Kernel of a printed program. `computes` is the schedule whose problem the kernel computes
 * and whose tensors it takes: the lowered schedule itself, or for an implicit-GEMM conv
 * (implicit-gemm-kernel.ts) a schedule of the conv, whose program is its matmul view's.
 */
export function cudaKernelOf(computes: Schedule, program: GpuProgram, printed: PrintedPtx, t0: number): CudaKernel {
  const overwrites = program.mma?.overwrite === true;
  // the program says so too: a farm worker compiles the job the same way (targets/farm)
  const stand = { ...scheduleProgram(computes, program.mapping), ...(overwrites ? { overwrites: true } : {}) };
  return {
    target: 'cuda',
    code: encoder.encode(printed.ptx),
    text: printed.ptx,
    // a tensor-core kernel asked to overwrite (O = A·B) says so, as the Backend contract asks
    abi: { kind: 'cuda', tensors: stand.tensors, ...(overwrites ? { overwrites: true } : {}) },
    flops: flops(computes.problem),
    program: stand,
    codegenMicros: (performance.now() - t0) * 1000,
    launch: printed.launch,
    storage: storageOf(computes.problem),
    mapping: program.mapping,
    gpu: program,
  };
}

export function cudaTarget(): Target {
  return {
    name: 'cuda',
    caps: cudaCaps(),
    compile(): Kernel {
      return fail('cuda: a LoopProgram does not carry the GPU mapping; compile the schedule (backend(\'cuda\').compile)');
    },
    disassemble(kernel: Kernel): string {
      const k = kernel as CudaKernel;
      const head = k.mapping ? `// mapping: ${describeMapping(k.mapping)}\n` : '';
      return head + (kernel.text ?? new TextDecoder().decode(kernel.code));
    },
  };
}
