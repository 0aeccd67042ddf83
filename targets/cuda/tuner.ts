/**
 * Tuning on the GPU (see CudaTuner). Every candidate is compiled to PTX, JIT-loaded and timed with
 * CUDA events on the same device buffers; failures are results, and a sticky CUDA error (the
 * context is lost) propagates so the caller can reset the device.
 */
import type { Problem } from '../../ir/problem.ts';
import type { Rng } from '../../ir/random.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { Cublas } from './cublas.ts';
import { CudaError, type DevicePtr } from './driver.ts';
import { describeMapping } from './mapping.ts';
import type { EmitOptions } from './ptx.ts';
import { CudaRunner, STICKY_ERRORS } from './runner.ts';
import { compileCuda, type CudaKernel } from './target.ts';
import {
  familyOf, mutateParams, paramsKey, randomParams, templateSchedule, type ConvParams, type GemmParams, type TemplateParams,
} from './templates.ts';

export interface Candidate {
  schedule: string;
  params?: TemplateParams;
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

export interface CudaSearchResult {
  best: Candidate | null;
  evaluations: number;
  failures: number;
  seconds: number;
  history: { t: number; evaluations: number; bestGflops: number }[];
  failuresSample: string[];
}

/**
 * The GPU tuner: times schedules on the device and runs an evolution over the template parameters
 * of templates.ts (tile sizes, thread layout, register tile, reduction slice, staging), seeded with
 * known-good parameters. Used by `looptune search/tune --target cuda` and the device benchmark.
 */
export class CudaTuner {
  readonly gpu: CudaRunner;
  private cublasLib: Cublas | null | undefined;

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

  /** Compiles, loads and times one schedule on the given buffers; null (with a reason) on failure. */
  evaluate(s: Schedule, ptrs: DevicePtr[], minSeconds: number, opts: EmitOptions = {}, params?: TemplateParams): Candidate | string {
    let k: CudaKernel;
    try {
      k = compileCuda(s, opts);
    } catch (e) {
      return `codegen: ${(e as Error).message}`;
    }
    try {
      const m = this.gpu.load(k);
      const t = this.gpu.time(k, ptrs, { minSeconds, minSamples: 3 });
      const threads = k.launch.block[0] * k.launch.block[1] * k.launch.block[2];
      const c: Candidate = {
        schedule: s.text(), ...(params ? { params } : {}), gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3,
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

  /**
   * Evolution over template parameters: seeds + random members, then each round mutates one of
   * the best few; every distinct valid schedule is measured once.
   */
  search(p: Problem, ptrs: DevicePtr[], budget: number, seeds: TemplateParams[], rng: Rng, minSeconds = 0.02, minThreads = 0): CudaSearchResult {
    const t0 = performance.now();
    const seen = new Set<string>();
    const pop: Candidate[] = [];
    const res: CudaSearchResult = { best: null, evaluations: 0, failures: 0, seconds: 0, history: [], failuresSample: [] };
    const tryParams = (params: TemplateParams): void => {
      const key = paramsKey(params);
      if (seen.has(key)) return;
      seen.add(key);
      const s = templateSchedule(p, params);
      if (!s) return;
      res.evaluations++;
      const c = this.evaluate(s, ptrs, minSeconds, {}, params);
      if (typeof c === 'string') {
        res.failures++;
        if (res.failuresSample.length < 5) res.failuresSample.push(`${s.text()}: ${c}`);
        return;
      }
      pop.push(c);
      pop.sort((a, b) => b.gflops - a.gflops);
      if (!res.best || c.gflops > res.best.gflops) res.best = c;
      res.history.push({ t: (performance.now() - t0) / 1000, evaluations: res.evaluations, bestGflops: res.best.gflops });
    };
    for (const s of seeds) if (res.evaluations < budget) tryParams(s);
    let guard = 0;
    while (res.evaluations < Math.min(budget, seeds.length + 8) && guard++ < 500) {
      const r = randomParams(p, rng);
      if (r) tryParams(r);
    }
    guard = 0;
    while (res.evaluations < budget && guard++ < 20 * budget) {
      if (pop.length === 0) {
        const r = randomParams(p, rng);
        if (r) tryParams(r);
        continue;
      }
      const parent = pop[Math.min(pop.length - 1, Math.floor(rng.next() ** 2 * Math.min(6, pop.length)))]!;
      let child = mutateParams(parent.params!, rng);
      if (rng.next() < 0.4) child = mutateParams(child, rng);
      tryParams(child);
    }
    res.seconds = (performance.now() - t0) / 1000;
    return res;
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
