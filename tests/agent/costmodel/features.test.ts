import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, Schedule, Rng } from '../../../ir/index.ts';
import { lower } from '../../../loopnest/lower.ts';
import {
  FEATURE_COUNT, FEATURE_NAMES, LOOPTUNE_FEATURE_COUNT, FeatureCache, featureContext, featurize, looptuneFeatures, scheduleFeatures,
} from '../../../agent/costmodel/features.ts';
import { schedulesOf } from './helpers.ts';

const ctx = featureContext('avx512', { l1d: 48 * 1024, l2: 1 << 20, l3: 32 << 20 });
const idx = (name: string) => {
  const i = FEATURE_NAMES.indexOf(name);
  assert.ok(i >= 0, `feature ${name}`);
  return i;
};

test('documented length: FEATURE_NAMES, FEATURE_COUNT and the header table agree', () => {
  assert.is(FEATURE_NAMES.length, FEATURE_COUNT);
  assert.is(new Set(FEATURE_NAMES).size, FEATURE_COUNT);
  const header = readFileSync(new URL('../../../agent/costmodel/features.ts', import.meta.url), 'utf8');
  assert.ok(header.includes(`FEATURE_COUNT = ${FEATURE_COUNT},`), 'the header states the count');
  // the table's last row is the last feature
  assert.ok(header.includes(`| ${FEATURE_COUNT - 1}     | ${FEATURE_NAMES[FEATURE_COUNT - 1]}`));
});

test('deterministic, finite, fixed length; equal for re-parsed problems and schedules', () => {
  const rng = new Rng(7);
  for (const spec of ['matmul 176x240x80', 'conv2d n1 c16 h18 w18 k32 r3 s3', 'bmm b4 m64 n48 k32', 'add 300x70', 'reduce 64x50 axis1', 'transpose 96x40']) {
    const p = parseProblem(spec);
    for (const s of schedulesOf(p, 12, rng)) {
      const a = scheduleFeatures(s, ctx);
      const b = scheduleFeatures(Schedule.parse(parseProblem(spec), s.text()), ctx);
      assert.is(a.length, FEATURE_COUNT);
      assert.equal(Array.from(a), Array.from(b), `${spec}: ${s.text()}`);
      assert.ok(a.every(Number.isFinite), `${spec}: ${s.text()} has a non-finite feature`);
    }
  }
});

test('batched featurize equals row by row, with and without the cache', () => {
  const p = parseProblem('matmul 96x80x64');
  const ss = schedulesOf(p, 20, new Rng(3));
  const rows = featurize(ss, ctx);
  const cache = new FeatureCache();
  const cached1 = featurize(ss, ctx, cache);
  const cached2 = featurize(ss, ctx, cache);
  assert.is(cache.size, ss.length);
  ss.forEach((s, i) => assert.equal(Array.from(rows.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT)), Array.from(scheduleFeatures(s, ctx))));
  assert.equal(Array.from(cached1), Array.from(rows));
  assert.equal(Array.from(cached2), Array.from(rows));
});

test('register-tile features follow the lowering: lanes, hoisting, lane utilization, loads per FMA', () => {
  const p = parseProblem('matmul 64x64x64');
  // BLIS-like: 4x4 zmm tile (4 rows, 64 columns), k outside the unrolled region
  const good = Schedule.parse(p, 'm:16 n:1 k:64 m:4 n:64');
  const d = lower(good, ctx.caps).decision;
  const f = scheduleFeatures(good, ctx);
  assert.is(f[idx('tile.lanes')], 1);
  assert.is(f[idx('tile.scalar')], 0);
  assert.is(f[idx('tile.hoisted')], d.tileFrom < d.unrollFrom ? 1 : 0);
  assert.is(f[idx('tile.laneUtilization')], 1);
  // one group per k point: 4 broadcasts of A and 4 vectors of B for 16 FMAs
  assert.ok(Math.abs(f[idx('tile.vectorLoadsPerOp')]! - 4 / 16) < 1e-6, String(f[idx('tile.vectorLoadsPerOp')]));
  assert.ok(Math.abs(f[idx('tile.broadcastsPerOp')]! - 4 / 16) < 1e-6, String(f[idx('tile.broadcastsPerOp')]));
  // n outermost: its loop cannot join the unrolled register tile, so the lowering goes scalar
  const naive = scheduleFeatures(Schedule.parse(p, 'n:64 m:64 k:64'), ctx);
  assert.is(naive[idx('tile.scalar')], 1);
  assert.ok(naive[idx('tile.computeEfficiency')]! < f[idx('tile.computeEfficiency')]!);
  // 20 columns = one full vector plus a 4-lane tail
  const q = parseProblem('matmul 16x20x16');
  const tail = scheduleFeatures(Schedule.parse(q, 'm:4 k:16 m:4 n:20'), ctx);
  assert.ok(Math.abs(tail[idx('tile.laneUtilization')]! - 20 / 32) < 1e-6, String(tail[idx('tile.laneUtilization')]));
  assert.ok(tail[idx('tile.partialOps')]! > 0);
});

test('loop-level features list loops innermost first, zeros past the outermost', () => {
  const p = parseProblem('matmul 64x64x64');
  const s = Schedule.parse(p, 'm:16 n:1 k:64 m:4 n:64');
  const f = scheduleFeatures(s, ctx);
  assert.is(f[idx('loop[0].present')], 1);
  assert.is(f[idx('loop[0].vector')], 1);
  assert.is(f[idx('loop[2].reduction')], 1);
  assert.is(f[idx('loop[4].present')], 1);
  assert.is(f[idx('loop[5].present')], 0);
  assert.is(f[idx('loop[9].size')], 0);
});

test('cache model: traffic per flop falls with blocking; whole-tensor fit flags follow the cache sizes', () => {
  const p = parseProblem('matmul 256x256x256');
  const blocked = scheduleFeatures(Schedule.parse(p, 'k:4 m:64 n:4 k:64 m:4 n:64'), ctx);
  const naive = scheduleFeatures(Schedule.parse(p, 'm:256 k:256 n:256'), ctx);
  assert.ok(blocked[idx('mem.traffic.l1')]! < naive[idx('mem.traffic.l1')]!);
  // 256 KiB tensors: not in a 48 KiB L1, in a 1 MiB L2
  assert.is(blocked[idx('t1.fits.l1')], 0);
  assert.is(blocked[idx('t1.fits.l2')], 1);
  const small = featureContext('avx512', { l1d: 1024, l2: 2048, l3: 4096 });
  assert.is(scheduleFeatures(Schedule.parse(p, 'm:256 k:256 n:256'), small)[idx('t1.fits.l3')], 0);
});

test('LoopTune encoding alternative: 200 values, cursor column cleared', () => {
  const p = parseProblem('matmul 64x64x64');
  const s = Schedule.parse(p, 'm:16 n:1 k:64 m:4 n:64', 3);
  const v = looptuneFeatures(s);
  assert.is(v.length, LOOPTUNE_FEATURE_COUNT);
  assert.equal(Array.from(v), Array.from(looptuneFeatures(s.withCursor(0))));
});

test.run();
