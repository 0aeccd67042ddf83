/**
 * The one contract a target fulfils: a Backend turns a Schedule into a Kernel and opens the Device
 * that runs and times it. Everything that differs between targets (caps, extra actions, loop limit,
 * nominal peak, sketches, launch feasibility, whether timings are native, the vendor baseline) is a
 * field here, so that nothing outside targets/ branches on a target's name (targets/registry.ts
 * holds the one name -> Backend map).
 */
import type { Problem } from '../ir/problem.ts';
import type { Rng } from '../ir/random.ts';
import type { Schedule } from '../ir/schedule.ts';
import type { TargetCaps } from '../loopnest/caps.ts';
import type { Kernel } from './kernel.ts';
import type { Timing } from './runtime/timing.ts';
import type { KernelRunner } from './verify.ts';

export type { TargetCaps } from '../loopnest/caps.ts';

/** A target's sketches: well-structured random schedules that searches start from and draw fresh members from. */
export interface SketchSource {
  /** a random sketch of `problem` within `maxLoops` loops, or undefined when the draw does not fit. */
  sample(problem: Problem, rng: Rng, maxLoops: number): Schedule | undefined;
  /** known-good schedules a search measures before any random one (none when absent). */
  seeds?(problem: Problem, maxLoops: number): Schedule[];
  /** share of a search's fresh schedules drawn as sketches; the rest are random action walks. */
  readonly share: number;
}

/** The register budget the CPU sketches tile for (agent/search/sketch.ts). */
export interface SketchRegisters {
  /** fp32 lanes per vector register */
  lanes: number;
  /** registers for accumulators and operands */
  registers: number;
}

/**
 * Where a backend's figures come from: 'native' timings of its kernels on this machine; 'emulated'
 * kernels run (and verify) under an emulator whose timings say nothing about the hardware, so the
 * figures come from a predictor; 'model' a built-in model of the schedule (nothing runs).
 */
export type TimingKind = 'native' | 'emulated' | 'model';

export interface Backend {
  readonly name: string;
  /** what the CPU lowering asks (loopnest/caps.ts) */
  readonly caps: TargetCaps;
  /** actions beyond LoopTune's that this target adds (cuda: bind_block, bind_thread, stage_shared) */
  readonly actions: readonly string[];
  /** default loop limit of the environment and searches */
  readonly maxLoops: number;
  /** fp32 peak of a typical core/device of the target (the nominal-peak table is the set of these);
   *  the fallback when a probe fails and the floor of the bound on recorded figures */
  readonly nominalPeakGflops: number;
  readonly timing: TimingKind;
  /** the family of the device's vendor library, known before the device opens ('OpenBLAS', 'cuBLAS') */
  readonly baselineFamily?: string;
  /** the CPU sketches' register budget (absent where `sketches` replaces them) */
  readonly sketchRegisters: SketchRegisters;
  /** how searches draw fresh schedules on this target; absent: the CPU sketches */
  readonly sketches?: SketchSource;
  /** what runs the kernels: a CPU core, or a GPU (kernels are module text; loops carry GPU bindings;
   *  the cost model uses its GPU features) */
  readonly processor: 'cpu' | 'gpu';
  /** schedule -> Kernel (lowering + printing); `codegenMicros` covers both. `overwrite` asks for
   *  output = result on accumulating ops (granted where Kernel.abi.overwrites says so) */
  compile(schedule: Schedule, options?: CompileOptions): Kernel;
  /** one line about the plan a kernel came from (register tile; GPU mapping) */
  describe(kernel: Kernel): string;
  /** human-readable listing of a kernel (disassembly or module text) */
  disassemble?(kernel: Kernel): string;
  /** why `schedule` can never run on this target (cuda: no feasible launch), undefined when it can */
  validate?(schedule: Schedule): string | undefined;
  /** the kernel's LLVM IR (the llvm backends: `show --ir`) */
  moduleText?(schedule: Schedule): string;
  /** a built-in GFLOPS model (timing 'model'): figures without running anything */
  model?(schedule: Schedule, peakGflops: number): number;
  /** the device that runs and times this target's kernels (one line LoopTuneError when there is none) */
  open(options?: DeviceOptions): Promise<Device>;
}

export interface CompileOptions {
  overwrite?: boolean;
}

export interface DeviceOptions {
  /** CPU threads kernels with a parallel band run on, and the peak and baseline are measured at
   *  (default 1; targets without threads ignore it) */
  threads?: number;
  /** measurements at once (default 1) */
  concurrency?: number;
  /** minimum sampled seconds per timing */
  minSeconds?: number;
  /** per-kernel time limit in seconds */
  timeoutSeconds?: number;
}

