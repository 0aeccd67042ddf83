import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem, LoopTuneError, flops, isReduction, accessStrides } from '../../ir/index.ts';

test('matmul spec: variables, tensors, strides', () => {
  const p = parseProblem('matmul 256x128x64');
  assert.equal(p.vars.map((v) => [v.name, v.extent]), [['m', 256], ['n', 128], ['k', 64]]);
  assert.equal(p.tensors.map((t) => t.shape), [[256, 128], [256, 64], [64, 128]]);
  assert.equal(accessStrides(p, p.inputs[1]!), [0, 1, 128]);
  assert.ok(isReduction(p, 2));
  assert.not.ok(isReduction(p, 0));
  assert.is(flops(p), 2 * 256 * 128 * 64);
  assert.is(p.spec, 'matmul 256x128x64');
});

test('named and positional forms agree; YAML objects give the same problem', () => {
  assert.is(parseProblem('matmul m32 n16 k8').spec, 'matmul 32x16x8');
  assert.is(parseProblem({ op: 'matmul', m: 32, n: 16, k: 8 }).spec, 'matmul 32x16x8');
  assert.is(parseProblem({ op: 'add', shape: [4, 5] }).spec, 'add 4x5');
  assert.is(parseProblem({ op: 'reduce', shape: [4, 5], axis: 0 }).spec, 'reduce 4x5 axis0');
  assert.is(parseProblem('bmm 2x3x4x5').spec, 'bmm b2 m3 n4 k5');
});

test('conv2d: output sizes from stride, input index is affine', () => {
  const p = parseProblem('conv2d n1 c3 h9 w9 k4 r3 s3 stride2');
  assert.equal(p.tensors[0]!.shape, [1, 4, 4, 4]);
  const h = p.vars.findIndex((v) => v.name === 'h');
  const r = p.vars.findIndex((v) => v.name === 'r');
  assert.equal(p.inputs[0]!.index[2]!.terms, [{ var: h, coef: 2 }, { var: r, coef: 1 }]);
  assert.is(parseProblem('conv3d n1 c2 d5 h5 w5 k2 t3 r3 s3').tensors[0]!.shape.join('x'), '1x2x3x3x3');
  assert.is(parseProblem('conv1d n2 c3 w10 k4 s3').tensors[0]!.shape.join('x'), '2x4x8');
});

test('elementwise, reduce, transpose', () => {
  assert.is(parseProblem('relu 8x8').combine, 'relu');
  assert.is(parseProblem('add 8x8').inputs.length, 2);
  const r = parseProblem('reduce 6x7 axis1');
  assert.equal(r.tensors[0]!.shape, [6]);
  assert.is(r.combine, 'sum');
  const t = parseProblem('transpose 3x5');
  assert.equal(t.tensors[0]!.shape, [5, 3]);
});

