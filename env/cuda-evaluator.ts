/**
 * Measurements on a CUDA GPU, behind the same record cache as the CPU targets: the environment,
 * every searcher and PPO tune cuda kernels through this Evaluator exactly as they tune x86 ones.
 *
 *  - measure: schedule -> PTX (targets/cuda, microseconds) -> driver JIT -> CUDA-event timing on
 *    device buffers of the problem's tensors (random values, allocated once per problem);
 *  - validate: a schedule the PTX generator rejects (no legal GPU mapping: too many threads, a
 *    register tile over the limit, ...) is answered without touching the GPU, so searches do not
 *    spend measurements on it (SearchContext skips it without charge);
 *  - the peak is the GPU's measured FMA peak (targets/cuda/peak.ts), so rewards are comparable
 *    with the CPU targets' "change in GFLOPS over peak";
 *  - a kernel fault (illegal address, launch failure) resets the context, re-uploads the buffers
 *    and becomes a failed measurement: a search goes on.
 *  - sketches: searches draw fresh schedules from the GPU template families (cudaSketches below).
 * Records carry the GPU's name and driver version as their host (gpuHostKey).
 */
import { LoopTuneError } from '../ir/errors.ts';
import { elementCount, type Problem } from '../ir/problem.ts';
import { randomArray } from '../ir/interpret.ts';
import type { Rng } from '../ir/random.ts';
import type { Schedule } from '../ir/schedule.ts';
import { randomCudaSchedule } from '../targets/cuda/fuzz.ts';
import { fitParams, randomTemplateSchedule, templateSchedule } from '../targets/cuda/templates.ts';
import { timeSgemm } from '../targets/cuda/cublas.ts';
import { CudaError, type DeviceInfo, type DevicePtr } from '../targets/cuda/driver.ts';
import { measureGpuPeak } from '../targets/cuda/peak.ts';
import { STICKY_ERRORS } from '../targets/cuda/runner.ts';
import { compileCuda, type CudaKernel } from '../targets/cuda/target.ts';
import { gpuHostKey } from '../targets/runtime/host.ts';
import { CudaTuner, seedsFor } from '../targets/cuda/tuner.ts';
import { CachingEvaluator, type Measurement, type SketchSource } from './evaluator.ts';
import { RecordStore } from './records.ts';

export interface CudaEvaluatorOptions {
  /** a shared store, a JSONL path, or null for memory only (default null). */
  records?: RecordStore | string | null;
  /** minimum sampled GPU seconds per measurement (default 0.02). */
  minSeconds?: number;
  /** skip the peak probe and use this figure. */
  peakGflops?: number;
  /** reuse a tuner (its device context); it is not closed by close(). */
  tuner?: CudaTuner;
  persistFailures?: boolean;
}

