/**
 * Executing one measurement job in the current process. The worker calls this for every job
 * it receives; the in-process fast path calls the same code for known-safe kernels.
 */
import { NativeFloat32Buffer } from './buffers.ts';
import { ExecutableCode } from './executable-memory.ts';
import { runParallel } from './threads.ts';
import { checkGemm, loadOpenBlas } from './openblas.ts';
import type { Job, JobValues, OpenblasJob, RunJob, TimeJob } from './protocol.ts';
import { timeRepetitions, type Timing } from './timing.ts';

export function executeJob<J extends Job>(job: J): JobValues[J['kind']] {
  // The casts only re-attach the kind-to-value mapping that the switch establishes.
  switch (job.kind) {
    case 'run':
      return runJob(job) as JobValues[J['kind']];
    case 'time':
      return timeJob(job) as JobValues[J['kind']];
    case 'openblas':
      return openblasJob(job) as JobValues[J['kind']];
    case 'ping':
      return { pid: process.pid } as JobValues[J['kind']];
    default:
      throw new Error(`unknown job kind ${(job as { kind: unknown }).kind}`);
  }
}

function runJob(job: RunJob): JobValues['run'] {
  const buffers = job.tensors.map((t) => NativeFloat32Buffer.alloc(t.length, { guard: job.guard }));
  const code = new ExecutableCode(job.code, buffers.length);
  try {
    buffers.forEach((b, i) => b.array.set(job.tensors[i]!));
    runParallel(code, { pointers: buffers.map((b) => b.address), threads: job.threads, forks: 1, kernelReps: 1 });
    // slice(): copy out of native memory before it is freed.
    return { output: buffers[0]!.array.slice() };
  } finally {
    code.free();
    for (const b of buffers) b.free();
  }
}

function timeJob(job: TimeJob): Timing {
  return timeKernelCode(job.code, job.elements, job.flops, job);
}

export interface KernelTimingOptions {
  minSeconds: number;
  slowSeconds?: number;
  threads: number;
  forkPerRep: boolean;
}

/** Time machine code on fresh aligned buffers (inputs random, output zero). */
export function timeKernelCode(machineCode: Uint8Array, elements: number[], flops: number, options: KernelTimingOptions): Timing {
  const buffers = randomBuffers(elements, 1);
  const code = new ExecutableCode(machineCode, buffers.length);
  try {
    const pointers = buffers.map((b) => b.address);
    const { threads, forkPerRep, minSeconds, slowSeconds } = options;
    const fn = threads === 1
      ? (reps: number) => code.fn(...pointers, reps, 0, 1)
      : forkPerRep
        ? (reps: number) => runParallel(code, { pointers, threads, forks: reps, kernelReps: 1 })
        : (reps: number) => runParallel(code, { pointers, threads, forks: 1, kernelReps: reps });
    return timeRepetitions(fn, flops, { minSeconds, ...(slowSeconds !== undefined ? { slowSeconds } : {}) });
  } finally {
    code.free();
    for (const b of buffers) b.free();
  }
}

function openblasJob(job: OpenblasJob): JobValues['openblas'] {
  const { m, n, k } = job;
  const blas = loadOpenBlas();
  if (blas.threads !== job.threads) {
    throw new Error(`this worker's OpenBLAS runs on ${blas.threads} thread${blas.threads > 1 ? 's' : ''}, the job asks for ${job.threads} (give the pool openblasThreads: ${job.threads})`);
  }
  // Output first, like our kernels' ABI: C, A, B.
  const [c, a, b] = randomBuffers([m * n, m * k, k * n], 0);
  try {
    const c0 = c!.array.slice();
    blas.sgemm(m, n, k, a!.address, b!.address, c!.address);
    const check = checkGemm(m, n, k, a!.array, b!.array, c0, c!.array);
    if (!(check.maxRelativeError <= check.tolerance)) {
      throw new Error(
        `cblas_sgemm (${blas.corename}) disagrees with the float64 reference at ${m}x${n}x${k}: ` +
          `relative error ${check.maxRelativeError.toExponential(2)} > ${check.tolerance.toExponential(2)}`,
      );
    }
    const timing = timeRepetitions(
      (reps) => {
        for (let r = 0; r < reps; r++) blas.sgemm(m, n, k, a!.address, b!.address, c!.address);
      },
      2 * m * n * k,
      { minSeconds: job.minSeconds },
    );
    return { ...timing, corename: blas.corename, config: blas.config, check, threads: blas.threads };
  } finally {
    for (const buf of [a, b, c]) buf!.free();
  }
}

/**
 * Aligned buffers with reproducible values in [-1, 1); the first `zeroed` stay zero (outputs:
 * accumulating into zero keeps values bounded however many reps run).
 */
function randomBuffers(elements: number[], zeroed: number): NativeFloat32Buffer[] {
  let state = 0x9e3779b9;
  return elements.map((count, index) => {
    const buffer = NativeFloat32Buffer.alloc(count);
    if (index >= zeroed) {
      const array = buffer.array;
      for (let i = 0; i < count; i++) {
        // xorshift32: cheap, seeded, no dependence on Math.random.
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        array[i] = (state >>> 0) / 2 ** 31 - 1;
      }
    }
    return buffer;
  });
}
