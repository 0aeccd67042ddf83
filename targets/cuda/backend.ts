/**
 * The cuda backend: Schedule -> GpuProgram -> PTX (target.ts); the GPU mapping actions; nests up to
 * GPU_MAX_LOOPS loops; GPU sketches; a schedule without a feasible GPU kernel is refused by
 * `validate` before anything is timed. The device (driver bindings) loads on open only.
 */
import { GPU_MAX_LOOPS } from '../../ir/graph.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { CUDA_ACTIONS } from '../../ir/transforms.ts';
import { describeMapping } from '../../loopnest/gpu.ts';
import type { Backend, CompileOptions } from '../backend.ts';
import type { Kernel } from '../kernel.ts';
import { cudaSketches } from './sketches.ts';
import { compileCuda, cudaTarget, type CudaKernel } from './target.ts';

/** H200 fp32 FMA peak (FACTS.md: 132 SMs x 128 lanes x 2 flops x 1.98 GHz), the fallback figure. */
export const CUDA_NOMINAL_PEAK = 67000;

export function cudaBackend(): Backend {
  const printer = cudaTarget();
  // validate()'s answers: searches ask about every candidate, emitting PTX takes milliseconds
  const obstacles = new Map<string, string | null>();
  return {
    name: 'cuda',
    caps: printer.caps,
    actions: CUDA_ACTIONS,
    maxLoops: GPU_MAX_LOOPS,
    nominalPeakGflops: CUDA_NOMINAL_PEAK,
    timing: 'native',
    baselineFamily: 'cuBLAS',
    sketchRegisters: { lanes: 1, registers: printer.caps.vectorRegisters },
    sketches: cudaSketches,
    processor: 'gpu',
    // overwrite (output = result) is granted to tensor-core kernels; fp32 kernels accumulate
    compile: (schedule: Schedule, options?: CompileOptions) => compileCuda(schedule, options?.overwrite && schedule.problem.dtype !== undefined ? { overwrite: true } : {}),
    describe: (kernel: Kernel) => describeMapping((kernel as CudaKernel).mapping),
    disassemble: (kernel: Kernel) => printer.disassemble!(kernel),
    validate(s: Schedule): string | undefined {
      const key = `${s.problem.spec}|${s.hash()}`;
      if (obstacles.has(key)) return obstacles.get(key) ?? undefined;
      let why: string | undefined;
      try {
        compileCuda(s);
      } catch (e) {
        why = `no GPU kernel: ${e instanceof Error ? e.message : String(e)}`;
      }
      if (obstacles.size > 50000) obstacles.clear();
      obstacles.set(key, why ?? null);
      return why;
    },
    async open(options = {}) {
      const { openCudaDevice } = await import('./device.ts');
      return openCudaDevice(options);
    },
  };
}
