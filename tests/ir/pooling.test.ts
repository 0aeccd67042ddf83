/**
 * Max pooling (issue 16): the spec syntax, its canonical form and its one-line errors, the
 * problem's variables and tensors, and the interpreter against a direct max pool written here from
 * the definition (not from the problem's accesses), under the default and random schedules. Also
 * the random problems the fuzz draws, the pooling dataset, and an in-process kernel that must start
 * from -Infinity (a row of negative numbers pools to its true maximum).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileKernel } from '../../agent/compile-kernel.ts';
import { split, splitEntries } from '../../env/datasets.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { interpret } from '../../ir/interpret.ts';
import { elementCount, flops, isReduction, iterationPoints } from '../../ir/problem.ts';
import { randomProblem, randomSchedule, Rng } from '../../ir/random.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem, poolAttributes } from '../../ir/spec.ts';
import { RUN_TARGET } from '../host.ts';

interface PoolCase {
  n: number; c: number; stride: number; dilation: number;
  /** input sizes and window sizes per spatial dimension (1 to 3 of them) */
  input: number[]; window: number[];
}

/** The case's sizes padded to 3 spatial dimensions with 1s in front (a 1-d pool is a 1x1xW one). */
function padded3(xs: readonly number[]): [number, number, number] {
  const p = [1, 1, 1, ...xs].slice(-3);
  return [p[0]!, p[1]!, p[2]!];
}

/** O[b, ch, o...] = max over the window of I[b, ch, o*stride + w*dilation], starting from -Infinity. */
function directMaxPool(cs: PoolCase, input: Float64Array): Float64Array {
  const { n, c, stride, dilation } = cs;
  const rank = cs.input.length;
  const [D, H, W] = padded3(cs.input);
  const [T, R, S] = padded3(cs.window);
  const out = (size: number, k: number) => Math.floor((size - dilation * (k - 1) - 1) / stride) + 1;
  // padded dimensions (size 1, window 1) have one output whatever the stride
  const OD = rank < 3 ? 1 : out(D, T), OH = rank < 2 ? 1 : out(H, R), OW = out(W, S);
  const result = new Float64Array(n * c * OD * OH * OW);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let od = 0; od < OD; od++) {
        for (let oh = 0; oh < OH; oh++) {
          for (let ow = 0; ow < OW; ow++) {
            let best = -Infinity;
            for (let t = 0; t < T; t++) {
              for (let r = 0; r < R; r++) {
                for (let s = 0; s < S; s++) {
                  const id = od * stride + t * dilation, ih = oh * stride + r * dilation, iw = ow * stride + s * dilation;
                  best = Math.max(best, input[(((b * c + ch) * D + id) * H + ih) * W + iw]!);
                }
              }
            }
            result[(((b * c + ch) * OD + od) * OH + oh) * OW + ow] = best;
          }
        }
      }
    }
  }
  return result;
}

function specOf(cs: PoolCase): string {
  const rank = cs.input.length;
  const dims = ['d', 'h', 'w'].slice(3 - rank);
  const win = ['t', 'r', 's'].slice(3 - rank);
  return [
    `maxpool${rank}d`, `n${cs.n}`, `c${cs.c}`, ...dims.map((d, i) => `${d}${cs.input[i]}`),
    ...win.map((w, i) => `${w}${cs.window[i]}`), `stride${cs.stride}`, `dilation${cs.dilation}`,
  ].join(' ');
}

function randomArray(rng: Rng, length: number): Float64Array {
  return Float64Array.from({ length }, () => rng.next() * 2 - 1);
}

const CASES: Record<string, PoolCase> = {
  'ResNet stem pool shape, small': { n: 1, c: 3, stride: 2, dilation: 1, input: [11, 11], window: [3, 3] },
  '2d stride 1, odd sizes': { n: 2, c: 3, stride: 1, dilation: 1, input: [7, 9], window: [3, 2] },
  '2d stride 2, odd sizes, window not square': { n: 1, c: 5, stride: 2, dilation: 1, input: [9, 13], window: [2, 3] },
  '2d stride 3 (windows skip inputs)': { n: 1, c: 2, stride: 3, dilation: 1, input: [10, 8], window: [2, 2] },
  '2d dilated': { n: 1, c: 2, stride: 1, dilation: 2, input: [9, 10], window: [3, 3] },
  '2d window = input (global max)': { n: 2, c: 3, stride: 1, dilation: 1, input: [5, 7], window: [5, 7] },
  '1d stride 2': { n: 2, c: 3, stride: 2, dilation: 1, input: [15], window: [3] },
  '3d stride 2': { n: 1, c: 2, stride: 2, dilation: 1, input: [5, 7, 6], window: [2, 3, 2] },
};

