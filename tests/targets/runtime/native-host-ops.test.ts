/**
 * The native softmax and layer-norm row kernels (targets/runtime/native-host-ops.ts) against the
 * JS host ops they replace (host-ops.ts with `{ native: false }`) and against float64 on the
 * same fp32 inputs, on every ISA this host runs: random rows of many lengths (tails of every
 * kind), extreme values, -Infinity masks, NaN and Infinity, in place; then prepareHostOp's choice
 * of kernel, the fallbacks and the checks.
 *
 * Tolerances (fp32 throughout; the JS kernels compute in float64 and round once per store):
 *   softmax:   each output within SOFTMAX_RELATIVE of its float64 value, plus the relative error
 *              that rounding x - max to fp32 brings (half an ulp of |x - max|: ONNX Runtime's
 *              fp32 softmax has it too), or SOFTMAX_ABSOLUTE where the value is subnormal;
 *              and within 1e-6 of the JS result;
 *   layernorm: within LAYERNORM_TOLERANCE of max(1, the row's largest |output|), the model
 *              tests' fp32 node tolerance being 1e-5 (tests/agent/compiled-model.test.ts).
 * ROW_KERNELS_REPORT=1 prints the worst errors measured.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../../ir/errors.ts';
import { randomArray } from '../../../ir/interpret.ts';
import type { HostOp } from '../../../ir/model/graph.ts';
import { Rng } from '../../../ir/random.ts';
import { prepareHostOp } from '../../../targets/runtime/host-ops.ts';
import { hostRuns, type HostIsa } from '../../../targets/runtime/host.ts';
import { nativeLayerNormRows, nativeRowIsa, nativeSoftmaxRows } from '../../../targets/runtime/native-host-ops.ts';
import { ROW_ISAS, type RowIsa } from '../../../targets/x86/row-vector.ts';

const SOFTMAX_RELATIVE = 3e-7;
/** below the least normal float: AVX2 flushes e^(x - max) < 2^-126 to 0 (row-exp.ts) */
const SOFTMAX_ABSOLUTE = 2 ** -126;
const LAYERNORM_TOLERANCE = 2e-6;
const LENGTHS = [1, 7, 15, 16, 17, 64, 128, 768, 1000];

const runnable = ROW_ISAS.filter((isa) => process.arch === 'x64' && hostRuns(isa));
const report = (line: string): void => {
  if (process.env.ROW_KERNELS_REPORT) console.log(line);
};

function softmax64(x: Float32Array, rows: number, length: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = 0; i < length; i++) max = Math.max(max, x[r * length + i]!);
    let sum = 0;
    for (let i = 0; i < length; i++) sum += out[r * length + i] = Math.exp(x[r * length + i]! - max);
    for (let i = 0; i < length; i++) out[r * length + i] = out[r * length + i]! / sum;
  }
  return out;
}

function layerNorm64(x: Float32Array, g: Float32Array, b: Float32Array, rows: number, length: number, epsilon: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let i = 0; i < length; i++) sum += x[r * length + i]!;
    const mean = sum / length;
    let sq = 0;
    for (let i = 0; i < length; i++) sq += (x[r * length + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(sq / length + epsilon);
    for (let i = 0; i < length; i++) out[r * length + i] = (x[r * length + i]! - mean) * inv * g[i]! + b[i]!;
  }
  return out;
}

function jsSoftmax(x: Float32Array, rows: number, length: number): Float32Array {
  const y = new Float32Array(x.length);
  prepareHostOp({ kind: 'softmax', axis: 1 }, [[rows, length]], [rows, length], { native: false })([x], y);
  return y;
}

function jsLayerNorm(x: Float32Array, g: Float32Array, b: Float32Array, rows: number, length: number, epsilon: number): Float32Array {
  const y = new Float32Array(x.length);
  prepareHostOp({ kind: 'layernorm', axis: 1, epsilon }, [[rows, length], [length], [length]], [rows, length], { native: false })([x, g, b], y);
  return y;
}

function nativeSoftmax(isa: RowIsa, x: Float32Array, rows: number, length: number, into: Float32Array = new Float32Array(x.length).fill(NaN)): Float32Array {
  const kernel = nativeSoftmaxRows(rows, length, isa);
  if (!kernel) throw new Error(`no native ${isa} softmax on this host`);
  kernel([x], into);
  return into;
}

function nativeLayerNorm(isa: RowIsa, x: Float32Array, g: Float32Array, b: Float32Array, rows: number, length: number, epsilon: number, into: Float32Array = new Float32Array(x.length).fill(NaN)): Float32Array {
  const kernel = nativeLayerNormRows(rows, length, epsilon, isa);
  if (!kernel) throw new Error(`no native ${isa} layer norm on this host`);
  kernel([x, g, b], into);
  return into;
}

