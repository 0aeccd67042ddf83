/** agent/library-kernel.ts: which problems are GEMMs, and the OpenBLAS kernel against the interpreter on every epilogue. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gemmMapping, libraryKernel, whyNotGemm } from '../../agent/library-kernel.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { checkAgainstOracle, randomArray } from '../../ir/interpret.ts';
import { elementCount, makeProblem, type Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';
import { NativeFloat32Buffer } from '../../targets/runtime/buffers.ts';

// read before the first kernel loads OpenBLAS in this process
const PINNED_CORETYPE = process.env.OPENBLAS_CORETYPE;

/** Runs the library kernel of `p` on seeded random inputs and checks it against the interpreter. */
function checkLibrary(p: Problem, seed = 1): { maxError: number; tolerance: number } {
  const k = libraryKernel(p, { threads: 1 });
  try {
    const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), seed * 101 + i));
    // the kernel overwrites its output: garbage in it must not leak into the result
    const out = randomArray(elementCount(p.tensors[0]!), seed * 7).map((x) => x * 1e6);
    k.run(inputs, out);
    const c = checkAgainstOracle(Schedule.initial(p), inputs, new Float64Array(out.length), out);
    assert.ok(c.ok, `${p.spec}: error ${c.maxError} > tolerance ${c.tolerance}`);
    return c;
  } finally {
    k.dispose();
  }
}

/** C[m, n] = sum_k A[m, k] * B[n, k]: B stored transposed, as attention's Q·K^T reads K. */
function matmulTransposedB(m: number, n: number, k: number): Problem {
  const ix = (...vars: number[]) => vars.map((v) => ({ terms: [{ var: v, coef: 1 }] }));
  return makeProblem({
    op: 'matmul', spec: `matmul ${m}x${n}x${k} (B transposed)`,
    vars: [{ name: 'm', extent: m }, { name: 'n', extent: n }, { name: 'k', extent: k }],
    tensors: [{ name: 'C', shape: [m, n] }, { name: 'A', shape: [m, k] }, { name: 'Bt', shape: [n, k] }],
    output: { tensor: 0, index: ix(0, 1) },
    inputs: [{ tensor: 1, index: ix(0, 2) }, { tensor: 2, index: ix(1, 2) }],
    combine: 'fma',
  });
}

