import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, Schedule, LoopTuneError } from '../../../ir/index.ts';
import { syntheticEvaluator, syntheticGflops } from '../../../env/synthetic.ts';
import { PredictedEvaluator } from '../../../env/evaluator.ts';
import { createSearcher, SEARCHER_NAMES, evolutionSearch } from '../../../agent/search/index.ts';
import { SearchContext, runWithBudget, type SearchResult } from '../../../agent/searcher.ts';
import { LoopNestEnv } from '../../../env/loopnest-env.ts';
import { Rng } from '../../../ir/index.ts';

const mm = parseProblem('matmul 64x64x64');
const conv = parseProblem('conv2d n1 c8 h18 w18 k16 r3 s3');
const mm2 = parseProblem('matmul 48x80x32');
const ALL = [...SEARCHER_NAMES, 'greedy:1', 'greedy:3', 'beam-dfs:2', 'random:4'];

function checkResult(r: SearchResult, budget: number) {
  assert.ok(r.measurements <= budget, `${r.searcher}: ${r.measurements} measurements > ${budget}`);
  assert.is(r.history[0]!.measurements, 1, 'the default schedule is evaluated first');
  assert.is(r.history[0]!.bestGflops, r.defaultGflops);
  for (let i = 1; i < r.history.length; i++) {
    assert.ok(r.history[i]!.bestGflops >= r.history[i - 1]!.bestGflops);
    assert.ok(r.history[i]!.measurements >= r.history[i - 1]!.measurements);
    assert.ok(r.history[i]!.t >= r.history[i - 1]!.t);
  }
  assert.is(r.history[r.history.length - 1]!.bestGflops, r.best.gflops);
  assert.is(r.best.gflops, syntheticGflops(r.best.schedule, 100));
  assert.is(r.steps, r.measurements + r.cacheHits);
}

for (const name of ALL) {
  test(`${name} beats the default schedule on small problems within 40 measurements`, async () => {
    for (const problem of [mm, mm2]) {
      const evaluator = syntheticEvaluator({ peakGflops: 100 });
      const r = await createSearcher(name).search(problem, { evaluator, budget: { measurements: 40 }, seed: 3 });
      checkResult(r, 40);
      assert.ok(r.best.gflops > 1.5 * r.defaultGflops, `${name} on ${problem.spec}: ${r.defaultGflops} -> ${r.best.gflops}`);
      assert.is(r.timed, r.measurements, 'a fresh cache: every charged schedule was timed');
    }
  });
}

test('searches are reproducible from their seed', async () => {
  for (const name of SEARCHER_NAMES) {
    const run = (seed: number) => createSearcher(name).search(mm, { evaluator: syntheticEvaluator(), budget: { measurements: 25 }, seed });
    const [a, b] = [await run(7), await run(7)];
    assert.is(a.best.schedule.text(), b.best.schedule.text(), name);
    assert.equal(a.history.map((h) => [h.measurements, h.bestGflops]), b.history.map((h) => [h.measurements, h.bestGflops]));
  }
});

test('identical accounting: cache hits are free, schedules measured by another search are still charged', async () => {
  const evaluator = syntheticEvaluator();
  const first = await createSearcher('evolution').search(mm, { evaluator, budget: { measurements: 30 }, seed: 1 });
  assert.is(first.timed, 30);
  const again = await createSearcher('evolution').search(mm, { evaluator, budget: { measurements: 30 }, seed: 1 });
  assert.is(again.measurements, 30);
  assert.is(again.timed, 0, 'all answered by the shared cache');
  assert.is(again.best.schedule.text(), first.best.schedule.text());
  assert.is(evaluator.stats.measured, 30);

  const ctx = new SearchContext('t', mm, { evaluator: syntheticEvaluator(), budget: { measurements: 2 } });
  const s = Schedule.initial(mm);
  await ctx.evaluate(s);
  await ctx.evaluate(s.withCursor(2));
  await ctx.evaluate(s);
  assert.equal([ctx.measurements, ctx.cacheHits, ctx.steps], [1, 2, 3]);
});

