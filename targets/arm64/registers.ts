/**
 * Typed A64 operands: general-purpose registers (X/W), SIMD&FP registers seen as vectors with an
 * arrangement (`v(0).s4` = v0.4s), as single elements (`v(2).s(3)` = v2.s[3]) or as scalars
 * (`s(1)`, `d(8)`, `q(3)`), and the addressing modes of loads and stores.
 *
 * Register number 31 means SP in some operand slots and XZR/WZR in others. The operand objects keep
 * which one the caller meant (`sp` vs `xzr`), and the encoder checks it against the slot, so
 * `add(xzr, ...)` cannot silently become `add(sp, ...)`.
 */

export class A64Error extends Error {
  override name = 'A64Error';
}

// ---------------------------------------------------------------------------------------------
// General-purpose registers

export type GpSpecial = 'sp' | 'zr' | null;

class GpRegBase {
  constructor(
    /** encoding 0..31 (31 = sp or zr, see `special`) */
    readonly num: number,
    readonly special: GpSpecial,
  ) {}
}

/** A 64-bit general-purpose register: x0..x30, sp or xzr. */
export class XReg extends GpRegBase {
  readonly kind = 'x' as const;
  readonly bits = 64 as const;
  get name(): string {
    return this.special === 'sp' ? 'sp' : this.special === 'zr' ? 'xzr' : `x${this.num}`;
  }
  /** the 32-bit view of the same register (w-form). */
  get w(): WReg {
    return new WReg(this.num, this.special);
  }
}

/** A 32-bit general-purpose register: w0..w30, wsp or wzr. */
export class WReg extends GpRegBase {
  readonly kind = 'w' as const;
  readonly bits = 32 as const;
  get name(): string {
    return this.special === 'sp' ? 'wsp' : this.special === 'zr' ? 'wzr' : `w${this.num}`;
  }
  get x(): XReg {
    return new XReg(this.num, this.special);
  }
}

export type GpReg = XReg | WReg;

function gpNumber(n: number, prefix: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 30) {
    throw new A64Error(`${prefix}${n}: general-purpose registers are ${prefix}0..${prefix}30 (number 31 is sp or ${prefix}zr: use those names)`);
  }
  return n;
}

export const x = (n: number): XReg => new XReg(gpNumber(n, 'x'), null);
export const w = (n: number): WReg => new WReg(gpNumber(n, 'w'), null);
export const sp = new XReg(31, 'sp');
export const xzr = new XReg(31, 'zr');
export const wsp = new WReg(31, 'sp');
export const wzr = new WReg(31, 'zr');
/** AAPCS64 names. */
export const fp = x(29);
export const lr = x(30);

// ---------------------------------------------------------------------------------------------
// SIMD & FP registers

export type Arrangement = '8b' | '16b' | '4h' | '8h' | '2s' | '4s' | '1d' | '2d';
export type ElementSize = 'b' | 'h' | 's' | 'd';

/** log2 of the element size in bytes. */
export const ELEMENT_LOG2: Record<ElementSize, number> = { b: 0, h: 1, s: 2, d: 3 };
const ELEMENT_LANES_Q: Record<ElementSize, number> = { b: 16, h: 8, s: 4, d: 2 };

export interface ArrangementInfo {
  /** Q bit: 1 for a 128-bit vector */
  q: 0 | 1;
  esize: ElementSize;
  lanes: number;
}

export const ARRANGEMENTS: Record<Arrangement, ArrangementInfo> = {
  '8b': { q: 0, esize: 'b', lanes: 8 },
  '16b': { q: 1, esize: 'b', lanes: 16 },
  '4h': { q: 0, esize: 'h', lanes: 4 },
  '8h': { q: 1, esize: 'h', lanes: 8 },
  '2s': { q: 0, esize: 's', lanes: 2 },
  '4s': { q: 1, esize: 's', lanes: 4 },
  '1d': { q: 0, esize: 'd', lanes: 1 },
  '2d': { q: 1, esize: 'd', lanes: 2 },
};

/** A vector register with an arrangement: `v(0).s4` is v0.4s. */
export class VecArr<A extends Arrangement = Arrangement> {
  readonly kind = 'vec' as const;
  constructor(
    readonly num: number,
    readonly arr: A,
  ) {}
  get info(): ArrangementInfo {
    return ARRANGEMENTS[this.arr];
  }
  get name(): string {
    return `v${this.num}.${this.arr}`;
  }
}

/** One element of a vector register: `v(2).s(3)` is v2.s[3]. */
export class VecElem<E extends ElementSize = ElementSize> {
  readonly kind = 'elem' as const;
  constructor(
    readonly num: number,
    readonly esize: E,
    readonly index: number,
  ) {
    const lanes = ELEMENT_LANES_Q[esize];
    if (!Number.isInteger(index) || index < 0 || index >= lanes) {
      throw new A64Error(`v${num}.${esize}[${index}]: index must be 0..${lanes - 1}`);
    }
  }
  get name(): string {
    return `v${this.num}.${this.esize}[${this.index}]`;
  }
}

