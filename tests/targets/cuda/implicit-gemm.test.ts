/**
 * Tensor-core convolutions (loopnest/implicit-gemm.ts, targets/cuda/implicit-gemm-kernel.ts) and
 * the m tail they rely on, without a GPU: typed channels-last convs (wgmma, mma.sync, tf32; strides, dilation,
 * 1x1 and 3x3, epilogues, m tails) run in the PTX simulator and match the typed oracle of the conv
 * itself; broken tap walks and row clamps fail; ptxas -arch=sm_90a takes ResNet-50's layers; what
 * has no implicit GEMM is refused with one line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertAssembles } from '../../helpers/ptxas.ts';
import { parseProblem, Schedule } from '../../../ir/index.ts';
import { LoopTuneError } from '../../../ir/errors.ts';
import { elementCount, type Problem } from '../../../ir/problem.ts';
import { checkAgainstOracle, randomArray } from '../../../ir/interpret.ts';
import { gatherPixelOffset, gatherTileOffset, implicitGemm } from '../../../loopnest/implicit-gemm.ts';
import { fuzzConvs, resnet50Convs } from '../../../bench/cuda-conv.ts';
import { compileImplicitGemm, convTileSchedules } from '../../../targets/cuda/implicit-gemm-kernel.ts';
import { wgmmaSchedules } from '../../../targets/cuda/mma-tiles.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { compileCuda, type CudaKernel } from '../../../targets/cuda/target.ts';
import { backend } from '../../../targets/registry.ts';
import { verifyKernel } from '../../../targets/verify.ts';

/** Simulates a kernel (or its mutated text) computing `p`; ok only when it runs and matches p's oracle. */
async function simulated(kernel: CudaKernel, p: Problem, seed: number): Promise<{ ok: boolean; why: string }> {
  const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), seed + i));
  const init = randomArray(elementCount(p.tensors[0]!), seed + 9);
  const r = await simRunner()(kernel, [init, ...inputs], { guard: false });
  if (!r.ok) return { ok: false, why: r.error };
  const c = checkAgainstOracle(Schedule.initial(p), inputs, init, r.output);
  return { ok: c.ok, why: `error ${c.maxError} > ${c.tolerance}` };
}

/** spec, which of its tile points, stages */
const CASES: [string, number, number][] = [
  // M = 72: one full block of 64 rows and a tail of 8
  ['conv2d n2 c64 h6 w6 k64 r3 s3 stride1 pad1 nhwc bf16', 0, 3],
  // two taps a k-tile apart in c (c = 2 * BK), stride 2, epilogue
  ['conv2d n3 c128 h9 w9 k64 r3 s3 stride2 pad1 nhwc f16 +bias +relu', 0, 2],
  ['conv2d n1 c64 h14 w14 k64 r3 s3 stride1 dilation2 pad2 nhwc bf16', 1, 4],
  ['conv2d n2 c128 h6 w6 k128 r3 s3 stride1 pad1 nhwc bf16 +residual', 0, 3],
  // 1x1: one tap; two warpgroups over m, a tail inside the second
  ['conv2d n2 c64 h10 w10 k128 r1 s1 stride1 nhwc bf16 +bias', 0, 2],
  ['conv2d n2 c192 h12 w12 k64 r1 s1 stride2 nhwc f16 +gelu', 0, 3],
];

test('simulated implicit-GEMM convs match the conv oracle (stride, dilation, 1x1 / 3x3, epilogues, m tails)', async () => {
  for (const [i, [spec, pick, stages]] of CASES.entries()) {
    const p = parseProblem(spec);
    const tiles = convTileSchedules(p);
    assert.ok(tiles.length > pick, `${spec}: ${tiles.length} tile points`);
    const kernel = compileImplicitGemm(p, tiles[pick]!, { stages });
    // the kernel takes the conv's own tensors
    assert.equal(kernel.abi.tensors.map((t) => t.elements), p.tensors.map((t) => elementCount(t)));
    assert.equal(kernel.storage, ['f32', p.dtype, p.dtype, ...p.tensors.slice(3).map(() => 'f32')]);
    const r = await simulated(kernel, p, 30 + 10 * i);
    assert.ok(r.ok, `${spec} ${tiles[pick]!.text()} x${stages}: ${r.why}`);
  }
});

