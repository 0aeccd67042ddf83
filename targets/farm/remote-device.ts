/**
 * A Device whose kernels run on farm workers (worker.ts): `time(kernel)` queues the kernel's problem
 * and schedule as a BullMQ job under the caller's hardware key and waits for the result; `run`,
 * `peak` and `baseline` are jobs too, so a search, tune or verification reads the same figures as
 * on a local device of the worker's machine.
 *
 * Faults:
 *  - a worker killed mid-job: its lock lapses, BullMQ's stalled-job check gives the job to another
 *    worker (jobs also get `attempts` tries when a worker fails one);
 *  - Redis restarted: ioredis reconnects; a sweep every second asks Redis for the state of each job
 *    in flight, reads results whose event was lost, and queues again (same job id) a job that Redis
 *    no longer knows (a restart without persistence);
 *  - exactly once: each job id is settled once (the first result, from the event or the sweep); a
 *    second answer for a settled id is dropped and counted (`duplicates`), so the caller's records
 *    get one entry per measurement;
 *  - a malformed or impossible result (jobs.ts schemas; a figure that disagrees with the kernel's
 *    flops or beats any real timing) is a failed measurement, never a figure.
 * Jobs in flight are bounded per device (one key) by p-limit.
 */
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import pLimit, { type LimitFunction } from 'p-limit';
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { parseProblem } from '../../ir/spec.ts';
import type { Backend, Baseline, BaselineOutcome, Device, PeakReading, TimeOutcome, TimeRequest } from '../backend.ts';
import type { Kernel } from '../kernel.ts';
import type { KernelRunner } from '../verify.ts';
import { farmConnection, redactUrl } from './connection.ts';
import { keyHost, localHardwareKey, queueName } from './hardware-key.ts';
import {
  decodeTensor, encodeTensor, parseResult,
  type FarmJob, type FarmJobKind, type FarmResults, type Rejected,
} from './jobs.ts';
import { DEFAULT_FARM_CONCURRENCY, type FarmOptions } from './farm-options.ts';
import { liveWorkers, type RosterEntry } from './roster.ts';

export type { FarmOptions } from './farm-options.ts';

export interface RemoteDeviceOptions extends FarmOptions {
  threads?: number;
  /** minimum sampled seconds of a timing that names none */
  minSeconds?: number;
}

/** A job's settlement as the device saw it (for tests and benchmarks). */
export interface JobSettlement {
  id: string;
  kind: FarmJobKind;
  ok: boolean;
  /** the worker that served it (absent when none did: a timeout, a rejected result without one) */
  worker?: string;
  error?: string;
}

export interface RemoteDevice extends Device {
  readonly key: string;
  /** results that arrived for an id already settled (dropped) */
  readonly duplicates: number;
  /** jobs queued again because Redis no longer knew them */
  readonly requeued: number;
  /** every settled job, in order */
  readonly settlements: readonly JobSettlement[];
}

const SWEEP_MS = 1000;
/** The margin env/records.ts allows above the peak (PEAK_MARGIN): a figure past it is no timing. */
const FIGURE_MARGIN = 1.25;

interface Pending {
  readonly job: FarmJob;
  readonly addedAt: number;
  added: boolean;
  resolve(raw: unknown): void;
}

export async function openRemoteDevice(backend: Backend, options: RemoteDeviceOptions): Promise<RemoteDevice> {
  if (backend.timing !== 'native') fail(`--farm measures kernels on workers: ${backend.name} figures are not timings (${backend.timing})`);
  const threads = backend.caps.threads ? options.threads ?? 1 : 1;
  const connection = farmConnection(options.url);
  const eventsConnection = farmConnection(options.url);
  let lastError = '';
  for (const c of [connection, eventsConnection]) c.on('error', (e: Error) => (lastError = e.message));
  let key: string;
  let host: string;
  try {
    key = options.key ?? (await callerKey(backend, threads, connection));
    host = keyHost(key, backend.name);
    const hint = `looptune worker --redis URL --targets ${backend.name}${threads > 1 ? ` --threads ${threads}` : ''}`;
    await waitForWorker(connection, key, options.waitForWorkerSeconds ?? 15, options.url, () => lastError, hint);
  } catch (e) {
    connection.disconnect();
    eventsConnection.disconnect();
    throw e;
  }
  const device = new FarmDevice(backend, key, host, threads, options, connection, eventsConnection);
  await device.ready();
  return device;
}

