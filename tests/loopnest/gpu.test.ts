/**
 * Golden tests of the GPU lowering (loopnest/gpu.ts): schedule text -> GpuProgram (bindings, grid,
 * block, where each bound index comes from, the per-thread register tile, shared-memory staging
 * with its layout and copy plans, split reductions, register cap, where the epilogue runs). The
 * values are what the lowering decides; each case says which rule it pins. The PTX printer only
 * prints these decisions.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoopTuneError, makeProblem, parseProblem, Schedule } from '../../ir/index.ts';
import { describeMapping, lowerGpu, stagedInstanceKey, type GpuLoweringOptions, type GpuProgram } from '../../loopnest/gpu.ts';
import { lower } from '../../loopnest/lower.ts';
import { printPtx } from '../../targets/cuda/ptx.ts';
import { cudaTarget } from '../../targets/cuda/target.ts';
import { compileSchedule } from '../../targets/registry.ts';

const gpu = (spec: string, text: string, opts: GpuLoweringOptions = {}): GpuProgram => lowerGpu(Schedule.parse(parseProblem(spec), text), opts);
const loopsOf = (g: GpuProgram, which: number[]) => which.map((i) => g.schedule.loops[i]!).map((l) => `${g.problem.vars[l.var]!.name}:${l.size}`);
const TEMPLATE = 'm:8b n:8b k:128s m:2 n:2 m:16t n:16t k:8 m:4 n:4';

test('rule 3 (default bindings): innermost output loops become threads up to 1024, the rest blocks; reductions stay serial', () => {
  const g = gpu('matmul 100x60x70', 'm:100 n:60 k:70');
  assert.ok(g.mapping.defaulted);
  assert.is(g.schedule.text(), 'm:100b n:60t k:70');
  assert.equal([g.mapping.grid, g.mapping.block], [[100, 1, 1], [60, 1, 1]]);
  // the register tile: one accumulator, the whole k loop unrolled (70 ops), starting at the top
  assert.equal([g.mapping.tileFrom, g.mapping.unrollFrom, g.mapping.accumulators, g.mapping.unrolledOps], [0, 0, 1, 70]);
  assert.equal([g.staging, g.split, g.sharedBytes, g.registerCap], [null, null, 0, null]);
});

test('rule 2 (dimensions): innermost block loop is grid x, innermost thread loop block x', () => {
  const g = gpu('matmul 1024x1024x1024', TEMPLATE);
  assert.not.ok(g.mapping.defaulted);
  assert.equal([g.mapping.grid, g.mapping.block, g.mapping.blocks, g.mapping.threads], [[8, 8, 1], [16, 16, 1], 64, 256]);
  assert.equal(g.mapping.indices.map((ix) => `${ix.loop}:${ix.source}.${ix.dim}`), ['0:ctaid.y', '1:ctaid.x', '5:tid.y', '6:tid.x']);
  assert.equal(loopsOf(g, g.mapping.serialLoops), ['k:128', 'm:2', 'n:2', 'k:8', 'm:4', 'n:4']);
});

test('rule 2 (linearized): four thread loops share tid.x, innermost fastest (div / mod)', () => {
  const g = gpu('matmul 64x64x8', 'm:2t n:2t m:4t n:4t m:8 n:8 k:8');
  assert.equal(g.mapping.block, [64, 1, 1]);
  assert.equal(g.mapping.indices.map((ix) => [ix.dim, ix.div, ix.mod]), [['x', 32, 0], ['x', 16, 2], ['x', 4, 4], ['x', 1, 4]]);
  // bound loops count as one point: the tile is m:8 n:8 k:8 (64 accumulators, 512 ops), from the top
  assert.equal([g.mapping.tileFrom, g.mapping.unrollFrom, g.mapping.accumulators, g.mapping.unrolledOps], [0, 0, 64, 512]);
});

test('rule 4 (register tile): per thread, below the staged loop; bound and reduction loops above it join the tile', () => {
  const g = gpu('matmul 1024x1024x1024', TEMPLATE);
  // unrolled from m:2 (index 3): 2*2*4*4 = 64 accumulators x 8 = 512 ops; k:128s and the block loops join
  assert.equal([g.mapping.unrollFrom, g.mapping.tileFrom, g.mapping.accumulators, g.mapping.unrolledOps], [3, 0, 64, 512]);
  // a smaller unroll budget: only m:4 n:4 is unrolled; the thread loops and k:8 join the tile
  const small = gpu('matmul 1024x1024x1024', TEMPLATE, { maxUnrolled: 64 });
  assert.equal([small.mapping.unrollFrom, small.mapping.tileFrom, small.mapping.accumulators, small.mapping.unrolledOps], [8, 5, 16, 16]);
  // the tile rule stops at a serial output loop that does not fit
  const cpuStyle = gpu('matmul 256x256x256', 'm:4b n:4b k:256 m:64t n:64');
  assert.equal([cpuStyle.mapping.unrollFrom, cpuStyle.mapping.tileFrom, cpuStyle.mapping.accumulators], [3, 0, 64]);
});

test('rule 5 (staging): layout with the tile\'s inner variable innermost, padded rows, double buffer, one copy plan per input', () => {
  const g = gpu('matmul 1024x1024x1024', TEMPLATE);
  const st = g.staging!;
  assert.is(st.loop, 2);
  assert.equal(st.spans, [128, 128, 8]);
  // A[m, k] is stored k-major (m innermost, the tile walks m), its 128-float rows padded to 132
  assert.equal(st.tensors.map((t) => [t.tensor, t.order, t.sstride, t.regionOffset, t.bytes]), [[1, [1, 0], [1, 132], 0, 4224], [2, [0, 1], [128, 1], 4224, 4096]]);
  assert.equal([st.bufferBytes, st.double, g.sharedBytes], [8320, true, 16640]);
  assert.equal(st.instances.map((x) => x.key), [stagedInstanceKey([1024], [0, 0])]);
  const [a, b] = st.instances[0]!.full!;
  assert.equal([a!.width, a!.box, a!.items, a!.perThread, a!.naturalInner, a!.innerStride, a!.check, a!.looped], [4, [128, 8], 256, 1, false, 132, false, false]);
  assert.equal([b!.width, b!.box, b!.items, b!.perThread, b!.naturalInner, b!.check, b!.looped], [4, [8, 128], 256, 1, true, false, false]);
  assert.is(st.instances[0]!.tail, null);
  // rule 7: 64 accumulators, 256 threads: capped at 128 registers for two blocks per multiprocessor
  assert.is(g.registerCap, 128);
  assert.is(gpu('matmul 1024x1024x1024', TEMPLATE, { maxRegisters: 'none' }).registerCap, null);
  assert.is(gpu('matmul 1024x1024x1024', TEMPLATE, { maxRegisters: 96 }).registerCap, 96);
});

test('rule 5 (staging, tails): the staged loop\'s remainder gets its own plans; boxes too big for registers are copied by a loop', () => {
  const g = gpu('matmul 130x131x67', 'm:1r2b n:1r3b k:2r3s m:2 n:2 m:16t n:16t k:32 m:4 n:4');
  const st = g.staging!;
  assert.equal([st.bufferBytes, st.double], [33280, false]); // two buffers would pass 48 KiB
  const inst = st.instances;
  assert.is(inst.length, 1);
  // full iterations: 32-wide slices of k, 4096 items, 16 per thread: a copy loop; zero fill (m, n have tails)
  assert.equal(inst[0]!.full!.map((p) => [p.width, p.box, p.perThread, p.looped, p.check]), [[1, [128, 32], 16, true, true], [1, [32, 128], 16, true, true]]);
  // the remainder: 3 values of k, 2 items per thread, kept in registers
  assert.equal(inst[0]!.tail!.map((p) => [p.width, p.box, p.perThread, p.looped]), [[1, [128, 3], 2, false], [1, [3, 128], 2, false]]);
});

test('rule 5 (staging, entry states): a serial output loop with a tail above the staged loop gives a second state, its offsets advanced', () => {
  const g = gpu('matmul 20x16x16', 'm:3r2 n:16t k:4s m:6t k:4');
  // m:3r2 runs 3 full steps of 6 rows, then the 2-row tail: A's origin moves by 18 rows x 16
  assert.equal(g.staging!.instances.map((x) => x.key), [stagedInstanceKey([16], [0, 0]), stagedInstanceKey([16], [288, 0])]);
});

test('rule 5 (staging refused): threads that disagree on a loop above, or boxes over 48 KiB, with the reason', () => {
  const disagree = gpu('matmul 66x64x64', 'm:4r2t m:2 k:8s n:64 m:8 k:8');
  assert.equal([disagree.mapping.staged, disagree.staging], [null, null]);
  assert.match(disagree.mapping.stageNote ?? '', /runs a different range in each thread/);
  const big = gpu('matmul 64x64x512', 'm:1b n:1b k:2s m:16t n:16t k:256 m:4 n:4');
  assert.equal([big.mapping.staged, big.staging, big.sharedBytes], [null, null, 0]);
  assert.is(big.mapping.stageNote, 'shared boxes need 135168 bytes, more than 49152');
  // the tile was still chosen below the (refused) staged loop
  assert.is(big.mapping.unrollFrom, 6);
});

test('rule 6 (split reduction): k:4t splits each slice over 4 threads; siblings 64 threads apart add up in shared memory', () => {
  const g = gpu('matmul 64x64x64', 'm:2b n:2b k:8s k:4t m:8t n:8t k:2 m:4 n:4');
  assert.equal(g.mapping.reductionThreadLoops, [3]);
  assert.equal([g.mapping.reductionThreads, g.mapping.block], [4, [8, 8, 4]]);
  // the staged loop is inside the tile (tileFrom 0): the partial sums may not reuse the staging buffers
  assert.equal(g.split, { areaOffset: 0, chunk: 16, siblings: [64, 128, 192] });
  assert.is(g.sharedBytes, 16384); // max(2 x 2176 staging, 16 x 256 x 4 partial sums)
});

test('rule 8 (epilogue): at the store when each tile holds whole reductions, else a second pass naming the loop', () => {
  const store = gpu('matmul 64x64x64 +bias +relu', 'm:2b n:2b k:8s m:2 n:2 m:8t n:8t k:8 m:2 n:2');
  assert.equal(store.epilogue, { ops: store.problem.epilogue!, place: 'store' });
  // the bias has strides like every tensor, but no staging region: it is read once per output
  assert.is(store.strides.length, 4);
  assert.equal(store.staging!.tensors.map((t) => t.tensor), [1, 2]);
  assert.match(describeMapping(store.mapping), /; shared staging at k:8s; epilogue at the store$/);
  // split reductions meet before the store: still there
  assert.is(gpu('matmul 64x64x64 +gelu', 'm:2b n:2b k:8s k:4t m:8t n:8t k:2 m:4 n:4').epilogue!.place, 'store');
  // m:2 keeps k:2 out of the tile (m:2 x m:65 accumulators do not fit): each tile adds half the reduction
  const pass = gpu('matmul 130x4x80 +bias +gelu', 'k:2 m:2 k:4 m:65 n:4t k:10');
  assert.equal([pass.mapping.tileFrom, pass.epilogue!.place, pass.epilogue!.note], [2, 'pass', 'the serial reduction loop k:2 runs above the register tile']);
  assert.match(describeMapping(pass.mapping), /; epilogue in a second pass \(the serial reduction loop k:2 runs above the register tile\)$/);
  // without an epilogue: none, and the description is as before
  const plain = gpu('matmul 64x64x64', 'm:2b n:2b k:8s m:2 n:2 m:8t n:8t k:8 m:2 n:2');
  assert.is(plain.epilogue, null);
  assert.match(describeMapping(plain.mapping), /shared staging at k:8s$/);
});

test('rule 8 (offsets): the staged entry states start from each input\'s Access.offset', () => {
  const base = parseProblem('matmul 8x8x8');
  const p = makeProblem({
    ...base, spec: 'matmul 8x8x8 (A at row 1)',
    tensors: [base.tensors[0]!, { name: 'A', shape: [9, 8] }, base.tensors[2]!],
    inputs: [{ ...base.inputs[0]!, offset: 8 }, base.inputs[1]!],
  });
  const g = lowerGpu(Schedule.parse(p, 'm:1b n:1b k:2s m:8t n:8t k:4'));
  assert.equal(g.staging!.instances.map((x) => x.key), [stagedInstanceKey([8], [8, 0])]);
});

test('illegal mappings fail with one line naming the loop', () => {
  const fails = (spec: string, text: string, re: RegExp) => assert.throws(() => gpu(spec, text), (e: unknown) => e instanceof LoopTuneError && re.test((e as Error).message) && !(e as Error).message.includes('\n'));
  fails('matmul 8x8x8 +relu', 'm:8 n:8 k:8b', /^cuda: k:8b is a reduction loop: with an epilogue the blocks cannot split the reduction/);
  fails('matmul 8x8x20', 'm:8 n:8 k:3r2b k:6', /^cuda: k:3r2b is a reduction loop bound to blocks, so every block's share must be whole/);
  fails('matmul 8x8x20', 'm:8 n:8 k:3r2t k:6', /may have a tail \(k:3r2t has one\)/);
  fails('matmul 64x64x8', 'm:64t n:64t k:8', /4096 threads per block, more than 1024/);
  fails('matmul 401x8x8', 'm:2r1t m:200 n:8t k:2t k:4', /the serial loop m:200 above the register tile must run the same range in every thread/);
});

test('the printer prints the program: its register cap and shared size come from the GpuProgram, twice the same text', () => {
  const g = gpu('matmul 1024x1024x1024', TEMPLATE);
  const printed = printPtx(g);
  assert.is(printPtx(g).ptx, printed.ptx);
  assert.equal([printed.launch.grid, printed.launch.block, printed.launch.sharedBytes, printed.launch.maxRegisters], [[8, 8, 1], [16, 16, 1], 16640, 128]);
  assert.match(printed.ptx, /\.maxnreg 128\n/);
  const other = printPtx({ ...g, registerCap: 200 });
  assert.match(other.ptx, /\.maxnreg 200\n/);
  assert.is(other.launch.maxRegisters, 200);
});

test('the cuda target compiles from the schedule (no LoopProgram text re-parsed); the registry gives the same PTX', () => {
  const s = Schedule.parse(parseProblem('matmul 1024x1024x1024'), TEMPLATE);
  const k = compileSchedule(s, 'cuda');
  assert.is(k.text, printPtx(lowerGpu(s)).ptx);
  assert.throws(() => cudaTarget().compile(lower(s, cudaTarget().caps)), (e: unknown) => e instanceof LoopTuneError && /does not carry the GPU mapping/.test((e as Error).message));
});

test('loopnest imports nothing from targets/ (the caps it asks are declared in loopnest/caps.ts)', () => {
  const dir = fileURLToPath(new URL('../../loopnest/', import.meta.url));
  const offenders = readdirSync(dir).filter((f) => f.endsWith('.ts')).filter((f) => /from '(\.\.\/)+targets\//.test(readFileSync(join(dir, f), 'utf8')));
  assert.equal(offenders, []);
});

test.run();
