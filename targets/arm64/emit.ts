/**
 * The AArch64 emitter: a LoopProgram becomes A64 + NEON machine code (4 fp32 lanes, `.4s`), or the
 * scalar path (s registers, 1 lane) when the lowering did not vectorize. Same program, same
 * structure as the x86 emitter (targets/x86/emit.ts); what differs is the ISA:
 *
 * ABI (AAPCS64): `void k(float *t0, ..., float *t(n-1), int64_t reps)`: x0..x(n-1) are the tensor
 * pointers (output first, then the inputs and the epilogue's bias / residual tensors) and stay
 * there; x(n) = reps counts the repetitions down. The generic ABI's tid and threads, after reps,
 * are ignored: neon kernels run on one thread.
 *
 * General-purpose registers:
 *  - loop counters: x9..x15, the unused argument registers x(n+1)..x7, then x19..x28 (saved in the
 *    prologue), then stack slots (through x17);
 *  - x16: address scratch for operands whose byte offset does not fit a load's immediate (it is
 *    reused while later offsets fit relative to it); x17: the exact address of single-lane
 *    `ld1`/`st1` (tails), or a temporary. x18 (platform register), x29 and x30 are never touched.
 *
 * Vector registers: all 32. Logical register i is physical `VREG_ORDER[i]`: the caller-saved
 * v0-v7 and v16-v30 first, then v8-v15 (whose low halves d8-d15 are callee-saved: stored with
 * `stp d` in the prologue only when the kernel used them), v31 last (relu's zero register).
 * Accumulators are logical 0..A-1; the rest cache operands: loaded once while they still have
 * uses, evicted by furthest next use (the whole op sequence is known), freed after their last use.
 *
 * Operands:
 *  - vector: `ldr q` (4 lanes); tails never touch memory past the valid lanes: 1 lane `ldr s`,
 *    2 lanes `ldr d`, 3 lanes `ldr d` + `ld1 {v.s}[2]` (scalar and d loads zero the rest);
 *    stores mirror them (`str s`, `str d`, `st1 {v.s}[2]`);
 *  - broadcast: when an FMA (or mul) consumes it next to a vector, it stays a scalar in one lane
 *    and the op is the by-element form (`fmla vAcc.4s, vB.4s, vA.s[i]`, BLIS-style, no dup). When
 *    4 (or 2) such scalars of one tensor are consecutive and all are operands of the same unrolled
 *    body, one `ldr q` (`ldr d`) loads them together and each is used as its lane ("packs"); the
 *    emitter compiles the body with and without packs and keeps the shorter code (packs need more
 *    live registers). Other consumers (fadd, fmax) get a real broadcast (`ldr s` + `dup`).
 *  - the scalar path uses the same allocator with s registers: `fmla sAcc, sX, vY.s[i]` lets one
 *    input of an FMA be packed as well.
 *
 * Fused epilogue (TileNode.epilogue): after the body, before the stores, epilogue.ts applies the
 * program's epilogue ops to every accumulator in the registers above the accumulators (the body's
 * operands are dead by then; relu's v31 is among them and is zeroed again after). Its constants
 * are 16-byte entries of a pool after `ret`, aligned to 16 in the final code, read PC-relative.
 */
import type { Combine } from '../../ir/problem.ts';
import type {
  ComputeNode, ComputeOp, LoopNode, LoopProgram, Operand, ProgramNode, TileNode,
} from '../../loopnest/program.ts';
import { A64Assembler, type Label, type XReg, d, sp, v, x } from './encoder.ts';
import { EpilogueWriter, constKey, type EpilogueHost } from './epilogue.ts';

/** logical vector register -> physical: caller-saved first, then v8-v15 (callee-saved low halves), v31 last */
export const VREG_ORDER: readonly number[] = [
  0, 1, 2, 3, 4, 5, 6, 7,
  16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
  8, 9, 10, 11, 12, 13, 14, 15,
  31,
];
/** first logical register that is a callee-saved v8..v15 */
const FIRST_CALLEE_SAVED = 23;
/** relu's zero register (logical 31 = v31) */
const ZERO_LOGICAL = 31;

/** vector registers the emitter leaves to accumulators and operands: all of them */
export const NEON_REGISTER_POOL = { vector: 32, scalar: 32 } as const;

