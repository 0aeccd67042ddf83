import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, randomProblem, randomSchedule, Schedule } from '../../../ir/index.ts';
import { crossover, mutateOrder, mutateSplitMerge, mutateTiles, randomWalk } from '../../../agent/search/moves.ts';
import { LOOPTUNE_ACTIONS } from '../../../env/loopnest-env.ts';

const perVar = (s: Schedule) => s.problem.vars.map((_, v) => s.loops.filter((l) => l.var === v).map((l) => `${l.size}r${l.tail}`).join(','));

test('mutations and crossover yield valid schedules (or nothing) within the loop limit', () => {
  const rng = new Rng(11);
  let made = 0;
  for (let i = 0; i < 300; i++) {
    const p = randomProblem(rng, rng.pick(['matmul', 'conv2d', 'bmm']), 2);
    const a = randomSchedule(p, rng, 10);
    const b = randomSchedule(p, rng, 10);
    for (const m of [mutateTiles(a, rng, 10), mutateOrder(a, rng, 10), mutateSplitMerge(a, rng, 10), crossover(a, b, 10), randomWalk(a, rng, 3, LOOPTUNE_ACTIONS, 10)]) {
      if (!m) continue;
      made++;
      assert.ok(m instanceof Schedule && m.loops.length <= 10);
      // re-validating through the parser: the text form describes a valid schedule of the same problem
      assert.is(Schedule.parse(p, m.text()).text(), m.text());
    }
    const o = mutateOrder(a, rng, 10);
    if (o) assert.equal(perVar(o), perVar(a), 'a loop-order mutation keeps every variable\'s tiling');
    const t = mutateTiles(a, rng, 10);
    if (t) assert.equal(t.loops.map((l) => l.var), a.loops.map((l) => l.var), 'a re-tiling keeps the loop order');
  }
  assert.ok(made > 600, String(made));
});

test.run();
