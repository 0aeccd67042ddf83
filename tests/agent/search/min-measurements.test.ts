/**
 * Budget.minMeasurements: a seconds limit already spent does not end a search before it measured
 * that many schedules (tune's default budget on a slow machine, where proposing alone took the
 * whole second and the default schedule came back); without it, the search stops at once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../../ir/index.ts';
import { syntheticEvaluator } from '../../../env/synthetic.ts';
import { createSearcher } from '../../../agent/search/index.ts';

const problem = parseProblem('matmul 64x64x64');

test('a spent seconds budget still measures minMeasurements schedules, then stops', async () => {
  const r = await createSearcher('random').search(problem, { evaluator: syntheticEvaluator(), budget: { seconds: 1e-9, measurements: 40, minMeasurements: 6 }, seed: 1 });
  assert.is(r.measurements, 6);
  const none = await createSearcher('random').search(problem, { evaluator: syntheticEvaluator(), budget: { seconds: 1e-9, measurements: 40 }, seed: 1 });
  assert.ok(none.measurements <= 1, `without the minimum the search measured ${none.measurements}`);
});

test('minMeasurements never lifts the measurements limit', async () => {
  const r = await createSearcher('random').search(problem, { evaluator: syntheticEvaluator(), budget: { seconds: 1e-9, measurements: 3, minMeasurements: 8 }, seed: 1 });
  assert.is(r.measurements, 3);
});

test.run();
