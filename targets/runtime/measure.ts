/**
 * MeasurementPool: runs and times generated kernels in persistent child processes, so that a
 * kernel that crashes (SIGSEGV, SIGILL, SIGBUS) or hangs becomes an error result instead of
 * taking the caller down. A dead or hung worker is killed and replaced on the next job.
 *
 * Concurrency defaults to 1: one measurement at a time keeps timings clean on a small machine.
 * An idle pool does not keep Node alive (its workers are unref'd), but call close() when done.
 * Worker stderr is captured (its last line appears in error messages), never printed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import pLimit, { type LimitFunction } from 'p-limit';
import { FLOAT_BYTES, timingBytes, workerRunBytes } from '../../ir/footprint.ts';
import { assertRunnableKernel, type NativeKernel } from './executable-memory.ts';
import { assertMemoryFits, formatBytes } from './memory-limit.ts';
import { openblasEnvironment } from './openblas.ts';
import { kernelThreads, threadCountError, threadEnvironment } from './threads.ts';
import type { Job, JobMessage, JobValues, OpenblasTiming, WorkerMessage } from './protocol.ts';
import { DEFAULT_MIN_SECONDS, type Timing } from './timing.ts';

export type FailureReason = 'crash' | 'timeout' | 'error';

export interface Failure {
  ok: false;
  /** crash: killed by a signal; timeout: ran past the limit; error: the job threw or the worker could not start. */
  reason: FailureReason;
  /** one line, e.g. 'kernel crashed (SIGSEGV)', 'kernel timed out after 10 s'. */
  error: string;
}

export type Result<T> = ({ ok: true } & T) | Failure;
export type RunResult = Result<JobValues['run']>;
export type TimeResult = Result<Timing>;
export type OpenblasResult = Result<OpenblasTiming>;
export type PingResult = Result<JobValues['ping']>;

export interface PoolOptions {
  /** jobs measured at once, each in its own worker (default 1). */
  concurrency?: number;
  /** per-job limit in seconds, start-up excluded (default 10). */
  timeoutSeconds?: number;
  /** limit for a worker to start (load tsx, koffi) in seconds (default 30). */
  startupTimeoutSeconds?: number;
  /** default minimum sampled time of time/openblas jobs in seconds (default 0.05). */
  minSeconds?: number;
  /** pin OpenBLAS to a kernel set ('Haswell', 'SkylakeX', ...) instead of letting it choose. */
  openblasCoretype?: string;
  /** threads of OpenBLAS in these workers (default 1; fixed when it loads, see openblas.ts) */
  openblasThreads?: number;
}

export interface JobOptions {
  timeoutSeconds?: number;
}

export interface ThreadOptions {
  /** threads a kernel with a parallel band runs on (default 1; any other kernel runs on one) */
  threads?: number;
}

export interface RunOptions extends JobOptions, ThreadOptions {
  /** allocate every tensor so that it ends at a PROT_NONE page (see buffers.ts). */
  guard?: boolean;
}

export interface TimeOptions extends JobOptions, ThreadOptions {
  minSeconds?: number;
  /** a warm-up call this long is the whole measurement (timing.ts) */
  slowSeconds?: number;
  /** several threads: one fork-join per repetition (default), or one fork whose threads repeat the kernel (the peak probe) */
  forkPerRep?: boolean;
}

/** The worker's entry: worker.ts beside this module, or in a bundle of the CLI (the GPU machine's, see
 *  targets/cuda/bundle.ts) the worker's own bundle beside it. */
const WORKER_ENTRY = existsSync(new URL('./worker.ts', import.meta.url))
  ? new URL('./worker.ts', import.meta.url)
  : new URL('./looptune-worker.mjs', import.meta.url);
/**
 * The worker is TypeScript: it runs through tsx's loader, resolved from this package (not from
 * the cwd). createRequire rather than import.meta.resolve: this module may itself have been
 * loaded as CommonJS by tsx (uvu's `-r tsx`), where import.meta.resolve does not exist.
 */
function workerExecArgv(): string[] {
  // resolved when a worker starts, not at import: bundles of the CLI (the GPU machine's) have no tsx
  return WORKER_ENTRY.pathname.endsWith('.ts')
    ? ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href]
    : [];
}
const STDERR_TAIL_CHARS = 2000;

/** Default per-job limit in seconds (PoolOptions.timeoutSeconds). */
export const DEFAULT_JOB_TIMEOUT_SECONDS = 10;

