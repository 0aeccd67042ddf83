/**
 * Element types of a problem's inputs. A problem is f32 unless its spec says otherwise
 * ("matmul 4096x4096x4096 bf16"); the type is absent from f32 problems, so their specs, records and
 * hashes are what they always were.
 *
 *   f32   inputs stored and multiplied as fp32 (the default)
 *   bf16  inputs stored as bfloat16 (8-bit exponent, 7-bit mantissa), products accumulated in fp32
 *   f16   inputs stored as IEEE half (5-bit exponent, 10-bit mantissa), accumulated in fp32
 *   tf32  a math mode of f32: inputs stored as fp32 but multiplied as TensorFloat-32 (fp32 with its
 *         mantissa rounded to 10 bits), accumulated in fp32
 *
 * The output and the epilogue's operands (bias, residual) stay fp32. Values are rounded as the
 * hardware's conversions do: bf16 and f16 to nearest, ties to even (cvt.rn.bf16.f32,
 * cvt.rn.f16.f32); tf32 to nearest at bit 13, ties away from zero (cvt.rna.tf32.f32, what the
 * tensor-core kernels apply to their fragments).
 */
import { fail } from './errors.ts';

export type ElementType = 'f32' | 'bf16' | 'f16' | 'tf32';
export const ELEMENT_TYPES: readonly ElementType[] = ['f32', 'bf16', 'f16', 'tf32'];

export function isElementType(s: string): s is ElementType {
  return (ELEMENT_TYPES as readonly string[]).includes(s);
}

/** Bytes of one stored input element. */
export function storageBytes(t: ElementType): number {
  return t === 'bf16' || t === 'f16' ? 2 : 4;
}

/** The problem's input type: its dtype, f32 when absent. */
export function elementTypeOf(p: { readonly dtype?: ElementType }): ElementType {
  return p.dtype ?? 'f32';
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * x rounded to fp32 with its low `drop` mantissa bits cleared, to nearest, ties to even (or away
 * from zero), NaN kept, overflow to Infinity.
 */
function roundMantissa(x: number, drop: number, tiesAway = false): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000) return f32[0]!; // Inf or NaN
  const half = 1 << (drop - 1);
  const lsb = tiesAway ? 1 : (bits >>> drop) & 1;
  u32[0] = (((bits + half - 1 + lsb) >>> drop) << drop) >>> 0;
  return f32[0]!;
}

/** The bfloat16 bits of x (round to nearest even; NaN stays a quiet NaN). */
export function bf16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  roundMantissa(x, 16);
  return u32[0]! >>> 16;
}

export function bf16FromBits(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** The IEEE half bits of x: round to nearest even, subnormals kept, overflow to Infinity. */
export function f16Bits(x: number): number {
  f32[0] = x;
  const v = f32[0]!;
  const sign = (u32[0]! >>> 16) & 0x8000;
  if (Number.isNaN(v)) return 0x7e00;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  // 65520 and beyond round to Infinity (the largest half is 65504)
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // subnormal: a multiple of 2^-24, rounded to nearest even
    return sign | roundHalfEven(a / 2 ** -24);
  }
  const e = Math.floor(Math.log2(a));
  const exp = a >= 2 ** (e + 1) ? e + 1 : a < 2 ** e ? e - 1 : e;
  let mant = roundHalfEven((a / 2 ** exp - 1) * 1024);
  let biased = exp + 15;
  if (mant === 1024) {
    mant = 0;
    biased++;
  }
  if (biased >= 31) return sign | 0x7c00;
  return sign | (biased << 10) | mant;
}

export function f16FromBits(b: number): number {
  const sign = b & 0x8000 ? -1 : 1;
  const exp = (b >>> 10) & 0x1f;
  const mant = b & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** x as the hardware holds it in type t (f32: fp32 rounding). */
export function roundTo(t: ElementType, x: number): number {
  switch (t) {
    case 'f32': return Math.fround(x);
    case 'bf16': return bf16FromBits(bf16Bits(x));
    case 'f16': return f16FromBits(f16Bits(x));
    case 'tf32': return roundMantissa(x, 13, true);
  }
}

/** A copy of `values` with every element rounded to type t. */
export function roundedArray(t: ElementType, values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = roundTo(t, values[i]!);
  return out;
}

/** Values stored as a kernel reads them: 16-bit patterns for bf16 and f16, fp32 otherwise. */
export function storageArray(t: ElementType, values: ArrayLike<number>): Float32Array | Uint16Array {
  if (t === 'bf16' || t === 'f16') {
    const out = new Uint16Array(values.length);
    const bits = t === 'bf16' ? bf16Bits : f16Bits;
    for (let i = 0; i < values.length; i++) out[i] = bits(values[i]!);
    return out;
  }
  return Float32Array.from(values);
}

/** Relative rounding unit of one input conversion (half an ulp at 1). */
export function inputUnit(t: ElementType): number {
  switch (t) {
    case 'f32': return 2 ** -24;
    case 'bf16': return 2 ** -8;
    case 'f16': return 2 ** -11;
    case 'tf32': return 2 ** -11;
  }
}

/**
 * The error a kernel of type t may make, relative to the magnitude |init| + sum |terms| of what it
 * summed, over a reduction of `terms` terms. With `roundedInputs` (the oracle rounded its inputs as
 * the hardware does, so every product is exact in fp32) only the fp32 accumulation counts: tensor
 * cores align and truncate inside their multi-term adders, so each of the terms + 2 additions is
 * allowed a full fp32 ulp (2^-22 relative) instead of the half ulp (2^-23) of fp32 FMA chains.
 * Without it, each product also carries the rounding of its two inputs.
 */
export function typeTolerance(t: ElementType, terms: number, opts: { roundedInputs?: boolean } = {}): number {
  if (!Number.isInteger(terms) || terms < 0) fail(`tolerance: the reduction length must be a non-negative integer, got ${terms}`);
  if (t === 'f32') return (terms + 2) * 2 ** -23;
  const accumulation = (terms + 2) * 2 ** -22;
  return opts.roundedInputs === false ? accumulation + 2 * inputUnit(t) : accumulation;
}
