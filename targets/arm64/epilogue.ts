/**
 * The fused epilogue of the neon emitter (TileNode.epilogue): after a tile's body and before its
 * stores, the program's epilogue ops run on every accumulator, in order, in the vector registers
 * the tile leaves free (the lowering keeps at least NEON_EPILOGUE_SCRATCH[kind] of them: see
 * loopnest/lower.ts epilogueReserve).
 *
 * Every op works on whole `.4s` registers, on the scalar path too: there an accumulator holds its
 * value in lane 0 and zeros above (`ldr s` and the scalar ops clear the upper lanes); the other
 * lanes compute values that are never stored (FP exceptions do not trap). Partial vectors are the
 * same: lanes past `count` are never stored, and operands come with the emitter's tail loads.
 *
 * Constants are 16-byte entries (the fp32 value in all four lanes) of a pool after the code, read
 * with a PC-relative `ldr q` (zero is `movi`, values like 1.0 or 0.5 are `fmov v.4s, #imm`).
 * Constants and bias / residual operands live in a small cache over the free registers: a value
 * still in a register is not loaded again, so a tile with registers to spare loads its clamp
 * bounds, its bias vectors or relu's zero once for all its accumulators. Polynomial coefficients
 * go straight into the register that the next fused multiply-add accumulates into (Horner).
 *
 * sigmoid = 1 / (1 + exp(-x)): x clamped to [-88, 87.3] (so n below stays in [-126, 127] and 2^n
 * is a normal float), n = round(-x log2 e), s = x + n ln2 (ln2 in two parts, Cody-Waite), then
 * exp(-x) = 2^n exp(-s) with exp(-s) from Cephes' expf polynomial (degree 7) and 2^n built in the
 * exponent bits: (n << 23) + bits(1.0). Within half an ulp of max(1, sigmoid) over [-100, 100]
 * (tests/targets/arm64/epilogue.test.ts measures it; the oracle allows 16).
 *
 * gelu = x/2 (1 + erf(x / sqrt 2)) with Eigen's / XLA's float erf: z clamped to [-4, 4] (erf is
 * +-1 in fp32 beyond), erf(z) = z P(z^2) / Q(z^2), P of degree 6 and Q of degree 4 in z^2,
 * about 3e-7 absolute; gelu within 1.2 ulps of max(1, |x|). x is halved before the product, so
 * gelu(x) = x stays finite up to FLT_MAX.
 */
import type { EpilogueKind, EpilogueOp } from '../../ir/problem.ts';
import type { Operand } from '../../loopnest/program.ts';
import { fpImm8, q, v, type A64Assembler, type Label } from './encoder.ts';

/**
 * Vector registers each op needs beyond the accumulator (its constants included): one for an
 * operand or a constant; sigmoid holds n and a Horner pair (or n, the result and a constant);
 * gelu holds z, z^2 and a Horner pair.
 */
export const NEON_EPILOGUE_SCRATCH: Readonly<Record<EpilogueKind, number>> = {
  bias: 1, residual: 1, scale: 1, relu: 1, clip: 1, sigmoid: 3, gelu: 4,
};

/** The emitter's side: where code goes, how an operand is loaded, where a constant lives. */
export interface EpilogueHost {
  /** the assembler the tile is being emitted into */
  readonly a: A64Assembler;
  /** loads operand `x` into physical register `reg`: vectors with the tail loads (never past `count` lanes), broadcasts in every lane */
  loadOperand(reg: number, x: Operand): void;
  /** label of the pool entry holding the fp32 bit pattern `bits` in all four lanes */
  poolEntry(bits: number): Label;
}

const LOG2E = Math.LOG2E;
/** ln 2 = LN2_HI + LN2_LO: LN2_HI has 9 significant bits, so n * LN2_HI is exact for |n| < 2^15 */
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
/** exp(r) ~ sum EXP[k] r^k on |r| <= ln2/2 (Cephes expf: 1 + r + r^2 * P(r)) */
const EXP = [1, 1, 5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4];
/** exp(-s) ~ sum EXP_NEG[k] s^k: the odd coefficients negated */
const EXP_NEG = EXP.map((c, k) => (k % 2 === 1 ? -c : c));
/** the sigmoid's input range: -x in [-87.3, 88] keeps round(-x log2 e) in [-126, 127] */
const SIGMOID_MIN = -88;
const SIGMOID_MAX = 87.3;
/** erf(z) ~ z * P(z^2) / Q(z^2) on [-4, 4] (Eigen's generic_fast_erf_float, XLA's EmitErfF32): P's coefficients, z^0 first */
const ERF_P = [
  -1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04, -5.69250639462346e-05,
  -2.10102402082508e-06, 2.77068142495902e-08, -2.72614225801306e-10,
];
const ERF_Q = [-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04, -1.45660718464996e-05];
const ERF_CLAMP = 4;

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
/** fp32 bit pattern of x (rounded to fp32) */
export function f32Bits(x: number): number {
  F32[0] = x;
  return U32[0]!;
}
function bitsF32(bits: number): number {
  U32[0] = bits;
  return F32[0]!;
}

