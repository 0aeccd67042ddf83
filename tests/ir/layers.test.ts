/**
 * Real layers in the IR (issue 16): padding per side, outputs stored inside a border, average and
 * global average pools, and fused epilogues. The interpreter is checked against direct
 * definitions written here (a zero-padded convolution with bounds checks on the UNPADDED input,
 * ONNX's average pool, epilogue formulas), and the spec syntax against its canonical form and its
 * one-line errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import { interpret, randomArray } from '../../ir/interpret.ts';
import { dataShape, elementCount, erf, type Problem } from '../../ir/problem.ts';
import { randomSchedule, Rng } from '../../ir/random.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';

/** The padded storage of a C x H x W array (batch 1) for tensor 1 of `p`. */
function padInput(p: Problem, data: Float32Array): Float32Array {
  const t = p.tensors[1]!;
  const [, C, H, W] = dataShape(t) as [number, number, number, number];
  const [, , SH, SW] = t.shape as [number, number, number, number];
  const out = new Float32Array(elementCount(t)).fill(t.pad?.value ?? 0);
  const top = t.pad?.before[2] ?? 0, left = t.pad?.before[3] ?? 0;
  for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[(c * SH + y + top) * SW + x + left] = data[(c * H + y) * W + x]!;
  return out;
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

test('erf matches tabulated values to 1e-15', () => {
  const table: [number, number][] = [[0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [3, 0.9999779095030014], [-1.5, -0.9661051464753108]];
  for (const [x, want] of table) assert.ok(Math.abs(erf(x) - want) < 1e-15, `erf(${x}) = ${erf(x)}`);
});

test('a padded conv with bias and relu equals the zero-padded definition on the unpadded input, any schedule', () => {
  const rng = new Rng(3);
  for (const spec of [
    'conv2d n1 c3 h6 w7 k4 r3 s3 stride1 pad1 +bias +relu',
    'conv2d n1 c2 h5 w6 k3 r3 s3 stride2 pad1,0,1,2 +bias +relu',
    'conv2d n1 c4 h5 w5 k4 r3 s3 stride1 groups4 pad1 +bias +relu',
    'conv2d n1 c2 h7 w7 k2 r3 s3 stride1 dilation2 pad2 +bias +relu',
  ]) {
    const p = parseProblem(spec);
    const [, C, H, W] = dataShape(p.tensors[1]!) as [number, number, number, number];
    const [, K, OH, OW] = p.tensors[0]!.shape as [number, number, number, number];
    const G = p.vars.find((v) => v.name === 'g')?.extent ?? 1;
    const stride = spec.includes('stride2') ? 2 : 1, dil = spec.includes('dilation2') ? 2 : 1;
    const top = p.tensors[1]!.pad!.before[2]!, left = p.tensors[1]!.pad!.before[3]!;
    const I = randomArray(C * H * W, 1), Wt = randomArray(elementCount(p.tensors[2]!), 2), b = randomArray(K, 3);
    const want = new Float64Array(K * OH * OW);
    const Cg = C / G, Kg = K / G;
    for (let k = 0; k < K; k++) for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
      let acc = b[k]!;
      const g = Math.floor(k / Kg);
      for (let c = 0; c < Cg; c++) for (let r = 0; r < 3; r++) for (let s = 0; s < 3; s++) {
        const y = oy * stride + r * dil - top, x = ox * stride + s * dil - left;
        if (y >= 0 && y < H && x >= 0 && x < W) acc += I[((g * Cg + c) * H + y) * W + x]! * Wt[((k * Cg + c) * 3 + r) * 3 + s]!;
      }
      want[(k * OH + oy) * OW + ox] = Math.max(acc, 0);
    }
    for (let trial = 0; trial < 3; trial++) {
      const s = trial === 0 ? Schedule.initial(p) : randomSchedule(p, rng);
      const got = interpret(s, [padInput(p, I), Wt, b]);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-9, `${spec} [${s.text()}] element ${i}: ${got[i]} vs ${want[i]}`);
    }
  }
});

test('outpad stores the output inside a zero border that the computation never touches', () => {
  const p = parseProblem('conv2d n1 c2 h4 w4 k2 r3 s3 stride1 pad1 outpad1 +relu');
  assert.equal(p.tensors[0]!.shape, [1, 2, 6, 6]);
  assert.equal(dataShape(p.tensors[0]!), [1, 2, 4, 4]);
  assert.is(p.output.offset, 7);
  const q = parseProblem('conv2d n1 c2 h4 w4 k2 r3 s3 stride1 pad1 +relu');
  const inputs = [randomArray(elementCount(q.tensors[1]!), 1), randomArray(elementCount(q.tensors[2]!), 2)];
  const inner = interpret(Schedule.initial(q), inputs);
  // the border holds -7, the interior starts at zero (the conv accumulates into it)
  const init = new Float32Array(72).fill(-7);
  for (let k = 0; k < 2; k++) for (let y = 1; y < 5; y++) init.fill(0, (k * 6 + y) * 6 + 1, (k * 6 + y) * 6 + 5);
  const border = interpret(Schedule.initial(p), inputs, init);
  for (let k = 0; k < 2; k++) for (let y = 0; y < 6; y++) for (let x = 0; x < 6; x++) {
    const v = border[(k * 6 + y) * 6 + x]!;
    if (y === 0 || x === 0 || y === 5 || x === 5) assert.is(v, -7);
    else assert.is(v, inner[(k * 4 + y - 1) * 4 + x - 1]!);
  }
});

