/**
 * Tensor-core kernels (loopnest/gpu-mma.ts, targets/cuda/mma-ptx.ts) without a GPU: small bf16, f16
 * and tf32 matmuls run in the PTX simulator (warp-collective ldmatrix / mma.sync, cp.async groups
 * landing at wait_group) and match the typed oracle; every module is accepted by ptxas -arch=sm_90;
 * the swizzle makes every ldmatrix phase conflict-free; schedules that spell no tensor-core kernel
 * are refused with one line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertSchedulesRefused } from '../../helpers/refused-schedules.ts';
import { assertAssembles } from '../../helpers/ptxas.ts';
import { parseProblem, Schedule, LoopTuneError } from '../../../ir/index.ts';
import { elementCount } from '../../../ir/problem.ts';
import { checkAgainstOracle, randomArray } from '../../../ir/interpret.ts';
import { mmaScheduleText, planMma, swizzleOf } from '../../../loopnest/gpu-mma.ts';
import { swizzledOffset } from '../../../targets/cuda/mma-ptx.ts';
import { MMA_TILES, mmaSchedules } from '../../../targets/cuda/mma-tiles.ts';
import { Rng } from '../../../ir/random.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { compileCuda, type CudaKernel } from '../../../targets/cuda/target.ts';
import { backend } from '../../../targets/registry.ts';


/** spec, tile (bm bn bk wgm wgn), stages */
const CASES: [string, [number, number, number, number, number], number][] = [
  ['matmul 64x64x64 bf16', [64, 64, 32, 2, 2], 2],
  ['matmul 64x128x128 bf16', [64, 64, 32, 2, 2], 3],
  ['matmul 128x64x256 f16', [64, 32, 32, 2, 1], 4],
  ['matmul 128x128x128 bf16', [128, 64, 64, 2, 2], 2],
  ['matmul 64x128x64 tf32', [64, 64, 32, 2, 2], 3],
  ['matmul 32x64x96 tf32', [32, 32, 32, 1, 2], 2],
  // fused epilogues at the store
  ['matmul 64x64x64 bf16 +bias +gelu', [64, 64, 32, 2, 2], 2],
  ['matmul 64x128x64 f16 +residual +relu', [64, 64, 32, 2, 2], 3],
  ['matmul 64x64x64 tf32 +bias +sigmoid +clip0,0.75', [64, 64, 32, 2, 2], 2],
  // m tails: a partial last block row (rows clamped on load, not stored)
  ['matmul 80x64x64 bf16', [64, 64, 32, 2, 2], 2],
  ['matmul 100x64x96 tf32 +bias', [64, 64, 32, 2, 2], 3],
  ['matmul 72x64x64 f16 +residual +relu', [32, 64, 32, 1, 2], 2],
];

function kernelOf(spec: string, t: [number, number, number, number, number], stages: number): { kernel: CudaKernel; schedule: Schedule } {
  const p = parseProblem(spec);
  const schedule = Schedule.parse(p, mmaScheduleText(p, { bm: t[0], bn: t[1], bk: t[2], wgm: t[3], wgn: t[4] }));
  return { kernel: compileCuda(schedule, { stages }), schedule };
}

test('simulated tensor-core matmuls match the typed oracle (bf16, f16, tf32; 2-4 stages)', async () => {
  const run = simRunner();
  for (const [spec, tile, stages] of CASES) {
    const { kernel, schedule } = kernelOf(spec, tile, stages);
    const p = schedule.problem;
    const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), 20 + i));
    const init = randomArray(elementCount(p.tensors[0]!), 7);
    const r = await run(kernel, [init, ...inputs], { guard: false });
    assert.ok(r.ok, `${spec}: ${r.ok ? '' : r.error}`);
    if (!r.ok) continue;
    const c = checkAgainstOracle(schedule, inputs, init, r.output);
    assert.ok(c.ok, `${spec} ${tile.join('/')} x${stages}: error ${c.maxError} > ${c.tolerance}`);
    assert.match(kernel.text!, p.dtype === 'tf32' ? /mma\.sync\.aligned\.m16n8k8\.row\.col\.f32\.tf32\.tf32\.f32/ : new RegExp(`m16n8k16\\.row\\.col\\.f32\\.${p.dtype}\\.${p.dtype}\\.f32`));
    assert.match(kernel.text!, /cp\.async\.cg\.shared\.global/);
    assert.match(kernel.text!, new RegExp(`cp\\.async\\.wait_group ${stages - 2}`));
    assert.match(kernel.text!, /ldmatrix\.sync\.aligned\.m8n8\.x4\.shared\.b16/);
    assert.is(kernel.launch.dynamicSharedBytes, planMma(schedule, { stages }).sharedBytes);
  }
});

