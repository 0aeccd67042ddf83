/**
 * The vector vocabulary the row kernels (row-kernels.ts) are written in, one class for both ISAs:
 * AVX-512 (zmm, 16 lanes, a k1 tail mask) and AVX2 (ymm, 8 lanes, a vmaskmovps tail mask). A row
 * kernel walks rows of a length fixed at emission, so every loop bound, displacement and tail
 * mask is a constant here.
 *
 *   const e = new RowEmitter('avx512');
 *   e.pass(rowLength, 4, (at, slot) => e.a.vaddps(e.v(slot), e.v(slot), at(rdi)), (at) => ...);
 *   e.allLanes('add', e.v(0), e.v(6));       // every lane = the sum of v0's lanes
 *   const code = e.finish();                  // code, then the constant pool
 *
 * Constants are full vectors in a pool after the code (RIP-relative memory operands, 64-byte
 * aligned), so no instruction needs an embedded broadcast and both ISAs read them the same way.
 * Two instructions the Assembler lacks (vscalefps, vsqrtps) are encoded here, register forms only.
 */
import { CodeBuffer } from './buffer.ts';
import { Assembler } from './encoder.ts';
import { emitEvex } from './evex.ts';
import { emitVex } from './vex.ts';
import { Mem, Ymm, Zmm, eax, k1, memRip, rax, ymm, zmm, type Gp64 } from './registers.ts';

export type RowIsa = 'avx2' | 'avx512';
export const ROW_ISAS: readonly RowIsa[] = ['avx512', 'avx2'];

/** A vector register of the emitter's ISA. */
export type RowVec = Ymm | Zmm;

/** Addresses element offset `rax` (bytes, the pass's position in the row) plus `disp` from `base`. */
export type RowAddress = (base: Gp64) => Mem;

/** AVX2 register that holds the tail's lane mask (sign bits) while a kernel runs. */
const AVX2_TAIL_MASK = 15;
/** AVX-512 registers that hold the two cross-lane permutations of allLanes. */
const ZMM_SWAP_256 = 30, ZMM_SWAP_128 = 29;

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
/** the bits of `value` rounded to fp32 */
export function floatBits(value: number): number {
  F32[0] = value;
  return U32[0]!;
}

export class RowEmitter {
  readonly a = new Assembler();
  readonly lanes: 8 | 16;
  /** bytes of one vector */
  readonly bytes: 32 | 64;
  readonly #pool = this.a.newLabel();
  /** pooled vectors by their lanes' bits, in pool order */
  readonly #constants = new Map<string, number>();
  #poolVectors: (readonly number[])[] = [];
  /** lanes of the row tail the current mask selects (0: none set up) */
  #tail = 0;
  #reductionsReady = false;

  constructor(readonly isa: RowIsa) {
    if (isa !== 'avx2' && isa !== 'avx512') throw new Error(`row kernels: unknown isa ${String(isa)}`);
    this.lanes = isa === 'avx512' ? 16 : 8;
    this.bytes = isa === 'avx512' ? 64 : 32;
  }

  /** vector register `i` of this ISA (0-15 are usable on both; 15, 29, 30 are the emitter's own) */
  v(i: number): RowVec {
    return this.isa === 'avx512' ? zmm(i) : ymm(i);
  }

  /** a pooled vector of `value` in every lane (fp32) */
  constant(value: number): Mem {
    return this.bitsConstant(Array<number>(this.lanes).fill(floatBits(value)));
  }

  /** a pooled vector of int32 `value` in every lane */
  intConstant(value: number): Mem {
    return this.bitsConstant(Array<number>(this.lanes).fill(value >>> 0));
  }