const SCRATCH = x(16);
const LANE_ADDR = x(17);
const CALLEE_SAVED_GP = [19, 20, 21, 22, 23, 24, 25, 26, 27, 28].map((n) => x(n));

type Counter = { kind: 'reg'; reg: XReg } | { kind: 'stack'; offset: number };

/** How an operand's value is held in a register. */
const Form = {
  /** a vector operand: the register is the vector (count lanes valid) */
  Vec: 0,
  /** a broadcast replicated in all lanes (ldr s + dup): usable as a vector and as lane 0 */
  Full: 1,
  /** lane 0 only (ldr s), where a whole-register use needs exactly lane 0 (scalar path) */
  Scalar: 2,
  /** consumed only as an element (by-element fmla / fmul): any lane, so it may be packed */
  Elem: 3,
} as const;
type Form = (typeof Form)[keyof typeof Form];

interface Pack {
  tensor: number;
  /** element offset of lane 0 */
  offset: number;
  /** 2 or 4 lanes */
  size: number;
  /** operand ids, lane by lane */
  ids: number[];
}

/**
 * Per compute node, over dense operand ids 0..K-1: each op's input ids and which input (if any)
 * is used as an element, and per operand its form, pack and uses (op indices, CSR layout).
 */
interface OperandPlan {
  ops: ComputeOp[];
  /** ids of op i's inputs: inputs[2i], inputs[2i + 1] */
  inputs: Int32Array;
  /** input of op i used as an element (by-element fmla/fmul), or -1 */
  elem: Int8Array;
  operand: Operand[];
  form: Uint8Array;
  /** pack index of each operand, or -1; its lane in the pack */
  pack: Int32Array;
  lane: Int8Array;
  packs: Pack[];
  /** uses of operand k: usePos[useStart[k] .. useStart[k + 1]) */
  useStart: Int32Array;
  usePos: Int32Array;
}

interface Scratch {
  tensor: number;
  /** x16 = pointer[tensor] + bytes */
  bytes: number;
}

export function emitArm64(program: LoopProgram): Uint8Array {
  return new Arm64Emitter(program).emit();
}

class Arm64Emitter {
  private a = new A64Assembler();
  private readonly lanes: number;
  private readonly pointers: XReg[];
  private readonly repsReg: XReg;
  private readonly combine: Combine;
  private readonly counters: Counter[] = [];
  private readonly savedGp: XReg[] = [];
  private stackSlots = 0;
  /** highest logical vector register used so far (accumulators and operands; not relu's zero) */
  private maxVreg = -1;
  /** one past the last logical register operands may use */
  private readonly poolLimit: number;
  private scratch: Scratch | null = null;
  /** the epilogue's constant pool: fp32 bit pattern -> label of its 16-byte entry (emitted after the code) */
  private readonly pool = new Map<number, Label>();

  constructor(private readonly program: LoopProgram) {
    this.lanes = program.decision.lanes;
    if (this.lanes !== 1 && this.lanes !== 4) throw new Error(`program was lowered for ${this.lanes} lanes, not for NEON (4)`);
    this.combine = program.combine;
    const n = program.tensors.length;
    if (n < 1 || n > 7) throw new Error(`the AAPCS64 kernel ABI passes 1..7 tensors in x0..x6 (plus reps), not ${n}`);
    this.pointers = Array.from({ length: n }, (_, i) => x(i));
    this.repsReg = x(n);
    this.poolLimit = this.combine === 'relu' ? ZERO_LOGICAL : VREG_ORDER.length;
  }