/**
 * The key a caller asks for: its own machine's (localHardwareKey). A caller that cannot open the
 * target here (no GPU, no AVX-512: it only steers the farm) takes the one live key of the target
 * at its thread count, when there is exactly one; otherwise it must name the key.
 */
async function callerKey(backend: Backend, threads: number, redis: Redis): Promise<string> {
  try {
    return await localHardwareKey(backend, threads);
  } catch (e) {
    const prefix = `${backend.name} on `;
    const suffix = / threads=(\d+)$/;
    const keys = [...new Set((await withTimeout(liveWorkers(redis), 10_000).catch(() => [])).flatMap((w) => w.keys))]
      .filter((k) => k.startsWith(prefix) && Number(suffix.exec(k)?.[1] ?? 1) === threads);
    if (keys.length === 1) return keys[0]!;
    throw e;
  }
}

/** Waits until the roster lists a worker of `key`; one line naming the live keys when none comes. */
async function waitForWorker(redis: Redis, key: string, seconds: number, url: string, lastError: () => string, hint: string): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let live: RosterEntry[] = [];
  for (;;) {
    try {
      live = await withTimeout(liveWorkers(redis), Math.max(1000, deadline - Date.now()));
      if (live.some((w) => w.keys.includes(key))) return;
    } catch {
      // Redis not reachable yet: retried until the deadline
    }
    // a refused password does not get better by waiting
    if (Date.now() >= deadline || /WRONGPASS|NOAUTH|NOPERM/.test(lastError())) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const where = redactUrl(url);
  if (lastError()) fail(`cannot reach the farm's Redis at ${where}: ${lastError()}`);
  const keys = [...new Set(live.flatMap((w) => w.keys))];
  fail(`no worker on the farm at ${where} serves '${key}' (${keys.length ? `live keys: ${keys.map((k) => `'${k}'`).join(', ')}` : 'no live workers'}); start one there: ${hint}`);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out')), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e); });
  });
}

class FarmDevice implements RemoteDevice {
  readonly native = true;
  readonly key: string;
  readonly host: string;
  readonly threads: number;
  readonly run: KernelRunner;
  readonly baseline?: Baseline;
  duplicates = 0;
  requeued = 0;
  readonly settlements: JobSettlement[] = [];
  readonly #backend: Backend;
  readonly #options: RemoteDeviceOptions;
  readonly #connection: Redis;
  readonly #eventsConnection: Redis;
  readonly #queue: Queue;
  readonly #events: QueueEvents;
  readonly #limit: LimitFunction;
  readonly #pending = new Map<string, Pending>();
  readonly #settled = new Set<string>();
  readonly #caller = randomUUID();
  readonly #canonical = new Map<string, string | undefined>();
  readonly #sweep: NodeJS.Timeout;
  #seq = 0;
  #sweeping = false;
  #closed = false;
  #peak: Promise<PeakReading> | undefined;

  constructor(backend: Backend, key: string, host: string, threads: number, options: RemoteDeviceOptions, connection: Redis, eventsConnection: Redis) {
    this.#backend = backend;
    this.key = key;
    this.host = host;
    this.threads = threads;
    this.#options = options;
    this.#connection = connection;
    this.#eventsConnection = eventsConnection;
    const name = queueName(key);
    this.#queue = new Queue(name, { connection });
    this.#events = new QueueEvents(name, { connection: eventsConnection });
    // errors while Redis is away are the sweep's to recover from; the listeners keep them quiet
    this.#queue.on('error', () => {});
    this.#events.on('error', () => {});
    this.#events.on('completed', ({ jobId, returnvalue }) => this.#settle(jobId, returnvalue));
    this.#events.on('failed', ({ jobId }) => void this.#checkFailed(jobId));
    this.#limit = pLimit(options.concurrency ?? DEFAULT_FARM_CONCURRENCY);
    this.#sweep = setInterval(() => void this.#reconcile(), SWEEP_MS);
    this.#sweep.unref();
    this.run = (kernel, tensors, opts) => this.#runKernel(kernel, tensors, opts);
    if (backend.baselineFamily) {
      this.baseline = {
        family: backend.baselineFamily,
        // what the library covers is the worker's to say (its answer is the baseline's error)
        coverage: () => undefined,
        time: (problem, opts = {}) => this.#baseline(problem, opts.minSeconds),
      };
    }
  }

