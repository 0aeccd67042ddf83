/**
 * A64 + Advanced SIMD (NEON) encoder. Calls read like the assembly they emit:
 *
 *   const a = new A64Assembler();
 *   const loop = a.here();
 *   a.ldrQ(v(0), x(1), 32);                        // ldr  q0, [x1, #32]
 *   a.fmlaElem(v(8).s4, v(0).s4, v(4).s(1));       // fmla v8.4s, v0.4s, v4.s[1]
 *   a.subs(x(9), x(9), 1);                          // subs x9, x9, #1
 *   a.bne(loop);                                    // b.ne loop
 *   a.ret();
 *   const bytes = a.finish();                       // little-endian 32-bit words
 *
 * Every method emits exactly the instruction its name says (aliases included: `mov`, `cmp`, `mul`,
 * `lsl`), except the conveniences documented on the method (`mov` of a 64-bit constant emits a
 * movz/movn + movk sequence; `add #-n` emits `sub #n`; an `ldr` offset that only fits the unscaled
 * signed form emits `ldur`). Operands that cannot be encoded throw an `A64Error` naming the
 * instruction and the rule it broke; nothing is silently truncated.
 *
 * Encodings follow the Arm ARM (DDI 0487), section C4 "A64 instruction set encoding". Each class
 * of encodings below has one table of opcode bases and one function that fills in the fields;
 * every form is checked against `llvm-mc-14 --disassemble` in tests/targets/arm64/encoder.test.ts.
 */
import {
  A64Error, ARRANGEMENTS, ELEMENT_LOG2, FReg, VReg, VecArr, VecElem, WReg, XReg, condCode, mem,
  type Address, type Arrangement, type Cond, type ElementSize, type FpSize, type GpReg,
} from './registers.ts';

export * from './registers.ts';

// ---------------------------------------------------------------------------------------------
// Bit-field helpers

/** `value` as an unsigned field of `bits` bits; throws if it does not fit. */
function ufield(value: number, bits: number, what: () => string): number {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new A64Error(`${what()}: ${value} does not fit an unsigned ${bits}-bit field (0..${2 ** bits - 1})`);
  }
  return value;
}

/** `value` as a two's-complement field of `bits` bits; throws if it does not fit. */
function sfield(value: number, bits: number, what: () => string): number {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new A64Error(`${what()}: ${value} does not fit a signed ${bits}-bit field (${lo}..${hi})`);
  }
  return value & (2 ** bits - 1);
}

/** `offset` divided by the access size, for scaled immediates; throws if misaligned. */
function scaled(offset: number, log2: number, what: () => string): number {
  const unit = 1 << log2;
  if (!Number.isInteger(offset) || offset % unit !== 0) {
    throw new A64Error(`${what()}: offset ${offset} must be a multiple of ${unit}`);
  }
  return offset / unit;
}

/** OR the fields together as an unsigned 32-bit word. */
const word = (...parts: number[]): number => parts.reduce((acc, p) => (acc | p) >>> 0, 0);

// ---------------------------------------------------------------------------------------------
// Operand helpers

type Operand = GpReg | VReg | VecArr | VecElem | FReg | Address | number | bigint | string | Label;

function show(o: Operand): string {
  if (typeof o === 'number' || typeof o === 'bigint') return `#${o}`;
  if (typeof o === 'string') return o;
  if (o instanceof Label) return `L${o.id}`;
  if ('mode' in o) {
    const b = o.base.name;
    switch (o.mode) {
      case 'offset': return `[${b}, #${o.offset}]`;
      case 'pre': return `[${b}, #${o.offset}]!`;
      case 'post': return `[${b}], ${typeof o.offset === 'number' ? `#${o.offset}` : o.offset.name}`;
      case 'index': return `[${b}, ${o.index.name}, ${o.extend} #${o.amount}]`;
    }
  }
  return o.name;
}

function ctx(mn: string, ...ops: Operand[]): () => string {
  return () => `${mn} ${ops.map(show).join(', ')}`;
}

function fail(what: () => string, msg: string): never {
  throw new A64Error(`${what()}: ${msg}`);
}

/**
 * Encoding number of a general-purpose register in a slot where 31 means `slot`. Passing `sp`
 * where 31 means the zero register (or the reverse) throws instead of encoding the other one.
 */
function gp(r: GpReg, slot: 'sp' | 'zr', what: () => string): number {
  if (r.special !== null && r.special !== slot) {
    fail(what, `${r.name} is not allowed here (register 31 in this operand means ${slot === 'sp' ? 'sp' : 'the zero register'})`);
  }
  return r.num;
}

/** sf bit (bit 31): 1 for X registers. All registers of one integer instruction share a width. */
function sf(what: () => string, ...regs: GpReg[]): number {
  const bits = regs[0]!.bits;
  for (const r of regs) if (r.bits !== bits) fail(what, 'mixes X and W registers');
  return bits === 64 ? 1 : 0;
}

function isGp(o: unknown): o is GpReg {
  return o instanceof XReg || o instanceof WReg;
}

function toAddress(base: XReg | Address, offset: number | GpReg | undefined, lsl: number | undefined): Address {
  if (base instanceof XReg) {
    if (offset === undefined) return mem(base, 0);
    if (typeof offset === 'number') return mem(base, offset);
    return { mode: 'index', base, index: offset, extend: offset.kind === 'w' ? 'uxtw' : 'lsl', amount: lsl ?? 0 };
  }
  if (offset !== undefined) throw new A64Error(`an Address (${show(base)}) takes no extra offset argument`);
  return base;
}

function vecNum(r: VReg | FReg | VecArr): number {
  return r.num;
}

// ---------------------------------------------------------------------------------------------
// Tables, one per encoding class

/** Add/subtract (immediate, shifted register, extended register): op (bit 30) and S (bit 29). */
const ADD_SUB = {
  add: { op: 0, s: 0 },
  adds: { op: 0, s: 1 },
  sub: { op: 1, s: 0 },
  subs: { op: 1, s: 1 },
} as const;
type AddSubOp = keyof typeof ADD_SUB;
const ADD_SUB_IMM = 0x11000000;
const ADD_SUB_SHIFTED = 0x0b000000;
const ADD_SUB_EXTENDED = 0x0b200000;

/** Logical (shifted register): opc in bits 30:29. */
const LOGICAL_REG = { and: 0x0a000000, orr: 0x2a000000, eor: 0x4a000000, ands: 0x6a000000 } as const;

/** Move wide (immediate): opc in bits 30:29. */
const MOVE_WIDE = { movn: 0x12800000, movz: 0x52800000, movk: 0x72800000 } as const;

/** Data-processing (3 source): madd/msub (o0 = bit 15). */
const DP3 = { madd: 0x1b000000, msub: 0x1b008000 } as const;

/** Data-processing (2 source): variable shifts. */
const DP2 = { lsl: 0x1ac02000, lsr: 0x1ac02400, asr: 0x1ac02800, udiv: 0x1ac00800, sdiv: 0x1ac00c00 } as const;

/** Bitfield: UBFM / SBFM (the shift-by-immediate aliases). */
const BITFIELD = { ubfm: 0x53000000, sbfm: 0x13000000 } as const;

/** Unconditional branch (immediate), conditional branch, compare-and-branch, branch (register). */
const BRANCH = {
  b: 0x14000000, bl: 0x94000000, bcond: 0x54000000, cbz: 0x34000000, cbnz: 0x35000000,
  br: 0xd61f0000, blr: 0xd63f0000, ret: 0xd65f0000,
} as const;

const SYSTEM = { nop: 0xd503201f, brk: 0xd4200000, udf: 0x00000000 } as const;

/**
 * Load/store register: size (bits 31:30), V (bit 26) and opc (bits 23:22) per transfer register
 * class, plus the access size (the scale of the unsigned imm12 form).
 */
interface LsClass { size: number; v: number; ld: number; st: number; log2: number }
const LS_CLASS: Record<'x' | 'w' | FpSize, LsClass> = {
  x: { size: 3, v: 0, ld: 1, st: 0, log2: 3 },
  w: { size: 2, v: 0, ld: 1, st: 0, log2: 2 },
  b: { size: 0, v: 1, ld: 1, st: 0, log2: 0 },
  h: { size: 1, v: 1, ld: 1, st: 0, log2: 1 },
  s: { size: 2, v: 1, ld: 1, st: 0, log2: 2 },
  d: { size: 3, v: 1, ld: 1, st: 0, log2: 3 },
  q: { size: 0, v: 1, ld: 3, st: 2, log2: 4 },
};
const LS_UNSIGNED = 0x39000000; // [xn, #imm12 * size]
const LS_IMM9 = 0x38000000; //     ldur (bits 11:10 = 00), post-index (01), pre-index (11)
const LS_REGISTER = 0x38200800; // [xn, xm{, extend #amount}]
/** option field (bits 15:13) of the register-offset form, and the index width it requires. */
const LS_EXTEND = { uxtw: { option: 2, bits: 32 }, lsl: { option: 3, bits: 64 }, sxtw: { option: 6, bits: 32 }, sxtx: { option: 7, bits: 64 } } as const;

