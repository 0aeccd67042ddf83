import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, Schedule, applyActions } from '../../ir/index.ts';
import { CachingEvaluator, PredictedEvaluator } from '../../env/evaluator.ts';
import { syntheticEvaluator, syntheticGflops } from '../../env/synthetic.ts';

const p = parseProblem('matmul 64x64x64');
const s0 = Schedule.initial(p);
const s1 = applyActions(s0, ['split_16']);

test('a throwing or failing measurement evaluates to 0 GFLOPS with the error, never an exception', async () => {
  const e = new CachingEvaluator({
    target: 't', peakGflops: 1, host: 'h',
    measure: async (s) => {
      if (s.loops.length === 3) throw new Error('code generation failed: no registers');
      return { gflops: 0, error: 'kernel crashed (SIGSEGV)' };
    },
  });
  const a = await e.evaluate(s0);
  assert.equal({ gflops: a.gflops, error: a.error, source: a.source }, { gflops: 0, error: 'code generation failed: no registers', source: 'measured' });
  const b = await e.evaluate(s1);
  assert.is(b.error, 'kernel crashed (SIGSEGV)');
  // failures are remembered (not re-run) but not written to the records by default
  assert.is((await e.evaluate(s1)).source, 'cached');
  assert.is(e.records.size, 0);
  assert.equal(e.stats, { measured: 2, cached: 1, failed: 2 });
});

test('concurrent requests for one schedule share a measurement; concurrency is bounded (default 1)', async () => {
  let running = 0, maxRunning = 0, calls = 0;
  const e = new CachingEvaluator({
    target: 't', peakGflops: 1, host: 'h',
    measure: async (s) => {
      calls++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return { gflops: s.loops.length };
    },
  });
  const s2 = applyActions(s0, ['split_8']);
  const s3 = applyActions(s0, ['down', 'split_4']);
  const rs = await Promise.all([e.evaluate(s0), e.evaluate(s0), e.evaluate(s1), e.evaluate(s2), e.evaluate(s3)]);
  assert.is(calls, 4);
  assert.is(maxRunning, 1);
  assert.equal(rs.map((r) => r.source), ['measured', 'cached', 'measured', 'measured', 'measured']);
  assert.is(rs[1]!.gflops, 3);
});

test('PredictedEvaluator scores batches through predict()', async () => {
  const batches: number[] = [];
  const e = new PredictedEvaluator({
    target: 'avx512', peakGflops: 100,
    predict: (ss) => {
      batches.push(ss.length);
      return ss.map((s) => s.loops.length * 10);
    },
  });
  const r = await e.evaluateMany([s0, s1]);
  assert.equal(r.map((x) => [x.gflops, x.source]), [[30, 'predicted'], [40, 'predicted']]);
  assert.is((await e.evaluate(s1)).gflops, 40);
  assert.equal(batches, [2, 1]);
  assert.is(e.predictions, 3);
});

test('synthetic evaluator: deterministic, positive, at most peak, rewards tiling and a contiguous inner loop', async () => {
  const e = syntheticEvaluator({ peakGflops: 100 });
  const a = await e.evaluate(s0);
  assert.is(a.gflops, syntheticGflops(s0, 100));
  assert.ok(a.gflops > 0 && a.gflops <= 100);
  const tiled = Schedule.parse(p, 'm:16 k:4 m:4 k:16 n:64');
  assert.ok(syntheticGflops(tiled, 100) > 2 * a.gflops);
  const strided = Schedule.parse(p, 'm:64 k:64 n:64').withLoops(Schedule.parse(p, 'n:64 k:64 m:64').loops, 0);
  assert.ok(syntheticGflops(strided, 100) < a.gflops);
  for (const spec of ['conv2d n1 c8 h10 w10 k8 r3 s3', 'bmm b2 m16 n16 k16', 'reduce 64x64 axis1', 'add 32x32']) {
    const g = syntheticGflops(Schedule.initial(parseProblem(spec)), 100);
    assert.ok(g > 0 && g <= 100, spec);
  }
});

test.run();