for (const [name, cs] of Object.entries(CASES)) {
  test(`interpreter = direct max pool: ${name}`, () => {
    const p = parseProblem(specOf(cs));
    const rng = new Rng(11);
    const input = randomArray(rng, elementCount(p.tensors[1]!));
    const want = directMaxPool(cs, input);
    assert.is(elementCount(p.tensors[0]!), want.length, 'output size');
    const fresh = new Float64Array(want.length).fill(-Infinity);
    // max is exact: the interpreter must agree bit for bit, under any schedule (tails included)
    assert.equal(Array.from(interpret(Schedule.initial(p), [input], fresh)), Array.from(want));
    for (let i = 0; i < 3; i++) {
      const s = randomSchedule(p, rng, 14);
      assert.equal(Array.from(interpret(s, [input], fresh)), Array.from(want), s.text());
    }
  });
}

test('the interpreter accumulates from the given output: out = max(out, window)', () => {
  const cs = CASES['2d stride 2, odd sizes, window not square']!;
  const p = parseProblem(specOf(cs));
  const rng = new Rng(5);
  const input = randomArray(rng, elementCount(p.tensors[1]!));
  const initial = randomArray(rng, elementCount(p.tensors[0]!));
  const pooled = directMaxPool(cs, input);
  const got = interpret(Schedule.initial(p), [input], initial);
  assert.equal(Array.from(got), Array.from(pooled, (x, i) => Math.max(x, initial[i]!)));
  // started from zeros, negative windows read 0: why a fresh pool must start from -Infinity
  const fromZero = interpret(Schedule.initial(p), [input.map((x) => -Math.abs(x) - 1)]);
  assert.ok(fromZero.every((x) => x === 0));
});

test('ResNet\'s 3x3/2 pool: the problem\'s variables, tensors, accesses and combine', () => {
  const p = parseProblem('maxpool2d n1 c64 h114 w114 r3 s3 stride2');
  assert.is(p.op, 'maxpool2d');
  assert.is(p.combine, 'max');
  assert.equal(p.vars.map((v) => `${v.name}${v.extent}`), ['n1', 'c64', 'h56', 'w56', 'r3', 's3']);
  assert.equal(p.tensors, [{ name: 'O', shape: [1, 64, 56, 56] }, { name: 'I', shape: [1, 64, 114, 114] }]);
  assert.is(p.inputs.length, 1);
  assert.equal(p.vars.map((_, v) => isReduction(p, v)), [false, false, false, false, true, true]);
  assert.is(flops(p), iterationPoints(p), 'one max per point');
  assert.equal(poolAttributes(p), { window: [3, 3], stride: [2, 2], dilation: [1, 1], pads: [0, 0, 0, 0] });
  // the input's row index is h*2 + r
  assert.equal(p.inputs[0]!.index[2], { terms: [{ var: 2, coef: 2 }, { var: 4, coef: 1 }] });
});

test('canonical spec: round trip, stride always printed, dilation only when not 1; object form', () => {
  const cases: [string, string][] = [
    ['maxpool2d n1 c64 h114 w114 r3 s3 stride2', 'maxpool2d n1 c64 h114 w114 r3 s3 stride2'],
    ['MAXPOOL2D  s2 r2 w9 h8 c3 n2', 'maxpool2d n2 c3 h8 w9 r2 s2 stride1'],
    ['maxpool1d n1 c4 w20 s3 dilation2 stride2', 'maxpool1d n1 c4 w20 s3 stride2 dilation2'],
    ['maxpool2d n1 c4 h9 w9 r3 s3 stride1 dilation1', 'maxpool2d n1 c4 h9 w9 r3 s3 stride1'],
    ['maxpool3d n1 c2 d5 h6 w7 t2 r2 s2 stride2', 'maxpool3d n1 c2 d5 h6 w7 t2 r2 s2 stride2'],
  ];
  for (const [text, canonical] of cases) {
    const p = parseProblem(text);
    assert.is(p.spec, canonical, text);
    assert.is(parseProblem(p.spec).spec, canonical);
  }
  const fromObject = parseProblem({ op: 'maxpool2d', n: 1, c: 64, h: 114, w: 114, r: 3, s: 3, stride: 2 });
  assert.is(fromObject.spec, 'maxpool2d n1 c64 h114 w114 r3 s3 stride2');
  assert.equal(fromObject.tensors, parseProblem(fromObject.spec).tensors);
});

