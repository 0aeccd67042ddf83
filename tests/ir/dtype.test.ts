import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, LoopTuneError, Schedule } from '../../ir/index.ts';
import {
  bf16Bits, bf16FromBits, f16Bits, f16FromBits, roundTo, storageArray, typeTolerance,
} from '../../ir/dtype.ts';
import { checkAgainstOracle, checkSampledAgainstOracle, interpret, randomArray } from '../../ir/interpret.ts';
import { backend } from '../../targets/registry.ts';

test('bf16: round to nearest, ties to even, as cvt.rn.bf16.f32', () => {
  assert.is(bf16Bits(1), 0x3f80);
  assert.is(bf16Bits(0.1), 0x3dcd); // 0x3dcccccd rounds up
  assert.is(roundTo('bf16', 1 + 2 ** -8), 1); // a tie goes to the even 1
  assert.is(roundTo('bf16', 1 + 3 * 2 ** -8), 1 + 2 ** -6); // a tie goes to the even neighbour above
  assert.is(roundTo('bf16', 1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7); // past the tie: up
  assert.is(bf16Bits(-0), 0x8000);
  assert.is(bf16Bits(Infinity), 0x7f80);
  assert.is(bf16Bits(3.4e38), 0x7f80); // overflows to Infinity
  assert.ok(Number.isNaN(bf16FromBits(bf16Bits(NaN))));
});

test('f16: the encodings numpy gives (float32 first, then half, to nearest even)', () => {
  const cases: [number, number][] = [
    [0.1, 0x2e66], [-2, 0xc000], [1 / 3, 0x3555], [65519, 0x7bff], [65520, 0x7c00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [1e-5, 0x00a8], [1234.5678, 0x64d3],
  ];
  for (const [x, bits] of cases) assert.is(f16Bits(x), bits, `f16(${x})`);
  assert.is(f16FromBits(0x7bff), 65504);
  assert.is(f16FromBits(0x0001), 2 ** -24);
  assert.is(roundTo('f16', 1 + 2 ** -11), 1);
});

test('tf32 keeps 10 mantissa bits, to nearest, ties away (cvt.rna.tf32.f32); f32 is fround', () => {
  assert.is(roundTo('tf32', 1 + 2 ** -11), 1 + 2 ** -10); // a tie: away from zero
  assert.is(roundTo('tf32', -(1 + 2 ** -11)), -(1 + 2 ** -10));
  assert.is(roundTo('tf32', 1 + 2 ** -11 - 2 ** -20), 1);
  assert.is(roundTo('tf32', 1 + 3 * 2 ** -11), 1 + 2 ** -9);
  assert.is(roundTo('tf32', 0.851806640625), 0.85205078125);
  assert.is(roundTo('tf32', 1 + 2 ** -10), 1 + 2 ** -10);
  assert.is(roundTo('f32', 0.1), Math.fround(0.1));
  const s = storageArray('bf16', [1, 0.1]);
  assert.ok(s instanceof Uint16Array);
  assert.equal([...s], [0x3f80, 0x3dcd]);
  assert.ok(storageArray('tf32', [0.1]) instanceof Float32Array);
});

test('spec: the element type token, canonical spec and object form', () => {
  const p = parseProblem('matmul 64x32x16 bf16');
  assert.is(p.spec, 'matmul 64x32x16 bf16');
  assert.is(p.dtype, 'bf16');
  assert.is(parseProblem('MATMUL 8X8X8 F16').spec, 'matmul 8x8x8 f16');
  assert.is(parseProblem('matmul m8 n8 k8 tf32').dtype, 'tf32');
  // f32 is the default: dropped from the spec, no dtype property at all (hashes unchanged)
  const f = parseProblem('matmul 64x32x16 f32');
  assert.is(f.spec, 'matmul 64x32x16');
  assert.not.ok('dtype' in f);
  assert.equal(f, parseProblem('matmul 64x32x16'));
  assert.is(parseProblem({ op: 'matmul', m: 8, n: 8, k: 8, dtype: 'f16' }).spec, 'matmul 8x8x8 f16');
  // the type prints after the sizes, before the epilogue, wherever it was written
  assert.is(parseProblem('conv2d n1 c8 h8 w8 k8 r3 s3 +relu bf16').spec, 'conv2d n1 c8 h8 w8 k8 r3 s3 stride1 bf16 +relu');
  assert.is(parseProblem('bmm b2 m4 n4 k4 f16').spec, 'bmm b2 m4 n4 k4 f16');
  assert.is(parseProblem(parseProblem('matmul 8x8x8 bf16 +bias').spec).spec, 'matmul 8x8x8 bf16 +bias');
});

test('spec: bad element types get one line', () => {
  const bad: [string | Record<string, unknown>, RegExp][] = [
    ['matmul 8x8x8 bf16 f16', /element type given twice/],
    ['relu 8x8 bf16', /relu: element type bf16 is for multiply-accumulate ops/],
    ['maxpool2d n1 c4 h8 w8 r2 s2 stride2 f16', /maxpool2d: element type f16/],
    [{ op: 'matmul', m: 8, n: 8, k: 8, dtype: 'fp8' }, /unknown element type "fp8" \(expected one of f32, bf16, f16, tf32\)/],
  ];
  for (const [spec, re] of bad) {
    try {
      parseProblem(spec as string);
      assert.unreachable(`accepted ${JSON.stringify(spec)}`);
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.match((e as Error).message, re);
      assert.not.match((e as Error).message, /\n/);
    }
  }
});

test('interpreter: a typed problem multiplies its inputs rounded to the type', () => {
  const p = parseProblem('matmul 4x3x5 bf16 +bias');
  const s = Schedule.initial(p);
  const a = randomArray(4 * 5, 1), b = randomArray(5 * 3, 2), bias = randomArray(3, 3);
  const got = interpret(s, [a, b, bias]);
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 3; j++) {
      let want = 0;
      for (let k = 0; k < 5; k++) want += roundTo('bf16', a[i * 5 + k]!) * roundTo('bf16', b[k * 3 + j]!);
      // the bias stays f32
      assert.is(got[i * 3 + j], want + bias[j]!);
    }
  }
  // f32 problems are untouched: the same result as before the types existed
  const f = interpret(Schedule.initial(parseProblem('matmul 4x3x5 +bias')), [a, b, bias]);
  assert.is.not(f[0], got[0]);
});

