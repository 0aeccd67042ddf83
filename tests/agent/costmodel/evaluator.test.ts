import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, Rng } from '../../../ir/index.ts';
import { CachingEvaluator } from '../../../env/evaluator.ts';
import { syntheticEvaluator } from '../../../env/synthetic.ts';
import { setBackendLogging } from '../../../agent/backend.ts';
import { CostModel } from '../../../agent/costmodel/model.ts';
import { CostModelEvaluator, FeedbackEvaluator, HybridEvaluator, costModelPredict, createRewardEvaluator } from '../../../agent/costmodel/evaluator.ts';
import { evolutionSearch } from '../../../agent/search/evolution.ts';
import { knownGflops, knownGroups, schedulesOf, TRAIN_SPECS } from './helpers.ts';

setBackendLogging(false);
const p = parseProblem('matmul 96x128x64');
const schedules = schedulesOf(p, 30, new Rng(11));

async function smallModel(): Promise<CostModel> {
  const m = await CostModel.create({ target: 'fake', hidden: [16], scaleGflops: 125 });
  await m.fit(knownGroups(TRAIN_SPECS.slice(0, 4), 20, 5), { epochs: 2 });
  return m;
}

/** A measured evaluator whose "measurement" is the known function, counting calls. */
function fakeMeasured() {
  const calls: string[] = [];
  const ev = new CachingEvaluator({
    target: 'fake', peakGflops: 100, host: 'h',
    measure: async (s) => {
      calls.push(s.text());
      return { gflops: knownGflops(s) };
    },
  });
  return { ev, calls };
}

test('costmodel evaluator: batched predictions as GFLOPS, source predicted', async () => {
  const model = await smallModel();
  const e = new CostModelEvaluator({ model, peakGflops: 100 });
  const rs = await e.evaluateMany(schedules.slice(0, 5));
  const direct = model.predict(schedules.slice(0, 5)).gflops;
  assert.equal(rs.map((r) => r.source), Array(5).fill('predicted'));
  rs.forEach((r, i) => assert.is(r.gflops, direct[i]));
  assert.is(e.predictions, 5);
  assert.is(e.peakGflops, 100);
  model.dispose();
});

test('hybrid evaluator measures every N-th evaluation (the first included) and calibrates the rest', async () => {
  const model = await smallModel();
  const { ev, calls } = fakeMeasured();
  const h = new HybridEvaluator({ model, measured: ev, every: 4, updateEvery: 0, checkResult: 'measured' });
  const out = [];
  for (const s of schedules.slice(0, 10)) out.push(await h.evaluate(s));
  assert.equal(out.map((r) => r.source), ['measured', 'predicted', 'predicted', 'predicted', 'measured', 'predicted', 'predicted', 'predicted', 'measured', 'predicted']);
  assert.equal(calls, [0, 4, 8].map((i) => schedules[i]!.text()));
  assert.is(out[0]!.gflops, knownGflops(schedules[0]!));
  assert.equal(h.stats, { evaluations: 10, predicted: 7, measured: 3, cached: 0, updates: 0, updateSeconds: 0 });
  // predictions are scaled by the geometric mean of measured / predicted over the checks
  const raw = model.predict([schedules[0]!, schedules[4]!, schedules[8]!]).gflops;
  const c = Math.exp([0, 4, 8].map((i, k) => Math.log(knownGflops(schedules[i]!) / raw[k]!)).reduce((a, b) => a + b, 0) / 3);
  const expected = Math.min(5, Math.max(0.2, c));
  assert.ok(Math.abs(h.calibration(p.spec) - expected) < 1e-4, `${h.calibration(p.spec)} vs ${expected}`);
  const e = await h.evaluate(schedules[20]!);
  assert.ok(Math.abs(e.gflops - model.predict([schedules[20]!]).gflops[0]! * h.calibration(p.spec)) < 1e-6);
  // a schedule the measured evaluator already knows is answered from its records, free
  const again = await h.evaluate(schedules[4]!);
  assert.is(again.source, 'cached');
  assert.is(calls.length, 3);
  await h.close();
  // by default a checked evaluation returns the calibrated prediction (one source for every reward)
  const { ev: ev2, calls: calls2 } = fakeMeasured();
  const h2 = new HybridEvaluator({ model, measured: ev2, every: 2, updateEvery: 0 });
  const r2 = await h2.evaluateMany(schedules.slice(0, 4));
  assert.equal(r2.map((r) => r.source), ['predicted', 'predicted', 'predicted', 'predicted']);
  assert.is(calls2.length, 2);
  const c0 = knownGflops(schedules[0]!) / model.predict([schedules[0]!]).gflops[0]!;
  assert.ok(Math.abs(r2[0]!.gflops - model.predict([schedules[0]!]).gflops[0]! * Math.min(5, Math.max(0.2, c0))) < 1e-4 * r2[0]!.gflops);
  model.dispose();
});

test('hybrid evaluator feeds its measurements into incremental updates', async () => {
  const model = await smallModel();
  const { ev } = fakeMeasured();
  const h = new HybridEvaluator({ model, measured: ev, every: 2, updateEvery: 3, updateEpochs: 1 });
  const before = Array.from(model.predict(schedules).score);
  await h.evaluateMany(schedules.slice(0, 12)); // 6 checks -> 2 updates
  assert.is(h.stats.measured, 6);
  assert.is(h.stats.updates, 2);
  assert.not.equal(Array.from(model.predict(schedules).score), before);
  model.dispose();
});

test('reward sources: createRewardEvaluator builds measured / costmodel / hybrid', async () => {
  const model = await smallModel();
  const { ev } = fakeMeasured();
  assert.is(await createRewardEvaluator({ reward: 'measured', measured: ev }), ev);
  const c = await createRewardEvaluator({ reward: 'costmodel', model, measured: ev });
  assert.ok(c instanceof CostModelEvaluator);
  assert.is(c.peakGflops, 100);
  assert.ok((await createRewardEvaluator({ reward: 'hybrid', model, measured: ev, every: 5 })) instanceof HybridEvaluator);
  model.dispose();
});

test('costModelPredict drives evolution; FeedbackEvaluator fine-tunes on what the search measures', async () => {
  const model = await smallModel();
  const measured = syntheticEvaluator({ peakGflops: 100 });
  const feedback = new FeedbackEvaluator({ model, measured, updateEvery: 8, updateEpochs: 1 });
  const r = await evolutionSearch({ candidates: 32 }).search(p, { evaluator: feedback, budget: { measurements: 30 }, seed: 1, predict: costModelPredict(model) });
  assert.ok(r.measurements <= 30);
  assert.ok(r.predictions > 0);
  assert.ok(feedback.updates >= 2);
  assert.ok(r.best.gflops >= r.defaultGflops);
  model.dispose();
});

test.run();