const V = (r: number) => v(r).s4;

/**
 * Applies one program's epilogue to the accumulators of one tile. The cache over the free
 * registers lasts for this tile: make a new writer for the next (the body between clobbers them).
 */
export class EpilogueWriter {
  /** cache key of each free register's content (null: nothing reusable) */
  private readonly key: (string | null)[];
  private readonly stamp: number[];
  private readonly pinned: boolean[];
  private clock = 0;
  /** physical registers written, for the caller (callee-saved v8-v15, relu's zero register) */
  readonly written = new Set<number>();

  /**
   * @param free physical registers the epilogue may use, preferred first
   * @param known what some of them already hold (cache keys, see constKey), e.g. relu's zero register
   */
  constructor(
    private readonly host: EpilogueHost, private readonly ops: readonly EpilogueOp[], private readonly free: readonly number[],
    known: ReadonlyMap<number, string> = new Map(),
  ) {
    const need = epilogueScratch(ops);
    if (free.length < need) {
      throw new Error(`the epilogue (${ops.map((o) => o.kind).join(', ')}) needs ${need} free vector registers, the tile leaves ${free.length}`);
    }
    this.key = free.map((r) => known.get(r) ?? null);
    this.stamp = free.map(() => 0);
    this.pinned = free.map(() => false);
  }

  /** Every op, in order, on the accumulator in physical register `acc`; `operands` per tensor-reading op (Accumulator.operands). */
  apply(acc: number, operands: readonly Operand[] | undefined): void {
    let next = 0;
    for (const op of this.ops) {
      switch (op.kind) {
        case 'bias':
        case 'residual': {
          const x = operands?.[next++];
          if (!x) throw new Error(`epilogue ${op.kind}: the accumulator has no operand for it`);
          if ((x.stride ?? 1) !== 1) throw new Error('the neon epilogue reads contiguous operands only (its caps list no vectorStrides)');
          // a broadcast fills every lane whatever the accumulator's count; a vector's lanes past count are zero
          const key = x.mode === 'broadcast' ? `t${x.tensor}:${x.offset}` : `t${x.tensor}:${x.offset}:${x.count}v`;
          const r = this.cached(key, (reg) => this.host.loadOperand(reg, x));
          this.host.a.fadd(V(acc), V(acc), V(r));
          break;
        }
        case 'scale': this.host.a.fmul(V(acc), V(acc), V(this.constant(op.value))); break;
        case 'relu': this.host.a.fmax(V(acc), V(acc), V(this.constant(0))); break;
        case 'clip':
          this.host.a.fmax(V(acc), V(acc), V(this.constant(op.min)));
          this.host.a.fmin(V(acc), V(acc), V(this.constant(op.max)));
          break;
        case 'sigmoid': this.sigmoid(acc); break;
        case 'gelu': this.gelu(acc); break;
      }
    }
  }

  private sigmoid(acc: number): void {
    const a = this.host.a;
    const x = V(acc);
    a.fmax(x, x, V(this.constant(SIGMOID_MIN)));
    a.fmin(x, x, V(this.constant(SIGMOID_MAX)));
    const n = this.temp();
    a.fmul(V(n), x, V(this.constant(-LOG2E)));
    a.frintn(V(n), V(n));
    // x becomes s = x + n ln2, and exp(-x) = 2^n exp(-s)
    a.fmla(x, V(n), V(this.constant(LN2_HI)));
    a.fmla(x, V(n), V(this.constant(LN2_LO)));
    const e = this.horner(EXP_NEG, acc);
    // 2^n in the exponent bits: (n << 23) + bits(1.0), an integer add
    a.fcvtzs(V(n), V(n));
    a.shl(V(n), V(n), 23);
    a.add(V(n), V(n), V(this.constant(1)));
    a.fmul(V(e), V(e), V(n));
    this.release(n);
    a.fadd(V(e), V(e), V(this.constant(1)));
    a.fdiv(x, V(this.constant(1)), V(e));
    this.release(e);
  }

