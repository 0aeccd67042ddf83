/**
 * The row kernels' emitter (targets/x86/row-vector.ts, row-exp.ts, row-kernels.ts): the two
 * instructions it encodes itself against llvm-mc-14 (oracle.ts), the kernels' disassembly (every
 * byte decodes, only caller-saved registers, the ISA's own instructions), and e^x on both ISAs
 * against float64 Math.exp. The kernels' results against the JS host ops are in
 * tests/targets/runtime/native-host-ops.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../../ir/errors.ts';
import { ExecutableCode } from '../../../targets/runtime/executable-memory.ts';
import { hostRuns } from '../../../targets/runtime/host.ts';
import { disassembleX86 } from '../../../targets/x86/disassemble.ts';
import { mem, rdi, rdx, rsi, ymm, zmm } from '../../../targets/x86/registers.ts';
import { EXP_FLOOR, emitExp } from '../../../targets/x86/row-exp.ts';
import { layerNormRowsCode, softmaxRowsCode } from '../../../targets/x86/row-kernels.ts';
import { ROW_ISAS, RowEmitter, type RowIsa, type RowVec } from '../../../targets/x86/row-vector.ts';
import { describe, runOracle, type OracleCase } from './oracle.ts';

const runnable = ROW_ISAS.filter((isa) => process.arch === 'x64' && hostRuns(isa));

test('vscalefps and vsqrtps encode as llvm-mc decodes them, registers 0-31', () => {
  const cases: OracleCase[] = [];
  const one = (expect: string, emit: (e: RowEmitter) => void, isa: RowIsa): void => {
    const e = new RowEmitter(isa);
    emit(e);
    cases.push({ family: 'row', expect, bytes: e.a.finish() });
  };
  const ids = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 31];
  for (const d of ids) {
    for (const s of ids) {
      for (const t of [0, 8, 16, 31]) one(`vscalefps zmm${d}, zmm${s}, zmm${t}`, (e) => e.vscalefps(zmm(d), zmm(s), zmm(t)), 'avx512');
      one(`vsqrtps zmm${d}, zmm${s}`, (e) => e.vsqrtps(zmm(d), zmm(s)), 'avx512');
      if (d < 16 && s < 16) one(`vsqrtps ymm${d}, ymm${s}`, (e) => e.vsqrtps(ymm(d), ymm(s)), 'avx2');
    }
  }
  const bad = runOracle(cases).filter((r) => !r.ok);
  if (bad.length) assert.unreachable(`${bad.length} of ${cases.length} encodings disagree with llvm-mc:\n${bad.slice(0, 12).map(describe).join('\n')}`);
  const e = new RowEmitter('avx2');
  assert.throws(() => e.vsqrtps(ymm(16), ymm(0)), /ymm 0-15 only/);
  assert.throws(() => e.vscalefps(zmm(1).k(1), zmm(2), zmm(3)), /unmasked zmm/);
});

const CALLEE_SAVED = /\b(rbx|ebx|rbp|ebp|rsp|esp|r1[2-5]d?|push|pop)\b/;

/** The kernel's listing, checked: decodes to the pool, no callee-saved register, vzeroupper; ret at the end. */
function listing(code: { code: Uint8Array; codeSize: number }): string[] {
  const text = disassembleX86(code.code, { codeSize: code.codeSize, offsets: false });
  assert.not.match(text, /\(bad\)/);
  assert.not.match(text, CALLEE_SAVED, 'touches a callee-saved register or the stack');
  const lines = text.trimEnd().split('\n').map((l) => l.replace(/\s+/g, ' ').trim()).filter((l) => !l.startsWith('.byte') && l !== 'int3');
  assert.is(lines.at(-1), 'ret');
  assert.is(lines.at(-2), 'vzeroupper');
  return lines;
}

for (const isa of ROW_ISAS) {
  const reg = isa === 'avx512' ? 'zmm' : 'ymm';
  const lanes = isa === 'avx512' ? 16 : 8;
  for (const length of [1, 7, 16, 17, 128, 1000]) {
    test(`${isa} softmax and layer norm rows of ${length} disassemble cleanly`, () => {
      const tail = length % lanes !== 0;
      const softmax = listing(softmaxRowsCode(isa, length));
      const scaling = softmax.filter((l) => (isa === 'avx512' ? /^vscalefps zmm/.test(l) : /^vpslld ymm\d+, ymm\d+, 23$/.test(l)));
      // one e^x per full vector of the exp pass (or per group in its loop), and one for the tail
      assert.ok(scaling.length >= 1 && scaling.length <= 4 + 3 + 1, `${scaling.length} exponent scalings`);
      assert.ok(softmax.some((l) => l.startsWith(`vmaxps ${reg}`)));
      const layerNorm = listing(layerNormRowsCode(isa, length, 1e-5));
      assert.ok(layerNorm.some((l) => l.startsWith(`vsqrtps ${reg}`)));
      assert.ok(layerNorm.some((l) => l.startsWith(`vfmadd213ps ${reg}`)));
      // the tail: k1 on AVX-512, vmaskmovps on AVX2; none without one
      for (const lines of [softmax, layerNorm]) {
        const masked = lines.filter((l) => (isa === 'avx512' ? / \{k1\}/.test(l) : l.startsWith('vmaskmovps')));
        assert.is(masked.length > 0, tail, `masked instructions: ${masked.length}`);
      }
    });
  }
}