const BAD: [string | object, string][] = [
  ['', 'empty problem spec (expected e.g. "matmul 256x256x256")'],
  ['foo 3x3', "unknown op 'foo' (expected one of: matmul, bmm, conv1d, conv2d, conv3d, maxpool1d, maxpool2d, maxpool3d, avgpool1d, avgpool2d, avgpool3d, add, mul, relu, reduce, copy, transpose, globalavgpool)"],
  ['matmul 256x256', 'matmul needs 3 sizes MxNxK (e.g. "matmul 256x256x256"), got "256x256"'],
  ['matmul 256x0x256', 'matmul: size n must be a positive integer, got "0"'],
  ['matmul m4 n4', 'matmul: missing size k (expected m n k, e.g. "matmul 256x256x256")'],
  ['matmul m4 n4 k4 q4', "matmul: unknown size 'q' (expected m n k, e.g. \"matmul 256x256x256\")"],
  ['matmul m4 m4 n4 k4', 'matmul: size m given twice'],
  ['matmul m4 n-1 k4', 'matmul: size n must be a positive integer, got -1'],
  ['conv2d n1 c3 h2 w9 k4 r3 s3', 'conv2d: kernel size r=3 is larger than input size h=2'],
  ['conv2d n1 c3 h9 w9 k4 r3', 'conv2d: missing size s (expected n c h w k r s stride, e.g. "conv2d n1 c64 h56 w56 k64 r3 s3 stride1")'],
  ['conv2d n1 c3 hx w9 k4 r3 s3', "conv2d: cannot read 'hx' (expected a name and a positive integer, e.g. n64)"],
  ['conv2d n1 c3 h9 w9 k4 r3 s3 stride0', 'conv2d: size stride must be a positive integer, got 0'],
  ['add', 'add: missing sizes (expected a shape such as 1024x1024, e.g. "add 1024x1024")'],
  ['add 4xx4', 'add: size #2 must be a positive integer, got "empty"'],
  ['reduce 4x4 axis2', 'reduce: axis 2 out of range for a 2-d tensor (expected 0..1)'],
  ['reduce 4x4 along1', "reduce: unexpected 'along1' (expected e.g. \"reduce 1024x1024 axis1\")"],
  ['transpose 2x3x4', 'transpose: needs a 2-d shape such as 256x512, got 2x3x4'],
  [{ op: 'matmul', m: 4, n: 4, k: 2.5 }, 'matmul: size k must be a positive integer, got 2.5'],
  [{ op: 'relu' }, 'relu: missing shape (expected e.g. "relu 1024x1024")'],
  // issue 13: the token after the sizes is named, not the sizes
  ['matmul 64x64x64 extra', 'matmul: unexpected \'extra\' after the sizes (expected e.g. "matmul 256x256x256")'],
  ['conv1d 1x3x10x4x3 stride2', 'conv1d: unexpected \'stride2\' after the sizes (expected e.g. "conv1d n1 c64 w56 k64 s3 stride1")'],
  // issue 13: long input is echoed cut to 40 characters; sizes past 2^31-1 are too large, not "Infinity"
  [`matmul ${'9'.repeat(5000)}x2x2`, `matmul: size m is too large, got "${'9'.repeat(40)}…" (at most 2147483647)`],
  [`matmul m${'9'.repeat(5000)} n2 k2`, `matmul: size m is too large, got "${'9'.repeat(40)}…" (at most 2147483647)`],
  ['add 3000000000x2', 'add: size #1 is too large, got "3000000000" (at most 2147483647)'],
  [{ op: 'matmul', m: 4, n: 4, k: 1e300 }, 'matmul: size k is too large, got 1e+300 (at most 2147483647)'],
  [`${'z'.repeat(100)} 4x4`, `unknown op '${'z'.repeat(40)}…' (expected one of: matmul, bmm, conv1d, conv2d, conv3d, maxpool1d, maxpool2d, maxpool3d, avgpool1d, avgpool2d, avgpool3d, add, mul, relu, reduce, copy, transpose, globalavgpool)`],
  [`add 4x4 ${'q'.repeat(100)}`, `add: unexpected '${'q'.repeat(40)}…' (expected e.g. "add 1024x1024")`],
  [`conv2d n1 ${'c'.repeat(100)}`, `conv2d: cannot read '${'c'.repeat(40)}…' (expected a name and a positive integer, e.g. n64)`],
  [`matmul ${'8x'.repeat(50)}8`, `matmul needs 3 sizes MxNxK (e.g. "matmul 256x256x256"), got "${'8x'.repeat(20)}…"`],
];

test('op names, size names and the x separator are case-insensitive (issue 13)', () => {
  assert.is(parseProblem('MATMUL 8X8X8').spec, 'matmul 8x8x8');
  assert.is(parseProblem('Matmul 8x4X2').spec, 'matmul 8x4x2');
  assert.is(parseProblem('BMM B2 M3 N4 K5').spec, 'bmm b2 m3 n4 k5');
  assert.is(parseProblem('ADD 4X5').spec, 'add 4x5');
  assert.is(parseProblem('Reduce 4X5 AXIS0').spec, 'reduce 4x5 axis0');
  assert.is(parseProblem({ op: 'MatMul', m: 2, n: 3, k: 4 }).spec, 'matmul 2x3x4');
});

for (const [input, message] of BAD) {
  test(`bad spec ${JSON.stringify(input)}`, () => {
    try {
      parseProblem(input as string);
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.is((e as Error).message, message);
    }
  });
}

test.run();