test('random typed matmuls x tile points x depths x epilogues in the simulator (seeded)', async () => {
  const rng = new Rng(18);
  const tiles = MMA_TILES.filter((t) => t.bm * t.bn <= 64 * 128);
  const epilogues = ['', '+bias', '+relu', '+bias +gelu', '+residual', '+scale0.5 +sigmoid'];
  const run = simRunner();
  let cases = 0, attempts = 0;
  while (cases < 10 && attempts++ < 200) {
    const t = tiles[rng.int(0, tiles.length - 1)]!;
    const type = (['bf16', 'f16', 'tf32'] as const)[rng.int(0, 2)]!;
    const spec = `matmul ${t.bm * rng.int(1, 2)}x${t.bn * rng.int(1, 2)}x${t.bk * rng.int(1, 4)} ${type} ${epilogues[rng.int(0, epilogues.length - 1)]}`;
    const p = parseProblem(spec);
    const stages = rng.int(2, 4);
    let kernel: CudaKernel;
    const schedule = Schedule.parse(p, mmaScheduleText(p, t));
    try {
      kernel = compileCuda(schedule, { stages });
    } catch (e) {
      // a tile point whose copies do not spread over its threads for this type: refused in one line
      assert.instance(e, LoopTuneError);
      continue;
    }
    cases++;
    const inputs = p.tensors.slice(1).map((x, i) => randomArray(elementCount(x), 100 * cases + i));
    const init = randomArray(elementCount(p.tensors[0]!), 100 * cases + 9);
    const r = await run(kernel, [init, ...inputs], { guard: false });
    assert.ok(r.ok, `${spec} (${schedule.text()} x${stages}): ${r.ok ? '' : r.error}`);
    if (!r.ok) continue;
    const c = checkAgainstOracle(schedule, inputs, init, r.output);
    assert.ok(c.ok, `${spec} (${schedule.text()} x${stages}): error ${c.maxError} > ${c.tolerance}`);
  }
  assert.is(cases, 10);
});

test('the simulator catches a pipeline that reads a buffer before its copies land', async () => {
  const { kernel, schedule } = kernelOf('matmul 64x64x128 bf16', [64, 64, 32, 2, 2], 3);
  const broken: CudaKernel = { ...kernel, text: kernel.text!.replace('cp.async.wait_group 1', 'cp.async.wait_group 2') };
  const p = schedule.problem;
  const a = randomArray(64 * 128, 1), b = randomArray(128 * 64, 2), c = new Float32Array(64 * 64);
  const r = await simRunner()(broken, [c, a, b], { guard: false });
  // stale (NaN-filled) shared memory flows into the products
  assert.ok(!r.ok || !checkAgainstOracle(Schedule.parse(p, schedule.text()), [a, b], c, r.output).ok);
});

test('an m tail: unclamped rows or unguarded stores fail in the simulator', async () => {
  const { kernel, schedule } = kernelOf('matmul 80x64x64 bf16', [64, 64, 32, 2, 2], 2);
  const p = schedule.problem;
  const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), 40 + i));
  const init = randomArray(elementCount(p.tensors[0]!), 49);
  const run = simRunner();
  const ok = await run(kernel, [init, ...inputs], { guard: false });
  assert.ok(ok.ok && checkAgainstOracle(schedule, inputs, init, ok.output).ok);
  const unclamped = kernel.text!.replace(/min\.u32 (%r\d+), (%r\d+), 79;/g, 'mov.u32 $1, $2;');
  const unguarded = kernel.text!.replace(/@%p\d+ st\.global/g, 'st.global');
  for (const [what, text] of [['unclamped rows', unclamped], ['unguarded stores', unguarded]] as const) {
    assert.is.not(text, kernel.text!, `${what}: the mutation applies`);
    const r = await run({ ...kernel, text }, [init, ...inputs], { guard: false });
    assert.not.ok(r.ok, `${what}: the simulator should fail it`);
  }
});

