import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  parseProblem, Schedule, applyAction, applyActions, interpret, maxRelativeError, randomArray, elementCount,
  Rng, randomProblem, RANDOM_OPS, LoopTuneError, prettyPrint, vectorEncoding, graphEncoding, MAX_LOOPS, LOOP_FEATURES,
} from '../../ir/index.ts';

const mm = parseProblem('matmul 100x60x70');

test('default schedule: output variables outer, reductions inner', () => {
  assert.is(Schedule.initial(mm).text(), 'm:100 n:60 k:70');
  assert.is(Schedule.initial(parseProblem('reduce 4x5 axis0')).text(), 'j:5 i:4');
  assert.is(Schedule.initial(parseProblem('conv2d n1 c3 h8 w8 k4 r3 s3')).text(), 'n:1 k:4 h:6 w:6 c:3 r:3 s:3');
});

test('split gives m:6r4 m:16; splitting the outer loop again keeps coverage', () => {
  const s = applyActions(Schedule.initial(mm), ['split_16']);
  assert.is(s.text(), 'm:6r4 m:16 n:60 k:70');
  assert.equal(s.steps, [16, 1, 1, 1]);
  assert.is(s.cursor, 0);
  const s2 = applyActions(s, ['split_4']);
  assert.is(s2.text(), 'm:1r36 m:4 m:16 n:60 k:70');
  const merged = applyActions(s2, ['merge']);
  assert.is(merged.text(), 'm:6r4 m:16 n:60 k:70');
});

test('swaps move the cursor with the loop', () => {
  const s = applyActions(Schedule.initial(mm), ['down', 'swap_down']);
  assert.is(s.text(), 'm:100 k:70 n:60');
  assert.is(s.cursor, 2);
  const t = applyActions(s, ['swap_up', 'swap_up']);
  assert.is(t.text(), 'n:60 m:100 k:70');
  assert.is(t.cursor, 0);
});

const ILLEGAL: [string, string[], string][] = [
  ['m:100 n:60 k:70', ['up'], 'up: the cursor is already on the outermost loop'],
  ['m:100 n:60 k:70', ['down', 'down', 'down'], 'down: the cursor is already on the innermost loop'],
  ['m:100 n:60 k:70', ['swap_up'], 'swap_up: the cursor is on the outermost loop, there is no loop above it'],
  ['m:100 n:60 k:70', ['down', 'down', 'swap_down'], 'swap_down: the cursor is on the innermost loop, there is no loop below it'],
  ['m:6r4 m:16 n:60 k:70', ['swap_down'], 'swap_down: cannot swap two loops of the same variable m'],
  ['m:6r4 m:16 n:60 k:70', ['down', 'swap_up'], 'swap_up: cannot swap two loops of the same variable m'],
  ['m:6r4 m:16 n:60 k:70', ['split_8'], 'split_8: loop m:6r4 has only 6 iterations, cannot split by 8'],
  ['m:100 n:60 k:70', ['split_1'], 'split_1: the factor must be an integer of at least 2'],
  ['m:100 n:60 k:70', ['merge'], 'merge: the loop below the cursor must be of the same variable m'],
  ['m:100 n:60 k:70', ['rotate'], "unknown action 'rotate' (expected up, down, swap_up, swap_down, split_N or merge)"],
];

for (const [start, actions, message] of ILLEGAL) {
  test(`illegal: ${actions.join(',')} on ${start}`, () => {
    const s = Schedule.parse(mm, start);
    const before = s.text();
    const last = actions[actions.length - 1]!;
    const mid = applyActions(s, actions.slice(0, -1));
    const r = applyAction(mid, last);
    assert.is(r.ok, false);
    if (!r.ok) assert.is(r.error, message);
    assert.is(s.text(), before, 'input schedule unchanged');
    assert.throws(() => applyActions(s, actions), (e: Error) => e instanceof LoopTuneError && e.message === message);
  });
}

const BAD_SCHEDULES: [string, string][] = [
  ['m:100 n:60', 'variable k has no loop in the schedule'],
  ['m:100 n:60 k:70 x:3', "unknown loop variable 'x' for matmul (variables: m, n, k)"],
  ['m:6 m:16 n:60 k:70', 'the loops of m cover 96 elements but matmul 100x60x70 has m=100'],
  ['m:6r20 m:16 n:60 k:70', "tail 20 of loop 'm:6r20' must be smaller than its step 16"],
  ['m:100r1 n:60 k:70', "loop 'm:100r1' is the innermost loop of m and cannot have a tail"],
  ['m100 n:60 k:70', "cannot read loop 'm100' (expected var:size or var:sizerTAIL, e.g. m:6r4, with a suffix p for a parallel loop)"],
  ['m:0 n:60 k:70', "loop 'm:0' must have a size of at least 1"],
  ['', 'empty schedule (expected loops such as "m:64 n:4 k:256 m:4 n:64")'],
];

