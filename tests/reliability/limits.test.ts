/**
 * Issue 13, defect 4: a problem too big for the machine is refused with one line before anything
 * is allocated (memory for buffers and verification, tensors past the typed-array limit, a kernel
 * that could not be timed even at peak), on every path: run, verify, and the measurement pool.
 */
import { totalmem } from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import { problemFootprint, PACKING_BYTES } from '../../ir/footprint.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';
import type { Device } from '../../targets/backend.ts';
import { assertMeasurable } from '../../targets/limits.ts';
import { compileSchedule } from '../../targets/registry.ts';
import { runSchedule } from '../../targets/run-schedule.ts';
import { MeasurementPool, transferSeconds } from '../../targets/runtime/measure.ts';
import { memoryAllowance, parseByteSize } from '../../targets/runtime/memory-limit.ts';
import { verifyKernel, type KernelRunner } from '../../targets/verify.ts';
import { hang } from '../targets/runtime/fixtures.ts';

const GiB = 2 ** 30;

/** Runs `body` with LOOPTUNE_MAX_MEMORY set (or removed), restoring the old value after. */
async function withMaxMemory<T>(value: string | undefined, body: () => T | Promise<T>): Promise<T> {
  const old = process.env.LOOPTUNE_MAX_MEMORY;
  if (value === undefined) delete process.env.LOOPTUNE_MAX_MEMORY;
  else process.env.LOOPTUNE_MAX_MEMORY = value;
  try {
    return await body();
  } finally {
    if (old === undefined) delete process.env.LOOPTUNE_MAX_MEMORY;
    else process.env.LOOPTUNE_MAX_MEMORY = old;
  }
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** A device that records what was asked of it: a refusal must come before any of it. */
function recordingExecutor(peakGflops: number): { executor: Device; calls: string[] } {
  const calls: string[] = [];
  const executor: Device = {
    native: true,
    host: 'test',
    run: async () => {
      calls.push('run');
      return { ok: false, error: 'not expected' };
    },
    time: async () => {
      calls.push('time');
      return { ok: false, error: 'not expected' };
    },
    peak: async () => {
      calls.push('peak');
      return { gflops: peakGflops, source: 'measured' };
    },
    close: async () => {},
  };
  return { executor, calls };
}

test('footprint counts every copy: caller and worker for verification, buffers for timing', () => {
  const p = parseProblem('matmul 30000x30000x30000');
  const f = problemFootprint(p, { fullCheck: false });
  const t = 30000 * 30000 * 4;
  assert.is(f.outputBytes, t);
  assert.is(f.inputBytes, 2 * t);
  assert.is(f.tensorBytes, 3 * t);
  assert.is(f.verifyCallerBytes, 2 * t + 3 * t + 2 * 3 * t);
  assert.is(f.verifyWorkerBytes, 3 * 3 * t + 2 * t);
  assert.is(f.verifyBytes, f.verifyCallerBytes + f.verifyWorkerBytes);
  assert.is(f.timeBytes, 3 * t + PACKING_BYTES);
  // a full check adds the interpreter's two float64 outputs and the inputs' absolute values
  assert.is(problemFootprint(p, { fullCheck: true }).verifyCallerBytes - f.verifyCallerBytes, 4 * t + 2 * t);
});

test('LOOPTUNE_MAX_MEMORY sizes; default: half of physical memory, at most what is available', () => {
  assert.is(parseByteSize('8G'), 8 * GiB);
  assert.is(parseByteSize('512M'), 512 * 2 ** 20);
  assert.is(parseByteSize('1.5g'), 1.5 * GiB);
  assert.is(parseByteSize('2GiB'), 2 * GiB);
  assert.is(parseByteSize('1048576'), 2 ** 20);
  for (const bad of ['', 'abc', '-1G', '0', '8Q', '1e9']) assert.is(parseByteSize(bad), null, bad);
  assert.equal(memoryAllowance({}, { total: 32 * GiB, available: 30 * GiB }).bytes, 16 * GiB);
  assert.equal(memoryAllowance({}, { total: 32 * GiB, available: 10 * GiB }).bytes, 10 * GiB);
  assert.equal(memoryAllowance({ LOOPTUNE_MAX_MEMORY: '4G' }, { total: 32 * GiB, available: 1 * GiB }),
    { bytes: 4 * GiB, source: 'LOOPTUNE_MAX_MEMORY=4G' });
  assert.throws(() => memoryAllowance({ LOOPTUNE_MAX_MEMORY: 'lots' }),
    (e: Error) => e instanceof LoopTuneError && e.message === "LOOPTUNE_MAX_MEMORY: cannot read 'lots' (expected bytes or a size such as 8G)");
});

test('run "matmul 30000x30000x30000" is refused with one line before compiling, timing or allocating', async () => {
  const { executor, calls } = recordingExecutor(200);
  const s = Schedule.initial(parseProblem('matmul 30000x30000x30000'));
  const e = await withMaxMemory('8G', () => rejection(runSchedule(s, 'avx2', executor)));
  assert.instance(e, LoopTuneError);
  assert.is(e.message, 'matmul 30000x30000x30000 needs 73.8 GiB for buffers and verification; this machine allows 8.0 GiB (LOOPTUNE_MAX_MEMORY=8G)');
  assert.equal(calls, []);
});

test('the default allowance (no LOOPTUNE_MAX_MEMORY) refuses 30000^3 too, naming the variable', async () => {
  if (totalmem() / 2 >= 79.2e9) return; // a machine this big may run it
  const { executor, calls } = recordingExecutor(200);
  const s = Schedule.initial(parseProblem('matmul 30000x30000x30000'));
  const e = await withMaxMemory(undefined, () => rejection(runSchedule(s, 'avx2', executor)));
  assert.instance(e, LoopTuneError);
  assert.match(e.message, /^matmul 30000x30000x30000 needs 73\.8 GiB for buffers and verification; this machine allows [\d.]+ GiB \((half of its [\d.]+ GiB|the memory available now); set LOOPTUNE_MAX_MEMORY to change\)$/);
  assert.equal(calls, []);
});

test('100000^3: a tensor past the typed-array limit is one line, whatever the allowance', async () => {
  const { executor, calls } = recordingExecutor(200);
  const s = Schedule.initial(parseProblem('matmul 100000x100000x100000'));
  const e = await withMaxMemory('1T', () => rejection(runSchedule(s, 'avx2', executor)));
  assert.instance(e, LoopTuneError);
  assert.is(e.message, 'matmul 100000x100000x100000 is too large: tensor C has 1.00e+10 elements, more than the 2147483647 a tensor may have');
  assert.equal(calls, []);
});

test('12000^3 that fits in memory is refused when even a peak kernel could not be timed in time', async () => {
  const { executor, calls } = recordingExecutor(200);
  const s = Schedule.initial(parseProblem('matmul 12000x12000x12000'));
  const e = await withMaxMemory('1T', () => rejection(runSchedule(s, 'avx2', executor)));
  assert.instance(e, LoopTuneError);
  assert.is(e.message, "matmul 12000x12000x12000 is 3.46e+12 flops: a call takes at least 17.3 s at this machine's peak (200 GFLOPS) and timing needs 4 calls, past the 10 s a measurement may take");
  assert.equal(calls, ['peak']);
});

test('search/tune check: timed by one call when slow, verification memory only when verifying', async () => {
  const p = parseProblem('matmul 12000x12000x12000');
  await withMaxMemory('1T', () => {
    assert.throws(() => assertMeasurable(p, { peakGflops: 200, verify: false, calls: 1 }), /a call takes at least 17\.3 s .*\(200 GFLOPS\), past the 10 s/);
    assert.not.throws(() => assertMeasurable(p, { peakGflops: 2000, verify: true, calls: 1 }));
  });
  // 1.6 GiB of timing buffers fit in 8G; verification (11.8 GiB, both processes) does not
  await withMaxMemory('8G', () => {
    assert.not.throws(() => assertMeasurable(p, { peakGflops: 1e6, verify: false }));
    assert.throws(() => assertMeasurable(p, { peakGflops: 1e6, verify: true }), /needs 11\.8 GiB for buffers and verification/);
  });
});

test('verifyKernel refuses before allocating its inputs or calling the runner', async () => {
  const s = Schedule.initial(parseProblem('add 1024x1024'));
  const kernel = compileSchedule(s, 'avx2');
  let runs = 0;
  const runner: KernelRunner = async () => {
    runs++;
    return { ok: false, error: 'not expected' };
  };
  const e = await withMaxMemory('1M', () => rejection(verifyKernel(kernel, s, runner)));
  assert.instance(e, LoopTuneError);
  assert.match(e.message, /^add 1024x1024 needs [\d.]+ MiB for buffers and verification; this machine allows 1\.0 MiB \(LOOPTUNE_MAX_MEMORY=1M\)$/);
  assert.is(runs, 0);
});

test('the measurement pool refuses a kernel whose buffers do not fit, before starting a worker', async () => {
  const pool = new MeasurementPool();
  try {
    const big = { ...hang, abi: { kind: 'sysv-x86-64' as const, tensors: [{ name: 'O', elements: 2 ** 28 }] } };
    await withMaxMemory('64M', () => {
      assert.throws(() => pool.time(big), (e: Error) => e instanceof LoopTuneError
        && e.message === 'a kernel over 1.0 GiB of tensors needs 1.0 GiB for the buffers it is timed on; this machine allows 64.0 MiB (LOOPTUNE_MAX_MEMORY=64M)');
      // run: the worker holds the received message, the decoded tensors, native buffers and the output twice
      const mid = { ...hang, abi: { kind: 'sysv-x86-64' as const, tensors: [{ name: 'O', elements: 2 ** 24 }] } };
      assert.throws(() => pool.run(mid, [new Float32Array(2 ** 24)]), (e: Error) => e instanceof LoopTuneError
        && e.message === 'a kernel over 64.0 MiB of tensors needs 320.0 MiB for the measurement worker to run it; this machine allows 64.0 MiB (LOOPTUNE_MAX_MEMORY=64M)');
    });
    assert.is(pool.workersReplaced, 0);
  } finally {
    await pool.close();
  }
});

test('a run job on large tensors gets time to move them: the limit grows by whole seconds of transfer', async () => {
  assert.is(transferSeconds(10e6), 0);
  assert.is(transferSeconds(80e6), 2);
  const pool = new MeasurementPool({ timeoutSeconds: 1 });
  try {
    const elements = 10_000_000; // 40 MB sent and 40 MB back: 2 s more than the 1 s limit
    const kernel = { ...hang, abi: { kind: 'sysv-x86-64' as const, tensors: [{ name: 'O', elements }] } };
    const r = await pool.run(kernel, [new Float32Array(elements)]);
    assert.equal(r, { ok: false, reason: 'timeout', error: 'kernel timed out after 3 s' });
  } finally {
    await pool.close();
  }
});

test.run();
