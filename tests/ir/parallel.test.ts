/**
 * Parallel loops in the IR (issue #15): the `p` suffix of the schedule text, the band rules of
 * parallelBandError, the `parallel` action and how the other transforms keep the band legal, and
 * Ansor's outer-loop rule (parallelizeOuter, bandBalance).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  applyAction, applyActions, bandBalance, LoopTuneError, parallelBand, parallelBandError, parallelizeOuter, parseProblem, Schedule,
  THREAD_ACTIONS,
} from '../../ir/index.ts';
import { actionAllowed, TARGET_ACTIONS } from '../../ir/actions.ts';

const mm = parseProblem('matmul 64x64x16');

/** Fails the test with `message` (assert.unreachable, typed for the callers that return). */
function unreachable(message: string): never {
  assert.unreachable(message);
  throw new Error(message);
}

/** The one-line LoopTuneError that parsing `text` for `spec` throws. */
function parseError(spec: string, text: string): string {
  try {
    Schedule.parse(parseProblem(spec), text);
  } catch (e) {
    assert.instance(e, LoopTuneError, `${text}: not a LoopTuneError`);
    const message = (e as Error).message;
    assert.not.match(message, /\n/, `${text}: the error is more than one line`);
    return message;
  }
  return unreachable(`${text} parsed, but should be illegal`);
}

/** The error of `action` applied to `text` at `cursor` (asserting it is illegal). */
function illegal(spec: string, text: string, cursor: number, action: string): string {
  const r = applyAction(Schedule.parse(parseProblem(spec), text, cursor), action);
  if (r.ok) return unreachable(`${action} on ${text} at ${cursor} gave ${r.schedule.text()}, should be illegal`);
  return r.error;
}

/** The schedule text after `action` applied to `text` at `cursor` (asserting it is legal). */
function after(spec: string, text: string, cursor: number, action: string): Schedule {
  const r = applyAction(Schedule.parse(parseProblem(spec), text, cursor), action);
  if (!r.ok) return unreachable(`${action} on ${text} at ${cursor}: ${r.error}`);
  return r.schedule;
}

const ROUND_TRIPS: [string, string, number[]][] = [
  ['matmul 64x64x16', 'm:64p n:64 k:16', [0]],
  ['matmul 100x60x70', 'm:6r4p m:16 n:60 k:70', [0]],
  ['matmul 100x60x70', 'm:6r4p n:3p m:16 k:70 n:20', [0, 1]],
  ['conv2d n2 c4 h10 w10 k13 r3 s3', 'n:2p h:2r2p k:3r1p c:4 r:3 s:3 h:3 k:4 w:8', [0, 1, 2]],
  ['matmul 7x32x8', 'n:2 m:3r1p k:8 n:16 m:2', [1]],
];

for (const [spec, text, band] of ROUND_TRIPS) {
  test(`'${text}' round-trips through parse and text with band ${band.join(',')}`, () => {
    const p = parseProblem(spec);
    const s = Schedule.parse(p, text);
    assert.is(s.text(), text);
    assert.equal(parallelBand(s.loops), band);
    const again = Schedule.parse(p, s.text());
    assert.ok(again.equals(s));
    assert.is(again.hash(), s.hash());
    // the flag is part of the structure: the serial nest is another schedule
    const serial = Schedule.parse(p, text.replace(/p/g, ''));
    assert.is.not(serial.hash(), s.hash());
    assert.equal(parallelBand(serial.loops), []);
  });
}