test('a wgmma matmul whose m ends in a partial block matches the oracle; its sketches include such tiles', async () => {
  const p = parseProblem('matmul 200x128x128 bf16 +bias');
  const s = Schedule.parse(p, 'm:1r72b n:1b k:2s m:2t n:1t k:4 m:1 n:1 m:64 n:128 k:16');
  const r = await simulated(compileCuda(s, { stages: 2 }), p, 3);
  assert.ok(r.ok, r.why);
  assert.ok(wgmmaSchedules(p).some((x) => x.loops[0]!.tail > 0), 'a tail tile among the sketches');
});

test('the simulator catches a broken tap walk, pixel origin or row clamp', async () => {
  const p = parseProblem('conv2d n2 c128 h6 w6 k64 r3 s3 stride1 pad1 nhwc bf16');
  const kernel = compileImplicitGemm(p, convTileSchedules(p)[0]!, { stages: 3 });
  const C = 128, W = 8;
  const mutations: [string, (t: string) => string][] = [
    // the step from the last tap of a filter row to the next row: (W - S) * C elements of 2 bytes
    ['next filter row one input row short', (t) => t.replace(`, ${(W - 3) * C * 2};`, `, ${(W - 4) * C * 2};`)],
    // a tap's channels wrap after C / BK = 2 k-tiles
    ['taps advanced every k-tile', (t) => t.replace(/setp\.eq\.u32 (%p\d+), (%r\d+), 2;/, 'setp.eq.u32 $1, $2, 1;')],
    ['pixel origin without the stride of output rows', (t) => t.replace(/div\.u32 (%r\d+), (%r\d+), 6;/, 'div.u32 $1, $2, 7;')],
    ['rows past M not clamped', (t) => t.replace(/min\.u32 (%r\d+), (%r\d+), 71;/, 'min.u32 $1, $2, 1000;')],
  ];
  const original = await simulated(kernel, p, 7);
  assert.ok(original.ok, original.why);
  for (const [what, mutate] of mutations) {
    const text = mutate(kernel.text!);
    assert.is.not(text, kernel.text!, `${what}: the mutation applies`);
    const r = await simulated({ ...kernel, text }, p, 7);
    assert.not.ok(r.ok, `${what}: the simulator should fail it`);
  }
});

test('a differential fuzz of random small convs x tiles x depths in the simulator (bf16, f16, tf32): no mismatch', async () => {
  for (const [type, seed, cases] of [['bf16', 3, 6], ['f16', 4, 6], ['tf32', 9, 4]] as const) {
    const r = await fuzzConvs(simRunner(), type, cases, seed, 6);
    assert.is(r.cases, cases);
    assert.equal(r.mismatches, [], `${type}: ${JSON.stringify(r.mismatches[0])}`);
    assert.is(r.passed, cases);
  }
  // a type without tensor cores is refused up front (no endless redraws)
  let refused = '';
  await fuzzConvs(simRunner(), 'f32', 1, 1).catch((e: Error) => (refused = e.message));
  assert.match(refused, /--type must be one of bf16, f16, tf32/);
});