  emit(): Uint8Array {
    const a = this.a;
    this.allocateCounters(loopDepth(this.program.body));
    const done = a.newLabel();
    a.cbz(this.repsReg, done);
    if (this.combine === 'relu') {
      a.movi(v(VREG_ORDER[ZERO_LOGICAL]!).d2, 0); // v31 is caller-saved: nothing to save
    }
    const top = a.newLabel();
    this.bindLoopHead(top);
    this.nodes(this.program.body, 0);
    a.subs(this.repsReg, this.repsReg, 1);
    a.bne(top);
    a.bind(done);
    // frame: [sp, #0..) counter slots, then saved x19+, then saved d8+ (pairs)
    const savedD = this.savedVectorRegs();
    const gpBase = 8 * this.stackSlots;
    const dBase = gpBase + 8 * this.savedGp.length;
    const frame = align16(dBase + 8 * savedD.length);
    const saves: { reg: 'x' | 'd'; nums: number[]; offset: number }[] = [];
    for (let i = 0; i < this.savedGp.length; i += 2) {
      saves.push({ reg: 'x', nums: this.savedGp.slice(i, i + 2).map((r) => r.num), offset: gpBase + 8 * i });
    }
    for (let i = 0; i < savedD.length; i += 2) saves.push({ reg: 'd', nums: savedD.slice(i, i + 2), offset: dBase + 8 * i });
    const regOf = (kind: 'x' | 'd', n: number) => (kind === 'x' ? x(n) : d(n));
    // epilogue (the body's end) and prologue (a separate piece put in front: no branch crosses it)
    for (const s of saves) {
      if (s.nums.length === 2) a.ldp(regOf(s.reg, s.nums[0]!), regOf(s.reg, s.nums[1]!), sp, s.offset);
      else a.ldr(regOf(s.reg, s.nums[0]!), sp, s.offset);
    }
    if (frame > 0) a.add(sp, sp, frame);
    a.ret();
    const p = new A64Assembler();
    if (frame > 0) {
      p.sub(sp, sp, frame);
      for (const s of saves) {
        if (s.nums.length === 2) p.stp(regOf(s.reg, s.nums[0]!), regOf(s.reg, s.nums[1]!), sp, s.offset);
        else p.str(regOf(s.reg, s.nums[0]!), sp, s.offset);
      }
    }
    const head = p.finish();
    this.emitPool(head.length);
    const body = a.finish();
    if (head.length === 0) return body;
    const out = new Uint8Array(head.length + body.length);
    out.set(head, 0);
    out.set(body, head.length);
    return out;
  }

  /**
   * The constant pool after the code (after `ret`: never executed), each entry 16-byte aligned
   * in the final code, whose start (page aligned where it runs) is `headBytes` before the body.
   */
  private emitPool(headBytes: number): void {
    if (this.pool.size === 0) return;
    const a = this.a;
    while ((headBytes + a.offset) % 16 !== 0) a.nop();
    for (const [bits, label] of this.pool) {
      a.bind(label);
      for (let lane = 0; lane < 4; lane++) a.inst(bits);
    }
  }

  /** physical numbers of the callee-saved v8..v15 the kernel used */
  private savedVectorRegs(): number[] {
    const out: number[] = [];
    for (let l = FIRST_CALLEE_SAVED; l <= Math.min(this.maxVreg, FIRST_CALLEE_SAVED + 7); l++) out.push(VREG_ORDER[l]!);
    return out;
  }

  // ---- loops -------------------------------------------------------------------------------

  private allocateCounters(depth: number): void {
    const n = this.pointers.length;
    const pool: XReg[] = [9, 10, 11, 12, 13, 14, 15].map((i) => x(i));
    for (let i = n + 1; i <= 7; i++) pool.push(x(i));
    pool.push(...CALLEE_SAVED_GP);
    for (let i = 0; i < depth; i++) {
      const reg = pool[i];
      if (reg) {
        this.counters.push({ kind: 'reg', reg });
        if (reg.num >= 19) this.savedGp.push(reg);
      } else {
        this.counters.push({ kind: 'stack', offset: 8 * this.stackSlots++ });
      }
    }
  }

  private setCounter(c: Counter, value: number): void {
    if (c.kind === 'reg') this.a.mov(c.reg, value);
    else {
      this.a.mov(LANE_ADDR, value);
      this.a.str(LANE_ADDR, sp, c.offset);
    }
  }

  private countDown(c: Counter, top: Label): void {
    if (c.kind === 'reg') this.a.subs(c.reg, c.reg, 1);
    else {
      this.a.ldr(LANE_ADDR, sp, c.offset);
      this.a.subs(LANE_ADDR, LANE_ADDR, 1);
      this.a.str(LANE_ADDR, sp, c.offset);
    }
    this.a.bne(top);
    this.scratch = null;
  }

  private bindLoopHead(label: Label): void {
    this.a.bind(label);
    this.scratch = null; // a join point: x16's content depends on the path
  }

