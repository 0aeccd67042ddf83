import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spiedEvaluator } from '../../helpers/spied-evaluator.ts';
import { LoopTuneError, parseProblem, Rng, Schedule } from '../../../ir/index.ts';
import type { Problem } from '../../../ir/problem.ts';
import type { SketchSource } from '../../../env/evaluator.ts';
import { syntheticEvaluator, syntheticGflops } from '../../../env/synthetic.ts';
import { evolutionSearch, MutatorMix, type GenerationReport, type Mutator } from '../../../agent/search/index.ts';
import { mutateOrder, mutateTiles } from '../../../agent/search/moves.ts';
import { SearchContext } from '../../../agent/searcher.ts';
import { gemmSeeds, sampleSketch, sketchSourceOf, sketchTargetFor } from '../../../agent/search/sketch.ts';

const mm = parseProblem('matmul 64x64x64');


function sum(reports: readonly GenerationReport[], key: 'drawn' | 'kept'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const g of reports) for (const [k, v] of Object.entries(g[key])) out[k] = (out[k] ?? 0) + v;
  return out;
}

test('MutatorMix draws each operator with probability weight / total; weight 0 never', () => {
  const names = ['a', 'b', 'c', 'never'];
  const ops: Mutator[] = names.map((name) => ({ name, mutate: () => [] }));
  const mix = new MutatorMix([[ops[0]!, 5], [ops[1]!, 3], [ops[3]!, 0], [ops[2]!, 2]]);
  const rng = new Rng(5);
  const counts = [0, 0, 0, 0];
  const n = 20000;
  for (let i = 0; i < n; i++) counts[mix.draw(rng)]!++;
  assert.is(counts[2], 0, 'a zero weight is never drawn');
  for (const [i, w] of [[0, 0.5], [1, 0.3], [3, 0.2]] as const) {
    assert.ok(Math.abs(counts[i]! / n - w) < 0.015, `${mix.mutators[i]!.name}: ${counts[i]! / n} vs ${w}`);
  }
  assert.throws(() => new MutatorMix([]), (e: unknown) => e instanceof LoopTuneError && /mutator list is empty/.test(e.message));
  assert.throws(() => new MutatorMix([[mutateTiles, -1]]), (e: unknown) => e instanceof LoopTuneError && /'mutateTiles' has weight -1/.test(e.message));
  assert.throws(() => new MutatorMix([[mutateTiles, 0]]), /sum to 0/);
});

test('evolution hands its child slots to the mutators in proportion to their weights', async () => {
  const reports: GenerationReport[] = [];
  const s = evolutionSearch({ mutators: [[mutateTiles, 3], [mutateOrder, 1]], onGeneration: (g) => reports.push(g) });
  // with a cost model each generation breeds 64 candidates: many draws
  const predict = (ss: readonly Schedule[]) => ss.map((x) => syntheticGflops(x, 100));
  const r = await s.search(mm, { evaluator: syntheticEvaluator(), budget: { measurements: 120 }, seed: 3, predict });
  assert.is(r.measurements, 120);
  const drawn = sum(reports, 'drawn');
  const kept = sum(reports, 'kept');
  assert.equal(Object.keys(drawn).sort(), ['mutateOrder', 'mutateTiles'], 'plain moves are named by their function');
  const total = drawn.mutateTiles! + drawn.mutateOrder!;
  assert.ok(total > 800, `${total} draws`);
  assert.ok(Math.abs(drawn.mutateTiles! / total - 0.75) < 0.04, `tiles got ${drawn.mutateTiles} of ${total} slots`);
  assert.ok(kept.mutateTiles! > 0 && kept.mutateOrder! > 0, JSON.stringify(kept));
});

