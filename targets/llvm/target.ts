/**
 * The llvm-avx2 and llvm-avx512 targets: the same LoopProgram the direct x86 emitter gets (same
 * caps, so the same register tiles and unrolling), compiled through LLVM instead (see
 * pipeline.ts). The compile-time and run-time baseline of the direct generator.
 *
 * Always registered; when llvm-bindings or the LLVM tools are missing, `compile` throws one line
 * saying what to install (see `llvmAvailable`).
 */
import { fail } from '../../ir/errors.ts';
import { flops } from '../../ir/problem.ts';
import { hasParallelBand, type LoopProgram } from '../../loopnest/program.ts';
import type { Kernel, Target, TargetCaps } from '../kernel.ts';
import { disassembleX86 } from '../x86/disassemble.ts';
import { x86Caps } from '../x86/target.ts';
import { LLVM_EPILOGUE_SCRATCH } from './epilogue.ts';
import { compileWithLlvm, llvmUnavailableReason, type LlvmCompileResult, type LlvmIsa, type LlvmOptions } from './pipeline.ts';

/** what x86-64-v4 code may contain beyond the direct emitter's instructions */
const LLVM_MC_MATTR = '+avx2,+fma,+bmi2,+avx512f,+avx512vl,+avx512bw,+avx512dq,+avx512cd';

/** bytes of code at the start of each kernel's `code` (constants, when linked, follow) */
const codeSizes = new WeakMap<Uint8Array, number>();

export function llvmTargetName(isa: LlvmIsa): string {
  return `llvm-${isa}`;
}

/** Whether the LLVM targets can compile here: `{ ok: false, reason }` names what to install. */
export function llvmAvailable(options: Pick<LlvmOptions, 'tools'> = {}): { ok: true } | { ok: false; reason: string } {
  const reason = llvmUnavailableReason(options.tools);
  return reason === null ? { ok: true } : { ok: false, reason };
}

export interface LlvmTarget extends Target {
  /** compile with the pipeline's details: phase timings, whether constants were linked */
  compileDetailed(program: LoopProgram): { kernel: Kernel; result: LlvmCompileResult };
}

export function llvmTarget(isa: LlvmIsa, options: LlvmOptions = {}): LlvmTarget {
  const name = llvmTargetName(isa);
  const compileDetailed = (program: LoopProgram): { kernel: Kernel; result: LlvmCompileResult } => {
    const unavailable = llvmUnavailableReason(options.tools, options.toolTimeoutSeconds);
    if (unavailable) fail(`target ${name} is unavailable: ${unavailable}`);
    if (program.decision.lanes !== 1 && program.decision.lanes !== x86Caps(isa).vectorLanes) {
      throw new Error(`program was lowered for ${program.decision.lanes} lanes, not for ${name}`);
    }
    const result = compileWithLlvm(program, isa, options);
    codeSizes.set(result.code, result.codeSize);
    const kernel: Kernel = {
      target: name,
      code: result.code,
      abi: { kind: 'sysv-x86-64', tensors: program.tensors, ...(hasParallelBand(program) ? { parallel: true } : {}), ...(program.overwrites ? { overwrites: true } : {}) },
      flops: flops(program.problem),
      program,
      codegenMicros: result.phases.totalMs * 1000,
    };
    return { kernel, result };
  };
  return {
    name,
    // the direct emitter's caps, so both backends get the same LoopProgram, less packing (the IR
    // builder has no copy loops; the benchmark's schedules have no power-of-two rows to pack);
    // parallel bands the IR builder does print (ir.ts), so the `parallel` action is offered; and
    // every fused epilogue op (epilogue.ts)
    caps: { ...withoutPacking(x86Caps(isa)), threads: true, epilogueScratch: LLVM_EPILOGUE_SCRATCH },
    compile: (program) => compileDetailed(program).kernel,
    compileDetailed,
    disassemble(kernel: Kernel): string {
      const codeSize = codeSizes.get(kernel.code);
      return disassembleX86(kernel.code, { ...(codeSize === undefined ? {} : { codeSize }), mattr: LLVM_MC_MATTR });
    },
  };
}

function withoutPacking(caps: TargetCaps): TargetCaps {
  const { packing: _, ...rest } = caps;
  return rest;
}