/** Load/store pair: opc (bits 31:30), V (bit 26), scale. */
const LS_PAIR_CLASS: Partial<Record<'x' | 'w' | FpSize, { opc: number; v: number; log2: number }>> = {
  w: { opc: 0, v: 0, log2: 2 },
  x: { opc: 2, v: 0, log2: 3 },
  s: { opc: 0, v: 1, log2: 2 },
  d: { opc: 1, v: 1, log2: 3 },
  q: { opc: 2, v: 1, log2: 4 },
};
const LS_PAIR = 0x28000000;
const LS_PAIR_MODE = { post: 1, offset: 2, pre: 3 } as const;

/** Prefetch operations (the Rt field of PRFM). */
export const PRF_OPS = {
  pldl1keep: 0, pldl1strm: 1, pldl2keep: 2, pldl2strm: 3, pldl3keep: 4, pldl3strm: 5,
  pstl1keep: 16, pstl1strm: 17, pstl2keep: 18, pstl2strm: 19, pstl3keep: 20, pstl3strm: 21,
} as const;
export type PrfOp = keyof typeof PRF_OPS;

/** Advanced SIMD load/store multiple structures (LD1/ST1, 1..4 registers): opcode by count. */
const LDST_MULTI = 0x0c000000;
const LDST_MULTI_OPCODE = [0, 0b0111, 0b1010, 0b0110, 0b0010] as const;
/** Advanced SIMD load/store single structure (one lane, or LD1R replicate). */
const LDST_SINGLE = 0x0d000000;
const LD1R = 0x0d40c000;
const LDST_POST = 1 << 23;

/** Advanced SIMD copy: DUP (element / general), INS (element / general), UMOV. */
const SIMD_COPY = {
  dupElem: 0x0e000400, dupGen: 0x0e000c00, insElem: 0x6e000400, insGen: 0x4e001c00, umov: 0x0e003c00,
  dupScalar: 0x5e000400,
} as const;

/** Advanced SIMD three same (FP): U (bit 29), bit 23 and opcode; sz (bit 22) picks fp64. */
const FP_VEC3 = {
  fmaxnm: 0x0e20c400, fmla: 0x0e20cc00, fadd: 0x0e20d400, fmax: 0x0e20f400,
  fminnm: 0x0ea0c400, fmls: 0x0ea0cc00, fsub: 0x0ea0d400, fmin: 0x0ea0f400,
  faddp: 0x2e20d400, fmul: 0x2e20dc00, fmaxp: 0x2e20f400, fdiv: 0x2e20fc00, fminp: 0x2ea0f400,
} as const;
type FpVec3Op = keyof typeof FP_VEC3;

/** Advanced SIMD (scalar and vector) x indexed element, FP forms. */
const FP_ELEM = { fmla: 0x0f801000, fmls: 0x0f805000, fmul: 0x0f809000 } as const;
type FpElemOp = keyof typeof FP_ELEM;
const SCALAR_ELEM = 0x50000000; // turns the vector by-element form into the scalar one

/** Floating-point data-processing (2 source), scalar: ftype (bits 23:22) picks s/d. */
const FP_SCALAR2 = {
  fmul: 0x1e200800, fdiv: 0x1e201800, fadd: 0x1e202800, fsub: 0x1e203800,
  fmax: 0x1e204800, fmin: 0x1e205800, fmaxnm: 0x1e206800, fminnm: 0x1e207800,
} as const;
type FpScalar2Op = keyof typeof FP_SCALAR2;

/** Floating-point data-processing (3 source): o1 (bit 21), o0 (bit 15). */
const FP_SCALAR3 = { fmadd: 0x1f000000, fmsub: 0x1f008000, fnmadd: 0x1f200000, fnmsub: 0x1f208000 } as const;

/** Advanced SIMD scalar pairwise (reduce the two lanes of a 2s / 2d vector). */
const FP_PAIRWISE_SCALAR = { faddp: 0x7e30d800, fmaxp: 0x7e30f800, fminp: 0x7eb0f800 } as const;

/** Advanced SIMD three same (logical, 8b / 16b only). */
const VEC_LOGIC = { and: 0x0e201c00, bic: 0x0e601c00, orr: 0x0ea01c00, orn: 0x0ee01c00, eor: 0x2e201c00 } as const;

/** Advanced SIMD modified immediate: op (bit 29) and cmode (bits 15:12) per form. */
const MOD_IMM = {
  movi32: 0x0f000400, // cmode 0xx0: imm8 << (8 * xx)
  movi16: 0x0f008400, // cmode 10x0
  movi8: 0x0f00e400, //  cmode 1110, op 0
  movi64: 0x2f00e400, // cmode 1110, op 1: each imm8 bit expands to a byte
  fmov32: 0x0f00f400, // cmode 1111, op 0
  fmov64: 0x6f00f400, // cmode 1111, op 1 (2d only)
} as const;

/** Floating-point move: register, to/from general register, immediate. */
const FMOV = { reg: 0x1e204000, fromW: 0x1e270000, toW: 0x1e260000, fromX: 0x9e670000, toX: 0x9e660000, imm: 0x1e201000 } as const;

/** Advanced SIMD two-register miscellaneous, FP forms: U (bit 29), bit 23 and opcode; sz (bit 22) picks fp64. */
const FP_VEC2 = {
  frintn: 0x0e218800, frintm: 0x0e219800, fcvtns: 0x0e21a800, scvtf: 0x0e21d800,
  fabs: 0x0ea0f800, fcvtzs: 0x0ea1b800, fneg: 0x2ea0f800,
} as const;
type FpVec2Op = keyof typeof FP_VEC2;

/** Floating-point data-processing (1 source), scalar: opcode (bits 20:15); ftype (bits 23:22) picks s/d. */
const FP_SCALAR1 = { fabs: 0x1e20c000, fneg: 0x1e214000, fsqrt: 0x1e21c000, frintn: 0x1e244000, frintm: 0x1e254000 } as const;
type FpScalar1Op = keyof typeof FP_SCALAR1;

/** Advanced SIMD three same, integer: U (bit 29) and opcode; size (bits 23:22) from the arrangement. */
const INT_VEC3 = { add: 0x0e208400, sub: 0x2e208400 } as const;

/** Advanced SIMD shift by immediate, SHL: immh:immb (bits 22:16) = element bits + shift. */
const SHL_IMM = 0x0f005400;

/** Load register (literal): opc (bits 31:30) and V (bit 26) per register class; PC-relative imm19 words. */
const LDR_LITERAL: Partial<Record<'x' | 'w' | FpSize, number>> = { w: 0x18000000, x: 0x58000000, s: 0x1c000000, d: 0x5c000000, q: 0x9c000000 };

/** ftype field of scalar FP instructions. */
function ftype(r: FReg, what: () => string): number {
  if (r.size === 's') return 0;
  if (r.size === 'd') return 1;
  return fail(what, `scalar FP operands must be s or d registers, got ${r.name}`);
}

/** Q (bit 30) and sz (bit 22) of an FP vector arrangement. */
function fpArr(arr: Arrangement, what: () => string): { q: number; sz: number } {
  if (arr === '2s') return { q: 0, sz: 0 };
  if (arr === '4s') return { q: 1, sz: 0 };
  if (arr === '2d') return { q: 1, sz: 1 };
  return fail(what, `floating-point vectors must be 2s, 4s or 2d, got .${arr}`);
}

/** imm5 of the SIMD copy instructions: element size as the lowest set bit, index above it. */
function imm5(esize: ElementSize, index: number): number {
  const l = ELEMENT_LOG2[esize];
  return ((index << (l + 1)) | (1 << l)) & 0x1f;
}

/**
 * The 8-bit FP immediate of FMOV: ±(16 + m)/16 × 2^e with m in 0..15 and e in -3..4
 * (VFPExpandImm). Returns undefined for values it cannot represent (0.0 among them).
 */
export function fpImm8(value: number): number | undefined {
  for (let imm = 0; imm < 256; imm++) {
    const sign = imm & 0x80 ? -1 : 1;
    const bBit = (imm >> 6) & 1;
    const cd = (imm >> 4) & 3;
    const frac = imm & 15;
    const exp = bBit ? cd - 3 : cd + 1;
    if (sign * (1 + frac / 16) * 2 ** exp === value) return imm;
  }
  return undefined;
}

/** Split a modified immediate's imm8 into abc (bits 18:16) and defgh (bits 9:5). */
const abcdefgh = (imm8: number): number => (((imm8 >> 5) & 7) << 16) | ((imm8 & 31) << 5);

// ---------------------------------------------------------------------------------------------
// Labels

export class Label {
  /** byte offset once bound; -1 before. */
  offset = -1;
  constructor(readonly id: number) {}
}

type FixupKind = 'imm26' | 'imm19';
interface Fixup { at: number; label: Label; kind: FixupKind; what: () => string }

// ---------------------------------------------------------------------------------------------
// The assembler

export class A64Assembler {
  private readonly words: number[] = [];
  private readonly fixups: Fixup[] = [];
  private labelCount = 0;

  /** bytes emitted so far (the offset of the next instruction). */
  get offset(): number {
    return this.words.length * 4;
  }

