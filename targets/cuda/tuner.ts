/**
 * Tuning on the GPU (see CudaTuner). Every candidate is compiled to PTX, JIT-loaded and timed with
 * CUDA events on the same device buffers; failures are results, and a sticky CUDA error (the
 * context is lost) propagates so the caller can reset the device.
 */
import type { Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { Cublas } from './cublas.ts';
import { CudaError, type DeviceInfo, type DevicePtr } from './driver.ts';
import { describeMapping } from '../../loopnest/gpu.ts';
import { CudaRunner, STICKY_ERRORS } from './runner.ts';
import { compileCuda, type CudaCompileOptions, type CudaKernel } from './target.ts';
import {
  familyOf, type ConvParams, type GemmParams, type TemplateParams,
} from './templates.ts';

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
 * environment's CudaEvaluator measures through it; the searches themselves are agent/search's.
 */
export class CudaTuner {
  readonly gpu: CudaRunner;
  private cublasLib: Cublas | null | undefined;
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

  upload(data: Float32Array): DevicePtr {
    const p = this.gpu.device.alloc(data.byteLength);
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

// ------------------------------------------------------------------------------------- seeds

export const GEMM_SEEDS: GemmParams[] = [
  // the best of the last run on an H200 (2048 and 4096; 1024)
  { family: 'gemm', ty: 16, tx: 16, rmo: 1, rmi: 8, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 8, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, stage: true },
  // split reductions (more threads per output tile)
  { family: 'gemm', ty: 8, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, sk: 2, stage: true },
  { family: 'gemm', ty: 8, tx: 8, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 16, sk: 4, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, sk: 2, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 16, stage: true },
  { family: 'gemm', ty: 8, tx: 16, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 8, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 8, tx: 32, rmo: 2, rmi: 4, rno: 1, rni: 4, bk: 8, stage: true },
  // 64 x 64 block tiles, for sizes where 128 x 128 leaves multiprocessors idle
  { family: 'gemm', ty: 8, tx: 8, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 8, rmo: 1, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, stage: true },
];

export const CONV_SEEDS: ConvParams[] = [
  // the best of the last run on an H200 (conv2_x; conv3_1)
  { family: 'conv', tk: 16, th: 2, tw: 32, rk: 2, rh: 1, rw: 1, bc: 2, stage: true },
  { family: 'conv', tk: 4, th: 1, tw: 4, rk: 1, rh: 4, rw: 1, bc: 1, stage: false },
  // split reductions over input channels, for the deep layers' few outputs
  { family: 'conv', tk: 8, th: 2, tw: 4, rk: 2, rh: 2, rw: 2, bc: 16, sc: 4, stage: true },
  { family: 'conv', tk: 16, th: 1, tw: 4, rk: 2, rh: 1, rw: 2, bc: 32, sc: 8, stage: true },
  { family: 'conv', tk: 32, th: 1, tw: 2, rk: 2, rh: 1, rw: 1, bc: 16, sc: 4, stage: true },
  { family: 'conv', tk: 16, th: 2, tw: 8, rk: 2, rh: 1, rw: 1, bc: 8, sc: 2, stage: true },
  { family: 'conv', tk: 16, th: 1, tw: 8, rk: 4, rh: 1, rw: 1, bc: 32, sc: 4, stage: false },
  { family: 'conv', tk: 8, th: 2, tw: 8, rk: 4, rh: 1, rw: 2, bc: 8, stage: true },
  { family: 'conv', tk: 16, th: 2, tw: 4, rk: 4, rh: 2, rw: 2, bc: 8, stage: true },
  { family: 'conv', tk: 8, th: 4, tw: 8, rk: 2, rh: 1, rw: 2, bc: 8, stage: true },
  { family: 'conv', tk: 16, th: 1, tw: 8, rk: 4, rh: 2, rw: 2, bc: 16, stage: true },
  { family: 'conv', tk: 32, th: 1, tw: 4, rk: 2, rh: 1, rw: 2, bc: 16, stage: true },
  { family: 'conv', tk: 32, th: 2, tw: 2, rk: 4, rh: 1, rw: 1, bc: 8, stage: true },
  { family: 'conv', tk: 16, th: 2, tw: 8, rk: 4, rh: 2, rw: 4, bc: 8, stage: true },
  { family: 'conv', tk: 32, th: 2, tw: 2, rk: 2, rh: 2, rw: 2, bc: 32, stage: true },
];


/** The seed parameters of a problem's template family (none for problems without one). */
export function seedsFor(p: Problem): TemplateParams[] {
  const f = familyOf(p);
  return f === 'gemm' ? GEMM_SEEDS : f === 'conv' ? CONV_SEEDS : [];
}