  async ready(): Promise<void> {
    await Promise.all([this.#queue.waitUntilReady(), this.#events.waitUntilReady()]);
  }

  async time(kernel: Kernel, request: TimeRequest = {}): Promise<TimeOutcome> {
    const source = this.#source(kernel);
    if (typeof source === 'string') return { ok: false, error: source };
    const minSeconds = request.minSeconds ?? this.#options.minSeconds;
    const r = await this.#submit('time', {
      kind: 'time', ...source, threads: request.threads ?? this.threads,
      ...(minSeconds !== undefined ? { minSeconds } : {}),
      ...(request.slowSeconds !== undefined ? { slowSeconds: request.slowSeconds } : {}),
    });
    if (!r.ok) return { ok: false, error: r.error };
    // the figure is recomputed from the kernel's flops and checked against what a timing can be
    const gflops = kernel.flops / r.bestSeconds / 1e9;
    if (Math.abs(gflops - r.gflops) > 1e-6 * gflops) return { ok: false, error: `result from ${r.worker} gives ${r.gflops} GFLOPS for a best time of ${r.bestSeconds} s (${gflops.toFixed(3)} GFLOPS): not a timing` };
    const bound = await this.#bound();
    if (gflops > bound) return { ok: false, error: `result from ${r.worker} gives ${gflops.toFixed(1)} GFLOPS, above ${FIGURE_MARGIN}x the peak (${bound.toFixed(1)}): not a timing` };
    return { ok: true, bestSeconds: r.bestSeconds, medianSeconds: r.medianSeconds, gflops, reps: r.reps, samples: r.samples, ...(r.worker ? { servedBy: r.worker } : {}) };
  }

  peak(): Promise<PeakReading> {
    this.#peak ??= this.#submit('peak', { kind: 'peak' }).then((r): PeakReading => r.ok
      ? { gflops: r.gflops, source: r.source, ...(r.error ? { error: r.error } : {}), method: `${r.method ? `${r.method}, ` : ''}on ${r.worker}` }
      : { gflops: this.#backend.nominalPeakGflops * this.threads, source: 'nominal', error: r.error });
    return this.#peak;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const [id, p] of this.#pending) this.#settleWith(id, p, { ok: false, error: 'the farm device was closed before the job finished' });
    await Promise.allSettled([this.#events.close(), this.#queue.close()]);
    for (const c of [this.#connection, this.#eventsConnection]) await c.quit().catch(() => c.disconnect());
  }

  /** Bound on any real figure: the margin above the larger of the worker's peak and the nominal one. */
  async #bound(): Promise<number> {
    const peak = await this.peak();
    return FIGURE_MARGIN * Math.max(peak.gflops, this.#backend.nominalPeakGflops * this.threads);
  }

  /** The job fields naming a kernel's source, or why it cannot go to a worker. */
  #source(kernel: Kernel): { problem: string; schedule: string; overwrite: boolean } | string {
    const problem = kernel.program.problem;
    const why = this.#canonicalError(problem);
    if (why) return why;
    return { problem: problem.spec, schedule: kernel.program.schedule, overwrite: kernel.program.overwrites ?? false };
  }

  /** Why a worker would rebuild another problem from `problem.spec` (its spec does not say all of it). */
  #canonicalError(problem: Problem): string | undefined {
    if (!this.#canonical.has(problem.spec)) {
      let why: string | undefined;
      try {
        const again = parseProblem(problem.spec);
        if (structureOf(again) !== structureOf(problem)) why = `the problem '${problem.spec}' is not what its spec describes: it cannot be sent to a farm worker`;
      } catch (e) {
        why = `the problem '${problem.spec.slice(0, 80)}' has no spec a worker can read (${e instanceof Error ? e.message : String(e)})`;
      }
      this.#canonical.set(problem.spec, why);
    }
    return this.#canonical.get(problem.spec);
  }

  async #runKernel(kernel: Kernel, tensors: Float32Array[], opts: { guard: boolean; threads?: number }) {
    const source = this.#source(kernel);
    if (typeof source === 'string') return { ok: false as const, error: source };
    const r = await this.#submit('run', {
      kind: 'run', ...source, guard: opts.guard, tensors: tensors.map(encodeTensor),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    });
    if (!r.ok) return { ok: false as const, error: r.error };
    const output = decodeTensor(r.output);
    const elements = kernel.abi.tensors[0]!.elements;
    if (!output || output.length !== elements) return { ok: false as const, error: `result from ${r.worker} has no output of ${elements} float32 values` };
    return { ok: true as const, output };
  }