test('every parallelBandError rule gives its one-line error', () => {
  assert.is(parseError('matmul 64x64x16', 'k:16p m:64 n:64'),
    "loop 'k:16p' runs over the reduction variable k; threads would add into the same outputs, so only output loops can be parallel");
  assert.is(parseError('matmul 64x64x16', 'm:64p k:16 n:4p n:16'),
    'the parallel loops must be adjacent (one band; got a serial loop between parallel ones)');
  assert.is(parseError('matmul 64x64x16', 'm:2p m:32p n:64 k:16'), 'a parallel band has at most one loop per variable (m appears twice)');
  assert.is(parseError('matmul 64x64x16', 'm:64 k:16 n:64p'), 'the innermost loop cannot be parallel (the register tile lives below the parallel band)');
  assert.is(parseError('matmul 64x64x16', 'm:64bp n:64 k:16'), "loop 'm:64bp' is mapped to the GPU and cannot also be parallel");
  assert.is(parseError('matmul 64x64x16', 'm:64 n:64tp k:16'), "loop 'n:64tp' is mapped to the GPU and cannot also be parallel");
  // the function itself: undefined for serial nests and legal bands
  assert.is(parallelBandError(mm, Schedule.parse(mm, 'm:64 n:64 k:16').loops), undefined);
  assert.is(parallelBandError(mm, Schedule.parse(mm, 'm:4p n:4p m:16 k:16 n:16').loops), undefined);
});

test('the parallel action toggles a loop on and off; only targets with threads offer it', () => {
  const on = after('matmul 64x64x16', 'm:64 n:64 k:16', 0, 'parallel');
  assert.is(on.text(), 'm:64p n:64 k:16');
  assert.is(on.cursor, 0);
  const two = applyActions(on, ['down', 'parallel']);
  assert.is(two.text(), 'm:64p n:64p k:16');
  const off = applyActions(two, ['parallel', 'up', 'parallel']);
  assert.is(off.text(), 'm:64 n:64 k:16');
  assert.equal(off.loops.map((l) => 'parallel' in l), [false, false, false], 'toggling off drops the flag (no parallel: false left)');
  assert.ok(THREAD_ACTIONS.includes('parallel') && TARGET_ACTIONS.includes('parallel'));
  assert.is(actionAllowed('parallel', []), false);
  assert.is(actionAllowed('parallel', THREAD_ACTIONS), true);
});

test('the parallel action is illegal on a reduction loop, a 1-iteration loop, the innermost loop, or where it makes two bands', () => {
  assert.match(illegal('matmul 64x64x16', 'm:64 k:16 n:64', 1, 'parallel'), /^parallel: loop 'k:16p' runs over the reduction variable k/);
  assert.is(illegal('matmul 1x64x16', 'm:1 n:64 k:16', 0, 'parallel'), 'parallel: m:1 has a single iteration, nothing to share among threads');
  assert.is(illegal('matmul 64x64x16', 'm:64 k:16 n:64', 2, 'parallel'), 'parallel: the innermost loop cannot be parallel (the register tile lives below the parallel band)');
  assert.is(illegal('matmul 64x64x16', 'm:4p k:16 n:64 m:16', 2, 'parallel'), 'parallel: the parallel loops must be adjacent (one band; got a serial loop between parallel ones)');
  assert.match(illegal('matmul 64x64x16', 'm:4p m:16 n:64 k:16', 1, 'parallel'), /^parallel: a parallel band has at most one loop per variable/);
  // a 1-iteration loop with a tail has two iterations: it can be shared
  assert.is(after('matmul 100x60x70', 'm:1r36 m:64 n:60 k:70', 0, 'parallel').text(), 'm:1r36p m:64 n:60 k:70');
});

test('swap_up / swap_down that split the band, put a reduction inside it or make the innermost parallel are illegal', () => {
  // the reduction k moves between m and n: a serial loop inside the band
  assert.match(illegal('matmul 64x64x16', 'm:4p n:4p k:16 m:16 n:16', 2, 'swap_up'), /^swap_up: the parallel loops must be adjacent/);
  assert.match(illegal('matmul 64x64x16', 'm:4p n:4p k:16 m:16 n:16', 1, 'swap_down'), /^swap_down: the parallel loops must be adjacent/);
  assert.match(illegal('matmul 4x64x16', 'k:16 m:4p n:64', 1, 'swap_down'), /^swap_down: the innermost loop cannot be parallel/);
  // inside the band, or moving the whole band, is fine
  const inside = after('matmul 64x64x16', 'm:4p n:4p k:16 m:16 n:16', 1, 'swap_up');
  assert.is(inside.text(), 'n:4p m:4p k:16 m:16 n:16');
  assert.is(after('matmul 64x64x16', 'k:16 m:64p n:64', 1, 'swap_up').text(), 'm:64p k:16 n:64');
});

