import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../../ir/errors.ts';
import { randomArray } from '../../../ir/interpret.ts';
import { BINARY_OPS, UNARY_OPS, type HostOp } from '../../../ir/model/graph.ts';
import { evaluateHostOp } from '../../../ir/model/reference.ts';
import { erf } from '../../../ir/problem.ts';
import { Rng } from '../../../ir/random.ts';
import { fastErf, prepareHostOp } from '../../../targets/runtime/host-ops.ts';

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/**
 * Runs `op` with host-ops and with the reference (float64, ir/model/reference.ts) on the same fp32
 * inputs; the fp32 result must be the reference rounded, within 1e-6 of the output's magnitude.
 */
function check(op: HostOp, shapes: number[][], out: number[], inputs?: Float32Array[], what = JSON.stringify(op)): void {
  const xs = inputs ?? shapes.map((s, i) => randomArray(product(s), 11 + i));
  const want = evaluateHostOp(op, shapes.map((shape, i) => ({ shape, data: xs[i]! })), out);
  const got = new Float32Array(product(out)).fill(NaN);
  prepareHostOp(op, shapes, out)(xs, got);
  assert.is(got.length, want.length, `${what}: output length`);
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= 1e-6 * Math.max(1, scale))) assert.unreachable(`${what} ${shapes.map((s) => `[${s}]`).join(' ')}: element ${i} is ${got[i]}, the reference ${want[i]}`);
  }
}

function isOneLine(e: unknown, pattern: RegExp): boolean {
  return e instanceof LoopTuneError && !e.message.includes('\n') && pattern.test(e.message);
}

test('binary ops broadcast as numpy: same shapes, a row vector, a column, scalars, both sides', () => {
  const cases: [number[], number[], number[]][] = [
    [[2, 3, 4], [2, 3, 4], [2, 3, 4]],
    [[2, 3, 4], [4], [2, 3, 4]],
    [[2, 3, 4], [3, 1], [2, 3, 4]],
    [[1], [2, 3], [2, 3]],
    [[2, 1, 4], [1, 3, 1], [2, 3, 4]],
    [[5, 1], [1, 1, 7], [1, 5, 7]],
    [[1, 8, 1, 1], [1, 8, 6, 6], [1, 8, 6, 6]],
  ];
  for (const op of BINARY_OPS) {
    for (const [a, b, out] of cases) {
      // pow: positive bases, and the exponents a graph writes (2, 0.5) beside arbitrary ones
      const xs = [randomArray(product(a), 3), randomArray(product(b), 4)];
      if (op === 'pow') {
        xs[0] = xs[0]!.map((v) => Math.abs(v) + 0.1);
        xs[1] = xs[1]!.map((v, i) => (i % 3 === 0 ? 2 : i % 3 === 1 ? 0.5 : v * 3));
      }
      if (op === 'div') xs[1] = xs[1]!.map((v) => (Math.abs(v) < 0.05 ? 0.5 : v));
      check({ kind: 'binary', op }, [a, b], out, xs, `binary ${op}`);
    }
  }
});

test('unary ops and clip, elementwise', () => {
  const shape = [3, 5, 7];
  const x = randomArray(product(shape), 5).map((v) => v * 4);
  for (const op of UNARY_OPS) {
    const xs = op === 'sqrt' ? [x.map(Math.abs)] : [x];
    check({ kind: 'unary', op }, [shape], shape, xs, `unary ${op}`);
  }
  check({ kind: 'clip', min: 0, max: 6 }, [shape], shape, [x.map((v) => v * 2)]);
  check({ kind: 'clip', min: -0.5, max: 0.25 }, [shape], shape, [x]);
});

test('fastErf is within 1e-8 of the float64 erf over the whole line', () => {
  let worst = 0;
  for (let x = -7; x <= 7; x += 0.000731) worst = Math.max(worst, Math.abs(fastErf(x) - erf(x)));
  assert.ok(worst < 1e-8, `worst error ${worst}`);
  assert.is(fastErf(0), 0);
  assert.is(fastErf(Infinity), 1);
  assert.is(fastErf(-Infinity), -1);
  assert.ok(Number.isNaN(fastErf(NaN)));
});

test('softmax over each axis; layer norm over trailing axes', () => {
  const shape = [3, 4, 5];
  const x = randomArray(product(shape), 7).map((v) => v * 8);
  for (const axis of [0, 1, 2]) check({ kind: 'softmax', axis }, [shape], shape, [x]);
  const ln = [2, 3, 8];
  for (const axis of [1, 2]) {
    const cols = product(ln.slice(axis));
    check({ kind: 'layernorm', axis, epsilon: 1e-5 }, [ln, ln.slice(axis), ln.slice(axis)], ln, [randomArray(product(ln), 8), randomArray(cols, 9), randomArray(cols, 10)]);
  }
});

