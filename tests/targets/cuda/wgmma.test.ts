/**
 * sm_90a warpgroup tensor-core kernels (loopnest/gpu-wgmma.ts, targets/cuda/wgmma-ptx.ts) without a
 * GPU: small bf16 and f16 matmuls run in the PTX simulator (warpgroup-collective wgmma with
 * descriptors decoded through the 128-byte swizzle, async groups retiring at wait_group, the async
 * proxy's fence) and match the typed oracle; every module is accepted by ptxas -arch=sm_90a; broken
 * descriptors, swizzles, fences and pipelines fail; schedules that spell no wgmma kernel are refused
 * with one line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertSchedulesRefused } from '../../helpers/refused-schedules.ts';
import { assertAssembles } from '../../helpers/ptxas.ts';
import { parseProblem, Schedule } from '../../../ir/index.ts';
import { elementCount } from '../../../ir/problem.ts';
import { checkAgainstOracle, randomArray } from '../../../ir/interpret.ts';
import { planMma } from '../../../loopnest/gpu-mma.ts';
import { wgmmaScheduleText, type WgmmaTile } from '../../../loopnest/gpu-wgmma.ts';
import { mmaSchedules, tensorCoreSchedules, wgmmaSchedules, WGMMA_TILES } from '../../../targets/cuda/mma-tiles.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { compileCuda, type CudaKernel } from '../../../targets/cuda/target.ts';
import { descriptorHigh } from '../../../targets/cuda/wgmma-ptx.ts';
import { backend } from '../../../targets/registry.ts';


/** spec, tile, stages (3 and more leave one wgmma group running across the barrier) */
const CASES: [string, WgmmaTile, number][] = [
  ['matmul 128x128x64 bf16', { bm: 128, bn: 128, bk: 64, wgm: 1, wgn: 1 }, 2],
  ['matmul 128x128x64 f16', { bm: 128, bn: 128, bk: 64, wgm: 1, wgn: 1 }, 2],
  ['matmul 128x256x128 bf16', { bm: 128, bn: 256, bk: 64, wgm: 2, wgn: 1 }, 3],
  ['matmul 128x128x320 f16', { bm: 128, bn: 128, bk: 64, wgm: 2, wgn: 1 }, 4],
  ['matmul 256x128x256 bf16', { bm: 128, bn: 128, bk: 128, wgm: 2, wgn: 1 }, 2],
  // fused epilogues at the store; warpgroups side by side in n, atoms narrower than the group tile
  ['matmul 128x256x128 f16 +bias +gelu', { bm: 128, bn: 256, bk: 64, wgm: 1, wgn: 2, atomN: 64 }, 2],
  ['matmul 128x256x192 bf16 +residual +relu', { bm: 64, bn: 256, bk: 64, wgm: 1, wgn: 1 }, 3],
  ['matmul 128x128x128 f16 +scale0.5 +sigmoid', { bm: 64, bn: 64, bk: 64, wgm: 1, wgn: 1 }, 2],
  // 2 x 9 blocks: a full group of 8 block rows and a group of one
  ['matmul 576x128x64 bf16 +bias', { bm: 64, bn: 64, bk: 64, wgm: 1, wgn: 1 }, 2],
];

function kernelOf(spec: string, t: WgmmaTile, stages: number): { kernel: CudaKernel; schedule: Schedule } {
  const p = parseProblem(spec);
  const schedule = Schedule.parse(p, wgmmaScheduleText(p, t));
  return { kernel: compileCuda(schedule, { stages }), schedule };
}

/** Runs a kernel (or its mutated text) in the simulator; ok only when it runs and matches the oracle. */
async function simulateAgainstOracle(kernel: CudaKernel, schedule: Schedule, seed: number): Promise<{ ok: boolean; why: string }> {
  const p = schedule.problem;
  const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), seed + i));
  const init = randomArray(elementCount(p.tensors[0]!), seed + 9);
  const r = await simRunner()(kernel, [init, ...inputs], { guard: false });
  if (!r.ok) return { ok: false, why: r.error };
  const c = checkAgainstOracle(schedule, inputs, init, r.output);
  return { ok: c.ok, why: `error ${c.maxError} > ${c.tolerance}` };
}