  /** Emit a raw 32-bit instruction word. */
  inst(w: number): this {
    if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new A64Error(`inst: ${w} is not a 32-bit word`);
    this.words.push(w >>> 0);
    return this;
  }

  // ----- labels -----

  newLabel(): Label {
    return new Label(this.labelCount++);
  }

  /** Bind `label` to the current offset. */
  bind(label: Label): this {
    if (label.offset >= 0) throw new A64Error(`label L${label.id} is already bound (at ${label.offset})`);
    label.offset = this.offset;
    return this;
  }

  /** A new label bound here (for backward branches: `const top = a.here(); ... a.bne(top)`). */
  here(): Label {
    const l = this.newLabel();
    this.bind(l);
    return l;
  }

  /** Pad with nops to a multiple of `bytes` (loop heads). */
  align(bytes: number): this {
    if (!Number.isInteger(bytes) || bytes < 4 || (bytes & (bytes - 1)) !== 0) throw new A64Error(`align: ${bytes} must be a power of two >= 4`);
    while (this.offset % bytes !== 0) this.nop();
    return this;
  }

  private branchTo(base: number, label: Label, kind: FixupKind, what: () => string): this {
    this.fixups.push({ at: this.words.length, label, kind, what });
    return this.inst(base);
  }

  /** Resolve label fixups and return the code as little-endian bytes. */
  finish(): Uint8Array {
    const out = this.words.slice();
    for (const f of this.fixups) {
      if (f.label.offset < 0) throw new A64Error(`${f.what()}: label L${f.label.id} was never bound`);
      const delta = (f.label.offset - f.at * 4) / 4;
      if (f.kind === 'imm26') out[f.at] = word(out[f.at]!, sfield(delta, 26, f.what));
      else out[f.at] = word(out[f.at]!, sfield(delta, 19, f.what) << 5);
    }
    const bytes = new Uint8Array(out.length * 4);
    const view = new DataView(bytes.buffer);
    out.forEach((w, i) => view.setUint32(i * 4, w, true));
    return bytes;
  }

  // ----- integer arithmetic -----

  /**
   * add/adds/sub/subs. `op2` is an immediate (0..4095, or a multiple of 4096 up to 4095 << 12,
   * or `lsl` = 12 given explicitly; a negative immediate flips add <-> sub, as assemblers do,
   * which keeps eq/ne/signed conditions but not the carry flag) or a register shifted left by `lsl`.
   * When rd or rn is sp the extended-register form is used (the shifted form has no sp).
   */
  private addSub(op: AddSubOp, rd: GpReg, rn: GpReg, op2: number | GpReg, lsl: number): this {
    const what = ctx(op, rd, rn, op2, ...(lsl ? [`lsl #${lsl}`] : []));
    let { op: o, s } = ADD_SUB[op];
    if (typeof op2 === 'number') {
      const sfb = sf(what, rd, rn);
      let imm = op2;
      if (!Number.isInteger(imm)) fail(what, 'immediate must be an integer');
      if (imm < 0) { o ^= 1; imm = -imm; }
      let sh = 0;
      if (lsl === 12) { sh = 1; }
      else if (lsl !== 0) fail(what, 'immediate shift must be lsl #0 or lsl #12');
      else if (imm >= 4096 && imm % 4096 === 0 && imm / 4096 < 4096) { sh = 1; imm /= 4096; }
      if (imm >= 4096) fail(what, `immediate ${op2} is not encodable: use 0..4095, or a multiple of 4096 up to ${4095 * 4096} (materialize larger values with mov)`);
      return this.inst(word(sfb << 31, o << 30, s << 29, ADD_SUB_IMM, sh << 22, imm << 10,
        gp(rn, 'sp', what) << 5, gp(rd, s ? 'zr' : 'sp', what)));
    }
    const sfb = sf(what, rd, rn, op2);
    if (rd.special === 'sp' || rn.special === 'sp') {
      // extended register, option UXTX (64-bit) / UXTW (32-bit): the assembler's "lsl" with sp
      if (lsl > 4 || lsl < 0) fail(what, 'with sp, the register operand can be shifted by 0..4 only');
      return this.inst(word(sfb << 31, o << 30, s << 29, ADD_SUB_EXTENDED, gp(op2, 'zr', what) << 16,
        (sfb ? 3 : 2) << 13, lsl << 10, gp(rn, 'sp', what) << 5, gp(rd, s ? 'zr' : 'sp', what)));
    }
    return this.inst(word(sfb << 31, o << 30, s << 29, ADD_SUB_SHIFTED, gp(op2, 'zr', what) << 16,
      ufield(lsl, sfb ? 6 : 5, what) << 10, gp(rn, 'zr', what) << 5, gp(rd, 'zr', what)));
  }

  /** add: general-purpose (immediate or register) or integer vector (`add v0.4s, v1.4s, v2.4s`). */
  add(vd: VecArr, vn: VecArr, vm: VecArr): this;
  add(rd: GpReg, rn: GpReg, op2: number | GpReg, lsl?: number): this;
  add(rd: GpReg | VecArr, rn: GpReg | VecArr, op2: number | GpReg | VecArr, lsl = 0): this {
    if (rd instanceof VecArr || rn instanceof VecArr || op2 instanceof VecArr) return this.intVec3('add', rd, rn, op2);
    return this.addSub('add', rd, rn, op2, lsl);
  }
  adds(rd: GpReg, rn: GpReg, op2: number | GpReg, lsl = 0): this { return this.addSub('adds', rd, rn, op2, lsl); }
  sub(vd: VecArr, vn: VecArr, vm: VecArr): this;
  sub(rd: GpReg, rn: GpReg, op2: number | GpReg, lsl?: number): this;
  sub(rd: GpReg | VecArr, rn: GpReg | VecArr, op2: number | GpReg | VecArr, lsl = 0): this {
    if (rd instanceof VecArr || rn instanceof VecArr || op2 instanceof VecArr) return this.intVec3('sub', rd, rn, op2);
    return this.addSub('sub', rd, rn, op2, lsl);
  }

  /** add/sub on integer vector lanes (b, h, s or d elements; not .1d). */
  private intVec3(op: keyof typeof INT_VEC3, vd: GpReg | VecArr, vn: GpReg | VecArr, vm: number | GpReg | VecArr): this {
    const what = ctx(op, vd, vn, vm);
    if (!(vd instanceof VecArr && vn instanceof VecArr && vm instanceof VecArr)) return fail(what, 'mixes vector and general-purpose operands');
    if (vn.arr !== vd.arr || vm.arr !== vd.arr) fail(what, 'arrangements differ');
    if (vd.arr === '1d') fail(what, '.1d is not a vector arrangement of this instruction (use 2d)');
    const info = vd.info;
    return this.inst(word(INT_VEC3[op], info.q << 30, ELEMENT_LOG2[info.esize] << 22, vm.num << 16, vn.num << 5, vd.num));
  }

  /** shl vd.T, vn.T, #shift: each lane shifted left, shift 0..element bits - 1 (not .1d). */
  shl(vd: VecArr, vn: VecArr, shift: number): this {
    const what = ctx('shl', vd, vn, shift);
    if (vn.arr !== vd.arr) fail(what, 'arrangements differ');
    if (vd.arr === '1d') fail(what, '.1d is not a vector arrangement of this instruction (use 2d)');
    const bits = 8 << ELEMENT_LOG2[vd.info.esize];
    ufield(shift, Math.log2(bits), what);
    return this.inst(word(SHL_IMM, vd.info.q << 30, (bits + shift) << 16, vn.num << 5, vd.num));
  }
  subs(rd: GpReg, rn: GpReg, op2: number | GpReg, lsl = 0): this { return this.addSub('subs', rd, rn, op2, lsl); }
  /** cmp rn, op2 = subs zr, rn, op2 */
  cmp(rn: GpReg, op2: number | GpReg, lsl = 0): this { return this.subs(zrOf(rn), rn, op2, lsl); }
  /** cmn rn, op2 = adds zr, rn, op2 */
  cmn(rn: GpReg, op2: number | GpReg, lsl = 0): this { return this.adds(zrOf(rn), rn, op2, lsl); }

  private logicalReg(op: keyof typeof LOGICAL_REG, rd: GpReg, rn: GpReg, rm: GpReg, lsl: number): this {
    const what = ctx(op, rd, rn, rm);
    const sfb = sf(what, rd, rn, rm);
    return this.inst(word(sfb << 31, LOGICAL_REG[op], gp(rm, 'zr', what) << 16, ufield(lsl, sfb ? 6 : 5, what) << 10,
      gp(rn, 'zr', what) << 5, gp(rd, 'zr', what)));
  }

  // ----- moves -----

