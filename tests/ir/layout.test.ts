/**
 * The blocked NCHWc layout (`layout<B>`, ir/layout.ts): a blocked conv or pool under the
 * interpreter equals the NCHW one with its inputs blocked and its output unblocked by the JS
 * references (dense, depthwise, padded, stride 2, dilated, outpad, +bias +relu, +residual, pools);
 * the conversion problems equal those references under any schedule; the variables and strides
 * put ki on the output's unit stride; attributes and canonical specs; one-line errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import { interpret, randomArray } from '../../ir/interpret.ts';
import {
  blockActivations, blockDepthwiseWeights, blockedVariant, blockWeights, fromBlocked, toBlocked, unblockActivations,
} from '../../ir/layout.ts';
import { copyFromStorage, padded } from '../../ir/padding.ts';
import { dataShape, elementCount, flops, tensorStrides, varIndex, type Problem } from '../../ir/problem.ts';
import { randomSchedule, Rng } from '../../ir/random.ts';
import { Schedule } from '../../ir/schedule.ts';
import { convAttributes, isConvOp, layoutBlock, parseProblem, poolAttributes } from '../../ir/spec.ts';

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The data of an output (the interior of its storage, without the outpad border). */
function interior(p: Problem, storage: Float64Array): Float64Array {
  const out = new Float64Array(size(dataShape(p.tensors[0]!)));
  copyFromStorage(p.tensors[0]!, storage, out);
  return out;
}

/** Product of a conv's window sizes (weights W[K, C/G, window...]). */
function windowPoints(p: Problem): number {
  return p.tensors[2]!.shape.slice(2).reduce((a, b) => a * b, 1);
}

/**
 * Runs the NCHW problem and its blocked variant on the same data (inputs blocked, output
 * unblocked by the JS references) under `schedules` of each, starting from the same output
 * contents, and returns the worst relative difference.
 */
function compareLayouts(spec: string, B: number, rng: Rng, seed: number): number {
  const nchw = parseProblem(spec);
  const blocked = blockedVariant(nchw, B);
  assert.ok(blocked, `${spec}: no blocked variant with block ${B}`);
  const inShape = dataShape(nchw.tensors[1]!), outShape = dataShape(nchw.tensors[0]!);
  const x = randomArray(size(inShape), seed);
  const init = randomArray(size(outShape), seed + 1);
  const nchwInputs: Float32Array[] = [padded(nchw.tensors[1]!, x)];
  const blockedInputs: Float32Array[] = [padded(blocked.tensors[1]!, blockActivations(x, inShape, B))];
  if (isConvOp(nchw.op)) {
    const w = randomArray(elementCount(nchw.tensors[2]!), seed + 2);
    const [K, Cg] = nchw.tensors[2]!.shape as [number, number];
    const depthwise = convAttributes(nchw).groups > 1;
    nchwInputs.push(w);
    blockedInputs.push(depthwise ? blockDepthwiseWeights(w, K, 1, windowPoints(nchw), B) : blockWeights(w, K, Cg, 1, windowPoints(nchw), B));
  }
  // epilogue tensors: a bias is the same array in both layouts, a residual is blocked like the output
  nchw.tensors.slice(1 + nchw.inputs.length).forEach((t, i) => {
    const data = randomArray(elementCount(t), seed + 3 + i);
    nchwInputs.push(data);
    blockedInputs.push(t.name === 'R' ? blockActivations(data, outShape, B) : data);
  });
  const want = interior(nchw, interpret(Schedule.initial(nchw), nchwInputs, padded(nchw.tensors[0]!, init)));
  const blockedInit = padded(blocked.tensors[0]!, blockActivations(init, outShape, B));
  let worst = 0;
  for (const schedule of [Schedule.initial(blocked), randomSchedule(blocked, rng), randomSchedule(blocked, rng, 20)]) {
    const got = unblockActivations(Float32Array.from(interior(blocked, interpret(schedule, blockedInputs, blockedInit))), outShape, B);
    for (let i = 0; i < want.length; i++) {
      // float32 of the blocked result against the float64 NCHW one: summation order differs between schedules
      const err = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
      if (err > worst) worst = err;
    }
  }
  return worst;
}