test('bad row lengths and epsilons are one line', () => {
  const oneLine = (pattern: RegExp) => (e: unknown) => e instanceof LoopTuneError && !e.message.includes('\n') && pattern.test(e.message);
  assert.throws(() => softmaxRowsCode('avx512', 0), oneLine(/row length must be an integer 1\.\./));
  assert.throws(() => softmaxRowsCode('avx2', 2.5), oneLine(/got 2.5/));
  assert.throws(() => layerNormRowsCode('avx2', 1 << 30, 1e-5), oneLine(/row length/));
  assert.throws(() => layerNormRowsCode('avx512', 8, NaN), oneLine(/epsilon must be a finite number/));
});

/** `void f(const float *x, float *y, int64_t vectors)`: y = e^x, `vectors` whole vectors */
function expKernel(isa: RowIsa): ExecutableCode {
  const e = new RowEmitter(isa);
  const a = e.a;
  const [d, n, p, floor] = [0, 1, 2, 3].map((i) => e.v(i)) as [RowVec, RowVec, RowVec, RowVec];
  const done = a.newLabel(), top = a.newLabel();
  a.test(rdx, rdx);
  a.jle(done);
  a.vmovups(floor, e.constant(EXP_FLOOR[isa]));
  a.bind(top);
  a.vmovups(d, mem(rdi));
  emitExp(e, d, n, p, floor);
  a.vmovups(mem(rsi), p);
  a.add(rdi, e.bytes);
  a.add(rsi, e.bytes);
  a.dec(rdx);
  a.jnz(top);
  a.bind(done);
  a.vzeroupper();
  a.ret();
  return new ExecutableCode(e.finish().code, 2);
}

function runExp(isa: RowIsa, xs: Float32Array): Float32Array {
  const lanes = isa === 'avx512' ? 16 : 8;
  const n = Math.ceil(xs.length / lanes) * lanes;
  const x = new Float32Array(n);
  x.set(xs);
  const y = new Float32Array(n).fill(NaN);
  const exe = expKernel(isa);
  exe.fn(x, y, n / lanes, 0, 1);
  exe.free();
  return y.subarray(0, xs.length);
}

for (const isa of runnable) {
  test(`${isa} e^x: relative error below 2e-7 on [-87, 0]; 0 far below; -Infinity gives 0, NaN stays NaN`, () => {
    const count = 200_000;
    const xs = new Float32Array(count);
    for (let i = 0; i < count; i++) xs[i] = -87 * (i / (count - 1));
    const ys = runExp(isa, xs);
    let worst = 0, at = 0;
    for (let i = 0; i < count; i++) {
      const want = Math.exp(xs[i]!);
      const rel = Math.abs(ys[i]! - want) / want;
      if (rel > worst) [worst, at] = [rel, xs[i]!];
    }
    if (process.env.ROW_KERNELS_REPORT) console.log(`${isa} exp: max relative error ${worst.toExponential(3)} at x = ${at}`);
    assert.ok(worst < 2e-7, `max relative error ${worst} at x = ${at}`);
    const special = runExp(isa, new Float32Array([-Infinity, -1e30, -105, -200, NaN, 0, -0]));
    assert.equal(Array.from(special.subarray(0, 4)), [0, 0, 0, 0]);
    assert.ok(Number.isNaN(special[4]));
    assert.is(special[5], 1);
    assert.is(special[6], 1);
    // near and below the least normal: AVX-512 keeps subnormals (to within the least one),
    // AVX2 too while 2^n is normal, and gives 0 from round(x log2e) = -127 on (x < -87.68)
    const low = new Float32Array(Array.from({ length: 80 }, (_, i) => -87 - i * 0.25));
    const lowY = runExp(isa, low);
    for (let i = 0; i < low.length; i++) {
      const want = Math.exp(low[i]!);
      const err = Math.abs(lowY[i]! - want);
      const flushed = isa === 'avx2' && low[i]! < -87.68 && lowY[i] === 0;
      assert.ok(flushed || err <= 2 ** -149 + 2e-7 * want, `e^${low[i]} is ${lowY[i]}, want ${want}`);
    }
  });
}

test.run();
