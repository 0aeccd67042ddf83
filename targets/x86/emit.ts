/**
 * The x86-64 emitter: a LoopProgram becomes machine code for AVX2 (ymm, 8 lanes) or AVX-512
 * (zmm, 16 lanes), or for the scalar path (xmm, 1 lane) when the lowering did not vectorize.
 *
 * Registers:
 *  - tensor pointers stay in their argument registers (rdi = output, rsi, rdx); `reps` and loop
 *    counters take the free caller-saved registers, then callee-saved ones (saved in the
 *    prologue), then stack slots;
 *  - vector registers 0..A-1 hold the tile's accumulators, the rest up to the pool limit cache
 *    operands (loaded once while they still have uses, freed after their last use);
 *  - set aside at the top of the register file when the lowering decided so: a zero register
 *    (relu), and below it, on AVX2, the vmaskmovps lane mask, then on AVX-512 the permutation
 *    index of strided reads (loaded once in the prologue); AVX-512 tails use opmask k1, strided
 *    reads k2..k7 (one per element count in use), all loaded from a constant table.
 * Epilogue (TileNode.epilogue): after the tile's body, each accumulator in turn gets the program's
 * ops and is stored; the registers above the accumulators (the operand cache is dead by then, and
 * the lowering leaves caps.epilogueScratch of them) are its scratch. Constants live in a pool after
 * the code, read as RIP-relative memory operands: one dword under {1to16} on AVX-512, 32 bytes of
 * copies for AVX2 and the scalar path (which runs the packed xmm forms, lane 0 being the element).
 * The pool (with the mask and index tables) starts at X86Code.codeSize, right after the `ret`, so
 * that a disassembly lists it as data instead of decoding it.
 * The kernel ABI takes up to 5 tensor pointers (rdi, rsi, rdx, rcx, r8); reps, tid and threads
 * follow in the next argument registers, then on the caller's stack (saveArgument).
 * Strided vector operands (stride 2: lane i reads offset + 2i) are loaded into a register with
 * two loads and a permute, never read as a memory operand; see loadStrided.
 * Packing (PackNode): the scratch buffer lives in the frame, 64-byte aligned above the counter
 * slots (the prologue touches it a page at a time, top down, so the stack grows page by page);
 * the copy runs on rax, r10 (saved around it) and r11 with vector register 0, which holds no
 * accumulator outside a tile; the tensor's pointer is parked in a frame slot while the body reads
 * the scratch buffer.
 */
import type { Combine, EpilogueKind, EpilogueOp } from '../../ir/problem.ts';
import {
  chunkCount, childBodies, packElements, type Accumulator, type ComputeNode, type ComputeOp, type LoopNode, type LoopProgram, type Operand,
  type PackNode, type ParallelNode, type ProgramNode, type TileNode,
} from '../../loopnest/program.ts';
import { Assembler } from './encoder.ts';
import {
  type Gp64, type KReg, type Label, Mem, type Vec, type Xmm, type Ymm, Zmm,
  mem, memRip, qword, eax, edx, rax, rbp, rbx, rcx, rdi, rdx, rsi, rsp, r8, r9, r10, r11, r12, r13, r14, r15, k1, kreg, xmm, ymm, zmm,
} from './registers.ts';

export type X86Isa = 'avx2' | 'avx512';


const ARG_REGS = [rdi, rsi, rdx, rcx, r8, r9];
const CALLER_SAVED_POOL = [rax, rcx, r8, r9, r10, rdx, rsi];
const CALLEE_SAVED = [rbx, rbp, r12, r13, r14, r15];
const SCRATCH = r11;
/** opmasks of strided loads: k2..k7 (k1 is the accumulators' tail mask) */
const STRIDE_MASKS = { first: 2, count: 6 } as const;

type Counter = { kind: 'reg'; reg: Gp64 } | { kind: 'stack'; offset: number };

/** Machine code of a kernel: instructions, then from `codeSize` on the constant pool (data, never executed). */
export interface X86Code {
  code: Uint8Array;
  /** bytes of instructions (up to and including the `ret`); code.length when there is no pool */
  codeSize: number;
}

export function emitX86(program: LoopProgram, isa: X86Isa): X86Code {
  return new X86Emitter(program, isa).emit();
}

class X86Emitter {
  private readonly a = new Assembler();
  private readonly lanes: number;
  private readonly pointers: Gp64[];
  private readonly counters: Counter[] = [];
  private readonly savedRegs: Gp64[] = [];
  private stackSlots = 0;
  private readonly poolLimit: number;
  private readonly zeroReg: number;
  private readonly maskReg: number;
  private readonly indexReg: number;
  /** lane count currently held by the tail mask (k1 or the AVX2 mask register), or -1 when unknown */
  private maskCount = -1;
  /** element masks of strided AVX-512 loads: lane count -> opmask k2..k7 holding it, least recently used first */
  private readonly strideMasks = new Map<number, number>();
  private maskTable: Label | null = null;
  private indexTable: Label | null = null;
  private readonly combine: Combine;
  private packSlot = -1;
  private packing = false;
  private scratchBase = 0;
  private frameBytes = 0;
  /** frame slots of the parallel band (offsets from rsp), when the program has one */
  private band: BandSlots | null = null;

