/** The synthetic target's evaluator: its model (targets/synthetic/model.ts) behind the record cache. */
import { iterationPoints } from '../ir/problem.ts';
import type { Schedule } from '../ir/schedule.ts';
import { syntheticGflops } from '../targets/synthetic/model.ts';
import { CachingEvaluator, type CachingEvaluatorOptions } from './evaluator.ts';

export { syntheticGflops };

export interface SyntheticEvaluatorOptions extends Partial<Omit<CachingEvaluatorOptions, 'measure'>> {
  /** milliseconds each "measurement" waits (default 0), to exercise time budgets. */
  delayMs?: number;
  /** the GFLOPS model (default: the synthetic target's, targets/synthetic/model.ts). */
  model?: (s: Schedule, peakGflops: number) => number;
}

/** A CachingEvaluator over syntheticGflops: same caching and accounting as real measurements. */
export function syntheticEvaluator(options: SyntheticEvaluatorOptions = {}): CachingEvaluator {
  const peakGflops = options.peakGflops ?? 100;
  const delayMs = options.delayMs ?? 0;
  const model = options.model ?? syntheticGflops;
  return new CachingEvaluator({
    target: options.target ?? 'synthetic',
    peakGflops,
    host: options.host ?? 'synthetic',
    ...(options.records ? { records: options.records } : {}),
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    measure: async (s) => {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const gflops = model(s, peakGflops);
      const seconds = (2 * iterationPoints(s.problem)) / (gflops * 1e9);
      return { gflops, bestSeconds: seconds, medianSeconds: seconds };
    },
  });
}