  /** rd = rn + imm (any 64-bit imm), in 1..2 instructions, or mov + add through `tmp`. */
  private addImm(rd: XReg, rn: XReg, imm: number, tmp: XReg): void {
    const a = this.a;
    if (imm === 0) {
      if (rd.num !== rn.num) a.mov(rd, rn);
      return;
    }
    const mag = Math.abs(imm);
    const sign = imm < 0 ? -1 : 1;
    if (mag < 4096) a.add(rd, rn, imm);
    else if (mag < 1 << 24) {
      const lo = mag & 0xfff;
      a.add(rd, rn, sign * (mag - lo));
      if (lo) a.add(rd, rd, sign * lo);
    } else if (rd.num !== rn.num) {
      a.mov(rd, imm);
      a.add(rd, rn, rd);
    } else {
      a.mov(tmp, imm);
      a.add(rd, rn, tmp);
    }
  }

  private addPointer(t: number, elements: number): void {
    if (elements === 0) return;
    const p = this.pointers[t]!;
    this.addImm(p, p, elements * 4, SCRATCH);
    this.scratch = null;
  }

  private nodes(nodes: readonly ProgramNode[], depth: number): void {
    for (const n of nodes) {
      if (n.kind === 'loop') this.loop(n, depth);
      else if (n.kind === 'tile') this.tile(n, depth);
      else if (n.kind === 'pack') throw new Error('the neon emitter does not pack (its caps have no packing rule)');
      else if (n.kind === 'parallel') throw new Error('the neon emitter runs one thread (its caps have no threads)');
      else this.compute(n);
    }
  }

  private loop(n: LoopNode, depth: number): void {
    const a = this.a;
    this.pointers.forEach((_, t) => this.addPointer(t, n.offsets[t]!));
    const c = this.counters[depth]!;
    this.setCounter(c, n.count);
    const top = a.newLabel();
    this.bindLoopHead(top);
    this.nodes(n.body, depth + 1);
    this.pointers.forEach((_, t) => this.addPointer(t, n.advance[t]!));
    this.countDown(c, top);
    this.pointers.forEach((_, t) => this.addPointer(t, -(n.advance[t]! * n.count + n.offsets[t]!)));
  }

  // ---- the register tile ---------------------------------------------------------------------

  private accCount = 0;

  private tile(n: TileNode, depth: number): void {
    const accs = n.accumulators.length;
    if (accs > this.poolLimit - 1 || accs > VREG_ORDER.length - 2) {
      throw new Error(`tile of ${accs} accumulators exceeds the register pool`);
    }
    this.accCount = accs;
    this.maxVreg = Math.max(this.maxVreg, accs - 1);
    n.accumulators.forEach((acc, i) => {
      if (n.loadOutput) this.loadVector(this.phys(i), 0, acc.offset, acc.count);
    });
    this.nodes(n.body, depth);
    if (n.epilogue) this.fusedEpilogue(n);
    n.accumulators.forEach((acc, i) => this.storeVector(this.phys(i), acc.offset, acc.count));
  }

  /**
   * The program's epilogue on every accumulator of the tile (targets/arm64/epilogue.ts), in the
   * registers above the accumulators: the body's operands are dead by now. Relu's zero register
   * v31 is among them (last, known to hold zero) and is zeroed again if the epilogue wrote it.
   */
  private fusedEpilogue(n: TileNode): void {
    const ops = this.program.epilogue ?? [];
    if (ops.length === 0) return;
    const accs = n.accumulators.length;
    const free: number[] = [];
    for (let l = accs; l < VREG_ORDER.length; l++) free.push(this.phys(l));
    const zero = this.phys(ZERO_LOGICAL);
    const known = new Map<number, string>(this.combine === 'relu' ? [[zero, constKey(0)]] : []);
    const host: EpilogueHost = {
      a: this.a, // tiles are emitted straight into the kernel's assembler (only compute bodies try alternatives)
      loadOperand: (reg, op) => {
        if (op.mode === 'vector') this.loadVector(reg, op.tensor, op.offset, op.count);
        else this.loadForm(reg, op, this.lanes > 1 ? Form.Full : Form.Scalar);
      },
      poolEntry: (bits) => {
        let label = this.pool.get(bits);
        if (!label) this.pool.set(bits, (label = this.a.newLabel()));
        return label;
      },
    };
    const writer = new EpilogueWriter(host, ops, free, known);
    n.accumulators.forEach((acc, i) => writer.apply(this.phys(i), acc.operands));
    for (const r of writer.written) {
      const l = VREG_ORDER.indexOf(r);
      if (l !== ZERO_LOGICAL && l > this.maxVreg) this.maxVreg = l;
    }
    if (this.combine === 'relu' && writer.written.has(zero)) this.a.movi(v(zero).d2, 0);
  }

