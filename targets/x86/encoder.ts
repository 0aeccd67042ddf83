/**
 * x86-64 machine-code assembler: general-purpose instructions (REX), AVX/AVX2/FMA (VEX) and
 * AVX-512F (EVEX, opmask registers), with labels, RIP-relative data and alignment.
 *
 *   const a = new Assembler();
 *   const top = a.newLabel();
 *   a.bind(top);
 *   a.vfmadd231ps(zmm(0), zmm(1), mem(rax, 64));
 *   a.vfmadd231ps(zmm(2), zmm(3), mem(rdi, 8).bcst());   // {1to16}
 *   a.vmovups(zmm(4).k(1).z(), mem(rsi));                  // masked, zeroing load
 *   a.dec(rcx); a.jnz(top);
 *   a.ret();
 *   const code = a.finish();
 *
 * Vector instructions pick their encoding from the operands: VEX for xmm/ymm 0-15 without masks,
 * EVEX when a zmm, a register 16-31, a write mask, {z} or an embedded broadcast is involved.
 * EVEX forms on xmm/ymm would need AVX512VL and are not emitted, except the scalar (ss) ones,
 * which are plain AVX-512F. Every form that cannot be encoded throws an Error naming the
 * instruction, its operands and the reason; nothing is silently re-encoded.
 *
 * Opcode tables live in opcodes.ts, the VEX/EVEX prefix layouts in vex.ts / evex.ts.
 */
import { CodeBuffer } from './buffer.ts';
import { disp8Scale, emitEvex } from './evex.ts';
import {
  ALU, COND, GP, KOP, M0F, NOPS, SHIFT_DIGIT, VEC, VZEROUPPER,
  type AluOp, type Cond, type VecOp,
} from './opcodes.ts';
import { Gp32, Gp64, KReg, Label, Mem, Xmm, Ymm, Zmm, type Gp, type Vec } from './registers.ts';
import { emitVex } from './vex.ts';

export type { Cond } from './opcodes.ts';

interface Fixup {
  /** position of the 32-bit field to patch */
  at: number;
  /** the field holds target - end: end of the instruction (RIP of the next one) */
  end: number;
  label: Label;
  addend: number;
}

/** operands of one VEX/EVEX instruction, in ModRM terms */
interface VecArgs {
  /** ModRM.reg register number (0-31) */
  reg: number;
  /** the NDS (vvvv) register number, null when the form has none */
  vvvv: number | null;
  /** ModRM.rm: a register number or memory */
  rm: number | Mem;
  /** vector length in bytes (16 for scalar forms) */
  bytes: 16 | 32 | 64;
  /** write mask 0-7 and zeroing (from the destination register, or from a store's memory) */
  mask: number;
  zeroing: boolean;
  /** imm8 after ModRM, if any */
  imm?: number;
}

/** SIB.scale field of each scale factor */
const SCALE_BITS = { 1: 0, 2: 1, 4: 2, 8: 3 } as const;
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;

function fail(name: string, ops: readonly unknown[], why: string): never {
  throw new Error(`x86 ${name} ${ops.map(String).join(', ')}: ${why}`);
}

function gpBytes(r: Gp): 4 | 8 {
  return r.kind === 'gp64' ? 8 : 4;
}

function isGp(x: unknown): x is Gp {
  return x instanceof Gp64 || x instanceof Gp32;
}

function isVec(x: unknown): x is Vec {
  return x instanceof Xmm || x instanceof Ymm || x instanceof Zmm;
}

export class Assembler {
  private readonly buf = new CodeBuffer();
  /** bound offset of each label, -1 while unbound */
  private readonly labelPos: number[] = [];
  private readonly fixups: Fixup[] = [];
  private dataStart = -1;

  // ===========================================================================================
  // Buffer, labels, data
  // ===========================================================================================

  /** current position (bytes emitted so far) */
  get offset(): number {
    return this.buf.length;
  }

  /** bytes before the first `dataLabel()` (the whole buffer if there is none) */
  get codeSize(): number {
    return this.dataStart >= 0 ? this.dataStart : this.buf.length;
  }

  newLabel(): Label {
    this.labelPos.push(-1);
    return new Label(this.labelPos.length - 1, this);
  }

  bind(label: Label): void {
    this.own(label);
    if (this.labelPos[label.id]! >= 0) throw new Error(`label ${label} is already bound`);
    this.labelPos[label.id] = this.buf.length;
  }

  /** a new label bound here, marking the start of data (constant pool): see `codeSize` */
  dataLabel(): Label {
    const l = this.newLabel();
    this.bind(l);
    if (this.dataStart < 0) this.dataStart = this.buf.length;
    return l;
  }

  /** offset a label is bound at (throws if unbound) */
  labelOffset(label: Label): number {
    this.own(label);
    const pos = this.labelPos[label.id]!;
    if (pos < 0) throw new Error(`label ${label} is not bound`);
    return pos;
  }

  /** resolves label references and returns a copy of the code; may be called again after more emission */
  finish(): Uint8Array {
    for (const f of this.fixups) {
      const pos = this.labelPos[f.label.id]!;
      if (pos < 0) throw new Error(`label ${f.label} is referenced but never bound`);
      const rel = pos + f.addend - f.end;
      if (rel < INT32_MIN || rel > INT32_MAX) throw new Error(`label ${f.label}: displacement ${rel} exceeds 32 bits`);
      this.buf.patch32(f.at, rel);
    }
    return this.buf.toBytes();
  }

  /** pads to a multiple of `n` (a power of two) with long NOPs, zero bytes or int3 */
  align(n: number, fill: 'nop' | 'zero' | 'int3' = 'nop'): void {
    if (!Number.isInteger(n) || n < 1 || (n & (n - 1)) !== 0) throw new RangeError(`align(${n}): not a power of two`);
    let pad = (n - (this.buf.length % n)) % n;
    while (pad > 0) {
      if (fill === 'nop') {
        const k = Math.min(pad, NOPS.length - 1);
        this.buf.bytes(NOPS[k]!);
        pad -= k;
      } else {
        this.buf.u8(fill === 'zero' ? 0 : GP.int3);
        pad--;
      }
    }
  }

  emitBytes(bytes: ArrayLike<number>): void {
    this.buf.bytes(bytes);
  }
  emitU8(v: number): void {
    this.buf.u8(v);
  }
  /** a 16-bit integer (signed or unsigned) */
  emitU16(v: number): void {
    this.buf.u16(v);
  }
  /** a 32-bit integer (signed or unsigned) */
  emitU32(v: number): void {
    this.buf.u32(v);
  }
  emitU64(v: bigint): void {
    this.buf.u64(v);
  }
  emitF32(v: number): void {
    this.buf.f32(v);
  }
  emitF64(v: number): void {
    this.buf.f64(v);
  }

