/**
 * EVEX prefix (AVX-512). SDM vol. 2, 2.7.
 *
 *   62 | P0: R̄ X̄ B̄ R̄' 0 0 m m | P1: W v̄v̄v̄v̄ 1 pp | P2: z L'L b V̄' a a a
 *
 * - R, X, B, R', V' and vvvv are stored inverted, as in VEX (1 = "no extension"/"unused").
 * - 32 registers need a fifth bit per operand: R' for ModRM.reg, V' for vvvv, and for a register
 *   ModRM.rm the X bit (there is no SIB index then, so X is free to extend rm to 32 registers).
 *   In a VSIB gather, V' is the fifth bit of the vector index (vvvv is unused there).
 * - aaa is the write mask k1..k7 (000 = no masking), z selects zeroing instead of merging.
 * - b on a memory operand is embedded broadcast ({1toN}); on a register form it would mean
 *   rounding control, which this encoder never emits.
 * - L'L: 00 = 128, 01 = 256, 10 = 512 (scalar forms ignore it; we write 00).
 * - Bit 2 of P1 is fixed at 1 and bits 3:2 of P0 at 0; that is what tells EVEX from the BOUND
 *   instruction that 62 used to be in 32-bit mode.
 */
import type { CodeBuffer } from './buffer.ts';
import type { Tuple } from './opcodes.ts';

export interface EvexFields {
  map: number;
  pp: number;
  w: 0 | 1;
  /** ModRM.reg register number (0-31): gives R (bit 3) and R' (bit 4) */
  reg: number;
  /** EVEX.X: bit 3 of the SIB index, or bit 4 of a register ModRM.rm */
  x: number;
  /** EVEX.B: bit 3 of the base register or of a register ModRM.rm */
  b: number;
  /** vvvv register (0-31), 0 when unused */
  vvvv: number;
  /** V': bit 4 of the vvvv register, or of the VSIB index register */
  vhigh: number;
  /** 0 = 128, 1 = 256, 2 = 512 */
  ll: 0 | 1 | 2;
  broadcast: boolean;
  /** write mask 0-7 (0: none) */
  aaa: number;
  zeroing: boolean;
}

export function emitEvex(out: CodeBuffer, f: EvexFields): void {
  out.u8(0x62);
  const rBit = (f.reg >> 3) & 1, rHigh = (f.reg >> 4) & 1;
  out.u8(((~rBit & 1) << 7) | ((~f.x & 1) << 6) | ((~f.b & 1) << 5) | ((~rHigh & 1) << 4) | f.map);
  out.u8((f.w << 7) | ((~f.vvvv & 15) << 3) | 0x04 | f.pp);
  out.u8(((f.zeroing ? 1 : 0) << 7) | (f.ll << 5) | ((f.broadcast ? 1 : 0) << 4) | ((~f.vhigh & 1) << 3) | f.aaa);
}

/**
 * N of the compressed displacement disp8*N: an EVEX instruction with mod=01 multiplies its 8-bit
 * displacement by N, so [rax + 64*k] (|k| <= 128) for a full zmm still takes one byte. A
 * displacement that is not a multiple of N, or too large, falls back to disp32 (which is not scaled).
 */
export function disp8Scale(tuple: Tuple, vectorBytes: number, broadcast: boolean): number {
  switch (tuple) {
    case 'fv':
      return broadcast ? 4 : vectorBytes;
    case 'fvm':
      return vectorBytes;
    case 't1s':
      return 4;
  }
}