test('simulated wgmma matmuls match the typed oracle (bf16, f16; 2-4 stages; epilogues)', async () => {
  for (const [i, [spec, tile, stages]] of CASES.entries()) {
    const { kernel, schedule } = kernelOf(spec, tile, stages);
    const r = await simulateAgainstOracle(kernel, schedule, 20 + 10 * i);
    assert.ok(r.ok, `${spec} ${schedule.text()} x${stages}: ${r.why}`);
    const p = schedule.problem;
    assert.match(kernel.text!, /^\.target sm_90a$/m);
    assert.match(kernel.text!, new RegExp(`wgmma\\.mma_async\\.sync\\.aligned\\.m64n${tile.atomN ?? Math.min(tile.bn / tile.wgn, 256)}k16\\.f32\\.${p.dtype}\\.${p.dtype} `));
    assert.match(kernel.text!, /fence\.proxy\.async\.shared::cta/);
    assert.match(kernel.text!, /cp\.async\.cg\.shared\.global/);
    assert.match(kernel.text!, new RegExp(`wgmma\\.wait_group\\.sync\\.aligned ${stages >= 3 ? 1 : 0};`));
    const plan = planMma(schedule, { stages });
    assert.ok(plan.wgmma, 'a wgmma plan');
    assert.is(kernel.launch.dynamicSharedBytes, plan.sharedBytes);
    assert.is(kernel.launch.block[0], plan.threads);
  }
});

test('descriptor high word: SBO >> 4 in bits 32-45, the swizzle mode in bits 62-63', () => {
  assert.is(descriptorHigh(1024), 0x40000040);
  assert.is(descriptorHigh(2048, 0), 128);
  assert.is(descriptorHigh(512, 3), 0xc0000020);
});

test('the simulator catches broken descriptors, swizzles, fences and pipelines', async () => {
  // six k-tiles: every buffer is refilled at least once
  const { kernel, schedule } = kernelOf('matmul 128x256x384 bf16', { bm: 128, bn: 256, bk: 64, wgm: 2, wgn: 1 }, 3);
  const { kernel: k2, schedule: s2 } = kernelOf('matmul 128x128x192 f16', { bm: 128, bn: 128, bk: 64, wgm: 1, wgn: 1 }, 2);
  const lboB = `${((64 * 128) >> 4) * 65536}`;
  const mutations: [string, CudaKernel, Schedule, (t: string) => string][] = [
    ['stride byte offset 512 instead of 1024', kernel, schedule, (t) => t.replace(`, ${descriptorHigh(1024)};`, `, ${descriptorHigh(512)};`)],
    ['no swizzle in the descriptors', kernel, schedule, (t) => t.replace(`, ${descriptorHigh(1024)};`, `, ${descriptorHigh(1024, 0)};`)],
    ['B\'s leading byte offset halved', kernel, schedule, (t) => t.replace(`, ${lboB};`, `, ${Number(lboB) / 2};`)],
    // the copies' chunk ^ (row % 8): the first xor of the kernel
    ['copies without the swizzle', kernel, schedule, (t) => t.replace(/xor\.b32 (%r\d+), (%r\d+), (%r\d+);/, 'mov.b32 $1, $3;')],
    ['B read K-major (imm-trans-b 0)', kernel, schedule, (t) => t.replaceAll(', 1, 1, 0, 1;', ', 1, 1, 0, 0;')],
    ['A read M-major (imm-trans-a 1)', kernel, schedule, (t) => t.replaceAll(', 1, 1, 0, 1;', ', 1, 1, 1, 1;')],
    ['no fence.proxy.async', kernel, schedule, (t) => t.replace('\tfence.proxy.async.shared::cta;\n', '')],
    ['no wgmma.fence', kernel, schedule, (t) => t.replace('\twgmma.fence.sync.aligned;\n', '')],
    ['no barrier before the wgmma', kernel, schedule, (t) => t.replace('\tbar.sync 0;\n', '')],
    // two groups in flight: the next copies overwrite a buffer a running wgmma still reads
    ['a wgmma group left running into its buffer\'s refill (3 stages)', kernel, schedule, (t) => t.replace('wgmma.wait_group.sync.aligned 1;', 'wgmma.wait_group.sync.aligned 2;')],
    ['a wgmma group left running into its buffer\'s refill (2 stages)', k2, s2, (t) => t.replace('wgmma.wait_group.sync.aligned 0;', 'wgmma.wait_group.sync.aligned 1;')],
    ['accumulators stored before the last group retires', kernel, schedule, (t) => t.replace(/(bra \$KTILE_\d+;\n)\twgmma\.wait_group\.sync\.aligned 0;\n/, '$1')],
  ];
  const original = await simulateAgainstOracle(kernel, schedule, 5);
  assert.ok(original.ok, original.why);
  for (const [what, k, s, mutate] of mutations) {
    const mutated = mutate(k.text!);
    assert.is.not(mutated, k.text!, `${what}: the mutation applies`);
    const r = await simulateAgainstOracle({ ...k, text: mutated }, s, 5);
    assert.not.ok(r.ok, `${what}: the simulator should fail it`);
  }
});

