/**
 * Edge tiles on the cuda target (rule 9 of loopnest/gpu.ts), without a GPU: shapes that are not
 * multiples of the block tile get two bodies behind one uniform branch on the block indices.
 * Kernels run in the PTX simulator (strict on out-of-bounds accesses and races) and are checked
 * against the interpreter; the grids hold interior and boundary blocks, and forcing every block
 * through one body shows which body each kind needs: the general body is right everywhere, the
 * interior body (no predicates, unchecked copies) only inside. The interior body is the aligned
 * kernel's instruction sequence; ptxas -arch=sm_90 accepts every module.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertAssembles, oneModule } from '../../helpers/ptxas.ts';
import { parseProblem, Schedule } from '../../../ir/index.ts';
import { edgeSplit, lowerGpu } from '../../../loopnest/gpu.ts';
import { fuzzCuda } from '../../../targets/cuda/fuzz.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { templateSchedule, type ConvParams, type GemmParams } from '../../../targets/cuda/templates.ts';
import { compileCuda, type CudaKernel } from '../../../targets/cuda/target.ts';
import { verifyKernel } from '../../../targets/verify.ts';

const compiled: CudaKernel[] = [];

const gemm = (p: Partial<GemmParams>): GemmParams => ({ family: 'gemm', ty: 4, tx: 4, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 8, stage: true, ...p });

function schedule(spec: string, how: string | GemmParams | ConvParams): Schedule {
  const p = parseProblem(spec);
  if (typeof how === 'string') return Schedule.parse(p, how);
  const s = templateSchedule(p, how);
  if (!s) throw new Error(`no template schedule for ${spec}`);
  return s;
}

function compile(s: Schedule): CudaKernel {
  const k = compileCuda(s);
  compiled.push(k);
  return k;
}

/** Blocks whose indices are all below the whole counts of the edge split, and all blocks. */
function blockCounts(k: CudaKernel): { interior: number; blocks: number } {
  const whole = new Map(k.gpu.edges?.loops.map((x) => [x.loop, x.whole]) ?? []);
  const interior = k.mapping.blockLoops.reduce((a, j) => a * (whole.get(j) ?? k.mapping.indices.find((ix) => ix.loop === j)!.count), 1);
  return { interior, blocks: k.mapping.blocks };
}

/** The module with the entry branch replaced: every block through the interior body, or every block through the general one. */
function forced(k: CudaKernel, body: 'interior' | 'edge'): CudaKernel {
  const branch = /\t@!%p\d+ bra (\$EDGE_\d+);\n/;
  const m = branch.exec(k.text!);
  if (!m) throw new Error('no edge branch');
  return { ...k, text: k.text!.replace(branch, body === 'interior' ? '' : `\tbra ${m[1]};\n`) };
}

/** The text of the interior body alone (entry, its walk, the exit), lines with numbers and register names normalized. */
function interiorOnly(k: CudaKernel): string[] {
  const lines = k.text!.slice(k.text!.indexOf('{')).split('\n');
  const br = lines.findIndex((l) => /bra \$EDGE_\d+;$/.test(l));
  const exit = lines.findIndex((l) => l === '\tbra $EXIT;');
  const end = lines.findIndex((l) => l === '$EXIT:');
  // the predicate of the branch: the setp/and lines right above it
  let from = br;
  while (from > 0 && /^\t(setp\.lt\.u32|and\.pred) %p/.test(lines[from - 1]!)) from--;
  return [...lines.slice(0, from), ...lines.slice(br + 1, exit), ...lines.slice(end)];
}

function normalized(lines: string[]): string[] {
  return lines
    .filter((l) => !/^\t\.reg /.test(l))
    .map((l) => l.replace(/looptune_\w+_[0-9a-f]{16}/g, 'ENTRY').replace(/%[a-z]+\d+/g, '%R').replace(/\$[A-Z]+_\d+/g, '$L').replace(/-?\b\d+\b/g, 'N'));
}