/**
 * Tensors of a run job cross the IPC channel both ways, and Node's structured-clone channel slows
 * down on large messages (measured here: 288 MB in 1.4 s, 800 MB in 13.8 s): a run job's limit
 * grows by the bytes it moves at this rate, so that only the kernel's own time counts against it.
 */
export const TRANSFER_BYTES_PER_SECOND = 40e6;

/** Whole seconds allowed for moving `bytes` to and from a worker (under a second: covered by the job's own limit). */
export function transferSeconds(bytes: number): number {
  return Math.floor(bytes / TRANSFER_BYTES_PER_SECOND);
}

/** The threads a job runs `kernel` on: the request for a kernel with a parallel band, else one. */
function threadsFor(kernel: NativeKernel, requested = 1): number {
  const bad = threadCountError(requested);
  if (bad) throw new RangeError(bad);
  return kernelThreads(kernel.abi, requested);
}

/** What a refusal names: the problem's spec when the kernel carries its program. */
function kernelSubject(kernel: NativeKernel): string {
  const spec = (kernel as { program?: { problem?: { spec?: unknown } } }).program?.problem?.spec;
  return typeof spec === 'string' ? spec : `a kernel over ${formatBytes(tensorBytesOf(kernel))} of tensors`;
}

function tensorBytesOf(kernel: NativeKernel): number {
  return kernel.abi.tensors.reduce((a, t) => a + t.elements * FLOAT_BYTES, 0);
}

export class MeasurementPool {
  readonly #limit: LimitFunction;
  readonly #timeoutSeconds: number;
  readonly #startupTimeoutSeconds: number;
  readonly #minSeconds: number;
  readonly #env: NodeJS.ProcessEnv;
  readonly #openblasThreads: number;
  readonly #idle: MeasurementWorker[] = [];
  readonly #workers = new Set<MeasurementWorker>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;
  #replaced = 0;

  constructor(options: PoolOptions = {}) {
    this.#limit = pLimit(options.concurrency ?? 1);
    this.#timeoutSeconds = options.timeoutSeconds ?? DEFAULT_JOB_TIMEOUT_SECONDS;
    this.#startupTimeoutSeconds = options.startupTimeoutSeconds ?? 30;
    this.#minSeconds = options.minSeconds ?? DEFAULT_MIN_SECONDS;
    // OpenBLAS loads only in workers: give them an environment that lets it pick its best kernels;
    // libgomp too: its threads are pinned one per core there.
    this.#openblasThreads = options.openblasThreads ?? 1;
    this.#env = threadEnvironment(openblasEnvironment(process.env, options.openblasCoretype, this.#openblasThreads));
  }

  /** Run the kernel once (reps = 1) on copies of `tensors` (ABI order, output first); returns the output. */
  run(kernel: NativeKernel, tensors: Float32Array[], options: RunOptions = {}): Promise<RunResult> {
    assertRunnableKernel(kernel);
    const abi = kernel.abi.tensors;
    if (tensors.length !== abi.length) throw new RangeError(`kernel takes ${abi.length} tensors, got ${tensors.length}`);
    tensors.forEach((t, i) => {
      if (t.length !== abi[i]!.elements) {
        throw new RangeError(`tensor ${i} (${abi[i]!.name}) must have ${abi[i]!.elements} elements, got ${t.length}`);
      }
    });
    const tensorBytes = tensorBytesOf(kernel);
    const outputBytes = abi[0]!.elements * FLOAT_BYTES;
    assertMemoryFits(kernelSubject(kernel), workerRunBytes(tensorBytes, outputBytes), 'the measurement worker to run it');
    const job = {
      kind: 'run', code: compact(kernel.code), tensors: tensors.map(compact), guard: options.guard ?? false,
      threads: threadsFor(kernel, options.threads),
    } as const;
    return this.#submit(job, options, transferSeconds(tensorBytes + outputBytes));
  }

  /** Time the kernel on random aligned buffers: best/median seconds per repetition, GFLOPS from the best. */
  time(kernel: NativeKernel, options: TimeOptions = {}): Promise<TimeResult> {
    assertRunnableKernel(kernel);
    const elements = kernel.abi.tensors.map((t) => t.elements);
    assertMemoryFits(kernelSubject(kernel), timingBytes(tensorBytesOf(kernel)), 'the buffers it is timed on');
    const minSeconds = options.minSeconds ?? this.#minSeconds;
    const job = {
      kind: 'time', code: compact(kernel.code), elements, flops: kernel.flops, minSeconds,
      ...(options.slowSeconds !== undefined ? { slowSeconds: options.slowSeconds } : {}),
      threads: threadsFor(kernel, options.threads), forkPerRep: options.forkPerRep ?? true,
    } as const;
    return this.#submit(job, options);
  }

