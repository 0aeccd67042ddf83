/**
 * Grid reductions (split-k, rule 10 of loopnest/gpu.ts), without a GPU: a reduction loop bound to
 * blocks gives each block a share of k, added into the output with `red.global.add.f32`. Kernels
 * run in the PTX simulator against the interpreter (shares with tails below the split, thread
 * splits inside each share, batched, a `sum` reduction, template points); a kernel whose shares
 * store instead of adding must fail, which shows the shares really overlap; ptxas accepts every
 * module; the sketches give small grids a split-k twin and leave grids that fill the GPU alone.
 * The same for wgmma tensor-core kernels (bf16 / f16: grid z over the shares, zero accumulators,
 * `red.global.add.v2.f32`), which mma.sync, epilogues, overwrites and convs refuse.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertAssembles } from '../../helpers/ptxas.ts';
import { parseProblem, Schedule } from '../../../ir/index.ts';
import { fuzzCuda } from '../../../targets/cuda/fuzz.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { cudaSketches } from '../../../targets/cuda/sketches.ts';
import { blockCount, SPLIT_K_TARGET_BLOCKS } from '../../../targets/cuda/split-k.ts';
import { templateSchedule } from '../../../targets/cuda/templates.ts';
import { compileCuda, type CudaKernel } from '../../../targets/cuda/target.ts';
import { verifyKernel } from '../../../targets/verify.ts';
import { wgmmaScheduleText, type WgmmaTile } from '../../../loopnest/gpu-wgmma.ts';
import { mmaScheduleText } from '../../../loopnest/gpu-mma.ts';
import { wgmmaSchedules, WGMMA_TILES } from '../../../targets/cuda/mma-tiles.ts';

const compiled: CudaKernel[] = [];

function compile(spec: string, text: string): { k: CudaKernel; s: Schedule } {
  const s = Schedule.parse(parseProblem(spec), text);
  const k = compileCuda(s);
  compiled.push(k);
  return { k, s };
}

const CASES: [string, string][] = [
  // four shares of 16, each staged in two slices
  ['matmul 32x32x64', 'k:4b m:2b n:2b k:2s m:4t n:4t k:8 m:4 n:4'],
  // output tails on both variables, and each share of 14 staged with a tail (k:1r6s)
  ['matmul 37x45x70', 'k:5b m:2r5b n:2r13b k:1r6s m:4t n:4t k:8 m:4 n:4'],
  // a split inside each block too (k:2t): the threads meet in shared memory, then one adds the share
  ['matmul 32x32x64', 'k:2b m:2b n:2b k:2s k:2t m:4t n:4t k:8 m:4 n:4'],
  // batched, the split between the batch and the tile
  ['bmm b2 m16 n16 k40', 'b:2b k:5b m:4t n:4t k:8 m:4 n:4'],
  // a row sum: reduce over j, split over 3 blocks
  ['reduce 40x36', 'i:40t j:3b j:12'],
];

test('split-k kernels match the interpreter in the simulator, one red.global.add per output point and share', async () => {
  for (const [spec, text] of CASES) {
    const { k, s } = compile(spec, text);
    assert.ok(k.mapping.gridReductionLoops.length === 1, `${spec} ${text}: no grid reduction`);
    assert.match(k.text!, /red\.global\.add\.f32/);
    assert.not.match(k.text!, /st\.global/, `${text}: a share stores instead of adding`);
    const v = await verifyKernel(k, s, simRunner(), { seed: 3 });
    assert.ok(v.verified, `${spec} ${text}: ${v.error ?? `max rel error ${v.maxRelError} > ${v.tolerance}`}`);
  }
});

test('shares that store instead of adding lose all but one share: the check fails', async () => {
  const { k, s } = compile('matmul 32x32x64', 'k:4b m:2b n:2b k:2s m:4t n:4t k:8 m:4 n:4');
  // red.global.add.f32 [a], v  ->  st.global.f32 [a], v: each block overwrites the others' shares
  const broken = { ...k, text: k.text!.replace(/red\.global\.add\.f32/g, 'st.global.f32') };
  const v = await verifyKernel(broken, s, simRunner(), { seed: 3 });
  assert.not.ok(v.verified, 'overwriting shares passed the check');
});

test('template points with gk split k over blocks; an epilogue or an uneven split has none', () => {
  const p = parseProblem('matmul 1000x1000x1000');
  const params = { family: 'gemm', ty: 16, tx: 16, rmo: 1, rmi: 8, rno: 2, rni: 4, bk: 8, stage: true } as const;
  const s = templateSchedule(p, { ...params, gk: 5 });
  assert.is(s?.text(), 'k:5b m:7r104b n:7r104b k:25s m:1 n:2 m:16t n:16t k:8 m:8 n:4');
  assert.is(templateSchedule(p, { ...params, gk: 3 }), null, '1000 is not a multiple of 3');
  assert.is(templateSchedule(parseProblem('matmul 1000x1000x1000 +relu'), { ...params, gk: 5 }), null);
  compiled.push(compileCuda(s!));
});

test('sketches: a split-k twin for seeds whose grid leaves the GPU short, none for grids that fill it', () => {
  const small = cudaSketches.seeds!(parseProblem('matmul 1000x1000x1000'), 40);
  const twins = small.filter((s) => s.loops[0]!.var === 2 && s.loops[0]!.bind === 'block');
  assert.ok(twins.length >= 5, `${twins.length} split-k sketches for 1000^3`);
  for (const t of twins) {
    // the output tiles alone (the grid without the split) fall short of the target
    const tiles = blockCount(t) / t.loops[0]!.size;
    assert.ok(tiles < SPLIT_K_TARGET_BLOCKS, `${t.text()}: ${tiles} output tiles already fill the GPU`);
  }
  const big = cudaSketches.seeds!(parseProblem('matmul 4096x4096x4096'), 40);
  assert.ok(big.length > 5 && big.every((s) => s.loops.every((l) => l.var !== 2 || l.bind !== 'block')), 'a 4096^3 sketch splits k');
  assert.not.ok(cudaSketches.seeds!(parseProblem('matmul 1000x1000x1000 +bias'), 40).some((s) => s.loops.some((l) => l.var === 2 && l.bind === 'block')));
});

test('the fuzz reaches split-k kernels through bind_block on reductions, zero mismatches', async () => {
  const r = await fuzzCuda({ cases: 250, seed: 777, runner: simRunner(), ops: ['matmul', 'bmm', 'reduce', 'conv1d'] });
  assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
  assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
  assert.ok(r.gridSplit >= 10, `only ${r.gridSplit} split-k kernels`);
});

const WGMMA_CASES: [string, WgmmaTile, number][] = [
  ['matmul 128x128x256 bf16', { bm: 64, bn: 64, bk: 64, wgm: 1, wgn: 1, splitK: 2 }, 2],
  // an m tail (rows clamped and not added), three shares of two k-tiles, three stages
  ['matmul 100x128x384 f16', { bm: 64, bn: 128, bk: 64, wgm: 1, wgn: 1, splitK: 3 }, 3],
  ['matmul 128x256x512 bf16', { bm: 128, bn: 128, bk: 64, wgm: 2, wgn: 1, splitK: 4 }, 2],
];
const wgmmaKernels: CudaKernel[] = [];

function wgmmaKernel(spec: string, tile: WgmmaTile, stages: number): { k: CudaKernel; s: Schedule } {
  const p = parseProblem(spec);
  const s = Schedule.parse(p, wgmmaScheduleText(p, tile));
  const k = compileCuda(s, { stages });
  wgmmaKernels.push(k);
  return { k, s };
}

test('wgmma split-k kernels match the typed oracle in the simulator: grid z over the shares, vector atomics', async () => {
  for (const [spec, tile, stages] of WGMMA_CASES) {
    const { k, s } = wgmmaKernel(spec, tile, stages);
    assert.is(k.launch.grid[2], tile.splitK);
    assert.match(k.text!, /^\.version 8\.1$/m);
    assert.match(k.text!, /red\.global\.add\.v2\.f32/);
    assert.not.match(k.text!, /st\.global|ld\.global\.v2\.f32/, `${s.text()}: a share reads or stores C`);
    const v = await verifyKernel(k, s, simRunner(), { seed: 5 });
    assert.ok(v.verified, `${spec} ${s.text()}: ${v.error ?? `max rel error ${v.maxRelError} > ${v.tolerance}`}`);
  }
  // every block on the first share: the other shares are missing
  const { k, s } = wgmmaKernel(...WGMMA_CASES[0]!);
  const first = { ...k, text: k.text!.replace(/mov\.u32 (%r\d+), %ctaid\.z;/, 'mov.u32 $1, 0;') };
  assert.is.not(first.text, k.text);
  assert.not.ok((await verifyKernel(first, s, simRunner(), { seed: 5 })).verified, 'one share counted twice passed the check');
});

test('wgmma split-k: tiles for grids too small to fill the GPU, none for big grids or with an epilogue; refusals in one line', () => {
  const bert = wgmmaSchedules(parseProblem('matmul 128x768x768 bf16'));
  const split = bert.filter((s) => s.loops[0]!.var === 2 && s.loops[0]!.bind === 'block');
  assert.ok(split.length >= 4, `${split.length} split-k tiles for 128x768x768`);
  assert.is(wgmmaSchedules(parseProblem('matmul 4096x4096x4096 bf16')).length, WGMMA_TILES.length);
  assert.not.ok(wgmmaSchedules(parseProblem('matmul 128x768x768 bf16 +bias')).some((s) => s.loops[0]!.bind === 'block' && s.loops[0]!.var === 2));
  const p = parseProblem('matmul 128x128x256 bf16');
  const text = wgmmaScheduleText(p, { bm: 64, bn: 64, bk: 64, wgm: 1, wgn: 1, splitK: 2 });
  assert.throws(() => compileCuda(Schedule.parse(p, text), { overwrite: true }), /a split k adds every share into C, so it cannot overwrite C/);
  const relu = parseProblem('matmul 128x128x256 bf16 +relu');
  assert.throws(() => compileCuda(Schedule.parse(relu, text)), /with an epilogue the blocks cannot split the reduction/);
  const tf = parseProblem('matmul 128x128x256 tf32');
  const mma = `k:2b ${mmaScheduleText(tf, { bm: 64, bn: 64, bk: 32, wgm: 2, wgn: 2 }).replace(/k:(\d+)s/, (_, n: string) => `k:${Number(n) / 2}s`)}`;
  assert.throws(() => compileCuda(Schedule.parse(tf, mma)), /split-k \(k:2b\) is a wgmma kernel's so far/);
});

test('ptxas accepts every split-k module: sm_90 for fp32, sm_90a for wgmma', () => {
  assertAssembles(compiled.map((k) => k.text!), 'sm_90');
  const bert = wgmmaSchedules(parseProblem('matmul 128x768x3072 f16')).filter((s) => s.loops[0]!.bind === 'block' && s.loops[0]!.var === 2);
  assertAssembles([...wgmmaKernels, ...bert.map((s) => compileCuda(s))].map((k) => k.text!), 'sm_90a');
});

test.run();