  /** a pooled vector with each lane's 32 bits given */
  bitsConstant(lanes: readonly number[]): Mem {
    if (lanes.length !== this.lanes) throw new Error(`a pooled ${this.isa} vector has ${this.lanes} lanes, got ${lanes.length}`);
    const key = lanes.join(',');
    let index = this.#constants.get(key);
    if (index === undefined) {
      index = this.#poolVectors.length;
      this.#constants.set(key, index);
      this.#poolVectors.push(lanes.map((b) => b >>> 0));
    }
    return memRip(this.#pool, index * this.bytes);
  }

  /** a pooled vector: `active` in the first `count` lanes, `inactive` in the rest (fp32) */
  tailConstant(count: number, active: number, inactive: number): Mem {
    return this.bitsConstant(Array.from({ length: this.lanes }, (_, i) => floatBits(i < count ? active : inactive)));
  }

  /**
   * Sets up the mask of a row tail of `count` lanes (1..lanes-1), once per kernel: k1 on AVX-512,
   * a sign-bit mask in ymm15 on AVX2. loadTail / storeTail use it.
   */
  setTail(count: number): void {
    if (!Number.isInteger(count) || count < 1 || count >= this.lanes) throw new RangeError(`a ${this.isa} row tail has 1..${this.lanes - 1} lanes, got ${count}`);
    if (this.isa === 'avx512') {
      this.a.mov(eax, (1 << count) - 1);
      this.a.kmovw(k1, eax);
    } else {
      this.a.vmovups(ymm(AVX2_TAIL_MASK), this.bitsConstant(Array.from({ length: 8 }, (_, i) => (i < count ? 0xffffffff : 0))));
    }
    this.#tail = count;
  }

  /** dst = the tail's lanes from memory, 0 in the others (masked lanes are never read: no fault past the row) */
  loadTail(dst: RowVec, src: Mem): void {
    this.#needTail();
    if (dst instanceof Zmm) this.a.vmovups(dst.k(k1).z(), src);
    else this.a.vmaskmovps(dst, ymm(AVX2_TAIL_MASK), src);
  }

  /** stores the tail's lanes of `src` (the others are never written) */
  storeTail(dst: Mem, src: RowVec): void {
    this.#needTail();
    if (src instanceof Zmm) this.a.vmovups(dst.k(k1), src);
    else this.a.vmaskmovps(dst, ymm(AVX2_TAIL_MASK), src);
  }

  #needTail(): void {
    if (this.#tail === 0) throw new Error('row kernels: a tail load or store before setTail()');
  }

  /**
   * One pass over a row of `length` floats: `body(at, slot)` once per full vector, `tail(at)`
   * once for the length % lanes elements left (when there are any; setTail must have run). `at`
   * addresses the vector from a base register (rax holds the running byte offset: the pass sets
   * it and loops over `unroll` vectors at a time when there are at least two such groups);
   * `slot` is the vector's place in its group, 0..unroll-1, so that sums can keep `unroll`
   * independent accumulators.
   */
  pass(length: number, unroll: number, body: (at: RowAddress, slot: number) => void, tail?: (at: RowAddress) => void): void {
    const a = this.a, bytes = this.bytes;
    const vectors = Math.floor(length / this.lanes);
    const groups = Math.floor(vectors / unroll);
    a.xor(eax, eax);
    let done = 0; // vectors the loop covered: rax's value after it, in vectors
    if (groups >= 2) {
      const top = a.newLabel();
      a.align(16);
      a.bind(top);
      for (let u = 0; u < unroll; u++) body((base) => new Mem(base, u * bytes, rax, 1), u);
      a.add(rax, unroll * bytes);
      a.cmp(rax, groups * unroll * bytes);
      a.jne(top);
      done = groups * unroll;
    }
    // what the loop left: rax = done vectors in, so displacements count from there
    for (let j = done; j < vectors; j++) {
      const disp = (j - done) * bytes;
      body((base) => new Mem(base, disp, rax, 1), (j - done) % unroll);
    }
    if (length % this.lanes !== 0) {
      if (!tail) throw new Error(`row kernels: a row of ${length} has a tail and the pass has no tail body`);
      const disp = (vectors - done) * bytes;
      tail((base) => new Mem(base, disp, rax, 1));
    }
  }

  /**
   * Every lane of `v` = op over all of v's lanes (a butterfly: halves, quarters, pairs, lanes),
   * `t` a scratch register. Addition is commutative in IEEE arithmetic, so every lane ends with
   * the same bits. AVX-512 needs prepareAllLanes() once before.
   */
  allLanes(op: 'add' | 'max', v: RowVec, t: RowVec): void {
    const a = this.a;
    const combine = (): void => (op === 'add' ? a.vaddps(v, v, t) : a.vmaxps(v, v, t));
    if (v instanceof Zmm) {
      if (!this.#reductionsReady) throw new Error('row kernels: allLanes on zmm before prepareAllLanes()');
      a.vpermps(t as Zmm, zmm(ZMM_SWAP_256), v);
      combine();
      a.vpermps(t as Zmm, zmm(ZMM_SWAP_128), v);
      combine();
    } else {
      a.vpermpd(t as Ymm, v, 0x4e); // swap the 128-bit halves (qwords 2,3,0,1)
      combine();
    }
    a.vshufps(t, v, v, 0x4e); // swap 64-bit pairs within each 128-bit lane
    combine();
    a.vshufps(t, v, v, 0xb1); // swap neighbours
    combine();
  }

  /** loads allLanes' permutation indices (AVX-512 only: zmm29, zmm30); nothing on AVX2 */
  prepareAllLanes(): void {
    if (this.isa !== 'avx512') return;
    this.a.vmovups(zmm(ZMM_SWAP_256), this.bitsConstant(Array.from({ length: 16 }, (_, i) => i ^ 8)));
    this.a.vmovups(zmm(ZMM_SWAP_128), this.bitsConstant(Array.from({ length: 16 }, (_, i) => i ^ 4)));
    this.#reductionsReady = true;
  }

  /** dst = src1 * 2^floor(src2) (AVX-512F vscalefps zmm, zmm, zmm: EVEX.512.66.0F38.W0 2C /r) */
  vscalefps(dst: Zmm, src1: Zmm, src2: Zmm): void {
    if (!(dst instanceof Zmm && src1 instanceof Zmm && src2 instanceof Zmm) || dst.mask || src1.mask || src2.mask) {
      throw new Error(`x86 vscalefps ${dst}, ${src1}, ${src2}: the register form on unmasked zmm only`);
    }
    const b = new CodeBuffer();
    emitEvex(b, {
      map: 2, pp: 1, w: 0, reg: dst.id, x: (src2.id >> 4) & 1, b: (src2.id >> 3) & 1,
      vvvv: src1.id, vhigh: (src1.id >> 4) & 1, ll: 2, broadcast: false, aaa: 0, zeroing: false,
    });
    b.u8(0x2c);
    b.u8(0xc0 | ((dst.id & 7) << 3) | (src2.id & 7));
    this.a.emitBytes(b.toBytes());
  }

  /** dst = sqrt(src), correctly rounded (vsqrtps: VEX.256.0F 51 /r on ymm 0-15, EVEX.512.0F.W0 51 /r on zmm) */
  vsqrtps(dst: RowVec, src: RowVec): void {
    if (dst.kind !== src.kind || dst.mask || src.mask) throw new Error(`x86 vsqrtps ${dst}, ${src}: two unmasked registers of one kind`);
    const b = new CodeBuffer();
    if (dst instanceof Zmm) {
      emitEvex(b, {
        map: 1, pp: 0, w: 0, reg: dst.id, x: (src.id >> 4) & 1, b: (src.id >> 3) & 1,
        vvvv: 0, vhigh: 0, ll: 2, broadcast: false, aaa: 0, zeroing: false,
      });
    } else {
      if (dst.id >= 16 || src.id >= 16) throw new Error(`x86 vsqrtps ${dst}, ${src}: ymm 0-15 only (EVEX on ymm needs AVX512VL)`);
      emitVex(b, { map: 1, pp: 0, w: 0, l: 1, r: (dst.id >> 3) & 1, x: 0, b: (src.id >> 3) & 1, vvvv: 0 });
    }
    b.u8(0x51);
    b.u8(0xc0 | ((dst.id & 7) << 3) | (src.id & 7));
    this.a.emitBytes(b.toBytes());
  }

  /** clears every vector register `v` */
  zero(v: RowVec): void {
    if (v instanceof Zmm) this.a.vpxord(v, v, v);
    else this.a.vxorps(v, v, v);
  }

  /** the code, then the constant pool (from `codeSize` on); emit nothing after this */
  finish(): { code: Uint8Array; codeSize: number } {
    const a = this.a;
    a.align(64, 'int3');
    a.dataLabel();
    a.bind(this.#pool);
    for (const lanes of this.#poolVectors) for (const bits of lanes) a.emitU32(bits);
    return { code: a.finish(), codeSize: a.codeSize };
  }
}
