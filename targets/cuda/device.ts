/**
 * The cuda device: the first GPU through the CUDA driver API (loaded on open: koffi and libcuda are
 * needed only here).
 *
 *  - time: a kernel is JIT-loaded and timed with CUDA events on device buffers of its problem's
 *    tensors (random values, allocated once per problem, the last few problems kept); a kernel
 *    fault (illegal address, launch failure) resets the context, drops the buffers and becomes a
 *    failed timing, so a search goes on;
 *  - peak: the GPU's FMA peak kernel (peak.ts), measured once;
 *  - baseline: the GPU's vendor libraries on the same device and buffers: cuBLAS sgemm for matmul
 *    (cublasGemmEx at the same precision for bf16/f16/tf32), cuDNN's fastest FMA-math forward
 *    algorithm for conv2d;
 *  - host: the GPU's name and driver version (records are per GPU).
 */
import { convAttributes } from '../../ir/spec.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { randomArray } from '../../ir/interpret.ts';
import { elementCount, flops as problemFlops, type Problem } from '../../ir/problem.ts';
import type { Baseline, Device, DeviceOptions, PeakReading } from '../backend.ts';
import { gemmShape } from '../backend.ts';
import type { Kernel } from '../kernel.ts';
import { gpuHostKey } from '../runtime/host.ts';
import { baselineObstacle } from './baselines.ts';
import { timeGemmTyped, timeSgemm } from './cublas.ts';
import { CudaError, type DevicePtr } from './driver.ts';
import { measureGpuPeak } from './peak.ts';
import { STICKY_ERRORS } from './runner.ts';
import { deviceArray, isCudaKernel, storageOf } from './target.ts';
import { CudaTuner } from './tuner.ts';

/** Default minimum sampled GPU seconds per timing (a launch is often tens of microseconds). */
const DEFAULT_MIN_SECONDS = 0.05;

export interface CudaDeviceHandle extends Device {
  readonly tuner: CudaTuner;
}

/** Opens the GPU: one line (LoopTuneError) where there is no driver or device. */
export function openCudaDevice(options: DeviceOptions & { tuner?: CudaTuner } = {}): CudaDeviceHandle {
  let tuner: CudaTuner;
  try {
    tuner = options.tuner ?? new CudaTuner();
  } catch (e) {
    throw new LoopTuneError(`cuda: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  const info = tuner.gpu.device.info();
  const buffers = new Map<string, DevicePtr[]>();
  const buffersOf = (p: Problem): DevicePtr[] => {
    let ptrs = buffers.get(p.spec);
    if (ptrs) return ptrs;
    // keep the last few problems' buffers only: a dataset sweep must not fill the GPU
    if (buffers.size >= 4) {
      const [oldest, old] = buffers.entries().next().value as [string, DevicePtr[]];
      tuner.gpu.freeAll(old);
      buffers.delete(oldest);
    }
    // a typed problem's inputs live on the device as the type's bit patterns
    const storage = storageOf(p);
    ptrs = p.tensors.map((t, i) => tuner.upload(deviceArray(storage[i]!, randomArray(elementCount(t), 31 + i))));
    buffers.set(p.spec, ptrs);
    return ptrs;
  };
  let peak: PeakReading | undefined;
  const coverage = (p: Problem): string | undefined => {
    if (!gemmShape(p) && p.op !== 'conv2d') return `the GPU's vendor libraries cover matmul (cuBLAS) and conv2d (cuDNN), not ${p.op}`;
    // refused rather than timed without them: the library would do less work than our kernel
    const fused = baselineObstacle(p);
    if (fused) return fused;
    if (gemmShape(p)) return undefined;
    if (p.dtype) return `the cuDNN comparison runs fp32 math only, not ${p.dtype}`;
    // the cuDNN binding sets neither a group count nor dilations yet
    const a = convAttributes(p);
    return a.groups === 1 && a.dilation.every((d) => d === 1) ? undefined : 'the cuDNN comparison covers ungrouped, undilated conv2d only';
  };
  const baseline: Baseline = {
    family: 'cuBLAS',
    coverage,
    async time(p, opts = {}) {
      const why = coverage(p);
      if (why) return { ok: false, error: why };
      const minSeconds = opts.minSeconds ?? 0.1;
      const shape = gemmShape(p);
      if (shape) {
        const blas = tuner.cublas();
        if (!blas) return { ok: false, error: 'cuBLAS (libcublas.so) was not found' };
        // typed problems: cublasGemmEx at the same precision
        const t = p.dtype
          ? timeGemmTyped(tuner.gpu, blas, p.dtype, shape.m, shape.n, shape.k, { minSeconds })
          : timeSgemm(tuner.gpu, blas, shape.m, shape.n, shape.k, { minSeconds });
        return { ok: true, library: blas.name, gflops: t.gflops, bestSeconds: t.bestSeconds, medianSeconds: t.medianSeconds };
      }
      const dnn = tuner.cudnn();
      if (!dnn) return { ok: false, error: 'cuDNN (libcudnn.so) was not found' };
      // y += conv(x, w) on the problem's own buffers, like our kernels
      const conv = dnn.conv2d(p, tuner.gpu.device, buffersOf(p));
      try {
        const t = tuner.gpu.timeLaunches(() => conv.run(), problemFlops(p), { minSeconds });
        return { ok: true, library: dnn.name, gflops: t.gflops, bestSeconds: t.bestSeconds, medianSeconds: t.medianSeconds };
      } finally {
        conv.dispose();
      }
    },
  };
  return {
    tuner,
    native: true,
    host: gpuHostKey(info),
    run: (kernel, tensors, opts) => tuner.gpu.run(kernel, tensors, opts),
    async time(kernel: Kernel, request = {}) {
      if (!isCudaKernel(kernel)) return { ok: false, error: 'not a cuda kernel' };
      const minSeconds = request.minSeconds ?? options.minSeconds ?? DEFAULT_MIN_SECONDS;
      try {
        const c = tuner.evaluateKernel(kernel, buffersOf(kernel.program.problem), minSeconds);
        if (typeof c === 'string') return { ok: false, error: c };
        return { ok: true, gflops: c.gflops, bestSeconds: c.bestMs / 1e3, medianSeconds: c.medianMs / 1e3, reps: 1, samples: 1 };
      } catch (e) {
        if (e instanceof CudaError && STICKY_ERRORS.has(e.code)) {
          // the context is gone with every allocation: start over with fresh buffers
          buffers.clear();
          tuner.gpu.recover();
          return { ok: false, error: `kernel fault (context reset): ${e.message.split('\n')[0]}` };
        }
        return { ok: false, error: e instanceof Error ? e.message : String(e) };
      }
    },
    async peak() {
      peak ??= { gflops: measureGpuPeak(tuner.gpu).gflops, source: 'measured', method: 'the GPU FMA peak kernel (targets/cuda/peak.ts)' };
      return peak;
    },
    baseline,
    async close() {
      for (const ptrs of buffers.values()) {
        try {
          tuner.gpu.freeAll(ptrs);
        } catch {
          // a reset context took them already
        }
      }
      buffers.clear();
    },
  };
}