  constructor(private readonly program: LoopProgram, private readonly isa: X86Isa) {
    this.lanes = program.decision.lanes;
    if (this.lanes !== 1 && this.lanes !== (isa === 'avx512' ? 16 : 8)) {
      throw new Error(`program was lowered for ${this.lanes} lanes, not for ${isa}`);
    }
    this.combine = program.combine;
    const nTensors = program.tensors.length;
    if (nTensors > 5) throw new Error('the x86 kernel ABI passes at most 5 tensors');
    this.pointers = ARG_REGS.slice(0, nTensors);
    const d = program.decision;
    const total = this.lanes === 1 ? 16 : isa === 'avx512' ? 32 : 16;
    this.zeroReg = d.zeroRegister ? total - 1 : -1;
    const aside = (d.zeroRegister ? 1 : 0) + (d.maskRegister ? 1 : 0);
    this.maskReg = d.maskRegister ? total - 1 - (d.zeroRegister ? 1 : 0) : -1;
    this.indexReg = d.indexRegister ? total - 1 - aside : -1;
    this.poolLimit = total - aside - (d.indexRegister ? 1 : 0);
  }

  emit(): X86Code {
    const a = this.a;
    const depth = 1 + loopDepth(this.program.body);
    this.allocateCounters(depth);
    const packBytes = maxPackElements(this.program.body) * 4;
    if (packBytes > 0) this.packSlot = 8 * this.stackSlots++;
    const bandDims = maxBandDims(this.program.body);
    if (bandDims > 0) {
      const slot = (): number => 8 * this.stackSlots++;
      this.band = {
        tid: slot(), threads: slot(), chunk: slot(), end: slot(), rax: slot(), rdx: slot(),
        index: Array.from({ length: bandDims }, slot), offset: this.pointers.map(slot),
      };
    }
    this.scratchBase = 8 * this.stackSlots;
    this.frameBytes = this.scratchBase + (packBytes > 0 ? packBytes + 64 : 0);
    for (const r of this.savedRegs) a.push(r);
    if (this.frameBytes > 0) a.sub(rsp, this.frameBytes);
    for (let off = this.frameBytes - 4096; off >= 0 && packBytes > 0; off -= 4096) a.or(qword(rsp, off), 0);
    if (this.band) {
      // before any counter is set: the tid and threads registers may be counters later
      this.saveArgument(this.pointers.length + 1, this.band.tid);
      this.saveArgument(this.pointers.length + 2, this.band.threads);
    }
    const repsArg = ARG_REGS[this.pointers.length]!;
    if (this.zeroReg >= 0) this.zero(this.vec(this.zeroReg));
    if (this.indexReg >= 0) {
      this.indexTable = a.newLabel();
      a.vmovups(zmm(this.indexReg), memRip(this.indexTable, 0));
    }
    // the repetition loop around the whole nest
    const reps = this.counters[0]!;
    this.setCounter(reps, repsArg);
    const top = a.newLabel();
    this.bindLoopHead(top);
    this.nodes(this.program.body, 1);
    this.countDown(reps, top);
    if (this.frameBytes > 0) a.add(rsp, this.frameBytes);
    for (const r of [...this.savedRegs].reverse()) a.pop(r);
    if (this.lanes > 1 || this.zeroReg >= 0) a.vzeroupper();
    a.ret();
    this.emitConstants();
    return { code: a.finish(), codeSize: a.codeSize };
  }

  // ---- loops -------------------------------------------------------------------------------

  /** Copies integer argument `index` (System V: six registers, then the caller's stack) to a frame slot. */
  private saveArgument(index: number, slot: number): void {
    const reg = ARG_REGS[index];
    if (reg) {
      this.a.mov(qword(rsp, slot), reg);
      return;
    }
    // above the frame: the saved registers, the return address, then arguments 6, 7, ...
    this.a.mov(SCRATCH, qword(rsp, this.frameBytes + 8 * this.savedRegs.length + 8 + 8 * (index - ARG_REGS.length)));
    this.a.mov(qword(rsp, slot), SCRATCH);
  }

  private allocateCounters(depth: number): void {
    const used = new Set(this.pointers.map((p) => p.id));
    used.add(ARG_REGS[this.pointers.length]!.id); // reps arrives here; it is copied to counter 0 first
    const free = CALLER_SAVED_POOL.filter((r) => !this.pointers.some((p) => p.id === r.id));
    // the reps argument register becomes usable once copied, but counter 0 copies it, so keep it out
    const pool = [...free.filter((r) => r.id !== ARG_REGS[this.pointers.length]!.id), ...CALLEE_SAVED];
    for (let d = 0; d < depth; d++) {
      const reg = pool[d];
      if (reg) {
        this.counters.push({ kind: 'reg', reg });
        if (CALLEE_SAVED.includes(reg)) this.savedRegs.push(reg);
      } else {
        this.counters.push({ kind: 'stack', offset: 8 * this.stackSlots++ });
      }
    }
    void used;
  }

  private setCounter(c: Counter, value: number | Gp64): void {
    if (c.kind === 'reg') {
      if (typeof value === 'number') this.a.mov(c.reg, value);
      else this.a.mov(c.reg, value);
    } else if (typeof value === 'number') {
      this.a.mov(qword(rsp, c.offset), value);
    } else {
      this.a.mov(qword(rsp, c.offset), value);
    }
  }