test('transpose: random permutations of ranks 1 to 5, and large 2-d and attention-shaped ones (tiled paths)', () => {
  const rng = new Rng(42);
  for (let trial = 0; trial < 60; trial++) {
    const rank = rng.int(1, 5);
    const shape = Array.from({ length: rank }, () => rng.int(1, 6));
    const perm = Array.from({ length: rank }, (_, i) => i);
    for (let i = rank - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    check({ kind: 'transpose', perm }, [shape], perm.map((p) => shape[p]!));
  }
  check({ kind: 'transpose', perm: [1, 0] }, [[37, 45]], [45, 37]);
  // BERT's key transpose [1, S, H, D] -> [1, H, D, S] and its head split [1, S, H, D] -> [1, H, S, D]
  check({ kind: 'transpose', perm: [0, 2, 3, 1] }, [[1, 33, 4, 17]], [1, 4, 17, 33]);
  check({ kind: 'transpose', perm: [0, 2, 1, 3] }, [[1, 33, 4, 17]], [1, 4, 33, 17]);
});

test('concat along every axis; reshape copies when it is not an alias', () => {
  for (const axis of [0, 1, 2]) {
    const shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]].map((s, i) => s.map((n, d) => (d === axis ? n + i : n)));
    const out = shapes[0]!.map((n, d) => (d === axis ? shapes.reduce((a, s) => a + s[d]!, 0) : n));
    check({ kind: 'concat', axis }, shapes, out);
  }
  // long rows take the set() path
  check({ kind: 'concat', axis: 1 }, [[2, 700], [2, 1500]], [2, 2200]);
  check({ kind: 'reshape' }, [[2, 3, 4]], [6, 4]);
});

test('reducemean: trailing, middle, non-adjacent and all axes, with and without keepdims', () => {
  const shape = [2, 3, 4, 5];
  const cases: [number[], boolean][] = [[[2, 3], true], [[3], false], [[1], false], [[0, 2], true], [[1, 3], false], [[0, 1, 2, 3], false], [[0, 1, 2, 3], true]];
  for (const [axes, keepdims] of cases) {
    const out = keepdims ? shape.map((n, d) => (axes.includes(d) ? 1 : n)) : shape.filter((_, d) => !axes.includes(d));
    check({ kind: 'reducemean', axes, keepdims }, [shape], out.length === 0 ? [] : out);
  }
  // a reduced axis of size 1: nothing to average
  check({ kind: 'reducemean', axes: [1], keepdims: true }, [[3, 1, 4]], [3, 1, 4]);
});

test('a prepared op allocates its scratch once: two runs on different inputs give each its own result', () => {
  const shape = [2, 3, 4, 5];
  const op: HostOp = { kind: 'reducemean', axes: [0, 2], keepdims: false };
  const run = prepareHostOp(op, [shape], [3, 5]);
  for (const seed of [1, 2]) {
    const x = randomArray(product(shape), seed);
    const got = new Float32Array(15);
    run([x], got);
    const want = evaluateHostOp(op, [{ shape, data: x }], [3, 5]);
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-6, `run ${seed} element ${i}`));
  }
});

test('shapes that do not fit the op are one line', () => {
  assert.throws(() => prepareHostOp({ kind: 'binary', op: 'add' }, [[2, 3], [4]], [2, 3]), (e: unknown) => isOneLine(e, /does not broadcast/));
  assert.throws(() => prepareHostOp({ kind: 'binary', op: 'add' }, [[2, 3]], [2, 3]), (e: unknown) => isOneLine(e, /takes 2 inputs, got 1/));
  assert.throws(() => prepareHostOp({ kind: 'transpose', perm: [0, 0] }, [[2, 3]], [2, 3]), (e: unknown) => isOneLine(e, /not a permutation/));
  assert.throws(() => prepareHostOp({ kind: 'transpose', perm: [1, 0] }, [[2, 3]], [2, 3]), (e: unknown) => isOneLine(e, /is \[3, 2\], got \[2, 3\]/));
  assert.throws(() => prepareHostOp({ kind: 'concat', axis: 1 }, [[2, 3], [3, 3]], [2, 6]), (e: unknown) => isOneLine(e, /does not match the output/));
  assert.throws(() => prepareHostOp({ kind: 'softmax', axis: 3 }, [[2, 3]], [2, 3]), (e: unknown) => isOneLine(e, /axis 3 is outside 0..1/));
  assert.throws(() => prepareHostOp({ kind: 'layernorm', axis: 1, epsilon: 1e-5 }, [[2, 3], [4], [3]], [2, 3]), (e: unknown) => isOneLine(e, /gamma/));
  assert.throws(() => prepareHostOp({ kind: 'reducemean', axes: [1], keepdims: true }, [[2, 3]], [2]), (e: unknown) => isOneLine(e, /is \[2, 1\], got \[2\]/));
  assert.throws(() => prepareHostOp({ kind: 'reshape' }, [[2, 3]], [7]), (e: unknown) => isOneLine(e, /6 elements/));
});

test.run();
