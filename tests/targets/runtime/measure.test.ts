import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { hang, illegal, multiplyAccumulate, segfault, storeOne, storeOneAt } from './fixtures.ts';

// One pool for the whole file, as callers use it; a 1 s limit keeps the hang test short.
const pool = new MeasurementPool({ timeoutSeconds: 1 });

test.after(() => pool.close());

test('run returns the output of one repetition (output first, accumulate ABI)', async () => {
  const r = await pool.run(multiplyAccumulate, [Float32Array.of(1), Float32Array.of(2), Float32Array.of(3)]);
  assert.ok(r.ok, r.ok ? '' : r.error);
  if (r.ok) assert.equal(Array.from(r.output), [7]);
});

for (const [name, kernel, signal] of [
  ['SIGSEGV', segfault, 'SIGSEGV'],
  ['SIGILL', illegal, 'SIGILL'],
] as const) {
  test(`a crashing kernel (${name}) is an error result and the next job succeeds`, async () => {
    const before = pool.workersReplaced;
    const r = await pool.run(kernel, [new Float32Array(1)]);
    assert.equal(r, { ok: false, reason: 'crash', error: `kernel crashed (${signal})` });
    assert.is(pool.workersReplaced, before + 1);
    const next = await pool.run(storeOne, [new Float32Array(1)]);
    assert.ok(next.ok && next.output[0] === 1);
  });
}

test('a hanging kernel times out and the next job succeeds', async () => {
  const r = await pool.run(hang, [new Float32Array(1)]);
  assert.equal(r, { ok: false, reason: 'timeout', error: 'kernel timed out after 1 s' });
  const next = await pool.run(storeOne, [new Float32Array(1)]);
  assert.ok(next.ok && next.output[0] === 1);
});

test('guard pages catch a write one element past the end', async () => {
  const last = await pool.run(storeOneAt(9, 10), [new Float32Array(10)], { guard: true });
  assert.ok(last.ok && last.output[9] === 1 && last.output.length === 10);
  const past = await pool.run(storeOneAt(10, 10), [new Float32Array(10)], { guard: true });
  assert.equal(past, { ok: false, reason: 'crash', error: 'kernel crashed (SIGSEGV)' });
});

test('time reports best <= median, positive GFLOPS, calibrated reps', async () => {
  const r = await pool.time(multiplyAccumulate, { minSeconds: 0.02 });
  assert.ok(r.ok, r.ok ? '' : r.error);
  if (!r.ok) return;
  assert.ok(r.bestSeconds > 0 && r.bestSeconds <= r.medianSeconds);
  assert.ok(r.gflops > 0);
  assert.ok(Math.abs(r.gflops - 2 / r.bestSeconds / 1e9) < 1e-9 * r.gflops);
  assert.ok(r.reps >= 1 && r.samples >= 3);
});

test('jobs queue behind each other (concurrency 1) and all complete', async () => {
  const results = await Promise.all([1, 2, 3, 4].map(() => pool.ping()));
  assert.ok(results.every((r) => r.ok));
  const pids = new Set(results.map((r) => (r.ok ? r.pid : 0)));
  assert.is(pids.size, 1, 'one persistent worker serves them all');
});

test('invalid arguments throw instead of reaching the worker', () => {
  assert.throws(() => pool.run(storeOne, []), /1 tensors/);
  assert.throws(() => pool.run(storeOne, [new Float32Array(2)]), /1 elements/);
  assert.throws(() => pool.time({ ...storeOne, abi: { kind: 'aapcs64', tensors: storeOne.abi.tensors } }), /sysv-x86-64/);
});

test('a closed pool refuses new jobs', async () => {
  const other = new MeasurementPool();
  await other.close();
  try {
    await other.ping();
    assert.unreachable();
  } catch (e) {
    assert.match(String(e), /closed/);
  }
});

test.run();