  /** mov between general-purpose registers, or of any 64-bit / 32-bit constant. */
  mov(rd: GpReg, src: GpReg | number | bigint): this;
  /** mov vd.16b, vn.16b (orr) */
  mov(vd: VecArr, vn: VecArr): this;
  /** mov vd.s[i], vn.s[j] / mov vd.s[i], wn (ins) */
  mov(vd: VecElem, src: VecElem | GpReg): this;
  /** mov wd, vn.s[i] (umov) */
  mov(rd: GpReg, src: VecElem): this;
  /** mov sd, vn.s[i] (dup, scalar) */
  mov(fd: FReg, src: VecElem): this;
  mov(dst: GpReg | VecArr | VecElem | FReg, src: GpReg | VecArr | VecElem | number | bigint): this {
    if (isGp(dst)) {
      if (typeof src === 'number' || typeof src === 'bigint') return this.movImm(dst, src);
      if (src instanceof VecElem) return this.umov(dst, src);
      if (!isGp(src)) throw new A64Error(`mov ${dst.name}, ${show(src)}: unsupported operands`);
      const what = ctx('mov', dst, src);
      const sfb = sf(what, dst, src);
      // mov to/from sp is `add rd, rn, #0`; otherwise `orr rd, zr, rm`
      if (dst.special === 'sp' || src.special === 'sp') return this.add(dst, src, 0);
      return this.inst(word(sfb << 31, LOGICAL_REG.orr, gp(src, 'zr', what) << 16, 31 << 5, gp(dst, 'zr', what)));
    }
    if (dst instanceof VecArr && src instanceof VecArr) return this.orr(dst, src, src);
    if (dst instanceof VecElem && (src instanceof VecElem || isGp(src))) return this.ins(dst, src);
    if (dst instanceof FReg && src instanceof VecElem) {
      const what = ctx('mov', dst, src);
      if (dst.size !== src.esize) fail(what, 'scalar and element sizes differ');
      return this.inst(word(SIMD_COPY.dupScalar, imm5(src.esize, src.index) << 16, src.num << 5, dst.num));
    }
    throw new A64Error(`mov ${show(dst)}, ${show(src as Operand)}: unsupported operands`);
  }

  /**
   * Materialize a constant with movz (or movn when most halfwords are 0xffff) plus one movk per
   * remaining halfword: 1..4 instructions. Numbers may be negative (two's complement); use a
   * bigint for values beyond 2^53.
   */
  movImm(rd: GpReg, value: number | bigint): this {
    const what = ctx('mov', rd, value);
    if (typeof value === 'number' && !Number.isSafeInteger(value)) fail(what, 'not a safe integer: pass a bigint');
    const bits = rd.bits;
    const big = BigInt(value);
    if (big >= 1n << BigInt(bits) || big < -(1n << BigInt(bits - 1))) fail(what, `does not fit ${bits} bits`);
    const u = BigInt.asUintN(bits, big);
    const halves: number[] = [];
    for (let i = 0; i < bits / 16; i++) halves.push(Number((u >> BigInt(16 * i)) & 0xffffn));
    const zeros = halves.filter((hw) => hw === 0).length;
    const ones = halves.filter((hw) => hw === 0xffff).length;
    const inverted = ones > zeros;
    const fillHw = inverted ? 0xffff : 0;
    let first = halves.findIndex((hw) => hw !== fillHw);
    if (first < 0) first = 0;
    if (inverted) this.movn(rd, ~halves[first]! & 0xffff, 16 * first);
    else this.movz(rd, halves[first]!, 16 * first);
    halves.forEach((hw, i) => {
      if (i !== first && hw !== fillHw) this.movk(rd, hw, 16 * i);
    });
    return this;
  }

  private moveWide(op: keyof typeof MOVE_WIDE, rd: GpReg, imm16: number, shift: number): this {
    const what = ctx(op, rd, imm16, `lsl #${shift}`);
    if (shift % 16 !== 0 || shift < 0 || shift >= rd.bits) fail(what, `shift must be 0, 16${rd.bits === 64 ? ', 32 or 48' : ''}`);
    return this.inst(word(rd.bits === 64 ? 1 << 31 : 0, MOVE_WIDE[op], (shift / 16) << 21,
      ufield(imm16, 16, what) << 5, gp(rd, 'zr', what)));
  }
  movz(rd: GpReg, imm16: number, shift = 0): this { return this.moveWide('movz', rd, imm16, shift); }
  movk(rd: GpReg, imm16: number, shift = 0): this { return this.moveWide('movk', rd, imm16, shift); }
  movn(rd: GpReg, imm16: number, shift = 0): this { return this.moveWide('movn', rd, imm16, shift); }

  // ----- multiply, shifts, logical, select -----

  madd(rd: GpReg, rn: GpReg, rm: GpReg, ra: GpReg): this { return this.dp3('madd', rd, rn, rm, ra); }
  msub(rd: GpReg, rn: GpReg, rm: GpReg, ra: GpReg): this { return this.dp3('msub', rd, rn, rm, ra); }
  /** mul rd, rn, rm = madd rd, rn, rm, zr */
  mul(rd: GpReg, rn: GpReg, rm: GpReg): this { return this.madd(rd, rn, rm, zrOf(rd)); }
  private dp3(op: keyof typeof DP3, rd: GpReg, rn: GpReg, rm: GpReg, ra: GpReg): this {
    const what = ctx(op, rd, rn, rm, ra);
    return this.inst(word(sf(what, rd, rn, rm, ra) << 31, DP3[op], gp(rm, 'zr', what) << 16, gp(ra, 'zr', what) << 10,
      gp(rn, 'zr', what) << 5, gp(rd, 'zr', what)));
  }

  udiv(rd: GpReg, rn: GpReg, rm: GpReg): this { return this.dp2('udiv', rd, rn, rm); }
  sdiv(rd: GpReg, rn: GpReg, rm: GpReg): this { return this.dp2('sdiv', rd, rn, rm); }
  private dp2(op: keyof typeof DP2, rd: GpReg, rn: GpReg, rm: GpReg): this {
    const what = ctx(op, rd, rn, rm);
    return this.inst(word(sf(what, rd, rn, rm) << 31, DP2[op], gp(rm, 'zr', what) << 16, gp(rn, 'zr', what) << 5, gp(rd, 'zr', what)));
  }

  /** lsl by an immediate (ubfm) or by a register (lslv). */
  lsl(rd: GpReg, rn: GpReg, amount: number | GpReg): this {
    if (typeof amount !== 'number') return this.dp2('lsl', rd, rn, amount);
    const bits = rd.bits;
    const what = ctx('lsl', rd, rn, amount);
    ufield(amount, bits === 64 ? 6 : 5, what);
    return this.bitfield('ubfm', rd, rn, (bits - amount) % bits, bits - 1 - amount, what);
  }
  lsr(rd: GpReg, rn: GpReg, amount: number | GpReg): this {
    if (typeof amount !== 'number') return this.dp2('lsr', rd, rn, amount);
    const what = ctx('lsr', rd, rn, amount);
    return this.bitfield('ubfm', rd, rn, ufield(amount, rd.bits === 64 ? 6 : 5, what), rd.bits - 1, what);
  }
  asr(rd: GpReg, rn: GpReg, amount: number | GpReg): this {
    if (typeof amount !== 'number') return this.dp2('asr', rd, rn, amount);
    const what = ctx('asr', rd, rn, amount);
    return this.bitfield('sbfm', rd, rn, ufield(amount, rd.bits === 64 ? 6 : 5, what), rd.bits - 1, what);
  }
  private bitfield(op: keyof typeof BITFIELD, rd: GpReg, rn: GpReg, immr: number, imms: number, what: () => string): this {
    const sfb = sf(what, rd, rn);
    return this.inst(word(sfb << 31, BITFIELD[op], sfb << 22, immr << 16, imms << 10, gp(rn, 'zr', what) << 5, gp(rd, 'zr', what)));
  }

  /** csel rd, rn, rm, cond */
  csel(rd: GpReg, rn: GpReg, rm: GpReg, cond: Cond): this {
    const what = ctx('csel', rd, rn, rm, cond);
    return this.inst(word(sf(what, rd, rn, rm) << 31, 0x1a800000, gp(rm, 'zr', what) << 16, condCode(cond) << 12,
      gp(rn, 'zr', what) << 5, gp(rd, 'zr', what)));
  }

  // ----- branches -----

  b(label: Label): this { return this.branchTo(BRANCH.b, label, 'imm26', ctx('b', label)); }
  bl(label: Label): this { return this.branchTo(BRANCH.bl, label, 'imm26', ctx('bl', label)); }
  /** b.cond label */
  bcond(cond: Cond, label: Label): this {
    return this.branchTo(word(BRANCH.bcond, condCode(cond)), label, 'imm19', ctx(`b.${cond}`, label));
  }
  beq(l: Label): this { return this.bcond('eq', l); }
  bne(l: Label): this { return this.bcond('ne', l); }
  bhs(l: Label): this { return this.bcond('hs', l); }
  blo(l: Label): this { return this.bcond('lo', l); }
  bmi(l: Label): this { return this.bcond('mi', l); }
  bpl(l: Label): this { return this.bcond('pl', l); }
  bhi(l: Label): this { return this.bcond('hi', l); }
  bls(l: Label): this { return this.bcond('ls', l); }
  bge(l: Label): this { return this.bcond('ge', l); }
  blt(l: Label): this { return this.bcond('lt', l); }
  bgt(l: Label): this { return this.bcond('gt', l); }
  ble(l: Label): this { return this.bcond('le', l); }
  cbz(rt: GpReg, label: Label): this {
    const what = ctx('cbz', rt, label);
    return this.branchTo(word(rt.bits === 64 ? 1 << 31 : 0, BRANCH.cbz, gp(rt, 'zr', what)), label, 'imm19', what);
  }
  cbnz(rt: GpReg, label: Label): this {
    const what = ctx('cbnz', rt, label);
    return this.branchTo(word(rt.bits === 64 ? 1 << 31 : 0, BRANCH.cbnz, gp(rt, 'zr', what)), label, 'imm19', what);
  }
  ret(rn: XReg = new XReg(30, null)): this { return this.branchReg('ret', rn); }
  br(rn: XReg): this { return this.branchReg('br', rn); }
  blr(rn: XReg): this { return this.branchReg('blr', rn); }
  private branchReg(op: 'ret' | 'br' | 'blr', rn: XReg): this {
    const what = ctx(op, rn);
    if (!(rn instanceof XReg)) fail(what, 'needs an X register');
    return this.inst(word(BRANCH[op], gp(rn, 'zr', what) << 5));
  }

