/**
 * Messages between MeasurementPool (parent) and the measurement worker (child), sent over the
 * fork IPC channel with `serialization: 'advanced'` (structured clone: typed arrays travel as
 * binary, not JSON).
 *
 *   child → parent  { type: 'ready', pid }                      once, after start-up
 *   parent → child  { id, job }                                 one job at a time
 *   child → parent  { type: 'result', id, ok: true, value }     value: JobValues[job.kind]
 *                   { type: 'result', id, ok: false, error }    the job threw (bad input, ...)
 *
 * A crash (signal) or hang never answers: the parent sees the exit or its own timer instead.
 */
import type { Timing } from './timing.ts';
import type { GemmCheck } from './openblas.ts';

export interface RunJob {
  kind: 'run';
  code: Uint8Array;
  /** ABI order: output first, then inputs; each copied into 64-byte-aligned native memory. */
  tensors: Float32Array[];
  /** put every tensor in a guarded buffer (ends at a PROT_NONE page). */
  guard: boolean;
  /** threads the kernel runs on (1 unless it has a parallel band) */
  threads: number;
}

export interface TimeJob {
  kind: 'time';
  code: Uint8Array;
  /** element count of each tensor, ABI order; filled with seeded random values in [-1, 1). */
  elements: number[];
  /** flops of one repetition. */
  flops: number;
  minSeconds: number;
  /** a warm-up call at least this long is the whole measurement (see timeRepetitions) */
  slowSeconds?: number;
  /** threads the kernel runs on (1 unless it has a parallel band) */
  threads: number;
  /** on several threads: one fork-join per repetition (a kernel call, true) or one fork whose
   *  threads repeat the kernel themselves (the peak probe: throughput without fork costs, false) */
  forkPerRep: boolean;
}

export interface OpenblasJob {
  kind: 'openblas';
  m: number;
  n: number;
  k: number;
  minSeconds: number;
  /** openblas_set_num_threads for this job */
  threads: number;
}

export interface PingJob {
  kind: 'ping';
}

export type Job = RunJob | TimeJob | OpenblasJob | PingJob;

export interface OpenblasTiming extends Timing {
  threads: number;
  /** OpenBLAS kernel set that ran, e.g. 'Cooperlake'. */
  corename: string;
  config: string;
  /** C = C0 + A·B checked against a float64 reference before timing. */
  check: GemmCheck;
}

/** What a successful job returns, per kind. */
export interface JobValues {
  run: { output: Float32Array };
  time: Timing;
  openblas: OpenblasTiming;
  ping: { pid: number };
}

export interface JobMessage {
  id: number;
  job: Job;
}

export type WorkerMessage =
  | { type: 'ready'; pid: number }
  | { type: 'result'; id: number; ok: true; value: JobValues[Job['kind']] }
  | { type: 'result'; id: number; ok: false; error: string };