const CASES: [string, string | GemmParams | ConvParams][] = [
  // 16 x 16 block tiles over 37 x 45 (3 x 3 blocks, 4 interior), k with a staged tail
  ['matmul 37x45x29', gemm({})],
  // 32-row tiles, 4 rows per thread, a 65 x 33 output (m:2r1b n:2r1b), k:70 in slices of 16
  ['matmul 65x33x70', gemm({ ty: 8, tx: 4, rmo: 2, rmi: 2, rni: 4, bk: 16 })],
  // a split reduction (k:2t) with block tails on both output variables
  ['matmul 37x45x32', gemm({ sk: 2 })],
  // batched: b whole, m and n with tails
  ['bmm b3 m37 n29 k19', gemm({ ty: 4, tx: 4, rmi: 2, rni: 2 })],
  // fused epilogues at the store: bias read per column, relu; residual and gelu
  ['matmul 37x45x29 +bias +relu', gemm({})],
  ['matmul 50x36x24 +residual +gelu', gemm({ ty: 8, rmi: 2 })],
  // the epilogue in a second pass (k:2 above the register tile) under a block tail
  ['matmul 37x130x20 +bias +sigmoid', 'm:2r5b k:2 n:2 k:2 n:65 m:16t k:5'],
  // a serial output loop above the staged one: constant trip counts in interior blocks, run-time ones at the edge
  ['matmul 70x33x24', 'm:2r6b n:1r1b m:2 k:3s m:8t n:32t k:8 m:2'],
  // conv2d with odd sizes: k, h and w tiles with tails, channels staged with a tail
  ['conv2d n1 c7 h19 w23 k13 r3 s3 stride1', { family: 'conv', tk: 4, th: 2, tw: 4, rk: 2, rh: 2, rw: 2, bc: 4, stage: true }],
  ['conv2d n1 c5 h13 w17 k6 r3 s3 stride2 pad1 +bias +relu', { family: 'conv', tk: 2, th: 2, tw: 4, rk: 2, rh: 1, rw: 2, bc: 2, stage: true }],
  // unstaged: the interior body's global loads carry no predicates either
  ['matmul 37x45x29', gemm({ stage: false })],
];

test('the lowering splits on block loops with tails that lead their variable, with their full counts', () => {
  const s = schedule('matmul 1000x1000x1000', gemm({ ty: 16, tx: 16, rmo: 1, rmi: 8, rno: 2, rni: 4 }));
  assert.is(s.text(), 'm:7r104b n:7r104b k:125s m:1 n:2 m:16t n:16t k:8 m:8 n:4');
  assert.equal(edgeSplit(s), { loops: [{ loop: 0, whole: 7 }, { loop: 1, whole: 7 }] });
  // aligned: nothing to split, one body
  const aligned = compileCuda(schedule('matmul 1024x1024x1024', gemm({ ty: 16, tx: 16, rmo: 1, rmi: 8, rno: 2, rni: 4 })));
  assert.is(aligned.gpu.edges, null);
  assert.not.match(aligned.text!, /\$EDGE_/);
  // a block loop below a serial loop of its variable has a run-time range even in whole blocks: not split
  assert.is(edgeSplit(Schedule.parse(parseProblem('matmul 40x16x8'), 'm:4 m:2r2b n:16t k:8 m:4')), null);
  // only n:2r13b of a nested pair leads its variable with a tail
  assert.equal(edgeSplit(Schedule.parse(parseProblem('matmul 32x45x8'), 'm:2b m:16t n:2r13b n:16t k:8')), { loops: [{ loop: 2, whole: 2 }] });
});