  private countDown(c: Counter, top: Label): void {
    if (c.kind === 'reg') this.a.dec(c.reg);
    else this.a.dec(qword(rsp, c.offset));
    this.a.jnz(top);
    this.maskCount = -1;
    this.strideMasks.clear();
  }

  private bindLoopHead(label: Label): void {
    this.a.bind(label);
    // the mask registers' content is unknown at a join point
    this.maskCount = -1;
    this.strideMasks.clear();
  }

  /** ptr += elements * 4, through the scratch register when the byte count exceeds imm32. */
  private addPointer(ptr: Gp64, elements: number): void {
    const bytes = elements * 4;
    if (bytes === 0) return;
    if (bytes >= -0x8000_0000 && bytes <= 0x7fff_ffff) {
      if (bytes > 0) this.a.add(ptr, bytes);
      else this.a.sub(ptr, -bytes);
    } else {
      this.a.mov(SCRATCH, bytes);
      this.a.add(ptr, SCRATCH);
    }
  }

  private nodes(nodes: readonly ProgramNode[], depth: number): void {
    for (const n of nodes) {
      if (n.kind === 'loop') this.loop(n, depth);
      else if (n.kind === 'tile') this.tile(n, depth);
      else if (n.kind === 'pack') this.pack(n, depth);
      else if (n.kind === 'parallel') this.parallel(n, depth);
      else this.compute(n);
    }
  }

  private loop(n: LoopNode, depth: number): void {
    const a = this.a;
    this.pointers.forEach((p, t) => this.addPointer(p, n.offsets[t]!));
    const c = this.counters[depth]!;
    this.setCounter(c, n.count);
    const top = a.newLabel();
    this.bindLoopHead(top);
    this.nodes(n.body, depth + 1);
    this.pointers.forEach((p, t) => this.addPointer(p, n.advance[t]!));
    this.countDown(c, top);
    this.pointers.forEach((p, t) => this.addPointer(p, -(n.advance[t]! * n.count + n.offsets[t]!)));
  }

  /** This thread's chunks of the band, each at its offsets with its tail mask's body. */
  private parallel(n: ParallelNode, depth: number): void {
    const a = this.a;
    const slots = this.band!;
    const chunks = chunkCount(n.dims);
    this.pointers.forEach((p, t) => this.addPointer(p, n.offsets[t]!));
    a.mov(qword(rsp, slots.rax), rax);
    a.mov(qword(rsp, slots.rdx), rdx);
    // [tid * chunks / threads, (tid + 1) * chunks / threads): balanced, contiguous, covering every chunk once
    for (const [slot, plus] of [[slots.chunk, 0], [slots.end, 1]] as const) {
      a.mov(rax, qword(rsp, slots.tid));
      if (plus) a.inc(rax);
      a.mov(SCRATCH, chunks);
      a.imul(rax, SCRATCH);
      a.xor(edx, edx);
      a.div(qword(rsp, slots.threads));
      a.mov(qword(rsp, slot), rax);
    }
    a.mov(rax, qword(rsp, slots.rax));
    a.mov(rdx, qword(rsp, slots.rdx));
    const done = a.newLabel();
    a.mov(SCRATCH, qword(rsp, slots.chunk));
    a.cmp(SCRATCH, qword(rsp, slots.end));
    a.jae(done);
    const top = a.newLabel();
    this.bindLoopHead(top);
    this.enterChunk(n);
    this.dispatch(n, 0, 0, depth);
    this.pointers.forEach((p, t) => {
      if (n.dims.some((d) => d.advance[t] !== 0)) a.sub(p, qword(rsp, slots.offset[t]!));
    });
    a.inc(qword(rsp, slots.chunk));
    a.mov(SCRATCH, qword(rsp, slots.chunk));
    a.cmp(SCRATCH, qword(rsp, slots.end));
    a.jb(top);
    this.bindLoopHead(done);
    this.pointers.forEach((p, t) => this.addPointer(p, -n.offsets[t]!));
  }

  /** Splits the chunk number into the band's indices (innermost fastest) and moves every pointer to the chunk. */
  private enterChunk(n: ParallelNode): void {
    const a = this.a;
    const slots = this.band!;
    a.mov(qword(rsp, slots.rax), rax);
    a.mov(qword(rsp, slots.rdx), rdx);
    a.mov(rax, qword(rsp, slots.chunk));
    for (let j = n.dims.length - 1; j > 0; j--) {
      const d = n.dims[j]!;
      a.xor(edx, edx);
      a.mov(SCRATCH, d.count + (d.tail ? 1 : 0));
      a.div(SCRATCH);
      a.mov(qword(rsp, slots.index[j]!), rdx);
    }
    a.mov(qword(rsp, slots.index[0]!), rax);
    this.pointers.forEach((_, t) => {
      if (!n.dims.some((d) => d.advance[t] !== 0)) return;
      a.xor(eax, eax);
      n.dims.forEach((d, j) => {
        const bytes = d.advance[t]! * 4;
        if (bytes === 0) return;
        a.mov(SCRATCH, qword(rsp, slots.index[j]!));
        if (bytes >= -0x8000_0000 && bytes <= 0x7fff_ffff) a.imul(SCRATCH, SCRATCH, bytes);
        else {
          a.mov(rdx, bytes);
          a.imul(SCRATCH, rdx);
        }
        a.add(rax, SCRATCH);
      });
      a.mov(qword(rsp, slots.offset[t]!), rax);
    });
    a.mov(rax, qword(rsp, slots.rax));
    a.mov(rdx, qword(rsp, slots.rdx));
    this.pointers.forEach((p, t) => {
      if (n.dims.some((d) => d.advance[t] !== 0)) a.add(p, qword(rsp, slots.offset[t]!));
    });
  }

