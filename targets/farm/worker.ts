/**
 * A farm worker: for each of its targets, a BullMQ Worker on the queue of its hardware key
 * (hardware-key.ts). A job names a problem and a schedule; the worker compiles the schedule with
 * its own code generator and times or runs the kernel on the target's own Device (for CPU targets:
 * measurement worker processes, so a crashing kernel is an error result, not a dead worker). One
 * job at a time per target, for clean timings. Nothing in a job is executed but kernels generated
 * here from a validated schedule.
 *
 * What a worker answers is data (jobs.ts results), never a thrown error for a bad job: BullMQ's
 * retries are kept for the worker's own failures (it died mid-job: the job stalls and another
 * worker takes it).
 */
import os from 'node:os';
import { Worker, type Job } from 'bullmq';
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';
import type { Backend, Device } from '../backend.ts';
import type { Kernel } from '../kernel.ts';
import { backend as backendNamed } from '../registry.ts';
import { farmConnection, redactUrl } from './connection.ts';
import { deviceHardwareKey, queueName } from './hardware-key.ts';
import {
  decodeTensor, encodeTensor, FarmJobSchema, firstIssue,
  type BaselineJob, type BaselineResult, type FarmJob, type PeakResult, type RunJob, type RunResult, type TimeJob, type TimeResult,
} from './jobs.ts';
import { HEARTBEAT_MS, heartbeat, leave } from './roster.ts';

export interface FarmWorkerOptions {
  /** redis://[:password@]host:port */
  url: string;
  /** backend names to serve (default: the host's best x86 target, chosen by the caller) */
  targets: readonly string[];
  /** CPU threads of the devices (part of the key; default 1) */
  threads?: number;
  /** seconds a job's lock lasts without renewal: a worker killed mid-job loses its job to another
   *  worker after about this long (default 10) */
  lockSeconds?: number;
  /** minimum sampled seconds when a job names none */
  minSeconds?: number;
  /** a line per event worth a log (default: none) */
  log?: (line: string) => void;
}

export interface FarmWorker {
  /** "hostname pid 1234": what results carry and BullMQ stores as the job's processedBy */
  readonly name: string;
  readonly keys: readonly string[];
  /** jobs answered so far (each target's) */
  served(): number;
  /** stops taking jobs, lets the running one finish, closes devices and connections */
  close(): Promise<void>;
}

/** The key and queue a target is served under, with what serves it. */
interface Served {
  readonly backend: Backend;
  readonly device: Device;
  readonly key: string;
  readonly worker: Worker;
}

export async function startFarmWorker(options: FarmWorkerOptions): Promise<FarmWorker> {
  if (options.targets.length === 0) fail('worker: no targets to serve');
  const lockMs = Math.round((options.lockSeconds ?? 10) * 1000);
  if (!(lockMs >= 200)) fail(`worker: the lock must last at least 0.2 s, got ${options.lockSeconds} s`);
  const name = `${os.hostname()} pid ${process.pid}`;
  const log = options.log ?? (() => {});
  const redis = farmConnection(options.url);
  let lastError = '';
  redis.on('error', (e: Error) => {
    if (e.message !== lastError) log(`redis ${redactUrl(options.url)}: ${e.message}`);
    lastError = e.message;
  });
  redis.on('ready', () => (lastError = ''));
  let served = 0;
  const since = new Date().toISOString();
  const devices: Device[] = [];
  const serving: Served[] = [];
  try {
    for (const target of new Set(options.targets)) {
      const b = backendNamed(target);
      if (b.timing !== 'native') fail(`worker: ${b.name} figures are not timings of this machine (${b.timing}): a farm serves native targets only`);
      const device = await b.open({
        ...(options.threads !== undefined && b.caps.threads ? { threads: options.threads } : {}),
        ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
      });
      devices.push(device);
      const key = deviceHardwareKey(b.name, device);
      const serve = jobServer(b, device, key, name, options.minSeconds);
      const worker = new Worker(queueName(key), async (job: Job) => {
        const result = await serve(job.data);
        served++;
        return result;
      }, {
        connection: redis, name, concurrency: 1, autorun: false,
        lockDuration: lockMs, stalledInterval: Math.max(100, Math.round(lockMs / 2)), maxStalledCount: 3,
        // completed jobs are read by their caller within seconds; kept a while for a caller that reconnects
        removeOnComplete: { age: 600, count: 10000 }, removeOnFail: { age: 3600 },
      });
      worker.on('error', (e) => log(`worker ${key}: ${e.message}`));
      serving.push({ backend: b, device, key, worker });
    }
  } catch (e) {
    await Promise.allSettled(serving.map((s) => s.worker.close()));
    await Promise.allSettled(devices.map((d) => d.close()));
    redis.disconnect();
    throw e;
  }
  const keys = serving.map((s) => s.key);
  const beat = () => heartbeat(redis, { name, hostname: os.hostname(), pid: process.pid, keys, since, served }).catch(() => {});
  await beat();
  const timer = setInterval(beat, HEARTBEAT_MS);
  for (const s of serving) void s.worker.run().catch((e: unknown) => log(`worker ${s.key} stopped: ${e instanceof Error ? e.message : String(e)}`));
  let closing: Promise<void> | undefined;
  return {
    name,
    keys,
    served: () => served,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await Promise.allSettled(serving.map((s) => s.worker.close()));
        await leave(redis, name).catch(() => {});
        await Promise.allSettled(devices.map((d) => d.close()));
        await redis.quit().catch(() => redis.disconnect());
      })();
      return closing;
    },
  };
}