test('budgets: steps and seconds stop every searcher; a budget is required', async () => {
  for (const name of SEARCHER_NAMES) {
    const r = await createSearcher(name).search(mm, { evaluator: syntheticEvaluator(), budget: { steps: 50 }, seed: 2 });
    assert.ok(r.steps <= 50 && r.stopReason === 'budget', `${name}: ${r.steps} steps, ${r.stopReason}`);
    const t = await createSearcher(name).search(mm, { evaluator: syntheticEvaluator({ delayMs: 2 }), budget: { seconds: 0.15 }, seed: 2 });
    assert.ok(t.seconds < 0.5, `${name}: ${t.seconds} s`);
    assert.ok(t.measurements >= 3);
  }
  await createSearcher('random').search(mm, { evaluator: syntheticEvaluator(), budget: {} }).then(
    () => assert.unreachable('an empty budget must be refused'),
    (e: Error) => assert.match(e.message, /needs seconds, measurements or steps/),
  );
});

test('a tiny problem whose space is soon exhausted ends as converged or stalled, not in a loop', async () => {
  const tiny = parseProblem('matmul 2x2x2');
  for (const name of SEARCHER_NAMES) {
    const r = await createSearcher(name).search(tiny, { evaluator: syntheticEvaluator(), budget: { measurements: 1000 } });
    assert.ok(r.stopReason !== 'budget', `${name}: ${r.stopReason}`);
    assert.ok(r.measurements < 1000);
  }
});

test('evolution ranks candidates with a cost model when one is given', async () => {
  const predict = (ss: readonly Schedule[]) => ss.map((s) => syntheticGflops(s, 100));
  const r = await evolutionSearch().search(conv, { evaluator: syntheticEvaluator(), budget: { measurements: 30 }, seed: 4, predict });
  assert.ok(r.predictions > 30);
  const plain = await evolutionSearch().search(conv, { evaluator: syntheticEvaluator(), budget: { measurements: 30 }, seed: 4 });
  assert.ok(r.best.gflops >= plain.best.gflops, `${r.best.gflops} < ${plain.best.gflops}`);
  // on a predicted evaluator, predictions are charged like measurements (distinct schedules)
  const pe = new PredictedEvaluator({ target: 'avx512', peakGflops: 100, predict });
  const q = await createSearcher('greedy').search(mm, { evaluator: pe, budget: { measurements: 20 } });
  assert.is(q.measurements, 20);
  assert.is(q.predictions, 20);
  assert.is(q.timed, 0);
});

test('a policy in the env runs under the same accounting through chargingEvaluator()', async () => {
  const r = await runWithBudget('policy', mm, { evaluator: syntheticEvaluator(), budget: { measurements: 12 } }, async (ctx) => {
    const env = new LoopNestEnv({ evaluator: ctx.chargingEvaluator(), dataset: [mm] });
    const rng = new Rng(1);
    for (;;) {
      await env.reset();
      for (let done = false; !done;) {
        const s = await env.step(env.actionSpace.sample(rng, env.actionMask()));
        done = s.truncated || s.terminated;
      }
    }
  });
  assert.is(r.measurements, 12);
  assert.is(r.stopReason, 'budget');
  assert.ok(r.best.gflops >= r.defaultGflops);
});

test('every searcher: schedules the target cannot run are answered free, never measured nor charged', async () => {
  const feasible = (x: Schedule) => x.loops[x.loops.length - 1]!.size <= 16 || x.loops.length === 3;
  for (const name of SEARCHER_NAMES) {
    const inner = syntheticEvaluator();
    const asked: Schedule[] = [];
    const evaluator = {
      target: inner.target, peakGflops: inner.peakGflops,
      evaluate: (x: Schedule) => (asked.push(x), inner.evaluate(x)),
      validate: (x: Schedule) => (feasible(x) ? undefined : 'innermost loop too long'),
    };
    const r = await createSearcher(name).search(mm, { evaluator, budget: { measurements: 20 }, seed: 6 });
    assert.is(r.measurements, asked.length, name);
    assert.ok(asked.every(feasible), name);
    assert.is(r.steps, r.measurements + r.cacheHits, name);
    assert.ok(r.infeasible <= r.cacheHits, name);
  }
});

test('searcher names', () => {
  assert.is(createSearcher('greedy').name, 'greedy2');
  assert.is(createSearcher('greedy:3').name, 'greedy3');
  assert.is(createSearcher('greedy1').name, 'greedy1');
  assert.is(createSearcher('beam').name, 'beam-bfs4');
  assert.is(createSearcher('beam-dfs:8').name, 'beam-dfs8');
  assert.is(createSearcher('evolution').name, 'evolution');
  assert.throws(() => createSearcher('annealing'), (e: unknown) => e instanceof LoopTuneError && /unknown searcher 'annealing'/.test(e.message));
});

test.run();
