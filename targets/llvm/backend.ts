/** llvm-avx2 and llvm-avx512: the LLVM baseline printer, on the same x86 device as the direct emitter. */
import type { Schedule } from '../../ir/schedule.ts';
import { lower } from '../../loopnest/lower.ts';
import type { Backend } from '../backend.ts';
import { cpuBackend } from '../cpu-backend.ts';
import { x86Device } from '../x86/device.ts';
import { X86_NOMINAL_PEAK, X86_SKETCH_REGISTERS } from '../x86/backend.ts';
import { x86Caps } from '../x86/target.ts';
import { llvmIr } from './ir.ts';
import type { LlvmIsa } from './pipeline.ts';
import { llvmTarget } from './target.ts';

export function llvmBackend(isa: LlvmIsa): Backend {
  return cpuBackend({
    // compile throws one line naming what to install when LLVM is missing
    printer: llvmTarget(isa),
    nominalPeakGflops: X86_NOMINAL_PEAK[isa],
    timing: 'native',
    baselineFamily: 'OpenBLAS',
    sketchRegisters: X86_SKETCH_REGISTERS[isa],
    open: async (options) => x86Device(isa, X86_NOMINAL_PEAK[isa], options),
    // the IR of the nest as the direct emitter's lowering plans it
    moduleText: (s: Schedule) => llvmIr(lower(s, x86Caps(isa))),
  });
}