  /** Branches on dim j's tail (when it has both kinds of iteration) down to the body of the chunk's mask. */
  private dispatch(n: ParallelNode, j: number, mask: number, depth: number): void {
    if (j === n.dims.length) {
      this.nodes(n.bodies[mask]!, depth);
      return;
    }
    const d = n.dims[j]!;
    if (!d.tail || d.count === 0) {
      this.dispatch(n, j + 1, d.tail ? mask | (1 << j) : mask, depth);
      return;
    }
    const a = this.a;
    const tail = a.newLabel();
    const join = a.newLabel();
    a.cmp(qword(rsp, this.band!.index[j]!), d.count);
    a.je(tail);
    this.dispatch(n, j + 1, mask, depth);
    a.jmp(join);
    this.bindLoopHead(tail);
    this.dispatch(n, j + 1, mask | (1 << j), depth);
    this.bindLoopHead(join);
  }

  /** Copies the box into the scratch buffer, runs the body on it, restores the tensor pointer. */
  private pack(n: PackNode, depth: number): void {
    const a = this.a;
    const ptr = this.pointers[n.tensor]!;
    const [outer, inner] = n.dims.length === 2 ? [n.dims[0]!, n.dims[1]!] : [{ count: 1, stride: 0 }, n.dims[0]!];
    if (n.dims.length > 2 || inner.stride !== 1 || inner.count % this.lanes !== 0 || outer.stride * 4 > 0x7fff_ffff) {
      throw new Error(`pack node the emitter cannot copy: ${JSON.stringify(n.dims)}`);
    }
    if (this.packing) throw new Error('nested pack nodes: the emitter has one pointer slot');
    this.packing = true;
    const src = rax, dst = r10, rows = SCRATCH;
    a.push(rax);
    a.push(r10);
    // the frame moved by the two pushes
    a.lea(dst, mem(rsp, 16 + this.scratchBase + 63));
    a.and(dst, -64);
    a.mov(src, ptr);
    this.addPointer(src, n.offset);
    a.mov(rows, outer.count);
    const top = a.newLabel();
    this.bindLoopHead(top);
    const v = this.vec(0);
    for (let j = 0; j < inner.count; j += this.lanes) {
      a.vmovups(v, mem(src, j * 4));
      a.vmovups(mem(dst, j * 4), v);
    }
    this.addPointer(src, outer.stride);
    a.add(dst, inner.count * 4);
    a.dec(rows);
    a.jnz(top);
    a.pop(r10);
    a.pop(rax);
    a.mov(qword(rsp, this.packSlot), ptr);
    a.lea(ptr, mem(rsp, this.scratchBase + 63));
    a.and(ptr, -64);
    this.nodes(n.body, depth);
    a.mov(ptr, qword(rsp, this.packSlot));
    this.packing = false;
  }

  // ---- the register tile ---------------------------------------------------------------------

  private accumulators: Accumulator[] = [];
  /** operand key -> register, in least-recently-used order (Map keeps insertion order) */
  private cache = new Map<number, number>();
  private remainingUses = new Map<number, number>();
  private freeRegs: number[] = [];

  private tile(n: TileNode, depth: number): void {
    if (n.accumulators.length > this.poolLimit - 2) {
      throw new Error(`tile of ${n.accumulators.length} accumulators exceeds the register pool`);
    }
    const ops = n.epilogue ? this.program.epilogue ?? [] : [];
    const scratch = Math.max(0, ...ops.map((e) => X86_EPILOGUE_SCRATCH[e.kind]));
    if (n.accumulators.length + scratch > this.poolLimit) {
      throw new Error(`tile of ${n.accumulators.length} accumulators leaves fewer than the ${scratch} registers its epilogue needs`);
    }
    this.accumulators = n.accumulators;
    n.accumulators.forEach((acc, i) => {
      if (n.loadOutput) this.loadVector(this.vec(i), this.pointers[0]!, acc.offset, acc.count);
      else if (n.zeroOutput) this.zero(this.vec(i));
    });
    this.nodes(n.body, depth);
    // the operand cache died with the body: the registers above the accumulators are scratch now
    const free = Array.from({ length: scratch }, (_, j) => this.vec(n.accumulators.length + j));
    n.accumulators.forEach((acc, i) => {
      if (ops.length > 0) this.epilogue(ops, this.vec(i), acc, free);
      this.storeVector(this.vec(i), acc.offset, acc.count);
    });
  }

  // ---- the fused epilogue ----------------------------------------------------------------------

