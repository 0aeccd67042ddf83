/** A synthetic evaluator that records every schedule it is asked to evaluate, in order (search tests). */
import type { Schedule } from '../../ir/schedule.ts';
import type { Evaluation, Evaluator, SketchSource } from '../../env/evaluator.ts';
import { syntheticEvaluator } from '../../env/synthetic.ts';

export function spiedEvaluator(extra: { validate?: (s: Schedule) => string | undefined; sketches?: SketchSource } = {}): Evaluator & { asked: Schedule[] } {
  const inner = syntheticEvaluator({ peakGflops: 100 });
  const asked: Schedule[] = [];
  return {
    target: inner.target, peakGflops: inner.peakGflops, asked,
    evaluate(s): Promise<Evaluation> {
      asked.push(s);
      return inner.evaluate(s);
    },
    ...extra,
  };
}
