/**
 * The thread runtime for parallel kernels: OpenMP's libgomp (libgomp.so.1, on every machine that
 * has gcc), driven through its ABI entry GOMP_parallel, the call a C compiler emits for
 * `#pragma omp parallel`. No home-made pool: libgomp creates, pins, reuses and joins the threads.
 *
 * A parallel kernel takes (tid, threads) after reps (targets/kernel.ts); the x86 stubs of
 * targets/x86/team-stubs.ts hand it the tids: `drive` forks a team `forks` times, and each thread
 * of a team runs `team`, which calls the kernel with its own thread number as the tid. The data block they read lives in
 * native memory owned here (one per process: calls are synchronous).
 *
 * Pinning: libgomp reads OMP_PROC_BIND / OMP_PLACES when it loads. threadEnvironment() gives the
 * measurement workers `close` binding over `cores` (one thread per core, the caller's on the first)
 * and a stack size big enough for the pack buffers that live in each thread's frame. A process
 * that did not set them (an application running kernels in-process) keeps its own settings. The
 * idle team's busy-wait is bounded before libgomp loads (boundSpinWait) unless the process chose a
 * wait policy itself.
 */
import koffi from 'koffi';
import { availableParallelism } from 'node:os';
import { TEAM_DATA, TEAM_MAX_POINTERS, teamStubs } from '../x86/team-stubs.ts';
import { alignedAlloc, mapAnonymous, nativeView, PROT_EXEC, PROT_READ, PROT_WRITE, protect, roundUpToPage, symbolAddress } from './libc.ts';
import type { ExecutableCode, KernelPointer } from './executable-memory.ts';

const LIBGOMP = 'libgomp.so.1';

/** Most threads a kernel may be run on (libgomp itself has no small limit; this catches typos). */
export const MAX_THREADS = 1024;

/** Threads a run uses when nobody says: every core of this machine. */
export function defaultThreads(): number {
  return availableParallelism();
}

/** One line when `threads` is not a usable thread count. */
export function threadCountError(threads: number): string | undefined {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) return `threads must be an integer from 1 to ${MAX_THREADS}, got ${threads}`;
  return undefined;
}

/** The threads a kernel runs on when `requested` are asked for: all of them with a parallel band, else one
 *  (any other kernel would be computed once per thread, racing on its output). */
export function kernelThreads(abi: { parallel?: boolean }, requested: number): number {
  return abi.parallel ? requested : 1;
}

/** The environment of a process that will run parallel kernels: pinned OpenMP threads. */
export function threadEnvironment(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...base,
    OMP_PROC_BIND: base.OMP_PROC_BIND ?? 'close',
    OMP_PLACES: base.OMP_PLACES ?? 'cores',
    // the pack buffers (up to 192 KB) live in the thread's frame
    OMP_STACKSIZE: base.OMP_STACKSIZE ?? '16M',
  };
}

/**
 * GOMP_SPINCOUNT for a process that has not chosen a wait policy, set before libgomp loads (it
 * reads its environment then). By default an idle team spins ~300,000 iterations (a few hundred
 * microseconds) after every region: long enough to cover back-to-back kernels, but in a model
 * whatever runs next on those cores (OpenBLAS's threads, a JS host op) waits for the spinning to
 * end. 10,000 still covers back-to-back kernels (measured: ResNet-18 at 2 threads unchanged) and
 * gave the BERT layer, whose FFN runs OpenBLAS, 12.2 ms median instead of 18.6-20.0.
 */
export function boundSpinWait(env: NodeJS.ProcessEnv): void {
  if (env.GOMP_SPINCOUNT === undefined && env.OMP_WAIT_POLICY === undefined) env.GOMP_SPINCOUNT = IN_PROCESS_SPINCOUNT;
}

const IN_PROCESS_SPINCOUNT = '10000';