  /**
   * Applies the ops in order to accumulator `x` (all its lanes; lanes past acc.count are never
   * stored) with the scratch registers `s`. Constants come from the RIP-relative pool as memory
   * operands (AVX-512: {1to16} broadcasts of one dword); the scalar path runs the same packed
   * instructions on xmm, lane 0 being the element.
   */
  private epilogue(ops: readonly EpilogueOp[], x: Vec, acc: Accumulator, s: Vec[]): void {
    const a = this.a;
    let operand = 0;
    for (const e of ops) {
      switch (e.kind) {
        case 'bias':
        case 'residual': {
          const o = acc.operands?.[operand++];
          if (!o) throw new Error(`an accumulator at ${acc.offset} has no operand for its ${e.kind}`);
          const m = this.memoryOperand(o);
          if (this.lanes === 1) a.vaddss(x.xmm, x.xmm, m ?? this.loaded(s[0]!, o).xmm);
          else a.vaddps(x, x, m ?? this.loaded(s[0]!, o));
          break;
        }
        case 'scale':
          a.vmulps(x, x, this.constant(e.value));
          break;
        case 'relu':
          // with equal operands (0 and -0) vmaxps returns the second: +0, as max(x, 0)
          a.vmaxps(x, x, this.constant(0));
          break;
        case 'clip':
          a.vmaxps(x, x, this.constant(e.min));
          a.vminps(x, x, this.constant(e.max));
          break;
        case 'sigmoid':
          this.sigmoid(x, s[0]!, s[1]!);
          break;
        case 'gelu':
          this.gelu(x, s[0]!, s[1]!, s[2]!);
          break;
      }
    }
  }

  private loaded(reg: Vec, o: Operand): Vec {
    this.loadOperand(reg, o);
    return reg;
  }

  /**
   * x = 1 / (1 + exp(-x)), exp as Cephes' expf: -x clamped to [-87.3, 88.3] (2^n stays a normal
   * float), n = round(-x log2e), r = -x - n ln2 in two parts (Cody-Waite), e^r by a degree-7
   * Horner polynomial, 2^n built in the exponent bits ((n + 127) << 23). About 1 ulp.
   */
  private sigmoid(x: Vec, r: Vec, n: Vec): void {
    const a = this.a;
    a.vmaxps(r, x, this.constant(-88.3));
    a.vminps(r, r, this.constant(87.3));
    a.vmulps(n, r, this.constant(-Math.LOG2E));
    this.roundNearest(n);
    a.vfnmsub231ps(r, n, this.constant(LN2_HI)); // r = -x - n ln2_hi
    a.vfnmadd231ps(r, n, this.constant(LN2_LO)); // r -= n ln2_lo
    a.vcvtps2dq(n, n);
    a.vpaddd(n, n, this.constant(127, 'int'));
    a.vpslld(n, n, 23);
    this.horner(x, r, EXP_POLY);
    a.vmulps(x, x, n);
    a.vaddps(x, x, this.constant(1));
    a.vbroadcastss(r, this.constantElement(1));
    a.vdivps(x, r, x);
  }

  /**
   * x = x/2 (1 + erf(x / sqrt 2)), erf as Eigen and XLA compute it in float: the argument clamped
   * to [-4, 4] (erf is 1 in float beyond), then u P(u^2) / Q(u^2) with P of degree 6 and Q of
   * degree 4 in u^2 (a few 1e-7 absolute near the clamp: gelu measured within 8 ulps of
   * max(1, |gelu|) on [-20, 20], about 1 ulp elsewhere).
   */
  private gelu(x: Vec, u: Vec, u2: Vec, p: Vec): void {
    const a = this.a;
    a.vmulps(u, x, this.constant(Math.SQRT1_2));
    a.vminps(u, u, this.constant(4));
    a.vmaxps(u, u, this.constant(-4));
    a.vmulps(u2, u, u);
    this.horner(p, u2, ERF_P);
    a.vmulps(u, u, p);
    this.horner(p, u2, ERF_Q);
    a.vdivps(u, u, p);
    a.vmulps(x, x, this.constant(0.5));
    a.vfmadd231ps(x, x, u); // x/2 + x/2 erf
  }

  /** dst = c[0] t^(k-1) + ... + c[k-1]: a broadcast, then one FMA per coefficient (dst = dst t + c) */
  private horner(dst: Vec, t: Vec, c: readonly number[]): void {
    this.a.vbroadcastss(dst, this.constantElement(c[0]!));
    for (const v of c.slice(1)) this.a.vfmadd213ps(dst, t, this.constant(v));
  }

  /** round to the nearest integer, ties to even (imm8 0: that mode, not MXCSR's) */
  private roundNearest(v: Vec): void {
    if (v instanceof Zmm) this.a.vrndscaleps(v, v, 0);
    else this.a.vroundps(v as Xmm | Ymm, v as Xmm | Ymm, 0);
  }

  /** fp32 constants (and int32 ones, by bit pattern) of the pool: bits -> label */
  private readonly pool = new Map<number, Label>();

  /** The pool entry of a constant as a full-width source operand: {1to16} on AVX-512, a whole vector of copies otherwise. */
  private constant(value: number, type: 'float' | 'int' = 'float'): Mem {
    const m = this.constantElement(value, type);
    return this.isa === 'avx512' && this.lanes > 1 ? m.bcst() : m;
  }

  /** The first element of a constant's pool entry (an m32 for vbroadcastss). */
  private constantElement(value: number, type: 'float' | 'int' = 'float'): Mem {
    const bits = type === 'int' ? value >>> 0 : floatBits(value);
    let label = this.pool.get(bits);
    if (!label) {
      label = this.a.newLabel();
      this.pool.set(bits, label);
    }
    return memRip(label, 0);
  }

