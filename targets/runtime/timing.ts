/**
 * The timing loop shared by the measurement worker and the in-process path: warm up, calibrate
 * a repetition count so that one native call is long enough to time, then sample until a
 * minimum total time. Figures are per single repetition.
 */

export interface TimingOptions {
  /** minimum total sampled time in seconds (default 0.05). */
  minSeconds?: number;
  /** minimum number of samples (default 3). */
  minSamples?: number;
  /** when the warm-up call (one repetition) takes at least this long, it is the measurement: a
   *  search meets many kernels tens of times slower than the good ones, and sampling them properly
   *  would cost seconds each (default: no limit). */
  slowSeconds?: number;
}

export interface Timing {
  /** fastest repetition (least noise): the figure rewards and comparisons use. */
  bestSeconds: number;
  medianSeconds: number;
  /** flops / bestSeconds / 1e9. */
  gflops: number;
  /** repetitions per native call after calibration. */
  reps: number;
  samples: number;
}

export const DEFAULT_MIN_SECONDS = 0.05;

/**
 * The slowSeconds searches use: a kernel under a third of the peak (its warm-up call takes over
 * three times the peak's time, and at least 20 ms) is timed by that one call: on a 2048^3 matmul
 * a call at 50 GFLOPS takes a third of a second, and four of them would cost more than the
 * precision is worth for a kernel that will not win.
 */
export function slowSecondsFor(flops: number, peakGflops: number): number {
  return Math.max(0.02, (3 * flops) / (peakGflops * 1e9));
}
const DEFAULT_MIN_SAMPLES = 3;
/** one timed call should last at least minSeconds / CALL_FRACTION. */
const CALL_FRACTION = 5;
/** calibration stops here: a kernel that ignores `reps` must not grow it forever. */
const MAX_REPS = 2 ** 30;
/** ... and sampling stops here, whatever the total: only such a kernel gets this far. */
const MAX_SAMPLES = 1000;

/**
 * Time `runReps(reps)`, which performs `reps` repetitions of work worth `flops` each.
 * A sample is one native call divided by its reps.
 */
export function timeRepetitions(runReps: (reps: number) => void, flops: number, options: TimingOptions = {}): Timing {
  const minSeconds = options.minSeconds ?? DEFAULT_MIN_SECONDS;
  const minSamples = options.minSamples ?? DEFAULT_MIN_SAMPLES;
  const callSeconds = minSeconds / CALL_FRACTION;
  const timed = (reps: number): number => {
    const t0 = process.hrtime.bigint();
    runReps(reps);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };

  // Warm-up: page in buffers and code, bring caches and clocks up.
  const warm = timed(1);
  if (options.slowSeconds !== undefined && warm >= options.slowSeconds) {
    return { bestSeconds: warm, medianSeconds: warm, gflops: flops / warm / 1e9, reps: 1, samples: 1 };
  }
  // Calibrate: grow reps until one call is long enough; these calls also warm up.
  let reps = 1;
  let t = timed(reps);
  while (t < callSeconds && reps < MAX_REPS) {
    reps = Math.min(MAX_REPS, t < callSeconds / 10 ? reps * 10 : Math.ceil((reps * callSeconds * 1.1) / t));
    t = timed(reps);
  }

  // The call that ended calibration ran warm at the final reps: it is the first sample
  // (this saves a whole call for slow kernels, where one call is one repetition).
  const samples = [t / reps];
  let total = t;
  while ((total < minSeconds || samples.length < minSamples) && samples.length < MAX_SAMPLES) {
    const s = timed(reps);
    total += s;
    samples.push(s / reps);
  }
  samples.sort((a, b) => a - b);
  const bestSeconds = samples[0]!;
  const mid = samples.length >> 1;
  const medianSeconds = samples.length % 2 ? samples[mid]! : (samples[mid - 1]! + samples[mid]!) / 2;
  return { bestSeconds, medianSeconds, gflops: flops / bestSeconds / 1e9, reps, samples: samples.length };
}
