import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from './helpers.ts';
import { Rng } from '../../ir/index.ts';
import { graphEncoding, parseProblem, Schedule, NODE_FEATURES } from '../../ir/index.ts';
import { Box, Discrete, GraphSpace, TimeLimit, VectorEnv, type Env, type StepResult } from '../../env/core.ts';
import { LoopNestEnv } from '../../env/loopnest-env.ts';
import { syntheticEvaluator } from '../../env/synthetic.ts';

test('Discrete: samples lie in the space, masks restrict samples, contains rejects others', () => {
  const d = new Discrete(7);
  const rng = new Rng(1);
  for (let i = 0; i < 200; i++) assert.ok(d.contains(d.sample(rng)));
  const mask = [false, false, true, false, false, true, false];
  for (let i = 0; i < 100; i++) assert.ok([2, 5].includes(d.sample(rng, mask)));
  assert.not.ok(d.contains(7));
  assert.not.ok(d.contains(-1));
  assert.not.ok(d.contains(1.5));
  assert.not.ok(d.contains('1'));
  assert.throws(() => d.sample(rng, new Array(7).fill(false)), /allows no action/);
  const shifted = new Discrete(3, 10);
  assert.ok(shifted.contains(12) && !shifted.contains(0));
});

test('Box: bounds, shape, contains', () => {
  const b = new Box(0, [1, 2, 3, 4, 5, 6], [2, 3]);
  assert.is(b.size, 6);
  const rng = new Rng(3);
  for (let i = 0; i < 50; i++) assert.ok(b.contains(b.sample(rng)));
  assert.not.ok(b.contains(new Float32Array([0, 0, 0, 0, 0, 7])));
  assert.not.ok(b.contains(new Float32Array(5)));
  assert.not.ok(b.contains([0, 0, 0, 0, 0, 0]));
  assert.throws(() => new Box(1, 0, [1]), /exceeds/);
  const unbounded = new Box(-Infinity, Infinity, [4]);
  assert.ok(unbounded.contains(unbounded.sample(rng)));
});

test('GraphSpace: accepts ir graph encodings and its own samples', () => {
  const g = new GraphSpace(NODE_FEATURES, ['nest', 'access', 'compute']);
  const s = Schedule.initial(parseProblem('matmul 32x32x32'));
  assert.ok(g.contains(graphEncoding(s)));
  assert.ok(g.contains(g.sample(new Rng(2))));
  assert.not.ok(g.contains({ nodes: [], edges: [] }));
  assert.not.ok(g.contains({ nodes: [{ kind: 'loop', index: 0, features: [1] }], edges: [] }));
});

/** counts steps; terminates at step `terminateAt`. */
class CounterEnv implements Env<number> {
  readonly actionSpace = new Discrete(2);
  readonly observationSpace = new Discrete(1000);
  n = 0;
  resets = 0;
  constructor(readonly terminateAt = Infinity) {}
  async reset() {
    this.n = 0;
    this.resets++;
    return { observation: 0, info: { resets: this.resets } };
  }
  async step(a: number): Promise<StepResult<number>> {
    this.n += 1 + a;
    return { observation: this.n, reward: a, terminated: this.n >= this.terminateAt, truncated: false, info: {} };
  }
  async close() {}
}

test('TimeLimit truncates after maxEpisodeSteps and resets its count', async () => {
  const env = new TimeLimit(new CounterEnv(), 3);
  await env.reset();
  const r = [await env.step(0), await env.step(0), await env.step(0)];
  assert.equal(r.map((x) => x.truncated), [false, false, true]);
  assert.ok(r.every((x) => !x.terminated));
  await env.reset();
  assert.is(env.elapsedSteps, 0);
  assert.is((await env.step(1)).truncated, false);
  assert.ok(env.unwrapped instanceof CounterEnv);
});

test('VectorEnv auto-resets finished environments and returns their final observation and info', async () => {
  const venv = new VectorEnv([() => new CounterEnv(2), () => new CounterEnv(100)]);
  await venv.reset({ seed: 0 });
  const a = await venv.step([0, 0]);
  assert.equal(a.observations, [1, 1]);
  const b = await venv.step([0, 0]);
  assert.equal(b.terminated, [true, false]);
  assert.is(b.observations[0], 0, 'the observation is the new episode\'s first');
  assert.is(b.infos[0]!.finalObservation, 2);
  assert.equal(b.infos[0]!.finalInfo, {});
  assert.is(b.infos[0]!.resets, 2);
  assert.is(b.infos[1]!.finalObservation, undefined);
  assert.is(b.observations[1], 2);
  await rejects(venv.step([0]), /1 actions for 2 environments/);
  await venv.close();
});

test('VectorEnv of LoopNestEnvs: seeds per env, truncation auto-resets', async () => {
  const evaluator = syntheticEvaluator();
  const make = () => new TimeLimit(new LoopNestEnv({ evaluator, dataset: 'mm64-256', maxSteps: Infinity }), 2);
  const venv = new VectorEnv([make, make, make]);
  const r0 = await venv.reset({ seed: 10 });
  const solo = await new LoopNestEnv({ evaluator, dataset: 'mm64-256' }).reset({ seed: 11 });
  assert.is(r0.infos[1]!.problem, solo.info.problem, 'env i is seeded with seed + i');
  const rng = new Rng(0);
  const pick = () => venv.actionMasks().map((m) => venv.singleActionSpace.sample(rng, m));
  const s1 = await venv.step(pick());
  assert.ok(s1.truncated.every((t) => !t));
  const s2 = await venv.step(pick());
  assert.ok(s2.truncated.every((t) => t));
  for (const info of s2.infos) {
    assert.ok(info.finalInfo !== undefined);
    assert.is(info.step, 0, 'reset happened');
  }
});

test.run();