test('average pools divide by the whole window; global average pool is the mean of each channel', () => {
  const p = parseProblem('avgpool2d n1 c2 h5 w5 r3 s3 stride2 pad1');
  assert.is(p.spec, 'avgpool2d n1 c2 h5 w5 r3 s3 stride2 pad1');
  assert.is(p.tensors[1]!.pad!.value, 0);
  const I = randomArray(50, 4);
  const got = interpret(Schedule.initial(p), [padInput(p, I)]);
  for (let c = 0; c < 2; c++) for (let oy = 0; oy < 3; oy++) for (let ox = 0; ox < 3; ox++) {
    let sum = 0;
    for (let r = 0; r < 3; r++) for (let s = 0; s < 3; s++) {
      const y = oy * 2 + r - 1, x = ox * 2 + s - 1;
      if (y >= 0 && y < 5 && x >= 0 && x < 5) sum += I[(c * 5 + y) * 5 + x]!;
    }
    assert.ok(Math.abs(got[(c * 3 + oy) * 3 + ox]! - sum / 9) < 1e-12);
  }
  const g = parseProblem('globalavgpool n1 c3 h7 w7');
  assert.is(g.spec, 'avgpool2d n1 c3 h7 w7 r7 s7 stride1');
  const X = randomArray(147, 5);
  const mean = interpret(Schedule.initial(g), [X]);
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(mean[c]! - X.slice(c * 49, c * 49 + 49).reduce((a, b) => a + b, 0) / 49) < 1e-12);
});

test('max pools pad with -Infinity', () => {
  const p = parseProblem('maxpool2d n1 c1 h4 w4 r3 s3 stride2 pad1');
  assert.is(p.tensors[1]!.pad!.value, -Infinity);
  const I = randomArray(16, 6).map((x) => x - 5); // all negative: a zero border would win
  const got = interpret(Schedule.initial(p), [padInput(p, I)], new Float32Array(4).fill(-Infinity));
  assert.ok(Math.abs(got[0]! - Math.max(I[0]!, I[1]!, I[4]!, I[5]!)) < 1e-12);
});

test('epilogues apply in order after the whole reduction, with bias per channel and residual per element', () => {
  const p = parseProblem('matmul 5x6x7 +bias +gelu +residual +clip-0.5,0.75');
  const [A, B, bias, R] = [randomArray(35, 1), randomArray(42, 2), randomArray(6, 3), randomArray(30, 4)];
  const rng = new Rng(9);
  for (let trial = 0; trial < 4; trial++) {
    const got = interpret(trial === 0 ? Schedule.initial(p) : randomSchedule(p, rng), [A, B, bias, R]);
    for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) {
      let x = 0;
      for (let k = 0; k < 7; k++) x += A[i * 7 + k]! * B[k * 6 + j]!;
      const want = Math.min(Math.max(gelu(x + bias[j]!) + R[i * 6 + j]!, -0.5), 0.75);
      assert.ok(Math.abs(got[i * 6 + j]! - want) < 1e-12);
    }
  }
  const s = parseProblem('add 3x4 +sigmoid +scale2');
  const [X, Y] = [randomArray(12, 5), randomArray(12, 6)];
  const out = interpret(Schedule.initial(s), [X, Y]);
  for (let i = 0; i < 12; i++) assert.ok(Math.abs(out[i]! - 2 / (1 + Math.exp(-(X[i]! + Y[i]!)))) < 1e-12);
});

test('layer specs print canonically and read back to the same problem', () => {
  for (const [given, canonical] of [
    ['conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 +bias +relu', 'conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 +bias +relu'],
    ['conv2d n1 c8 h9 w9 k8 r3 s3 pad1,1,1,1 +RELU6', 'conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 +relu6'],
    ['conv2d n1 c8 h9 w9 k8 r3 s3 stride2 pad0,0,1,1 outpad1 +clip0,6', 'conv2d n1 c8 h9 w9 k8 r3 s3 stride2 pad0,0,1,1 outpad1 +relu6'],
    ['matmul 64x32x16 +bias +gelu', 'matmul 64x32x16 +bias +gelu'],
    ['GLOBALAVGPOOL n1 c8 h7 w7', 'avgpool2d n1 c8 h7 w7 r7 s7 stride1'],
    ['add 4x4 +residual +sigmoid', 'add 4x4 +residual +sigmoid'],
  ] as const) {
    const p = parseProblem(given);
    assert.is(p.spec, canonical);
    assert.is(parseProblem(p.spec).spec, canonical);
    assert.equal(parseProblem(p.spec).tensors, p.tensors);
  }
  const obj = parseProblem({ op: 'conv2d', n: 1, c: 8, h: 9, w: 9, k: 8, r: 3, s: 3, pad: [1, 1, 1, 1], epilogue: ['bias', 'relu'] });
  assert.is(obj.spec, 'conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 +bias +relu');
});

test('bad layer specs fail with one line', () => {
  const cases: [string, RegExp][] = [
    ['conv2d n1 c8 h9 w9 k8 r3 s3 pad3', /padding of h \(3, 3\) must be smaller than the kernel span 3/],
    ['conv2d n1 c8 h9 w9 k8 r3 s3 pad1,1,1', /pad needs one number or 4/],
    ['add 4x4 +bias', /\+bias needs a channel dimension/],
    ['matmul 4x4x4 +tanh', /unknown epilogue '\+tanh'/],
    ['matmul 4x4x4 +clip2,1', /\+clip needs min <= max/],
    ['matmul 4x4x4 +bias +bias', /\+bias given twice/],
    ['matmul 4x4x4 outpad1', /cannot read|unexpected|unknown size/],
    ['globalavgpool n1 c8 h7', /missing size w/],
  ];
  for (const [spec, want] of cases) {
    try {
      parseProblem(spec);
      assert.unreachable(`${spec} parsed`);
    } catch (e) {
      assert.instance(e, LoopTuneError, spec);
      assert.match((e as Error).message, want);
      assert.not.match((e as Error).message, /\n/);
    }
  }
});

test.run();
