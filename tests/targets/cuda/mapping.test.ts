/**
 * The GPU mapping rule (loopnest/gpu.ts) gives the documented grid/block dims, and the
 * cuda actions (bind_block, bind_thread, stage_shared) are legal exactly where documented and
 * round-trip through the schedule text.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, Schedule, applyAction, applyActions, LoopTuneError, CUDA_ACTIONS, isKnownAction } from '../../../ir/index.ts';
import { gpuMapping, withDefaultBindings } from '../../../loopnest/gpu.ts';
import { compileCuda } from '../../../targets/cuda/target.ts';

const mm = parseProblem('matmul 100x60x70');
const map = (spec: string, text: string) => gpuMapping(Schedule.parse(parseProblem(spec), text));

test('default rule: innermost output loops up to 1024 threads, the other output loops blocks', () => {
  const m = gpuMapping(Schedule.initial(mm));
  assert.ok(m.defaulted);
  assert.is(m.schedule.text(), 'm:100b n:60t k:70');
  assert.equal(m.grid, [100, 1, 1]);
  assert.equal(m.block, [60, 1, 1]);
  // CPU-style tiled schedule: n:64, m:4, n:4 fit 1024 threads, m:64 becomes blocks
  const t = gpuMapping(Schedule.parse(parseProblem('matmul 256x256x256'), 'm:64 n:4 k:256 m:4 n:64'));
  assert.is(t.schedule.text(), 'm:64b n:4t k:256 m:4t n:64t');
  assert.equal(t.grid, [64, 1, 1]);
  assert.equal(t.block, [64, 4, 4]);
  // a tail counts as one more iteration
  assert.is(withDefaultBindings(Schedule.parse(mm, 'm:6r4 m:16 n:60 k:70')).schedule.text(), 'm:6r4b m:16t n:60t k:70');
  assert.equal(gpuMapping(Schedule.parse(mm, 'm:6r4 m:16 n:60 k:70')).grid, [7, 1, 1]);
  // reductions only: one thread
  const r = gpuMapping(Schedule.initial(parseProblem('reduce 24 axis0')));
  assert.equal([r.grid, r.block], [[1, 1, 1], [1, 1, 1]]);
});

test('annotated loops: innermost block loop is grid x, innermost thread loop is block x', () => {
  const m = map('matmul 1024x1024x1024', 'm:8b n:8b k:128s m:2 n:2 m:16t n:16t k:8 m:4 n:4');
  assert.not.ok(m.defaulted);
  assert.equal(m.grid, [8, 8, 1]);
  assert.equal(m.block, [16, 16, 1]);
  assert.equal(m.indices.map((i) => `${i.source}.${i.dim}`), ['ctaid.y', 'ctaid.x', 'tid.y', 'tid.x']);
  assert.is(m.staged, 2);
  assert.is(m.accumulators, 64);
  const bmm = map('bmm b3 m64 n64 k64', 'b:3b m:2b n:2b k:8s m:8t n:8t k:8 m:4 n:4');
  assert.equal(bmm.grid, [2, 2, 3]);
  assert.equal(bmm.block, [8, 8, 1]);
});

test('more than three loops of a kind are linearized into x, innermost fastest', () => {
  const m = map('matmul 64x64x8', 'm:2t n:2t m:4t n:4t m:8 n:8 k:8');
  assert.equal(m.block, [64, 1, 1]);
  assert.equal(m.indices.map((i) => [i.div, i.mod]), [[32, 0], [16, 2], [4, 4], [1, 4]]);
  const big = map('add 70000x2', 'i:70000b j:2t');
  assert.equal(big.grid, [70000, 1, 1]);
  const yz = map('add 8x70000', 'i:8b j:70000b');
  assert.equal(yz.grid, [70000, 8, 1]);
});

test('illegal mappings fail with one line', () => {
  assert.throws(() => map('maxpool2d n1 c1 h4 w4 r2 s2', 'n:1 c:1 h:3 w:3 r:2b s:2'), (e: unknown) => e instanceof LoopTuneError && /r:2b is a reduction loop: .*combines with max/.test((e as Error).message));
  assert.throws(() => map('matmul 8x8x20', 'm:8 n:8 k:3r2t k:6'), (e: unknown) => e instanceof LoopTuneError && /may have a tail/.test((e as Error).message));
  assert.throws(() => map('matmul 401x8x8', 'm:2r1t m:200 n:8t k:2t k:4'), (e: unknown) => e instanceof LoopTuneError && /same range in every thread/.test((e as Error).message));
  assert.throws(() => map('matmul 64x64x8', 'm:64t n:64t k:8'), (e: unknown) => e instanceof LoopTuneError && /4096 threads/.test((e as Error).message));
  assert.throws(() => map('add 70000x70000', 'i:70000b j:70000b'), (e: unknown) => e instanceof LoopTuneError && /exceed/.test((e as Error).message));
});

test('cuda actions: bind_block / bind_thread toggle, reductions to blocks only as sums without an epilogue, 1024 threads enforced', () => {
  assert.ok(CUDA_ACTIONS.every(isKnownAction));
  let s = applyActions(Schedule.initial(mm), ['bind_block', 'down', 'bind_thread']);
  assert.is(s.text(), 'm:100b n:60t k:70');
  s = applyActions(s, ['bind_thread']);
  assert.is(s.text(), 'm:100b n:60 k:70');
  // split-k (loopnest/gpu.ts rule 10): a sum's reduction loop may go to blocks; not a max, not with an epilogue, not with a tail
  const redBlock = applyAction(s.withCursor(2), 'bind_block');
  assert.ok(redBlock.ok && redBlock.schedule.text() === 'm:100b n:60 k:70b');
  const withRelu = applyAction(Schedule.parse(parseProblem('matmul 100x60x70 +relu'), 'm:100b n:60 k:70', 2), 'bind_block');
  assert.ok(!withRelu.ok && /with an epilogue the blocks cannot split the reduction/.test(withRelu.error));
  const pool = parseProblem('maxpool2d n1 c3 h8 w8 r3 s3 stride2 pad1');
  const poolRed = applyAction(Schedule.initial(pool).withCursor(pool.vars.findIndex((v) => v.name === 'r')), 'bind_block');
  assert.ok(!poolRed.ok && /combines with max/.test(poolRed.error));
  const tailedBlock = applyAction(Schedule.parse(mm, 'm:100b n:60 k:6r4 k:11', 2), 'bind_block');
  assert.ok(!tailedBlock.ok && /every block's share must be whole, and k:6r4 has a tail/.test(tailedBlock.error));
  const redThread = applyAction(s.withCursor(2), 'bind_thread');
  assert.ok(redThread.ok && redThread.schedule.text() === 'm:100b n:60 k:70t');
  const tailed = applyAction(Schedule.parse(mm, 'm:100 n:60 k:6r4 k:11', 3), 'bind_thread');
  assert.ok(!tailed.ok && /whole ranges/.test(tailed.error));
  const many = applyAction(Schedule.parse(parseProblem('matmul 64x64x8'), 'm:64t n:64 k:8', 1), 'bind_thread');
  assert.ok(!many.ok && /more than 1024/.test(many.error));
  const st = applyAction(s.withCursor(2), 'stage_shared');
  assert.ok(st.ok && st.schedule.text() === 'm:100b n:60 k:70s');
  assert.ok(!applyAction(s, 'stage_shared').ok);
  // the existing actions keep annotations on the loops they move or split
  const split = applyActions(st.ok ? st.schedule : s, ['split_7']);
  assert.is(split.text(), 'm:100b n:60 k:10s k:7');
});

test('annotations round-trip through the text and change the hash', () => {
  const text = 'm:6r4b m:16t n:60 k:7s k:10';
  const s = Schedule.parse(mm, text);
  assert.is(s.text(), text);
  assert.is(Schedule.parse(mm, s.text()).hash(), s.hash());
  assert.is.not(Schedule.parse(mm, 'm:6r4 m:16 n:60 k:7 k:10').hash(), s.hash());
  assert.equal(s.loops.map((l) => [l.bind ?? '', l.shared ?? false]), [['block', false], ['thread', false], ['', false], ['', true], ['', false]]);
});

test('staging is ignored, with a reason, where threads of a block would disagree on the loop', () => {
  const m = map('matmul 66x64x64', 'm:4r2t m:2 k:8s n:64 m:8 k:8');
  assert.is(map('matmul 64x64x64', 'm:4t m:2 k:8s n:64 m:8 k:8').staged, 2); // whole ranges: the same in every thread
  assert.is(m.staged, null);
  assert.match(m.stageNote ?? '', /runs a different range in each thread/);
  const big = compileCuda(Schedule.parse(parseProblem('matmul 64x64x512'), 'm:1b n:1b k:2s m:16t n:16t k:256 m:4 n:4'));
  assert.is(big.mapping.staged, null);
  assert.match(big.mapping.stageNote ?? '', /more than 49152/);
});

test('split reductions: reduction thread loops, partial sums in shared memory', () => {
  const m = map('matmul 64x64x64', 'm:2b n:2b k:8s k:4t m:8t n:8t k:2 m:4 n:4');
  assert.equal(m.reductionThreadLoops, [3]);
  assert.is(m.reductionThreads, 4);
  assert.equal(m.block, [8, 8, 4]);
  const k = compileCuda(Schedule.parse(parseProblem('matmul 64x64x64'), 'm:2b n:2b k:8s k:4t m:8t n:8t k:2 m:4 n:4'));
  assert.match(k.text!, /setp\.eq\.u32/);
  assert.match(k.text!, /\$PARTIALS/);
});

test.run();
