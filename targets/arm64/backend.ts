/** neon: the AArch64 emitter; kernels run (and verify) under qemu, their figures come from a predictor. */
import type { Backend } from '../backend.ts';
import { cpuBackend } from '../cpu-backend.ts';
import { emulatedArm64Device } from './device.ts';
import { arm64Target } from './target.ts';

/** fp32 peak of a Neoverse N1 / Cortex-A76 class core: 4 lanes x 2 flops x 2 pipes x 3.0 GHz. */
export const NEON_NOMINAL_PEAK = 48;

export function arm64Backend(): Backend {
  return cpuBackend({
    printer: arm64Target(),
    nominalPeakGflops: NEON_NOMINAL_PEAK,
    timing: 'emulated',
    sketchRegisters: { lanes: 4, registers: 28 },
    open: async () => emulatedArm64Device(),
  });
}