/** `servedBy`: the farm worker that timed it (host and pid), for a remote Device's timings. */
export type TimeOutcome = ({ ok: true; servedBy?: string } & Timing) | { ok: false; error: string };

export interface TimeRequest {
  /** this timing's threads instead of the device's (tune compares a kernel at T threads with one) */
  threads?: number;
  minSeconds?: number;
  /** a kernel slower than this per call is timed by fewer calls (targets/runtime/timing.ts) */
  slowSeconds?: number;
}

/** How a peak figure was obtained: probed now, from the probe's cache, nominal (the probe failed,
 *  or there is nothing to probe: under emulation the figure is the nominal one). */
export interface PeakReading {
  gflops: number;
  source: 'measured' | 'cached' | 'nominal' | 'model';
  /** why the probe failed (source 'nominal' on a native device) */
  error?: string;
  /** how it was measured, for reports */
  method?: string;
}

export type BaselineOutcome = { ok: true; library: string; gflops: number; bestSeconds: number; medianSeconds: number; threads?: number } | { ok: false; error: string };

/** The vendor library on a device, timed like our kernels. */
export interface Baseline {
  /** the library's family name before it is loaded ('OpenBLAS', 'cuBLAS'); a timing names the exact build */
  readonly family: string;
  /** why the library cannot compute `problem` (undefined when it can) */
  coverage(problem: Problem): string | undefined;
  time(problem: Problem, options?: { minSeconds?: number }): Promise<BaselineOutcome>;
}

export interface Device {
  /** timings are of the real hardware (false under emulation: never compare them with native figures) */
  readonly native: boolean;
  /** the host key written into (and required of) tuning records; it names the thread count when
   *  above one, so records of different thread counts never mix */
  readonly host: string;
  /** threads its kernels, peak and baseline run on (absent: 1) */
  readonly threads?: number;
  run: KernelRunner;
  time(kernel: Kernel, request?: TimeRequest): Promise<TimeOutcome>;
  /** the device's peak GFLOPS at its thread count: the denominator of rewards and "% of peak" (NaN under emulation) */
  peak(): Promise<PeakReading>;
  baseline?: Baseline;
  close(): Promise<void>;
}

/** `gflops` next to the baseline's figure on a problem: the `baseline` field of every result. */
export interface BaselineFigure {
  /** the library's name, version and kernel set: 'OpenBLAS 0.3.21 (Cooperlake)', 'cuBLAS 13.1' */
  library: string;
  gflops: number;
  /** our GFLOPS / the library's */
  ratio: number;
  /** CPU threads the library ran on (absent on a GPU) */
  threads?: number;
}

export interface BaselineComparison {
  baseline?: BaselineFigure;
  baselineError?: string;
  /** @deprecated one release: baseline.gflops */
  openblasGflops?: number;
  /** @deprecated one release: baseline.library */
  openblasCorename?: string;
  /** @deprecated one release: baseline.ratio */
  openblasRatio?: number;
  /** @deprecated one release: baselineError */
  openblasError?: string;
}

/** The device's baseline on `problem`, beside our `gflops` (the new field and its deprecated aliases). */
export async function compareWithBaseline(problem: Problem, device: Device, gflops: number, options: { minSeconds?: number } = {}): Promise<BaselineComparison> {
  const error = (e: string): BaselineComparison => ({ baselineError: e, openblasError: e });
  if (!device.baseline) return error('this device has no vendor library to compare with');
  const why = device.baseline.coverage(problem);
  if (why) return error(why);
  let o: BaselineOutcome;
  try {
    o = await device.baseline.time(problem, options);
  } catch (e) {
    return error(e instanceof Error ? e.message : String(e));
  }
  if (!o.ok) return error(o.error);
  const ratio = gflops / o.gflops;
  return {
    baseline: { library: o.library, gflops: o.gflops, ratio, ...(o.threads !== undefined ? { threads: o.threads } : {}) },
    openblasGflops: o.gflops, openblasCorename: o.library, openblasRatio: ratio,
  };
}

/** M, N, K when the problem is a plain row-major matmul (what sgemm computes). */
export function gemmShape(p: Problem): { m: number; n: number; k: number } | null {
  if (p.op !== 'matmul') return null;
  const [m, n, k] = p.vars.map((v) => v.extent);
  return { m: m!, n: n!, k: k! };
}
