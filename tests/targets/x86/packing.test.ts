/**
 * Packing (loopnest/lower.ts decidePacking, the x86 emitter's PackNode): which tensor is packed
 * where, and a differential fuzz with the rule forced on (every stride counts as conflicting,
 * small boxes), so copies, tails, offsets and pointer restores are exercised on small problems;
 * plus a real case, a 1024-wide matmul, verified against the interpreter. Where the host lacks
 * AVX-512, the avx512 kernels are compiled and decoded instead (tests/host.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { tensorStrides } from '../../../ir/problem.ts';
import { decideTile, decidePacking, lower } from '../../../loopnest/lower.ts';
import { walkProgram, type PackNode } from '../../../loopnest/program.ts';
import { forcedPackingFuzz } from '../../../bench/packing-fuzz.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { x86Caps } from '../../../targets/x86/target.ts';
import { compileSchedule } from '../../../targets/registry.ts';
import { fuzzOrCheck, kernelCheck } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });

function packsOf(s: Schedule, caps = x86Caps('avx2')): PackNode[] {
  const out: PackNode[] = [];
  walkProgram(lower(s, caps).body, (n) => n.kind === 'pack' && out.push(n));
  return out;
}

test('B of a 1024-wide matmul is packed at the outermost loop where its box fits, A and 1000-wide B are not', () => {
  const s = Schedule.parse(parseProblem('matmul 256x1024x256'), 'n:8 m:42r4 n:8 k:256 m:6 n:16');
  const caps = x86Caps('avx2');
  const d = decidePacking(s, caps, tensorStrides(s.problem), decideTile(s, caps));
  // tensor 2 is B; at loop 1 (m) its box is 256 x 128 = 32K elements, read by 42 m panels
  assert.equal(d, { tensor: 2, level: 1 });
  const packs = packsOf(s);
  assert.is(packs.length, 1);
  assert.equal(packs[0]!.dims, [{ count: 256, stride: 1024 }, { count: 128, stride: 1 }]);
  const narrow = Schedule.parse(parseProblem('matmul 256x1000x256'), 'n:8 m:42r4 n:7r13 k:256 m:6 n:16');
  assert.is(packsOf(narrow).length, 0);
  // targets without a packing rule never pack
  assert.is(packsOf(s, { ...caps, packing: undefined }).length, 0);
});

test('a packed 1024-wide matmul computes what the interpreter does (avx2 and avx512)', async () => {
  const s = Schedule.parse(parseProblem('matmul 48x1024x96'), 'n:4 k:2 m:8 n:8 k:48 m:6 n:32');
  for (const isa of ['avx2', 'avx512'] as const) {
    const check = kernelCheck(isa, workerRunner(pool));
    const k = compileSchedule(s, isa);
    let packed = 0;
    walkProgram(k.program.body, (n) => { if (n.kind === 'pack') packed++; });
    assert.ok(packed > 0, `${isa}: packed`);
    const error = await check.verify(k, s, { guard: true });
    assert.ok(error === undefined, `${isa}: ${error}`);
    check.finish();
  }
});

for (const isa of ['avx2', 'avx512'] as const) {
  test(`fuzz with packing forced (${isa}): 600 random cases, zero failures, many of them packed`, async () => {
    const r = await fuzzOrCheck({ ...forcedPackingFuzz(isa), cases: 600, seed: 777, runner: workerRunner(pool) });
    assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
    assert.ok((r.packed ?? 0) >= 200, `only ${r.packed} of 600 kernels packed`);
  });
}

test.after(async () => {
  await pool.close();
});

test.run();
