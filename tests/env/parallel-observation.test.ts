import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopNestEnv, actionsForTarget, observesParallel } from '../../env/loopnest-env.ts';
import type { Evaluation, Evaluator } from '../../env/evaluator.ts';
import { Box } from '../../env/core.ts';
import { vectorEncoding, vectorSize } from '../../ir/graph.ts';
import type { Schedule } from '../../ir/schedule.ts';

/** An avx512 evaluator on `threads` threads whose figure doubles when the nest has a parallel band. */
function bandingEvaluator(threads: number): Evaluator & { asked: Schedule[] } {
  const asked: Schedule[] = [];
  return {
    target: 'avx512', peakGflops: 100, threads, asked,
    async evaluate(s): Promise<Evaluation> {
      asked.push(s);
      return { gflops: s.loops.some((l) => l.parallel) ? 20 : 10, source: 'predicted', hash: s.hash() };
    },
  };
}

const ACTIONS = ['up', 'down', 'split_4', 'parallel'];

test('with the parallel action the observation carries each loop\'s parallel flag', async () => {
  const env = new LoopNestEnv({ evaluator: bandingEvaluator(2), dataset: ['matmul 64x64x64'], actions: ACTIONS, maxSteps: 4 });
  assert.ok(env.parallelFlags);
  assert.ok(env.observationSpace instanceof Box);
  assert.equal([...env.observationSpace.shape], [vectorSize({ parallel: true })]);
  const r = await env.reset({ seed: 0 });
  assert.is(r.observation.length, 210);
  const s = await env.step(ACTIONS.indexOf('parallel'));
  assert.ok(env.schedule.loops[0]!.parallel, env.schedule.text());
  assert.equal(Array.from(s.observation), Array.from(vectorEncoding(env.schedule, { parallel: true })));
  // the flag block differs from the serial state's: a policy can see the band it built
  assert.not.equal(Array.from(s.observation), Array.from(r.observation));
  assert.is(s.reward, (20 - 10) / 100);
});

test('without the parallel action (or told so) the observation stays LoopTune\'s 200 floats', async () => {
  const serial = new LoopNestEnv({ evaluator: bandingEvaluator(2), dataset: ['matmul 64x64x64'], actions: ['up', 'down', 'split_4'] });
  assert.not.ok(serial.parallelFlags);
  assert.is((await serial.reset({ seed: 0 })).observation.length, 200);
  const told = new LoopNestEnv({ evaluator: bandingEvaluator(2), dataset: ['matmul 64x64x64'], actions: ACTIONS, parallelFlags: false });
  assert.is((await told.reset({ seed: 0 })).observation.length, 200);
  const forced = new LoopNestEnv({ evaluator: bandingEvaluator(2), dataset: ['matmul 64x64x64'], actions: ['up'], parallelFlags: true });
  assert.is((await forced.reset({ seed: 0 })).observation.length, 210);
  assert.ok(observesParallel(actionsForTarget('avx512')));
  assert.not.ok(observesParallel(actionsForTarget('cuda')));
});

test('the env runs at its evaluator\'s thread count', async () => {
  assert.is(new LoopNestEnv({ evaluator: bandingEvaluator(2), dataset: ['matmul 64x64x64'], actions: ACTIONS }).threads, 2);
  const { threads: _, ...one } = bandingEvaluator(1);
  assert.is(new LoopNestEnv({ evaluator: one, dataset: ['matmul 64x64x64'], actions: ACTIONS }).threads, 1);
});

test('GPU nests have no band: parallel flags on cuda are one clear error', () => {
  const cuda: Evaluator = { target: 'cuda', peakGflops: 100, evaluate: async (s) => ({ gflops: 1, source: 'predicted', hash: s.hash() }) };
  assert.throws(() => new LoopNestEnv({ evaluator: cuda, dataset: ['matmul 64x64x64'], parallelFlags: true }), /parallel flags are for CPU targets/);
});

test.run();