  private phys(logical: number): number {
    return VREG_ORDER[logical]!;
  }

  // ---- the unrolled body -----------------------------------------------------------------------

  private compute(n: ComputeNode): void {
    const plan = this.plan(n);
    if (plan.packs.length === 0) {
      this.emitOps(plan, false);
      return;
    }
    // with and without packs: keep the shorter code (packs hold more registers live)
    const real = this.a;
    const scratch0 = this.scratch;
    const max0 = this.maxVreg;
    this.a = new A64Assembler();
    this.emitOps(plan, true);
    const packed = { code: this.a.finish(), scratch: this.scratch, maxVreg: this.maxVreg };
    this.a = new A64Assembler();
    this.scratch = scratch0;
    this.maxVreg = max0;
    this.emitOps(plan, false);
    const plain = { code: this.a.finish(), scratch: this.scratch, maxVreg: this.maxVreg };
    this.a = real;
    const best = packed.code.length <= plain.code.length ? packed : plain;
    const view = new DataView(best.code.buffer, best.code.byteOffset, best.code.byteLength);
    for (let i = 0; i < best.code.length; i += 4) real.inst(view.getUint32(i, true));
    this.scratch = best.scratch;
    this.maxVreg = best.maxVreg;
  }

  /** Operand ids, element roles and forms of the body, and the packs its element operands allow. */
  private plan(n: ComputeNode): OperandPlan {
    const ops = n.groups.length === 1 ? n.groups[0]! : n.groups.flat();
    if (ops.some((op) => op.inputs.some((x) => (x.stride ?? 1) !== 1))) {
      throw new Error('the neon emitter reads contiguous vectors only (its caps list no vectorStrides)');
    }
    const nOps = ops.length;
    const vectorPath = this.lanes > 1;
    const byElement = this.combine === 'fma' || this.combine === 'mul';
    // scalar path: the input used as the element of fmla/fmul is the one that packs best
    let scalarElem = -1;
    if (!vectorPath && byElement && nOps > 0) {
      const c0 = packCoverage(ops.map((op) => op.inputs[0]!.offset));
      const c1 = packCoverage(ops.map((op) => op.inputs[1]!.offset));
      scalarElem = c1 > c0 ? 1 : 0;
    }
    const ids = new Map<number, number>();
    const operand: Operand[] = [];
    const inputs = new Int32Array(2 * nOps).fill(-1);
    const elem = new Int8Array(nOps).fill(-1);
    const counts: number[] = [];
    const whole: boolean[] = [];
    for (let i = 0; i < nOps; i++) {
      const ins = ops[i]!.inputs;
      let e = -1;
      if (byElement) {
        const p = ins[0]!;
        const q = ins[1]!;
        if (!vectorPath) e = scalarElem;
        else if (p.mode === 'vector') e = q.mode === 'broadcast' ? 1 : -1;
        else e = q.mode === 'vector' ? 0 : 1;
      }
      elem[i] = e;
      for (let j = 0; j < ins.length; j++) {
        const x = ins[j]!;
        const k = key(x);
        let id = ids.get(k);
        if (id === undefined) {
          id = operand.length;
          ids.set(k, id);
          operand.push(x);
          counts.push(0);
          whole.push(false);
        }
        inputs[2 * i + j] = id;
        counts[id]!++;
        if (j !== e) whole[id] = true;
      }
    }
    const K = operand.length;
    const useStart = new Int32Array(K + 1);
    for (let k = 0; k < K; k++) useStart[k + 1] = useStart[k]! + counts[k]!;
    const usePos = new Int32Array(useStart[K]!);
    const fill = useStart.slice(0, K);
    for (let i = 0; i < 2 * nOps; i++) {
      const id = inputs[i]!;
      if (id >= 0) usePos[fill[id]!++] = i >> 1;
    }
    const form = new Uint8Array(K);
    for (let k = 0; k < K; k++) {
      if (vectorPath && operand[k]!.mode === 'vector') form[k] = Form.Vec;
      else if (whole[k]) form[k] = vectorPath ? Form.Full : Form.Scalar;
      else form[k] = Form.Elem;
    }
    // packs: runs of 4 (else 2) consecutive element-only scalars of one tensor
    const pack = new Int32Array(K).fill(-1);
    const lane = new Int8Array(K);
    const packs: Pack[] = [];
    const byTensor = new Map<number, Map<number, number>>();
    for (let k = 0; k < K; k++) {
      if (form[k] !== Form.Elem) continue;
      const x = operand[k]!;
      let m = byTensor.get(x.tensor);
      if (!m) byTensor.set(x.tensor, (m = new Map()));
      m.set(x.offset, k);
    }
    for (const [tensor, m] of byTensor) {
      if (m.size < 2) continue;
      const offsets = [...m.keys()].sort((p, q) => p - q);
      for (const o of offsets) {
        const k0 = m.get(o)!;
        if (pack[k0]! >= 0) continue;
        const free = (j: number) => m.has(o + j) && pack[m.get(o + j)!]! < 0;
        const size = free(1) ? (free(2) && free(3) ? 4 : 2) : 1;
        if (size === 1) continue;
        const pk: Pack = { tensor, offset: o, size, ids: [] };
        for (let j = 0; j < size; j++) {
          const k = m.get(o + j)!;
          pk.ids.push(k);
          pack[k] = packs.length;
          lane[k] = j;
        }
        packs.push(pk);
      }
    }
    return { ops, inputs, elem, operand, form, pack, lane, packs, useStart, usePos };
  }

