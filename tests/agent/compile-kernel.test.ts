/**
 * compileKernel: a kernel verified once in a measurement worker, then called in-process on the
 * caller's arrays. Results are checked against the float64 interpreter and, bit for bit, against
 * the same kernel run in a worker.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileKernel } from '../../agent/compile-kernel.ts';
import { checkAgainstOracle, randomArray } from '../../ir/interpret.ts';
import { elementCount } from '../../ir/problem.ts';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { NativeFloat32Buffer } from '../../targets/runtime/buffers.ts';
import { MeasurementPool } from '../../targets/runtime/measure.ts';
import { RUN_TARGET } from '../host.ts';

const target = RUN_TARGET;

function inputsOf(spec: string, seed = 3): { inputs: Float32Array[]; output: Float32Array } {
  const p = parseProblem(spec);
  return {
    inputs: p.tensors.slice(1).map((t, i) => Float32Array.from(randomArray(elementCount(t), seed + i))),
    output: new Float32Array(elementCount(p.tensors[0]!)),
  };
}

test('a given schedule: verified, then run in-process many times on Float32Arrays; output overwritten', async () => {
  const spec = 'matmul 64x48x80';
  const k = await compileKernel(spec, { target, schedule: 'm:10r4 n:48 k:80 m:6', threads: 1 });
  const { inputs, output } = inputsOf(spec);
  k.run(inputs, output);
  const zero = new Float64Array(output.length);
  const c = checkAgainstOracle(k.schedule, inputs, zero, output);
  assert.ok(c.ok, `error ${c.maxError}`);
  const first = output.slice();
  output.fill(123);
  k.run(inputs, output);
  assert.equal(Array.from(output), Array.from(first), 'a second run overwrites: c = a·b again, not c += a·b');
  // m:10r4 n:48 k:80 m:6: k is inside the tile, so the kernel itself starts from zero
  assert.ok(k.kernel.abi.overwrites);
  k.dispose();
  assert.throws(() => k.run(inputs, output), /after dispose/);
  // accumulate: c += a·b
  const acc = await compileKernel(spec, { target, schedule: 'm:10r4 n:48 k:80 m:6', threads: 1, accumulate: true });
  assert.not.ok(acc.kernel.abi.overwrites);
  acc.run(inputs, output);
  assert.ok(Math.abs(output[7]! - 2 * first[7]!) < 1e-4, 'accumulate adds into the output (beta = 1)');
  acc.dispose();
});

test('a reduction split above the tile cannot start from zero: the output is cleared before each run', async () => {
  const spec = 'matmul 32x32x64';
  const k = await compileKernel(spec, { target, schedule: 'k:4 m:32 n:32 k:16', threads: 1 });
  assert.not.ok(k.kernel.abi.overwrites);
  const { inputs, output } = inputsOf(spec, 4);
  output.fill(7);
  k.run(inputs, output);
  const c = checkAgainstOracle(k.schedule, inputs, new Float64Array(output.length), output);
  assert.ok(c.ok, `error ${c.maxError}`);
  k.dispose();
});

test('a parallel schedule on 2 threads: Float32Arrays and native buffers give the worker\'s result bit for bit', async () => {
  const spec = 'matmul 96x80x64';
  const k = await compileKernel(spec, { target, schedule: 'm:16p n:80 k:64 m:6', threads: 2 });
  assert.ok(k.kernel.abi.parallel);
  const { inputs, output } = inputsOf(spec, 9);
  k.run(inputs, output);
  const pool = new MeasurementPool();
  try {
    const r = await pool.run(k.kernel, [new Float32Array(output.length), ...inputs], { threads: 2 });
    assert.ok(r.ok, r.ok ? '' : r.error);
    if (r.ok) assert.equal(Array.from(output), Array.from(r.output), 'in-process = measurement worker');
  } finally {
    await pool.close();
  }
  const native = [...inputs, output].map((a) => {
    const b = NativeFloat32Buffer.alloc(a.length);
    b.array.set(a);
    return b;
  });
  const out = native.pop()!;
  out.array.fill(0);
  k.run(native, out);
  assert.equal(Array.from(out.array), Array.from(output));
  for (const b of [...native, out]) b.free();
  // each chunk runs the same code whatever thread takes it: one thread gives the same bits
  const one = new Float32Array(output.length);
  k.run(inputs, one, { threads: 1 });
  assert.equal(Array.from(one), Array.from(output));
  k.dispose();
});

test('a reduction starts from its identity, so a row of negative numbers reduces to its true value', async () => {
  const spec = 'reduce 32x40 axis1';
  const p = parseProblem(spec);
  const k = await compileKernel(spec, { target, schedule: Schedule.initial(p).text(), threads: 1 });
  const inputs = [Float32Array.from({ length: 32 * 40 }, (_, i) => -1 - (i % 7))];
  const output = new Float32Array(32).fill(5);
  k.run(inputs, output);
  const row = inputs[0]!.slice(0, 40);
  const want = p.combine === 'max' ? Math.max(...row) : row.reduce((a, x) => a + x, 0);
  assert.ok(Math.abs(output[0]! - want) < 1e-4, `${p.combine}: got ${output[0]}, want ${want}`);
  k.dispose();
});

test('tuned: tune verifies the winner in a worker; the kernel computes the problem', async () => {
  const spec = 'matmul 48x64x32';
  const k = await compileKernel(spec, { target, tune: { budgetSeconds: 0.5, noRecords: true, maxMeasurements: 6 }, threads: 1 });
  assert.ok(k.tuned?.verified);
  const { inputs, output } = inputsOf(spec, 5);
  k.run(inputs, output);
  const c = checkAgainstOracle(k.schedule, inputs, new Float64Array(output.length), output);
  assert.ok(c.ok, `error ${c.maxError}`);
  k.dispose();
});

test('bad use is one line: wrong lengths, the wrong problem, a target that cannot run here', async () => {
  const spec = 'matmul 16x16x16';
  const k = await compileKernel(spec, { target, schedule: 'm:16 n:16 k:16', threads: 1 });
  assert.throws(() => k.run([new Float32Array(256)], new Float32Array(256)), /takes 2 tensors after the output/);
  assert.throws(() => k.run([new Float32Array(255), new Float32Array(256)], new Float32Array(256)), /A must have 256 elements/);
  k.dispose();
  try {
    await compileKernel(spec, { target: 'cuda', schedule: 'm:16 n:16 k:16' });
    assert.unreachable('cuda kernels cannot run in-process');
  } catch (e) {
    assert.instance(e, LoopTuneError);
    assert.match((e as Error).message, /cannot run in this process/);
  }
  try {
    await compileKernel(spec, { target, schedule: 'k:16p m:16 n:16' });
    assert.unreachable('a band on a reduction loop');
  } catch (e) {
    assert.match((e as Error).message, /reduction variable k/);
  }
});

test.run();
