/**
 * The thread runtime (issue #15): parallel x86 kernels on real libgomp threads, in a measurement
 * worker and in-process, equal the reference interpreter at every thread count; kernels without a
 * band run on one thread whatever is asked; thread counts and the OpenMP environment are checked;
 * the fork-join probe and the T-core peak give figures. No timing is asserted (two busy cores).
 * Runs on the host's best ISA (tests/host.ts); the per-ISA test decodes what it cannot run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAgainstOracle, randomArray } from '../../../ir/interpret.ts';
import { elementCount } from '../../../ir/problem.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { backend } from '../../../targets/registry.ts';
import { NativeFloat32Buffer } from '../../../targets/runtime/buffers.ts';
import { runInProcess } from '../../../targets/runtime/in-process.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { forkJoinSeconds, peakRecord } from '../../../targets/runtime/peak.ts';
import { MAX_THREADS, threadCountError, threadEnvironment } from '../../../targets/runtime/threads.ts';
import { verifyKernel } from '../../../targets/verify.ts';
import { RUN_TARGET, checkWithoutRunning, hostRunsTarget } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });

test.after(async () => {
  await pool.close();
});

/** problem, parallel schedule */
const PARALLEL: [string, string][] = [
  ['matmul 23x55x16', 'm:5r3p n:3r7p k:16 n:16 m:4'],
  ['conv2d n2 c4 h10 w10 k13 r3 s3', 'n:2p h:2r2p k:3r1p c:4 r:3 s:3 h:3 k:4 w:8'],
  ['add 37x50', 'i:4r5p j:3r2p i:8 j:16'],
  // B's rows are 4 KB apart: packed per thread, inside the band
  ['matmul 12x1024x64', 'n:16p m:2 k:64 m:6 n:64'],
  // 2 chunks: threads 3 and 4 leave some threads without work
  ['matmul 10x16x8', 'm:2p m:5 n:16 k:8'],
  // a reduction loop above the band: every thread adds into its chunks twice
  ['matmul 40x48x64', 'k:2 m:3r4p n:3p k:32 m:12 n:16'],
  ['bmm b3 m10 n32 k8', 'b:3p m:2r2p n:2p k:8 m:4 n:16'],
];

// both ISAs' kernels, run where the host executes them (an avx512 one is compiled and decoded elsewhere)
for (const target of ['avx512', 'avx2'] as const) {
  test(`${target}: MeasurementPool.run of parallel kernels at threads 1..4 equals the interpreter (guarded)`, async () => {
    const kernels = PARALLEL.map(([spec, text]) => {
      const schedule = Schedule.parse(parseProblem(spec), text);
      const kernel = backend(target).compile(schedule);
      assert.is(kernel.abi.parallel, true, `${text}: the kernel takes tid and threads`);
      return { spec, text, schedule, kernel };
    });
    if (!hostRunsTarget(target)) {
      checkWithoutRunning(target, kernels.map((k) => k.kernel));
      return;
    }
    for (const { spec, text, schedule, kernel } of kernels) {
      for (let threads = 1; threads <= 4; threads++) {
        const v = await verifyKernel(kernel, schedule, workerRunner(pool, threads), { seed: threads, guard: true });
        assert.ok(v.verified, `${target} ${spec} ${text} on ${threads} threads: ${v.error}`);
        // the per-call thread count overrides the runner's own
        const w = await verifyKernel(kernel, schedule, workerRunner(pool, 1), { seed: threads + 10, guard: true, threads });
        assert.ok(w.verified, `${target} ${spec} ${text}, threads ${threads} per call: ${w.error}`);
      }
    }
  });
}

test('a kernel without a band asked for 3 threads runs on one: an accumulating matmul is still added once', async () => {
  const schedule = Schedule.parse(parseProblem('matmul 23x55x16'), 'm:5r3 n:3r7 k:16 n:16 m:4');
  const kernel = backend(RUN_TARGET).compile(schedule);
  assert.is(kernel.abi.parallel ?? false, false);
  const v = await verifyKernel(kernel, schedule, workerRunner(pool, 3), { seed: 3, guard: true });
  assert.ok(v.verified, v.error);
});