  // operand cache state of the body being emitted (indexed by operand id / logical register)
  /** uses consumed so far */
  private used = new Int32Array(0);
  /** register holding the operand, or -1 */
  private locReg = new Int32Array(0);
  /** its lane, -1 for a whole-register value */
  private locLane = new Int8Array(0);
  /** operand ids cached in each logical register */
  private regIds: number[][] = VREG_ORDER.map(() => []);

  private emitOps(plan: OperandPlan, usePacks: boolean): void {
    const K = plan.operand.length;
    this.used = new Int32Array(K);
    this.locReg = new Int32Array(K).fill(-1);
    this.locLane = new Int8Array(K);
    for (const r of this.regIds) r.length = 0;
    const nOps = plan.ops.length;
    for (let i = 0; i < nOps; i++) this.op(plan, i, usePacks);
  }

  private op(plan: OperandPlan, i: number, usePacks: boolean): void {
    const a = this.a;
    const op = plan.ops[i]!;
    const acc = this.phys(op.acc);
    const vec = this.lanes > 1;
    const k0 = plan.inputs[2 * i]!;
    const k1 = plan.inputs[2 * i + 1]!;
    if (this.combine === 'copy') {
      if (this.locReg[k0]! >= 0) this.moveWhole(acc, k0);
      else if (this.remaining(plan, k0) > 1) {
        this.ensure(plan, k0, -1, usePacks);
        this.moveWhole(acc, k0);
      } else this.loadForm(acc, plan.operand[k0]!, plan.form[k0]! as Form);
      this.consume(plan, k0);
      return;
    }
    const r0 = this.phys(this.ensure(plan, k0, -1, usePacks));
    const r1 = k1 >= 0 ? this.phys(this.ensure(plan, k1, this.locReg[k0]!, usePacks)) : 0;
    switch (this.combine) {
      case 'fma':
      case 'mul': {
        const e = plan.elem[i]!;
        if (e < 0) {
          if (this.combine === 'fma') a.fmla(v(acc).s4, v(r0).s4, v(r1).s4);
          else a.fmul(v(acc).s4, v(r0).s4, v(r1).s4);
          break;
        }
        const ke = e === 0 ? k0 : k1;
        const whole = e === 0 ? r1 : r0;
        const element = v(e === 0 ? r0 : r1).s(Math.max(0, this.locLane[ke]!));
        if (vec) {
          if (this.combine === 'fma') a.fmla(v(acc).s4, v(whole).s4, element);
          else a.fmul(v(acc).s4, v(whole).s4, element);
        } else if (this.combine === 'fma') a.fmlaElem(v(acc).S, v(whole).S, element);
        else a.fmulElem(v(acc).S, v(whole).S, element);
        break;
      }
      case 'add':
        if (vec) a.fadd(v(acc).s4, v(r0).s4, v(r1).s4);
        else a.fadd(v(acc).S, v(r0).S, v(r1).S);
        break;
      case 'sum':
        if (vec) a.fadd(v(acc).s4, v(acc).s4, v(r0).s4);
        else a.fadd(v(acc).S, v(acc).S, v(r0).S);
        break;
      case 'max':
        if (vec) a.fmax(v(acc).s4, v(acc).s4, v(r0).s4);
        else a.fmax(v(acc).S, v(acc).S, v(r0).S);
        break;
      case 'relu': {
        const z = this.phys(ZERO_LOGICAL);
        if (vec) a.fmax(v(acc).s4, v(r0).s4, v(z).s4);
        else a.fmax(v(acc).S, v(r0).S, v(z).S);
        break;
      }
    }
    this.consume(plan, k0);
    if (k1 >= 0) this.consume(plan, k1);
  }

