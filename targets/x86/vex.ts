/**
 * VEX prefix (AVX, AVX2, FMA, and the AVX-512 opmask instructions). SDM vol. 2, 2.3.
 *
 *   2-byte: C5 | R̄ v̄v̄v̄v̄ L pp                      (map 0F, W0, no X/B extension only)
 *   3-byte: C4 | R̄ X̄ B̄ m-mmmm | W v̄v̄v̄v̄ L pp
 *
 * R, X, B extend ModRM.reg, SIB.index and ModRM.rm/SIB.base to 16 registers, like REX, but are
 * stored inverted (1 means "no extension"), and so is vvvv (the extra source register): the bits
 * sit where a legacy LES/LDS ModRM would have mod=11, which is what makes C4/C5 decodable as VEX.
 */
import type { CodeBuffer } from './buffer.ts';

export interface VexFields {
  /** opcode map: 1 = 0F, 2 = 0F38, 3 = 0F3A */
  map: number;
  /** implied prefix: 0 none, 1 = 66, 2 = F3, 3 = F2 */
  pp: number;
  w: 0 | 1;
  /** vector length: 0 = 128 (and scalar / LIG), 1 = 256 */
  l: 0 | 1;
  /** bit 3 of the ModRM.reg register */
  r: number;
  /** bit 3 of the SIB index register */
  x: number;
  /** bit 3 of the ModRM.rm register or of the base register */
  b: number;
  /** the NDS register (0-15); 0 when unused, which encodes as 1111 */
  vvvv: number;
}

export function emitVex(out: CodeBuffer, f: VexFields): void {
  const tail = ((~f.vvvv & 15) << 3) | (f.l << 2) | f.pp;
  if (f.map === 1 && f.w === 0 && f.x === 0 && f.b === 0) {
    out.u8(0xc5);
    out.u8(((~f.r & 1) << 7) | tail);
  } else {
    out.u8(0xc4);
    out.u8(((~f.r & 1) << 7) | ((~f.x & 1) << 6) | ((~f.b & 1) << 5) | f.map);
    out.u8((f.w << 7) | tail);
  }
}