test('ptxas -arch=sm_90a accepts every tensor-core module of the tile table and the test cases', () => {
  const kernels: string[] = CASES.map(([spec, tile, stages]) => kernelOf(spec, tile, stages).kernel.text!);
  for (const spec of ['matmul 4096x4096x4096 bf16', 'matmul 768x3072x128 f16', 'matmul 2048x2048x2048 tf32']) {
    for (const s of backend('cuda').sketches!.seeds!(parseProblem(spec), 16)) kernels.push(compileCuda(s).text!);
  }
  assert.ok(kernels.length >= 20, `${kernels.length} modules`);
  assertAssembles(kernels, 'sm_90a');
});

test('swizzle: the 8 rows of every ldmatrix phase fall in 8 different 16-byte bank groups', () => {
  for (const [rowElems, eb] of [[32, 2], [64, 2], [128, 2], [256, 2], [16, 4], [32, 4], [128, 4]] as const) {
    const chunks = (rowElems * eb) / 16;
    for (let r0 = 0; r0 < 64; r0 += 8) {
      for (let c = 0; c < chunks; c++) {
        const groups = new Set<number>();
        for (let i = 0; i < 8; i++) groups.add((swizzledOffset(r0 + i, c * (16 / eb), rowElems, eb) % 128) / 16);
        assert.is(groups.size, 8, `rows of ${rowElems} x ${eb} bytes, chunk ${c}`);
      }
    }
    // a bijection on each row's chunks
    for (let r = 0; r < 16; r++) {
      const seen = new Set<number>();
      for (let c = 0; c < chunks; c++) seen.add(c ^ swizzleOf(r, chunks));
      assert.is(seen.size, chunks);
      assert.ok([...seen].every((x) => x < chunks));
    }
  }
});

test('schedules that spell no tensor-core kernel are refused with one line', () => {
  const p = parseProblem('matmul 128x128x128 bf16');
  const bad: [string, RegExp][] = [
    ['m:128 n:128 k:128', /a tensor-core schedule reads m:\{M\/BM\}b/],
    ['m:2b n:2b k:4s m:2t n:2t k:2 m:2 n:4 m:16 n:4 n:2 k:16', /ends with the mma atom m:16 n:8 k:16/],
    ['m:2b n:2b k:4s m:2t n:8t k:2 m:2 m:16 n:8 k:16', /warp tile is a multiple of 16 x 16/],
    ['m:2b n:2b k:4s m:2t n:2t k:2 m:2 n:4 m:16 n:8 k:8 k:2', /ends with the mma atom/],
    ['m:2b n:2b k:2 k:2s m:2t n:2t k:2 m:2 n:4 m:16 n:8 k:16', /the staged loop of a tensor-core schedule is the outermost k loop/],
  ];
  assertSchedulesRefused(p, compileCuda, bad);
  assert.match(backend('cuda').validate!(Schedule.initial(p)) ?? '', /^no GPU kernel: cuda: a tensor-core schedule/);
  assert.throws(() => compileCuda(Schedule.parse(parseProblem('bmm b2 m64 n64 k64 bf16'), 'b:2 m:64 n:64 k:64')), /tensor-core kernels cover matmul and nhwc conv2d so far, not bmm/);
  assert.throws(() => kernelOf('matmul 64x64x64 bf16', [64, 64, 32, 2, 2], 9), /stages must be an integer 2\.\.8/);
});

test('the cuda sketches of a typed matmul are its tensor-core tile points', () => {
  const p = parseProblem('matmul 4096x4096x4096 bf16');
  const seeds = backend('cuda').sketches!.seeds!(p, 16);
  assert.ok(seeds.length >= 8, `${seeds.length} seeds`);
  for (const s of seeds) assert.is(backend('cuda').validate!(s), undefined, s.text());
  // BERT's 768x3072x128 has tile points too; a matmul no tile divides has none
  assert.ok(mmaSchedules(parseProblem('matmul 768x3072x128 bf16')).length > 0);
  assert.is(mmaSchedules(parseProblem('matmul 100x100x100 bf16')).length, 0);
});

test.run();