const CASES: [string, number][] = [
  ['conv2d n1 c8 h6 w7 k16 r3 s3 stride1', 8],
  ['conv2d n2 c16 h7 w7 k8 r3 s3 stride1 pad1', 4],
  ['conv2d n1 c8 h9 w8 k8 r3 s3 stride2 pad1', 8],
  ['conv2d n1 c4 h8 w8 k8 r3 s3 stride2 pad1,0,1,2', 4],
  ['conv2d n1 c8 h7 w7 k8 r3 s3 stride1 dilation2 pad2', 4],
  ['conv2d n1 c16 h7 w7 k16 r1 s1 stride1 +bias +relu', 16],
  ['conv2d n1 c8 h7 w7 k16 r3 s3 stride1 pad1 outpad1 +bias +relu', 8],
  ['conv2d n1 c8 h6 w6 k8 r3 s3 stride1 pad1 +residual', 8],
  ['conv2d n1 c8 h6 w6 k8 r3 s3 stride1 pad1 +bias +residual +relu', 4],
  ['conv2d n1 c8 h7 w7 k8 r3 s3 stride1 groups8 pad1', 8],
  ['conv2d n1 c16 h9 w9 k16 r3 s3 stride2 groups16 pad1 +bias +relu', 8],
  ['conv2d n1 c8 h6 w6 k8 r3 s3 stride1 groups8 pad1 outpad1 +residual', 4],
  ['conv1d n2 c8 w11 k8 s3 stride2 pad1 +bias', 4],
  ['conv3d n1 c4 d4 h4 w5 k8 t2 r2 s2 stride1 pad1', 4],
  ['maxpool2d n1 c8 h9 w9 r3 s3 stride2 pad1', 4],
  ['maxpool2d n1 c16 h8 w8 r2 s2 stride2 outpad1 +relu', 16],
  ['avgpool2d n2 c8 h7 w7 r3 s3 stride2 pad1', 8],
  ['globalavgpool n1 c16 h7 w7', 16],
  ['maxpool1d n1 c4 w9 s3 stride2', 4],
];

test('a blocked conv or pool under the interpreter equals the NCHW one on the same data, converted by the JS references', () => {
  const rng = new Rng(11);
  CASES.forEach(([spec, B], i) => {
    const worst = compareLayouts(spec, B, rng, 100 * i + 1);
    assert.ok(worst < 1e-5, `${spec} layout${B}: worst difference ${worst}`);
  });
});

test('the blocked variables: n kb <spatial> ki [cb ci] <window>; ki moves the output by 1, the dense input by 0 (broadcast), the weights by 1', () => {
  const dense = parseProblem('conv2d n1 c32 h7 w7 k64 r3 s3 stride1 pad1 layout16');
  assert.equal(dense.vars.map((v) => `${v.name}${v.extent}`), ['n1', 'kb4', 'h7', 'w7', 'ki16', 'cb2', 'ci16', 'r3', 's3']);
  assert.equal(dense.tensors.map((t) => t.shape), [[1, 4, 7, 7, 16], [1, 2, 9, 9, 16], [4, 2, 3, 3, 16, 16]]);
  assert.equal(dense.tensors[1]!.pad, { before: [0, 0, 1, 1, 0], after: [0, 0, 1, 1, 0], value: 0 });
  const last = dense.output.index[dense.output.index.length - 1]!;
  assert.equal(last.terms, [{ var: varIndex(dense, 'ki'), coef: 1 }]);
  const ki = varIndex(dense, 'ki'), ci = varIndex(dense, 'ci');
  const st = tensorStrides(dense);
  assert.equal([st[0]![ki], st[1]![ki], st[2]![ki]], [1, 0, 1]);
  // one input element broadcast against a weight vector: the input moves by 1 along ci, the weights by B
  assert.equal([st[1]![ci], st[2]![ci]], [1, 16]);
  assert.is(flops(dense), flops(parseProblem('conv2d n1 c32 h7 w7 k64 r3 s3 stride1 pad1')));

  const dw = parseProblem('conv2d n1 c32 h14 w14 k32 r3 s3 stride2 groups32 pad1 layout8');
  assert.equal(dw.vars.map((v) => `${v.name}${v.extent}`), ['n1', 'kb4', 'h7', 'w7', 'ki8', 'r3', 's3']);
  assert.equal(dw.tensors.map((t) => t.shape), [[1, 4, 7, 7, 8], [1, 4, 16, 16, 8], [4, 3, 3, 8]]);
  const dst = tensorStrides(dw);
  assert.equal([dst[0]![varIndex(dw, 'ki')], dst[1]![varIndex(dw, 'ki')], dst[2]![varIndex(dw, 'ki')]], [1, 1, 1]);
  assert.is(flops(dw), flops(parseProblem('conv2d n1 c32 h14 w14 k32 r3 s3 stride2 groups32 pad1')));

  const pool = parseProblem('maxpool2d n1 c32 h9 w9 r3 s3 stride2 pad1 layout8');
  assert.equal(pool.vars.map((v) => `${v.name}${v.extent}`), ['n1', 'cb4', 'h5', 'w5', 'ci8', 'r3', 's3']);
  assert.equal(pool.tensors[1]!.pad, { before: [0, 0, 1, 1, 0], after: [0, 0, 1, 1, 0], value: -Infinity });
  assert.is(tensorStrides(pool)[1]![varIndex(pool, 'ci')], 1);
});

