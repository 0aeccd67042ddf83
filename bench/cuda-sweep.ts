/**
 * The candidate sweep both tensor-core benchmarks run (bench/cuda-tc.ts, bench/cuda-conv.ts): every
 * kernel timed on one set of random device buffers (the first kernel's tensors: the candidates of
 * one problem share them), each module unloaded after its timing. A launch that fails is reported
 * and the sweep goes on; a sticky failure (the context is lost with every buffer) resets the
 * device and the buffers first.
 */
import { CudaError } from '../targets/cuda/driver.ts';
import { STICKY_ERRORS, type CudaRunner } from '../targets/cuda/runner.ts';
import type { Timing } from '../targets/runtime/timing.ts';
import type { CudaKernel } from '../targets/cuda/target.ts';

export function sweepKernels(
  gpu: CudaRunner, kernels: readonly CudaKernel[],
  onTimed: (k: CudaKernel, t: Timing) => void, onFailed: (k: CudaKernel, message: string, sticky: boolean) => void,
): void {
  if (kernels.length === 0) return;
  let ptrs = gpu.randomTensors(kernels[0]!, 5);
  try {
    for (const k of kernels) {
      try {
        onTimed(k, gpu.time(k, ptrs, { minSeconds: 0.02, minSamples: 3 }));
      } catch (e) {
        if (!(e instanceof CudaError)) throw e;
        const sticky = STICKY_ERRORS.has(e.code);
        onFailed(k, e.message.split('\n')[0]!, sticky);
        if (sticky) {
          gpu.recover();
          ptrs = gpu.randomTensors(kernels[0]!, 5);
          continue;
        }
      }
      try {
        gpu.unload(k);
      } catch {
        // its module went with a reset context
      }
    }
  } finally {
    gpu.freeAll(ptrs);
  }
}
