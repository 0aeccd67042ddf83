/** The avx2 and avx512 backends: the direct x86 emitter, kernels timed in measurement workers. */
import type { Backend } from '../backend.ts';
import { cpuBackend } from '../cpu-backend.ts';
import type { HostTarget } from '../runtime/host.ts';
import { x86Device } from './device.ts';
import { x86Target } from './target.ts';

/** Single-core fp32 peaks of the x86 ISAs (FACTS.md: Zen 5): the fallback when the probe fails. */
export const X86_NOMINAL_PEAK: Readonly<Record<HostTarget, number>> = Object.freeze({ avx512: 230, avx2: 115 });

/** Lanes and accumulator registers the CPU sketches tile for (16 zmm less operands; 16 ymm less two). */
export const X86_SKETCH_REGISTERS = Object.freeze({ avx512: { lanes: 16, registers: 31 }, avx2: { lanes: 8, registers: 14 } });

export function x86Backend(isa: HostTarget): Backend {
  return cpuBackend({
    printer: x86Target(isa),
    nominalPeakGflops: X86_NOMINAL_PEAK[isa],
    timing: 'native',
    baselineFamily: 'OpenBLAS',
    sketchRegisters: X86_SKETCH_REGISTERS[isa],
    open: async (options) => x86Device(isa, X86_NOMINAL_PEAK[isa], options),
  });
}
