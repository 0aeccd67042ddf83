/**
 * e^x on a vector of fp32 lanes, Cephes expf's way (the epilogue's sigmoid in emit.ts computes
 * the same): x = n ln2 + r with n = round(x log2e) and r in [-ln2/2, ln2/2] in two parts
 * (Cody-Waite: n * LN2_HI is exact for |n| < 2^8), e^r by a degree-7 polynomial
 * 1 + r + r^2 P(r), then times 2^n:
 *   AVX-512: vscalefps (any n; underflows to 0 like a correctly rounded product),
 *   AVX2:    2^n built in the exponent bits, (n + 127) << 23, valid for n >= -127 (n = -127
 *            gives the bits of +0.0, so the result is exactly 0 there).
 * Inputs are clamped below at EXP_FLOOR first, where e^x is 0 in fp32 (AVX-512: below half
 * the least subnormal; AVX2: below the least normal, which this path flushes to 0), so very
 * negative inputs and -Infinity give 0, not NaN. NaN stays NaN (the clamp's NaN operand is
 * the one vmaxps returns). Only x <= 0 is needed by softmax (x - max); nothing clamps above,
 * so x > 88.7 is not handled. Measured: max relative error 7.1e-8 (0.6 ulp) on both ISAs over
 * 200,000 points of [-87, 0] against float64 e^x (tests/targets/x86/row-kernels.test.ts).
 */
import { Zmm } from './registers.ts';
import type { RowEmitter, RowVec } from './row-vector.ts';

/** ln 2 = LN2_HI + LN2_LO, LN2_HI short enough that n * LN2_HI is exact for |n| < 2^8 (Cephes) */
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
/** e^r on [-ln2/2, ln2/2], highest power first (Cephes expf: 1 + r + r^2 (0.5 + ...)) */
const EXP_POLY = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1, 1, 1];

/**
 * The clamp below which e^x is 0: AVX-512 e^-104 < 2^-150 rounds to 0 after vscalefps; AVX2
 * round(-88 log2e) = -127, the n whose exponent bits make +0.0.
 */
export const EXP_FLOOR = { avx512: -104, avx2: -88 } as const;

/**
 * p = e^d in every lane; d and n are clobbered; `floor` holds EXP_FLOOR[isa] in every lane
 * (a register: vmaxps returns its second operand when one is NaN, and that must be d).
 */
export function emitExp(e: RowEmitter, d: RowVec, n: RowVec, p: RowVec, floor: RowVec): void {
  const a = e.a;
  a.vmaxps(d, floor, d);
  a.vmulps(n, d, e.constant(Math.LOG2E));
  if (n instanceof Zmm) a.vrndscaleps(n, n, 0); // to nearest, ties to even
  else a.vroundps(n, n, 0);
  a.vfnmadd231ps(d, n, e.constant(LN2_HI)); // r = d - n ln2_hi
  a.vfnmadd231ps(d, n, e.constant(LN2_LO)); // r -= n ln2_lo
  a.vmovups(p, e.constant(EXP_POLY[0]!));
  for (const c of EXP_POLY.slice(1)) a.vfmadd213ps(p, d, e.constant(c)); // p = p r + c
  if (p instanceof Zmm && n instanceof Zmm) {
    e.vscalefps(p, p, n);
  } else {
    a.vcvtps2dq(n, n);
    a.vpaddd(n, n, e.intConstant(127));
    a.vpslld(n, n, 23);
    a.vmulps(p, p, n);
  }
}
