/**
 * The machine's fp32 FMA peak in GFLOPS on one core or on `threads` cores: the denominator of
 * every reward and every "% of peak" figure. Measured with a generated kernel of independent FMA
 * chains (enough of them to cover FMA latency × pipes), best over a few chain counts, cached per
 * (isa, CPU model, threads). On several threads every thread of one libgomp team runs the probe
 * loop itself (one fork for all repetitions: the peak is throughput; fork-join is measured apart,
 * forkJoinSeconds).
 *
 * The probe runs in-process by default (its code is fixed and known-safe), or in a
 * MeasurementPool worker when one is given. Cached figures live in
 * <cache folder>/peak.json (see cache-dir.ts); pass `fresh: true` to re-measure (on an idle machine).
 * A figure measured while other processes' threads were runnable on the cores the probe uses
 * (/proc/stat's procs_running less our own runnable threads, sampled around every chain count) is returned marked `disturbed` and NOT cached:
 * one probe under a compile job once read half the peak and would have stayed the denominator of
 * every later reward.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { cacheDir } from './cache-dir.ts';
import type { NativeKernel } from './executable-memory.ts';
import { hostIsa, hostTarget, type HostTarget } from './host.ts';
import { timeInProcess } from './in-process.ts';
import type { MeasurementPool } from './measure.ts';
import { peakKernel } from '../x86/peak-kernel.ts';

/** `void f(float *dummy, int64_t reps)` running `chains` independent FMA chains for itersPerRep iterations per rep. */
export type PeakKernelFactory = (isa: HostTarget, chains: number, itersPerRep: number) => Uint8Array;

export interface PeakOptions {
  /** ignore the cached figure and measure again. */
  fresh?: boolean;
  /** chain counts to try (default 8, 10, 12, 14, 16, 20, 24); counts the factory rejects are skipped. */
  chains?: number[];
  /** FMA iterations per repetition (default 1000). */
  itersPerRep?: number;
  /** minimum sampled time per chain count in seconds (default 0.15). */
  minSeconds?: number;
  /** cache file (default <cache folder>/peak.json, see cache-dir.ts); null disables the cache. */
  cacheFile?: string | null;
  /** kernel generator (default: peakKernel from targets/x86/peak-kernel.ts). */
  kernel?: PeakKernelFactory;
  /** measure in this pool's worker instead of in-process (a broken generator then fails cleanly). */
  pool?: MeasurementPool;
  /** cores the probe runs on at once (default 1) */
  threads?: number;
}

export interface PeakRecord {
  isa: HostTarget;
  model: string;
  /** threads the probe ran on (absent in caches written before threads: 1) */
  threads?: number;
  gflops: number;
  /** chain count that reached `gflops`. */
  chains: number;
  perChains: { chains: number; gflops: number }[];
  /** ISO date of the measurement. */
  measuredAt: string;
  /** whether this came from the cache file. */
  cached: boolean;
  /** measured while the machine was oversubscribed (see the header): low, not cached */
  disturbed?: boolean;
}

// 14 is the most AVX2 allows (16 ymm less the two sources): without it AVX2 read 2-3% low
const DEFAULT_CHAINS = [8, 10, 12, 14, 16, 20, 24];
const LANES: Record<HostTarget, number> = { avx2: 8, avx512: 16 };

/** Peak fp32 GFLOPS of one core for `isa` (default: the host's best). */
export async function peak(isa: HostTarget = hostTarget(), options: PeakOptions = {}): Promise<number> {
  return (await peakRecord(isa, options)).gflops;
}

/** Peak with its details: which chain count won, every count's figure, whether it was cached. */
export async function peakRecord(isa: HostTarget = hostTarget(), options: PeakOptions = {}): Promise<PeakRecord> {
  const host = hostIsa();
  if (isa === 'avx512' ? !host.avx512 : !(host.avx2 && host.fma)) {
    throw new Error(`host CPU ${host.model} cannot run ${isa} code`);
  }
  const cacheFile = options.cacheFile === undefined ? defaultPeakCacheFile() : options.cacheFile;
  const threads = options.threads ?? 1;
  const key = threads > 1 ? `${isa}|${host.signature}|threads=${threads}` : `${isa}|${host.signature}`;
  if (cacheFile && !options.fresh) {
    const hit = readCache(cacheFile)[key];
    if (hit) return { ...hit, cached: true };
  }
  const factory = options.kernel ?? peakKernel;
  const record = await measurePeak(isa, host.model, factory, { ...options, threads });
  if (cacheFile && !record.disturbed) {
    const { cached: _, ...stored } = record;
    writeCache(cacheFile, { ...readCache(cacheFile), [key]: stored });
  }
  return record;
}

/** peak.json in looptune's cache folder (targets/runtime/cache-dir.ts: never the current folder). */
export function defaultPeakCacheFile(): string {
  return path.join(cacheDir(), 'peak.json');
}