/**
 * Asserts softmax `got` against float64 and the JS kernel (see the header); returns the worst
 * relative error beside the worst absolute one.
 */
function checkSoftmax(what: string, got: Float32Array, x: Float32Array, rows: number, length: number): { relative: number; absolute: number } {
  const want = softmax64(x, rows, length);
  const js = jsSoftmax(x, rows, length);
  let relative = 0, absolute = 0;
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = r * length; i < (r + 1) * length; i++) max = Math.max(max, x[i]!);
    for (let i = r * length; i < (r + 1) * length; i++) {
      const w = want[i]!, v = got[i]!;
      if (Number.isNaN(w) || Number.isNaN(js[i]!)) {
        if (!Number.isNaN(v)) assert.unreachable(`${what}: element ${i} is ${v}, the JS kernel and float64 give NaN`);
        continue;
      }
      const err = Math.abs(v - w);
      // x - max is rounded to fp32 before e^: up to half an ulp of |x - max|, the same relative error in e^(x - max)
      const allowed = w < SOFTMAX_ABSOLUTE ? SOFTMAX_ABSOLUTE : w * (SOFTMAX_RELATIVE + Math.abs(x[i]! - max) * 2 ** -24);
      if (!(err <= allowed)) assert.unreachable(`${what}: element ${i} (row ${r}) is ${v}, float64 ${w}, JS ${js[i]}`);
      if (w >= SOFTMAX_ABSOLUTE) relative = Math.max(relative, err / w);
      absolute = Math.max(absolute, err);
      if (!(Math.abs(v - js[i]!) <= 1e-6)) assert.unreachable(`${what}: element ${i} is ${v}, the JS kernel ${js[i]}`);
    }
  }
  return { relative, absolute };
}

/** Worst error of layer norm `got` against float64, in units of max(1, the row's largest |output|); asserts the tolerance. */
function checkLayerNorm(what: string, got: Float32Array, x: Float32Array, g: Float32Array, b: Float32Array, rows: number, length: number, epsilon: number): number {
  const want = layerNorm64(x, g, b, rows, length, epsilon);
  const js = jsLayerNorm(x, g, b, rows, length, epsilon);
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    let scale = 1;
    for (let i = 0; i < length; i++) scale = Math.max(scale, Math.abs(want[r * length + i]!));
    for (let i = r * length; i < (r + 1) * length; i++) {
      const err = Math.abs(got[i]! - want[i]!) / scale;
      if (!(err <= LAYERNORM_TOLERANCE)) assert.unreachable(`${what}: element ${i} (row ${r}) is ${got[i]}, float64 ${want[i]}, JS ${js[i]} (scale ${scale})`);
      if (!(Math.abs(got[i]! - js[i]!) / scale <= LAYERNORM_TOLERANCE)) assert.unreachable(`${what}: element ${i} is ${got[i]}, the JS kernel ${js[i]}`);
      worst = Math.max(worst, err);
    }
  }
  return worst;
}

const scaled = (x: Float32Array, k: number, offset = 0): Float32Array => x.map((v) => v * k + offset);

test('this x86-64 host runs at least one ISA of the row kernels, and nativeRowIsa picks the best', () => {
  if (process.arch !== 'x64') return; // non-x86 hosts: the fallback tests below cover them
  assert.ok(runnable.length > 0, 'an x86-64 host without AVX2+FMA');
  assert.is(nativeRowIsa(undefined, {}), runnable[0]);
});

