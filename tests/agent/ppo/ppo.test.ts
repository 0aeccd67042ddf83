import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, initBackend, setBackendLogging } from '../../../agent/backend.ts';
import {
  Adam, AgentRng, PPOTrainer, clipByGlobalNorm, clippedSurrogate, computeGae, entropy, evaluatePolicy, loadCheckpoint, maskLogits,
  normalize, ppoLoss, saveCheckpoint, selectedLogProbs, valueLoss, latestCheckpoint,
} from '../../../agent/ppo/index.ts';
import { createPolicy, DEFAULT_GNN, loadPolicy, savePolicy, type PolicyNetwork, type PolicySpec } from '../../../agent/policy/index.ts';
import { VectorEnv } from '../../../env/core.ts';
import { LoopNestEnv, LOOPTUNE_ACTIONS, actionMaskOf } from '../../../env/loopnest-env.ts';
import { syntheticEvaluator } from '../../../env/synthetic.ts';
import { parseProblem, Schedule, vectorEncoding, graphEncoding } from '../../../ir/index.ts';
import type { PolicyEnvs } from '../../../agent/ppo/ppo.ts';

setBackendLogging(false);
const ready = initBackend();
const close = (a: number, b: number, eps = 1e-5) => Math.abs(a - b) <= eps * Math.max(1, Math.abs(b));
const allClose = (a: ArrayLike<number>, b: ArrayLike<number>, eps = 1e-5) => {
  assert.is(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(close(a[i]!, b[i]!, eps), `[${i}] ${a[i]} != ${b[i]}`);
};
const scalar = (t: tf.Tensor) => t.dataSync()[0]!;

const mlpSpec = (hidden = [16, 16]): PolicySpec => ({
  network: { kind: 'mlp', hidden, activation: 'tanh' }, actions: [...LOOPTUNE_ACTIONS], observation: 'vector', maxLoops: 10,
});

test('GAE matches a hand computation, episode ends included', () => {
  // 2 envs x 3 steps, step-major. env 0: the episode ends at t=1; env 1: no end (bootstrap from lastValues).
  const rewards = [1, 0.5, 2, -1, 0, 1];
  const values = [0.5, 0.2, 1, 0, 0.3, 0.6];
  const dones = [0, 0, 1, 0, 0, 0];
  const last = [0.7, 0.9];
  const g = 0.9, l = 0.8;
  const { advantages, returns } = computeGae(rewards, values, dones, last, 2, g, l);
  // env 0: t=2: delta = 0 + g*0.7 - 0.3; t=1 (done): delta = 2 - 1 ; t=0: delta = 1 + g*1 - 0.5
  const a0_2 = 0 + g * 0.7 - 0.3;
  const a0_1 = 2 - 1;
  const a0_0 = 1 + g * 1 - 0.5 + g * l * a0_1;
  // env 1: t=2: 1 + g*0.9 - 0.6; t=1: -1 + g*0.6 - 0 ... wait: values of env 1 are [0.2, 0, 0.6]
  const a1_2 = 1 + g * 0.9 - 0.6;
  const a1_1 = -1 + g * 0.6 - 0 + g * l * a1_2;
  const a1_0 = 0.5 + g * 0 - 0.2 + g * l * a1_1;
  allClose(advantages, [a0_0, a1_0, a0_1, a1_1, a0_2, a1_2]);
  allClose(returns, [a0_0 + 0.5, a1_0 + 0.2, a0_1 + 1, a1_1 + 0, a0_2 + 0.3, a1_2 + 0.6]);
});

test('GAE with lambda 1 and gamma 1 gives Monte-Carlo returns', () => {
  const rewards = [1, 2, 3, 4];
  const values = [0, 0, 0, 0];
  const { returns } = computeGae(rewards, values, [0, 0, 0, 1], [5], 1, 1, 1);
  allClose(returns, [10, 9, 7, 4]);
});

test('clipped surrogate, value loss, entropy and log-probabilities on hand-made numbers', async () => {
  await ready;
  tf.tidy(() => {
    const ratio = tf.tensor1d([0.5, 1.0, 1.5, 1.1]);
    const adv = tf.tensor1d([1, -2, 2, -1]);
    // per sample max(-A r, -A clip(r, 0.8, 1.2)): [max(-0.5,-0.8), max(2,2), max(-3,-2.4), max(1.1,1.1)] = [-0.5, 2, -2.4, 1.1]
    assert.ok(close(scalar(clippedSurrogate(ratio, adv, 0.2)), (-0.5 + 2 - 2.4 + 1.1) / 4));

    const v = tf.tensor1d([1.0, 0.0]);
    const ret = tf.tensor1d([0.0, 1.0]);
    const old = tf.tensor1d([0.5, 0.5]);
    // unclipped: [1, 1]; clipped V = old + clip(v - old, -0.2, 0.2) = [0.7, 0.3]: [0.49, 0.49]; max -> [1, 1]
    assert.ok(close(scalar(valueLoss(v, ret, old, 0.2)), 0.5));
    const v2 = tf.tensor1d([0.6, 0.45]);
    // unclipped [(0.6)^2, (0.55)^2]; clipped V [0.6, 0.45] (inside the range) -> same
    assert.ok(close(scalar(valueLoss(v2, ret, old, 0.2)), 0.5 * (0.36 + 0.3025) / 2));
    assert.ok(close(scalar(valueLoss(v2, ret, old, null)), 0.5 * (0.36 + 0.3025) / 2));

    const logits = tf.tensor2d([[1, 2, 3], [0, 0, 0]]);
    const lp = tf.logSoftmax(logits) as tf.Tensor2D;
    const sel = selectedLogProbs(lp, tf.tensor1d([2, 0], 'int32')).dataSync();
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    allClose(sel, [3 - lse, -Math.log(3)]);
    const p = [1, 2, 3].map((x) => Math.exp(x - lse));
    allClose(entropy(lp).dataSync(), [-p.reduce((a, q) => a + q * Math.log(q), 0), Math.log(3)]);

    const n = normalize(tf.tensor1d([1, 2, 3, 4])).dataSync();
    const sd = Math.sqrt(((1.5 ** 2) * 2 + (0.5 ** 2) * 2) / 3);
    allClose(n, [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]);
  });
});

test('ppoLoss assembles the pieces like CleanRL (pg - ent * H + vf * V + aux * A)', async () => {
  await ready;
  tf.tidy(() => {
    const x = {
      logits: tf.tensor2d([[0.2, -0.1, 0.5], [1, 0, -1]]),
      values: tf.tensor1d([0.3, -0.2]),
      aux: tf.tensor1d([0.1, 0.4]),
      mask: tf.tensor2d([[1, 1, 0], [1, 1, 1]]),
      actions: tf.tensor1d([1, 0], 'int32'),
      oldLogProbs: tf.tensor1d([-0.9, -0.5]),
      advantages: tf.tensor1d([0.5, -0.25]),
      returns: tf.tensor1d([0.4, 0.1]),
      oldValues: tf.tensor1d([0.25, 0.0]),
      auxTargets: tf.tensor1d([0.2, 0.2]),
    };
    const c = { clipCoef: 0.2, clipVloss: true, normAdv: false, entCoef: 0.01, vfCoef: 0.5, auxCoef: 2 };
    const t = ppoLoss(x, c);
    // by hand: masked row 0 has actions {0, 1}
    const lp0 = -0.1 - Math.log(Math.exp(0.2) + Math.exp(-0.1));
    const lp1 = 1 - Math.log(Math.exp(1) + 1 + Math.exp(-1));
    const r = [Math.exp(lp0 + 0.9), Math.exp(lp1 + 0.5)];
    const adv = [0.5, -0.25];
    const clip = (q: number) => Math.min(1.2, Math.max(0.8, q));
    const pg = (Math.max(-adv[0]! * r[0]!, -adv[0]! * clip(r[0]!)) + Math.max(-adv[1]! * r[1]!, -adv[1]! * clip(r[1]!))) / 2;
    assert.ok(close(scalar(t.pgLoss), pg), `pg ${scalar(t.pgLoss)} vs ${pg}`);
    const aux = ((0.1 - 0.2) ** 2 + (0.4 - 0.2) ** 2) / 2;
    assert.ok(close(scalar(t.auxLoss), aux));
    const total = scalar(t.pgLoss) - 0.01 * scalar(t.entropy) + 0.5 * scalar(t.vLoss) + 2 * aux;
    assert.ok(close(scalar(t.loss), total));
    assert.ok(close(scalar(t.approxKl), ((r[0]! - 1) - Math.log(r[0]!) + (r[1]! - 1) - Math.log(r[1]!)) / 2));
  });
});

test('masked logits give illegal actions probability 0 and the sampler never draws them', async () => {
  await ready;
  const probs = tf.tidy(() => tf.softmax(maskLogits(tf.tensor2d([[5, 1, 9, 2]]), tf.tensor2d([[1, 1, 0, 1]]))).dataSync());
  assert.is(probs[2], 0);
  const rng = new AgentRng(3);
  const lp = [Math.log(0.01), Math.log(0.01), Math.log(0.97), Math.log(0.01)];
  for (let i = 0; i < 2000; i++) assert.is.not(rng.categorical(lp, [true, true, false, true]), 2);
  // in the env: every action PPO takes is legal
  const evaluator = syntheticEvaluator();
  const envs = new VectorEnv(Array.from({ length: 4 }, () => new LoopNestEnv({ evaluator, dataset: ['matmul 64x64x64', 'matmul 80x48x96'], maxSteps: 8, maxLoops: 5 })));
  const policy = createPolicy(mlpSpec(), 1);
  const trainer = new PPOTrainer({ envs: envs as unknown as PolicyEnvs, policy, config: { numEnvs: 4, numSteps: 16, numMinibatches: 2, updateEpochs: 1, totalIterations: 3 }, peakGflops: 100 });
  for (let i = 0; i < 3; i++) {
    const s = await trainer.iterate();
    assert.is(s.illegalFraction, 0);
  }
  trainer.dispose();
  policy.dispose();
});

test('global-norm clipping scales all gradients together', async () => {
  await ready;
  tf.tidy(() => {
    const g = [tf.tensor1d([3, 0]), tf.tensor1d([0, 4])];
    const { grads, norm } = clipByGlobalNorm(g, 1);
    assert.ok(close(scalar(norm), 5));
    allClose(grads[0]!.dataSync(), [0.6, 0], 1e-4);
    allClose(grads[1]!.dataSync(), [0, 0.8], 1e-4);
    const small = clipByGlobalNorm(g, 10).grads;
    allClose(small[1]!.dataSync(), [0, 4]);
  });
});

test('Adam follows the PyTorch rule and its state round-trips', async () => {
  await ready;
  const x = tf.variable(tf.tensor1d([1, -2]));
  const adam = new Adam([x], 0.9, 0.999, 1e-8);
  adam.apply([tf.tensor1d([0.5, -1])], 0.1);
  // first step: m_hat = g, v_hat = g^2 -> x -= lr * sign(g)
  allClose(x.dataSync(), [0.9, -1.9], 1e-5);
  const st = adam.getState();
  const other = new Adam([tf.variable(tf.tensor1d([0.9, -1.9]))], 0.9, 0.999, 1e-8);
  other.setState(st);
  assert.equal(other.getState(), st);
  adam.dispose();
  other.dispose();
});

/** `initSeed` only initializes the weights; the run's seed (config) is fixed, as in one experiment. */
function tinyTrainer(initSeed: number) {
  const seed = 5;
  const evaluator = syntheticEvaluator();
  const envs = new VectorEnv(Array.from({ length: 2 }, () => new LoopNestEnv({ evaluator, dataset: 'mm64-256', maxSteps: 5 })));
  const policy = createPolicy(mlpSpec(), initSeed);
  const trainer = new PPOTrainer({
    envs: envs as unknown as PolicyEnvs, policy,
    config: { seed, numEnvs: 2, numSteps: 10, numMinibatches: 2, updateEpochs: 2, totalIterations: 10 }, peakGflops: 100,
  });
  return { trainer, policy };
}

const weightsOf = (p: PolicyNetwork) => p.params.map((q) => Array.from(q.variable.dataSync()));

test('a checkpoint restores weights, optimizer, RNG and iteration; the resumed run equals the uninterrupted one', async () => {
  await ready;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-ckpt-'));
  try {
    const a = tinyTrainer(5);
    await a.trainer.iterate();
    await a.trainer.iterate();
    await saveCheckpoint(a.trainer, dir, { elapsedSeconds: 1.5 });
    const b = tinyTrainer(99); // different init: everything must come from the checkpoint
    const st = loadCheckpoint(b.trainer, latestCheckpoint(dir)!);
    assert.is(st.iteration, 2);
    assert.is(b.trainer.iteration, 2);
    assert.is(b.trainer.globalStep, a.trainer.globalStep);
    assert.is(b.trainer.rng.state, a.trainer.rng.state);
    assert.equal(weightsOf(b.policy), weightsOf(a.policy));
    assert.equal(b.trainer.optimizer.getState(), a.trainer.optimizer.getState());
    const sa = await a.trainer.iterate();
    const sb = await b.trainer.iterate();
    assert.is(sb.meanEpisodeReturn, sa.meanEpisodeReturn);
    assert.equal(weightsOf(b.policy), weightsOf(a.policy));
    for (const t of [a, b]) { t.trainer.dispose(); t.policy.dispose(); }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MLP and GNN policies: shapes, gradients on this backend, save/load round-trip', async () => {
  await ready;
  const p = parseProblem('conv2d n1 c8 h10 w10 k8 r3 s3');
  const states = [Schedule.initial(p), Schedule.parse(p, 'n:1 k:2 c:8 h:8 w:2 k:4 r:3 s:3 w:4')];
  const masks = states.map((s) => actionMaskOf(s, LOOPTUNE_ACTIONS));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-policy-'));
  try {
    for (const spec of [mlpSpec([8]), { ...mlpSpec(), network: DEFAULT_GNN, observation: 'graph' as const }]) {
      const policy = createPolicy(spec, 3);
      const obs = states.map((s) => (spec.observation === 'graph' ? graphEncoding(s) : vectorEncoding(s)));
      const out = evaluatePolicy(policy, obs, masks);
      assert.is(out.logProbs.length, 2 * LOOPTUNE_ACTIONS.length);
      assert.is(out.values.length, 2);
      masks.forEach((m, i) => m.forEach((ok, a) => { if (!ok) assert.ok(out.logProbs[i * m.length + a]! < -1e8); }));
      const vars = policy.params.map((q) => q.variable);
      const { grads } = tf.variableGrads(() => {
        const o = policy.apply(policy.inputs(obs));
        return tf.addN([tf.sum(tf.square(o.logits)), tf.sum(o.value), tf.sum(o.aux)]) as tf.Scalar;
      }, vars);
      assert.is(Object.keys(grads).length, vars.length);
      tf.dispose(Object.values(grads));
      const where = path.join(dir, spec.network.kind);
      await savePolicy(policy, where, { note: 'test' });
      const loaded = loadPolicy(where);
      assert.is(loaded.metadata.note, 'test');
      allClose(evaluatePolicy(loaded.policy, obs, masks).values, out.values);
      loaded.policy.dispose();
      policy.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
