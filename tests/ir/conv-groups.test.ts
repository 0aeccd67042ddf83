/**
 * Grouped, depthwise and dilated convolutions (issue 16): the spec syntax and its errors, the
 * problem's variables and tensors, and the interpreter against a direct convolution written here
 * from the textbook definition (not from the problem's accesses).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import { interpret } from '../../ir/interpret.ts';
import { elementCount, isReduction, type Problem } from '../../ir/problem.ts';
import { randomProblem, randomSchedule, Rng } from '../../ir/random.ts';
import { Schedule } from '../../ir/schedule.ts';
import { convAttributes, parseProblem } from '../../ir/spec.ts';

interface ConvCase {
  n: number; c: number; k: number; groups: number; stride: number; dilation: number;
  /** input sizes and window sizes per spatial dimension (1 or 2 of them) */
  input: number[]; window: number[];
}

/**
 * O[b, oc, o...] = sum over ic in oc's group and the window of I[b, ic, o*stride + w*dilation] * W[oc, ic - group start, w],
 * loops written out for 1 or 2 spatial dimensions.
 */
function directConv(cs: ConvCase, input: Float64Array, weights: Float64Array): Float64Array {
  const { n, c, k, groups, stride, dilation } = cs;
  const [H, W] = cs.input.length === 1 ? [1, cs.input[0]!] : [cs.input[0]!, cs.input[1]!];
  const [R, S] = cs.window.length === 1 ? [1, cs.window[0]!] : [cs.window[0]!, cs.window[1]!];
  const OH = Math.floor((H - dilation * (R - 1) - 1) / stride) + 1;
  const OW = Math.floor((W - dilation * (S - 1) - 1) / stride) + 1;
  const cg = c / groups, kg = k / groups;
  const out = new Float64Array(n * k * OH * OW);
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < k; oc++) {
      const group = Math.floor(oc / kg);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let acc = 0;
          for (let j = 0; j < cg; j++) {
            const ic = group * cg + j;
            for (let r = 0; r < R; r++) {
              for (let s = 0; s < S; s++) {
                const ih = oh * stride + r * dilation, iw = ow * stride + s * dilation;
                acc += input[((b * c + ic) * H + ih) * W + iw]! * weights[((oc * cg + j) * R + r) * S + s]!;
              }
            }
          }
          out[((b * k + oc) * OH + oh) * OW + ow] = acc;
        }
      }
    }
  }
  return out;
}

function specOf(cs: ConvCase): string {
  const dims = cs.input.length === 1 ? ['w'] : ['h', 'w'];
  const win = cs.window.length === 1 ? ['s'] : ['r', 's'];
  const op = cs.input.length === 1 ? 'conv1d' : 'conv2d';
  return [
    op, `n${cs.n}`, `c${cs.c}`, ...dims.map((d, i) => `${d}${cs.input[i]}`), `k${cs.k}`,
    ...win.map((w, i) => `${w}${cs.window[i]}`), `stride${cs.stride}`, `groups${cs.groups}`, `dilation${cs.dilation}`,
  ].join(' ');
}

function randomArray(rng: Rng, length: number): Float64Array {
  return Float64Array.from({ length }, () => rng.next() * 2 - 1);
}

