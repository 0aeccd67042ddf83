import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from './helpers.ts';
import { applyAction, parseProblem, Rng, Schedule, MAX_LOOPS, LOOP_FEATURES, vectorEncoding } from '../../ir/index.ts';
import { LoopNestEnv, LOOPTUNE_ACTIONS, actionMaskOf } from '../../env/loopnest-env.ts';
import { CachingEvaluator } from '../../env/evaluator.ts';
import { syntheticEvaluator, syntheticGflops } from '../../env/synthetic.ts';

const A = (name: string) => LOOPTUNE_ACTIONS.indexOf(name);

test('default actions are LoopTune\'s', () => {
  assert.equal([...LOOPTUNE_ACTIONS], ['up', 'down', 'swap_up', 'swap_down', 'split_4', 'split_8', 'split_16']);
});

test('seeded reset is reproducible; different seeds pick different problems', async () => {
  const env = new LoopNestEnv({ evaluator: syntheticEvaluator() });
  const a = await env.reset({ seed: 42 });
  const b = await env.reset({ seed: 42 });
  assert.is(a.info.problem, b.info.problem);
  assert.equal(Array.from(a.observation), Array.from(b.observation));
  const problems = new Set<string>();
  for (let seed = 0; seed < 20; seed++) problems.add((await env.reset({ seed })).info.problem);
  assert.ok(problems.size > 10);
  // unseeded resets continue the generator: same sequence after the same seed
  await env.reset({ seed: 7 });
  const seq1 = [(await env.reset()).info.problem, (await env.reset()).info.problem];
  await env.reset({ seed: 7 });
  const seq2 = [(await env.reset()).info.problem, (await env.reset()).info.problem];
  assert.equal(seq1, seq2);
});

test('reset options: a given problem and schedule; observation in the space', async () => {
  const env = new LoopNestEnv({ evaluator: syntheticEvaluator() });
  const r = await env.reset({ options: { problem: 'matmul 64x48x32', schedule: 'm:4 m:16 n:48 k:32' } });
  assert.is(r.info.problem, 'matmul 64x48x32');
  assert.is(r.info.schedule, 'm:4 m:16 n:48 k:32');
  assert.is(r.info.source, 'measured');
  assert.is(r.info.step, 0);
  assert.is(r.observation.length, MAX_LOOPS * LOOP_FEATURES);
  assert.ok(env.observationSpace.contains(r.observation));
  assert.is(r.info.gflops, r.info.initialGflops);
});

test('action masks match applyAction and the loop limit', async () => {
  const env = new LoopNestEnv({ evaluator: syntheticEvaluator(), maxLoops: 5 });
  await env.reset({ options: { problem: 'matmul 64x64x64' } });
  // cursor 0 of m:64 n:64 k:64: up and swap_up illegal, splits legal
  assert.equal(env.actionMask(), [false, true, false, true, true, true, true]);
  const s = Schedule.parse(parseProblem('matmul 64x64x64'), 'm:16 m:4 n:4 n:16 k:64', 2);
  assert.equal(actionMaskOf(s, LOOPTUNE_ACTIONS, 5), [true, true, true, false, false, false, false]);
  assert.equal(actionMaskOf(s, LOOPTUNE_ACTIONS, 10), LOOPTUNE_ACTIONS.map((a) => applyAction(s, a).ok));
  // random states: the mask agrees with applyAction (below the loop limit)
  const rng = new Rng(5);
  const big = new LoopNestEnv({ evaluator: syntheticEvaluator(), dataset: ['matmul 100x60x70'] });
  await big.reset({ seed: 1 });
  for (let i = 0; i < 40; i++) {
    const mask = big.actionMask();
    const expected = LOOPTUNE_ACTIONS.map((a) => applyAction(big.schedule, a).ok && !(a.startsWith('split') && big.schedule.loops.length >= 10));
    assert.equal(mask, expected);
    const step = await big.step(big.actionSpace.sample(rng, mask));
    assert.equal(step.info.actionMask, big.actionMask(), 'info carries the new state\'s mask');
    if (i % 9 === 8) await big.reset();
  }
});