  private compute(n: ComputeNode): void {
    const first = this.accumulators.length;
    this.freeRegs = [];
    for (let r = first; r < this.poolLimit; r++) this.freeRegs.push(r);
    this.cache.clear();
    this.remainingUses.clear();
    for (const g of n.groups) {
      for (const op of g) {
        for (const x of op.inputs) {
          const k = key(x);
          this.remainingUses.set(k, (this.remainingUses.get(k) ?? 0) + 1);
        }
      }
    }
    for (const g of n.groups) for (const op of g) this.op(op);
  }

  private op(op: ComputeOp): void {
    const acc = this.vec(op.acc);
    const [x, y] = op.inputs;
    const a = this.a;
    const ss = this.lanes === 1;
    switch (this.combine) {
      case 'fma': {
        // one source must be a register; let the operand with more remaining uses be it
        const [regOp, memOp] = this.uses(x!) >= this.uses(y!) ? [x!, y!] : [y!, x!];
        const r = this.register(regOp, [memOp]);
        const m = this.source(memOp, [regOp]);
        if (ss) a.vfmadd231ss(acc.xmm, r.xmm, asScalar(m));
        else a.vfmadd231ps(acc, r, m);
        break;
      }
      case 'sum':
        if (ss) a.vaddss(acc.xmm, acc.xmm, asScalar(this.source(x!, [])));
        else a.vaddps(acc, acc, this.source(x!, []));
        break;
      case 'max':
        if (ss) a.vmaxss(acc.xmm, acc.xmm, asScalar(this.source(x!, [])));
        else a.vmaxps(acc, acc, this.source(x!, []));
        break;
      case 'add':
      case 'mul': {
        const r = this.register(x!, [y!]);
        const m = this.source(y!, [x!]);
        if (this.combine === 'add') {
          if (ss) a.vaddss(acc.xmm, r.xmm, asScalar(m));
          else a.vaddps(acc, r, m);
        } else if (ss) a.vmulss(acc.xmm, r.xmm, asScalar(m));
        else a.vmulps(acc, r, m);
        break;
      }
      case 'relu':
        // max(zero, x): with equal or unordered inputs vmaxps returns the second (memory) operand
        if (ss) a.vmaxss(acc.xmm, xmm(this.zeroReg), asScalar(this.source(x!, [])));
        else a.vmaxps(acc, this.vec(this.zeroReg), this.source(x!, []));
        break;
      case 'copy':
        this.loadOperand(acc, x!);
        break;
    }
    for (const i of op.inputs) this.used(i);
  }

  private uses(x: Operand): number {
    return this.remainingUses.get(key(x)) ?? 0;
  }

  /** After an op: the operand has one use less; its register returns to the pool after the last. */
  private used(x: Operand): void {
    const k = key(x);
    const left = (this.remainingUses.get(k) ?? 1) - 1;
    this.remainingUses.set(k, left);
    if (left <= 0) {
      const r = this.cache.get(k);
      if (r !== undefined) {
        this.cache.delete(k);
        this.freeRegs.push(r);
      }
    }
  }

  /** The operand as an instruction source: a memory operand when it is used once and encodable. */
  private source(x: Operand, pinned: Operand[]): Vec | Mem {
    const k = key(x);
    const cached = this.cache.get(k);
    if (cached !== undefined) return this.touch(k, cached);
    if (this.uses(x) <= 1) {
      const m = this.memoryOperand(x);
      if (m) return m;
    }
    return this.register(x, pinned);
  }

  /** The operand in a register, loading it (and evicting the least recently used) if needed. */
  private register(x: Operand, pinned: Operand[]): Vec {
    const k = key(x);
    const cached = this.cache.get(k);
    if (cached !== undefined) return this.touch(k, cached);
    let r = this.freeRegs.pop();
    if (r === undefined) {
      const keep = new Set(pinned.map(key));
      const victim = [...this.cache.keys()].find((c) => !keep.has(c));
      if (victim === undefined) throw new Error('operand register pool exhausted');
      r = this.cache.get(victim)!;
      this.cache.delete(victim);
    }
    const reg = this.vec(r);
    this.loadOperand(reg, x);
    this.cache.set(k, r);
    return reg;
  }

  private touch(k: number, r: number): Vec {
    this.cache.delete(k);
    this.cache.set(k, r);
    return this.vec(r);
  }

  private loadOperand(reg: Vec, x: Operand): void {
    const ptr = this.pointers[x.tensor]!;
    if (x.mode === 'broadcast' && this.lanes > 1) this.a.vbroadcastss(reg, mem(ptr, x.offset * 4));
    else if (x.mode === 'vector' && (x.stride ?? 1) !== 1 && this.lanes > 1) this.loadStrided(reg, ptr, x.offset, x.count, x.stride!);
    else this.loadVector(reg, ptr, x.offset, x.mode === 'broadcast' ? 1 : x.count);
  }

  /** A memory operand for the operand, when the ISA can read it directly from memory. */
  private memoryOperand(x: Operand): Mem | null {
    const m = mem(this.pointers[x.tensor]!, x.offset * 4);
    if (this.lanes === 1) return m;
    if (x.mode === 'broadcast') return this.isa === 'avx512' ? m.bcst() : null;
    return x.count === this.lanes && (x.stride ?? 1) === 1 ? m : null;
  }

  // ---- vector loads and stores with tails ----------------------------------------------------