test('staging: the interior entry states copy without the bounds check, the general ones with it', () => {
  const g = lowerGpu(schedule('matmul 37x45x29', gemm({})));
  const st = g.staging!;
  assert.ok(st.instances.every((x) => [...x.full!, ...x.tail!].every((pl) => pl.check)));
  assert.ok(st.interior!.length > 0 && st.interior!.every((x) => [...x.full!, ...x.tail!].every((pl) => !pl.check)));
  // a thread loop with a tail keeps the check inside whole blocks too
  const t = lowerGpu(Schedule.parse(parseProblem('matmul 45x40x16'), 'm:2r13b n:1r8b k:2s m:3r1t n:8t k:8 m:5 n:4'));
  assert.ok(t.edges !== null && t.staging!.interior!.every((x) => x.full!.every((pl) => pl.check === (pl.region === 0))));
});

test('tail shapes in the simulator: interior and boundary blocks, both bodies, match the interpreter', async () => {
  const run = simRunner();
  for (const [spec, how] of CASES) {
    const s = schedule(spec, how);
    const k = compile(s);
    const what = `${spec} | ${s.text()}`;
    assert.ok(k.gpu.edges, `${what}: no edge split`);
    const { interior, blocks } = blockCounts(k);
    assert.ok(interior >= 1 && interior < blocks, `${what}: ${interior} of ${blocks} blocks interior`);
    const v = await verifyKernel(k, s, run, { seed: 3 });
    assert.ok(v.verified, `${what}: ${v.error}`);
    // the general body is right for every block
    const edge = await verifyKernel(forced(k, 'edge'), s, run, { seed: 3 });
    assert.ok(edge.verified, `${what} (all blocks through the general body): ${edge.error}`);
    // the interior body is not: boundary blocks need the other one (an out-of-bounds access or a wrong result)
    const inside = await verifyKernel(forced(k, 'interior'), s, run, { seed: 3 });
    assert.not.ok(inside.verified, `${what}: the interior body passed in boundary blocks`);
  }
});

test('the interior body has no predicated stores and no clamped copies; the general body has them', () => {
  const k = compile(schedule('matmul 37x45x29', gemm({})));
  const interior = interiorOnly(k).join('\n');
  const general = k.text!.slice(k.text!.search(/^\$EDGE_\d+:$/m));
  assert.not.match(interior, /@%p\d+ (ld|st)\.global\.f32/);
  assert.not.match(interior, /min\.u64|\$ROW_/);
  assert.match(general, /@%p\d+ st\.global\.f32/);
  assert.match(general, /min\.u64/);
  assert.match(general, /bra \$ROW_\d+/);
});

test('the interior body is the aligned kernel: the same instructions, only constants and register names differ', () => {
  const pairs: [string, string, GemmParams][] = [
    // same tile, same alignment classes (rows multiples of 4), k whole
    ['matmul 36x44x32', 'matmul 32x32x32', gemm({})],
    ['matmul 1000x1000x1000', 'matmul 1024x1024x1000', gemm({ ty: 16, tx: 16, rmo: 1, rmi: 8, rno: 2, rni: 4 })],
    ['matmul 3000x1500x2500', 'matmul 3072x1536x2500', gemm({ ty: 8, tx: 16, rmi: 4, rni: 4, bk: 16 })],
  ];
  for (const [tails, aligned, params] of pairs) {
    const t = compile(schedule(tails, params));
    const a = compile(schedule(aligned, params));
    assert.ok(t.gpu.edges && !a.gpu.edges);
    const got = normalized(interiorOnly(t));
    const want = normalized(a.text!.slice(a.text!.indexOf('{')).split('\n'));
    assert.equal(got, want, `${tails} vs ${aligned}`);
  }
});

test('sim fuzz over tail shapes: template schedules with edge splits, zero mismatches', async () => {
  const r = await fuzzCuda({ cases: 60, seed: 1818, ops: ['matmul', 'bmm', 'conv2d'], runner: simRunner(), scale: 1 });
  assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
  assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
  assert.ok(r.edgeSplit >= 10, `only ${r.edgeSplit} kernels with an edge split`);
});

test('ptxas -arch=sm_90 accepts the edge-split modules', () => {
  const module = oneModule(compiled);
  assertAssembles([module.text], 'sm_90');
  assert.ok(module.entries >= 12, `${module.entries} modules`);
});

test.run();