  private remaining(plan: OperandPlan, k: number): number {
    return plan.useStart[k + 1]! - plan.useStart[k]! - this.used[k]!;
  }

  /** After an op: one use less; a dead operand leaves its register (free once all its values are dead). */
  private consume(plan: OperandPlan, k: number): void {
    this.used[k]!++;
    if (this.remaining(plan, k) > 0) return;
    const r = this.locReg[k]!;
    if (r < 0) return;
    this.locReg[k] = -1;
    const ids = this.regIds[r]!;
    ids.splice(ids.indexOf(k), 1);
  }

  /** Logical register holding operand k, loading it (its whole pack, when packs are on) if needed. */
  private ensure(plan: OperandPlan, k: number, pinned: number, usePacks: boolean): number {
    const hit = this.locReg[k]!;
    if (hit >= 0) return hit;
    const reg = this.allocate(plan, pinned);
    const p = usePacks ? plan.pack[k]! : -1;
    if (p >= 0) {
      const pk = plan.packs[p]!;
      if (pk.size === 4) this.a.ldrQ(v(this.phys(reg)), ...this.address(pk.tensor, pk.offset * 4, 4));
      else this.a.ldrD(v(this.phys(reg)), ...this.address(pk.tensor, pk.offset * 4, 3));
      for (let j = 0; j < pk.size; j++) {
        const id = pk.ids[j]!;
        if (id !== k && (this.locReg[id]! >= 0 || this.remaining(plan, id) === 0)) continue;
        this.locReg[id] = reg;
        this.locLane[id] = j;
        this.regIds[reg]!.push(id);
      }
      return reg;
    }
    const form = plan.form[k]! as Form;
    this.loadForm(this.phys(reg), plan.operand[k]!, form);
    this.locReg[k] = reg;
    this.locLane[k] = form === Form.Vec || form === Form.Full ? -1 : 0;
    this.regIds[reg]!.push(k);
    return reg;
  }

  /** A free operand register (lowest first), else the one whose next use is furthest away. */
  private allocate(plan: OperandPlan, pinned: number): number {
    let victim = -1;
    let furthest = -1;
    for (let r = this.accCount; r < this.poolLimit; r++) {
      const ids = this.regIds[r]!;
      if (ids.length === 0) {
        if (r > this.maxVreg) this.maxVreg = r;
        return r;
      }
      if (r === pinned) continue;
      let next = Infinity;
      for (const k of ids) {
        const u = plan.useStart[k]! + this.used[k]!;
        if (u < plan.useStart[k + 1]! && plan.usePos[u]! < next) next = plan.usePos[u]!;
      }
      if (next > furthest) {
        furthest = next;
        victim = r;
      }
    }
    if (victim < 0) throw new Error('operand register pool exhausted');
    for (const k of this.regIds[victim]!) this.locReg[k] = -1;
    this.regIds[victim]!.length = 0;
    return victim;
  }

  /** acc = operand k, cached in a register as a whole-register value (copy's 'vec'/'full'/'scalar'). */
  private moveWhole(acc: number, k: number): void {
    const src = this.phys(this.locReg[k]!);
    const lane = this.locLane[k]!;
    if (lane <= 0) this.a.mov(v(acc).b16, v(src).b16);
    else this.a.dup(v(acc).s4, v(src).s(lane));
  }