  private own(label: Label): void {
    if (label.owner !== this) throw new Error(`label ${label} belongs to another Assembler`);
  }

  // ===========================================================================================
  // ModRM / SIB / displacement, REX
  // ===========================================================================================

  /**
   * ModRM (+ SIB + displacement) for `reg` (a register number or an opcode extension /digit;
   * only its low 3 bits land here, the prefix carries the rest) and `rm` (a register number or
   * memory). `n` is the disp8 scale (EVEX disp8*N, 1 otherwise). `immBytes` is the size of the
   * immediate that follows: a RIP-relative displacement counts from the end of the instruction.
   */
  private modrm(reg: number, rm: number | Mem, n: number, immBytes: number): void {
    const r = (reg & 7) << 3;
    if (typeof rm === 'number') {
      this.buf.u8(0xc0 | r | (rm & 7));
      return;
    }
    const m = rm;
    if (m.label) {
      // mod=00 rm=101 is [rip + disp32] in 64-bit mode (it was [disp32] in 32-bit mode)
      this.buf.u8(0x05 | r);
      this.fixups.push({ at: this.buf.length, end: this.buf.length + 4 + immBytes, label: m.label, addend: m.disp });
      this.buf.u32(0);
      return;
    }
    const scale = SCALE_BITS[m.scale] << 6;
    const index = m.index ? (m.index.id & 7) << 3 : 4 << 3; // SIB.index = 100: no index
    const base = m.base;
    if (base === null) {
      // no base: SIB.base = 101 with mod = 00 means "disp32, no base" (RIP-relative needs rm=101
      // without SIB, so an absolute address always goes through a SIB byte in 64-bit mode)
      this.buf.u8(0x04 | r);
      this.buf.u8(scale | index | 5);
      this.buf.u32(m.disp);
      return;
    }
    let mod: number;
    if (m.disp === 0 && (base.id & 7) !== 5) {
      mod = 0;
    } else if (m.disp % n === 0 && m.disp / n >= -128 && m.disp / n <= 127) {
      // rbp/r13 base with mod=00 would mean RIP-relative / no base: they take a disp8 of 0
      mod = 1;
    } else {
      mod = 2;
    }
    if (m.index !== null || (base.id & 7) === 4) {
      // ModRM.rm = 100 means "SIB follows", so rsp/r12 as a base always need a SIB (index = none)
      this.buf.u8((mod << 6) | r | 4);
      this.buf.u8(scale | index | (base.id & 7));
    } else {
      this.buf.u8((mod << 6) | r | (base.id & 7));
    }
    if (mod === 1) this.buf.u8(m.disp / n);
    else if (mod === 2) this.buf.u32(m.disp);
  }

  /** X and B extension bits for `rm` (register number or memory), bit 3 of index and base */
  private static xb(rm: number | Mem): { x: number; b: number } {
    if (typeof rm === 'number') return { x: 0, b: (rm >> 3) & 1 };
    return { x: rm.index ? (rm.index.id >> 3) & 1 : 0, b: rm.base ? (rm.base.id >> 3) & 1 : 0 };
  }

  /** [REX] opcode ModRM... for a general-purpose instruction; the caller appends the immediate */
  private gp(w: boolean, opcode: number | readonly number[], reg: number, rm: number | Mem, immBytes = 0): void {
    const { x, b } = Assembler.xb(rm);
    const rex = (w ? 8 : 0) | (((reg >> 3) & 1) << 2) | (x << 1) | b;
    if (rex) this.buf.u8(0x40 | rex);
    if (typeof opcode === 'number') this.buf.u8(opcode);
    else this.buf.bytes(opcode);
    this.modrm(reg, rm, 1, immBytes);
  }

  /** validates a memory operand of a general-purpose instruction; returns its ModRM form */
  private gpMem(name: string, ops: readonly unknown[], m: Mem, regBytes: 0 | 4 | 8): Mem {
    if (m.index && !(m.index instanceof Gp64)) fail(name, ops, 'a vector index register is only valid in gathers');
    if (m.broadcast) fail(name, ops, 'embedded broadcast is only valid for AVX-512 instructions');
    if (m.mask) fail(name, ops, 'a write mask is only valid for AVX-512 stores');
    if (regBytes && m.size && m.size !== regBytes) fail(name, ops, `memory is ${m.size} bytes, register is ${regBytes}`);
    return m;
  }

  /** size of a memory operand that no register sizes (`dec qword [rsp+8]`) */
  private memBytes(name: string, ops: readonly unknown[], m: Mem): 4 | 8 {
    if (m.size !== 4 && m.size !== 8) fail(name, ops, 'operand size unknown: use qword(...) / dword(...) or mem(...).qword()');
    return m.size;
  }

  /** checks an immediate that is sign-extended from 32 bits (to 64) or taken as 32 bits; returns it as int32 */
  private static imm32(name: string, ops: readonly unknown[], v: number, bytes: 4 | 8): number {
    const max = bytes === 8 ? INT32_MAX : 0xffff_ffff;
    if (!Number.isInteger(v) || v < INT32_MIN || v > max) {
      fail(name, ops, bytes === 8
        ? `immediate ${v} does not fit a sign-extended imm32 (load it with mov r64, imm64 first)`
        : `immediate ${v} does not fit 32 bits`);
    }
    return v | 0;
  }

  // ===========================================================================================
  // General-purpose instructions
  // ===========================================================================================

