/** Result text of the CLI: no 'Infinityx' when the default schedule was not measured (tiny budgets). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeSpeedup, speedupOverDefault } from '../../cli/format.ts';

test('a speed-up is a figure only when the default schedule was measured at a non-zero speed', () => {
  assert.is(speedupOverDefault(200, 2), 100);
  for (const d of [0, Number.NaN, Number.POSITIVE_INFINITY]) assert.is(speedupOverDefault(200, d), null);
  assert.is(speedupOverDefault(Number.NaN, 2), null);
  assert.is(describeSpeedup(200, 2), '100.0x over the default schedule (2.00 GFLOPS)');
  assert.not.match(describeSpeedup(200, 0), /Infinity|NaN/);
  assert.match(describeSpeedup(200, 0), /not measured within the budget/);
});

test.run();
