/** The neon target (AArch64 Advanced SIMD): caps for the lowering, and compile = emit machine code. */
import { flops } from '../../ir/problem.ts';
import type { LoopProgram } from '../../loopnest/program.ts';
import type { Kernel, Target, TargetCaps } from '../kernel.ts';
import { disassembleArm64 } from './disassemble.ts';
import { emitArm64, NEON_REGISTER_POOL } from './emit.ts';
import { NEON_EPILOGUE_SCRATCH } from './epilogue.ts';

export function arm64Caps(): TargetCaps {
  return {
    vectorLanes: 4,
    // all 32 v registers: relu's zero register comes out of the 2 operand registers the lowering
    // leaves (relu has one input), and v8-v15 are saved by the kernel when it uses them
    vectorRegisters: NEON_REGISTER_POOL.vector,
    scalarRegisters: NEON_REGISTER_POOL.scalar,
    // NEON has no masked loads; tails are single-lane / 64-bit loads (see emit.ts)
    hasMaskedTails: false,
    zeroRegisterForRelu: false,
    maskRegisterForTails: false,
    // Cortex-A76 / Neoverse N1-V1: 4-cycle FMA, 2 FP/ASIMD pipes, so >= 8 accumulators
    fmaLatency: 4,
    fmaPorts: 2,
    unrollBudget: 512,
    // fused epilogues (epilogue.ts): registers per op beyond the accumulator, constants included
    epilogueScratch: { ...NEON_EPILOGUE_SCRATCH },
  };
}

export function arm64Target(): Target {
  return {
    name: 'neon',
    caps: arm64Caps(),
    compile(program: LoopProgram): Kernel {
      const t0 = performance.now();
      const code = emitArm64(program);
      return {
        target: 'neon',
        code,
        abi: { kind: 'aapcs64', tensors: program.tensors },
        flops: flops(program.problem),
        program,
        codegenMicros: (performance.now() - t0) * 1000,
      };
    },
    disassemble(kernel: Kernel): string {
      return disassembleArm64(kernel.code);
    },
  };
}