function maxDifference(a: Float64Array, b: Float64Array): number {
  assert.is(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
}

const CASES: Record<string, ConvCase> = {
  'grouped 2d': { n: 2, c: 6, k: 9, groups: 3, stride: 1, dilation: 1, input: [7, 8], window: [3, 2] },
  'depthwise 2d': { n: 1, c: 5, k: 5, groups: 5, stride: 1, dilation: 1, input: [9, 7], window: [3, 3] },
  'depthwise 2d, stride 2': { n: 1, c: 4, k: 4, groups: 4, stride: 2, dilation: 1, input: [11, 10], window: [3, 3] },
  'depthwise multiplier 2': { n: 1, c: 3, k: 6, groups: 3, stride: 1, dilation: 1, input: [6, 6], window: [2, 3] },
  'dilated 2d': { n: 1, c: 3, k: 4, groups: 1, stride: 1, dilation: 2, input: [10, 9], window: [3, 3] },
  'dilated and strided 2d': { n: 2, c: 2, k: 3, groups: 1, stride: 2, dilation: 3, input: [12, 13], window: [2, 3] },
  'grouped, dilated, strided 2d': { n: 1, c: 8, k: 4, groups: 2, stride: 3, dilation: 2, input: [13, 14], window: [3, 2] },
  'grouped 1d': { n: 2, c: 4, k: 6, groups: 2, stride: 1, dilation: 1, input: [15], window: [4] },
  'depthwise dilated 1d': { n: 1, c: 6, k: 6, groups: 6, stride: 2, dilation: 2, input: [17], window: [3] },
  'strided 1d': { n: 1, c: 3, k: 2, groups: 1, stride: 3, dilation: 1, input: [16], window: [2] },
};

for (const [name, cs] of Object.entries(CASES)) {
  test(`the interpreter computes a direct convolution: ${name}`, () => {
    const p = parseProblem(specOf(cs));
    const rng = new Rng(cs.c * 131 + cs.k);
    const input = randomArray(rng, elementCount(p.tensors[1]!));
    const weights = randomArray(rng, elementCount(p.tensors[2]!));
    const expected = directConv(cs, input, weights);
    assert.ok(expected.some((x) => x !== 0));
    // the default order and a few reordered and split schedules (tails included) all agree
    const schedules = [Schedule.initial(p), ...[1, 2, 3].map((seed) => randomSchedule(p, new Rng(seed), 16))];
    for (const s of schedules) {
      assert.ok(maxDifference(interpret(s, [input, weights]), expected) < 1e-12, s.text());
    }
  });
}

test('the comparison is sensitive: one changed weight is caught, and it moves only its group', () => {
  const cs = CASES['grouped, dilated, strided 2d']!; // c8 k4 groups2: output channels 0-1 and 2-3
  const rng = new Rng(7);
  const p = parseProblem(specOf(cs));
  const input = randomArray(rng, elementCount(p.tensors[1]!));
  const weights = randomArray(rng, elementCount(p.tensors[2]!));
  const changed = weights.slice();
  changed[changed.length - 1]! += 1e-3; // a weight of output channel 3, in group 1
  const got = interpret(Schedule.initial(p), [input, changed]);
  const expected = directConv(cs, input, weights);
  assert.ok(maxDifference(got, expected) > 1e-6);
  const half = expected.length / 2; // n1: channels 0-1 are the first half of O
  assert.ok(maxDifference(got.subarray(0, half), expected.subarray(0, half)) < 1e-12);
});

test('a grouped conv: g after n, per-group k and c, weights [K, C/G, R, S]', () => {
  const p = parseProblem('conv2d n1 c8 h10 w10 k12 r3 s3 stride1 groups4');
  assert.equal(p.vars.map((v) => `${v.name}${v.extent}`), ['n1', 'g4', 'k3', 'h8', 'w8', 'c2', 'r3', 's3']);
  assert.equal(p.tensors.map((t) => [t.name, [...t.shape]]), [['O', [1, 12, 8, 8]], ['I', [1, 8, 10, 10]], ['W', [12, 2, 3, 3]]]);
  // g indexes the output (it is not a reduction); c, r, s are
  assert.equal(p.vars.map((_, v) => isReduction(p, v)), [false, false, false, false, false, true, true, true]);
  assert.equal(p.output.index[1]!.terms, [{ var: 1, coef: 3 }, { var: 2, coef: 1 }]);
  assert.equal(p.inputs[0]!.index[1]!.terms, [{ var: 1, coef: 2 }, { var: 5, coef: 1 }]);
  assert.equal(p.inputs[1]!.index[0]!.terms, [{ var: 1, coef: 3 }, { var: 2, coef: 1 }]);
});

test('dilation: output size floor((in - D*(R-1) - 1)/stride) + 1, input index h*stride + r*D', () => {
  const p = parseProblem('conv2d n1 c2 h12 w11 k2 r3 s2 stride2 dilation3');
  const ext = Object.fromEntries(p.vars.map((v) => [v.name, v.extent]));
  assert.is(ext.h, Math.floor((12 - 3 * 2 - 1) / 2) + 1); // 3
  assert.is(ext.w, Math.floor((11 - 3 * 1 - 1) / 2) + 1); // 4
  assert.equal(p.inputs[0]!.index[2]!.terms, [{ var: 2, coef: 2 }, { var: 5, coef: 3 }]);
  assert.equal(convAttributes(p), { stride: [2, 2], dilation: [3, 3], groups: 1, pads: [0, 0, 0, 0] });
  // the largest window exactly fits: 1 + 3*(3-1) = 7 of 7 rows
  assert.is(parseProblem('conv2d n1 c1 h7 w7 k1 r3 s3 stride1 dilation3').vars.find((v) => v.name === 'h')!.extent, 1);
});

test('the canonical spec prints groups and dilation only when not 1', () => {
  const depthwise = parseProblem('conv2d n1 c32 h114 w114 k32 r3 s3 stride1 groups32');
  assert.is(depthwise.spec, 'conv2d n1 c32 h114 w114 k32 r3 s3 stride1 groups32');
  assert.is(parseProblem('conv2d n1 c64 h60 w60 k64 r3 s3 dilation2').spec, 'conv2d n1 c64 h60 w60 k64 r3 s3 stride1 dilation2');
  assert.is(parseProblem('conv2d n1 c4 h9 w9 k4 r3 s3 groups1 dilation1 stride2').spec, 'conv2d n1 c4 h9 w9 k4 r3 s3 stride2');
  assert.is(parseProblem('conv1d n1 c4 w20 k2 s3 dilation2 groups2').spec, 'conv1d n1 c4 w20 k2 s3 stride1 groups2 dilation2');
  assert.is(parseProblem({ op: 'conv3d', n: 1, c: 4, d: 5, h: 5, w: 5, k: 4, t: 2, r: 2, s: 2, groups: 4 }).spec,
    'conv3d n1 c4 d5 h5 w5 k4 t2 r2 s2 stride1 groups4');
  // the canonical spec parses back to the same problem
  for (const spec of ['conv2d n2 c6 h9 w9 k6 r3 s3 stride2 groups3 dilation2', 'conv1d n1 c4 w20 k2 s3 stride1 groups2 dilation2']) {
    const p = parseProblem(spec);
    assert.equal(parseProblem(p.spec), p);
  }
  assert.equal(convAttributes(depthwise), { stride: [1, 1], dilation: [1, 1], groups: 32, pads: [0, 0, 0, 0] });
});

test('ungrouped, undilated convs are the problems (and schedule hashes) they always were', () => {
  // frozen from the code before groups and dilation existed
  const before = '{"op":"conv1d","spec":"conv1d n2 c3 w17 k5 s3 stride2","vars":[{"name":"n","extent":2},{"name":"k","extent":5},{"name":"w","extent":8},{"name":"c","extent":3},{"name":"s","extent":3}],"tensors":[{"name":"O","shape":[2,5,8]},{"name":"I","shape":[2,3,17]},{"name":"W","shape":[5,3,3]}],"output":{"tensor":0,"index":[{"terms":[{"var":0,"coef":1}]},{"terms":[{"var":1,"coef":1}]},{"terms":[{"var":2,"coef":1}]}]},"inputs":[{"tensor":1,"index":[{"terms":[{"var":0,"coef":1}]},{"terms":[{"var":3,"coef":1}]},{"terms":[{"var":2,"coef":2},{"var":4,"coef":1}]}]},{"tensor":2,"index":[{"terms":[{"var":1,"coef":1}]},{"terms":[{"var":3,"coef":1}]},{"terms":[{"var":4,"coef":1}]}]}],"combine":"fma"}';
  assert.is(JSON.stringify(parseProblem('conv1d n2 c3 w17 k5 s3 stride2')), before);
  assert.is(JSON.stringify(parseProblem('conv1d n2 c3 w17 k5 s3 stride2 groups1 dilation1')), before);
  const hashes: [string, string][] = [
    ['conv1d n2 c3 w17 k5 s3 stride2', '0420a8906111be8e'],
    ['conv2d n1 c64 h58 w58 k64 r3 s3 stride1', 'e8dd079d596fc486'],
    ['conv3d n1 c2 d6 h7 w8 k3 t2 r3 s2 stride2', '78ba07b03027e754'],
  ];
  for (const [spec, hash] of hashes) {
    const p = parseProblem(spec);
    assert.is(p.spec, spec);
    assert.is(Schedule.initial(p).hash(), hash);
  }
});

const BAD: [string | object, string][] = [
  ['conv2d n1 c6 h9 w9 k8 r3 s3 groups4', 'conv2d: input channels c=6 are not divisible by groups=4'],
  ['conv2d n1 c8 h9 w9 k6 r3 s3 groups4', 'conv2d: output channels k=6 are not divisible by groups=4'],
  ['conv2d n1 c8 h9 w9 k8 r3 s3 groups0', 'conv2d: size groups must be a positive integer, got 0'],
  ['conv1d n1 c8 w9 k8 s3 dilation0', 'conv1d: size dilation must be a positive integer, got 0'],
  [{ op: 'conv2d', n: 1, c: 2, h: 9, w: 9, k: 2, r: 3, s: 3, dilation: -1 }, 'conv2d: size dilation must be a positive integer, got -1'],
  ['conv2d n1 c2 h9 w4 k2 r3 s3 dilation2', 'conv2d: kernel size s=3 at dilation 2 spans 5, larger than input size w=4'],
  ['conv2d n1 c2 h2 w9 k2 r3 s3 dilation2', 'conv2d: kernel size r=3 at dilation 2 spans 5, larger than input size h=2'],
  ['conv2d n1 c2 h9 w9 k2 r3 s3 groups2 groups2', 'conv2d: size groups given twice'],
  ['conv2d n1 c2 h9 w9 k2 r3 s3 group2', "conv2d: unknown size 'group' (expected n c h w k r s stride groups dilation pad outpad, e.g. \"conv2d n1 c64 h56 w56 k64 r3 s3 stride1\")"],
];

for (const [input, message] of BAD) {
  test(`bad conv spec ${JSON.stringify(input)}`, () => {
    try {
      parseProblem(input as string);
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.is((e as Error).message, message);
    }
  });
}

test('convAttributes refuses other ops with one line', () => {
  assert.throws(() => convAttributes(parseProblem('matmul 4x4x4')), (e: unknown) =>
    e instanceof LoopTuneError && e.message === 'matmul 4x4x4 is not a convolution');
});

test('random conv problems draw groups > 1 and dilation 2, and they interpret like a direct conv', () => {
  const rng = new Rng(16);
  const seen = { grouped: 0, depthwise: 0, dilated: 0, plain: 0 };
  for (let i = 0; i < 300; i++) {
    const op = rng.pick(['conv1d', 'conv2d', 'conv3d'] as const);
    const p: Problem = randomProblem(rng, op);
    const a = convAttributes(p);
    if (a.groups > 1) seen.grouped++;
    if (a.groups > 1 && a.groups === p.tensors[1]!.shape[1]) seen.depthwise++;
    if (a.dilation[0] === 2) seen.dilated++;
    if (a.groups === 1 && a.dilation[0] === 1) seen.plain++;
    if (op === 'conv3d') continue;
    const cs: ConvCase = {
      n: p.tensors[1]!.shape[0]!, c: p.tensors[1]!.shape[1]!, k: p.tensors[0]!.shape[1]!, groups: a.groups,
      stride: a.stride[0]!, dilation: a.dilation[0]!, input: p.tensors[1]!.shape.slice(2), window: p.tensors[2]!.shape.slice(2),
    };
    const input = randomArray(rng, elementCount(p.tensors[1]!));
    const weights = randomArray(rng, elementCount(p.tensors[2]!));
    assert.ok(maxDifference(interpret(randomSchedule(p, rng, 8), [input, weights]), directConv(cs, input, weights)) < 1e-12, p.spec);
  }
  for (const [kind, count] of Object.entries(seen)) assert.ok(count >= 20, `${kind}: ${count} of 300`);
});

test.run();