  /** a number or bigint outside the sign-extended imm32 range becomes `movabs r64, imm64` */
  mov(dst: Gp64, src: Gp64 | Mem | number | bigint): void;
  mov(dst: Gp32, src: Gp32 | Mem | number): void;
  mov(dst: Mem, src: Gp | number): void;
  mov(dst: Gp | Mem, src: Gp | Mem | number | bigint): void {
    const ops = [dst, src];
    if (typeof src === 'number' || typeof src === 'bigint') {
      if (dst instanceof Gp64) return this.movImm64(dst, src);
      if (typeof src === 'bigint') fail('mov', ops, 'a bigint immediate needs a 64-bit register');
      if (dst instanceof Gp32) {
        const v = Assembler.imm32('mov', ops, src, 4);
        if (dst.id >= 8) this.buf.u8(0x41); // REX.B
        this.buf.u8(GP.movRegImm + (dst.id & 7));
        this.buf.u32(v);
        return;
      }
      const bytes = this.memBytes('mov', ops, dst);
      const v = Assembler.imm32('mov', ops, src, bytes);
      this.gp(bytes === 8, GP.movImm, 0, this.gpMem('mov', ops, dst, 0), 4);
      this.buf.u32(v);
      return;
    }
    if (dst instanceof Mem) {
      if (!isGp(src)) return fail('mov', ops, 'memory to memory is not encodable');
      this.gp(src instanceof Gp64, GP.movMR, src.id, this.gpMem('mov', ops, dst, gpBytes(src)));
    } else if (src instanceof Mem) {
      this.gp(dst instanceof Gp64, GP.movRM, dst.id, this.gpMem('mov', ops, src, gpBytes(dst)));
    } else {
      if (dst.kind !== src.kind) fail('mov', ops, 'register sizes differ');
      this.gp(dst instanceof Gp64, GP.movMR, src.id, dst.id);
    }
  }

  private movImm64(dst: Gp64, src: number | bigint): void {
    const ops = [dst, src];
    if (typeof src === 'number' && !Number.isSafeInteger(src)) {
      fail('mov', ops, 'immediate is not a safe integer: pass a bigint for 64-bit constants');
    }
    if (src >= INT32_MIN && src <= INT32_MAX) {
      // REX.W C7 /0 id: 7 bytes, sign-extended
      this.gp(true, GP.movImm, 0, dst.id, 4);
      this.buf.u32(Number(src));
    } else {
      this.movabs(dst, src);
    }
  }

  /** `movabs r64, imm64` (REX.W B8+r io): always the 10-byte form; negative values are two's complement */
  movabs(dst: Gp64, imm: number | bigint): void {
    const v = BigInt(imm);
    if (v < -(1n << 63n) || v >= 1n << 64n) fail('movabs', [dst, imm], 'immediate does not fit 64 bits');
    this.buf.u8(0x48 | (dst.id >> 3));
    this.buf.u8(GP.movRegImm + (dst.id & 7));
    this.buf.u64(v);
  }

  private alu(op: AluOp, dst: Gp | Mem, src: Gp | Mem | number): void {
    const ops = [dst, src];
    if (typeof src === 'number') {
      const bytes = dst instanceof Mem ? this.memBytes(op.name, ops, dst) : gpBytes(dst);
      const v = Assembler.imm32(op.name, ops, src, bytes);
      const short = v >= -128 && v <= 127; // 83 /d ib sign-extends an imm8
      const rm = dst instanceof Mem ? this.gpMem(op.name, ops, dst, 0) : dst.id;
      this.gp(bytes === 8, short ? 0x83 : 0x81, op.digit, rm, short ? 1 : 4);
      if (short) this.buf.u8(v);
      else this.buf.u32(v);
      return;
    }
    if (dst instanceof Mem) {
      if (!isGp(src)) return fail(op.name, ops, 'memory to memory is not encodable');
      this.gp(src instanceof Gp64, op.mr, src.id, this.gpMem(op.name, ops, dst, gpBytes(src)));
    } else if (src instanceof Mem) {
      this.gp(dst instanceof Gp64, op.rm, dst.id, this.gpMem(op.name, ops, src, gpBytes(dst)));
    } else {
      if (dst.kind !== src.kind) fail(op.name, ops, 'register sizes differ');
      this.gp(dst instanceof Gp64, op.mr, src.id, dst.id);
    }
  }

