/**
 * Where the lowering puts an epilogue and what its operands point at (issue 16): in the register
 * tile when the tile holds each output's whole reduction, as a separate pass after the nest (or
 * inside each parallel chunk) otherwise; operand offsets are relative to the tensors' pointers
 * AT THE TILE, also for a tail instance whose inner loops carry the offset (found by the avx512
 * layer fuzz: "reduce 14x24 axis1 +scale0.5 +residual +scale0.5", "i:1r6 j:24 i:2 i:4").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';
import { lower } from '../../loopnest/lower.ts';
import { walkProgram, type TileNode } from '../../loopnest/program.ts';
import { backend } from '../../targets/registry.ts';

const caps = backend('avx2').caps;

function tiles(spec: string, schedule: string): TileNode[] {
  const out: TileNode[] = [];
  walkProgram(lower(Schedule.parse(parseProblem(spec), schedule), caps).body, (n) => {
    if (n.kind === 'tile') out.push(n);
  });
  return out;
}

test('a residual operand of a tail tile points at its own elements, not the first tile\'s', () => {
  const ts = tiles('reduce 14x24 axis1 +scale0.5 +residual +scale0.5', 'i:1r6 j:24 i:2 i:4');
  assert.is(ts.length, 2);
  assert.ok(ts.every((t) => t.epilogue === true));
  // output element i and residual element i: equal offsets in both tiles (the tile's pointers are the kernel's)
  for (const t of ts) for (const a of t.accumulators) assert.is(a.operands![0]!.offset, a.offset, `accumulator at ${a.offset}`);
});

test('the epilogue goes in the tile when the tile holds the reduction, in a pass when a reduction loop is above it', () => {
  const inTile = tiles('matmul 8x16x32 +bias +relu', 'm:8 n:16 k:32');
  assert.ok(inTile.every((t) => t.epilogue === true && t.body.length > 0));
  const pass = tiles('matmul 8x16x32 +bias +relu', 'k:32 m:8 n:16');
  const main = pass.filter((t) => t.body.length > 0), after = pass.filter((t) => t.body.length === 0);
  assert.ok(main.length > 0 && main.every((t) => t.epilogue !== true), 'the accumulating tiles apply nothing');
  assert.ok(after.length > 0 && after.every((t) => t.epilogue === true && t.loadOutput), 'the pass loads, applies and stores');
  // the pass covers every output element exactly once (16 columns in vectors of up to 8 lanes, 8 rows)
  const covered = after.reduce((a, t) => a + t.accumulators.reduce((b, x) => b + x.count, 0), 0);
  assert.ok(covered >= 16, `the pass tiles cover ${covered} elements per row`);
});

test('a band with a reduction loop above it is refused when there is an epilogue', () => {
  const p = parseProblem('matmul 8x16x32 +relu');
  assert.throws(() => Schedule.parse(p, 'k:32 m:8p n:16'), /reduction variable k above the parallel band/);
  Schedule.parse(parseProblem('matmul 8x16x32'), 'k:32 m:8p n:16');
});

test.run();