for (const [text, message] of BAD_SCHEDULES) {
  test(`bad schedule '${text}'`, () => {
    assert.throws(() => Schedule.parse(mm, text), (e: Error) => e instanceof LoopTuneError && e.message === message);
  });
}

test('schedule depth is bounded: 5000 loops is one line, not a stack overflow (issue 13)', () => {
  const deep = `${'m:1 '.repeat(5000)}m:100 n:60 k:70`;
  assert.throws(() => Schedule.parse(mm, deep), (e: Error) => e instanceof LoopTuneError && e.message === 'a schedule has at most 64 loops, got 5003');
  const loops = Array.from({ length: 65 }, () => ({ var: 0, size: 1, tail: 0 }));
  assert.throws(() => new Schedule(mm, loops), (e: Error) => e instanceof LoopTuneError && e.message === 'a schedule has at most 64 loops, got 65');
  // 64 loops is allowed; splitting past it is an illegal action, not an exception
  const p = parseProblem('matmul 1024x4x4');
  const at64 = Schedule.parse(p, `${'m:1 '.repeat(61)}m:1024 n:4 k:4`);
  assert.is(at64.loops.length, 64);
  const r = applyAction(at64.withCursor(61), 'split_4');
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.error, 'split_4: the schedule already has 64 loops, the most a schedule may have');
});

test('text round-trips; hash depends on loops, not cursor', () => {
  const s = Schedule.parse(mm, 'n:60 m:6r4 k:70 m:16', 1);
  assert.is(Schedule.parse(mm, s.text()).text(), 'n:60 m:6r4 k:70 m:16');
  assert.is(s.hash(), s.withCursor(0).hash());
  assert.is.not(s.hash(), Schedule.initial(mm).hash());
  assert.match(prettyPrint(s), /for m in 6 x 16 \+ tail 4 {3}<- cursor/);
  assert.match(prettyPrint(Schedule.parse(s.problem, 'm:6r4p m:16 n:60 k:70')), /^parallel for m in 6 x 16 \+ tail 4/);
});

test('encodings: 10x20 vector, graph with loop/tensor/statement nodes', () => {
  const s = Schedule.parse(mm, 'm:6r4 n:60 k:70 m:16', 1);
  const v = vectorEncoding(s);
  assert.is(v.length, MAX_LOOPS * LOOP_FEATURES);
  assert.is(v[LOOP_FEATURES], 1, 'cursor flag on loop 1');
  assert.is(v[0], 0);
  assert.is(v[2 * LOOP_FEATURES + 3], 1, 'k is a reduction');
  const g = graphEncoding(s);
  assert.is(g.nodes.length, 4 + 3 + 1);
  const access = g.edges.filter((e) => e.kind === 'access' && e.src === 1);
  // n moves C by 1 and B by 1, not A
  assert.equal(access.map((e) => e.stride), [1, 1]);
});

/** Property: every legal action sequence leaves the computed result unchanged. */
test('property: random action sequences preserve semantics and round-trip (1,200 cases, all ops)', () => {
  let cases = 0;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: RANDOM_OPS.length - 1 }), (seed, opIndex) => {
      const rng = new Rng(seed);
      const p = randomProblem(rng, RANDOM_OPS[opIndex]!, 0.5);
      let s = Schedule.initial(p);
      const actions = ['up', 'down', 'swap_up', 'swap_down', 'split_2', 'split_3', 'split_4', 'split_8', 'merge'];
      for (let i = 0; i < 14; i++) {
        const r = applyAction(s, rng.pick(actions));
        if (r.ok) s = r.schedule;
      }
      const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), seed + i));
      const init = randomArray(elementCount(p.tensors[0]!), seed + 7);
      const want = interpret(Schedule.initial(p), inputs, init);
      const got = interpret(s, inputs, init);
      cases++;
      return maxRelativeError(got, want) < 1e-9 && Schedule.parse(p, s.text()).text() === s.text()
        && Schedule.parse(p, s.text()).hash() === s.hash();
    }),
    { numRuns: 1200, seed: 20261121 },
  );
  assert.is(cases, 1200);
});

test.run();