test('ptxas -arch=sm_90a accepts every wgmma module of the tile table and the test cases', () => {
  const kernels: string[] = CASES.map(([spec, tile, stages]) => kernelOf(spec, tile, stages).kernel.text!);
  for (const spec of ['matmul 4096x4096x4096 bf16', 'matmul 768x3072x128 f16', 'matmul 128x768x768 bf16 +bias +gelu']) {
    for (const s of wgmmaSchedules(parseProblem(spec))) kernels.push(compileCuda(s).text!);
  }
  assert.ok(kernels.length >= 30, `${kernels.length} modules`);
  assertAssembles(kernels, 'sm_90a');
});

test('schedules that spell no wgmma kernel are refused with one line', () => {
  const p = parseProblem('matmul 128x256x128 bf16');
  const bad: [string, RegExp][] = [
    ['m:1b n:1b k:2s m:2t n:1t k:8 m:1 n:2 m:64 n:128 k:8', /ends with the atom m:64 n:\{NA\} k:16/],
    ['m:1b n:1b k:4s m:2t n:1t k:2 m:1 n:1 m:64 n:256 k:16', /k-tile of a wgmma schedule is a multiple of 64/],
    ['m:1b n:1b k:2s m:1t n:1t k:4 m:2 n:1 m:64 n:256 k:16', /holds 256 fp32 accumulators a thread, more than 128/],
    ['m:1b n:1b k:2s m:2t n:4t k:4 m:1 n:2 m:64 n:32 k:16', /atom's n is a multiple of 64/],
    ['m:1b n:1b k:2 k:1s m:2t n:1t k:4 m:1 n:1 m:64 n:256 k:16', /staged loop of a tensor-core schedule is the outermost k loop/],
  ];
  assertSchedulesRefused(p, compileCuda, bad);
  assert.throws(() => compileCuda(Schedule.parse(parseProblem('matmul 160x256x128 bf16'), 'm:1b n:1b k:2s m:1t n:1t k:4 m:2r32 n:1 m:64 n:256 k:16')), /must divide the problem, except the block tile of m \(m:2r32 has a tail\)/);
  // tf32 wgmma would read B K-major only; a tile whose copies do not spread over its threads
  assert.throws(() => compileCuda(Schedule.parse(parseProblem('matmul 128x128x64 tf32'), 'm:1b n:1b k:1s m:1t n:1t k:4 m:2 n:1 m:64 n:128 k:16')), /wgmma kernels take bf16 or f16/);
  assert.throws(() => kernelOf('matmul 256x256x256 bf16', { bm: 256, bn: 256, bk: 64, wgm: 4, wgn: 2 }, 2), /does not spread evenly over 1024 threads/);
  assert.throws(() => kernelOf('matmul 128x256x128 bf16', { bm: 128, bn: 256, bk: 64, wgm: 2, wgn: 1 }, 9), /stages must be an integer 2\.\.8/);
  assert.throws(() => kernelOf('matmul 128x256x128 bf16', { bm: 128, bn: 256, bk: 64, wgm: 2, wgn: 1 }, 5), /5 stages of 49152 bytes exceed/);
});

test('tensorCoreSchedules: the wgmma tile points beside the mma.sync ones, every one valid', () => {
  const p = parseProblem('matmul 4096x4096x4096 bf16');
  const wg = wgmmaSchedules(p);
  assert.is(wg.length, WGMMA_TILES.length);
  const all = tensorCoreSchedules(p);
  assert.is(all.length, wg.length + mmaSchedules(p).length);
  for (const s of wg) {
    assert.is(backend('cuda').validate!(s), undefined, s.text());
    assert.ok(planMma(s).wgmma, s.text());
  }
  // tf32 and problems no tile divides have none
  assert.is(wgmmaSchedules(parseProblem('matmul 4096x4096x4096 tf32')).length, 0);
  assert.is(wgmmaSchedules(parseProblem('matmul 96x96x96 bf16')).length, 0);
});

test.run();