  private vec(i: number): Vec {
    if (this.lanes === 1) return xmm(i);
    return this.isa === 'avx512' ? zmm(i) : ymm(i);
  }

  private zero(v: Vec): void {
    if (this.isa === 'avx512' && this.lanes > 1) this.a.vpxord(zmm(v.id), zmm(v.id), zmm(v.id));
    else this.a.vxorps(v, v, v);
  }

  private loadVector(reg: Vec, ptr: Gp64, offset: number, count: number): void {
    const m = mem(ptr, offset * 4);
    if (this.lanes === 1) this.a.vmovss(reg.xmm, m);
    else if (count === this.lanes) this.a.vmovups(reg, m);
    else if (this.isa === 'avx512') {
      this.ensureMask(count);
      this.a.vmovups(zmm(reg.id).k(k1).z(), m);
    } else {
      this.ensureMask(count);
      this.a.vmaskmovps(ymm(reg.id), ymm(this.maskRegister()), m);
    }
  }

  /**
   * Lanes 0..count-1 of `reg` = the elements offset + 2i, touching no element past the last one
   * (guarded buffers end right after a tensor), lanes past `count` undefined:
   *  - AVX-512, count > 8: the 2count-17 elements from offset+16, masked (k2..k7), into reg, then
   *    vpermt2ps with the 16 from `offset` as the second table (in bounds: 2count-2 >= 16); the
   *    index [16, 18, ..., 30, 0, 2, ..., 14] takes the low lanes' evens from memory, the high
   *    lanes' from reg. count <= 8: 2count-1 elements masked, then vpermps by the same index
   *    (it reads bits 3:0: 0, 2, ..., 14).
   *  - AVX2, count = 8: [offset, +8) and [offset+7, +15), vshufps picking the evens of each
   *    128-bit lane (0, 2 | 8, 10 from the second: its odd positions), vpermpd ordering the
   *    qword pairs. 4 < count < 8: the 2count-9 elements from offset+8 masked into reg, vshufps
   *    with the 8 from `offset` (in bounds) as the second source, vpermpd. count <= 4: 2count-1
   *    elements masked, vshufps of reg with itself, vpermpd.
   * vgatherdps (index and mask registers, one load per lane) ran 3x slower on AVX2 (a stride-2
   * 3x3 conv tile of 8 accumulators: 27 GFLOPS against 86 with the shuffles).
   */
  private loadStrided(reg: Vec, ptr: Gp64, offset: number, count: number, stride: number): void {
    if (stride !== 2) throw new Error(`the x86 emitter reads vectors of stride 1 or 2, not ${stride}`);
    const a = this.a;
    const at = (elements: number): Mem => mem(ptr, (offset + elements) * 4);
    if (this.isa === 'avx512') {
      if (this.indexReg < 0) throw new Error('a strided operand appeared where the lowering reserved no index register');
      const z = zmm(reg.id), index = zmm(this.indexReg);
      if (count > 8) {
        a.vmovups(z.k(this.strideMask(2 * count - 17)).z(), at(16));
        a.vpermt2ps(z, index, at(0));
      } else {
        a.vmovups(z.k(this.strideMask(2 * count - 1)).z(), at(0));
        a.vpermps(z, index, z);
      }
      return;
    }
    const y = ymm(reg.id);
    if (count === 8) {
      a.vmovups(y, at(0));
      a.vshufps(y, y, at(7), 0xd8);
      a.vpermpd(y, y, 0xd8);
    } else if (count > 4) {
      this.ensureMask(2 * count - 9);
      a.vmaskmovps(y, ymm(this.maskRegister()), at(8));
      a.vshufps(y, y, at(0), 0x88);
      a.vpermpd(y, y, 0x8d);
    } else {
      this.ensureMask(2 * count - 1);
      a.vmaskmovps(y, ymm(this.maskRegister()), at(0));
      a.vshufps(y, y, y, 0x88);
      a.vpermpd(y, y, 0xd8);
    }
  }

  private storeVector(reg: Vec, offset: number, count: number): void {
    const m = mem(this.pointers[0]!, offset * 4);
    if (this.lanes === 1) this.a.vmovss(m, reg.xmm);
    else if (count === this.lanes) this.a.vmovups(m, reg);
    else if (this.isa === 'avx512') {
      this.ensureMask(count);
      this.a.vmovups(m.k(k1), zmm(reg.id));
    } else {
      this.ensureMask(count);
      this.a.vmaskmovps(m, ymm(this.maskRegister()), ymm(reg.id));
    }
  }

  private maskRegister(): number {
    if (this.maskReg < 0) throw new Error('a partial vector appeared where the lowering reserved no mask register');
    return this.maskReg;
  }

  /** Loads the lane mask for `count` lanes into k1 (AVX-512) or ymm15 (AVX2) unless it is there. */
  private ensureMask(count: number): void {
    if (this.maskCount === count) return;
    this.maskTable ??= this.a.newLabel();
    if (this.isa === 'avx512') this.a.kmovw(k1, memRip(this.maskTable, count * 2));
    else this.a.vmovups(ymm(this.maskRegister()), memRip(this.maskTable, (8 - count) * 4));
    this.maskCount = count;
  }

