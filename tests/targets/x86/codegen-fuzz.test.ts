/**
 * Differential fuzz of the x86 printer: 1,000 random problems x schedules per ISA on guarded
 * buffers. Where the host lacks AVX-512, the avx512 cases are compiled and a spread of them decoded
 * (tests/host.ts fuzzOrCheck).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { workerRunner } from '../../../targets/native-runner.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { RANDOM_OPS } from '../../../ir/random.ts';
import { fuzzOrCheck } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });

for (const target of ['avx512', 'avx2'] as const) {
  test(`differential fuzz ${target}: 1,000 random problems x schedules, guarded buffers, zero mismatches`, async () => {
    const r = await fuzzOrCheck({ target, cases: 1000, seed: 20261121, runner: workerRunner(pool) });
    assert.is(r.cases, 1000);
    assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
    assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
    // every op kind was exercised
    assert.is(Object.keys(r.perOp).length, RANDOM_OPS.length);
  });
}

test.after(async () => {
  await pool.close();
});

test.run();