  add(dst: Gp64, src: Gp64 | Mem | number): void;
  add(dst: Gp32, src: Gp32 | Mem | number): void;
  add(dst: Mem, src: Gp | number): void;
  add(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.add, dst, src);
  }
  sub(dst: Gp64, src: Gp64 | Mem | number): void;
  sub(dst: Gp32, src: Gp32 | Mem | number): void;
  sub(dst: Mem, src: Gp | number): void;
  sub(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.sub, dst, src);
  }
  and(dst: Gp64, src: Gp64 | Mem | number): void;
  and(dst: Gp32, src: Gp32 | Mem | number): void;
  and(dst: Mem, src: Gp | number): void;
  and(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.and, dst, src);
  }
  or(dst: Gp64, src: Gp64 | Mem | number): void;
  or(dst: Gp32, src: Gp32 | Mem | number): void;
  or(dst: Mem, src: Gp | number): void;
  or(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.or, dst, src);
  }
  xor(dst: Gp64, src: Gp64 | Mem | number): void;
  xor(dst: Gp32, src: Gp32 | Mem | number): void;
  xor(dst: Mem, src: Gp | number): void;
  xor(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.xor, dst, src);
  }
  cmp(dst: Gp64, src: Gp64 | Mem | number): void;
  cmp(dst: Gp32, src: Gp32 | Mem | number): void;
  cmp(dst: Mem, src: Gp | number): void;
  cmp(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.cmp, dst, src);
  }
  adc(dst: Gp64, src: Gp64 | Mem | number): void;
  adc(dst: Gp32, src: Gp32 | Mem | number): void;
  adc(dst: Mem, src: Gp | number): void;
  adc(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.adc, dst, src);
  }
  sbb(dst: Gp64, src: Gp64 | Mem | number): void;
  sbb(dst: Gp32, src: Gp32 | Mem | number): void;
  sbb(dst: Mem, src: Gp | number): void;
  sbb(dst: Gp | Mem, src: Gp | Mem | number): void {
    this.alu(ALU.sbb, dst, src);
  }

  private unary(name: string, opcode: number, digit: number, dst: Gp | Mem): void {
    if (dst instanceof Mem) {
      const bytes = this.memBytes(name, [dst], dst);
      this.gp(bytes === 8, opcode, digit, this.gpMem(name, [dst], dst, 0));
    } else {
      this.gp(dst instanceof Gp64, opcode, digit, dst.id);
    }
  }
  inc(dst: Gp | Mem): void {
    this.unary('inc', GP.grp5, 0, dst);
  }
  dec(dst: Gp | Mem): void {
    this.unary('dec', GP.grp5, 1, dst);
  }
  not(dst: Gp | Mem): void {
    this.unary('not', GP.grp3, 2, dst);
  }
  neg(dst: Gp | Mem): void {
    this.unary('neg', GP.grp3, 3, dst);
  }
  /** unsigned `div src`: rdx:rax / src -> quotient rax, remainder rdx (edx:eax for 32 bits) */
  div(src: Gp | Mem): void {
    this.unary('div', GP.grp3, 6, src);
  }
  /** `call src`: an indirect call through a 64-bit register or a qword in memory */
  call(src: Gp64 | Mem): void {
    if (src instanceof Mem) this.gp(false, GP.grp5, 2, this.gpMem('call', [src], src, 0));
    else if (src instanceof Gp64) this.gp(false, GP.grp5, 2, src.id);
    else fail('call', [src], 'an indirect call takes a 64-bit register or memory');
  }
  /** `lock xadd dst, src`: atomically dst += src, src = the old dst */
  lockXadd(dst: Mem, src: Gp): void {
    this.buf.u8(GP.lock);
    this.gp(src instanceof Gp64, GP.xadd, src.id, this.gpMem('xadd', [dst, src], dst, gpBytes(src)));
  }

  private shift(name: keyof typeof SHIFT_DIGIT, dst: Gp, count: number): void {
    const bits = gpBytes(dst) * 8;
    if (!Number.isInteger(count) || count < 0 || count >= bits) fail(name, [dst, count], `shift count must be 0..${bits - 1}`);
    this.gp(dst instanceof Gp64, GP.shiftImm, SHIFT_DIGIT[name], dst.id, 1);
    this.buf.u8(count);
  }
  shl(dst: Gp, count: number): void {
    this.shift('shl', dst, count);
  }
  shr(dst: Gp, count: number): void {
    this.shift('shr', dst, count);
  }
  sar(dst: Gp, count: number): void {
    this.shift('sar', dst, count);
  }

  lea(dst: Gp, src: Mem): void {
    this.gp(dst instanceof Gp64, GP.lea, dst.id, this.gpMem('lea', [dst, src], src, 0));
  }

  /** `imul dst, src` (dst *= src) or `imul dst, src, imm` (dst = src * imm) */
  imul(dst: Gp64, src: Gp64 | Mem, imm?: number): void;
  imul(dst: Gp32, src: Gp32 | Mem, imm?: number): void;
  imul(dst: Gp, src: Gp | Mem, imm?: number): void {
    const ops = imm === undefined ? [dst, src] : [dst, src, imm];
    const w = dst instanceof Gp64;
    if (isGp(src) && src.kind !== dst.kind) fail('imul', ops, 'register sizes differ');
    const rm = src instanceof Mem ? this.gpMem('imul', ops, src, gpBytes(dst)) : src.id;
    if (imm === undefined) {
      this.gp(w, GP.imulRR, dst.id, rm);
      return;
    }
    const v = Assembler.imm32('imul', ops, imm, gpBytes(dst));
    const short = v >= -128 && v <= 127;
    this.gp(w, short ? GP.imulImm8 : GP.imulImm32, dst.id, rm, short ? 1 : 4);
    if (short) this.buf.u8(v);
    else this.buf.u32(v);
  }

  /** `test a, b` (flags of a & b) with a register or an imm32 */
  test(a: Gp64, b: Gp64 | number): void;
  test(a: Gp32, b: Gp32 | number): void;
  test(a: Mem, b: Gp | number): void;
  test(a: Gp | Mem, b: Gp | number): void {
    const ops = [a, b];
    if (typeof b === 'number') {
      const bytes = a instanceof Mem ? this.memBytes('test', ops, a) : gpBytes(a);
      const v = Assembler.imm32('test', ops, b, bytes);
      this.gp(bytes === 8, GP.grp3, 0, a instanceof Mem ? this.gpMem('test', ops, a, 0) : a.id, 4);
      this.buf.u32(v);
      return;
    }
    if (a instanceof Mem) {
      this.gp(b instanceof Gp64, GP.testMR, b.id, this.gpMem('test', ops, a, gpBytes(b)));
    } else {
      if (a.kind !== b.kind) fail('test', ops, 'register sizes differ');
      this.gp(a instanceof Gp64, GP.testMR, b.id, a.id);
    }
  }

  push(r: Gp64): void {
    if (!(r instanceof Gp64)) fail('push', [r], 'push/pop take a 64-bit register');
    if (r.id >= 8) this.buf.u8(0x41); // REX.B selects r8-r15; push/pop default to 64 bits
    this.buf.u8(GP.push + (r.id & 7));
  }
  pop(r: Gp64): void {
    if (!(r instanceof Gp64)) fail('pop', [r], 'push/pop take a 64-bit register');
    if (r.id >= 8) this.buf.u8(0x41);
    this.buf.u8(GP.pop + (r.id & 7));
  }

  ret(): void {
    this.buf.u8(GP.ret);
  }
  nop(): void {
    this.buf.u8(GP.nop);
  }
  int3(): void {
    this.buf.u8(GP.int3);
  }
  ud2(): void {
    this.buf.bytes(GP.ud2);
  }

  // ---- branches ---------------------------------------------------------------------------

  /**
   * A backward reference to a bound label uses rel8 when it reaches (2 bytes), rel32 otherwise;
   * a forward reference always uses rel32, patched by `finish()`.
   */
  private branch(short: number, long: readonly number[], target: Label): void {
    this.own(target);
    const pos = this.labelPos[target.id]!;
    if (pos >= 0) {
      const rel8 = pos - (this.buf.length + 2);
      if (rel8 >= -128) {
        this.buf.u8(short);
        this.buf.u8(rel8);
        return;
      }
    }
    this.buf.bytes(long);
    this.fixups.push({ at: this.buf.length, end: this.buf.length + 4, label: target, addend: 0 });
    this.buf.u32(0);
  }

  jmp(target: Label): void {
    this.branch(GP.jmp8, [GP.jmp32], target);
  }
  /** conditional jump: `a.jcc('ne', top)` is `jne top` */
  jcc(cond: Cond, target: Label): void {
    const cc = COND[cond];
    if (cc === undefined) throw new Error(`unknown condition code ${String(cond)}`);
    this.branch(GP.jcc8 + cc, [GP.jcc32[0], GP.jcc32[1] + cc], target);
  }
  jo(target: Label): void {
    this.jcc('o', target);
  }
  jno(target: Label): void {
    this.jcc('no', target);
  }
  jb(target: Label): void {
    this.jcc('b', target);
  }
  jae(target: Label): void {
    this.jcc('ae', target);
  }
  je(target: Label): void {
    this.jcc('e', target);
  }
  jz(target: Label): void {
    this.jcc('e', target);
  }
  jne(target: Label): void {
    this.jcc('ne', target);
  }
  jnz(target: Label): void {
    this.jcc('ne', target);
  }
  jbe(target: Label): void {
    this.jcc('be', target);
  }
  ja(target: Label): void {
    this.jcc('a', target);
  }
  js(target: Label): void {
    this.jcc('s', target);
  }
  jns(target: Label): void {
    this.jcc('ns', target);
  }
  jp(target: Label): void {
    this.jcc('p', target);
  }
  jnp(target: Label): void {
    this.jcc('np', target);
  }
  jl(target: Label): void {
    this.jcc('l', target);
  }
  jge(target: Label): void {
    this.jcc('ge', target);
  }
  jle(target: Label): void {
    this.jcc('le', target);
  }
  jg(target: Label): void {
    this.jcc('g', target);
  }

  // ===========================================================================================
  // Vector instructions (VEX / EVEX)
  // ===========================================================================================

  /**
   * Emits one vector instruction, choosing VEX or EVEX. Operand checks that depend on the
   * instruction's shape are done by the callers; this checks what depends on the encoding.
   */
  private vec(op: VecOp, ops: readonly unknown[], a: VecArgs): void {
    const m = a.rm instanceof Mem ? a.rm : null;
    const vsib = m && m.index && !(m.index instanceof Gp64) ? m.index : null;
    if (op.vsib && !vsib) fail(op.name, ops, 'needs a vector index: mem(base, disp, vreg, scale)');
    if (!op.vsib && vsib) fail(op.name, ops, 'a vector index register is only valid in gathers');
    if (m?.broadcast && op.evex !== 'fv') fail(op.name, ops, `${op.name} has no embedded-broadcast form`);

    // Why this instruction cannot be VEX-encoded (null: VEX would do)
    let needsEvex: string | null = null;
    const rmReg = typeof a.rm === 'number' ? a.rm : -1;
    if (a.bytes === 64) needsEvex = 'a zmm register';
    else if (a.reg >= 16 || (a.vvvv ?? 0) >= 16 || rmReg >= 16 || (vsib?.id ?? 0) >= 16) needsEvex = 'register 16-31';
    else if (a.mask) needsEvex = 'a write mask';
    else if (a.zeroing) needsEvex = 'zeroing {z}';
    else if (m?.broadcast) needsEvex = 'embedded broadcast';

    if (needsEvex === null && op.vex) return this.vexInsn(op, a);
    if (op.evex === null) {
      fail(op.name, ops, `${needsEvex ?? 'this form'} needs EVEX (AVX-512), and ${op.name} has no AVX-512F form${op.hint ? `: ${op.hint}` : ''}`);
    }
    if (a.bytes !== 64 && !op.scalar) {
      fail(op.name, ops, `EVEX on ${a.bytes === 16 ? 'xmm' : 'ymm'} needs AVX512VL, which this encoder does not emit: use zmm (or VEX with registers 0-15, no mask)`);
    }
    this.evexInsn(op, ops, a, m, vsib);
  }

  private vexInsn(op: VecOp, a: VecArgs): void {
    const { x, b } = Assembler.xb(a.rm);
    emitVex(this.buf, { map: op.map, pp: op.pp, w: op.w, l: a.bytes === 32 ? 1 : 0, r: (a.reg >> 3) & 1, x, b, vvvv: a.vvvv ?? 0 });
    this.buf.u8(op.op);
    this.modrm(a.reg, a.rm, 1, a.imm === undefined ? 0 : 1);
    if (a.imm !== undefined) this.buf.u8(a.imm);
  }

  private evexInsn(op: VecOp, ops: readonly unknown[], a: VecArgs, m: Mem | null, vsib: Vec | null): void {
    const tuple = op.evex!;
    if (a.zeroing && !a.mask) fail(op.name, ops, '{z} needs a write mask {k1..k7}');
    let x: number, b: number;
    let vhigh = ((a.vvvv ?? 0) >> 4) & 1;
    if (m) {
      ({ x, b } = Assembler.xb(m));
      if (vsib) vhigh = (vsib.id >> 4) & 1; // VSIB: V' extends the vector index (vvvv is unused)
    } else {
      const r = a.rm as number;
      b = (r >> 3) & 1;
      x = (r >> 4) & 1; // register rm: X is the fifth register bit
    }
    emitEvex(this.buf, {
      map: op.map, pp: op.pp, w: op.w, reg: a.reg, x, b, vvvv: a.vvvv ?? 0, vhigh,
      ll: op.scalar ? 0 : a.bytes === 64 ? 2 : a.bytes === 32 ? 1 : 0,
      broadcast: m?.broadcast ?? false, aaa: a.mask, zeroing: a.zeroing,
    });
    this.buf.u8(op.op);
    this.modrm(a.reg, m ?? a.rm, disp8Scale(tuple, a.bytes, m?.broadcast ?? false), a.imm === undefined ? 0 : 1);
    if (a.imm !== undefined) this.buf.u8(a.imm);
  }

  /** a source register must not carry {k}/{z}; a source memory operand must not carry {k} */
  private static plain(name: string, ops: readonly unknown[], ...srcs: (Vec | Mem)[]): void {
    for (const s of srcs) {
      if (s.mask || (isVec(s) && s.zeroing)) fail(name, ops, '{k}/{z} belong on the destination only');
    }
  }

  private static sameKind(name: string, ops: readonly unknown[], kind: string, ...regs: (Vec | Mem)[]): void {
    for (const r of regs) {
      if (isVec(r) && r.kind !== kind) fail(name, ops, `operands must all be ${kind}`);
    }
  }

  /** dst = op(src1, src2), all the same vector length */
  private packed(op: VecOp, dst: Vec, src1: Vec, src2: Vec | Mem, imm?: number): void {
    const ops = imm === undefined ? [dst, src1, src2] : [dst, src1, src2, imm];
    if (!isVec(dst) || !isVec(src1)) fail(op.name, ops, 'dst and src1 must be vector registers');
    Assembler.sameKind(op.name, ops, dst.kind, src1, src2);
    Assembler.plain(op.name, ops, src1, src2);
    this.vec(op, ops, {
      reg: dst.id, vvvv: src1.id, rm: src2 instanceof Mem ? src2 : src2.id,
      bytes: dst.bytes, mask: dst.mask, zeroing: dst.zeroing, imm,
    });
  }

  private scalar(op: VecOp, dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    const ops = [dst, src1, src2];
    if (!(dst instanceof Xmm)) fail(op.name, ops, 'scalar operations take xmm registers');
    this.packed(op, dst, src1, src2);
  }

  /** loads/register copies through `ld`, stores through `st` */
  private move(ld: VecOp, st: VecOp, dst: Vec | Mem, src: Vec | Mem): void {
    const ops = [dst, src];
    if (dst instanceof Mem) {
      if (!isVec(src)) return fail(st.name, ops, 'memory to memory is not encodable');
      Assembler.plain(st.name, ops, src);
      if (dst.broadcast) fail(st.name, ops, 'a store cannot broadcast');
      this.vec(st, ops, { reg: src.id, vvvv: null, rm: dst, bytes: src.bytes, mask: dst.mask, zeroing: false });
      return;
    }
    Assembler.sameKind(ld.name, ops, dst.kind, src);
    Assembler.plain(ld.name, ops, src);
    this.vec(ld, ops, {
      reg: dst.id, vvvv: null, rm: src instanceof Mem ? src : src.id,
      bytes: dst.bytes, mask: dst.mask, zeroing: dst.zeroing,
    });
  }

  // ---- moves --------------------------------------------------------------------------------

  /** unaligned packed-single load / store / register copy (zmm: masked with `{k}`, `{z}`) */
  vmovups<V extends Vec>(dst: V, src: V | Mem): void;
  vmovups(dst: Mem, src: Vec): void;
  vmovups(dst: Vec | Mem, src: Vec | Mem): void {
    this.move(VEC.vmovups_load, VEC.vmovups_store, dst, src);
  }
  /** aligned packed-single load / store / register copy */
  vmovaps<V extends Vec>(dst: V, src: V | Mem): void;
  vmovaps(dst: Mem, src: Vec): void;
  vmovaps(dst: Vec | Mem, src: Vec | Mem): void {
    this.move(VEC.vmovaps_load, VEC.vmovaps_store, dst, src);
  }
  /** VEX integer move (xmm/ymm); for zmm use vmovdqu32 */
  vmovdqu<V extends Vec>(dst: V, src: V | Mem): void;
  vmovdqu(dst: Mem, src: Vec): void;
  vmovdqu(dst: Vec | Mem, src: Vec | Mem): void {
    this.move(VEC.vmovdqu_load, VEC.vmovdqu_store, dst, src);
  }
  /** EVEX integer move of dwords (zmm) */
  vmovdqu32<V extends Vec>(dst: V, src: V | Mem): void;
  vmovdqu32(dst: Mem, src: Vec): void;
  vmovdqu32(dst: Vec | Mem, src: Vec | Mem): void {
    this.move(VEC.vmovdqu32_load, VEC.vmovdqu32_store, dst, src);
  }

  /** `vmovss xmm, m32` (zeroes lanes 1-3) or `vmovss m32, xmm`; for register copies use vmovaps */
  vmovss(dst: Xmm, src: Mem): void;
  vmovss(dst: Mem, src: Xmm): void;
  vmovss(dst: Xmm | Mem, src: Xmm | Mem): void {
    const ops = [dst, src];
    if (!(dst instanceof Mem && src instanceof Xmm) && !(dst instanceof Xmm && src instanceof Mem)) {
      fail('vmovss', ops, 'forms are vmovss xmm, m32 and vmovss m32, xmm (copy registers with vmovaps)');
    }
    this.move(VEC.vmovss_load, VEC.vmovss_store, dst, src);
  }

  /** broadcast one float from m32 or from lane 0 of an xmm (AVX2 for the register form) */
  vbroadcastss(dst: Vec, src: Xmm | Mem): void {
    const ops = [dst, src];
    if (!isVec(dst)) fail('vbroadcastss', ops, 'destination must be a vector register');
    if (!(src instanceof Mem) && !(src instanceof Xmm)) fail('vbroadcastss', ops, 'source must be m32 or xmm');
    Assembler.plain('vbroadcastss', ops, src);
    if (src instanceof Mem && src.broadcast) fail('vbroadcastss', ops, 'the source is already a single element: drop .bcst()');
    this.vec(VEC.vbroadcastss, ops, {
      reg: dst.id, vvvv: null, rm: src instanceof Mem ? src : src.id,
      bytes: dst.bytes, mask: dst.mask, zeroing: dst.zeroing,
    });
  }

  /** AVX masked load `vmaskmovps dst, mask, [m]` / store `vmaskmovps [m], mask, src` (sign bits of mask select lanes) */
  vmaskmovps<V extends Xmm | Ymm>(dst: V, mask: V, src: Mem): void;
  vmaskmovps<V extends Xmm | Ymm>(dst: Mem, mask: V, src: V): void;
  vmaskmovps(dst: Vec | Mem, mask: Vec, src: Vec | Mem): void {
    const ops = [dst, mask, src];
    if (dst instanceof Mem) {
      if (!isVec(src)) return fail('vmaskmovps', ops, 'store form is vmaskmovps m, mask, src');
      Assembler.sameKind('vmaskmovps', ops, src.kind, mask);
      Assembler.plain('vmaskmovps', ops, src, mask, dst);
      this.vec(VEC.vmaskmovps_store, ops, { reg: src.id, vvvv: mask.id, rm: dst, bytes: src.bytes, mask: 0, zeroing: false });
      return;
    }
    if (!(src instanceof Mem)) return fail('vmaskmovps', ops, 'load form is vmaskmovps dst, mask, m');
    Assembler.sameKind('vmaskmovps', ops, dst.kind, mask);
    Assembler.plain('vmaskmovps', ops, mask, src);
    this.vec(VEC.vmaskmovps_load, ops, { reg: dst.id, vvvv: mask.id, rm: src, bytes: dst.bytes, mask: dst.mask, zeroing: dst.zeroing });
  }

  /**
   * Gather of floats by dword indices.
   * AVX2: `vgatherdps(ymm(0), mem(rax, 0, ymm(1), 4), ymm(2))`: the sign bit of each mask lane selects it.
   * AVX-512: `vgatherdps(zmm(0).k(1), mem(rax, 0, zmm(1), 4))`: the opmask selects lanes.
   * The hardware clears the mask as lanes complete; destination, index and mask must differ.
   */
  vgatherdps(dst: Zmm, src: Mem): void;
  vgatherdps<V extends Xmm | Ymm>(dst: V, src: Mem, mask: V): void;
  vgatherdps(dst: Vec, src: Mem, mask?: Vec): void {
    const ops = mask ? [dst, src, mask] : [dst, src];
    const index = src.index;
    if (!index || index instanceof Gp64) return fail('vgatherdps', ops, 'needs a vector index: mem(base, disp, vreg, scale)');
    if (index.kind !== dst.kind) fail('vgatherdps', ops, `dword indices of a ${dst.kind} gather are a ${dst.kind}`);
    if (src.broadcast || src.mask) fail('vgatherdps', ops, 'no broadcast or memory mask on a gather');
    if (index.id === dst.id) fail('vgatherdps', ops, 'destination and index must be different registers');
    if (mask) {
      if (dst.mask || dst.zeroing) fail('vgatherdps', ops, 'the AVX2 form takes a vector mask, not {k}');
      Assembler.sameKind('vgatherdps', ops, dst.kind, mask);
      Assembler.plain('vgatherdps', ops, mask);
      if (mask.id === dst.id || mask.id === index.id) fail('vgatherdps', ops, 'mask, destination and index must be different registers');
      if (dst instanceof Zmm) fail('vgatherdps', ops, 'the zmm form takes an opmask on the destination: vgatherdps(zmm.k(1), mem)');
      this.vec(VEC.vgatherdps, ops, { reg: dst.id, vvvv: mask.id, rm: src, bytes: dst.bytes, mask: 0, zeroing: false });
      return;
    }
    if (!(dst instanceof Zmm)) return fail('vgatherdps', ops, 'the AVX2 form needs a vector mask operand');
    if (!dst.mask) fail('vgatherdps', ops, 'the AVX-512 gather needs an opmask: zmm.k(1..7)');
    if (dst.zeroing) fail('vgatherdps', ops, 'a gather cannot use {z}');
    this.vec(VEC.vgatherdps, ops, { reg: dst.id, vvvv: null, rm: src, bytes: 64, mask: dst.mask, zeroing: false });
  }

  // ---- arithmetic ---------------------------------------------------------------------------

  /** dst += src1 * src2 (fused, one rounding) */
  vfmadd231ps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vfmadd231ps, dst, src1, src2);
  }
  vaddps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vaddps, dst, src1, src2);
  }
  vsubps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vsubps, dst, src1, src2);
  }
  vmulps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vmulps, dst, src1, src2);
  }
  vdivps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vdivps, dst, src1, src2);
  }
  vminps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vminps, dst, src1, src2);
  }
  vmaxps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vmaxps, dst, src1, src2);
  }
  /** VEX only (xmm/ymm): for zmm use vpxord */
  vxorps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vxorps, dst, src1, src2);
  }
  /** EVEX only (zmm): `vpxord(z, z, z)` zeroes z */
  vpxord<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vpxord, dst, src1, src2);
  }
  /** VEX only: `vpcmpeqd(y, y, y)` sets y to all ones */
  vpcmpeqd<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vpcmpeqd, dst, src1, src2);
  }

  vfmadd231ss(dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    this.scalar(VEC.vfmadd231ss, dst, src1, src2);
  }
  vaddss(dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    this.scalar(VEC.vaddss, dst, src1, src2);
  }
  vsubss(dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    this.scalar(VEC.vsubss, dst, src1, src2);
  }
  vmulss(dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    this.scalar(VEC.vmulss, dst, src1, src2);
  }
  vdivss(dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    this.scalar(VEC.vdivss, dst, src1, src2);
  }
  vminss(dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    this.scalar(VEC.vminss, dst, src1, src2);
  }
  vmaxss(dst: Xmm, src1: Xmm, src2: Xmm | Mem): void {
    this.scalar(VEC.vmaxss, dst, src1, src2);
  }

  /** EVEX bitwise ternary logic (zmm): `vpternlogd(z, z, z, 0xff)` sets z to all ones */
  vpternlogd(dst: Zmm, src1: Zmm, src2: Zmm | Mem, imm8: number): void {
    if (!Number.isInteger(imm8) || imm8 < 0 || imm8 > 255) fail('vpternlogd', [dst, src1, src2, imm8], 'imm8 must be 0..255');
    this.packed(VEC.vpternlogd, dst, src1, src2, imm8);
  }

  // ---- the epilogue's forms: FMA variants, rounding, conversion, integer add and shift ------

  /** dst = dst * src1 + src2 (the multiplier src1 survives: Horner steps p = p*x + c) */
  vfmadd213ps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vfmadd213ps, dst, src1, src2);
  }
  /** dst = -(src1 * src2) + dst */
  vfnmadd231ps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vfnmadd231ps, dst, src1, src2);
  }
  /** dst = -(src1 * src2) - dst */
  vfnmsub231ps<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vfnmsub231ps, dst, src1, src2);
  }

  /** VEX rounding to an integral float (imm8 bits 1:0 = mode, 0 nearest even); for zmm use vrndscaleps */
  vroundps<V extends Xmm | Ymm>(dst: V, src: V | Mem, imm8: number): void {
    Assembler.imm8('vroundps', [dst, src, imm8], imm8);
    this.vecUnary(VEC.vroundps, dst, src, imm8);
  }
  /** EVEX rounding (zmm): imm8 bits 7:4 = fraction bits kept (0: to an integer), bits 1:0 = mode as vroundps */
  vrndscaleps(dst: Zmm, src: Zmm | Mem, imm8: number): void {
    Assembler.imm8('vrndscaleps', [dst, src, imm8], imm8);
    if (!(dst instanceof Zmm)) fail('vrndscaleps', [dst, src, imm8], 'vrndscaleps takes zmm (AVX512VL forms are not emitted): use vroundps for xmm/ymm');
    this.vecUnary(VEC.vrndscaleps, dst, src, imm8);
  }
  /** float to int32 lanes, rounded by MXCSR (nearest even by default) */
  vcvtps2dq<V extends Vec>(dst: V, src: V | Mem): void {
    this.vecUnary(VEC.vcvtps2dq, dst, src);
  }
  /** int32 lane add (AVX2 for ymm) */
  vpaddd<V extends Vec>(dst: V, src1: V, src2: V | Mem): void {
    this.packed(VEC.vpaddd, dst, src1, src2);
  }
  /** int32 lane shift left by an immediate (AVX2 for ymm); register source only */
  vpslld<V extends Vec>(dst: V, src: V, imm8: number): void {
    const ops = [dst, src, imm8];
    Assembler.imm8('vpslld', ops, imm8);
    if (!isVec(dst) || !isVec(src)) fail('vpslld', ops, 'the shift-by-immediate form takes vector registers here (no memory source)');
    Assembler.sameKind('vpslld', ops, dst.kind, src);
    Assembler.plain('vpslld', ops, src);
    // group 72 /6: ModRM.reg is the opcode extension, the destination goes in vvvv
    this.vec(VEC.vpslld_imm, ops, { reg: 6, vvvv: dst.id, rm: src.id, bytes: dst.bytes, mask: dst.mask, zeroing: dst.zeroing, imm: imm8 });
  }

  /** dst = op(src) for forms without an NDS register (vvvv unused), with an optional imm8 */
  private vecUnary(op: VecOp, dst: Vec, src: Vec | Mem, imm?: number): void {
    const ops = imm === undefined ? [dst, src] : [dst, src, imm];
    if (!isVec(dst)) fail(op.name, ops, 'destination must be a vector register');
    Assembler.sameKind(op.name, ops, dst.kind, src);
    Assembler.plain(op.name, ops, src);
    this.vec(op, ops, {
      reg: dst.id, vvvv: null, rm: src instanceof Mem ? src : src.id, bytes: dst.bytes, mask: dst.mask, zeroing: dst.zeroing, imm,
    });
  }

  // ---- permutes and shuffles ----------------------------------------------------------------

  /** per 128-bit lane: dst = [src1[imm 1:0], src1[imm 3:2], src2[imm 5:4], src2[imm 7:6]] */
  vshufps<V extends Vec>(dst: V, src1: V, src2: V | Mem, imm8: number): void {
    Assembler.imm8('vshufps', [dst, src1, src2, imm8], imm8);
    this.packed(VEC.vshufps, dst, src1, src2, imm8);
  }

  /** dst[i] = src[index[i]] across the whole register (ymm: index bits 2:0, zmm: bits 3:0); no xmm form */
  vpermps<V extends Ymm | Zmm>(dst: V, index: V, src: V | Mem): void {
    if (!(dst instanceof Ymm || dst instanceof Zmm)) fail('vpermps', [dst, index, src], 'vpermps permutes ymm or zmm (there is no xmm form)');
    this.packed(VEC.vpermps, dst, index, src);
  }

  /** two-table permute (zmm): dst[i] = (index[i] & 16 ? src : dst)[index[i] & 15]; the index register survives */
  vpermt2ps(dst: Zmm, index: Zmm, src: Zmm | Mem): void {
    if (!(dst instanceof Zmm)) fail('vpermt2ps', [dst, index, src], 'vpermt2ps takes zmm (AVX512VL forms are not emitted)');
    this.packed(VEC.vpermt2ps, dst, index, src);
  }

  /** ymm qword permute by immediate: dst.q[i] = src.q[imm8 bits 2i+1:2i] (VEX.256.W1) */
  vpermpd(dst: Ymm, src: Ymm | Mem, imm8: number): void {
    const ops = [dst, src, imm8];
    if (!(dst instanceof Ymm)) fail('vpermpd', ops, 'vpermpd takes ymm here (no xmm form; zmm: use vpermt2ps / vpermps)');
    Assembler.imm8('vpermpd', ops, imm8);
    Assembler.sameKind('vpermpd', ops, dst.kind, src);
    Assembler.plain('vpermpd', ops, src);
    this.vec(VEC.vpermpd, ops, {
      reg: dst.id, vvvv: null, rm: src instanceof Mem ? src : src.id, bytes: 32, mask: dst.mask, zeroing: dst.zeroing, imm: imm8,
    });
  }

  private static imm8(name: string, ops: readonly unknown[], imm8: number): void {
    if (!Number.isInteger(imm8) || imm8 < 0 || imm8 > 255) fail(name, ops, 'imm8 must be 0..255');
  }

  /** clears the upper halves of all ymm/zmm registers: emit before returning to SSE code */
  vzeroupper(): void {
    emitVex(this.buf, { map: M0F, pp: 0, w: 0, l: 0, r: 0, x: 0, b: 0, vvvv: 0 });
    this.buf.u8(VZEROUPPER);
  }

  // ---- opmask -------------------------------------------------------------------------------

  /** opmask instructions are VEX-encoded (map 0F, W0) */
  private kop(opcode: number, l: 0 | 1, reg: number, vvvv: number, rm: number | Mem): void {
    const { x, b } = Assembler.xb(rm);
    emitVex(this.buf, { map: M0F, pp: 0, w: 0, l, r: (reg >> 3) & 1, x, b, vvvv });
    this.buf.u8(opcode);
    this.modrm(reg, rm, 1, 0);
  }

  /** `kmovw k, r32 | m16 | k` and `kmovw r32 | m16, k` */
  kmovw(dst: KReg, src: KReg | Gp32 | Mem): void;
  kmovw(dst: Gp32 | Mem, src: KReg): void;
  kmovw(dst: KReg | Gp32 | Mem, src: KReg | Gp32 | Mem): void {
    const ops = [dst, src];
    if (dst instanceof KReg) {
      if (src instanceof KReg) this.kop(KOP.kmovw_k_km, 0, dst.id, 0, src.id);
      else if (src instanceof Gp32) this.kop(KOP.kmovw_k_r, 0, dst.id, 0, src.id);
      else if (src instanceof Mem) this.kop(KOP.kmovw_k_km, 0, dst.id, 0, this.gpMem('kmovw', ops, src, 0));
      else fail('kmovw', ops, 'source must be k, r32 or m16');
    } else if (src instanceof KReg) {
      if (dst instanceof Gp32) this.kop(KOP.kmovw_r_k, 0, dst.id, 0, src.id);
      else if (dst instanceof Mem) this.kop(KOP.kmovw_m_k, 0, src.id, 0, this.gpMem('kmovw', ops, dst, 0));
      else fail('kmovw', ops, 'destination must be k, r32 or m16');
    } else {
      fail('kmovw', ops, 'one operand must be an opmask register');
    }
  }

  /** dst = ~(a ^ b); `kxnorw(k1, k0, k0)` sets k1 to all ones */
  kxnorw(dst: KReg, a: KReg, b: KReg): void {
    if (!(dst instanceof KReg && a instanceof KReg && b instanceof KReg)) fail('kxnorw', [dst, a, b], 'operands must be opmask registers');
    this.kop(KOP.kxnorw, 1, dst.id, a.id, b.id);
  }

  /** flags from a | b: ZF if all zero, CF if all ones */
  kortestw(a: KReg, b: KReg): void {
    if (!(a instanceof KReg && b instanceof KReg)) fail('kortestw', [a, b], 'operands must be opmask registers');
    this.kop(KOP.kortestw, 0, a.id, 0, b.id);
  }
}