export interface ParallelCall {
  /** tensor pointers, ABI order: native addresses or Float32Arrays (valid for the call, as koffi passes them) */
  pointers: KernelPointer[];
  threads: number;
  /** team forks, one after another (a repetition each, fork and join included) */
  forks: number;
  /** the kernel's own repetition count within one fork (1 for timing kernels; the peak probe runs long forks) */
  kernelReps: number;
}

/** drive(data, p0, ..., p4) as koffi decodes it (targets/x86/team-stubs.ts) */
type DriveFunction = (data: bigint, ...pointers: (KernelPointer | null)[]) => void;

class Team {
  readonly #data: bigint;
  readonly #view: BigUint64Array;
  readonly #teamAddress: bigint[];
  readonly #drive: DriveFunction;

  constructor() {
    let gomp: Record<'GOMP_parallel' | 'omp_get_thread_num' | 'omp_get_num_threads', bigint>;
    boundSpinWait(process.env);
    try {
      gomp = {
        GOMP_parallel: symbolAddress(LIBGOMP, 'GOMP_parallel'),
        omp_get_thread_num: symbolAddress(LIBGOMP, 'omp_get_thread_num'),
        omp_get_num_threads: symbolAddress(LIBGOMP, 'omp_get_num_threads'),
      };
    } catch (e) {
      throw new Error(`parallel kernels need OpenMP's runtime ${LIBGOMP} (Debian package libgomp1): ${e instanceof Error ? e.message : String(e)}`);
    }
    const stubs = teamStubs();
    const mapped = roundUpToPage(stubs.code.length);
    const code = mapAnonymous(mapped, PROT_READ | PROT_WRITE);
    new Uint8Array(nativeView(code, stubs.code.length)).set(stubs.code);
    protect(code, mapped, PROT_READ | PROT_EXEC);
    this.#teamAddress = stubs.team.map((offset) => code + BigInt(offset));
    this.#drive = koffi.decode(code + BigInt(stubs.drive), koffi.proto('void looptune_drive(void *data, void *p0, void *p1, void *p2, void *p3, void *p4)')) as DriveFunction;
    this.#data = alignedAlloc(TEAM_DATA.bytes, 64);
    this.#view = new BigUint64Array(nativeView(this.#data, TEAM_DATA.bytes));
    this.#view.fill(0n);
    this.#view[TEAM_DATA.gompParallel / 8] = gomp.GOMP_parallel;
    this.#view[TEAM_DATA.ompThreadNum / 8] = gomp.omp_get_thread_num;
    this.#view[TEAM_DATA.ompNumThreads / 8] = gomp.omp_get_num_threads;
  }

  run(kernel: ExecutableCode, call: ParallelCall): void {
    const n = call.pointers.length;
    if (n < 1 || n > TEAM_MAX_POINTERS) throw new RangeError(`a parallel kernel takes 1 to ${TEAM_MAX_POINTERS} pointers, got ${n}`);
    const v = this.#view;
    v[TEAM_DATA.kernel / 8] = kernel.address;
    v[TEAM_DATA.threads / 8] = BigInt(call.threads);
    v[TEAM_DATA.kernelReps / 8] = BigInt(call.kernelReps);
    v[TEAM_DATA.team / 8] = this.#teamAddress[n - 1]!;
    v[TEAM_DATA.forks / 8] = BigInt(call.forks);
    const args = Array.from({ length: TEAM_MAX_POINTERS }, (_, i) => call.pointers[i] ?? null);
    this.#drive(this.#data, ...args);
  }
}

let team: Team | undefined;

/**
 * Runs `kernel` on `call.threads` threads (libgomp), or directly on this thread when there is one.
 * Only kernels with a parallel band may run on more than one thread: any other kernel would be
 * computed once per thread, racing on its output.
 */
export function runParallel(kernel: ExecutableCode, call: ParallelCall): void {
  const bad = threadCountError(call.threads);
  if (bad) throw new RangeError(bad);
  if (call.threads === 1) {
    for (let f = 0; f < call.forks; f++) kernel.fn(...call.pointers, call.kernelReps, 0, 1);
    return;
  }
  team ??= new Team();
  team.run(kernel, call);
}
