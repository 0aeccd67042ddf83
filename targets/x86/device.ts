/**
 * The x86 device: kernels (the direct emitter's and the LLVM path's) run in measurement worker
 * processes (crash- and hang-safe), parallel ones on the device's threads (libgomp, see
 * targets/runtime/threads.ts); the peak is the FMA probe of targets/runtime/peak.ts on as many
 * threads; the baseline is OpenBLAS cblas_sgemm on as many threads, in the same workers.
 */
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import type { Baseline, Device, DeviceOptions, PeakReading } from '../backend.ts';
import { gemmShape } from '../backend.ts';
import { hostIsaError, hostKey, threadedHostKey, type HostTarget } from '../runtime/host.ts';
import { MeasurementPool } from '../runtime/measure.ts';
import { peakRecord } from '../runtime/peak.ts';
import { workerRunner } from '../native-runner.ts';
import { threadCountError } from '../runtime/threads.ts';

/** 'OpenBLAS 0.3.21 (Cooperlake)' from openblas_get_config's 'OpenBLAS 0.3.21 DYNAMIC_ARCH ...' and the core name. */
export function openblasLibraryName(config: string, corename: string): string {
  const version = /^OpenBLAS\s+\S+/.exec(config)?.[0] ?? 'OpenBLAS';
  return `${version} (${corename})`;
}

/** OpenBLAS on the threads of the pool's workers (PoolOptions.openblasThreads); `pool` is asked for on first use. */
export function openblasBaseline(pool: () => Pick<MeasurementPool, 'openblasSgemm'>): Baseline {
  return {
    family: 'OpenBLAS',
    coverage: (p: Problem) => (gemmShape(p) ? undefined : `OpenBLAS comparison covers matmul only, not ${p.op}`),
    async time(p, options = {}) {
      const shape = gemmShape(p);
      if (!shape) return { ok: false, error: `OpenBLAS comparison covers matmul only, not ${p.op}` };
      const r = await pool().openblasSgemm(shape.m, shape.n, shape.k, options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {});
      if (!r.ok) return { ok: false, error: r.error };
      return { ok: true, library: openblasLibraryName(r.config, r.corename), gflops: r.gflops, bestSeconds: r.bestSeconds, medianSeconds: r.medianSeconds, threads: r.threads };
    },
  };
}

export interface X86DeviceOptions extends DeviceOptions {
  /** reuse a pool (it is then not closed by close()) */
  pool?: MeasurementPool;
  /** pin OpenBLAS to a kernel set (benchmarks: 'Haswell' puts AVX2 rows beside AVX2 OpenBLAS) */
  openblasCoretype?: string;
}

/** The device for `isa` code (the ISA whose peak is the reference); one line when this CPU cannot run it. */
export function x86Device(isa: HostTarget, nominalPeakGflops: number, options: X86DeviceOptions = {}): Device {
  // refused before a worker starts: there the code would only die of SIGILL
  const cannotRun = hostIsaError(isa);
  if (cannotRun) fail(cannotRun);
  const threads = options.threads ?? 1;
  const badThreads = threadCountError(threads);
  if (badThreads) fail(badThreads);
  const ownsPool = options.pool === undefined;
  const pool = options.pool ?? new MeasurementPool({
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.timeoutSeconds !== undefined ? { timeoutSeconds: options.timeoutSeconds } : {}),
    ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
    ...(options.openblasCoretype !== undefined ? { openblasCoretype: options.openblasCoretype } : {}),
  });
  let peak: Promise<PeakReading> | undefined;
  let blasPool: MeasurementPool | undefined;
  return {
    native: true,
    host: threadedHostKey(hostKey(), threads),
    threads,
    run: workerRunner(pool, threads),
    async time(kernel, request = {}) {
      const r = await pool.time(kernel, {
        threads: request.threads ?? threads,
        ...(request.minSeconds !== undefined ? { minSeconds: request.minSeconds } : {}),
        ...(request.slowSeconds !== undefined ? { slowSeconds: request.slowSeconds } : {}),
      });
      return r.ok ? r : { ok: false, error: r.error };
    },
    peak() {
      // a failed probe (a busy or odd machine) falls back to the nominal figure, saying why
      peak ??= peakRecord(isa, { pool, threads }).then(
        (rec): PeakReading => ({ gflops: rec.gflops, source: rec.cached ? 'cached' : 'measured' }),
        (e: unknown): PeakReading => ({ gflops: nominalPeakGflops * threads, source: 'nominal', error: e instanceof Error ? e.message : String(e) }),
      );
      return peak;
    },
    // on several threads OpenBLAS gets workers of its own: its thread count is fixed at load, and
    // libgomp's threads (our kernels) and OpenBLAS's stay out of each other's way
    baseline: openblasBaseline(() => threads === 1 ? pool : (blasPool ??= new MeasurementPool({
      ...(options.openblasCoretype !== undefined ? { openblasCoretype: options.openblasCoretype } : {}), openblasThreads: threads,
    }))),
    close: async () => {
      if (ownsPool) await pool.close();
      await blasPool?.close();
    },
  };
}