test('illegal actions are no-ops with info.illegal and reward 0', async () => {
  const env = new LoopNestEnv({ evaluator: syntheticEvaluator() });
  const r = await env.reset({ options: { problem: 'matmul 64x64x64' } });
  const s = await env.step(A('up'));
  assert.is(s.reward, 0);
  assert.match(s.info.illegal!, /outermost/);
  assert.is(s.info.schedule, r.info.schedule);
  assert.equal(Array.from(s.observation), Array.from(r.observation));
  assert.is(s.info.step, 1);
  await rejects(env.step(7), /not in Discrete\(7\)/);
  await rejects(env.step(-1));
});

test('rewards are GFLOPS differences over peak; cursor moves cost no measurement', async () => {
  const evaluator = syntheticEvaluator({ peakGflops: 50 });
  const env = new LoopNestEnv({ evaluator });
  const r = await env.reset({ options: { problem: 'matmul 64x64x64' } });
  const g0 = r.info.gflops;
  const measuredBefore = evaluator.stats.measured;
  const down = await env.step(A('down'));
  assert.is(down.reward, 0);
  assert.is(down.info.source, 'cached');
  assert.is(evaluator.stats.measured, measuredBefore, 'a cursor move measures nothing');
  const split = await env.step(A('split_16'));
  const expected = syntheticGflops(Schedule.parse(parseProblem('matmul 64x64x64'), 'm:64 n:4 n:16 k:64'), 50);
  assert.is(split.info.schedule, 'm:64 n:4 n:16 k:64');
  assert.is(split.info.source, 'measured');
  assert.ok(Math.abs(split.info.gflops - expected) < 1e-9);
  assert.ok(Math.abs(split.reward - (expected - g0) / 50) < 1e-12);
  // rewards telescope: sum of rewards = (final - initial) / peak
  let sum = down.reward + split.reward;
  for (const a of ['swap_down', 'down', 'swap_up', 'split_4']) sum += (await env.step(A(a))).reward;
  assert.ok(Math.abs(sum - (env.gflops - g0) / 50) < 1e-12);
});

test('episodes truncate after 10 steps by default and never terminate', async () => {
  const env = new LoopNestEnv({ evaluator: syntheticEvaluator() });
  await env.reset({ seed: 3 });
  const rng = new Rng(9);
  const flags: boolean[] = [];
  for (let i = 0; i < 10; i++) {
    const s = await env.step(env.actionSpace.sample(rng, env.actionMask()));
    flags.push(s.truncated);
    assert.not.ok(s.terminated);
  }
  assert.equal(flags, [...new Array(9).fill(false), true]);
  await rejects(new LoopNestEnv({ evaluator: syntheticEvaluator() }).step(0), /reset\(\) first/);
});

test('graph observations and the test split', async () => {
  const env = new LoopNestEnv({ evaluator: syntheticEvaluator(), observation: 'graph', split: 'test' });
  const r = await env.reset({ seed: 1 });
  assert.ok(env.observationSpace.contains(r.observation));
  assert.is(r.observation.nodes.filter((n) => n.kind === 'loop').length, 3);
  const s = await env.step(A('split_8'));
  assert.is(s.observation.nodes.filter((n) => n.kind === 'loop').length, 4);
  assert.ok(env.problems.length === 220);
});

test('a failing evaluation gives GFLOPS 0 with the error, not an exception', async () => {
  const evaluator = new CachingEvaluator({
    target: 't', peakGflops: 10, host: 'h',
    measure: async (s) => (s.loops.length > 3 ? { gflops: 0, error: 'kernel crashed (SIGSEGV)' } : { gflops: 5 }),
  });
  const env = new LoopNestEnv({ evaluator, dataset: ['matmul 32x32x32'] });
  await env.reset({ seed: 0 });
  const s = await env.step(A('split_4'));
  assert.is(s.info.gflops, 0);
  assert.is(s.info.error, 'kernel crashed (SIGSEGV)');
  assert.is(s.reward, -0.5);
});

test('vector observation is ir\'s vectorEncoding of the state', async () => {
  const env = new LoopNestEnv({ evaluator: syntheticEvaluator() });
  await env.reset({ options: { problem: 'matmul 64x64x64' } });
  const s = await env.step(A('down'));
  assert.equal(Array.from(s.observation), Array.from(vectorEncoding(env.schedule)));
});

test.run();