for (const isa of runnable) {
  test(`${isa} softmax of random rows of ${LENGTHS.join(', ')} matches float64 and the JS kernel`, () => {
    const worst = new Map<number, { relative: number; absolute: number }>();
    for (const length of LENGTHS) {
      const rows = length < 64 ? 9 : 3;
      for (const [k, seed] of [[1, 1], [8, 2], [40, 3]] as const) {
        const x = scaled(randomArray(rows * length, seed + length), k);
        const e = checkSoftmax(`${isa} softmax ${rows}x${length} (x${k})`, nativeSoftmax(isa, x, rows, length), x, rows, length);
        const w = worst.get(k) ?? { relative: 0, absolute: 0 };
        worst.set(k, { relative: Math.max(w.relative, e.relative), absolute: Math.max(w.absolute, e.absolute) });
      }
    }
    for (const [k, w] of worst) report(`${isa} softmax, inputs in [-${k}, ${k}]: worst relative error ${w.relative.toExponential(2)}, absolute ${w.absolute.toExponential(2)} against float64`);
  });

  test(`${isa} softmax: extreme values, -Infinity masks, NaN and Infinity behave as in the JS kernel`, () => {
    for (const length of [5, 16, 33, 128]) {
      const rng = new Rng(length);
      const rows: number[][] = [];
      // causal masks: row r keeps r + 1 values
      for (let r = 0; r < Math.min(length, 6); r++) rows.push(Array.from({ length }, (_, i) => (i <= r ? rng.next() * 10 - 5 : -Infinity)));
      rows.push(Array.from({ length }, (_, i) => (i === length - 1 ? 3 : -Infinity))); // one value left: [0, ..., 1]
      rows.push(Array.from({ length }, () => (rng.next() - 0.5) * 2e4)); // most e^(x - max) are 0
      rows.push(Array.from({ length }, (_, i) => (i % 2 ? 3e38 : -3e38))); // x - max overflows to -Infinity
      rows.push(Array.from({ length }, (_, i) => -1e30 + i)); // very negative, all equal in fp32
      rows.push(Array.from({ length }, (_, i) => 80 - i)); // e^(x - max) down into subnormals and 0
      rows.push(Array.from({ length }, () => -Infinity)); // NaN everywhere, as -inf - -inf
      rows.push(Array.from({ length }, (_, i) => (i === 1 % length ? NaN : i))); // NaN everywhere
      rows.push(Array.from({ length }, (_, i) => (i === 2 % length ? Infinity : i))); // NaN everywhere, as inf - inf
      const x = new Float32Array(rows.flat());
      checkSoftmax(`${isa} softmax extremes x${length}`, nativeSoftmax(isa, x, rows.length, length), x, rows.length, length);
      const y = nativeSoftmax(isa, x, rows.length, length);
      const one = (rows.findIndex((r) => r[length - 1] === 3 && r[0] === -Infinity) + 1) * length - 1;
      assert.is(y[one], 1, 'the one value left of a masked row');
      if (length > 1) assert.is(y[one - 1], 0, 'a masked value');
    }
  });

  test(`${isa} layer norm of random rows of ${LENGTHS.join(', ')} matches float64 and the JS kernel`, () => {
    let worst = 0;
    for (const length of LENGTHS) {
      const rows = length < 64 ? 9 : 3;
      const g = scaled(randomArray(length, 5), 1.5, 1), b = randomArray(length, 6);
      for (const [k, offset, seed] of [[1, 0, 1], [5, 2, 2], [1, 1e4, 3], [1e-3, 0, 4], [300, -50, 5]] as const) {
        const x = scaled(randomArray(rows * length, seed + length), k, offset);
        for (const epsilon of [1e-5, 1e-12]) {
          const got = nativeLayerNorm(isa, x, g, b, rows, length, epsilon);
          worst = Math.max(worst, checkLayerNorm(`${isa} layernorm ${rows}x${length} (x${k} + ${offset}, eps ${epsilon})`, got, x, g, b, rows, length, epsilon));
        }
      }
    }
    report(`${isa} layernorm: worst error ${worst.toExponential(3)} of max(1, |output|) against float64 on random rows`);
  });

  test(`${isa} layer norm: constant rows give beta; the BERT shape (128 rows of 768)`, () => {
    for (const length of [1, 9, 16, 768]) {
      const x = new Float32Array(2 * length).fill(0.1).fill(-7.3, length);
      const g = scaled(randomArray(length, 1), 2), b = randomArray(length, 2);
      const got = nativeLayerNorm(isa, x, g, b, 2, length, 1e-5);
      got.forEach((v, i) => assert.ok(Math.abs(v - b[i % length]!) <= 1e-6, `element ${i}: ${v}, beta ${b[i % length]}`));
    }
    const x = scaled(randomArray(128 * 768, 9), 3, 0.5), g = randomArray(768, 10), b = randomArray(768, 11);
    checkLayerNorm(`${isa} layernorm 128x768`, nativeLayerNorm(isa, x, g, b, 128, 768, 1e-12), x, g, b, 128, 768, 1e-12);
  });

  test(`${isa} row kernels work in place and touch nothing past the rows`, () => {
    for (const length of [7, 16, 100]) {
      const rows = 3, n = rows * length;
      const x = scaled(randomArray(n + 16, length), 6);
      const guard = x.slice(n);
      const want = nativeSoftmax(isa, x.subarray(0, n), rows, length);
      const view = x.subarray(0, n);
      nativeSoftmax(isa, view, rows, length, view);
      assert.equal(Array.from(view), Array.from(want), 'softmax in place');
      assert.equal(Array.from(x.subarray(n)), Array.from(guard), 'softmax past the rows');
      const g = randomArray(length, 1), b = randomArray(length, 2);
      const lnWant = nativeLayerNorm(isa, view, g, b, rows, length, 1e-5);
      nativeLayerNorm(isa, view, g, b, rows, length, 1e-5, view);
      assert.equal(Array.from(view), Array.from(lnWant), 'layer norm in place');
      assert.equal(Array.from(x.subarray(n)), Array.from(guard), 'layer norm past the rows');
    }
  });
}

