/**
 * What travels through the farm's queues, as zod schemas checked on both ends. A job names a
 * problem (its one-line spec) and a schedule (its text) and never carries code: the worker compiles
 * the schedule with its own code generator. A result is checked before the caller believes it; a
 * result that fails the check is a failed measurement, never a tuning record.
 *
 *   time      {problem, schedule, overwrite, threads, minSeconds?, slowSeconds?}  -> a Timing
 *   run       ... plus tensors (base64 of float32, ABI order) and guard             -> the output tensor
 *   peak      {}                                                                  -> the worker's PeakReading
 *   baseline  {problem, minSeconds?}                                               -> the vendor library's figure
 *
 * Every job carries `key` (the hardware key it was queued for: hardware-key.ts) and `id` (the
 * caller's job id, the unit of exactly-once recording); every result carries `worker` (host name
 * and process of the worker that served it).
 */
import { z } from 'zod';

/** Caps on what a job may hold: a spec or schedule longer than this is not one of ours. */
const MAX_TEXT = 4096;
/** Tensors of a run job, base64: 256 MiB of text at most (Redis' default bulk limit is 512 MB). */
const MAX_TENSOR_TEXT = 256 * 1024 * 1024;

const finitePositive = z.number().finite().positive();
const text = z.string().min(1).max(MAX_TEXT);

const Base = z.object({
  /** the caller's job id (BullMQ's job id too) */
  id: text,
  /** the hardware key the job was queued under */
  key: text,
});

const KernelSource = Base.extend({
  problem: text,
  schedule: text,
  /** compile with output = result (Kernel.program.overwrites) */
  overwrite: z.boolean(),
});

export const TimeJobSchema = KernelSource.extend({
  kind: z.literal('time'),
  threads: z.number().int().min(1).max(1024),
  minSeconds: finitePositive.max(60).optional(),
  slowSeconds: finitePositive.optional(),
});

export const RunJobSchema = KernelSource.extend({
  kind: z.literal('run'),
  threads: z.number().int().min(1).max(1024).optional(),
  guard: z.boolean(),
  tensors: z.array(z.string().max(MAX_TENSOR_TEXT)).min(1).max(64),
});

export const PeakJobSchema = Base.extend({ kind: z.literal('peak') });

export const BaselineJobSchema = Base.extend({
  kind: z.literal('baseline'),
  problem: text,
  minSeconds: finitePositive.max(60).optional(),
});

export const FarmJobSchema = z.discriminatedUnion('kind', [TimeJobSchema, RunJobSchema, PeakJobSchema, BaselineJobSchema]);

export type TimeJob = z.infer<typeof TimeJobSchema>;
export type RunJob = z.infer<typeof RunJobSchema>;
export type PeakJob = z.infer<typeof PeakJobSchema>;
export type BaselineJob = z.infer<typeof BaselineJobSchema>;
export type FarmJob = z.infer<typeof FarmJobSchema>;
export type FarmJobKind = FarmJob['kind'];

const Served = z.object({
  /** "hostname pid 1234": which worker served the job */
  worker: z.string().min(1).max(512),
});

const Failed = Served.extend({ ok: z.literal(false), error: z.string().min(1).max(MAX_TEXT) });

export const TimeResultSchema = z.discriminatedUnion('ok', [
  Served.extend({
    ok: z.literal(true),
    bestSeconds: finitePositive,
    medianSeconds: finitePositive,
    gflops: finitePositive,
    reps: z.number().int().positive(),
    samples: z.number().int().positive(),
  }).refine((r) => r.medianSeconds >= r.bestSeconds, { message: 'the median is below the best', path: ['medianSeconds'] }),
  Failed,
]);

export const RunResultSchema = z.discriminatedUnion('ok', [
  Served.extend({ ok: z.literal(true), output: z.string().max(MAX_TENSOR_TEXT) }),
  Failed,
]);

export const PeakResultSchema = z.discriminatedUnion('ok', [
  Served.extend({
    ok: z.literal(true),
    gflops: finitePositive,
    source: z.enum(['measured', 'cached', 'nominal', 'model']),
    error: z.string().max(MAX_TEXT).optional(),
    method: z.string().max(MAX_TEXT).optional(),
  }),
  Failed,
]);

export const BaselineResultSchema = z.discriminatedUnion('ok', [
  Served.extend({
    ok: z.literal(true),
    library: z.string().min(1).max(MAX_TEXT),
    gflops: finitePositive,
    bestSeconds: finitePositive,
    medianSeconds: finitePositive,
    threads: z.number().int().positive().optional(),
  }),
  Failed,
]);

export type TimeResult = z.infer<typeof TimeResultSchema>;
export type RunResult = z.infer<typeof RunResultSchema>;
export type PeakResult = z.infer<typeof PeakResultSchema>;
export type BaselineResult = z.infer<typeof BaselineResultSchema>;

/** The result schema of each job kind. */
export const RESULT_SCHEMAS = {
  time: TimeResultSchema,
  run: RunResultSchema,
  peak: PeakResultSchema,
  baseline: BaselineResultSchema,
} as const;

export interface FarmResults {
  time: TimeResult;
  run: RunResult;
  peak: PeakResult;
  baseline: BaselineResult;
}

/** A failed result without a worker: what a result that failed its check becomes. */
export type Rejected = { ok: false; error: string; worker?: string };

/** The first problem zod found, as one line: "gflops: expected number, received string". */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return `${where}${issue.message}`;
}

/** `raw` checked as a result of a `kind` job; a malformed one becomes a failure naming what was wrong. */
export function parseResult<K extends FarmJobKind>(kind: K, raw: unknown): FarmResults[K] | Rejected {
  const parsed = RESULT_SCHEMAS[kind].safeParse(raw);
  if (parsed.success) return parsed.data as FarmResults[K];
  const worker = typeof raw === 'object' && raw !== null && typeof (raw as { worker?: unknown }).worker === 'string'
    ? (raw as { worker: string }).worker.slice(0, 200) : undefined;
  return { ok: false, error: `malformed ${kind} result from ${worker ?? 'an unknown worker'} (${firstIssue(parsed.error)})`, ...(worker ? { worker } : {}) };
}

/** Float32 tensors as base64 text (job data is JSON). */
export function encodeTensor(t: Float32Array): string {
  return Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64');
}

/** The inverse of encodeTensor; undefined when the text is not whole float32 values. */
export function decodeTensor(text: string): Float32Array | undefined {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.byteLength % 4 !== 0) return undefined;
  // copied into a fresh, aligned buffer (a Buffer may sit at any offset of a shared pool)
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