test('seeds are measured right after the default and bred from: the first generation', async () => {
  const seeds = [Schedule.parse(mm, 'm:4 n:4 k:64 m:16 n:16'), Schedule.parse(mm, 'n:8 m:8 k:64 m:8 n:8')];
  // a sketch source without seeds of its own (the CPU one adds GEMM seeds: tests below cover them)
  const e = spiedEvaluator({ sketches: { share: 0.7, sample: () => undefined } });
  // no fresh schedules, and mutators that keep the loop count: a 5-loop child can only descend from a seed
  const r = await evolutionSearch({ seeds: () => [Schedule.initial(mm), ...seeds], initial: 0, epsilon: 0, mutators: [[mutateTiles, 1], [mutateOrder, 1]] })
    .search(mm, { evaluator: e, budget: { measurements: 12 }, seed: 1 });
  assert.equal(e.asked.slice(0, 3).map((s) => s.text()), [Schedule.initial(mm).text(), ...seeds.map((s) => s.text())],
    'the default, then the seeds (the default seed is not asked for again)');
  assert.is(r.measurements, 12);
  const children = e.asked.slice(3);
  assert.ok(children.length === 9 && children.every((s) => s.loops.length === 5 || s.loops.length === 3));
  assert.ok(children.filter((s) => s.loops.length === 5).length >= 5, 'bred from the seeds');
});

test('on a GEMM-shaped problem the CPU sketch source seeds BLIS-style tiles, measured right after the default', async () => {
  const e = spiedEvaluator();
  await evolutionSearch({ initial: 0, epsilon: 0 }).search(mm, { evaluator: e, budget: { measurements: 6 }, seed: 1 });
  const seeds = gemmSeeds(mm, sketchTargetFor(e.target), 10).map((s) => s.text());
  assert.ok(seeds.length >= 2);
  assert.equal(e.asked.slice(1, 1 + Math.min(5, seeds.length)).map((s) => s.text()), seeds.slice(0, 5));
  // the register tile of every seed fits: rows x vectors accumulators plus two operands
  for (const t of seeds) assert.match(t, /n:16 m:(6|12)$/);
});

test('the same seed gives the same candidates in the same order; another seed others', async () => {
  const run = async (seed: number) => {
    const e = spiedEvaluator();
    await evolutionSearch({ mutators: [[mutateTiles, 1], [mutateOrder, 1]] }).search(mm, { evaluator: e, budget: { measurements: 40 }, seed });
    return e.asked.map((s) => s.text());
  };
  const [a, b, c] = [await run(9), await run(9), await run(10)];
  assert.equal(a, b);
  assert.not.equal(a, c);
});

test("fresh schedules and seeds come from the evaluator's sketch source, where it has one", async () => {
  let sampled = 0;
  const seed = Schedule.parse(mm, 'm:2 n:2 k:64 m:32 n:32');
  const own: SketchSource = {
    share: 1,
    seeds: (p: Problem) => (p === mm ? [seed] : []),
    sample: (p, rng, maxLoops) => {
      sampled++;
      return sampleSketch(p, rng, { lanes: 4, registers: 8 }, maxLoops);
    },
  };
  const e = spiedEvaluator({ sketches: own });
  assert.is(sketchSourceOf(e), own);
  assert.is(sketchSourceOf(new SearchContext('t', mm, { evaluator: e, budget: { steps: 1 } }).chargingEvaluator()), own, 'a charging wrapper keeps it');
  assert.is(sketchSourceOf(syntheticEvaluator()).share, 0.7, 'the CPU sketches otherwise');
  assert.equal(sketchTargetFor('avx2'), { lanes: 8, registers: 14 });
  await evolutionSearch().search(mm, { evaluator: e, budget: { measurements: 20 }, seed: 2 });
  assert.is(e.asked[1]!.text(), seed.text(), "the source's seed right after the default");
  assert.ok(sampled >= 8, `${sampled} sketches drawn`);
});

test('infeasible candidates are dropped before they cost a measurement or a step', async () => {
  // a target that runs no schedule with a tail: many sketches and re-tilings of 64 have one
  const rejected = new Set<string>();
  const validate = (s: Schedule) => {
    if (!s.loops.some((l) => l.tail > 0)) return undefined;
    rejected.add(s.hash());
    return 'no kernel with tails here';
  };
  const e = spiedEvaluator({ validate });
  const r = await evolutionSearch().search(mm, { evaluator: e, budget: { measurements: 40 }, seed: 4 });
  assert.ok(rejected.size > 0, 'the search met infeasible candidates');
  assert.is(r.infeasible, 0, 'and never asked for one');
  assert.is(r.measurements, 40);
  assert.is(e.asked.length, 40);
  for (const s of e.asked) assert.is(validate(s), undefined, s.text());
  assert.is(r.steps, r.measurements + r.cacheHits);
});

test.run();