test('prepareHostOp runs softmax over the last axis and layer norm natively, other softmax axes in JS', () => {
  const isa = nativeRowIsa(undefined, {});
  const shape = [2, 3, 40];
  const x = scaled(randomArray(240, 3), 8);
  const run = (op: HostOp, inputs: Float32Array[], shapes: number[][], native: boolean): Float32Array => {
    const y = new Float32Array(240);
    prepareHostOp(op, shapes, shape, { native })(inputs, y);
    return y;
  };
  const last: HostOp = { kind: 'softmax', axis: 2 };
  const viaDefault = new Float32Array(240);
  prepareHostOp(last, [shape], shape)([x], viaDefault);
  const expected = isa ? nativeSoftmax(isa, x, 6, 40) : run(last, [x], [shape], false);
  assert.equal(Array.from(viaDefault), Array.from(expected), 'softmax over the last axis');
  // a middle axis is strided: always the JS kernel
  const middle: HostOp = { kind: 'softmax', axis: 1 };
  assert.equal(Array.from(run(middle, [x], [shape], true)), Array.from(run(middle, [x], [shape], false)));
  // layer norm over the trailing two axes is rows of 120
  const g = randomArray(120, 4), b = randomArray(120, 5);
  const ln: HostOp = { kind: 'layernorm', axis: 1, epsilon: 1e-5 };
  const lnDefault = run(ln, [x, g, b], [shape, [3, 40], [3, 40]], true);
  const lnExpected = isa ? nativeLayerNorm(isa, x, g, b, 2, 120, 1e-5) : run(ln, [x, g, b], [shape, [3, 40], [3, 40]], false);
  assert.equal(Array.from(lnDefault), Array.from(lnExpected), 'layer norm');
});

test('no native kernels off x86-64, without AVX2+FMA, or with LOOPTUNE_NATIVE_HOST_OPS=0', () => {
  const host: HostIsa = { arch: 'x64', avx2: true, avx512: true, fma: true, model: 'test CPU', signature: 'test CPU' };
  assert.is(nativeRowIsa(host, {}), 'avx512');
  assert.is(nativeRowIsa({ ...host, avx512: false }, {}), 'avx2');
  assert.is(nativeRowIsa({ ...host, avx512: false, fma: false }, {}), undefined);
  assert.is(nativeRowIsa({ ...host, arch: 'arm64', avx2: false, avx512: false, fma: false }, {}), undefined);
  assert.is(nativeRowIsa(host, { LOOPTUNE_NATIVE_HOST_OPS: '0' }), undefined);
  assert.is(nativeSoftmaxRows(4, 16, null), undefined);
  assert.is(nativeLayerNormRows(4, 16, 1e-5, null), undefined);
  // nothing to run: empty tensors stay with the JS kernels
  assert.is(nativeSoftmaxRows(0, 16, 'avx2'), undefined);
  assert.is(nativeLayerNormRows(4, 0, 1e-5, 'avx2'), undefined);
});

for (const isa of runnable.slice(0, 1)) {
  test('a prepared native kernel refuses arrays shorter than its shapes, in one line', () => {
    const oneLine = (pattern: RegExp) => (e: unknown) => e instanceof LoopTuneError && !e.message.includes('\n') && pattern.test(e.message);
    const softmax = nativeSoftmaxRows(4, 16, isa)!;
    assert.throws(() => softmax([new Float32Array(63)], new Float32Array(64)), oneLine(/host op softmax: a tensor of 63 elements where the prepared shapes need 64/));
    assert.throws(() => softmax([new Float32Array(64)], new Float32Array(10)), oneLine(/of 10 elements/));
    const ln = nativeLayerNormRows(4, 16, 1e-5, isa)!;
    assert.throws(() => ln([new Float32Array(64), new Float32Array(15), new Float32Array(16)], new Float32Array(64)), oneLine(/host op layernorm: a tensor of 15 elements where the prepared shapes need 16/));
  });
}

test.run();
