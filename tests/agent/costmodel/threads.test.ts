/**
 * The cost model at several thread counts (issue #15): the parallel feature block, records grouped
 * by the thread count of their host key, predictions that take the count, version-1 models still
 * loading, and the evaluators passing their thread count on.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bandBalance, parallelizeOuter, parseProblem, Rng, Schedule } from '../../../ir/index.ts';
import { tf } from '../../../agent/backend.ts';
import { setBackendLogging, initBackend } from '../../../agent/backend.ts';
import {
  FEATURE_COUNT, FEATURE_NAMES, FeatureCache, SERIAL_FEATURE_COUNT, featureContext, featurize, scheduleFeatures,
} from '../../../agent/costmodel/features.ts';
import { groupRecords, threadsOfHost, type RecordGroup } from '../../../agent/costmodel/data.ts';
import { CostModel, META_FORMAT, META_KEY } from '../../../agent/costmodel/model.ts';
import { fileIO } from '../../../agent/costmodel/io.ts';
import { CostModelEvaluator, HybridEvaluator, createRewardEvaluator, costModelPredict } from '../../../agent/costmodel/evaluator.ts';
import { CachingEvaluator } from '../../../env/evaluator.ts';
import type { TuningRecord } from '../../../env/records.ts';
import { threadedHostKey } from '../../../targets/runtime/host.ts';
import { knownGflops, schedulesOf } from './helpers.ts';

setBackendLogging(false);
const ctx = featureContext('avx512', { l1d: 48 * 1024, l2: 1 << 20, l3: 32 << 20 });
const at = (name: string): number => {
  const i = FEATURE_NAMES.indexOf(name);
  assert.ok(i >= SERIAL_FEATURE_COUNT, `parallel feature ${name}`);
  return i;
};
const mm = parseProblem('matmul 256x256x256');
const feat = (text: string, threads: number, c = ctx) => scheduleFeatures(Schedule.parse(mm, text), c, undefined, threads);

test('the parallel block follows the band: chunks, chunks per thread, balance (bandBalance), speedup', () => {
  assert.is(FEATURE_COUNT, SERIAL_FEATURE_COUNT + 10);
  const f = feat('m:3r16p n:4 k:256 m:80 n:64', 2);
  assert.is(f[at('par.parallel')], 1);
  assert.is(f[at('par.threads')], Math.fround(1 / 6));
  assert.ok(Math.abs(f[at('par.chunks')]! - Math.log2(1 + 4) / 16) < 1e-6, '3 full iterations + the tail');
  assert.ok(Math.abs(f[at('par.chunksPerThread')]! - Math.log2(1 + 2) / 16) < 1e-6);
  assert.is(f[at('par.balance')], bandBalance(4, 2));
  // 3 chunks on 2 threads: one thread runs 2, the other 1
  const odd = feat('m:2r32p n:4 k:256 m:112 n:64', 2);
  assert.ok(Math.abs(odd[at('par.balance')]! - bandBalance(3, 2)) < 1e-6);
  assert.ok(Math.abs(odd[at('par.speedup')]! - Math.log2(3 / 2) / 6) < 1e-6);
  // a collapsed 4 x 4 band on 4 threads
  const collapsed = feat('m:4p n:4p k:256 m:64 n:64', 4);
  assert.ok(Math.abs(collapsed[at('par.chunks')]! - Math.log2(17) / 16) < 1e-6);
  assert.ok(Math.abs(collapsed[at('par.speedup')]! - 2 / 6) < 1e-6);
});

test('a serial kernel on T threads is one chunk on one thread: balance 1/T, no speedup', () => {
  const f = feat('m:4 n:4 k:256 m:64 n:64', 2);
  assert.is(f[at('par.parallel')], 0);
  assert.is(f[at('par.balance')], 0.5);
  assert.is(f[at('par.speedup')], 0);
  assert.is(feat('m:4 n:4 k:256 m:64 n:64', 1)[at('par.balance')], 1);
  assert.is(feat('m:4 n:4 k:256 m:64 n:64', 1)[at('par.threads')], 0);
});

test('band below a serial loop: one instance per outer iteration, the busiest thread\'s chunks over all of them', () => {
  const f = feat('k:2 m:4p n:4 k:128 m:64 n:64', 2);
  assert.ok(Math.abs(f[at('par.instances')]! - Math.log2(3) / 16) < 1e-6);
  assert.ok(Math.abs(f[at('par.chunksPerThread')]! - Math.log2(1 + 4) / 16) < 1e-6, '2 instances x 2 chunks');
  assert.is(f[at('par.balance')], 1);
});

test('per-thread working set and flops shrink with threads for a band, not for a serial kernel', () => {
  const band = 'm:8p n:4 k:256 m:32 n:64';
  const b1 = feat(band, 1), b2 = feat(band, 2), b4 = feat(band, 4);
  assert.ok(b2[at('par.threadBytes')]! < b1[at('par.threadBytes')]!);
  assert.ok(b4[at('par.threadBytes')]! < b2[at('par.threadBytes')]!);
  assert.ok(b2[at('par.threadFlops')]! < b1[at('par.threadFlops')]!);
  const s1 = feat('m:8 n:4 k:256 m:32 n:64', 1), s2 = feat('m:8 n:4 k:256 m:32 n:64', 2);
  assert.is(s2[at('par.threadBytes')], s1[at('par.threadBytes')]);
  assert.is(s2[at('par.threadFlops')], s1[at('par.threadFlops')]);
  // with a 600 KiB L2 only the 2-thread share (B and half of A and C: 512 KiB) fits
  const small = featureContext('avx512', { l1d: 48 * 1024, l2: 600 * 1024, l3: 32 << 20 });
  assert.is(feat(band, 1, small)[at('par.threadFitsL2')], 0);
  assert.is(feat(band, 2, small)[at('par.threadFitsL2')], 1);
});

test('the thread count touches only the parallel block; the cache keeps the counts apart', () => {
  const ss = schedulesOf(mm, 12, new Rng(4)).map((s, i) => (i % 2 ? parallelizeOuter(s, 2) : s));
  assert.ok(ss.some((s) => s.loops.some((l) => l.parallel)));
  const one = featurize(ss, ctx, undefined, 1), two = featurize(ss, ctx, undefined, 2);
  for (let i = 0; i < ss.length; i++) {
    const a = one.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT), b = two.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT);
    assert.equal(Array.from(a.subarray(0, SERIAL_FEATURE_COUNT)), Array.from(b.subarray(0, SERIAL_FEATURE_COUNT)));
    assert.not.equal(Array.from(a.subarray(SERIAL_FEATURE_COUNT)), Array.from(b.subarray(SERIAL_FEATURE_COUNT)));
  }
  const cache = new FeatureCache();
  assert.equal(Array.from(featurize(ss, ctx, cache, 1)), Array.from(one));
  assert.equal(Array.from(featurize(ss, ctx, cache, 2)), Array.from(two));
  assert.is(cache.size, 2 * ss.length);
  assert.throws(() => scheduleFeatures(ss[0]!, ctx, undefined, 0), /threads must be a positive integer/);
});

// ---- records -------------------------------------------------------------------------------------

const HOST = 'AMD EPYC (AuthenticAMD family 26 model 2 stepping 1, avx2+fma, 2 cores)';

function record(s: Schedule, gflops: number, host: string): TuningRecord {
  return { problem: s.problem.spec, target: 'avx512', schedule: s.text(), hash: s.hash(), gflops, timestamp: '2026-12-01T00:00:00Z', host };
}

test('threadsOfHost reads the threaded host key, 1 otherwise', () => {
  assert.is(threadsOfHost(HOST), 1);
  assert.is(threadsOfHost(threadedHostKey(HOST, 1)), 1);
  assert.is(threadsOfHost(threadedHostKey(HOST, 2)), 2);
  assert.is(threadsOfHost(threadedHostKey(HOST, 16)), 16);
  assert.is(threadsOfHost('AMD EPYC'), 1);
  assert.is(threadsOfHost('threads=3 somewhere'), 1, 'only the suffix counts');
});

test('groupRecords: one group per problem and thread count; the figures never mix', () => {
  const s = Schedule.parse(mm, 'm:4 n:4 k:256 m:64 n:64');
  const b = parallelizeOuter(s, 2);
  const records = [record(s, 200, HOST), record(b, 200, HOST), record(s, 190, threadedHostKey(HOST, 2)), record(b, 390, threadedHostKey(HOST, 2))];
  const { groups } = groupRecords(records, { target: 'avx512' });
  assert.is(groups.length, 2);
  const one = groups.find((g) => (g.threads ?? 1) === 1)!, two = groups.find((g) => g.threads === 2)!;
  assert.equal(one.gflops, [200, 200]);
  assert.equal(two.gflops, [190, 390], 'the 2-thread figure of the band is not the best of both counts');
  assert.is(groupRecords(records, { threads: 2 }).groups.length, 1);
  assert.is(groupRecords(records, { threads: 2 }).stats.otherTarget, 2);
});

// ---- the model -----------------------------------------------------------------------------------

/** A known function at T threads: a band speeds the known serial figure up by its balance x T (x 0.95). */
function knownAt(s: Schedule, threads: number): number {
  const band = s.loops.filter((l) => l.parallel);
  if (threads === 1 || band.length === 0) return knownGflops(s);
  const chunks = band.reduce((a, l) => a * (l.size + (l.tail > 0 ? 1 : 0)), 1);
  return knownGflops(s) * 0.95 * threads * bandBalance(chunks, threads);
}