test('outpad, bias and residual in the blocked layout: the border, bias[kb*B + ki], the residual blocked like the output', () => {
  const p = parseProblem('conv2d n1 c16 h7 w7 k32 r3 s3 stride1 pad1 outpad1 layout16 +bias +residual +relu');
  assert.equal(p.tensors.map((t) => `${t.name}${JSON.stringify(t.shape)}`), ['O[1,2,9,9,16]', 'I[1,1,9,9,16]', 'W[2,1,3,3,16,16]', 'bias[32]', 'R[1,2,7,7,16]']);
  assert.equal(p.tensors[0]!.pad, { before: [0, 0, 1, 1, 0], after: [0, 0, 1, 1, 0], value: 0 });
  // the interior starts one row and one column into the border: (9 + 1) * 16 elements
  assert.is(p.output.offset, 160);
  const bias = p.epilogue!.find((e) => e.kind === 'bias')!;
  assert.ok(bias.kind === 'bias');
  assert.equal(bias.access.index, [{ terms: [{ var: varIndex(p, 'kb'), coef: 16 }, { var: varIndex(p, 'ki'), coef: 1 }] }]);
  assert.is(layoutBlock(p), 16);
  assert.is(layoutBlock(parseProblem('conv2d n1 c16 h7 w7 k32 r3 s3 stride1')), null);
  assert.is(layoutBlock(parseProblem('matmul 4x4x4')), null);
});

test('canonical specs print layout<B> after the other window options and read back to themselves; the object form takes layout', () => {
  const cases: [string, string][] = [
    ['conv2d n1 c64 h56 w56 k64 r3 s3 layout16 pad1 +bias +relu', 'conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 layout16 +bias +relu'],
    ['conv2d n1 c32 h14 w14 k32 r3 s3 stride2 groups32 layout8 dilation2 pad2 outpad1', 'conv2d n1 c32 h14 w14 k32 r3 s3 stride2 groups32 dilation2 pad2 outpad1 layout8'],
    ['MAXPOOL2D n1 c64 h112 w112 r3 s3 stride2 pad1 LAYOUT16', 'maxpool2d n1 c64 h112 w112 r3 s3 stride2 pad1 layout16'],
    ['globalavgpool n1 c512 h7 w7 layout16', 'avgpool2d n1 c512 h7 w7 r7 s7 stride1 layout16'],
    ['conv3d n1 c16 d8 h8 w8 k16 t3 r3 s3 stride1 layout4', 'conv3d n1 c16 d8 h8 w8 k16 t3 r3 s3 stride1 layout4'],
  ];
  for (const [input, canonical] of cases) {
    const p = parseProblem(input);
    assert.is(p.spec, canonical);
    assert.is(parseProblem(p.spec).spec, canonical);
  }
  const obj = parseProblem({ op: 'conv2d', n: 1, c: 16, h: 7, w: 7, k: 16, r: 3, s: 3, pad: 1, layout: 8, epilogue: ['bias'] });
  assert.is(obj.spec, 'conv2d n1 c16 h7 w7 k16 r3 s3 stride1 pad1 layout8 +bias');
});

