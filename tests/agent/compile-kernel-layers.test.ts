/**
 * compileKernel on real layers (issue 16): padded tensors passed as their data (copied into a
 * bordered buffer) or as their padded storage (zero-copy), fused epilogues with their bias and
 * residual tensors, max pools padded with -Infinity, average pools, an output stored inside a
 * border; each against a direct definition written here on the UNPADDED arrays.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileKernel } from '../../agent/compile-kernel.ts';
import { randomArray } from '../../ir/interpret.ts';
import { padded } from '../../ir/padding.ts';
import { dataShape, elementCount, type Problem } from '../../ir/problem.ts';
import { parseProblem } from '../../ir/spec.ts';
import { hostTarget } from '../../targets/runtime/host.ts';

const target = hostTarget();
const dataOf = (p: Problem, t: number, seed: number) => randomArray(elementCount({ name: '', shape: dataShape(p.tensors[t]!) }), seed);

/** out[k, y, x] of a stride-1 3x3 conv with pad 1 on a C x H x W input, then bias, residual and relu. */
function convReference(I: Float32Array, W: Float32Array, bias: Float32Array, R: Float32Array, C: number, K: number, H: number, Wd: number): Float64Array {
  const out = new Float64Array(K * H * Wd);
  for (let k = 0; k < K; k++) for (let y = 0; y < H; y++) for (let x = 0; x < Wd; x++) {
    let acc = bias[k]!;
    for (let c = 0; c < C; c++) for (let r = 0; r < 3; r++) for (let s = 0; s < 3; s++) {
      const iy = y + r - 1, ix = x + s - 1;
      if (iy >= 0 && iy < H && ix >= 0 && ix < Wd) acc += I[(c * H + iy) * Wd + ix]! * W[((k * C + c) * 3 + r) * 3 + s]!;
    }
    const i = (k * H + y) * Wd + x;
    out[i] = Math.max(acc + R[i]!, 0);
  }
  return out;
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) => {
  assert.is(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol * Math.max(1, Math.abs(want[i]!)), `${what} [${i}]: ${got[i]} vs ${want[i]}`);
};

test('a padded conv +bias +residual +relu: the input as data or as padded storage gives the reference, run after run', async () => {
  const spec = 'conv2d n1 c5 h9 w11 k6 r3 s3 stride1 pad1 +bias +residual +relu';
  const p = parseProblem(spec);
  for (const schedule of ['n:1 k:6 h:9 w:11 c:5 r:3 s:3', 'c:5 n:1 k:6 h:9 w:11 r:3 s:3']) {
    const k = await compileKernel(p, { target, schedule, threads: 1 });
    const I = dataOf(p, 1, 1), W = randomArray(elementCount(p.tensors[2]!), 2), b = randomArray(6, 3), R = randomArray(6 * 9 * 11, 4);
    const want = convReference(I, W, b, R, 5, 6, 9, 11);
    const out = new Float32Array(6 * 9 * 11).fill(77);
    for (let run = 0; run < 3; run++) {
      k.run([I, W, b, R], out);
      close(out, want, 1e-5, `${schedule}, data input, run ${run}`);
    }
    const storage = padded(p.tensors[1]!, I);
    out.fill(-3);
    k.run([storage, W, b, R], out);
    close(out, want, 1e-5, `${schedule}, storage input`);
    k.dispose();
  }
});

test('an output with outpad: given as data, the interior comes back; given as storage, the border is left alone', async () => {
  const p = parseProblem('conv2d n1 c5 h9 w11 k6 r3 s3 stride1 pad1 outpad1 +bias +residual +relu');
  const k = await compileKernel(p, { target, schedule: 'n:1 k:6 h:9 w:11 c:5 r:3 s:3', threads: 1 });
  const I = dataOf(p, 1, 1), W = randomArray(elementCount(p.tensors[2]!), 2), b = randomArray(6, 3), R = randomArray(6 * 9 * 11, 4);
  const want = convReference(I, W, b, R, 5, 6, 9, 11);
  const out = new Float32Array(6 * 9 * 11);
  k.run([I, W, b, R], out);
  close(out, want, 1e-5, 'data output');
  const storage = new Float32Array(elementCount(p.tensors[0]!)).fill(5);
  k.run([I, W, b, R], storage);
  for (let c = 0; c < 6; c++) for (let y = 0; y < 11; y++) for (let x = 0; x < 13; x++) {
    const v = storage[(c * 11 + y) * 13 + x]!;
    if (y === 0 || x === 0 || y === 10 || x === 12) assert.is(v, 5, 'the border is the caller\'s');
    else assert.ok(Math.abs(v - want[(c * 9 + y - 1) * 11 + x - 1]!) <= 1e-5 * Math.max(1, Math.abs(v)));
  }
  k.dispose();
});

test('a padded max pool pads with -Infinity and an average pool divides by the whole window', async () => {
  const mp = parseProblem('maxpool2d n1 c3 h8 w8 r3 s3 stride2 pad1');
  const mk = await compileKernel(mp, { target, schedule: 'n:1 c:3 h:4 w:4 r:3 s:3', threads: 1 });
  const X = randomArray(3 * 64, 5).map((x) => x - 3); // all negative: a zero border would win
  const out = new Float32Array(3 * 16);
  mk.run([X], out);
  for (let c = 0; c < 3; c++) for (let oy = 0; oy < 4; oy++) for (let ox = 0; ox < 4; ox++) {
    let m = -Infinity;
    for (let r = 0; r < 3; r++) for (let s = 0; s < 3; s++) {
      const y = oy * 2 + r - 1, x = ox * 2 + s - 1;
      if (y >= 0 && y < 8 && x >= 0 && x < 8) m = Math.max(m, X[(c * 8 + y) * 8 + x]!);
    }
    assert.is(out[(c * 4 + oy) * 4 + ox], Math.fround(m));
  }
  mk.dispose();
  const gp = parseProblem('globalavgpool n1 c16 h7 w7 +sigmoid');
  const gk = await compileKernel(gp, { target, schedule: 'n:1 c:16 h:1 w:1 r:7 s:7', threads: 1 });
  const G = randomArray(16 * 49, 6);
  const mean = new Float32Array(16);
  gk.run([G], mean);
  for (let c = 0; c < 16; c++) {
    const m = G.slice(c * 49, c * 49 + 49).reduce((a, v) => a + v, 0) / 49;
    assert.ok(Math.abs(mean[c]! - 1 / (1 + Math.exp(-m))) < 1e-6, `channel ${c}`);
  }
  gk.dispose();
});

test('wrong lengths for padded tensors name both accepted sizes', async () => {
  const p = parseProblem('conv2d n1 c2 h5 w5 k2 r3 s3 stride1 pad1 +bias');
  const k = await compileKernel(p, { target, schedule: 'n:1 k:2 h:5 w:5 c:2 r:3 s:3', threads: 1 });
  assert.throws(() => k.run([new Float32Array(10), new Float32Array(36), new Float32Array(2)], new Float32Array(50)), /I must have 50 elements \(its data\) or 98 \(its padded storage\), got 10/);
  assert.throws(() => k.run([new Float32Array(50), new Float32Array(36)], new Float32Array(50)), /takes 3 tensors after the output \(I, W, bias\), got 2/);
  k.dispose();
});

test.run();