async function measurePeak(isa: HostTarget, model: string, factory: PeakKernelFactory, options: PeakOptions & { threads: number }): Promise<PeakRecord> {
  const iters = options.itersPerRep ?? 1000;
  const threads = options.threads;
  // best of longer sampling: the matmul figures it divides are best-of samples too
  const minSeconds = options.minSeconds ?? 0.15;
  const perChains: PeakRecord['perChains'] = [];
  let disturbed = othersRunnable(threads);
  for (const chains of options.chains ?? DEFAULT_CHAINS) {
    let code: Uint8Array;
    try {
      code = factory(isa, chains, iters);
    } catch {
      continue; // e.g. more chains than the ISA has registers
    }
    // 'parallel': every thread runs the whole probe (it ignores tid), so the flops are per thread times threads
    const kernel: NativeKernel = {
      code,
      abi: { kind: 'sysv-x86-64', tensors: [{ name: 'dummy', elements: 64 }], ...(threads > 1 ? { parallel: true } : {}) },
      flops: chains * LANES[isa] * 2 * iters * threads,
    };
    let gflops: number;
    if (options.pool) {
      const r = await options.pool.time(kernel, { minSeconds, threads, forkPerRep: false });
      if (!r.ok) throw new Error(`peak probe with ${chains} ${isa} chains failed: ${r.error}`);
      gflops = r.gflops;
    } else {
      gflops = timeInProcess(kernel, { minSeconds, threads, forkPerRep: false }).gflops;
    }
    perChains.push({ chains, gflops });
    disturbed ||= othersRunnable(threads);
  }
  if (perChains.length === 0) throw new Error(`the peak kernel generator accepted none of the chain counts for ${isa}`);
  const best = perChains.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  return {
    isa, model, threads, gflops: best.gflops, chains: best.chains, perChains, measuredAt: new Date().toISOString(), cached: false,
    ...(disturbed ? { disturbed } : {}),
  };
}

/**
 * Whether other processes' threads are runnable now beyond the cores the probe leaves free
 * (Linux /proc/stat's procs_running less the runnable threads of this process and its workers;
 * false where it cannot tell). Our own threads are not a disturbance: libgomp's workers spin for
 * a while after each parallel region, so right after a 2-thread probe procs_running counts them.
 */
export function oversubscribed(stat = readProcStat(), ownRunning = ownRunnableThreads(), threads = 1): boolean {
  const running = Number(/^procs_running (\d+)$/m.exec(stat)?.[1]);
  if (!Number.isFinite(running)) return false;
  const others = Math.max(0, running - ownRunning);
  // the reader itself is one of our own running threads; a probe on all cores leaves none free
  return others > Math.max(0, availableParallelism() - threads);
}

/**
 * oversubscribed() on three samples 2 ms apart, disturbed only if all say so: procs_running and
 * the threads' states are read at slightly different moments, and a worker that stops spinning
 * between the two reads looks like a stranger once; a competing job stays runnable.
 */
function othersRunnable(threads: number): boolean {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let sample = 0; sample < 3; sample++) {
    if (!oversubscribed(undefined, undefined, threads)) return false;
    Atomics.wait(pause, 0, 0, 2);
  }
  return true;
}

/**
 * Runnable threads (state R) of this process and its children (the measurement pool's workers
 * run the probe in a child process), from /proc/<pid>/task/<tid>/stat.
 */
function ownRunnableThreads(): number {
  let n = 0;
  for (const pid of [process.pid, ...childPids()]) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // no /proc, or the child ended
    }
    for (const tid of tids) {
      if (procState(`/proc/${pid}/task/${tid}/stat`)?.state === 'R') n++;
    }
  }
  return Math.max(1, n); // the reader itself
}

function childPids(): number[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  return pids.filter((pid) => procState(`/proc/${pid}/stat`)?.ppid === process.pid).map(Number);
}

/** The state letter and parent pid of a /proc stat line; the command name before them may contain ') '. */
function procState(file: string): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(file, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: state ?? '', ppid: Number(ppid) };
  } catch {
    return undefined; // ended between the listing and the read
  }
}

function readProcStat(): string {
  try {
    return readFileSync('/proc/stat', 'utf8');
  } catch {
    return '';
  }
}

/** `ret`: a parallel kernel that does nothing, so that timing it times the fork and join alone. */
const EMPTY_KERNEL: NativeKernel = {
  code: new Uint8Array([0xc3]),
  abi: { kind: 'sysv-x86-64', tensors: [{ name: 'dummy', elements: 16 }], parallel: true },
  flops: 0,
};

/** Seconds of one libgomp fork-join on `threads` threads (best over repeated empty parallel calls). */
export async function forkJoinSeconds(pool: MeasurementPool, threads: number, minSeconds = 0.05): Promise<number> {
  const r = await pool.time(EMPTY_KERNEL, { threads, minSeconds });
  if (!r.ok) throw new Error(`fork-join probe on ${threads} threads failed: ${r.error}`);
  return r.bestSeconds;
}


/** peak.json: records by `${isa}|${host signature}`. */
type PeakCache = Record<string, Omit<PeakRecord, 'cached'>>;

function readCache(file: string): PeakCache {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return parsed && typeof parsed === 'object' ? (parsed as PeakCache) : {};
  } catch {
    return {}; // missing or corrupt: measure again
  }
}

function writeCache(file: string, cache: PeakCache): void {
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename, so a concurrent reader never sees half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache, null, 2) + '\n');
    renameSync(tmp, file);
  } catch {
    // A read-only home must not make peak() fail: the figure is still returned.
  }
}