function threadGroups(specs: string[], perProblem: number, seed: number): RecordGroup[] {
  const rng = new Rng(seed);
  return specs.flatMap((spec) => {
    const serial = schedulesOf(parseProblem(spec), perProblem, rng);
    const mixed = serial.map((s, i) => (i % 3 === 0 ? s : parallelizeOuter(s, 2)));
    return [
      { problem: spec, schedules: serial, gflops: serial.map((s) => knownAt(s, 1)) },
      { problem: spec, schedules: mixed, gflops: mixed.map((s) => knownAt(s, 2)), threads: 2 },
    ];
  });
}

const SPECS = ['matmul 128x128x128', 'matmul 96x160x64', 'matmul 160x96x128', 'matmul 192x128x64', 'matmul 128x192x96', 'matmul 144x112x80'];

test('learns what 2 threads do to a band: ranks at 2 threads on problems it did not see, 1-thread ranking kept', async () => {
  // one core's scale is 60 GFLOPS; banded 2-thread figures reach ~130 (a 1-core scale would cap them at 60)
  const m = await CostModel.create({ target: 'avx512', hidden: [64, 64], scaleGflops: 60 });
  await m.fit(threadGroups(SPECS, 30, 1), { epochs: 40, groupsPerBatch: 8, learningRate: 3e-3 });
  const held = threadGroups(['matmul 112x144x96', 'matmul 176x80x112'], 24, 2);
  const at2 = m.evaluateGroups(held.filter((g) => g.threads === 2));
  const at1 = m.evaluateGroups(held.filter((g) => g.threads === undefined));
  assert.ok(at2.spearman > 0.8, `2 threads: spearman ${at2.spearman}`);
  assert.ok(at1.spearman > 0.8, `1 thread: spearman ${at1.spearman}`);
  // the same banded schedule is predicted faster on 2 threads than on 1
  const banded = held[1]!.schedules.filter((s) => s.loops.some((l) => l.parallel));
  const p1 = m.predict(banded, 1).gflops, p2 = m.predict(banded, 2).gflops;
  const faster = banded.filter((_, i) => p2[i]! > p1[i]!).length;
  assert.ok(faster >= 0.8 * banded.length, `${faster}/${banded.length} predicted faster on 2 threads`);
  // the regression scale is two cores' worth at 2 threads: predictions above one core's scale
  assert.is(m.regressionScale(2), 120);
  const best2 = Math.max(...held.filter((g) => g.threads === 2).flatMap((g) => Array.from(m.predict(g.schedules, 2).gflops)));
  assert.ok(best2 > 75, `best 2-thread prediction ${best2} GFLOPS`);
  assert.is(m.meta.version, 2);
  assert.is(m.meta.featureCount, FEATURE_COUNT);
  assert.ok(m.threadAware);
  m.dispose();
});

