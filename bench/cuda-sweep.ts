/**
 * The candidate sweep both tensor-core benchmarks run (bench/cuda-tc.ts, bench/cuda-conv.ts): every
 * kernel timed on one set of random device buffers (the first kernel's tensors: the candidates of
 * one problem share them), each module unloaded after its timing. A launch that fails is reported
 * and the sweep goes on; a sticky failure (the context is lost with every buffer) resets the
 * device and the buffers first. modelRanking orders candidates for a cost-model screen.
 */
import { CudaError } from '../targets/cuda/driver.ts';
import { STICKY_ERRORS, type CudaRunner } from '../targets/cuda/runner.ts';
import type { Timing } from '../targets/runtime/timing.ts';
import type { CudaKernel } from '../targets/cuda/target.ts';
import type { CostModel } from '../agent/costmodel/model.ts';
import type { Schedule } from '../ir/schedule.ts';

/** The schedules in the cost model's order, predicted fastest first (schedules without a kernel last). */
export function modelRanking(model: CostModel, schedules: readonly Schedule[]): Schedule[] {
  const { score } = model.predict(schedules);
  return schedules.map((s, i) => ({ s, v: Number.isFinite(score[i]!) ? score[i]! : -Infinity })).sort((x, y) => y.v - x.v).map((x) => x.s);
}

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