test('overwrite: O = A·B whatever the output held (wgmma and mma.sync, matmul and conv); fp32 refuses it', async () => {
  const cases: [string, string, boolean][] = [
    ['matmul 128x128x128 bf16 +gelu', 'm:1b n:1b k:2s m:2t n:1t k:4 m:1 n:1 m:64 n:128 k:16', false],
    ['matmul 72x64x64 f16', 'm:1r8b n:1b k:2s m:2t n:2t k:2 m:2 n:4 m:16 n:8 k:16', false],
    ['conv2d n2 c64 h6 w6 k64 r3 s3 stride1 pad1 nhwc bf16 +relu', 'm:1r8b n:1b k:9s m:1t n:1t k:4 m:1 n:1 m:64 n:64 k:16', true],
  ];
  for (const [i, [spec, tile, conv]] of cases.entries()) {
    const p = parseProblem(spec);
    const kernel = conv ? compileImplicitGemm(p, tile, { stages: 2, overwrite: true }) : compileCuda(Schedule.parse(p, tile), { stages: 2, overwrite: true });
    assert.not.match(kernel.text!, /ld\.global\.v2\.f32/, `${spec}: C is not read`);
    const inputs = p.tensors.slice(1).map((t, k) => randomArray(elementCount(t), 80 + 10 * i + k));
    const garbage = randomArray(elementCount(p.tensors[0]!), 89);
    const r = await simRunner()(kernel, [garbage, ...inputs], { guard: false });
    assert.ok(r.ok, r.ok ? '' : r.error);
    if (!r.ok) continue;
    const c = checkAgainstOracle(Schedule.initial(p), inputs, new Float32Array(garbage.length), r.output);
    assert.ok(c.ok, `${spec}: error ${c.maxError} > ${c.tolerance}`);
  }
  const f32 = parseProblem('matmul 128x128x192');
  const simt = Schedule.parse(f32, 'm:1b n:1b k:3s m:8t n:16t k:64 m:16 n:8');
  assert.throws(() => compileCuda(simt, { overwrite: true }), /overwrite .* is for tensor-core kernels/);
  // through the Backend contract: granted (abi.overwrites) to tensor-core kernels, and verifyKernel
  // then expects O = A·B; an fp32 kernel is not granted it and accumulates
  const typed = Schedule.parse(parseProblem('matmul 128x128x128 bf16'), cases[0]![1]);
  const granted = backend('cuda').compile(typed, { overwrite: true });
  assert.is(granted.abi.overwrites, true);
  assert.is(granted.program.overwrites, true);
  assert.ok((await verifyKernel(granted, typed, simRunner())).verified);
  assert.is(backend('cuda').compile(simt, { overwrite: true }).abi.overwrites, undefined);
});

test('the library API exports the tensor-core conv entry points', async () => {
  // (a dynamic import may load a second copy of the modules under the test runner's hook: compare by behaviour)
  const api = await import('../../../index.ts');
  const p = parseProblem('conv2d n2 c64 h6 w6 k64 r3 s3 stride1 pad1 nhwc bf16');
  assert.equal(api.convTileSchedules(p).map((t) => t.text()), convTileSchedules(p).map((t) => t.text()));
  assert.is(api.compileImplicitGemm(p, convTileSchedules(p)[0]!).text, compileImplicitGemm(p, convTileSchedules(p)[0]!).text);
  assert.is(api.implicitGemm(p).view.spec, implicitGemm(p).view.spec);
});

test('the gather offsets: pixel origins and taps in the padded input', () => {
  const { view, gather } = implicitGemm(parseProblem('conv2d n2 c64 h8 w8 k32 r3 s3 stride2 pad1 nhwc bf16 +bias +relu'));
  assert.is(view.spec, 'matmul 32x32x576 bf16 +bias +relu');
  // output pixel (n=1, oh=2, ow=3) reads input row 4, column 6 of image 1 (10 x 10 padded)
  assert.is(gatherPixelOffset(gather, 16 + 2 * 4 + 3), ((1 * 10 + 4) * 10 + 6) * 64);
  // k-tile 5 of BK = 64: tap 5 = (r 1, s 2)
  assert.is(gatherTileOffset(gather, 64, 5), (1 * 10 + 2) * 64);
});

