import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { checkGemm, openblasEnvironment } from '../../../targets/runtime/openblas.ts';

const pool = new MeasurementPool();

test.after(() => pool.close());

test('the worker environment unpins OpenBLAS and fixes its threads (1 unless asked)', () => {
  const env = openblasEnvironment({ OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '512', OMP_NUM_THREADS: '1', PATH: '/bin' });
  assert.is(env.OPENBLAS_CORETYPE, undefined);
  assert.is(env.OPENBLAS_L2_SIZE, undefined);
  assert.is(env.OPENBLAS_NUM_THREADS, '1');
  assert.is(openblasEnvironment({}, undefined, 2).OPENBLAS_NUM_THREADS, '2');
  assert.is(env.OMP_NUM_THREADS, undefined);
  assert.is(env.PATH, '/bin');
  assert.is(openblasEnvironment({}, 'SkylakeX').OPENBLAS_CORETYPE, 'SkylakeX');
});

test('cblas_sgemm (C = A*B + C) matches a float64 reference on every entry of a small case', async () => {
  const r = await pool.openblasSgemm(37, 19, 23, { minSeconds: 0.01 });
  assert.ok(r.ok, r.ok ? '' : r.error);
  if (!r.ok) return;
  assert.is(r.check.checked, 37 * 19);
  assert.ok(r.check.maxRelativeError <= r.check.tolerance, `error ${r.check.maxRelativeError}`);
  assert.ok(r.corename.length > 0);
  assert.match(r.config, /OpenBLAS/);
  assert.ok(r.bestSeconds <= r.medianSeconds && r.gflops > 0);
});

test('cblas_sgemm on a two-thread pool reports them and stays correct', async () => {
  const two = new MeasurementPool({ openblasThreads: 2 });
  try {
    const r = await two.openblasSgemm(64, 48, 80, { minSeconds: 0.01 });
    assert.ok(r.ok, r.ok ? '' : r.error);
    if (!r.ok) return;
    assert.is(r.threads, 2);
    assert.ok(r.check.maxRelativeError <= r.check.tolerance);
  } finally {
    await two.close();
  }
});

test('the float64 check notices a wrong entry and NaNs', () => {
  const a = Float32Array.of(1, 2); // 1x2
  const b = Float32Array.of(3, 4); // 2x1
  const c0 = Float32Array.of(1);
  assert.is(checkGemm(1, 1, 2, a, b, c0, Float32Array.of(12)).maxRelativeError, 0);
  assert.ok(checkGemm(1, 1, 2, a, b, c0, Float32Array.of(13)).maxRelativeError > 0.05);
  assert.is(checkGemm(1, 1, 2, a, b, c0, Float32Array.of(NaN)).maxRelativeError, Infinity);
});

test.run();