  nop(): this { return this.inst(SYSTEM.nop); }
  /** brk #imm16: raises SIGTRAP. */
  brk(imm16 = 0): this { return this.inst(word(SYSTEM.brk, ufield(imm16, 16, ctx('brk', imm16)) << 5)); }
  /** udf #imm16: permanently undefined (SIGILL). */
  udf(imm16 = 0): this { return this.inst(word(SYSTEM.udf, ufield(imm16, 16, ctx('udf', imm16)))); }

  // ----- loads and stores (single register) -----

  /**
   * ldr rt, label: PC-relative load (literal) of a W, X, S, D or Q register from within ±1 MiB
   * (constants in a pool after the code). The label must be 4-byte aligned, as every offset is.
   */
  ldrLit(rt: GpReg | FReg, label: Label): this {
    const what = ctx('ldr', rt, label);
    const base = LDR_LITERAL[rt instanceof FReg ? rt.size : rt.kind] ?? fail(what, `no literal load of ${rt.name}`);
    const num = rt instanceof FReg ? rt.num : gp(rt, 'zr', what);
    return this.branchTo(word(base, num), label, 'imm19', what);
  }

  /**
   * ldr/str of X, W or a scalar FP register (b/h/s/d/q). Addressing:
   *   ldr(rt, x1)            [x1]
   *   ldr(rt, x1, 32)        [x1, #32]  unsigned offset scaled by the access size; an offset that
   *                          only fits -256..255 unscaled emits ldur/stur
   *   ldr(rt, x1, x2, 3)     [x1, x2, lsl #3]  (amount 0 or log2 of the access size)
   *   ldr(rt, pre(x1, 16))   [x1, #16]!        ldr(rt, post(x1, 16))   [x1], #16
   *   ldr(rt, memIndex(x1, w2, 2, 'sxtw'))     [x1, w2, sxtw #2]
   */
  ldr(rt: GpReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this {
    return this.loadStore(true, rt, toAddress(base, offset, lsl));
  }
  str(rt: GpReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this {
    return this.loadStore(false, rt, toAddress(base, offset, lsl));
  }
  /** ldr sN (32-bit float) */
  ldrS(vt: VReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this { return this.ldr(new FReg(vecNum(vt), 's'), base, offset, lsl); }
  strS(vt: VReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this { return this.str(new FReg(vecNum(vt), 's'), base, offset, lsl); }
  /** ldr dN (64 bits) */
  ldrD(vt: VReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this { return this.ldr(new FReg(vecNum(vt), 'd'), base, offset, lsl); }
  strD(vt: VReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this { return this.str(new FReg(vecNum(vt), 'd'), base, offset, lsl); }
  /** ldr qN (128 bits) */
  ldrQ(vt: VReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this { return this.ldr(new FReg(vecNum(vt), 'q'), base, offset, lsl); }
  strQ(vt: VReg | FReg, base: XReg | Address, offset?: number | GpReg, lsl?: number): this { return this.str(new FReg(vecNum(vt), 'q'), base, offset, lsl); }

  private loadStore(load: boolean, rt: GpReg | FReg, addr: Address): this {
    const mn = load ? 'ldr' : 'str';
    const what = ctx(mn, rt, addr);
    const cls = LS_CLASS[rt instanceof FReg ? rt.size : rt.kind];
    const opc = load ? cls.ld : cls.st;
    const head = word(cls.size << 30, cls.v << 26, opc << 22);
    const rtNum = rt instanceof FReg ? rt.num : gp(rt, 'zr', what);
    const rn = gp(addr.base, 'sp', what) << 5;
    if ((addr.mode === 'pre' || addr.mode === 'post') && isGp(rt) && rt.num === addr.base.num && rt.special === null) {
      fail(what, 'writeback with the transfer register as base is unpredictable');
    }
    switch (addr.mode) {
      case 'offset': {
        const unit = 1 << cls.log2;
        if (Number.isInteger(addr.offset) && addr.offset >= 0 && addr.offset % unit === 0 && addr.offset / unit < 4096) {
          return this.inst(word(head, LS_UNSIGNED, (addr.offset / unit) << 10, rn, rtNum));
        }
        if (Number.isInteger(addr.offset) && addr.offset >= -256 && addr.offset < 256) {
          return this.inst(word(head, LS_IMM9, sfield(addr.offset, 9, what) << 12, rn, rtNum)); // ldur/stur
        }
        return fail(what, `offset ${addr.offset} is not encodable: use a multiple of ${unit} in 0..${4095 * unit}, or -256..255`);
      }
      case 'pre':
      case 'post': {
        if (typeof addr.offset !== 'number') return fail(what, 'register post-index exists only for NEON ld1/st1');
        return this.inst(word(head, LS_IMM9, sfield(addr.offset, 9, what) << 12, (addr.mode === 'pre' ? 3 : 1) << 10, rn, rtNum));
      }
      case 'index': {
        const ext = LS_EXTEND[addr.extend];
        if (addr.index.bits !== ext.bits) fail(what, `${addr.extend} needs a ${ext.bits === 64 ? 'X' : 'W'} index register`);
        if (addr.amount !== 0 && addr.amount !== cls.log2) fail(what, `index shift must be 0 or ${cls.log2}`);
        const sBit = addr.amount !== 0 ? 1 : 0; // S = 1: index scaled by the access size
        return this.inst(word(head, LS_REGISTER, gp(addr.index, 'zr', what) << 16, ext.option << 13, sBit << 12, rn, rtNum));
      }
    }
  }

  /** ldp/stp of X, W, S, D or Q registers: [xn, #imm7*size], pre-index or post-index. */
  ldp(rt1: GpReg | FReg, rt2: GpReg | FReg, base: XReg | Address, offset?: number): this {
    return this.pair(true, rt1, rt2, toAddress(base, offset, undefined));
  }
  stp(rt1: GpReg | FReg, rt2: GpReg | FReg, base: XReg | Address, offset?: number): this {
    return this.pair(false, rt1, rt2, toAddress(base, offset, undefined));
  }
  /** ldp/stp qN, qM (whole vector registers) */
  ldpQ(vt1: VReg | FReg, vt2: VReg | FReg, base: XReg | Address, offset?: number): this {
    return this.ldp(new FReg(vt1.num, 'q'), new FReg(vt2.num, 'q'), base, offset);
  }
  stpQ(vt1: VReg | FReg, vt2: VReg | FReg, base: XReg | Address, offset?: number): this {
    return this.stp(new FReg(vt1.num, 'q'), new FReg(vt2.num, 'q'), base, offset);
  }

  private pair(load: boolean, rt1: GpReg | FReg, rt2: GpReg | FReg, addr: Address): this {
    const what = ctx(load ? 'ldp' : 'stp', rt1, rt2, addr);
    const k1 = rt1 instanceof FReg ? rt1.size : rt1.kind;
    const k2 = rt2 instanceof FReg ? rt2.size : rt2.kind;
    if (k1 !== k2) fail(what, 'both registers must be of the same kind');
    const cls = LS_PAIR_CLASS[k1] ?? fail(what, `no pair form for ${k1} registers`);
    if (addr.mode === 'index') fail(what, 'pairs have no register-offset form');
    if (typeof addr.offset !== 'number') fail(what, 'pairs have no register post-index');
    const n1 = rt1 instanceof FReg ? rt1.num : gp(rt1, 'zr', what);
    const n2 = rt2 instanceof FReg ? rt2.num : gp(rt2, 'zr', what);
    if (load && n1 === n2) fail(what, 'loading both halves into one register is unpredictable');
    if (addr.mode !== 'offset' && !(rt1 instanceof FReg) && (n1 === addr.base.num || n2 === addr.base.num) && addr.base.special === null) {
      fail(what, 'writeback with a transfer register as base is unpredictable');
    }
    const imm7 = sfield(scaled(addr.offset, cls.log2, what), 7, what);
    return this.inst(word(cls.opc << 30, LS_PAIR, cls.v << 26, LS_PAIR_MODE[addr.mode] << 23, (load ? 1 : 0) << 22,
      imm7 << 15, n2 << 10, gp(addr.base, 'sp', what) << 5, n1));
  }

  /** prfm <op>, [xn, #imm] (scaled by 8, or unscaled -256..255) or [xn, xm{, lsl #3}] */
  prfm(op: PrfOp, base: XReg | Address, offset?: number | GpReg, lsl?: number): this {
    const addr = toAddress(base, offset, lsl);
    const what = ctx('prfm', op, addr);
    const rn = gp(addr.base, 'sp', what) << 5;
    const rt = PRF_OPS[op] ?? fail(what, `unknown prefetch operation ${op}`);
    if (addr.mode === 'offset') {
      if (addr.offset >= 0 && addr.offset % 8 === 0 && addr.offset / 8 < 4096) return this.inst(word(0xf9800000, (addr.offset / 8) << 10, rn, rt));
      if (Number.isInteger(addr.offset) && addr.offset >= -256 && addr.offset < 256) return this.inst(word(0xf8800000, sfield(addr.offset, 9, what) << 12, rn, rt));
      return fail(what, `offset ${addr.offset} is not encodable: use a multiple of 8 in 0..32760, or -256..255`);
    }
    if (addr.mode === 'index') {
      const ext = LS_EXTEND[addr.extend];
      if (addr.index.bits !== ext.bits) fail(what, `${addr.extend} needs a ${ext.bits === 64 ? 'X' : 'W'} index register`);
      if (addr.amount !== 0 && addr.amount !== 3) fail(what, 'index shift must be 0 or 3');
      return this.inst(word(0xf8a00800, gp(addr.index, 'zr', what) << 16, ext.option << 13, (addr.amount ? 1 : 0) << 12, rn, rt));
    }
    return fail(what, 'prefetch has no writeback forms');
  }

  // ----- NEON structure loads and stores -----

  /**
   * ld1 {vt.T, ...}, [xn] with 1..4 consecutive registers; post-index by the transfer size
   * (`post(x1, 16)`) or by a register (`post(x1, x2)`). With an element (`v(0).s(1)`) it is the
   * single-lane form, which touches only that element's bytes (for tails).
   */
  ld1(regs: VecArr | VecArr[] | VecElem, base: XReg | Address): this { return this.structure(true, regs, base); }
  st1(regs: VecArr | VecArr[] | VecElem, base: XReg | Address): this { return this.structure(false, regs, base); }

  /** ld1r {vt.T}, [xn]: load one element and replicate it to all lanes (post-index by its size). */
  ld1r(vt: VecArr, base: XReg | Address): this {
    const addr = base instanceof XReg ? mem(base) : base;
    const what = ctx('ld1r', `{${vt.name}}`, addr);
    const info = vt.info;
    const size = ELEMENT_LOG2[info.esize];
    return this.inst(word(LD1R, info.q << 30, size << 10, this.structAddr(addr, 1 << size, what), vt.num));
  }

  private structure(load: boolean, regs: VecArr | VecArr[] | VecElem, base: XReg | Address): this {
    const addr = base instanceof XReg ? mem(base) : base;
    const mn = load ? 'ld1' : 'st1';
    if (regs instanceof VecElem) {
      const what = ctx(mn, `{${regs.name}}`, addr);
      const i = regs.index;
      // index bits spread over Q:S:size, by element size (C4.1.x "load/store single structure")
      const f: Record<ElementSize, { opcode: number; q: number; s: number; size: number }> = {
        b: { opcode: 0, q: i >> 3, s: (i >> 2) & 1, size: i & 3 },
        h: { opcode: 2, q: i >> 2, s: (i >> 1) & 1, size: (i & 1) << 1 },
        s: { opcode: 4, q: i >> 1, s: i & 1, size: 0 },
        d: { opcode: 4, q: i, s: 0, size: 1 },
      };
      const e = f[regs.esize];
      return this.inst(word(LDST_SINGLE, e.q << 30, (load ? 1 : 0) << 22, e.opcode << 13, e.s << 12, e.size << 10,
        this.structAddr(addr, 1 << ELEMENT_LOG2[regs.esize], what), regs.num));
    }
    const list = Array.isArray(regs) ? regs : [regs];
    const what = ctx(mn, `{${list.map((r) => r.name).join(', ')}}`, addr);
    if (list.length < 1 || list.length > 4) fail(what, 'takes 1..4 registers');
    const first = list[0]!;
    list.forEach((r, k) => {
      if (r.arr !== first.arr) fail(what, 'all registers need the same arrangement');
      if (r.num !== (first.num + k) % 32) fail(what, 'registers must be consecutive');
    });
    const info = first.info;
    const bytes = list.length * (info.q ? 16 : 8);
    return this.inst(word(LDST_MULTI, info.q << 30, (load ? 1 : 0) << 22, LDST_MULTI_OPCODE[list.length]! << 12,
      ELEMENT_LOG2[info.esize] << 10, this.structAddr(addr, bytes, what), first.num));
  }

  /** Rn, and for post-index the P bit plus Rm (31 = "by the transfer size"). */
  private structAddr(addr: Address, bytes: number, what: () => string): number {
    const rn = gp(addr.base, 'sp', what) << 5;
    if (addr.mode === 'offset') {
      if (addr.offset !== 0) fail(what, 'NEON structure loads/stores take no offset: use [xn] or post-index');
      return rn;
    }
    if (addr.mode !== 'post') return fail(what, 'only [xn] and post-index are available');
    if (typeof addr.offset === 'number') {
      if (addr.offset !== bytes) fail(what, `immediate post-index must equal the transfer size (${bytes})`);
      return word(LDST_POST, 31 << 16, rn);
    }
    if (addr.offset.special !== null) fail(what, `${addr.offset.name} cannot be the post-index register (31 means the immediate form)`);
    return word(LDST_POST, addr.offset.num << 16, rn);
  }

  // ----- NEON copies -----

  /** dup vd.T, vn.E[i]  |  dup vd.T, wn/xn  |  dup (scalar) sd, vn.s[i] */
  dup(vd: VecArr | FReg, src: VecElem | GpReg): this {
    const what = ctx('dup', vd, src);
    if (vd instanceof FReg) {
      if (!(src instanceof VecElem)) return fail(what, 'scalar dup needs an element source');
      return this.mov(vd, src);
    }
    const info = vd.info;
    if (vd.arr === '1d') fail(what, '.1d is not a dup arrangement');
    if (src instanceof VecElem) {
      if (src.esize !== info.esize) fail(what, 'element size differs from the arrangement');
      return this.inst(word(SIMD_COPY.dupElem, info.q << 30, imm5(src.esize, src.index) << 16, src.num << 5, vd.num));
    }
    const wantBits = info.esize === 'd' ? 64 : 32;
    if (src.bits !== wantBits) fail(what, `needs a ${wantBits === 64 ? 'X' : 'W'} source register`);
    return this.inst(word(SIMD_COPY.dupGen, info.q << 30, imm5(info.esize, 0) << 16, gp(src, 'zr', what) << 5, vd.num));
  }

  /** ins vd.E[i], vn.E[j]  |  ins vd.E[i], wn/xn */
  ins(vd: VecElem, src: VecElem | GpReg): this {
    const what = ctx('ins', vd, src);
    const i5 = imm5(vd.esize, vd.index) << 16;
    if (src instanceof VecElem) {
      if (src.esize !== vd.esize) fail(what, 'element sizes differ');
      return this.inst(word(SIMD_COPY.insElem, i5, (src.index << ELEMENT_LOG2[src.esize]) << 11, src.num << 5, vd.num));
    }
    const wantBits = vd.esize === 'd' ? 64 : 32;
    if (src.bits !== wantBits) fail(what, `needs a ${wantBits === 64 ? 'X' : 'W'} source register`);
    return this.inst(word(SIMD_COPY.insGen, i5, gp(src, 'zr', what) << 5, vd.num));
  }

  /** umov wd, vn.s[i] / umov xd, vn.d[i] */
  umov(rd: GpReg, src: VecElem): this {
    const what = ctx('umov', rd, src);
    const wantBits = src.esize === 'd' ? 64 : 32;
    if (rd.bits !== wantBits) fail(what, `needs a ${wantBits === 64 ? 'X' : 'W'} destination`);
    return this.inst(word(SIMD_COPY.umov, (src.esize === 'd' ? 1 : 0) << 30, imm5(src.esize, src.index) << 16, src.num << 5, gp(rd, 'zr', what)));
  }

  // ----- FP arithmetic -----

  private fpVec3(op: FpVec3Op, vd: VecArr, vn: VecArr, vm: VecArr): this {
    const what = ctx(op, vd, vn, vm);
    if (vn.arr !== vd.arr || vm.arr !== vd.arr) fail(what, 'arrangements differ');
    const { q, sz } = fpArr(vd.arr, what);
    return this.inst(word(FP_VEC3[op], q << 30, sz << 22, vm.num << 16, vn.num << 5, vd.num));
  }

  private fpScalar2(op: FpScalar2Op, fd: FReg, fn: FReg, fm: FReg): this {
    const what = ctx(op, fd, fn, fm);
    if (fn.size !== fd.size || fm.size !== fd.size) fail(what, 'register sizes differ');
    return this.inst(word(FP_SCALAR2[op], ftype(fd, what) << 22, fm.num << 16, fn.num << 5, fd.num));
  }

  /**
   * By element: vector (`fmla v0.4s, v1.4s, v2.s[3]`) or scalar (`fmla s0, s1, v2.s[3]`).
   * For .s elements the index is H:L and the element register is the full 5-bit M:Rm, so v0..v31
   * are all allowed (only the half-precision forms limit it to v0..v15); for .d the index is H.
   */
  private fpElem(op: FpElemOp, vd: VecArr | FReg, vn: VecArr | FReg, vm: VecElem): this {
    const what = ctx(op, vd, vn, vm);
    let q = 0;
    let esize: FpSize;
    let scalar = 0;
    if (vd instanceof VecArr) {
      if (!(vn instanceof VecArr) || vn.arr !== vd.arr) return fail(what, 'arrangements differ');
      q = fpArr(vd.arr, what).q;
      esize = vd.info.esize;
    } else {
      if (!(vn instanceof FReg) || vn.size !== vd.size) return fail(what, 'register sizes differ');
      ftype(vd, what);
      esize = vd.size;
      scalar = SCALAR_ELEM;
    }
    if (vm.esize !== esize) fail(what, `element must be .${esize}`);
    const sz = esize === 'd' ? 1 : 0;
    const h = sz ? vm.index : vm.index >> 1;
    const l = sz ? 0 : vm.index & 1;
    return this.inst(word(FP_ELEM[op], scalar, q << 30, sz << 22, l << 21, vm.num << 16, h << 11, vn.num << 5, vd.num));
  }

  /** fmla vd, vn, vm (vector) or by element when vm is an element. */
  fmla(vd: VecArr, vn: VecArr, vm: VecArr | VecElem): this;
  fmla(fd: FReg, fn: FReg, vm: VecElem): this;
  fmla(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | VecElem): this {
    if (vm instanceof VecElem) return this.fpElem('fmla', vd, vn, vm);
    return this.fpVec3('fmla', vd as VecArr, vn as VecArr, vm);
  }
  fmls(vd: VecArr, vn: VecArr, vm: VecArr | VecElem): this;
  fmls(fd: FReg, fn: FReg, vm: VecElem): this;
  fmls(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | VecElem): this {
    if (vm instanceof VecElem) return this.fpElem('fmls', vd, vn, vm);
    return this.fpVec3('fmls', vd as VecArr, vn as VecArr, vm);
  }
  /** fmla vd.4s, vn.4s, vm.s[i] */
  fmlaElem(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecElem): this { return this.fpElem('fmla', vd, vn, vm); }
  fmlsElem(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecElem): this { return this.fpElem('fmls', vd, vn, vm); }
  fmulElem(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecElem): this { return this.fpElem('fmul', vd, vn, vm); }

  /** fmul: vector, scalar, or by element. */
  fmul(vd: VecArr, vn: VecArr, vm: VecArr | VecElem): this;
  fmul(fd: FReg, fn: FReg, fm: FReg | VecElem): this;
  fmul(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | VecElem | FReg): this {
    if (vm instanceof VecElem) return this.fpElem('fmul', vd, vn, vm);
    return this.fpBinary('fmul', vd, vn, vm);
  }
  fadd(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fadd(fd: FReg, fn: FReg, fm: FReg): this;
  fadd(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this { return this.fpBinary('fadd', vd, vn, vm); }
  fsub(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fsub(fd: FReg, fn: FReg, fm: FReg): this;
  fsub(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this { return this.fpBinary('fsub', vd, vn, vm); }
  fdiv(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fdiv(fd: FReg, fn: FReg, fm: FReg): this;
  fdiv(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this { return this.fpBinary('fdiv', vd, vn, vm); }
  fmax(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fmax(fd: FReg, fn: FReg, fm: FReg): this;
  fmax(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this { return this.fpBinary('fmax', vd, vn, vm); }
  fmin(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fmin(fd: FReg, fn: FReg, fm: FReg): this;
  fmin(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this { return this.fpBinary('fmin', vd, vn, vm); }
  fmaxnm(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fmaxnm(fd: FReg, fn: FReg, fm: FReg): this;
  fmaxnm(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this { return this.fpBinary('fmaxnm', vd, vn, vm); }
  fminnm(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fminnm(fd: FReg, fn: FReg, fm: FReg): this;
  fminnm(vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this { return this.fpBinary('fminnm', vd, vn, vm); }

  private fpBinary(op: FpScalar2Op & FpVec3Op, vd: VecArr | FReg, vn: VecArr | FReg, vm: VecArr | FReg): this {
    if (vd instanceof VecArr && vn instanceof VecArr && vm instanceof VecArr) return this.fpVec3(op, vd, vn, vm);
    if (vd instanceof FReg && vn instanceof FReg && vm instanceof FReg) return this.fpScalar2(op, vd, vn, vm);
    throw new A64Error(`${ctx(op, vd, vn, vm)()}: mixes vector and scalar operands`);
  }

  /** faddp vd.4s, vn.4s, vm.4s (pairwise) or faddp sd, vn.2s (reduce two lanes). */
  faddp(vd: VecArr, vn: VecArr, vm: VecArr): this;
  faddp(fd: FReg, vn: VecArr): this;
  faddp(vd: VecArr | FReg, vn: VecArr, vm?: VecArr): this { return this.pairwise('faddp', vd, vn, vm); }
  fmaxp(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fmaxp(fd: FReg, vn: VecArr): this;
  fmaxp(vd: VecArr | FReg, vn: VecArr, vm?: VecArr): this { return this.pairwise('fmaxp', vd, vn, vm); }
  fminp(vd: VecArr, vn: VecArr, vm: VecArr): this;
  fminp(fd: FReg, vn: VecArr): this;
  fminp(vd: VecArr | FReg, vn: VecArr, vm?: VecArr): this { return this.pairwise('fminp', vd, vn, vm); }
  private pairwise(op: keyof typeof FP_PAIRWISE_SCALAR, vd: VecArr | FReg, vn: VecArr, vm?: VecArr): this {
    if (vd instanceof VecArr) {
      if (!vm) throw new A64Error(`${ctx(op, vd, vn)()}: vector form needs three operands`);
      return this.fpVec3(op, vd, vn, vm);
    }
    const what = ctx(op, vd, vn);
    const want = vd.size === 's' ? '2s' : vd.size === 'd' ? '2d' : fail(what, 'destination must be s or d');
    if (vn.arr !== want) fail(what, `source must be .${want}`);
    return this.inst(word(FP_PAIRWISE_SCALAR[op], ftype(vd, what) << 22, vn.num << 5, vd.num));
  }

  /** fmadd sd, sn, sm, sa: sd = sa + sn * sm (fused). Also fmsub, fnmadd, fnmsub. */
  fmadd(fd: FReg, fn: FReg, fm: FReg, fa: FReg): this { return this.fpScalar3('fmadd', fd, fn, fm, fa); }
  fmsub(fd: FReg, fn: FReg, fm: FReg, fa: FReg): this { return this.fpScalar3('fmsub', fd, fn, fm, fa); }
  fnmadd(fd: FReg, fn: FReg, fm: FReg, fa: FReg): this { return this.fpScalar3('fnmadd', fd, fn, fm, fa); }
  fnmsub(fd: FReg, fn: FReg, fm: FReg, fa: FReg): this { return this.fpScalar3('fnmsub', fd, fn, fm, fa); }
  private fpScalar3(op: keyof typeof FP_SCALAR3, fd: FReg, fn: FReg, fm: FReg, fa: FReg): this {
    const what = ctx(op, fd, fn, fm, fa);
    if (fn.size !== fd.size || fm.size !== fd.size || fa.size !== fd.size) fail(what, 'register sizes differ');
    return this.inst(word(FP_SCALAR3[op], ftype(fd, what) << 22, fm.num << 16, fa.num << 10, fn.num << 5, fd.num));
  }

  // ----- FP unary and conversions -----

  /** frintn: round to nearest, ties to even (vector or scalar). */
  frintn(vd: VecArr, vn: VecArr): this;
  frintn(fd: FReg, fn: FReg): this;
  frintn(vd: VecArr | FReg, vn: VecArr | FReg): this { return this.fpUnary('frintn', vd, vn); }
  /** frintm: round toward minus infinity (vector or scalar). */
  frintm(vd: VecArr, vn: VecArr): this;
  frintm(fd: FReg, fn: FReg): this;
  frintm(vd: VecArr | FReg, vn: VecArr | FReg): this { return this.fpUnary('frintm', vd, vn); }
  fabs(vd: VecArr, vn: VecArr): this;
  fabs(fd: FReg, fn: FReg): this;
  fabs(vd: VecArr | FReg, vn: VecArr | FReg): this { return this.fpUnary('fabs', vd, vn); }
  fneg(vd: VecArr, vn: VecArr): this;
  fneg(fd: FReg, fn: FReg): this;
  fneg(vd: VecArr | FReg, vn: VecArr | FReg): this { return this.fpUnary('fneg', vd, vn); }
  /** fsqrt sd, sn (scalar only here) */
  fsqrt(fd: FReg, fn: FReg): this { return this.fpScalar1('fsqrt', fd, fn); }
  /** fcvtzs vd.4s, vn.4s: float to signed integer lanes, rounding toward zero. */
  fcvtzs(vd: VecArr, vn: VecArr): this { return this.fpVec2('fcvtzs', vd, vn); }
  /** fcvtns vd.4s, vn.4s: float to signed integer lanes, rounding to nearest (ties to even). */
  fcvtns(vd: VecArr, vn: VecArr): this { return this.fpVec2('fcvtns', vd, vn); }
  /** scvtf vd.4s, vn.4s: signed integer lanes to float. */
  scvtf(vd: VecArr, vn: VecArr): this { return this.fpVec2('scvtf', vd, vn); }

  private fpUnary(op: FpVec2Op & FpScalar1Op, vd: VecArr | FReg, vn: VecArr | FReg): this {
    if (vd instanceof VecArr && vn instanceof VecArr) return this.fpVec2(op, vd, vn);
    if (vd instanceof FReg && vn instanceof FReg) return this.fpScalar1(op, vd, vn);
    throw new A64Error(`${ctx(op, vd, vn)()}: mixes vector and scalar operands`);
  }

  private fpVec2(op: FpVec2Op, vd: VecArr, vn: VecArr): this {
    const what = ctx(op, vd, vn);
    if (vn.arr !== vd.arr) fail(what, 'arrangements differ');
    const { q, sz } = fpArr(vd.arr, what);
    return this.inst(word(FP_VEC2[op], q << 30, sz << 22, vn.num << 5, vd.num));
  }

  private fpScalar1(op: FpScalar1Op, fd: FReg, fn: FReg): this {
    const what = ctx(op, fd, fn);
    if (fn.size !== fd.size) fail(what, 'register sizes differ');
    return this.inst(word(FP_SCALAR1[op], ftype(fd, what) << 22, fn.num << 5, fd.num));
  }

  // ----- NEON logical and immediates -----

  and(vd: VecArr, vn: VecArr, vm: VecArr): this;
  and(rd: GpReg, rn: GpReg, rm: GpReg, lsl?: number): this;
  and(d: VecArr | GpReg, n: VecArr | GpReg, m: VecArr | GpReg, lsl = 0): this { return this.logical('and', d, n, m, lsl); }
  orr(vd: VecArr, vn: VecArr, vm: VecArr): this;
  orr(rd: GpReg, rn: GpReg, rm: GpReg, lsl?: number): this;
  orr(d: VecArr | GpReg, n: VecArr | GpReg, m: VecArr | GpReg, lsl = 0): this { return this.logical('orr', d, n, m, lsl); }
  eor(vd: VecArr, vn: VecArr, vm: VecArr): this;
  eor(rd: GpReg, rn: GpReg, rm: GpReg, lsl?: number): this;
  eor(d: VecArr | GpReg, n: VecArr | GpReg, m: VecArr | GpReg, lsl = 0): this { return this.logical('eor', d, n, m, lsl); }
  bic(vd: VecArr, vn: VecArr, vm: VecArr): this { return this.vecLogic('bic', vd, vn, vm); }

  private logical(op: 'and' | 'orr' | 'eor', d: VecArr | GpReg, n: VecArr | GpReg, m: VecArr | GpReg, lsl: number): this {
    if (d instanceof VecArr && n instanceof VecArr && m instanceof VecArr) return this.vecLogic(op, d, n, m);
    if (isGp(d) && isGp(n) && isGp(m)) return this.logicalReg(op, d, n, m, lsl);
    throw new A64Error(`${ctx(op, d, n, m)()}: mixes vector and general-purpose operands`);
  }

  private vecLogic(op: keyof typeof VEC_LOGIC, vd: VecArr, vn: VecArr, vm: VecArr): this {
    const what = ctx(op, vd, vn, vm);
    if (vd.arr !== '8b' && vd.arr !== '16b') fail(what, 'logical vector operations take .8b or .16b');
    if (vn.arr !== vd.arr || vm.arr !== vd.arr) fail(what, 'arrangements differ');
    return this.inst(word(VEC_LOGIC[op], vd.info.q << 30, vm.num << 16, vn.num << 5, vd.num));
  }

  /**
   * movi: `movi(v(0).d2, 0)` (zero a register; a 2d / d immediate is 8 bytes each 0x00 or 0xff),
   * `movi(v(1).s4, 0xff, 8)` (imm8 shifted by 0/8/16/24), `movi(v(2).b16, 0x55)`.
   */
  movi(vd: VecArr | FReg<'d'>, imm: number | bigint, lsl = 0): this {
    const what = ctx('movi', vd, imm, ...(lsl ? [`lsl #${lsl}`] : []));
    const is64 = vd instanceof FReg || vd.arr === '2d' || vd.arr === '1d';
    if (is64) {
      if (vd instanceof VecArr && vd.arr === '1d') fail(what, 'use d(n) for the 64-bit scalar form');
      if (vd instanceof FReg && vd.size !== 'd') fail(what, 'scalar form needs a d register');
      if (lsl) fail(what, 'no shift with 64-bit immediates');
      const u = BigInt.asUintN(64, BigInt(imm));
      if (BigInt(imm) !== u && BigInt(imm) !== BigInt.asIntN(64, u)) fail(what, 'does not fit 64 bits');
      let imm8 = 0;
      for (let i = 0; i < 8; i++) {
        const byte = Number((u >> BigInt(8 * i)) & 0xffn);
        if (byte === 0xff) imm8 |= 1 << i;
        else if (byte !== 0) fail(what, 'every byte of a 64-bit movi immediate must be 0x00 or 0xff');
      }
      const q = vd instanceof VecArr ? 1 : 0;
      return this.inst(word(MOD_IMM.movi64, q << 30, abcdefgh(imm8), vd.num));
    }
    const info = vd.info;
    const imm8 = ufield(Number(imm), 8, what);
    if (info.esize === 'b') {
      if (lsl) fail(what, 'no shift with byte elements');
      return this.inst(word(MOD_IMM.movi8, info.q << 30, abcdefgh(imm8), vd.num));
    }
    const shifts = info.esize === 'h' ? [0, 8] : [0, 8, 16, 24];
    if (!shifts.includes(lsl)) fail(what, `shift must be one of ${shifts.join(', ')}`);
    const base = info.esize === 'h' ? MOD_IMM.movi16 : MOD_IMM.movi32;
    return this.inst(word(base, info.q << 30, (lsl / 8) << 13, abcdefgh(imm8), vd.num));
  }

  /**
   * fmov: sd, sn | sd, wn | wd, sn | dd, xn | xd, dd | sd, #imm | vd.4s, #imm. Immediates are
   * ±(16..31)/16 × 2^(-3..4) (0.0 is not one: use movi or fmov sd, wzr).
   */
  fmov(dst: FReg | GpReg | VecArr, src: FReg | GpReg | number): this {
    const what = ctx('fmov', dst, src);
    if (typeof src === 'number') {
      const imm8 = fpImm8(src) ?? fail(what, `${src} is not an 8-bit FP immediate (±n/16·2^e, n 16..31, e -3..4)`);
      if (dst instanceof FReg) return this.inst(word(FMOV.imm, ftype(dst, what) << 22, imm8 << 13, dst.num));
      if (dst instanceof VecArr) {
        if (dst.arr === '2d') return this.inst(word(MOD_IMM.fmov64, abcdefgh(imm8), dst.num));
        if (dst.arr === '2s' || dst.arr === '4s') return this.inst(word(MOD_IMM.fmov32, dst.info.q << 30, abcdefgh(imm8), dst.num));
        return fail(what, 'vector fmov takes .2s, .4s or .2d');
      }
      return fail(what, 'immediate fmov needs an FP or vector destination');
    }
    if (dst instanceof FReg && src instanceof FReg) {
      if (dst.size !== src.size) fail(what, 'register sizes differ');
      return this.inst(word(FMOV.reg, ftype(dst, what) << 22, src.num << 5, dst.num));
    }
    if (dst instanceof FReg && isGp(src)) {
      if (dst.size === 's' && src.kind === 'w') return this.inst(word(FMOV.fromW, gp(src, 'zr', what) << 5, dst.num));
      if (dst.size === 'd' && src.kind === 'x') return this.inst(word(FMOV.fromX, gp(src, 'zr', what) << 5, dst.num));
      return fail(what, 'pairs are s <-> w and d <-> x');
    }
    if (isGp(dst) && src instanceof FReg) {
      if (src.size === 's' && dst.kind === 'w') return this.inst(word(FMOV.toW, src.num << 5, gp(dst, 'zr', what)));
      if (src.size === 'd' && dst.kind === 'x') return this.inst(word(FMOV.toX, src.num << 5, gp(dst, 'zr', what)));
      return fail(what, 'pairs are s <-> w and d <-> x');
    }
    return fail(what, 'unsupported operands');
  }
}

/** The zero register of the same width as `r`. */
function zrOf(r: GpReg): GpReg {
  return r.bits === 64 ? new XReg(31, 'zr') : new WReg(31, 'zr');
}
