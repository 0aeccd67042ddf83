/**
 * Opcode tables, one per encoding family. References: Intel SDM vol. 2 (opcode maps, appendix A;
 * VEX/EVEX in sections 2.3 and 2.7). The Assembler in encoder.ts reads these; nothing else here.
 */

// ---------------------------------------------------------------------------------------------
// Legacy / general-purpose (REX) family
// ---------------------------------------------------------------------------------------------

export interface AluOp {
  readonly name: string;
  /** `op r/m, reg` (ModRM.rm is the destination) */
  readonly mr: number;
  /** `op reg, r/m` (ModRM.reg is the destination) */
  readonly rm: number;
  /** /digit of the immediate group: 0x83 /d ib (imm8, sign-extended) and 0x81 /d id (imm32) */
  readonly digit: number;
}

/** the eight classic ALU operations share one layout: opcode = digit*8 + {1: MR, 3: RM} */
export const ALU = {
  add: { name: 'add', mr: 0x01, rm: 0x03, digit: 0 },
  or: { name: 'or', mr: 0x09, rm: 0x0b, digit: 1 },
  adc: { name: 'adc', mr: 0x11, rm: 0x13, digit: 2 },
  sbb: { name: 'sbb', mr: 0x19, rm: 0x1b, digit: 3 },
  and: { name: 'and', mr: 0x21, rm: 0x23, digit: 4 },
  sub: { name: 'sub', mr: 0x29, rm: 0x2b, digit: 5 },
  xor: { name: 'xor', mr: 0x31, rm: 0x33, digit: 6 },
  cmp: { name: 'cmp', mr: 0x39, rm: 0x3b, digit: 7 },
} as const satisfies Record<string, AluOp>;

/** other general-purpose opcodes (single byte unless an array) */
export const GP = {
  movMR: 0x89, // mov r/m, reg
  movRM: 0x8b, // mov reg, r/m
  movImm: 0xc7, // mov r/m, imm32 (/0; sign-extended to 64 bits with REX.W)
  movRegImm: 0xb8, // mov reg, imm32 / movabs reg, imm64 (+ register number)
  lea: 0x8d,
  testMR: 0x85, // test r/m, reg
  grp3: 0xf7, // /0 test r/m, imm32; /2 not; /3 neg; /6 div
  grp5: 0xff, // /0 inc; /1 dec; /2 call r/m64
  xadd: [0x0f, 0xc1],
  lock: 0xf0,
  shiftImm: 0xc1, // /4 shl, /5 shr, /7 sar  r/m, imm8
  imulRR: [0x0f, 0xaf],
  imulImm8: 0x6b,
  imulImm32: 0x69,
  push: 0x50, // + register number
  pop: 0x58,
  ret: 0xc3,
  nop: 0x90,
  int3: 0xcc,
  ud2: [0x0f, 0x0b],
  jmp8: 0xeb,
  jmp32: 0xe9,
  jcc8: 0x70, // + condition
  jcc32: [0x0f, 0x80], // second byte + condition
} as const;

export const SHIFT_DIGIT = { shl: 4, shr: 5, sar: 7 } as const;

/** condition codes: the low nibble of Jcc/SETcc/CMOVcc */
export const COND = {
  o: 0x0, no: 0x1, b: 0x2, ae: 0x3, e: 0x4, ne: 0x5, be: 0x6, a: 0x7,
  s: 0x8, ns: 0x9, p: 0xa, np: 0xb, l: 0xc, ge: 0xd, le: 0xe, g: 0xf,
} as const;
export type Cond = keyof typeof COND;

/**
 * Recommended multi-byte NOPs (Intel SDM, NOP), index = length. Used by `align` so that padding
 * inside code decodes as a few long no-ops rather than many single-byte ones.
 */