test('ptxas -arch=sm_90a accepts ResNet-50 layers as implicit-GEMM modules (wgmma and mma.sync)', () => {
  const modules: string[] = [];
  for (const spec of resnet50Convs(32, 'bf16', 'all').filter((_, i) => i % 3 === 0)) {
    const p = parseProblem(spec);
    const tiles = convTileSchedules(p);
    assert.ok(tiles.length >= 2, `${spec}: ${tiles.length} tile points`);
    // the single-warpgroup tiles: ptxas takes seconds on some two-warpgroup modules
    const one = tiles.find((t) => t.text().includes(' m:1t n:1t ')) ?? tiles[0]!;
    modules.push(compileImplicitGemm(p, one, { stages: 3 }).text!);
    // and an mma.sync tile (atom m:16 n:8)
    const mma = tiles.find((t) => t.text().endsWith('m:16 n:8 k:16'));
    assert.ok(mma, `${spec}: an mma.sync tile point`);
    modules.push(compileImplicitGemm(p, mma, { stages: 3 }).text!);
  }
  assertAssembles(modules, 'sm_90a');
});

test('what has no implicit GEMM is refused with one line', () => {
  const refused: [string, RegExp][] = [
    ['conv2d n1 c64 h8 w8 k64 r3 s3 stride1 pad1 bf16', /channels-last layout \(add nhwc/],
    ['conv2d n1 c64 h8 w8 k64 r3 s3 stride1 pad1 nhwc', /give it a type/],
    ['conv2d n1 c12 h8 w8 k64 r3 s3 stride1 pad1 nhwc bf16', /8 channels at a time; c=12/],
    ['conv2d n1024 c512 h130 w130 k512 r3 s3 stride1 pad1 nhwc bf16', /32-bit element offsets/],
  ];
  for (const [spec, re] of refused) {
    try {
      implicitGemm(parseProblem(spec));
      assert.unreachable(spec);
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.match((e as Error).message, re, spec);
    }
  }
  // a k-tile of 128 would straddle two taps of 64 channels
  const taps = parseProblem('conv2d n2 c64 h8 w8 k128 r2 s2 stride1 nhwc bf16');
  assert.throws(() => compileImplicitGemm(taps, 'm:1r34b n:1b k:2s m:1t n:1t k:8 m:1 n:1 m:64 n:128 k:16'), /BK=128 must divide c=64/);
  const p = parseProblem('conv2d n2 c64 h8 w8 k128 r3 s3 stride1 pad1 nhwc bf16');
  // a tile of another problem, and an mma.sync tile
  assert.throws(() => compileImplicitGemm(p, Schedule.parse(parseProblem('matmul 128x128x1152 bf16'), 'm:1b n:1b k:18s m:2t n:1t k:4 m:1 n:1 m:64 n:128 k:16')), /view matmul 128x128x576 bf16, not of matmul 128x128x1152/);
  // an mma.sync tile whose k-tile straddles taps
  assert.throws(() => compileImplicitGemm(taps, 'm:1r34b n:1b k:2s m:2t n:2t k:8 m:2 n:8 m:16 n:8 k:16'), /BK=128 must divide c=64/);
});

test('mma.sync convs (tf32 too, and GPUs before Hopper) match the conv oracle', async () => {
  const cases: [string, string][] = [
    // BK = 32: two k-tiles per tap of 64 channels; an m tail of 8
    ['conv2d n2 c64 h6 w6 k64 r3 s3 stride1 pad1 nhwc bf16 +bias', 'm:1r8b n:1b k:18s m:2t n:2t k:2 m:2 n:4 m:16 n:8 k:16'],
    ['conv2d n2 c64 h9 w9 k64 r3 s3 stride2 pad1 nhwc tf32 +relu', 'm:1r18b n:1b k:18s m:2t n:2t k:4 m:1 n:4 m:16 n:8 k:8'],
  ];
  for (const [i, [spec, tile]] of cases.entries()) {
    const p = parseProblem(spec);
    const kernel = compileImplicitGemm(p, tile, { stages: 3 });
    assert.match(kernel.text!, /mma\.sync\.aligned/);
    const r = await simulated(kernel, p, 60 + i);
    assert.ok(r.ok, `${spec}: ${r.why}`);
  }
  // tf32 convs have mma.sync tile points only
  const tf32 = convTileSchedules(parseProblem('conv2d n2 c64 h8 w8 k64 r3 s3 stride1 pad1 nhwc tf32'));
  assert.ok(tf32.length > 0 && tf32.every((t) => t.loops[t.loops.length - 1]!.size === 8));
});

test.run();