test('convAttributes and poolAttributes read a blocked problem as its NCHW twin', () => {
  for (const spec of [
    'conv2d n1 c16 h9 w9 k32 r3 s3 stride2 dilation2 pad2,1,2,1',
    'conv2d n1 c32 h14 w14 k32 r3 s3 stride2 groups32 pad1',
    'conv3d n1 c8 d6 h6 w6 k8 t3 r3 s3 stride1 pad1',
    'conv1d n1 c8 w12 k16 s3 stride1 pad0,2',
  ]) {
    assert.equal(convAttributes(blockedVariant(parseProblem(spec), 8)!), convAttributes(parseProblem(spec)), spec);
  }
  for (const spec of ['maxpool2d n1 c16 h9 w9 r3 s3 stride2 pad1', 'avgpool3d n1 c8 d6 h6 w6 t2 r2 s2 stride2 dilation1 pad1']) {
    assert.equal(poolAttributes(blockedVariant(parseProblem(spec), 8)!), poolAttributes(parseProblem(spec)), spec);
  }
});

test('blockedVariant: the spec plus layout<B>, null where the layout does not apply', () => {
  const p = parseProblem('conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 outpad1 +bias +relu');
  assert.is(blockedVariant(p, 16)!.spec, 'conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 outpad1 layout16 +bias +relu');
  assert.is(blockedVariant(parseProblem('avgpool2d n1 c8 h9 w9 r3 s3 stride2'), 4)!.spec, 'avgpool2d n1 c8 h9 w9 r3 s3 stride2 layout4');
  const none: [string, number][] = [
    ['matmul 64x64x64', 16], ['add 16x16', 4],
    ['conv2d n1 c64 h56 w56 k64 r3 s3 stride1 layout16', 16], // already blocked
    ['conv2d n1 c64 h56 w56 k64 r3 s3 stride1', 12],
    ['conv2d n1 c3 h56 w56 k64 r3 s3 stride2', 8], // an RGB stem: c=3
    ['conv2d n1 c64 h56 w56 k20 r1 s1 stride1', 8],
    ['conv2d n1 c64 h56 w56 k64 r3 s3 stride1 groups2', 8],
    ['maxpool2d n1 c6 h9 w9 r3 s3 stride2', 4],
  ];
  for (const [spec, B] of none) assert.is(blockedVariant(parseProblem(spec), B), null, `${spec} with ${B}`);
});

test('toBlocked and fromBlocked under the interpreter equal blockActivations and unblockActivations, under any schedule', () => {
  const rng = new Rng(5);
  for (const [shape, B] of [[[1, 16, 5, 7], 8], [[2, 8, 3, 4], 4], [[1, 32, 7, 7], 16], [[2, 8, 9], 4], [[1, 8, 2, 3, 4], 8]] as [number[], number][]) {
    const x = randomArray(size(shape), shape.length * 7 + B);
    const blocked = blockActivations(x, shape, B);
    assert.equal(unblockActivations(blocked, shape, B), x);
    const to = toBlocked(shape, B), from = fromBlocked(shape, B);
    assert.equal(to.tensors.map((t) => t.shape), [[shape[0], shape[1]! / B, ...shape.slice(2), B], shape]);
    assert.is(to.spec, `copy ${shape.length === 5 ? 'n1 c8 d2 h3 w4' : shape.length === 3 ? 'n2 c8 w9' : `n${shape[0]} c${shape[1]} h${shape[2]} w${shape[3]}`} tolayout${B}`);
    for (const schedule of [Schedule.initial(to), randomSchedule(to, rng), randomSchedule(to, rng, 20)]) {
      assert.equal(Float32Array.from(interpret(schedule, [x])), blocked, `${to.spec} [${schedule.text()}]`);
    }
    for (const schedule of [Schedule.initial(from), randomSchedule(from, rng), randomSchedule(from, rng, 20)]) {
      assert.equal(Float32Array.from(interpret(schedule, [blocked])), x, `${from.spec} [${schedule.text()}]`);
    }
  }
});