export const NOPS: readonly (readonly number[])[] = [
  [],
  [0x90],
  [0x66, 0x90],
  [0x0f, 0x1f, 0x00],
  [0x0f, 0x1f, 0x40, 0x00],
  [0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
  [0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

// ---------------------------------------------------------------------------------------------
// Vector family: one row per instruction form, with its VEX and EVEX availability
// ---------------------------------------------------------------------------------------------

/** implied SIMD prefix (VEX.pp / EVEX.pp) */
export const NP = 0, P66 = 1, PF3 = 2, PF2 = 3;
/** opcode map (VEX.mmmmm / EVEX.mm) */
export const M0F = 1, M0F38 = 2, M0F3A = 3;

/**
 * EVEX tuple type: what N the 8-bit displacement is scaled by (disp8*N, SDM 2.7.5).
 * fv: full vector, with broadcast (N = vector bytes, or the element size 4 under {1toN});
 * fvm: full vector memory, no broadcast (N = vector bytes); t1s: one scalar element (N = 4).
 */
export type Tuple = 'fv' | 'fvm' | 't1s';

export interface VecOp {
  readonly name: string;
  readonly pp: number;
  readonly map: number;
  readonly op: number;
  /** VEX.W / EVEX.W (W0 for the single-precision / dword forms; W1 for vpermpd's qwords) */
  readonly w: 0 | 1;
  /** has a VEX (AVX/AVX2/FMA) encoding for xmm/ymm 0-15 */
  readonly vex: boolean;
  /** tuple type of the AVX-512F EVEX encoding; null: no EVEX form */
  readonly evex: Tuple | null;
  /** scalar single (ss): xmm only, vector length ignored, EVEX form needs no AVX512VL */
  readonly scalar: boolean;
  /** memory operand is a VSIB [base + vreg*scale] (gathers) */
  readonly vsib: boolean;
  /** what to use instead when a form does not exist (appended to the error) */
  readonly hint?: string;
}

function row(
  name: string, pp: number, map: number, op: number, vex: boolean, evex: Tuple | null,
  extra: { scalar?: boolean; vsib?: boolean; hint?: string; w?: 0 | 1 } = {},
): VecOp {
  return { name, pp, map, op, w: extra.w ?? 0, vex, evex, scalar: extra.scalar ?? false, vsib: extra.vsib ?? false, hint: extra.hint };
}
const SS = { scalar: true };

//                   name            pp   map    op    VEX    EVEX tuple
export const VEC = {
  vmovups_load: row('vmovups', NP, M0F, 0x10, true, 'fvm'),
  vmovups_store: row('vmovups', NP, M0F, 0x11, true, 'fvm'),
  vmovaps_load: row('vmovaps', NP, M0F, 0x28, true, 'fvm'),
  vmovaps_store: row('vmovaps', NP, M0F, 0x29, true, 'fvm'),
  vmovss_load: row('vmovss', PF3, M0F, 0x10, true, 't1s', SS),
  vmovss_store: row('vmovss', PF3, M0F, 0x11, true, 't1s', SS),
  vmovdqu_load: row('vmovdqu', PF3, M0F, 0x6f, true, null, { hint: 'use vmovdqu32 for zmm' }),
  vmovdqu_store: row('vmovdqu', PF3, M0F, 0x7f, true, null, { hint: 'use vmovdqu32 for zmm' }),
  vmovdqu32_load: row('vmovdqu32', PF3, M0F, 0x6f, false, 'fvm'),
  vmovdqu32_store: row('vmovdqu32', PF3, M0F, 0x7f, false, 'fvm'),
  vbroadcastss: row('vbroadcastss', P66, M0F38, 0x18, true, 't1s'),
  vfmadd231ps: row('vfmadd231ps', P66, M0F38, 0xb8, true, 'fv'),
  vfmadd231ss: row('vfmadd231ss', P66, M0F38, 0xb9, true, 't1s', SS),
  vaddps: row('vaddps', NP, M0F, 0x58, true, 'fv'),
  vaddss: row('vaddss', PF3, M0F, 0x58, true, 't1s', SS),
  vmulps: row('vmulps', NP, M0F, 0x59, true, 'fv'),
  vmulss: row('vmulss', PF3, M0F, 0x59, true, 't1s', SS),
  vsubps: row('vsubps', NP, M0F, 0x5c, true, 'fv'),
  vsubss: row('vsubss', PF3, M0F, 0x5c, true, 't1s', SS),
  vminps: row('vminps', NP, M0F, 0x5d, true, 'fv'),
  vminss: row('vminss', PF3, M0F, 0x5d, true, 't1s', SS),
  vdivps: row('vdivps', NP, M0F, 0x5e, true, 'fv'),
  vdivss: row('vdivss', PF3, M0F, 0x5e, true, 't1s', SS),
  vmaxps: row('vmaxps', NP, M0F, 0x5f, true, 'fv'),
  vmaxss: row('vmaxss', PF3, M0F, 0x5f, true, 't1s', SS),
  // the EVEX vxorps is AVX512DQ, not F: zero a zmm with vpxord instead
  vxorps: row('vxorps', NP, M0F, 0x57, true, null, { hint: 'use vpxord for zmm (EVEX vxorps is AVX512DQ)' }),
  vpxord: row('vpxord', P66, M0F, 0xef, false, 'fv'),
  // the EVEX vpcmpeqd writes an opmask, not a vector: for all-ones zmm use vpternlogd imm 0xff
  vpcmpeqd: row('vpcmpeqd', P66, M0F, 0x76, true, null, { hint: 'use vpternlogd(z, z, z, 0xff) for an all-ones zmm' }),
  vpternlogd: row('vpternlogd', P66, M0F3A, 0x25, false, 'fv'),
  vmaskmovps_load: row('vmaskmovps', P66, M0F38, 0x2c, true, null, { hint: 'use a {k} write mask with zmm' }),
  vmaskmovps_store: row('vmaskmovps', P66, M0F38, 0x2e, true, null, { hint: 'use a {k} write mask with zmm' }),
  vgatherdps: row('vgatherdps', P66, M0F38, 0x92, true, 't1s', { vsib: true }),
  // permutes and shuffles (strided vector reads: emit.ts loadStrided)
  vshufps: row('vshufps', NP, M0F, 0xc6, true, 'fv'),
  vpermps: row('vpermps', P66, M0F38, 0x16, true, 'fv'),
  vpermt2ps: row('vpermt2ps', P66, M0F38, 0x7f, false, 'fv'),
  // the EVEX form scales a broadcast displacement by 8 (qword elements), which this table's tuples do not say
  vpermpd: row('vpermpd', P66, M0F3A, 0x01, true, null, { w: 1, hint: 'the emitters permute zmm with vpermt2ps / vpermps' }),
  // the epilogue's arithmetic (emit.ts): FMA forms that keep the multiplier, rounding, integer exponent building
  vfmadd213ps: row('vfmadd213ps', P66, M0F38, 0xa8, true, 'fv'),
  vfnmadd231ps: row('vfnmadd231ps', P66, M0F38, 0xbc, true, 'fv'),
  vfnmsub231ps: row('vfnmsub231ps', P66, M0F38, 0xbe, true, 'fv'),
  vroundps: row('vroundps', P66, M0F3A, 0x08, true, null, { hint: 'use vrndscaleps for zmm' }),
  vrndscaleps: row('vrndscaleps', P66, M0F3A, 0x08, false, 'fv'),
  vcvtps2dq: row('vcvtps2dq', P66, M0F, 0x5b, true, 'fv'),
  vpaddd: row('vpaddd', P66, M0F, 0xfe, true, 'fv'),
  // shift group 72 /6 ib: the destination is vvvv, ModRM.reg holds the /digit
  vpslld_imm: row('vpslld', P66, M0F, 0x72, true, 'fv'),
} as const satisfies Record<string, VecOp>;

// ---------------------------------------------------------------------------------------------
// Opmask family (AVX-512F, VEX-encoded, map 0F, W0)
// ---------------------------------------------------------------------------------------------

export const KOP = {
  kmovw_k_km: 0x90, // kmovw k1, k2/m16
  kmovw_m_k: 0x91, // kmovw m16, k1
  kmovw_k_r: 0x92, // kmovw k1, r32
  kmovw_r_k: 0x93, // kmovw r32, k1
  kxnorw: 0x46, // kxnorw k1, k2, k3 (VEX.L1)
  kortestw: 0x98, // kortestw k1, k2: ZF = (k1|k2) == 0, CF = (k1|k2) all ones
} as const;

// VEX vzeroupper: VEX.128.0F.WIG 77
export const VZEROUPPER = 0x77;
