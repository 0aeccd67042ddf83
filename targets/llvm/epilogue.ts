/**
 * The fused epilogue ops as scalar LLVM IR on one accumulator lane, like the rest of ir.ts: each
 * lane's chain is the same straight-line code, so LLVM's SLP vectorizer rebuilds the vectors
 * (every instruction used has a vector form on AVX2/AVX-512: vroundps, vcvttps2dq, vpslld...).
 * No libm calls: expf/erff would stay scalar calls, and a kernel's raw bytes cannot reach libm.
 *
 * - relu and clip are `x > lo ? x : lo` / `x < hi ? x : hi` (one vmaxps/vminps each; maxnum and
 *   minnum would add NaN fix-ups the oracle does not ask for);
 * - exp (sigmoid): clamp to [-87, 88] (2^n stays a normal float), n = rint(x*log2e), r = x - n*ln2
 *   in two fma steps (Cody-Waite), Cephes' degree-5 polynomial for e^r - 1 - r, times 2^n built in
 *   the exponent bits ((n + 127) << 23); about 1 ulp;
 * - erf (gelu): Eigen's/XLA's rational x*P(x^2)/Q(x^2) on x clamped to [-4, 4] (erf(4) is 1 to
 *   1.5e-8), about 3e-7 absolute; gelu = x/2 + x/2*erf(x/sqrt 2) with one fma.
 */
import type { EpilogueKind, EpilogueOp } from '../../ir/problem.ts';
import type { IRBuilder, LlvmBindings, LlvmFunction, Module, Type, Value } from './bindings.ts';

/**
 * Scratch vector registers per op (loopnest/caps.ts): LLVM allocates the registers itself; these
 * leave room in the tile for its temporaries (exp and erf keep a polynomial value, its argument and
 * a constant live at once).
 */
export const LLVM_EPILOGUE_SCRATCH: Record<EpilogueKind, number> = {
  bias: 2, residual: 2, scale: 2, relu: 2, clip: 2, sigmoid: 4, gelu: 4,
};

/**
 * Levels each op adds to the SLP vectorizer's trees (a store's value down to the accumulator: exp
 * is a 20-deep chain). LLVM 14 stops a tree at depth 12 (-slp-recursion-max-depth) and gathers:
 * a sigmoid then ate the whole budget, and the tile's FMAs below it came out as 4-wide pieces
 * with shuffles and spills. See slpRecursionDepth.
 */
const SLP_LEVELS: Record<EpilogueKind, number> = { bias: 1, residual: 1, scale: 1, relu: 2, clip: 4, sigmoid: 20, gelu: 16 };
/** LLVM 14's default -slp-recursion-max-depth */
const SLP_DEFAULT_DEPTH = 12;

/** The SLP depth limit that leaves the tile's own code LLVM's default depth below the epilogue. */
export function slpRecursionDepth(ops: readonly EpilogueOp[]): number {
  return SLP_DEFAULT_DEPTH + ops.reduce((a, op) => a + SLP_LEVELS[op.kind], 0);
}

/** exp's range: e^88 and e^-87 are normal floats, and so is the 2^n of their reduction */
const EXP_MIN = -87;
const EXP_MAX = 88;
const LOG2E = 1.4426950408889634;
/** ln 2 = LN2_HI + LN2_LO, LN2_HI with few significant bits so that n*LN2_HI is exact */
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
/** Cephes expf: e^r = 1 + r + r^2 * P(r) on |r| <= ln2/2, highest coefficient first */
const EXP_P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];

const ERF_CLAMP = 4;
/** erf(x) = x * P(x^2) / Q(x^2) (Eigen's generic_fast_erf_float), highest coefficient first */
const ERF_P = [
  -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
  -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
];
const ERF_Q = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03, -1.42647390514189e-02];

export class EpilogueIr {
  private readonly f32: Type;
  private readonly i32: Type;
  private fmaFn: LlvmFunction | undefined;
  private rintFn: LlvmFunction | undefined;

  constructor(private readonly llvm: LlvmBindings, private readonly module: Module, private readonly b: IRBuilder) {
    this.f32 = b.getFloatTy();
    this.i32 = b.getInt32Ty();
  }

  /** `op` applied to one lane's value `x`; `operand` is the lane's element of a bias or residual. */
  apply(op: EpilogueOp, x: Value, operand: Value | undefined): Value {
    const b = this.b;
    switch (op.kind) {
      case 'bias': case 'residual':
        if (!operand) throw new Error(`internal error: a ${op.kind} epilogue op without its operand`);
        return b.CreateFAdd(x, operand);
      case 'scale': return b.CreateFMul(x, this.c(op.value));
      case 'relu': return this.max(x, 0);
      case 'clip': return this.min(this.max(x, op.min), op.max);
      case 'sigmoid': return b.CreateFDiv(this.c(1), b.CreateFAdd(this.c(1), this.exp(b.CreateFSub(this.c(-0), x))));
      case 'gelu': {
        const half = b.CreateFMul(x, this.c(0.5));
        return this.fma(half, this.erf(b.CreateFMul(x, this.c(Math.SQRT1_2))), half);
      }
    }
  }

  private c(value: number): Value {
    return this.llvm.ConstantFP.get(this.f32, value);
  }

  /** x > lo ? x : lo (what vmaxps computes) */
  private max(x: Value, lo: number): Value {
    return this.b.CreateSelect(this.b.CreateFCmpOGT(x, this.c(lo)), x, this.c(lo));
  }

  private min(x: Value, hi: number): Value {
    return this.b.CreateSelect(this.b.CreateFCmpOLT(x, this.c(hi)), x, this.c(hi));
  }

  private fma(a: Value, x: Value, c: Value): Value {
    this.fmaFn ??= this.llvm.Intrinsic.getDeclaration(this.module, this.llvm.Intrinsic.fma, [this.f32]);
    return this.b.CreateCall(this.fmaFn, [a, x, c]);
  }

  /** Horner's rule with fma, `coefficients` highest first. */
  private poly(x: Value, coefficients: readonly number[]): Value {
    let p = this.c(coefficients[0]!);
    for (const k of coefficients.slice(1)) p = this.fma(p, x, this.c(k));
    return p;
  }

  private exp(v: Value): Value {
    const b = this.b;
    const x = this.min(this.max(v, EXP_MIN), EXP_MAX);
    this.rintFn ??= this.llvm.Intrinsic.getDeclaration(this.module, this.llvm.Intrinsic.rint, [this.f32]);
    const n = b.CreateCall(this.rintFn, [b.CreateFMul(x, this.c(LOG2E))]);
    const r = this.fma(n, this.c(-LN2_LO), this.fma(n, this.c(-LN2_HI), x));
    const er = b.CreateFAdd(this.fma(this.poly(r, EXP_P), b.CreateFMul(r, r), r), this.c(1));
    // 2^n: n + 127 in the exponent field (n is in [-126, 127] on the clamped range)
    const bits = b.CreateShl(b.CreateAdd(b.CreateFPToSI(n, this.i32), b.getInt32(127)), b.getInt32(23));
    return b.CreateFMul(er, b.CreateBitCast(bits, this.f32));
  }

  private erf(v: Value): Value {
    const b = this.b;
    const x = this.min(this.max(v, -ERF_CLAMP), ERF_CLAMP);
    const x2 = b.CreateFMul(x, x);
    return b.CreateFDiv(b.CreateFMul(x, this.poly(x2, ERF_P)), this.poly(x2, ERF_Q));
  }
}