test('matmul, bmm and 1x1 stride-1 convs (grouped too) map to sgemm; the rest is refused with the reason', () => {
  const mm = gemmMapping(parseProblem('matmul 24x40x56'));
  assert.equal({ m: mm.m, n: mm.n, k: mm.k, calls: mm.calls, ta: mm.a.trans, tb: mm.b.trans, lda: mm.a.ld, ldb: mm.b.ld, ldc: mm.ldc },
    { m: 24, n: 40, k: 56, calls: 1, ta: false, tb: false, lda: 56, ldb: 40, ldc: 40 });
  const bmm = gemmMapping(parseProblem('bmm b3 m8 n12 k16'));
  assert.equal([bmm.m, bmm.n, bmm.k, bmm.calls], [8, 12, 16, 3]);
  assert.equal(bmm.batch.map((v) => [v.name, v.c, v.a, v.b]), [['b', 8 * 12, 8 * 16, 16 * 12]]);
  // per image: out[K, H*W] = W[K, C] · I[C, H*W] (A is the weights, B the image)
  const conv = gemmMapping(parseProblem('conv2d n2 c8 h6 w5 k12 r1 s1 stride1 +bias'));
  assert.equal([conv.m, conv.n, conv.k, conv.calls], [12, 30, 8, 2]);
  assert.is(conv.a.tensor, 2);
  assert.is(conv.b.tensor, 1);
  assert.equal(conv.batch.map((v) => [v.name, v.a]), [['n', 0]], 'the weights are shared by every image');
  // a grouped 1x1 conv is a batch of GEMMs, one per group
  const grouped = gemmMapping(parseProblem('conv2d n1 c8 h8 w8 k8 r1 s1 stride1 groups2'));
  assert.equal([grouped.m, grouped.n, grouped.k, grouped.batch.map((v) => v.name)], [4, 64, 4, ['g']]);
  const t = gemmMapping(matmulTransposedB(8, 12, 16));
  assert.ok(t.b.trans && t.b.ld === 16 && !t.a.trans);
  for (const [spec, why] of [
    ['conv2d n1 c8 h14 w14 k8 r3 s3 stride1 pad1', /padded/],
    ['conv2d n1 c8 h14 w14 k8 r3 s3 stride1', /not a dense matrix/],
    ['conv2d n1 c8 h14 w14 k16 r1 s1 stride2 +bias', /not a dense matrix/],
    ['maxpool2d n1 c8 h28 w28 r3 s3 stride2', /computes max/],
    ['add 64x64', /computes add/],
  ] as const) {
    assert.match(whyNotGemm(parseProblem(spec)) ?? 'mapped', why, spec);
  }
  try {
    libraryKernel('avgpool2d n1 c8 h4 w4 r2 s2 stride2', { threads: 1 });
    assert.unreachable('a pool has no library kernel');
  } catch (e) {
    assert.instance(e, LoopTuneError);
    assert.match((e as Error).message, /^avgpool2d .* is not matmul-shaped: .*\(the library runs matmul, bmm and 1x1/);
    assert.not.match((e as Error).message, /\n/);
  }
});

test('the library kernel matches the interpreter on every epilogue op, alone and chained', () => {
  for (const epilogue of ['+bias', '+residual', '+scale0.125', '+relu', '+relu6', '+clip-0.5,0.25', '+sigmoid', '+gelu', '+bias +residual +relu', '+bias +gelu +scale2']) {
    checkLibrary(parseProblem(`matmul 17x33x29 ${epilogue}`));
  }
  checkLibrary(parseProblem('matmul 1x10x64 +bias'));
});

test('bmm, 1x1 convs (batch > 1, with bias and residual), a transposed B and native buffers run correctly', () => {
  checkLibrary(parseProblem('bmm b4 m16 n16 k16 +scale0.25'));
  checkLibrary(parseProblem('bmm b3 m5 n7 k9 +bias +sigmoid'));
  checkLibrary(parseProblem('conv2d n1 c8 h14 w14 k32 r1 s1 stride1 +bias +residual +relu'));
  checkLibrary(parseProblem('conv2d n2 c6 h5 w7 k10 r1 s1 stride1 +bias +relu6'));
  checkLibrary(parseProblem('conv1d n1 c12 w9 k5 s1 stride1 +bias'));
  checkLibrary(parseProblem('conv2d n2 c8 h3 w5 k12 r1 s1 stride1 groups4 +bias +residual'));
  checkLibrary(matmulTransposedB(9, 13, 21));
  // native (64-byte aligned) buffers, as a model executor's memory plan hands them over
  const p = parseProblem('matmul 8x24x16 +bias +relu');
  const k = libraryKernel(p, { threads: 1 });
  const buffers = p.tensors.map((t) => NativeFloat32Buffer.alloc(elementCount(t)));
  try {
    const inputs = buffers.slice(1).map((b, i) => {
      b.array.set(randomArray(b.length, 40 + i));
      return b;
    });
    k.run(inputs, buffers[0]!);
    const c = checkAgainstOracle(Schedule.initial(p), inputs.map((b) => b.array), new Float64Array(buffers[0]!.length), buffers[0]!.array);
    assert.ok(c.ok, `native buffers: error ${c.maxError}`);
  } finally {
    k.dispose();
    for (const b of buffers) b.free();
  }
});

test('the kernel names the OpenBLAS build it loaded and checks its arguments in one line', () => {
  const k = libraryKernel('matmul 4x4x4 +bias', { threads: 1 });
  assert.match(k.library, /^OpenBLAS \S+ \(\w+\)$/);
  assert.is(k.flops, 2 * 64);
  // this environment pins OPENBLAS_CORETYPE; loading the library in-process must leave it as it was
  assert.is(process.env.OPENBLAS_CORETYPE, PINNED_CORETYPE);
  const a = new Float32Array(16), b = new Float32Array(16), bias = new Float32Array(4), c = new Float32Array(16);
  for (const [inputs, out, why] of [
    [[a, b], c, /takes 3 tensors after the output \(A, B, bias\), got 2/],
    [[a, new Float32Array(15), bias], c, /^B must have 16 elements, got 15$/],
    [[a, b, bias], new Float32Array(3), /^C must have 16 elements, got 3$/],
  ] as const) {
    try {
      k.run(inputs, out);
      assert.unreachable('bad arguments were accepted');
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.match((e as Error).message, why);
    }
  }
  k.dispose();
  assert.throws(() => k.run([a, b, bias], c), /after dispose/);
});

test.run();