  private gelu(acc: number): void {
    const a = this.host.a;
    const x = V(acc);
    const z = this.temp();
    a.fmul(V(z), x, V(this.constant(Math.SQRT1_2)));
    a.fmax(V(z), V(z), V(this.constant(-ERF_CLAMP)));
    a.fmin(V(z), V(z), V(this.constant(ERF_CLAMP)));
    const z2 = this.temp();
    a.fmul(V(z2), V(z), V(z));
    const p = this.horner(ERF_P, z2);
    a.fmul(V(z), V(z), V(p));
    this.release(p);
    const qq = this.horner(ERF_Q, z2);
    this.release(z2);
    a.fdiv(V(z), V(z), V(qq)); // erf
    this.release(qq);
    a.fadd(V(z), V(z), V(this.constant(1)));
    // halved first: x (1 + erf) overflows for |x| > FLT_MAX / 2, x/2 (1 + erf) does not
    a.fmul(x, x, V(this.constant(0.5)));
    a.fmul(x, x, V(z));
    this.release(z);
  }

  /**
   * sum coef[k] t^k by Horner with fused multiply-adds, t in physical register `t`: each step
   * loads the next coefficient into the register it accumulates into (two registers take turns).
   * Returns the (pinned) register holding the result.
   */
  private horner(coef: readonly number[], t: number): number {
    const a = this.host.a;
    let p = this.temp();
    let c = this.temp();
    this.load(p, f32Bits(coef[coef.length - 1]!));
    for (let k = coef.length - 2; k >= 0; k--) {
      this.load(c, f32Bits(coef[k]!));
      a.fmla(V(c), V(p), V(t));
      [p, c] = [c, p];
    }
    this.release(c);
    return p;
  }

  // ---- the register cache ------------------------------------------------------------------------

  /** A register for the op's own use until released (its old content is lost). */
  private temp(): number {
    const i = this.pick();
    this.pinned[i] = true;
    this.key[i] = null;
    this.written.add(this.free[i]!);
    return this.free[i]!;
  }

  private release(reg: number): void {
    this.pinned[this.free.indexOf(reg)] = false;
  }

  /**
   * The register holding the value named `key`, loading it with `load` on a miss. Valid only for
   * the next instruction: the next temp() or cached() may take it.
   */
  private cached(key: string, load: (reg: number) => void): number {
    let i = this.key.indexOf(key);
    if (i < 0) {
      i = this.pick();
      load(this.free[i]!);
      this.key[i] = key;
      this.written.add(this.free[i]!);
    }
    this.stamp[i] = ++this.clock;
    return this.free[i]!;
  }

  private constant(value: number): number {
    const bits = f32Bits(value);
    return this.cached(constKey(bits), (reg) => this.load(reg, bits));
  }

  /** An unpinned register: an empty one (first in preference order), else the least recently used. */
  private pick(): number {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      if (this.pinned[i]) continue;
      if (this.key[i] === null) return i;
      if (best < 0 || this.stamp[i]! < this.stamp[best]!) best = i;
    }
    if (best < 0) throw new Error('epilogue register pool exhausted (NEON_EPILOGUE_SCRATCH is too small)');
    return best;
  }

  /** reg = the fp32 `bits` in all lanes: movi for +0, fmov for its 8-bit immediates, else the pool. */
  private load(reg: number, bits: number): void {
    const a = this.host.a;
    this.written.add(reg);
    const value = bitsF32(bits);
    if (bits === 0) a.movi(v(reg).d2, 0);
    else if (fpImm8(value) !== undefined) a.fmov(V(reg), value);
    else a.ldrLit(q(reg), this.host.poolEntry(bits));
  }
}

/** The cache key of a register holding the fp32 bit pattern `bits` in every lane. */
export function constKey(bits: number): string {
  return `c${bits}`;
}

/** Free vector registers the epilogue needs (the most any of its ops needs). */
export function epilogueScratch(ops: readonly EpilogueOp[]): number {
  return Math.max(0, ...ops.map((o) => NEON_EPILOGUE_SCRATCH[o.kind]));
}