type AnyResult = TimeResult | RunResult | PeakResult | BaselineResult;

/** Answers one job's data on `device`: a validated job's result, or a failure saying why not. */
export function jobServer(b: Backend, device: Device, key: string, worker: string, defaultMinSeconds?: number): (data: unknown) => Promise<AnyResult> {
  const failed = (error: string): AnyResult => ({ ok: false, error, worker });
  return async (data) => {
    const parsed = FarmJobSchema.safeParse(data);
    if (!parsed.success) return failed(`rejected a malformed job (${firstIssue(parsed.error)})`);
    const job = parsed.data;
    if (job.key !== key) return failed(`a job for '${job.key}' reached a worker of '${key}'`);
    try {
      return await answer(job);
    } catch (e) {
      return failed(e instanceof Error ? e.message.split('\n')[0]! : String(e));
    }
  };

  async function answer(job: FarmJob): Promise<AnyResult> {
    switch (job.kind) {
      case 'time': return time(job);
      case 'run': return run(job);
      case 'peak': {
        const p = await device.peak();
        return { ok: true, worker, gflops: p.gflops, source: p.source, ...(p.error ? { error: p.error } : {}), ...(p.method ? { method: p.method } : {}) };
      }
      case 'baseline': return baseline(job);
    }
  }

  async function time(job: TimeJob): Promise<TimeResult> {
    const threads = device.threads ?? 1;
    if (job.threads > threads) return { ok: false, worker, error: `a timing on ${job.threads} threads asked of a worker of ${threads}` };
    const kernel = compileJob(job);
    const minSeconds = job.minSeconds ?? defaultMinSeconds;
    const r = await device.time(kernel, {
      threads: job.threads,
      ...(minSeconds !== undefined ? { minSeconds } : {}),
      ...(job.slowSeconds !== undefined ? { slowSeconds: job.slowSeconds } : {}),
    });
    if (!r.ok) return { ok: false, worker, error: r.error };
    return { ok: true, worker, bestSeconds: r.bestSeconds, medianSeconds: r.medianSeconds, gflops: r.gflops, reps: r.reps, samples: r.samples };
  }

  async function run(job: RunJob): Promise<RunResult> {
    const kernel = compileJob(job);
    const abi = kernel.abi.tensors;
    if (job.tensors.length !== abi.length) return { ok: false, worker, error: `the kernel takes ${abi.length} tensors, the job has ${job.tensors.length}` };
    const tensors: Float32Array[] = [];
    for (const [i, t] of job.tensors.entries()) {
      const decoded = decodeTensor(t);
      if (!decoded || decoded.length !== abi[i]!.elements) return { ok: false, worker, error: `tensor ${i} (${abi[i]!.name}) must have ${abi[i]!.elements} float32 values` };
      tensors.push(decoded);
    }
    const r = await device.run(kernel, tensors, { guard: job.guard, ...(job.threads !== undefined ? { threads: job.threads } : {}) });
    return r.ok ? { ok: true, worker, output: encodeTensor(r.output) } : { ok: false, worker, error: r.error };
  }

  async function baseline(job: BaselineJob): Promise<BaselineResult> {
    if (!device.baseline) return { ok: false, worker, error: `the ${b.name} device has no vendor library to compare with` };
    const problem = problemOf(job.problem);
    const why = device.baseline.coverage(problem);
    if (why) return { ok: false, worker, error: why };
    const r = await device.baseline.time(problem, job.minSeconds !== undefined ? { minSeconds: job.minSeconds } : {});
    return r.ok ? { worker, ...r } : { ok: false, worker, error: r.error };
  }

  /** The kernel a job's schedule compiles to here, after the same checks as any user input. */
  function compileJob(job: TimeJob | RunJob): Kernel {
    const schedule = Schedule.parse(problemOf(job.problem), job.schedule);
    const why = b.validate?.(schedule);
    if (why) fail(why);
    return b.compile(schedule, job.overwrite ? { overwrite: true } : {});
  }
}

/** The problem of a spec, which must be its canonical form (the caller's kernel was of that problem). */
function problemOf(spec: string): Problem {
  const problem = parseProblem(spec);
  if (problem.spec !== spec) fail(`the job's problem '${spec.slice(0, 80)}' is not in canonical form ('${problem.spec.slice(0, 80)}')`);
  return problem;
}
