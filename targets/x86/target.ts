/** The avx2 and avx512 targets: caps for the lowering, and compile = emit machine code. */
import { hasParallelBand, type LoopProgram } from '../../loopnest/program.ts';
import type { Kernel, Target, TargetCaps } from '../kernel.ts';
import { flops } from '../../ir/problem.ts';
import { X86_EPILOGUE_SCRATCH, emitX86, type X86Isa } from './emit.ts';
import { disassembleX86 } from './disassemble.ts';

/** Where each compiled kernel's constant pool starts (its code bytes are the key: a Kernel has no field for it). */
const codeSizes = new WeakMap<Uint8Array, number>();

export function x86Caps(isa: X86Isa): TargetCaps {
  return {
    vectorLanes: isa === 'avx512' ? 16 : 8,
    vectorRegisters: isa === 'avx512' ? 32 : 16,
    scalarRegisters: 16,
    zeroRegisterForRelu: true,
    maskRegisterForTails: isa === 'avx2',
    hasMaskedTails: true,
    // Zen 4/5 and recent Intel: 4-cycle FMA on 2 pipes, so >= 8 independent accumulators
    fmaLatency: 4,
    fmaPorts: 2,
    unrollBudget: 512,
    threads: true,
    zeroInitTiles: true,
    // stride-2 inputs (strided convolutions) load as vectors: two loads and a permute (emit.ts loadStrided);
    // AVX-512's vpermt2ps keeps its index vector in a register of its own
    vectorStrides: [1, 2],
    indexRegisterForStrides: isa === 'avx512',
    // every epilogue op, with the scratch registers emit.ts uses for it (constants are memory operands)
    epilogueScratch: { ...X86_EPILOGUE_SCRATCH },
    // rows 4 KB apart share L1/L2 sets: pack such boxes of up to 192 KB read at least 8 times
    packing: { strideMultiple: 1024, maxElements: 48 * 1024, minReuse: 8 },
  };
}

export function x86Target(isa: X86Isa): Target {
  return {
    name: isa,
    caps: x86Caps(isa),
    compile(program: LoopProgram): Kernel {
      const t0 = performance.now();
      const { code, codeSize } = emitX86(program, isa);
      codeSizes.set(code, codeSize);
      return {
        target: isa,
        code,
        abi: { kind: 'sysv-x86-64', tensors: program.tensors, ...(hasParallelBand(program) ? { parallel: true } : {}), ...(program.overwrites ? { overwrites: true } : {}) },
        flops: flops(program.problem),
        program,
        codegenMicros: (performance.now() - t0) * 1000,
      };
    },
    disassemble(kernel: Kernel): string {
      const codeSize = codeSizes.get(kernel.code) ?? reEmittedCodeSize(kernel, isa);
      return disassembleX86(kernel.code, codeSize === undefined ? {} : { codeSize });
    },
  };
}

/**
 * The code size of a kernel whose bytes came from elsewhere (a copy: a worker, a cache), found by
 * emitting its program again; undefined when that does not give the same bytes (other code, e.g.
 * patched by hand), which is then decoded whole.
 */
function reEmittedCodeSize(kernel: Kernel, isa: X86Isa): number | undefined {
  let again;
  try {
    again = emitX86(kernel.program, isa);
  } catch {
    return undefined;
  }
  const same = again.code.length === kernel.code.length && again.code.every((b, i) => b === kernel.code[i]);
  return same ? again.codeSize : undefined;
}