test('split keeps the flag on the outer loop only; merge keeps it, unless the merged loop is innermost', () => {
  const s = after('matmul 64x64x16', 'm:64p n:64 k:16', 0, 'split_16');
  assert.is(s.text(), 'm:4p m:16 n:64 k:16');
  assert.equal(parallelBand(s.loops), [0]);
  const t = after('matmul 100x60x70', 'm:100p n:60 k:70', 0, 'split_16');
  assert.is(t.text(), 'm:6r4p m:16 n:60 k:70');
  assert.is(after('matmul 64x64x16', 'm:4p m:16 n:64 k:16', 0, 'merge').text(), 'm:64p n:64 k:16');
  assert.match(illegal('matmul 64x64x16', 'm:64 k:16 n:4p n:16', 2, 'merge'), /^merge: the innermost loop cannot be parallel/);
});

test('bandBalance: chunks over threads * ceil(chunks / threads)', () => {
  assert.is(bandBalance(4, 2), 1);
  assert.is(bandBalance(3, 2), 0.75);
  assert.is(bandBalance(5, 4), 0.625);
  assert.is(bandBalance(1, 8), 0.125);
  assert.is(bandBalance(7, 3), 7 / 9);
  assert.is(bandBalance(192, 2), 1);
  assert.is(bandBalance(9, 4), 0.75);
});

const OUTER: [string, string, number, string, string][] = [
  // m alone balances 3 chunks on 2 threads to 0.75; m and n: 192 chunks, 1.0
  ['matmul 3x64x16', 'm:3 n:64 k:16', 2, 'm:3p n:64p k:16', 'fewest loops that reach 0.9'],
  ['matmul 3x64x16', 'm:3 n:64 k:16', 3, 'm:3p n:64 k:16', 'one loop when it balances'],
  // a tail is one more chunk: 7 chunks on 7 threads
  ['matmul 100x60x70', 'm:6r4 m:16 n:60 k:70', 7, 'm:6r4p m:16 n:60 k:70', 'a tail counts as a chunk; m twice stops the band'],
  // 3 chunks and 9 chunks both balance to 0.75 on 4 threads: the shorter band wins the tie
  ['matmul 3x3x16', 'm:3 n:3 k:16', 4, 'm:3p n:3 k:16', 'the best balance, fewest loops on a tie'],
  ['matmul 3x64x16', 'm:3 k:16 n:64', 2, 'm:3p k:16 n:64', 'a reduction loop ends the band'],
  ['add 3x5', 'i:3 j:5', 2, 'i:3p j:5', 'never the innermost loop'],
  ['matmul 3x64x16', 'k:16 m:3 n:64', 2, 'k:16 m:3 n:64', 'a schedule starting with a reduction stays serial'],
  ['matmul 3x64x16', 'm:3 n:64p k:16', 2, 'm:3 n:64p k:16', 'an existing band is kept'],
  ['matmul 3x64x16', 'm:3 n:64 k:16', 1, 'm:3 n:64 k:16', 'one thread: serial'],
  ['matmul 1x64x16', 'm:1 n:64 k:16', 2, 'm:1p n:64p k:16', 'a 1-iteration loop joins a band but never forms one alone'],
  ['matmul 1x1x16', 'm:1 n:1 k:16', 4, 'm:1 n:1 k:16', 'a single chunk: nothing to share'],
];

for (const [spec, text, threads, expected, why] of OUTER) {
  test(`parallelizeOuter(${text}, ${threads}) = ${expected}: ${why}`, () => {
    const s = Schedule.parse(parseProblem(spec), text, 1);
    const r = parallelizeOuter(s, threads);
    assert.is(r.text(), expected);
    assert.is(r.cursor, 1);
    const band = parallelBand(r.loops);
    assert.ok(!band.includes(r.loops.length - 1), 'the innermost loop is never parallel');
    assert.is(parallelBandError(r.problem, r.loops), undefined);
    if (expected === text) assert.is(r, s, 'an unchanged schedule is returned as is');
  });
}

test.run();
