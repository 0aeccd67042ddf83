/**
 * Overwriting kernels (LowerOptions.overwrite, compileKernel's default): granted only where every
 * tile holds its outputs' whole reduction, and then the kernel's output ignores what the buffer held.
 * Where the host lacks AVX-512, the avx512 fuzz cases are compiled and a spread of them decoded
 * (tests/host.ts fuzzOrCheck).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { lower } from '../../../loopnest/lower.ts';
import { walkProgram } from '../../../loopnest/program.ts';
import { backend } from '../../../targets/registry.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { fuzzOrCheck } from '../../host.ts';

const mm = parseProblem('matmul 64x48x80');
const caps = backend('avx512').caps;

test('granted when the reduction is inside the tile; refused with a reduction loop above it, for assigning ops, and without the cap', () => {
  const inside = lower(Schedule.parse(mm, 'm:10r4 n:48 k:80 m:6'), caps, { overwrite: true });
  assert.ok(inside.overwrites);
  let tiles = 0;
  walkProgram(inside.body, (n) => {
    if (n.kind === 'tile') {
      tiles++;
      assert.ok(n.zeroOutput && !n.loadOutput);
    }
  });
  assert.ok(tiles > 0);
  assert.not.ok(lower(Schedule.parse(mm, 'k:2r16 m:10r4 n:48 k:32 m:6'), caps, { overwrite: true }).overwrites, 'k split above the tile');
  assert.not.ok(lower(Schedule.parse(mm, 'm:10r4 n:48 k:80 m:6'), caps).overwrites, 'only when asked');
  // a sum reduction held whole in its tile is granted too
  const sum = parseProblem('reduce 32x40 axis1');
  assert.is(sum.combine, 'sum');
  assert.ok(lower(Schedule.initial(sum), caps, { overwrite: true }).overwrites);
  // an assigning op overwrites anyway: nothing to grant
  assert.not.ok(lower(Schedule.initial(parseProblem('add 32x40')), caps, { overwrite: true }).overwrites);
  assert.not.ok(lower(Schedule.parse(mm, 'm:10r4 n:48 k:80 m:6'), backend('neon').caps, { overwrite: true }).overwrites, 'neon cannot zero tiles');
});

const pool = new MeasurementPool({ timeoutSeconds: 20 });

for (const target of ['avx512', 'avx2'] as const) {
  test(`fuzz ${target}: 400 cases, half compiled to overwrite (with bands on 1-2 threads), zero failures`, async () => {
    const r = await fuzzOrCheck({ target, cases: 400, seed: target === 'avx512' ? 20261301 : 20261302, runner: workerRunner(pool), overwrite: true, threads: [1, 2] });
    assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
    assert.ok((r.overwriting ?? 0) >= 40, `only ${r.overwriting} overwriting kernels`);
  });
}

test.after(() => pool.close());

test.run();