/** Why a schedule has no GPU kernel (undefined when it compiles). */
export function cudaObstacle(s: Schedule): string | undefined {
  try {
    compileCuda(s);
    return undefined;
  } catch (e) {
    return `no GPU kernel: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * GPU sketches, Ansor's GPU sketch: multi-level tiling with block, thread and register levels and a
 * staged reduction, as targets/cuda/templates.ts writes it. Seeds are the known-good template points
 * of the problem's family (shrunk to fit it; none for other ops); a sample is a random template
 * point, or a random annotated schedule where the op has no family. Nearly every fresh schedule is
 * a sketch: a random walk from the default mapping is usually thousands of times slower and costs
 * its full run time to measure.
 */
export const cudaSketches: SketchSource = {
  share: 0.95,
  seeds(problem: Problem, maxLoops: number): Schedule[] {
    const out: Schedule[] = [];
    for (const seed of seedsFor(problem)) {
      const params = fitParams(problem, seed);
      const s = params && templateSchedule(problem, params);
      if (s && s.loops.length <= maxLoops && !out.some((x) => x.hash() === s.hash())) out.push(s);
    }
    return out;
  },
  sample(problem: Problem, rng: Rng, maxLoops: number): Schedule | undefined {
    const t = randomTemplateSchedule(problem, rng, 20) ?? randomCudaSchedule(problem, rng, 0.7).schedule;
    return t.loops.length <= maxLoops ? t : undefined;
  },
};

export class CudaEvaluator extends CachingEvaluator {
  readonly sketches: SketchSource = cudaSketches;
  readonly tuner: CudaTuner;
  readonly device: DeviceInfo;
  readonly peakSource: 'measured' | 'given';
  readonly #buffers = new Map<string, DevicePtr[]>();
  /** validate()'s answers: searches ask about every candidate, emitting PTX takes milliseconds */
  readonly #obstacles = new Map<string, string | null>();

  private constructor(options: ConstructorParameters<typeof CachingEvaluator>[0], tuner: CudaTuner, device: DeviceInfo, peakSource: 'measured' | 'given') {
    super(options);
    this.tuner = tuner;
    this.device = device;
    this.peakSource = peakSource;
  }

  /** Opens the GPU (one line, LoopTuneError, where there is no driver or device) and probes its peak. */
  static create(options: CudaEvaluatorOptions = {}): CudaEvaluator {
    let tuner: CudaTuner;
    try {
      tuner = options.tuner ?? new CudaTuner();
    } catch (e) {
      throw new LoopTuneError(`cuda: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
    const device = tuner.gpu.device.info();
    const peakGflops = options.peakGflops ?? measureGpuPeak(tuner.gpu).gflops;
    const records = options.records instanceof RecordStore ? options.records : RecordStore.open(options.records ?? null);
    const minSeconds = options.minSeconds ?? 0.02;
    let self: CudaEvaluator | undefined;
    const measure = async (s: Schedule): Promise<Measurement> => self!.#measure(s, minSeconds);
    self = new CudaEvaluator({
      target: 'cuda', peakGflops, measure, records, host: gpuHostKey(device),
      ...(options.persistFailures !== undefined ? { persistFailures: options.persistFailures } : {}),
    }, tuner, device, options.peakGflops !== undefined ? 'given' : 'measured');
    return self;
  }

  validate(s: Schedule): string | undefined {
    const key = `${s.problem.spec}|${s.hash()}`;
    if (this.#obstacles.has(key)) return this.#obstacles.get(key) ?? undefined;
    const why = cudaObstacle(s);
    if (this.#obstacles.size > 50000) this.#obstacles.clear();
    this.#obstacles.set(key, why ?? null);
    return why;
  }

  /** Device buffers of a problem's tensors (random data, seeded by position), kept for the next schedules. */
  buffers(p: Problem): DevicePtr[] {
    let ptrs = this.#buffers.get(p.spec);
    if (ptrs) return ptrs;
    // keep the last few problems' buffers only: a dataset sweep must not fill the GPU
    if (this.#buffers.size >= 4) {
      const [oldest, old] = this.#buffers.entries().next().value as [string, DevicePtr[]];
      this.tuner.gpu.freeAll(old);
      this.#buffers.delete(oldest);
    }
    ptrs = p.tensors.map((t, i) => this.tuner.upload(randomArray(elementCount(t), 31 + i)));
    this.#buffers.set(p.spec, ptrs);
    return ptrs;
  }

  async #measure(s: Schedule, minSeconds: number): Promise<Measurement> {
    const t0 = performance.now();
    let kernel: CudaKernel;
    try {
      kernel = compileCuda(s);
    } catch (e) {
      return { gflops: 0, error: `code generation failed: ${e instanceof Error ? e.message : String(e)}`, codegenMicros: (performance.now() - t0) * 1000 };
    }
    const codegenMicros = kernel.codegenMicros;
    try {
      const c = this.tuner.evaluateKernel(kernel, this.buffers(s.problem), minSeconds);
      if (typeof c === 'string') return { gflops: 0, error: c, codegenMicros };
      return { gflops: c.gflops, bestSeconds: c.bestMs / 1e3, medianSeconds: c.medianMs / 1e3, codegenMicros };
    } catch (e) {
      if (e instanceof CudaError && STICKY_ERRORS.has(e.code)) {
        // the context is gone with every allocation: start over with fresh buffers
        this.#buffers.clear();
        this.tuner.gpu.recover();
        return { gflops: 0, error: `kernel fault (context reset): ${e.message.split('\n')[0]}`, codegenMicros };
      }
      throw e;
    }
  }

  /** cuBLAS sgemm on an m x n x k matmul, timed like our kernels (the GPU's BLAS baseline). */
  cublasSgemm(m: number, n: number, k: number): { gflops: number; version: string } {
    const blas = this.tuner.cublas();
    if (!blas) throw new LoopTuneError('cuBLAS (libcublas.so) was not found');
    return { gflops: timeSgemm(this.tuner.gpu, blas, m, n, k, { minSeconds: 0.1 }).gflops, version: `cuBLAS ${blas.version}` };
  }

  override async close(): Promise<void> {
    for (const ptrs of this.#buffers.values()) {
      try {
        this.tuner.gpu.freeAll(ptrs);
      } catch {
        // a reset context took them already
      }
    }
    this.#buffers.clear();
  }
}
