import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setBackendLogging } from '../../../agent/backend.ts';
import { CostModel } from '../../../agent/costmodel/model.ts';
import { evalCostModel, trainCostModel } from '../../../agent/costmodel/cli.ts';
import { RecordStore } from '../../../env/records.ts';
import { parseProblem, Schedule } from '../../../ir/index.ts';
import { knownGroups, TRAIN_SPECS } from './helpers.ts';

setBackendLogging(false);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'looptune-costmodel-'));
const train = knownGroups(TRAIN_SPECS, 40, 1);
const heldOut = knownGroups(TRAIN_SPECS, 20, 2);

test('learns a known ranking: Spearman > 0.9 on schedules it did not see', async () => {
  const m = await CostModel.create({ target: 'synthetic', hidden: [64, 64], scaleGflops: 125 });
  await m.fit(train, { epochs: 50, groupsPerBatch: 8, learningRate: 3e-3 });
  const e = m.evaluateGroups(heldOut);
  assert.ok(e.spearman > 0.9, `spearman ${e.spearman}`);
  assert.ok(e.pairwiseAccuracy > 0.9, `pairwise ${e.pairwiseAccuracy}`);
  // the GFLOPS output is the same ranking (one joint head) on the regression scale
  const g = m.evaluateGroups(heldOut, 'gflops');
  assert.ok(Math.abs(g.spearman - e.spearman) < 1e-6);
  m.dispose();
});

test('save/load round-trips predictions exactly (tfjs model.json + weights.bin)', async () => {
  const m = await CostModel.create({ target: 'synthetic', hidden: [32], scaleGflops: 125, seed: 3 });
  await m.fit(train, { epochs: 3 });
  const dir = path.join(tmp, 'rt');
  await m.save(dir);
  assert.ok(existsSync(path.join(dir, 'model.json')) && existsSync(path.join(dir, 'weights.bin')));
  const back = await CostModel.load(dir);
  const ss = heldOut.flatMap((g) => g.schedules);
  const a = m.predict(ss), b = back.predict(ss);
  assert.equal(Array.from(b.score), Array.from(a.score));
  assert.equal(Array.from(b.gflops), Array.from(a.gflops));
  assert.equal(back.meta, m.meta);
  // the model.json path works too
  const c = await CostModel.load(path.join(dir, 'model.json'));
  assert.equal(Array.from(c.predict(ss.slice(0, 5)).score), Array.from(a.score.slice(0, 5)));
  m.dispose();
  back.dispose();
  c.dispose();
});

test('update() fine-tunes on new records and keeps the standardization', async () => {
  const m = await CostModel.create({ target: 'synthetic', hidden: [32], scaleGflops: 125 });
  await m.fit(train, { epochs: 3 });
  const mean = [...m.meta.mean];
  const ss = heldOut[0]!.schedules;
  const before = Array.from(m.predict(ss).score);
  const r = await m.update([heldOut[0]!], { epochs: 2 });
  assert.ok(r.steps >= 2);
  assert.equal(m.meta.mean, mean);
  assert.not.equal(Array.from(m.predict(ss).score), before);
  assert.is(m.meta.training?.updates, 1);
  m.dispose();
});

test('trainCostModel / evalCostModel on record files, warm start (transfer)', async () => {
  const file = path.join(tmp, 'records.jsonl');
  const store = RecordStore.open(file);
  for (const g of train.slice(0, 6)) {
    g.schedules.forEach((s, i) => store.add({
      problem: g.problem, target: 'synthetic', schedule: s.text(), hash: s.hash(), gflops: g.gflops[i]!,
      timestamp: '2026-01-01T00:00:00Z', host: 'test',
    }));
  }
  const crashed = Schedule.initial(parseProblem('matmul 64x64x64')); // a record must hash as its schedule
  store.add({ problem: 'matmul 64x64x64', target: 'synthetic', schedule: crashed.text(), hash: crashed.hash(), gflops: 0, error: 'crash', timestamp: 't', host: 'test' });
  const out = path.join(tmp, 'trained');
  const progress: number[] = [];
  const r = await trainCostModel([file], { out, target: 'synthetic', epochs: 4, onProgress: (p) => progress.push(p.epoch), validation: [file] });
  assert.equal(progress, [1, 2, 3, 4]);
  assert.is(r.data.failed, 1);
  assert.is(r.meta.training?.records, r.data.used);
  const e = await evalCostModel(out, file);
  assert.is(e.problems, 6);
  assert.is(e.records, r.data.used);
  for (const k of ['spearman', 'pairwiseAccuracy', 'top10Recall'] as const) assert.ok(e[k] >= -1 && e[k] <= 1);
  assert.ok(Math.abs(e.spearman - r.validation!.spearman) < 1e-9);
  // warm start from the trained model
  const warm = await trainCostModel([file], { out: path.join(tmp, 'warm'), target: 'synthetic', epochs: 2, init: out });
  assert.is(warm.meta.training?.warmStartedFrom, out);
  assert.equal(warm.meta.mean, r.meta.mean);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
