/**
 * The channels-last conv2d (`nhwc`, ir/spec.ts): its tensors, variables, attributes and errors, and
 * its meaning: the same numbers as the NCHW conv on the same data, transposed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, Schedule, LoopTuneError } from '../../ir/index.ts';
import { interpret, randomArray } from '../../ir/interpret.ts';
import { convAttributes, isChannelsLast, layoutBlock } from '../../ir/spec.ts';

test('nhwc: N H W C input stored padded, R S C K weights, N H W K output, variables n h w k r s c', () => {
  const p = parseProblem('conv2d n2 c16 h9 w7 k8 r3 s3 stride2 pad1 nhwc bf16 +bias +relu');
  assert.is(p.spec, 'conv2d n2 c16 h9 w7 k8 r3 s3 stride2 pad1 nhwc bf16 +bias +relu');
  assert.equal(p.vars.map((v) => `${v.name}${v.extent}`), ['n2', 'h5', 'w4', 'k8', 'r3', 's3', 'c16']);
  assert.equal(p.tensors.map((t) => t.shape), [[2, 5, 4, 8], [2, 11, 9, 16], [3, 3, 16, 8], [8]]);
  assert.equal(p.tensors[1]!.pad, { before: [0, 1, 1, 0], after: [0, 1, 1, 0], value: 0 });
  assert.equal(convAttributes(p), { stride: [2, 2], dilation: [1, 1], groups: 1, pads: [1, 1, 1, 1] });
  assert.ok(isChannelsLast(p));
  assert.is(layoutBlock(p), null);
  assert.not.ok(isChannelsLast(parseProblem('conv2d n1 c16 h8 w8 k8 r3 s3 stride1 pad1')));
  assert.is(parseProblem(p.spec).spec, p.spec);
});

test('nhwc computes the NCHW conv on transposed data', () => {
  const [N, C, H, W, K, R, S] = [2, 5, 6, 7, 3, 3, 2];
  const nchw = parseProblem(`conv2d n${N} c${C} h${H} w${W} k${K} r${R} s${S} stride2 dilation1 pad1`);
  const nhwc = parseProblem(`conv2d n${N} c${C} h${H} w${W} k${K} r${R} s${S} stride2 pad1 nhwc`);
  const [Hp, Wp] = [H + 2, W + 2];
  const x = randomArray(N * C * Hp * Wp, 3), w = randomArray(K * C * R * S, 4);
  // the same values in the other layouts: I[n, c, h, w] -> I[n, h, w, c], W[k, c, r, s] -> W[r, s, c, k]
  const xl = new Float32Array(x.length), wl = new Float32Array(w.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let h = 0; h < Hp; h++) for (let q = 0; q < Wp; q++) {
    xl[((n * Hp + h) * Wp + q) * C + c] = x[((n * C + c) * Hp + h) * Wp + q]!;
  }
  for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
    wl[((r * S + s) * C + c) * K + k] = w[((k * C + c) * R + r) * S + s]!;
  }
  const a = interpret(Schedule.initial(nchw), [x, w]);
  const b = interpret(Schedule.initial(nhwc), [xl, wl]);
  const [, , P, Q] = nchw.tensors[0]!.shape as [number, number, number, number];
  let checked = 0;
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) for (let h = 0; h < P; h++) for (let q = 0; q < Q; q++) {
    assert.ok(Math.abs(a[((n * K + k) * P + h) * Q + q]! - b[((n * P + h) * Q + q) * K + k]!) < 1e-12);
    checked++;
  }
  assert.is(checked, N * K * P * Q);
});

test('nhwc errors are one line', () => {
  const bad: [string, RegExp][] = [
    ['maxpool2d n1 c8 h8 w8 r2 s2 stride2 nhwc', /the nhwc layout is for conv2d/],
    ['conv2d n1 c8 h8 w8 k8 r3 s3 stride1 groups2 nhwc', /dense convolutions \(groups1\), got groups2/],
    ['conv2d n1 c8 h8 w8 k8 r3 s3 stride1 pad1 outpad1 nhwc', /without a border \(outpad\)/],
    ['conv2d n1 c16 h8 w8 k16 r3 s3 stride1 layout16 nhwc', /layout given twice/],
  ];
  for (const [spec, re] of bad) {
    try {
      parseProblem(spec);
      assert.unreachable(spec);
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.match((e as Error).message, re, spec);
    }
  }
});

test.run();