test('bad pool specs fail with one line saying what is wrong', () => {
  const cases: [string | Record<string, unknown>, RegExp][] = [
    ['maxpool2d n1 c3 h2 w5 r3 s2', /^maxpool2d: window size r=3 is larger than input size h=2$/],
    ['maxpool1d n1 c3 w5 s3 dilation3', /^maxpool1d: window size s=3 at dilation 3 spans 7, larger than input size w=5$/],
    ['maxpool2d n1 c3 h5 w5 r0 s2', /^maxpool2d: size r must be a positive integer, got 0$/],
    ['maxpool2d n1 c3 h5 w5 r2 s2 stride0', /^maxpool2d: size stride must be a positive integer, got 0$/],
    ['maxpool2d n1 c3 h5 w5 r2 s-1', /^maxpool2d: size s must be a positive integer, got -1$/],
    ['maxpool2d n1 c3 h5 w5 r3', /^maxpool2d: missing size s \(expected n c h w r s stride, e\.g\. "maxpool2d n1 c64 h114 w114 r3 s3 stride2"\)$/],
    ['maxpool2d n1 c3 h5 w5 r3 s3 groups3', /^maxpool2d: unknown size 'groups' \(expected n c h w r s stride dilation pad outpad, /],
    ['maxpool2d n1 c3 h5 w5 k3 r3 s3', /^maxpool2d: unknown size 'k'/],
    ['maxpool2d n1 c3 h5 w5 r3 s3 r2', /^maxpool2d: size r given twice$/],
    [{ op: 'maxpool2d', n: 1, c: 3, h: 5, w: 5, r: 2, s: 2.5 }, /^maxpool2d: size s must be a positive integer, got 2\.5$/],
  ];
  for (const [spec, message] of cases) {
    try {
      parseProblem(spec as string);
      assert.unreachable(`accepted ${JSON.stringify(spec)}`);
    } catch (e) {
      assert.instance(e, LoopTuneError, String(e));
      assert.match((e as Error).message, message);
      assert.not.ok((e as Error).message.includes('\n'));
    }
  }
  assert.throws(() => poolAttributes(parseProblem('conv2d n1 c3 h5 w5 k2 r2 s2 stride1')), /is not a pooling/);
});

test('the fuzz draws valid max pools of every rank, with strides 1-3, dilation and windows of 1', () => {
  const rng = new Rng(3);
  const seen = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const op = (['maxpool1d', 'maxpool2d', 'maxpool3d'] as const)[i % 3];
    const p = randomProblem(rng, op);
    assert.is(p.op, op);
    assert.is(p.combine, 'max');
    const a = poolAttributes(p);
    seen.add(`stride${a.stride[0]}`);
    if (a.dilation[0] !== 1) seen.add('dilated');
    if (a.window.every((w) => w === 1)) seen.add('1x1 window');
    if (p.tensors[0]!.shape.slice(2).some((x) => x > 1)) seen.add('several outputs');
  }
  assert.equal([...seen].sort(), ['1x1 window', 'dilated', 'several outputs', 'stride1', 'stride2', 'stride3']);
});

test('the pooling dataset: ResNet\'s stem pool gives 56x56 from its pre-padded 114x114 input', () => {
  const entries = splitEntries('pooling');
  const ps = split('pooling');
  const stem = ps[entries.findIndex((e) => e.name === 'resnet.maxpool')]!;
  assert.is(stem.spec, 'maxpool2d n1 c64 h114 w114 r3 s3 stride2');
  assert.equal(stem.tensors[0]!.shape, [1, 64, 56, 56]);
  for (const p of ps) assert.is(p.combine, 'max');
});

test('an in-process kernel starts from -Infinity: negative windows pool to their true maximum', async () => {
  const cs = CASES['ResNet stem pool shape, small']!;
  const p = parseProblem(specOf(cs));
  const rng = new Rng(8);
  const input = Float32Array.from(randomArray(rng, elementCount(p.tensors[1]!)), (x) => -Math.abs(x) - 0.5);
  const k = await compileKernel(p, { target: RUN_TARGET, schedule: Schedule.initial(p).text(), threads: 1 });
  try {
    const output = new Float32Array(elementCount(p.tensors[0]!)).fill(5);
    k.run([input], output);
    assert.equal(Array.from(output), Array.from(directMaxPool(cs, Float64Array.from(input))));
  } finally {
    k.dispose();
  }
});

test.run();