const tmp = mkdtempSync(path.join(os.tmpdir(), 'looptune-threads-'));

/** A saved model of feature version 1: 182 inputs, the metadata of then. */
async function saveVersion1(dir: string, featureCount = SERIAL_FEATURE_COUNT, version = 1): Promise<void> {
  await initBackend();
  const input = tf.input({ shape: [featureCount], name: 'features' });
  const h = tf.layers.dense({ units: 8, activation: 'relu', name: 'hidden0', kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  const score = tf.layers.dense({ units: 1, name: 'score', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(h) as tf.SymbolicTensor;
  const frac = tf.layers.activation({ activation: 'sigmoid', name: 'frac' }).apply(score) as tf.SymbolicTensor;
  const net = tf.model({ inputs: input, outputs: [score, frac] });
  await net.save(fileIO(dir, {
    [META_KEY]: {
      format: META_FORMAT, version, target: 'avx512', featureTarget: 'avx512', featureSet: 'program', arch: 'mlp', hidden: [8],
      featureCount, heads: 'joint', scaleGflops: 287.5, caches: { l1d: 49152, l2: 1048576, l3: 33554432 },
      mean: new Array(featureCount).fill(0), std: new Array(featureCount).fill(1),
    },
  }));
  net.dispose();
}

test('a version-1 model (182 features) loads and predicts from the unchanged first 182, thread-blind', async () => {
  const dir = path.join(tmp, 'v1');
  await saveVersion1(dir);
  const m = await CostModel.load(dir);
  assert.not.ok(m.threadAware);
  assert.is(m.regressionScale(2), 287.5);
  const ss = schedulesOf(mm, 8, new Rng(9)).map((s) => parallelizeOuter(s, 2));
  const a = m.predict(ss, 1), b = m.predict(ss, 2);
  assert.equal(Array.from(b.score), Array.from(a.score));
  assert.is(m.features(ss).length, ss.length * SERIAL_FEATURE_COUNT);
  // exactly the net on the prefix of the features
  const full = featurize(ss, m.featureContext);
  const prefix = new Float32Array(ss.length * SERIAL_FEATURE_COUNT);
  ss.forEach((_, i) => prefix.set(full.subarray(i * FEATURE_COUNT, i * FEATURE_COUNT + SERIAL_FEATURE_COUNT), i * SERIAL_FEATURE_COUNT));
  const direct = tf.tidy(() => ((m.net.apply(tf.tensor2d(prefix, [ss.length, SERIAL_FEATURE_COUNT])) as tf.Tensor[])[0]!.dataSync() as Float32Array));
  assert.equal(Array.from(a.score), Array.from(direct));
  m.dispose();
});

async function loadError(dir: string): Promise<string> {
  try {
    (await CostModel.load(dir)).dispose();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

test('models this version cannot read fail with one clear line', async () => {
  const odd = path.join(tmp, 'odd');
  await saveVersion1(odd, 150);
  const m1 = await loadError(odd);
  assert.match(m1, /takes 150 program features; this looptune computes 192 \(182 for version-1 models\): retrain it/);
  assert.not.match(m1, /\n/);
  const future = path.join(tmp, 'future');
  await saveVersion1(future, FEATURE_COUNT, 3);
  assert.match(await loadError(future), /format version 3 is newer than this looptune reads \(1\.\.2\)/);
  // damaged metadata: the standardization does not match the feature count
  const damaged = path.join(tmp, 'damaged');
  mkdirSync(damaged, { recursive: true });
  await saveVersion1(damaged);
  const file = path.join(damaged, 'model.json');
  const json = JSON.parse(readFileSync(file, 'utf8'));
  json.userDefinedMetadata[META_KEY].mean = [0];
  writeFileSync(file, JSON.stringify(json));
  assert.match(await loadError(damaged), /metadata is damaged/);
});

// ---- evaluators ----------------------------------------------------------------------------------

test('evaluators predict at their thread count: costmodel option, hybrid and reward sources from the measured one', async () => {
  const m = await CostModel.create({ target: 'avx512', hidden: [16], scaleGflops: 300, seed: 2 });
  await m.fit(threadGroups(SPECS.slice(0, 2), 12, 3), { epochs: 2 });
  const ss = schedulesOf(mm, 6, new Rng(5)).map((s) => parallelizeOuter(s, 2));
  const at1 = Array.from(m.predict(ss, 1).gflops), at2 = Array.from(m.predict(ss, 2).gflops);
  assert.not.equal(at2, at1);
  const e = new CostModelEvaluator({ model: m, peakGflops: 400, threads: 2 });
  assert.is(e.threads, 2);
  assert.equal((await e.evaluateMany(ss)).map((r) => r.gflops), at2);
  assert.equal(costModelPredict(m, 2)(ss), at2);
  assert.equal(costModelPredict(m)(ss), at1);
  const measured = Object.assign(new CachingEvaluator({ target: 'avx512', peakGflops: 400, host: 'h', measure: async (s) => ({ gflops: knownAt(s, 2) }) }), { threads: 2 });
  const h = new HybridEvaluator({ model: m, measured, every: 1000, updateEvery: 0 });
  assert.is(h.threads, 2);
  const r = await h.evaluateMany(ss);
  // the first evaluation is a check, the rest are 2-thread predictions (answered before the check calibrates)
  r.slice(1).forEach((x, i) => assert.ok(Math.abs(x.gflops - at2[i + 1]!) < 1e-3 * x.gflops, `${x.gflops} vs ${at2[i + 1]}`));
  const c = await createRewardEvaluator({ reward: 'costmodel', model: m, measured });
  assert.is((c as CostModelEvaluator).threads, 2);
  m.dispose();
});

test.run();