test('runInProcess runs a parallel kernel on 2 libgomp threads in this process, correctly', () => {
  const schedule = Schedule.parse(parseProblem('matmul 23x55x16'), 'm:5r3p n:3r7p k:16 n:16 m:4');
  const kernel = backend(RUN_TARGET).compile(schedule);
  const tensors = schedule.problem.tensors.map((t, i) => randomArray(elementCount(t), 404 + i));
  const buffers = tensors.map((a) => NativeFloat32Buffer.alloc(a.length, { guard: true }));
  try {
    buffers.forEach((b, i) => b.array.set(tensors[i]!));
    runInProcess(kernel, buffers, 1, 2);
    const check = checkAgainstOracle(schedule, tensors.slice(1), tensors[0]!, buffers[0]!.array);
    assert.ok(check.ok, `error ${check.maxError} > ${check.tolerance}`);
    // twice more (reps = 2): each rep adds the product once more
    runInProcess(kernel, buffers, 2, 2);
    const thrice = checkAgainstOracle(schedule, tensors.slice(1), tensors[0]!, buffers[0]!.array);
    assert.not.ok(thrice.ok, 'three runs accumulate three products, not one');
  } finally {
    for (const b of buffers) b.free();
  }
});

test('threadCountError rejects 0, 1.5, -1, NaN and 1025 in one line; accepts 1 and 1024', () => {
  for (const bad of [0, 1.5, -1, Number.NaN, MAX_THREADS + 1]) {
    assert.is(threadCountError(bad), `threads must be an integer from 1 to 1024, got ${bad}`);
  }
  assert.is(MAX_THREADS, 1024);
  assert.is(threadCountError(1), undefined);
  assert.is(threadCountError(1024), undefined);
  // the pool refuses them before starting a job
  const kernel = backend(RUN_TARGET).compile(Schedule.parse(parseProblem('add 37x50'), 'i:4r5p j:3r2p i:8 j:16'));
  const tensors = kernel.abi.tensors.map((t) => new Float32Array(t.elements));
  assert.throws(() => pool.run(kernel, tensors, { threads: 0 }), (e: unknown) => e instanceof RangeError && /got 0$/.test(e.message));
  assert.throws(() => pool.time(kernel, { threads: 1.5 }), (e: unknown) => e instanceof RangeError && /got 1\.5$/.test(e.message));
});

test('threadEnvironment keeps user-set OMP_* values and fills the defaults', () => {
  const user = threadEnvironment({ OMP_PROC_BIND: 'spread', OMP_STACKSIZE: '64M', PATH: '/bin' });
  assert.is(user.OMP_PROC_BIND, 'spread');
  assert.is(user.OMP_STACKSIZE, '64M');
  assert.is(user.OMP_PLACES, 'cores');
  assert.is(user.PATH, '/bin');
  const defaults = threadEnvironment({});
  assert.equal(defaults, { OMP_PROC_BIND: 'close', OMP_PLACES: 'cores', OMP_STACKSIZE: '16M' });
  const input = { OMP_PLACES: 'threads' };
  assert.is(threadEnvironment(input).OMP_PLACES, 'threads');
  assert.equal(input, { OMP_PLACES: 'threads' }, 'the base environment is not changed');
});

test('forkJoinSeconds(pool, 2) is a positive, finite figure', async () => {
  const s = await forkJoinSeconds(pool, 2, 0.01);
  assert.ok(Number.isFinite(s) && s > 0, `fork-join ${s} s`);
});

test('the peak at 2 threads (in the pool, uncached) is a positive figure with threads: 2', async () => {
  const r = await peakRecord(RUN_TARGET, { pool, threads: 2, cacheFile: null, minSeconds: 0.02, chains: [12] });
  assert.is(r.threads, 2);
  assert.is(r.cached, false);
  assert.equal(r.perChains.map((p) => p.chains), [12]);
  assert.ok(Number.isFinite(r.gflops) && r.gflops > 0, `peak ${r.gflops} GFLOPS`);
});

test.run();