  /** Time OpenBLAS cblas_sgemm, C[m×n] += A[m×k]·B[k×n], on the pool's OpenBLAS threads, after checking it against float64. */
  openblasSgemm(m: number, n: number, k: number, options: Omit<TimeOptions, 'threads'> = {}): Promise<OpenblasResult> {
    for (const d of [m, n, k]) if (!Number.isInteger(d) || d < 1) throw new RangeError(`sgemm sizes must be positive integers, got ${m}x${n}x${k}`);
    return this.#submit({ kind: 'openblas', m, n, k, minSeconds: options.minSeconds ?? this.#minSeconds, threads: this.#openblasThreads }, options);
  }

  /** A job that does nothing: measures the round trip and starts a worker ahead of time. */
  ping(options: JobOptions = {}): Promise<PingResult> {
    return this.#submit({ kind: 'ping' }, options);
  }

  /** workers killed so far after a crash or timeout (each replaced on the next job). */
  get workersReplaced(): number {
    return this.#replaced;
  }

  /** Wait for queued jobs, then stop every worker. Later submissions reject. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    this.#idle.length = 0;
    await Promise.all([...this.#workers].map((w) => w.stop()));
    this.#workers.clear();
  }

  /** `extraSeconds`: added to the job's limit for moving its tensors (see transferSeconds). */
  #submit<J extends Job>(job: J, options: JobOptions, extraSeconds = 0): Promise<Result<JobValues[J['kind']]>> {
    if (this.#closed) return Promise.reject(new Error('MeasurementPool is closed'));
    const timeoutSeconds = (options.timeoutSeconds ?? this.#timeoutSeconds) + extraSeconds;
    const promise = this.#limit(() => this.#execute(job, timeoutSeconds));
    this.#inFlight.add(promise);
    const forget = (): void => void this.#inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  async #execute<J extends Job>(job: J, timeoutSeconds: number): Promise<Result<JobValues[J['kind']]>> {
    let worker = this.#takeIdle();
    if (!worker) {
      worker = new MeasurementWorker(this.#env);
      this.#workers.add(worker);
      const startError = await worker.start(this.#startupTimeoutSeconds);
      if (startError) {
        this.#workers.delete(worker);
        return { ok: false, reason: 'error', error: startError };
      }
    }
    const result = await worker.execute(job, timeoutSeconds);
    if (worker.alive) {
      // Even when closing: jobs queued before close() still run, on this worker; close() stops it.
      this.#idle.push(worker);
    } else {
      this.#replaced++;
      this.#workers.delete(worker);
    }
    return result;
  }

  /** An idle worker that is still alive (one may have died while idle). */
  #takeIdle(): MeasurementWorker | undefined {
    for (let w = this.#idle.pop(); w; w = this.#idle.pop()) {
      if (w.alive) return w;
      this.#workers.delete(w);
    }
    return undefined;
  }
}

/**
 * The view alone: structured clone sends a typed array's whole backing buffer, so a small
 * subarray of a large emitter buffer would otherwise cross the IPC channel in full.
 */
function compact<T extends Uint8Array | Float32Array>(view: T): T {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? view : (view.slice() as T);
}

/** What ended a wait on the worker. */
type Outcome =
  | { kind: 'message'; message: WorkerMessage }
  | { kind: 'exit'; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'error'; error: Error }
  | { kind: 'timeout' };

/** One child process and the single job (or start-up) it is busy with. */
class MeasurementWorker {
  readonly #child: ChildProcess;
  #stderrTail = '';
  #death: Outcome | undefined;
  #waiter: ((outcome: Outcome) => void) | undefined;
  #accept: (message: WorkerMessage) => boolean = () => false;
  #nextId = 1;

  constructor(env: NodeJS.ProcessEnv) {
    this.#child = fork(WORKER_ENTRY, [], {
      execArgv: workerExecArgv(),
      env,
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.#child.stderr?.setEncoding('utf8');
    this.#child.stderr?.on('data', (chunk: string) => {
      this.#stderrTail = (this.#stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    this.#child.on('message', (message: WorkerMessage) => {
      if (this.#accept(message)) this.#waiter?.({ kind: 'message', message });
    });
    // 'close' rather than 'exit': it comes after stderr is drained, so error lines are complete.
    this.#child.on('close', (code, signal) => this.#die({ kind: 'exit', code, signal }));
    this.#child.on('error', (error) => {
      this.#die({ kind: 'error', error });
      this.#kill();
    });
  }

  get alive(): boolean {
    return this.#death === undefined;
  }

  /** Wait for the worker's 'ready'; returns an error line, or undefined once it is ready. */
  async start(timeoutSeconds: number): Promise<string | undefined> {
    const outcome = await this.#wait(timeoutSeconds, (m) => m.type === 'ready');
    if (outcome.kind === 'message') {
      this.#setRef(false);
      return undefined;
    }
    this.#kill();
    return `measurement worker failed to start: ${this.#describe(outcome, 'worker', timeoutSeconds)}`;
  }

  async execute<J extends Job>(job: J, timeoutSeconds: number): Promise<Result<JobValues[J['kind']]>> {
    const id = this.#nextId++;
    const subject = job.kind === 'openblas' ? 'cblas_sgemm' : job.kind === 'ping' ? 'measurement worker' : 'kernel';
    this.#setRef(true);
    const waiting = this.#wait(timeoutSeconds, (m) => m.type === 'result' && m.id === id);
    try {
      this.#child.send({ id, job } satisfies JobMessage);
    } catch (e) {
      this.#die({ kind: 'error', error: e instanceof Error ? e : new Error(String(e)) });
    }
    const outcome = await waiting;
    if (this.alive) this.#setRef(false);
    if (outcome.kind === 'message' && outcome.message.type === 'result') {
      const m = outcome.message;
      if (!m.ok) return { ok: false, reason: 'error', error: m.error };
      // The answer to job `id` carries the value of that job's kind, J['kind'].
      return { ok: true, ...m.value } as unknown as Result<JobValues[J['kind']]>;
    }
    if (outcome.kind === 'timeout') this.#kill();
    const reason: FailureReason = outcome.kind === 'timeout' ? 'timeout' : outcome.kind === 'exit' && outcome.signal ? 'crash' : 'error';
    return { ok: false, reason, error: this.#describe(outcome, subject, timeoutSeconds) };
  }

  /**
   * End the worker (it holds no state worth a graceful exit) and wait for it. SIGTERM, not
   * disconnect(): after a parent-side disconnect Node never emits the child's 'close' event.
   */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.#setRef(true);
    const exited = this.#wait(2, () => false);
    this.#child.kill('SIGTERM');
    if ((await exited).kind === 'timeout') this.#kill();
  }

  /** SIGKILL, and count the worker as dead now: its 'close' event comes later. */
  #kill(): void {
    this.#death ??= { kind: 'error', error: new Error('killed') };
    this.#child.kill('SIGKILL');
  }

  #wait(timeoutSeconds: number, accept: (message: WorkerMessage) => boolean): Promise<Outcome> {
    if (this.#death) return Promise.resolve(this.#death);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutSeconds * 1000);
      const finish = (outcome: Outcome): void => {
        clearTimeout(timer);
        this.#waiter = undefined;
        this.#accept = () => false;
        resolve(outcome);
      };
      this.#accept = accept;
      this.#waiter = finish;
    });
  }

  #die(outcome: Outcome): void {
    this.#death ??= outcome;
    this.#waiter?.(outcome);
  }

  /** Referenced while a job runs (so Node waits for the answer), unreferenced while idle. */
  #setRef(ref: boolean): void {
    const handles = [this.#child, this.#child.channel, this.#child.stderr as unknown as { ref(): void; unref(): void } | null];
    for (const h of handles) {
      if (!h) continue;
      if (ref) h.ref();
      else h.unref();
    }
  }

  #describe(outcome: Outcome, subject: string, timeoutSeconds: number): string {
    switch (outcome.kind) {
      case 'timeout':
        return `${subject} timed out after ${timeoutSeconds} s`;
      case 'exit':
        if (outcome.signal) return `${subject} crashed (${outcome.signal})`;
        return `measurement worker exited with code ${outcome.code}${this.#lastStderrLine()}`;
      case 'error':
        return `measurement worker failed: ${outcome.error.message}${this.#lastStderrLine()}`;
      case 'message':
        return `unexpected message from measurement worker: ${outcome.message.type}`;
    }
  }

  #lastStderrLine(): string {
    const lines = this.#stderrTail.trim().split('\n');
    const last = lines[lines.length - 1]?.trim();
    return last ? `: ${last}` : '';
  }
}
