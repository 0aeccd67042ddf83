/**
 * A searcher whose every proposal gets Ansor's parallel band (ir/parallelize.ts parallelizeOuter)
 * before it is evaluated: how `tune` runs a policy trained serial on several threads. Experiments
 * compare a policy that builds its own bands (the `parallel` action) against a serial one used this
 * way, on the same evaluator and budget.
 *
 * Like tune, the rule applies only when the evaluator runs more than one thread and the problem is
 * worth a fork-join (worthParallel); a proposal that already has a band is kept as it is. The
 * searcher sees its own (serial) proposals; what is measured, predicted and reported is the banded
 * schedule, so the result's best schedule is the kernel that was timed.
 */
import type { Evaluator, PredictFunction } from '../../env/evaluator.ts';
import { bandedFor } from '../../ir/parallelize.ts';
import type { Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import type { SearchOptions, SearchResult, Searcher } from '../searcher.ts';

/** The evaluator's view through the rule: every figure is the banded schedule's. */
function bandedEvaluator(e: Evaluator, band: (s: Schedule) => Schedule): Evaluator {
  return {
    target: e.target,
    peakGflops: e.peakGflops,
    ...(e.threads !== undefined ? { threads: e.threads } : {}),
    ...(e.sketches ? { sketches: e.sketches } : {}),
    ...(e.validate ? { validate: (s: Schedule) => e.validate!(band(s)) } : {}),
    evaluate: (s) => e.evaluate(band(s)),
    ...(e.evaluateMany ? { evaluateMany: (ss: readonly Schedule[]) => e.evaluateMany!(ss.map(band)) } : {}),
  };
}

export interface BandedSearcherOptions {
  /** name in reports (default '<inner>+band'). */
  name?: string;
  /** threads the band is sized for (default: the evaluator's). */
  threads?: number;
}

export function bandedSearcher(inner: Searcher, o: BandedSearcherOptions = {}): Searcher {
  const name = o.name ?? `${inner.name}+band`;
  return {
    name,
    async search(problem: Problem, options: SearchOptions): Promise<SearchResult> {
      const threads = o.threads ?? options.evaluator.threads ?? 1;
      const band = (s: Schedule): Schedule => bandedFor(s, threads);
      const predict: PredictFunction | undefined = options.predict && ((ss) => options.predict!(ss.map(band)));
      const r = await inner.search(problem, {
        ...options,
        evaluator: bandedEvaluator(options.evaluator, band),
        ...(predict ? { predict } : {}),
      });
      return { ...r, searcher: name, best: { ...r.best, schedule: band(r.best.schedule) } };
    },
  };
}