  private loadForm(reg: number, x: Operand, form: Form): void {
    if (form === Form.Vec) this.loadVector(reg, x.tensor, x.offset, x.count);
    else {
      this.a.ldrS(v(reg), ...this.address(x.tensor, x.offset * 4, 2));
      if (form === Form.Full) this.a.dup(v(reg).s4, v(reg).s(0));
    }
  }

  // ---- addresses, loads and stores with tails -------------------------------------------------

  /** [base, #imm] for an access of 2^log2 bytes at pointer[t] + bytes: direct, or through x16. */
  private address(t: number, bytes: number, log2: number): [XReg, number] {
    const ptr = this.pointers[t]!;
    if (encodable(bytes, log2)) return [ptr, bytes];
    const s = this.scratch;
    if (s && s.tensor === t && encodable(bytes - s.bytes, log2)) return [SCRATCH, bytes - s.bytes];
    this.addImm(SCRATCH, ptr, bytes, LANE_ADDR);
    this.scratch = { tensor: t, bytes };
    return [SCRATCH, 0];
  }

  /** x17 = pointer[t] + bytes (single-lane ld1/st1 take no offset). */
  private laneAddress(t: number, bytes: number): XReg {
    const s = this.scratch;
    if (s && s.tensor === t && Math.abs(bytes - s.bytes) < 4096) this.addImm(LANE_ADDR, SCRATCH, bytes - s.bytes, LANE_ADDR);
    else this.addImm(LANE_ADDR, this.pointers[t]!, bytes, LANE_ADDR);
    return LANE_ADDR;
  }

  /** Loads `count` lanes at pointer[t] + offset elements; lanes past `count` become zero, never read. */
  private loadVector(reg: number, t: number, offset: number, count: number): void {
    const a = this.a;
    const bytes = offset * 4;
    if (this.lanes === 1 || count === 1) a.ldrS(v(reg), ...this.address(t, bytes, 2));
    else if (count === 4) a.ldrQ(v(reg), ...this.address(t, bytes, 4));
    else {
      a.ldrD(v(reg), ...this.address(t, bytes, 3));
      if (count === 3) a.ld1(v(reg).s(2), this.laneAddress(t, bytes + 8));
    }
  }

  private storeVector(reg: number, offset: number, count: number): void {
    const a = this.a;
    const bytes = offset * 4;
    if (this.lanes === 1 || count === 1) a.strS(v(reg), ...this.address(0, bytes, 2));
    else if (count === 4) a.strQ(v(reg), ...this.address(0, bytes, 4));
    else {
      a.strD(v(reg), ...this.address(0, bytes, 3));
      if (count === 3) a.st1(v(reg).s(2), this.laneAddress(0, bytes + 8));
    }
  }
}

/** Whether [base, #bytes] encodes for an access of 2^log2 bytes (scaled imm12, or unscaled imm9). */
function encodable(bytes: number, log2: number): boolean {
  const unit = 1 << log2;
  return (bytes >= 0 && bytes % unit === 0 && bytes / unit < 4096) || (bytes >= -256 && bytes < 256);
}

/** How many loads packs would save over these offsets (the scalar path picks its element input). */
function packCoverage(offsets: number[]): number {
  const set = new Set(offsets);
  let saved = 0;
  const taken = new Set<number>();
  for (const o of [...set].sort((p, q) => p - q)) {
    if (taken.has(o)) continue;
    let size = 1;
    while (size < 4 && set.has(o + size) && !taken.has(o + size)) size++;
    if (size === 3) size = 2;
    for (let j = 0; j < size; j++) taken.add(o + j);
    saved += size - 1;
  }
  return saved;
}

function align16(n: number): number {
  return (n + 15) & ~15;
}

/** a number identifying the operand (tensor, offset, mode, count) */
function key(x: Operand): number {
  return ((x.offset * 8 + x.tensor) * 2 + (x.mode === 'vector' ? 1 : 0)) * 32 + x.count;
}

function loopDepth(nodes: readonly ProgramNode[]): number {
  let dd = 0;
  for (const n of nodes) {
    if (n.kind === 'loop') dd = Math.max(dd, 1 + loopDepth(n.body));
    else if (n.kind === 'tile') dd = Math.max(dd, loopDepth(n.body));
  }
  return dd;
}