export type FpSize = 'b' | 'h' | 's' | 'd' | 'q';
const FP_LOG2: Record<FpSize, number> = { b: 0, h: 1, s: 2, d: 3, q: 4 };

/** A SIMD&FP register used as a scalar: s1 (fp32), d8 (fp64 / low half), q3 (whole register). */
export class FReg<S extends FpSize = FpSize> {
  readonly kind = 'fp' as const;
  constructor(
    readonly num: number,
    readonly size: S,
  ) {}
  get name(): string {
    return `${this.size}${this.num}`;
  }
  /** log2 of the access size in bytes. */
  get log2(): number {
    return FP_LOG2[this.size];
  }
}

/** A SIMD&FP register v0..v31, before choosing how it is viewed. */
export class VReg {
  constructor(readonly num: number) {}
  get b8() { return new VecArr(this.num, '8b'); }
  get b16() { return new VecArr(this.num, '16b'); }
  get h4() { return new VecArr(this.num, '4h'); }
  get h8() { return new VecArr(this.num, '8h'); }
  get s2() { return new VecArr(this.num, '2s'); }
  get s4() { return new VecArr(this.num, '4s'); }
  get d1() { return new VecArr(this.num, '1d'); }
  get d2() { return new VecArr(this.num, '2d'); }
  b(i: number) { return new VecElem(this.num, 'b', i); }
  h(i: number) { return new VecElem(this.num, 'h', i); }
  s(i: number) { return new VecElem(this.num, 's', i); }
  d(i: number) { return new VecElem(this.num, 'd', i); }
  /** scalar views */
  get S() { return new FReg(this.num, 's'); }
  get D() { return new FReg(this.num, 'd'); }
  get Q() { return new FReg(this.num, 'q'); }
  get name(): string {
    return `v${this.num}`;
  }
}

function vNumber(n: number, prefix: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 31) throw new A64Error(`${prefix}${n}: SIMD&FP registers are ${prefix}0..${prefix}31`);
  return n;
}

export const v = (n: number): VReg => new VReg(vNumber(n, 'v'));
export const s = (n: number): FReg<'s'> => new FReg(vNumber(n, 's'), 's');
export const d = (n: number): FReg<'d'> => new FReg(vNumber(n, 'd'), 'd');
export const q = (n: number): FReg<'q'> => new FReg(vNumber(n, 'q'), 'q');
export const h = (n: number): FReg<'h'> => new FReg(vNumber(n, 'h'), 'h');
export const b = (n: number): FReg<'b'> => new FReg(vNumber(n, 'b'), 'b');

// ---------------------------------------------------------------------------------------------
// Addressing modes

export type IndexExtend = 'lsl' | 'uxtw' | 'sxtw' | 'sxtx';

export type Address =
  /** [base, #offset]: scaled unsigned imm12, or unscaled signed imm9 (ldur) when that is what fits */
  | { mode: 'offset'; base: XReg; offset: number }
  /** [base, #offset]! */
  | { mode: 'pre'; base: XReg; offset: number }
  /** [base], #offset   or   [base], xm (NEON structure loads only) */
  | { mode: 'post'; base: XReg; offset: number | XReg }
  /** [base, index{, extend #amount}]; amount is 0 or log2 of the access size (checked when encoded) */
  | { mode: 'index'; base: XReg; index: GpReg; extend: IndexExtend; amount: number };

/** [base, #offset] */
export const mem = (base: XReg, offset = 0): Address => ({ mode: 'offset', base, offset });
/** [base, #offset]!  (the base is updated before the access) */
export const pre = (base: XReg, offset: number): Address => ({ mode: 'pre', base, offset });
/** [base], #offset  (the base is updated after the access) */
export const post = (base: XReg, offset: number | XReg): Address => ({ mode: 'post', base, offset });
/**
 * [base, index{, lsl #amount}]: amount is 0 or log2 of the access size (`memIndex(x1, x2, 2)` for
 * an fp32 element index). A W index is zero-extended (`uxtw`) unless `extend` says `sxtw`.
 */
export const memIndex = (base: XReg, index: GpReg, amount = 0, extend?: IndexExtend): Address => ({
  mode: 'index',
  base,
  index,
  extend: extend ?? (index.kind === 'w' ? 'uxtw' : 'lsl'),
  amount,
});

// ---------------------------------------------------------------------------------------------
// Condition codes

export const CONDITIONS = {
  eq: 0, ne: 1, hs: 2, lo: 3, mi: 4, pl: 5, vs: 6, vc: 7,
  hi: 8, ls: 9, ge: 10, lt: 11, gt: 12, le: 13, al: 14,
} as const;
export type Cond = keyof typeof CONDITIONS | 'cs' | 'cc';

export function condCode(c: Cond): number {
  if (c === 'cs') return CONDITIONS.hs;
  if (c === 'cc') return CONDITIONS.lo;
  const n = CONDITIONS[c];
  if (n === undefined) throw new A64Error(`unknown condition '${c}'`);
  return n;
}
