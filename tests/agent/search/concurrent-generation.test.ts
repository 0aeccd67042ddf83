/** agent/searcher.ts evaluateAll + agent/search/evolution.ts: a generation measured at once where the evaluator runs several measurements (a farm), the budget kept exactly. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../../ir/index.ts';
import type { Schedule } from '../../../ir/schedule.ts';
import { syntheticEvaluator } from '../../../env/synthetic.ts';
import { evolutionSearch } from '../../../agent/search/index.ts';

const mm = parseProblem('matmul 64x64x64');

/** A synthetic evaluator of the given concurrency (5 ms a measurement) that records how many of its evaluations overlap. */
function overlapping(concurrency: number) {
  let now = 0;
  let most = 0;
  const e = syntheticEvaluator({ concurrency, delayMs: 5 });
  const inner = e.evaluate.bind(e);
  Object.assign(e, {
    evaluate: async (s: Schedule) => {
      most = Math.max(most, ++now);
      try {
        return await inner(s);
      } finally {
        now--;
      }
    },
  });
  return { evaluator: e, most: () => most };
}

for (const concurrency of [1, 4]) {
  test(`evolution on an evaluator of concurrency ${concurrency}: at most ${concurrency} in flight, exactly the measurement budget`, async () => {
    const o = overlapping(concurrency);
    const r = await evolutionSearch({ batch: 8, initial: 8 }).search(mm, { evaluator: o.evaluator, budget: { measurements: 30 }, seed: 3 });
    assert.is(r.measurements, 30, 'measurements in flight count against the budget: no overshoot');
    assert.ok(o.most() <= concurrency, `${o.most()} measurements overlapped`);
    if (concurrency > 1) assert.ok(o.most() > 1, 'a generation is asked for at once');
  });
}

test.run();