test('oracle: typed tolerance passes an fp32 sum of rounded inputs and rejects unrounded ones', () => {
  const M = 8, N = 8, K = 64;
  const p = parseProblem(`matmul ${M}x${N}x${K} bf16`);
  const s = Schedule.initial(p);
  const a = randomArray(M * K, 5), b = randomArray(K * N, 6);
  const sum = (round: (x: number) => number) => {
    const out = new Float32Array(M * N);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc = Math.fround(acc + Math.fround(round(a[i * K + k]!) * round(b[k * N + j]!)));
      out[i * N + j] = acc;
    }
    return out;
  };
  const zero = new Float32Array(M * N);
  const good = checkAgainstOracle(s, [a, b], zero, sum((x) => roundTo('bf16', x)));
  assert.ok(good.ok, `rounded: ${good.maxError} > ${good.tolerance}`);
  assert.is(good.tolerance, typeTolerance('bf16', K));
  const bad = checkAgainstOracle(s, [a, b], zero, sum((x) => x));
  assert.not.ok(bad.ok, 'an fp32 product of unrounded inputs is not what a bf16 kernel computes');
  const sampled = checkSampledAgainstOracle(p, [a, b], zero, sum((x) => roundTo('bf16', x)), 16);
  assert.ok(sampled.ok);
  assert.is(sampled.tolerance, good.tolerance);
});

test('typeTolerance: fp32 summation for f32, a full ulp per add for tensor cores, input rounding on request', () => {
  assert.is(typeTolerance('f32', 10), 12 * 2 ** -23);
  assert.is(typeTolerance('bf16', 10), 12 * 2 ** -22);
  assert.is(typeTolerance('bf16', 10, { roundedInputs: false }), 12 * 2 ** -22 + 2 ** -7);
  assert.is(typeTolerance('f16', 0, { roundedInputs: false }), 2 * 2 ** -22 + 2 ** -10);
  assert.throws(() => typeTolerance('f16', -1), /non-negative integer/);
});

test('CPU backends refuse typed problems with one line', () => {
  const s = Schedule.initial(parseProblem('matmul 8x8x8 bf16'));
  for (const name of ['avx2', 'avx512', 'neon'] as const) {
    const why = backend(name).validate!(s);
    assert.match(why ?? '', new RegExp(`^${name} kernels compute in f32 only: bf16 problems need --target cuda`));
    assert.throws(() => backend(name).compile(s), /f32 only/);
  }
  assert.is(backend('avx2').validate!(Schedule.initial(parseProblem('matmul 8x8x8'))), undefined);
});

test.run();
