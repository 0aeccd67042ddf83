/**
 * Differential fuzz of real layers (issue 16): random problems with padding, output borders,
 * average pools and fused epilogue chains (ir/random.ts randomLayer) under random schedules (a third
 * of them with a reduction moved outermost, so that the epilogue runs as the separate pass), on
 * guarded buffers in a measurement worker, against the interpreter: 1,000 cases per x86 ISA
 * (half of them overwriting their output, as compileKernel's kernels do) and 600 on 1-3 threads
 * with random parallel bands (on the host's best ISA), where each thread finishes its own chunks'
 * epilogue. Where the host lacks AVX-512, the avx512 cases are compiled and a spread of them
 * decoded (tests/host.ts fuzzOrCheck).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzTarget, type FuzzReport } from '../../targets/fuzz.ts';
import { workerRunner } from '../../targets/native-runner.ts';
import { MeasurementPool } from '../../targets/runtime/measure.ts';
import { isReduction, type Problem } from '../../ir/problem.ts';
import { LAYER_OPS, randomLayer, randomSchedule, type Rng } from '../../ir/random.ts';
import { Schedule } from '../../ir/schedule.ts';
import { RUN_TARGET, fuzzOrCheck, assertFuzzClean } from '../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });

/**
 * fuzzTarget's own schedule draw, and in about a third of the cases one of its reduction loops
 * then moved outermost: random schedules alone seldom leave a reduction above the register tile
 * (about 1 case in 500), which is what puts the epilogue in the separate pass.
 */
function layerSchedule(problem: Problem, rng: Rng): Schedule {
  const s = randomSchedule(problem, rng, rng.int(0, 24));
  if (rng.next() >= 0.35) return s;
  const reductions = s.loops.flatMap((l, i) => (isReduction(problem, l.var) && l.size > 1 ? [i] : []));
  if (reductions.length === 0) return s;
  const loops = [...s.loops];
  const [r] = loops.splice(rng.pick(reductions), 1);
  try {
    return new Schedule(problem, [r!, ...loops]);
  } catch {
    return s; // moving the outer loop of a split above its variable's other loops can break the split
  }
}

const layers = { ops: LAYER_OPS, problemFor: (rng: Rng, op: string) => randomLayer(rng, op), scheduleFor: layerSchedule };

test.after(async () => {
  await pool.close();
});

function assertClean(r: FuzzReport, cases: number): void {
  assertFuzzClean(r, cases);
  assert.is(Object.keys(r.perOp).length, LAYER_OPS.length, 'every op kind was drawn');
  // both placements of the epilogue ran: in the register tile and as the separate pass
  assert.ok((r.epilogueInTile ?? 0) >= cases / 5, `only ${r.epilogueInTile} kernels applied their epilogue in the tile`);
  assert.ok((r.epiloguePass ?? 0) >= cases / 20, `only ${r.epiloguePass} kernels applied their epilogue in a pass`);
}

for (const [target, seed] of [['avx512', 20261301], ['avx2', 20261302]] as const) {
  test(`layer fuzz ${target}: 1,000 padded / pooled / fused cases, zero failures`, async () => {
    const r = await fuzzOrCheck({ target, cases: 1000, seed, overwrite: true, runner: workerRunner(pool), ...layers });
    assertClean(r, 1000);
    assert.ok((r.overwriting ?? 0) >= 150, `only ${r.overwriting} kernels overwrote their output`);
  });
}

test(`layer fuzz ${RUN_TARGET} on 1-3 threads: 600 cases with random bands, zero failures`, async () => {
  const r = await fuzzTarget({ target: RUN_TARGET, cases: 600, seed: 20261303, threads: [1, 2, 3], runner: workerRunner(pool), ...layers });
  assertClean(r, 600);
  const parallel = Object.values(r.parallelByThreads ?? {}).reduce((a, b) => a + b, 0);
  assert.ok(parallel >= 250, `only ${parallel} of 600 kernels had a parallel band`);
});

test.run();