  async #baseline(problem: Problem, minSeconds: number | undefined): Promise<BaselineOutcome> {
    const why = this.#canonicalError(problem);
    if (why) return { ok: false, error: why };
    const r = await this.#submit('baseline', { kind: 'baseline', problem: problem.spec, ...(minSeconds !== undefined ? { minSeconds } : {}) });
    if (!r.ok) return { ok: false, error: r.error };
    const { worker: _w, ...outcome } = r;
    return outcome;
  }

  /** Queues one job and waits for its checked result (jobs in flight bounded by the device's limit). */
  #submit<K extends FarmJobKind>(kind: K, fields: Omit<Extract<FarmJob, { kind: K }>, 'id' | 'key'>): Promise<FarmResults[K] | Rejected> {
    if (this.#closed) return Promise.resolve({ ok: false, error: 'the farm device is closed' });
    return this.#limit(async () => {
      const id = `${this.#caller}-${++this.#seq}`;
      const job = { ...fields, id, key: this.key } as FarmJob;
      const raw = await new Promise<unknown>((resolve) => {
        const pending: Pending = { job, addedAt: Date.now(), added: false, resolve };
        this.#pending.set(id, pending);
        this.#add(pending).catch(() => {
          // Redis is away: the sweep queues it once Redis answers again
        });
      });
      return parseResult(kind, raw);
    });
  }

  async #add(p: Pending): Promise<void> {
    const attempts = this.#options.attempts ?? 3;
    // the same job id again is a no-op for BullMQ while Redis still knows the job: never two of one measurement
    await this.#queue.add(p.job.kind, p.job, {
      jobId: p.job.id, attempts, backoff: { type: 'fixed', delay: 200 },
      removeOnComplete: { age: 600, count: 10000 }, removeOnFail: { age: 3600 },
    });
    p.added = true;
  }

  /** A 'failed' event: final only when the job has no attempt left (then it is in the failed set). */
  async #checkFailed(id: string): Promise<void> {
    if (!this.#pending.has(id)) return;
    try {
      if ((await this.#queue.getJobState(id)) !== 'failed') return;
      const job = await this.#queue.getJob(id);
      this.#settle(id, { ok: false, error: `job failed on the farm: ${job?.failedReason ?? 'no reason given'}` });
    } catch {
      // Redis away: the sweep sees it later
    }
  }

  /** The sweep: results whose events were lost, jobs Redis lost, jobs past their time. */
  async #reconcile(): Promise<void> {
    if (this.#sweeping || this.#pending.size === 0) return;
    this.#sweeping = true;
    try {
      const timeout = (this.#options.jobTimeoutSeconds ?? 600) * 1000;
      const now = Date.now();
      for (const [id, p] of [...this.#pending]) {
        if (now - p.addedAt > timeout) {
          this.#settleWith(id, p, { ok: false, error: `no worker of '${this.key}' finished the job within ${timeout / 1000} s` });
          void this.#queue.remove(id).catch(() => {});
          continue;
        }
        if (!p.added) {
          await this.#add(p);
          continue;
        }
        if (now - p.addedAt < SWEEP_MS) continue;
        const state = await this.#queue.getJobState(id);
        if (state === 'completed') {
          const job = await this.#queue.getJob(id);
          if (job) this.#settle(id, job.returnvalue);
        } else if (state === 'failed') {
          await this.#checkFailed(id);
        } else if (state === 'unknown') {
          this.requeued++;
          await this.#add(p);
        }
      }
    } catch {
      // Redis away: the next sweep tries again
    } finally {
      this.#sweeping = false;
    }
  }

  #settle(id: string, raw: unknown): void {
    const p = this.#pending.get(id);
    if (!p) {
      if (this.#settled.has(id)) this.duplicates++;
      return;
    }
    this.#settleWith(id, p, raw);
  }

  #settleWith(id: string, p: Pending, raw: unknown): void {
    this.#pending.delete(id);
    this.#settled.add(id);
    const r = raw as { ok?: unknown; worker?: unknown; error?: unknown } | null;
    this.settlements.push({
      id, kind: p.job.kind, ok: r?.ok === true,
      ...(typeof r?.worker === 'string' ? { worker: r.worker } : {}),
      ...(typeof r?.error === 'string' ? { error: r.error } : {}),
    });
    p.resolve(raw);
  }
}

/** What a kernel's code depends on in a problem, as text (spec parsing must reproduce it). */
function structureOf(p: Problem): string {
  return JSON.stringify([p.op, p.vars, p.tensors, p.output, p.inputs, p.combine, p.epilogue ?? [], p.dtype ?? null]);
}
