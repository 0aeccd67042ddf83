/**
 * Differential fuzz of real layers (issue 16): random problems with padding, output borders,
 * average pools and fused epilogue chains (ir/random.ts randomLayer) under random schedules, on
 * guarded buffers in a measurement worker, against the interpreter: 1,000 cases per x86 ISA
 * (half of them overwriting their output, as compileKernel's kernels do) and 600 on 1-3 threads
 * with random parallel bands, where each thread finishes its own chunks' epilogue.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzTarget, type FuzzReport } from '../../targets/fuzz.ts';
import { workerRunner } from '../../targets/native-runner.ts';
import { hostIsa } from '../../targets/runtime/host.ts';
import { MeasurementPool } from '../../targets/runtime/measure.ts';
import { LAYER_OPS, randomLayer, type Rng } from '../../ir/random.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });
const isa = hostIsa();
const layers = { ops: LAYER_OPS, problemFor: (rng: Rng, op: string) => randomLayer(rng, op) };

test.after(async () => {
  await pool.close();
});

function assertClean(r: FuzzReport, cases: number): void {
  assert.is(r.cases, cases);
  assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
  assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
  assert.is(Object.keys(r.perOp).length, LAYER_OPS.length, 'every op kind was drawn');
  // both placements of the epilogue ran: in the register tile and as the separate pass
  assert.ok((r.epilogueInTile ?? 0) >= cases / 5, `only ${r.epilogueInTile} kernels applied their epilogue in the tile`);
  assert.ok((r.epiloguePass ?? 0) >= cases / 20, `only ${r.epiloguePass} kernels applied their epilogue in a pass`);
}

for (const [target, seed] of [['avx512', 20261301], ['avx2', 20261302]] as const) {
  test(`layer fuzz ${target}: 1,000 padded / pooled / fused cases, zero failures`, async () => {
    if (!isa[target]) assert.unreachable(`this host lacks ${target}; the test machine must have it`);
    const r = await fuzzTarget({ target, cases: 1000, seed, overwrite: true, runner: workerRunner(pool), ...layers });
    assertClean(r, 1000);
    assert.ok((r.overwriting ?? 0) >= 150, `only ${r.overwriting} kernels overwrote their output`);
  });
}

test('layer fuzz avx512 on 1-3 threads: 600 cases with random bands, zero failures', async () => {
  if (!isa.avx512) assert.unreachable('this host lacks avx512; the test machine must have it');
  const r = await fuzzTarget({ target: 'avx512', cases: 600, seed: 20261303, threads: [1, 2, 3], runner: workerRunner(pool), ...layers });
  assertClean(r, 600);
  const parallel = Object.values(r.parallelByThreads ?? {}).reduce((a, b) => a + b, 0);
  assert.ok(parallel >= 250, `only ${parallel} of 600 kernels had a parallel band`);
});

test.run();
