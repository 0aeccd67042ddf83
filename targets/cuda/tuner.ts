/**
 * Tuning on the GPU (see CudaTuner). Every candidate is compiled to PTX, JIT-loaded and timed with
 * CUDA events on the same device buffers; failures are results, and a sticky CUDA error (the
 * context is lost) propagates so the caller can reset the device.
 */
import { Cudnn } from './cudnn.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { Cublas } from './cublas.ts';
import { CudaError, type DeviceInfo, type DevicePtr } from './driver.ts';
import { describeMapping } from '../../loopnest/gpu.ts';
import { CudaRunner, STICKY_ERRORS } from './runner.ts';
import { compileCuda, type CudaCompileOptions, type CudaKernel } from './target.ts';

/** A launch this long (50x a good 2048^3 sgemm) is timed once: searches meet many such kernels. */
export const SLOW_LAUNCH_SECONDS = 0.02;
/** Kernels whose parallelism cannot finish a launch in this time are not launched at all. */
export const MAX_LAUNCH_SECONDS = 1;

/**
 * A lower bound on one launch's time from parallelism alone: each thread retires at most one FMA
 * per clock, and all of them together at most the device's peak. A search meets schedules that
 * bind almost nothing (4 threads for a 4096^3 matmul: 320 s per launch, measured); this bound
 * rejects them before they occupy the GPU.
 */
export function launchFloorSeconds(k: CudaKernel, clockGHz: number, peakGflops: number): number {
  const threads = k.mapping.blocks * k.mapping.threads;
  const gflops = Math.min(peakGflops, threads * 2 * clockGHz);
  return k.flops / (gflops * 1e9);
}

export interface Candidate {
  schedule: string;
  gflops: number;
  bestMs: number;
  medianMs: number;
  registers: number;
  localBytes: number;
  jitMs: number;
  occupancy: number;
  launch: CudaKernel['launch'];
  mapping: string;
}

/**
 * The GPU timer: compiles, JIT-loads and times schedules on the device, and holds cuBLAS. The
 * environment measures through it (targets/cuda/device.ts); the searches themselves are agent/search's.
 */
export class CudaTuner {
  readonly gpu: CudaRunner;
  private cublasLib: Cublas | null | undefined;
  private cudnnLib: Cudnn | null | undefined;
  private info: DeviceInfo | undefined;

  constructor() {
    this.gpu = new CudaRunner(0);
  }

  cublas(): Cublas | null {
    if (this.cublasLib === undefined) {
      try {
        this.cublasLib = new Cublas();
      } catch (e) {
        process.stderr.write(`[cuda] cuBLAS unavailable: ${(e as Error).message}\n`);
        this.cublasLib = null;
      }
    }
    return this.cublasLib;
  }

  /** cuDNN, loaded on first use (null where the machine has no libcudnn). */
  cudnn(): Cudnn | null {
    if (this.cudnnLib === undefined) {
      try {
        this.cudnnLib = new Cudnn();
      } catch (e) {
        process.stderr.write(`[cuda] cuDNN unavailable: ${(e as Error).message}\n`);
        this.cudnnLib = null;
      }
    }
    return this.cudnnLib;
  }

  upload(data: Float32Array | Uint16Array): DevicePtr {
    const p = this.gpu.device.alloc(Math.ceil(data.byteLength / 4) * 4);
    this.gpu.device.upload(p, data);
    return p;
  }

  /** Compiles, loads and times one schedule on the given buffers; a reason instead on failure. */
  evaluate(s: Schedule, ptrs: DevicePtr[], minSeconds: number, opts: CudaCompileOptions = {}): Candidate | string {
    let k: CudaKernel;
    try {
      k = compileCuda(s, opts);
    } catch (e) {
      return `codegen: ${(e as Error).message}`;
    }
    return this.evaluateKernel(k, ptrs, minSeconds);
  }

  /** Loads and times a compiled kernel (then unloads it); a reason instead on failure. */
  evaluateKernel(k: CudaKernel, ptrs: DevicePtr[], minSeconds: number): Candidate | string {
    this.info ??= this.gpu.device.info();
    // fp32 peak from the spec sheet figures: 128 FMA lanes per multiprocessor
    const floor = launchFloorSeconds(k, this.info.clockMHz / 1000, this.info.multiprocessors * 128 * 2 * this.info.clockMHz / 1000);
    if (floor > MAX_LAUNCH_SECONDS) {
      return `not launched: with ${k.mapping.blocks * k.mapping.threads} threads one launch takes at least ${floor.toFixed(1)} s`;
    }
    try {
      const m = this.gpu.load(k);
      const t = this.gpu.time(k, ptrs, { minSeconds, minSamples: 3, slowSeconds: SLOW_LAUNCH_SECONDS });
      const threads = k.launch.block[0] * k.launch.block[1] * k.launch.block[2];
      const c: Candidate = {
        schedule: k.program.schedule, gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3,
        registers: m.registers, localBytes: m.localBytes, jitMs: m.jitMs, occupancy: this.gpu.device.occupancy(m, threads),
        launch: k.launch, mapping: describeMapping(k.mapping),
      };
      return c;
    } catch (e) {
      if (e instanceof CudaError && STICKY_ERRORS.has(e.code)) throw e;
      return `${(e as Error).message.split('\n')[0]}`;
    } finally {
      try {
        this.gpu.unload(k);
      } catch {
        // gone with a reset
      }
    }
  }
}

export { CONV_SEEDS, GEMM_SEEDS, seedsFor } from './seeds.ts';
