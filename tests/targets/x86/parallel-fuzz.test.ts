/**
 * Differential fuzz of parallel schedules (issue #15): 1,000 random problems x schedules per x86
 * ISA, 4 of 5 with a random parallel band (collapsed loops, tails), each run on 1-4 real libgomp
 * threads on guarded buffers in a measurement worker and compared to the interpreter; plus the
 * forced-packing configuration (bench/packing-fuzz.ts) on 2-4 threads, where the threads pack
 * their own boxes inside the band (on the host's best ISA). Seeds differ from codegen-fuzz.test.ts
 * and packing.test.ts. Where the host lacks AVX-512, the avx512 cases are compiled and a spread of
 * them decoded (tests/host.ts fuzzOrCheck).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { forcedPackingFuzz } from '../../../bench/packing-fuzz.ts';
import { fuzzTarget, type FuzzReport } from '../../../targets/fuzz.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { RANDOM_OPS } from '../../../ir/random.ts';
import { RUN_TARGET, fuzzOrCheck, assertFuzzClean } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });

test.after(async () => {
  await pool.close();
});

const assertClean = assertFuzzClean;

const SEEDS = { avx512: 20261215, avx2: 20261216 } as const;
const THREADS = [1, 2, 3, 4] as const;

for (const target of ['avx512', 'avx2'] as const) {
  test(`parallel fuzz ${target}: 1,000 cases with random bands on 1-4 threads, zero failures`, async () => {
    const r = await fuzzOrCheck({ target, cases: 1000, seed: SEEDS[target], threads: THREADS, runner: workerRunner(pool) });
    assertClean(r, 1000);
    assert.is(Object.keys(r.perOp).length, RANDOM_OPS.length, 'every op kind was drawn');
    const by = r.parallelByThreads ?? {};
    for (const t of THREADS) assert.ok((by[t] ?? 0) >= 50, `only ${by[t] ?? 0} parallel kernels ran on ${t} threads: ${JSON.stringify(by)}`);
    // most schedules get a band (4 of 5 are offered one; some nests cannot take one)
    const parallel = Object.values(by).reduce((a, b) => a + b, 0);
    assert.ok(parallel >= 500, `only ${parallel} of 1000 kernels had a parallel band`);
  });
}

test(`forced packing on 2-4 threads (${RUN_TARGET}): 200 cases, zero failures, and kernels that pack inside their band`, async () => {
  const r = await fuzzTarget({ ...forcedPackingFuzz(RUN_TARGET), cases: 200, seed: 20261217, threads: [2, 3, 4], runner: workerRunner(pool) });
  assertClean(r, 200);
  assert.ok((r.packed ?? 0) >= 40, `only ${r.packed} kernels packed`);
  // every parallel kernel here ran on 2+ threads, so these packed per thread, concurrently
  assert.ok((r.packedParallel ?? 0) >= 20, `only ${r.packedParallel ?? 0} kernels both packed and ran in parallel`);
  const by = r.parallelByThreads ?? {};
  for (const t of [2, 3, 4]) assert.ok((by[t] ?? 0) > 0, `no parallel kernel ran on ${t} threads: ${JSON.stringify(by)}`);
});

test.run();
