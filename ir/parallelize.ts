/**
 * The parallel-band rule (Ansor's sketch rule for CPUs: fuse the outer spatial loops and run them in
 * parallel): mark the outermost loops of a schedule parallel, as few as give every thread nearly the
 * same number of chunks. Searches and tune apply it to serial schedules on targets with threads; the
 * `parallel` action lets agents choose bands themselves.
 */
import { flops, isReduction, type Problem } from './problem.ts';
import { parallelBand, parallelBandError, Schedule, type Loop } from './schedule.ts';

/**
 * Below this many flops a kernel is not worth a fork-join (about 1.5 µs on this machine's libgomp,
 * against ~40 µs of work at one core's peak): the default schedule and sketches stay serial.
 */
export const MIN_PARALLEL_FLOPS = 1e7;

/** The share of thread time doing work when `chunks` equal chunks are split among `threads`. */
export function bandBalance(chunks: number, threads: number): number {
  return chunks / (threads * Math.ceil(chunks / threads));
}

/** Balance this good is enough: one more collapsed loop would only add chunk overhead. */
const GOOD_BALANCE = 0.9;

/**
 * `s` with its outermost loops parallel, or `s` itself when it already has a band, when `threads`
 * is 1, or when no outer loop can be parallel (the nest starts with a reduction loop). Candidate
 * bands are the prefixes of output loops (one per variable, never the innermost loop); the shortest
 * whose chunks balance to GOOD_BALANCE wins, else the best balanced.
 */
export function parallelizeOuter(s: Schedule, threads: number): Schedule {
  if (threads <= 1 || parallelBand(s.loops).length > 0) return s;
  const p = s.problem;
  let best: { loops: Loop[]; balance: number } | undefined;
  let chunks = 1;
  const seen = new Set<number>();
  for (let i = 0; i < s.loops.length - 1; i++) {
    const l = s.loops[i]!;
    if (isReduction(p, l.var) || seen.has(l.var)) break;
    seen.add(l.var);
    chunks *= l.size + (l.tail > 0 ? 1 : 0);
    const loops = s.loops.map((x, j) => (j <= i ? { ...x, parallel: true } : x));
    if (chunks < 2 || parallelBandError(p, loops)) continue;
    const balance = bandBalance(chunks, threads);
    if (!best || balance > best.balance + 1e-9) best = { loops, balance };
    if (balance >= GOOD_BALANCE) break;
  }
  return best ? s.withLoops(best.loops, s.cursor) : s;
}

/** Whether a problem is big enough for its default schedule and sketches to be parallel. */
export function worthParallel(problem: Problem): boolean {
  return flops(problem) >= MIN_PARALLEL_FLOPS;
}

/** `s` as it runs on `threads` threads: its outer band parallel when threads > 1 and the problem is worth a fork. */
export function bandedFor(s: Schedule, threads: number): Schedule {
  return threads > 1 && worthParallel(s.problem) ? parallelizeOuter(s, threads) : s;
}

/** LoopTune's default schedule as it runs on `threads` threads (bandedFor). */
export function defaultSchedule(problem: Problem, threads = 1): Schedule {
  return bandedFor(Schedule.initial(problem), threads);
}
