import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzTarget } from '../../../targets/fuzz.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { hostIsa } from '../../../targets/runtime/host.ts';
import { RANDOM_OPS } from '../../../ir/random.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });
const isa = hostIsa();

for (const target of ['avx512', 'avx2'] as const) {
  test(`differential fuzz ${target}: 1,000 random problems x schedules, guarded buffers, zero mismatches`, async () => {
    if (!isa[target]) assert.unreachable(`this host lacks ${target}; the test machine must have it`);
    const r = await fuzzTarget({ target, cases: 1000, seed: 20261121, runner: workerRunner(pool) });
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