test('blockWeights puts W[k, c, r, s] at [k/B, c/B, r, s, c%B, k%B]; blockDepthwiseWeights W[c, 0, r, s] at [c/B, r, s, c%B]', () => {
  const K = 8, C = 12, R = 2, S = 3, B = 4;
  const w = randomArray(K * C * R * S, 3);
  const b = blockWeights(w, K, C, R, S, B);
  for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
    const at = (((((Math.floor(k / B) * (C / B) + Math.floor(c / B)) * R + r) * S + s) * B + (c % B)) * B) + (k % B);
    assert.is(b[at], w[((k * C + c) * R + r) * S + s]);
  }
  const d = randomArray(C * R * S, 4);
  const db = blockDepthwiseWeights(d, C, R, S, B);
  for (let c = 0; c < C; c++) for (let q = 0; q < R * S; q++) assert.is(db[(Math.floor(c / B) * R * S + q) * B + (c % B)], d[c * R * S + q]);
});

/** Asserts that `run` throws a LoopTuneError whose one-line message matches `pattern`. */
function failsWith(run: () => unknown, pattern: RegExp): void {
  try {
    run();
  } catch (e) {
    assert.instance(e, LoopTuneError);
    const message = (e as Error).message;
    assert.not.match(message, /\n/);
    assert.match(message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}

test('bad layouts fail with one line', () => {
  const bad: [string, RegExp][] = [
    ['conv2d n1 c12 h7 w7 k16 r3 s3 stride1 layout8', /^conv2d: layout8 needs channels divisible by 8, got c=12$/],
    ['conv2d n1 c16 h7 w7 k12 r3 s3 stride1 layout8', /^conv2d: layout8 needs channels divisible by 8, got k=12$/],
    ['conv2d n1 c3 h7 w7 k6 r3 s3 stride1 layout4', /^conv2d: layout4 needs channels divisible by 4, got c=3 k=6$/],
    ['conv2d n1 c16 h7 w7 k16 r3 s3 stride1 layout5', /^conv2d: layout must be a channel block of 4, 8 or 16 \(e\.g\. layout16\), got 5$/],
    ['conv2d n1 c16 h7 w7 k16 r3 s3 stride1 layout32', /got 32$/],
    ['conv2d n1 c16 h7 w7 k16 r3 s3 stride1 layout0', /got 0$/],
    ['conv2d n1 c16 h7 w7 k16 r3 s3 stride1 groups2 layout8', /^conv2d: layout8 takes dense \(groups1\) or depthwise \(groups = c = k\) convolutions, got groups2 with c=16 k=16$/],
    ['conv2d n1 c16 h7 w7 k32 r3 s3 stride1 groups16 layout8', /got groups16 with c=16 k=32$/],
    ['conv2d n1 c16 h7 w7 k16 r3 s3 stride1 layout8 layout16', /^conv2d: size layout given twice$/],
    ['maxpool2d n1 c6 h7 w7 r3 s3 stride1 layout4', /^maxpool2d: layout4 needs channels divisible by 4, got c=6$/],
    ['maxpool2d n1 c8 h7 w7 r3 s3 stride1 layout4 +bias', /^maxpool2d: \+bias needs a channel dimension/],
    ['add 16x16 layout4', /^add: unexpected 'layout4'/],
    ['matmul m16 n16 k16 layout4', /^matmul: unknown size 'layout'/],
  ];
  for (const [spec, pattern] of bad) failsWith(() => parseProblem(spec), pattern);
  failsWith(() => parseProblem(JSON.parse('{"op":"conv2d","n":1,"c":16,"h":7,"w":7,"k":16,"r":3,"s":3,"layout":"16"}')), /^conv2d: layout must be a channel block of 4, 8 or 16 \(e\.g\. layout16\), got "16"$/);
  failsWith(() => toBlocked([1, 12, 4, 4], 8), /^toBlocked: channels C=12 are not divisible by the block 8$/);
  failsWith(() => fromBlocked([1, 16, 4, 4], 6), /^fromBlocked: block must be 4, 8 or 16, got 6$/);
  failsWith(() => toBlocked([16, 4], 4), /^toBlocked: shape must be N C and one to three spatial sizes/);
  failsWith(() => blockActivations(new Float32Array(10), [1, 4, 2, 2], 4), /^blockActivations: expected 16 elements, got 10$/);
  failsWith(() => blockWeights(new Float32Array(72), 8, 1, 3, 3, 4), /^blockWeights: C=1 not divisible by the block 4$/);
});

test.run();