  /**
   * An opmask (k2..k7) holding the low `count` lanes, for strided AVX-512 loads: a body of full
   * vectors and tails alternates between two or three counts, each kept in its own register.
   */
  private strideMask(count: number): KReg {
    const held = this.strideMasks.get(count);
    if (held !== undefined) {
      this.strideMasks.delete(count);
      this.strideMasks.set(count, held);
      return kreg(held);
    }
    let id = STRIDE_MASKS.first + this.strideMasks.size;
    if (this.strideMasks.size === STRIDE_MASKS.count) {
      const [oldest, reg] = this.strideMasks.entries().next().value!;
      this.strideMasks.delete(oldest);
      id = reg;
    }
    this.maskTable ??= this.a.newLabel();
    this.a.kmovw(kreg(id), memRip(this.maskTable, count * 2));
    this.strideMasks.set(count, id);
    return kreg(id);
  }

  private emitConstants(): void {
    // the pool starts right after the ret (its alignment padding included): a listing shows it as data
    if (this.pool.size > 0 || this.indexTable || this.maskTable) this.a.dataLabel();
    if (this.pool.size > 0) {
      // an AVX-512 vector kernel broadcasts one dword; AVX2 and the scalar path read 32 (16) bytes of copies
      const copies = this.isa === 'avx512' && this.lanes > 1 ? 1 : 8;
      this.a.align(32);
      for (const [bits, label] of this.pool) {
        this.a.bind(label);
        for (let i = 0; i < copies; i++) this.a.emitU32(bits);
      }
    }
    if (this.indexTable) {
      this.a.align(64);
      this.a.bind(this.indexTable);
      // the strided-read permutation (loadStrided): lane i takes element (2i + 16) mod 32 of the two tables
      for (let i = 0; i < 16; i++) this.a.emitU32((2 * i + 16) % 32);
    }
    if (!this.maskTable) return;
    this.a.align(64);
    this.a.bind(this.maskTable);
    if (this.isa === 'avx512') {
      // kmovw k1, [table + 2c] gives the low c lanes
      for (let c = 0; c <= 16; c++) this.a.emitU16((1 << c) - 1);
    } else {
      // vmovups ymm15, [table + 4(8 - c)]: eight all-ones dwords then eight zeros
      for (let i = 0; i < 16; i++) this.a.emitU32(i < 8 ? 0xffffffff : 0);
    }
  }
}

/**
 * Vector registers each epilogue op needs beyond its accumulator (x86Caps.epilogueScratch): an
 * operand not readable as a memory operand (partial, strided, an AVX2 broadcast) is loaded into
 * one; sigmoid keeps r and n, gelu u, u^2 and a polynomial; constants are memory operands.
 */
export const X86_EPILOGUE_SCRATCH: Readonly<Record<EpilogueKind, number>> = Object.freeze({
  bias: 1, residual: 1, scale: 0, relu: 0, clip: 0, sigmoid: 2, gelu: 3,
});

/** ln 2 = LN2_HI + LN2_LO, the high part short enough that n * LN2_HI is exact for |n| < 2^8 (Cephes) */
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
/** e^r on [-ln2/2, ln2/2], highest power first (Cephes expf: 1 + r + r^2 (0.5 + ...)) */
const EXP_POLY = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1, 1, 1];
/** erf(u) = u P(u^2) / Q(u^2) on [-4, 4] (Eigen's and XLA's float erf), highest power first */
const ERF_P = [
  -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
  -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
];
const ERF_Q = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03, -1.42647390514189e-02];

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
function floatBits(v: number): number {
  F32[0] = v;
  return U32[0]!;
}

/** the xmm view of a register source (scalar forms take xmm registers or m32) */
function asScalar(x: Vec | Mem): Xmm | Mem {
  return x instanceof Mem ? x : x.xmm;
}

/** a number identifying the operand (tensor, offset, mode, count), cheaper than a string key */
function key(x: Operand): number {
  return ((x.offset * 8 + x.tensor) * 2 + (x.mode === 'vector' ? 1 : 0)) * 32 + x.count;
}

/** Frame slots of the parallel band: the ABI's tid and threads, the chunk range, parked rax/rdx, per-dim indices, per-tensor offsets. */
interface BandSlots {
  tid: number;
  threads: number;
  chunk: number;
  end: number;
  rax: number;
  rdx: number;
  index: number[];
  offset: number[];
}

/** Counter levels below `nodes` (a parallel node keeps its chunk number in the frame, not a counter). */
function loopDepth(nodes: readonly ProgramNode[]): number {
  let d = 0;
  for (const n of nodes) {
    const inner = Math.max(0, ...childBodies(n).map(loopDepth));
    d = Math.max(d, (n.kind === 'loop' ? 1 : 0) + inner);
  }
  return d;
}

/** The largest pack box of the program, elements (0 without packing). */
function maxPackElements(nodes: readonly ProgramNode[]): number {
  let m = 0;
  for (const n of nodes) {
    if (n.kind === 'pack') m = Math.max(m, packElements(n));
    for (const body of childBodies(n)) m = Math.max(m, maxPackElements(body));
  }
  return m;
}

/** Dims of the program's parallel band (0 without one). */
function maxBandDims(nodes: readonly ProgramNode[]): number {
  let m = 0;
  for (const n of nodes) {
    if (n.kind === 'parallel') m = Math.max(m, n.dims.length);
    for (const body of childBodies(n)) m = Math.max(m, maxBandDims(body));
  }
  return m;
}
