import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spiedEvaluator } from '../../helpers/spied-evaluator.ts';
import { initBackend, setBackendLogging } from '../../../agent/backend.ts';
import { createPolicy, type PolicyNetwork } from '../../../agent/policy/index.ts';
import { policyRollout, policySearcher } from '../../../agent/ppo/search.ts';
import { evolutionSearch, type GenerationReport } from '../../../agent/search/index.ts';
import { LOOPTUNE_ACTIONS } from '../../../env/loopnest-env.ts';
import { syntheticEvaluator } from '../../../env/synthetic.ts';
import { parseProblem, Schedule } from '../../../ir/index.ts';

setBackendLogging(false);
const mm = parseProblem('matmul 64x64x64');
let cached: PolicyNetwork | undefined;

async function randomPolicy(): Promise<PolicyNetwork> {
  await initBackend();
  cached ??= createPolicy({ network: { kind: 'mlp', hidden: [16], activation: 'tanh' }, actions: [...LOOPTUNE_ACTIONS], observation: 'vector', maxLoops: 10 }, 4);
  return cached;
}


test('the policy searcher breeds with the policy as a mutator beside the baselines\' ones', async () => {
  const policy = await randomPolicy();
  const reports: GenerationReport[] = [];
  const r = await policySearcher(policy, { depth: 4, onGeneration: (g) => reports.push(g) })
    .search(mm, { evaluator: syntheticEvaluator(), budget: { measurements: 60 }, seed: 1 });
  assert.is(r.measurements, 60);
  assert.ok(reports.length >= 3, `${reports.length} generations`);
  const drawn = (name: string) => reports.reduce((n, g) => n + (g.drawn[name] ?? 0), 0);
  const kept = (name: string) => reports.reduce((n, g) => n + (g.kept[name] ?? 0), 0);
  assert.ok(drawn('policy') > 0 && kept('policy') > 0, `policy: ${drawn('policy')} drawn, ${kept('policy')} kept`);
  assert.ok(drawn('tiles') + drawn('order') + drawn('walk') + drawn('split-merge') > 0, 'the other mutators too');
  // policyShare 1: the policy is the only mutator
  const only: GenerationReport[] = [];
  await policySearcher(policy, { depth: 4, policyShare: 1, onGeneration: (g) => only.push(g) })
    .search(mm, { evaluator: syntheticEvaluator(), budget: { measurements: 40 }, seed: 1 });
  assert.ok(only.length > 0);
  for (const g of only) assert.equal(Object.keys(g.drawn), ['policy']);
});

test('policyRollout in the plain evolution: each child is a short rollout of the policy from its parent', async () => {
  const policy = await randomPolicy();
  const reports: GenerationReport[] = [];
  // a sketch source without seeds (the CPU one seeds GEMM tiles, whose sizes are not powers of 2)
  const e = spiedEvaluator({ sketches: { share: 0.7, sample: () => undefined } });
  const r = await evolutionSearch({ mutators: [[policyRollout(policy), 1]], initial: 0, epsilon: 0, onGeneration: (g) => reports.push(g) })
    .search(mm, { evaluator: e, budget: { measurements: 15 }, seed: 2 });
  assert.ok(reports.length > 0);
  assert.ok(reports.every((g) => Object.keys(g.kept).every((k) => k === 'policy')));
  // no fresh schedules and no seeds: everything measured descends from the default by policy actions
  // (the policy's action set splits by 4, 8, 16 only, so every loop size of 64 stays a power of 2)
  assert.is(r.measurements, e.asked.length);
  for (const s of e.asked) assert.ok(s.loops.every((l) => (l.size & (l.size - 1)) === 0 && l.tail === 0), s.text());
});

test('the same seed gives the policy searcher the same candidates', async () => {
  const policy = await randomPolicy();
  const run = async (seed: number) => {
    const e = spiedEvaluator();
    await policySearcher(policy, { depth: 4 }).search(mm, { evaluator: e, budget: { measurements: 30 }, seed });
    return e.asked.map((s) => s.text());
  };
  assert.equal(await run(5), await run(5));
});

test('infeasible candidates: skipped alike by the evolution and the policy searcher, never charged', async () => {
  const policy = await randomPolicy();
  // a target that runs no schedule whose innermost loop is longer than 16
  const rejected = new Set<string>();
  const validate = (s: Schedule) => {
    if (s.loops[s.loops.length - 1]!.size <= 16) return undefined;
    rejected.add(s.hash());
    return 'innermost loop too long';
  };
  for (const searcher of [evolutionSearch(), policySearcher(policy, { depth: 4 })]) {
    rejected.clear();
    const e = spiedEvaluator({ validate });
    // (the default schedule itself is infeasible here: predicted, not asked for, so that every request counts)
    const r = await searcher.search(mm, { evaluator: e, budget: { measurements: 30 }, seed: 3, skipDefault: true });
    assert.ok(rejected.size > 0, `${searcher.name} met infeasible candidates`);
    assert.is(r.infeasible, 0, `${searcher.name} asked for ${r.infeasible} infeasible schedules`);
    assert.is(r.measurements, 30, searcher.name);
    assert.is(e.asked.length, 30, searcher.name);
    for (const s of e.asked) assert.is(validate(s), undefined, `${searcher.name} measured ${s.text()}`);
  }
});

test.run();
