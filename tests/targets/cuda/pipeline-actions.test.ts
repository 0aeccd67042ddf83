/**
 * The cuda actions that pick a tensor-core kernel's pipeline depth (stages_N) and warp tile
 * (warps_more / warps_fewer): their legality, the schedule text they write (`s3`), the lowering
 * following them, and a kernel they reach still matching the oracle in the simulator.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyAction, applyActions, CUDA_ACTIONS, isKnownAction, parseProblem, Schedule } from '../../../ir/index.ts';
import { elementCount } from '../../../ir/problem.ts';
import { GPU_LOOP_FEATURES, GPU_MAX_LOOPS, LOOP_FEATURES, vectorEncoding } from '../../../ir/graph.ts';
import { checkAgainstOracle, randomArray } from '../../../ir/interpret.ts';
import { planMma } from '../../../loopnest/gpu-mma.ts';
import { backend } from '../../../targets/registry.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { compileCuda } from '../../../targets/cuda/target.ts';

const WGMMA = 'm:1b n:1b k:3s m:1t n:1t k:4 m:2 n:1 m:64 n:128 k:16';

test('stages_N sets the staged loop\'s depth (text s3), wherever the cursor is; typed problems only', () => {
  const p = parseProblem('matmul 128x128x192 bf16');
  const s = Schedule.parse(p, WGMMA, 9);
  const r = applyAction(s, 'stages_3');
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.schedule.text(), 'm:1b n:1b k:3s3 m:1t n:1t k:4 m:2 n:1 m:64 n:128 k:16');
  assert.is(r.schedule.cursor, 9);
  assert.is(Schedule.parse(p, r.schedule.text()).loops[2]!.stages, 3);
  // the cuda observation sees the depth (depth / 4 in the staged loop's GPU row)
  const staged = (x: Schedule) => vectorEncoding(x, true)[GPU_MAX_LOOPS * LOOP_FEATURES + 2 * GPU_LOOP_FEATURES + 2];
  assert.is(staged(s), 1);
  assert.is(staged(r.schedule), 0.75);
  assert.is.not(r.schedule.hash(), s.hash());
  // the same depth again, fp32, and a schedule with nothing staged are illegal, with a reason
  const again = applyAction(r.schedule, 'stages_3');
  assert.ok(!again.ok && /already has 3 stages/.test(again.error));
  const f32 = applyAction(Schedule.parse(parseProblem('matmul 128x128x192'), 'm:1b n:1b k:3s m:128 n:128 k:64'), 'stages_2');
  assert.ok(!f32.ok && /tensor-core kernels/.test(f32.error));
  const none = applyAction(Schedule.parse(p, 'm:128 n:128 k:192'), 'stages_4');
  assert.ok(!none.ok && /no loop is staged/.test(none.error));
  // unstaging drops the depth
  const off = applyAction(r.schedule.withCursor(2), 'stage_shared');
  assert.ok(off.ok && off.schedule.text().startsWith('m:1b n:1b k:3 '));
  assert.throws(() => Schedule.parse(p, 'm:1b n:1b k:3s9 m:1t n:1t k:4 m:2 n:1 m:64 n:128 k:16'), /2 to 8 stages/);
});

test('the lowering follows the schedule\'s depth; a compile option overrides it; fp32 refuses one', () => {
  const p = parseProblem('matmul 128x128x192 bf16');
  const s = applyActions(Schedule.parse(p, WGMMA), ['stages_2']);
  assert.is(planMma(s).stages, 2);
  assert.is(planMma(s, { stages: 4 }).stages, 4);
  assert.is(planMma(Schedule.parse(p, WGMMA)).stages, 4);
  const f32 = Schedule.parse(parseProblem('matmul 128x128x192'), 'm:1b n:1b k:3s3 m:8t n:16t k:64 m:16 n:8');
  assert.match(backend('cuda').validate!(f32) ?? '', /pipeline depth \(k:3s3\) is for tensor-core kernels/);
});

test('warps_more / warps_fewer trade a factor of 2 between the warp loop and the warp tile', () => {
  const p = parseProblem('matmul 128x128x192 bf16');
  const s = Schedule.parse(p, WGMMA, 3);
  const more = applyAction(s, 'warps_more');
  assert.ok(more.ok);
  if (!more.ok) return;
  assert.is(more.schedule.text(), 'm:1b n:1b k:3s m:2t n:1t k:4 m:1 n:1 m:64 n:128 k:16');
  const back = applyAction(more.schedule, 'warps_fewer');
  assert.ok(back.ok && back.schedule.text() === s.text());
  // no factor left to give, not a thread loop, and a serial loop in between is fine only when plain
  const twice = applyAction(more.schedule, 'warps_more');
  assert.ok(!twice.ok && /no factor of 2/.test(twice.error));
  const serial = applyAction(s.withCursor(5), 'warps_more');
  assert.ok(!serial.ok && /not bound to threads/.test(serial.error));
  const fewer = applyAction(s, 'warps_fewer');
  assert.ok(!fewer.ok && /m:1t has no factor of 2/.test(fewer.error));
  for (const a of ['stages_2', 'stages_3', 'stages_4', 'warps_more', 'warps_fewer']) {
    assert.ok(CUDA_ACTIONS.includes(a) && isKnownAction(a), a);
  }
});

test('a wgmma kernel reached by warps_more and stages_3 matches the typed oracle in the simulator', async () => {
  const p = parseProblem('matmul 128x128x192 f16 +bias');
  const s = applyActions(Schedule.parse(p, WGMMA, 3), ['warps_more', 'stages_3']);
  assert.is(backend('cuda').validate!(s), undefined);
  const kernel = compileCuda(s);
  assert.is(kernel.gpu.mma!.stages, 3);
  assert.is(kernel.launch.block[0], 256);
  const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), 70 + i));
  const init = randomArray(elementCount(p.tensors[0]!), 79);
  const r = await simRunner()(kernel, [init, ...inputs], { guard: false });
  assert.ok(r.ok, r.ok ? '' : r.error);
  if (!r.ok) return;
  const c = checkAgainstOracle(s, inputs, init, r.output);
  assert.ok(c.ok, `error ${c.maxError} > ${c.tolerance}`);
});

test.run();
