/**
 * LoopProgram -> scalar LLVM IR through llvm-bindings: the same program the direct x86 emitter
 * consumes, written the way a C compiler front end would write it, so that LLVM's optimizer
 * (SLP and loop vectorizers, scheduling, register allocation) does what the direct emitter does
 * by construction.
 *
 *   void @kernel(float* %t0, ..., float* %tN, i64 %reps, i64 %tid, i64 %threads)
 *
 * - the repetition loop wraps the whole nest;
 * - a ParallelNode runs thread %tid's chunks [tid*n/threads, (tid+1)*n/threads) (`udiv`, as
 *   loopnest/program.ts threadRange) in a loop guarded for an empty range; each chunk's band
 *   indices come from `urem`/`udiv` by the dims' sizes (full iterations + tail, innermost fastest),
 *   its pointers are GEPs by sum_j index_j * advance_j, and a branch chain on `index_j == count_j`
 *   (dims with both kinds of iteration) picks the body of the chunk's tail mask;
 * - a LoopNode becomes a counted loop (do-while form: every LoopNode has count >= 2) with an i64
 *   induction variable; each tensor's current pointer inside it is a GEP from the pointer at entry
 *   (+ `offsets`) by iv * `advance`, as `p + i*stride` in C;
 * - a TileNode's accumulators are SSA values: one scalar per valid lane, loaded from the output
 *   (accumulating combines) before the tile's body, carried through the loops inside the tile by
 *   phis, stored after it; a tile with `epilogue` runs the program's epilogue ops on every lane
 *   between the two (epilogue.ts: the same scalar style, bias/residual lanes loaded like operands);
 * - a ComputeNode's vector op over `count` lanes becomes `count` scalar ops on consecutive
 *   elements (a broadcast operand is one load): LLVM's SLP vectorizer has to rebuild the vectors.
 *
 * fp semantics are the interpreter's and the direct emitter's: fp32, each accumulator lane sums
 * its terms in program order. fma is `llvm.fmuladd.f32` (fused where the target has FMA, as the
 * direct emitter's vfmadd231ps); max and relu are `a > b ? a : b` (what x86 maxps computes). No
 * fast-math flags (llvm-bindings 0.4.2 cannot set them), so LLVM may not reassociate reductions.
 */
import type { Combine } from '../../ir/problem.ts';
import { chunkCount, type Accumulator, type ComputeNode, type LoopNode, type LoopProgram, type Operand, type ParallelNode, type ProgramNode, type TileNode } from '../../loopnest/program.ts';
import { EpilogueIr } from './epilogue.ts';
import { bindings, type BasicBlock, type IRBuilder, type LlvmBindings, type LlvmFunction, type Module, type Type, type Value } from './bindings.ts';

export const X86_64_TRIPLE = 'x86_64-pc-linux-gnu';
/** LLVM 14's data layout for x86_64-pc-linux-gnu (what `llc -mtriple=x86_64-pc-linux-gnu` uses). */
export const X86_64_DATA_LAYOUT = 'e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-f80:128-n8:16:32:64-S128';
/** the kernel's symbol in the module and object file */
export const KERNEL_SYMBOL = 'kernel';

export interface LlvmModule {
  module: Module;
  llvm: LlvmBindings;
}

/** Builds the module for `program` (a fresh LLVMContext each time: modules are independent). */
export function buildModule(program: LoopProgram): LlvmModule {
  const llvm = bindings();
  const module = new IrBuilder(llvm, program).build();
  if (llvm.verifyModule(module)) throw new Error(`internal error: the LLVM IR for '${program.schedule}' does not verify`);
  return { module, llvm };
}

/** The module's text (for `looptune show --ir`): the IR before any optimization. */
export function llvmIr(program: LoopProgram): string {
  return buildModule(program).module.print();
}

class IrBuilder {
  private readonly b: IRBuilder;
  private readonly module: Module;
  private readonly fn: LlvmFunction;
  private readonly f32: Type;
  private readonly i64: Type;
  private readonly fmuladd: LlvmFunction | undefined;
  private readonly combine: Combine;
  private readonly lanes: number;
  /** per tensor, the current pointer (the LoopProgram's "pointer t") */
  private pointers: Value[] = [];
  /** the accumulator lanes of the current tile: acc * lanes + lane -> value (undefined past count) */
  private acc: (Value | undefined)[] = [];
  /** valid lanes of each accumulator of the current tile */
  private accCounts: number[] = [];
  private blocks = 0;
  private readonly epilogueIr: EpilogueIr;

  constructor(private readonly llvm: LlvmBindings, private readonly program: LoopProgram) {
    const context = new llvm.LLVMContext();
    this.module = new llvm.Module(KERNEL_SYMBOL, context);
    this.module.setTargetTriple(X86_64_TRIPLE);
    this.module.setDataLayout(X86_64_DATA_LAYOUT);
    this.b = new llvm.IRBuilder(context);
    this.f32 = this.b.getFloatTy();
    this.i64 = this.b.getInt64Ty();
    const ptr = llvm.Type.getFloatPtrTy(context);
    // the kernel ABI (targets/kernel.ts): pointers, reps, tid, threads
    const params = [...program.tensors.map(() => ptr), this.i64, this.i64, this.i64];
    const type = llvm.FunctionType.get(this.b.getVoidTy(), params, false);
    this.fn = llvm.Function.Create(type, llvm.Function.LinkageTypes.ExternalLinkage, KERNEL_SYMBOL, this.module);
    this.combine = program.combine;
    this.lanes = program.decision.lanes;
    if (this.combine === 'fma') this.fmuladd = llvm.Intrinsic.getDeclaration(this.module, llvm.Intrinsic.fmuladd, [this.f32]);
    this.epilogueIr = new EpilogueIr(llvm, this.module, this.b);
    this.newBlock = (name: string) => llvm.BasicBlock.Create(context, `${name}${this.blocks++}`, this.fn);
  }

  /** a new basic block at the end of the kernel */
  private readonly newBlock: (name: string) => BasicBlock;

  build(): Module {
    const b = this.b;
    const entry = this.newBlock('entry');
    b.SetInsertPoint(entry);
    this.pointers = this.program.tensors.map((_, t) => this.fn.getArg(t));
    const reps = this.fn.getArg(this.program.tensors.length);
    // reps >= 1 (the kernel ABI), so the repetition loop is a do-while loop like the others
    this.countedLoop(reps, () => this.nodes(this.program.body));
    b.CreateRetVoid();
    return this.module;
  }

  private nodes(nodes: readonly ProgramNode[]): void {
    for (const n of nodes) {
      if (n.kind === 'loop') this.loop(n);
      else if (n.kind === 'tile') this.tile(n);
      else if (n.kind === 'pack') throw new Error('the LLVM path does not pack (lower it with caps that have no packing rule)');
      else if (n.kind === 'parallel') this.parallel(n);
      else this.compute(n);
    }
  }

  /**
   * `for (iv = 0; ; ) { body(iv); if (++iv == count) break; }`: the header carries the induction
   * variable and one phi per live accumulator lane (a tile's loops update them).
   */
  private countedLoop(count: Value, body: (iv: Value) => void): void {
    const b = this.b;
    const pre = b.GetInsertBlock()!;
    const header = this.newBlock('loop');
    b.CreateBr(header);
    b.SetInsertPoint(header);
    const iv = b.CreatePHI(this.i64, 2, 'iv');
    iv.addIncoming(b.getInt64(0), pre);
    const accPhis = this.acc.map((v) => {
      if (!v) return undefined;
      const phi = b.CreatePHI(this.f32, 2);
      phi.addIncoming(v, pre);
      return phi;
    });
    this.acc = accPhis.map((p) => p);
    body(iv);
    const latch = b.GetInsertBlock()!;
    const next = b.CreateAdd(iv, b.getInt64(1), 'iv.next');
    iv.addIncoming(next, latch);
    accPhis.forEach((phi, i) => phi?.addIncoming(this.acc[i]!, latch));
    const exit = this.newBlock('exit');
    b.CreateCondBr(b.CreateICmpNE(next, count), header, exit);
    b.SetInsertPoint(exit);
    // leaving through the latch: the accumulators hold the last iteration's values (this.acc)
  }

  private loop(n: LoopNode): void {
    const b = this.b;
    const outer = this.pointers;
    const entry = outer.map((p, t) => this.offsetPointer(p, n.offsets[t]!));
    this.countedLoop(b.getInt64(n.count), (iv) => {
      this.pointers = entry.map((p, t) => {
        const step = n.advance[t]!;
        if (step === 0) return p;
        return b.CreateInBoundsGEP(this.f32, p, step === 1 ? iv : b.CreateMul(iv, b.getInt64(step)));
      });
      this.nodes(n.body);
    });
    this.pointers = outer;
  }

  /** Thread %tid's chunks of the band, each at its pointers with its tail mask's body. */
  private parallel(n: ParallelNode): void {
    const b = this.b;
    if (this.acc.length > 0) throw new Error('internal error: a parallel band inside a register tile');
    const outer = this.pointers;
    const entry = outer.map((p, t) => this.offsetPointer(p, n.offsets[t]!));
    const tensors = this.program.tensors.length;
    const tid = this.fn.getArg(tensors + 1);
    const threads = this.fn.getArg(tensors + 2);
    const chunks = b.getInt64(chunkCount(n.dims));
    // [floor(tid*n/T), floor((tid+1)*n/T)): tid < T and n is small, so the products cannot wrap
    const begin = b.CreateUDiv(b.CreateMul(tid, chunks), threads, 'chunk.begin');
    const end = b.CreateUDiv(b.CreateMul(b.CreateAdd(tid, b.getInt64(1)), chunks), threads, 'chunk.end');
    const pre = b.GetInsertBlock()!;
    const header = this.newBlock('chunk');
    const exit = this.newBlock('chunks.done');
    // a thread gets no chunk when n < T: skip the do-while loop
    b.CreateCondBr(b.CreateICmpULT(begin, end), header, exit);
    b.SetInsertPoint(header);
    const chunk = b.CreatePHI(this.i64, 2, 'chunk');
    chunk.addIncoming(begin, pre);
    const index = this.chunkIndices(n, chunk);
    this.pointers = entry.map((p, t) => {
      let offset: Value | undefined;
      n.dims.forEach((d, j) => {
        const step = d.advance[t]!;
        if (step === 0) return;
        const term = step === 1 ? index[j]! : b.CreateMul(index[j]!, b.getInt64(step));
        offset = offset ? b.CreateAdd(offset, term) : term;
      });
      return offset ? b.CreateInBoundsGEP(this.f32, p, offset) : p;
    });
    this.dispatch(n, index, 0, 0);
    const latch = b.GetInsertBlock()!;
    const next = b.CreateAdd(chunk, b.getInt64(1), 'chunk.next');
    chunk.addIncoming(next, latch);
    b.CreateCondBr(b.CreateICmpNE(next, end), header, exit);
    b.SetInsertPoint(exit);
    this.pointers = outer;
  }

  /** Per dim, the chunk's index (innermost fastest; the tail is index `count`), as loopnest's chunkIndices. */
  private chunkIndices(n: ParallelNode, chunk: Value): Value[] {
    const b = this.b;
    const index = new Array<Value>(n.dims.length);
    let rest = chunk;
    for (let j = n.dims.length - 1; j > 0; j--) {
      const d = n.dims[j]!;
      const size = b.getInt64(d.count + (d.tail ? 1 : 0));
      index[j] = b.CreateURem(rest, size, `band.i${j}`);
      rest = b.CreateUDiv(rest, size);
    }
    index[0] = rest;
    return index;
  }

  /** Branches on dim j's tail (when it has both kinds of iteration) down to the body of the chunk's mask. */
  private dispatch(n: ParallelNode, index: readonly Value[], j: number, mask: number): void {
    if (j === n.dims.length) {
      this.nodes(n.bodies[mask]!);
      return;
    }
    const d = n.dims[j]!;
    if (!d.tail || d.count === 0) {
      this.dispatch(n, index, j + 1, d.tail ? mask | (1 << j) : mask);
      return;
    }
    const b = this.b;
    const full = this.newBlock('band.full');
    const tail = this.newBlock('band.tail');
    const join = this.newBlock('band.join');
    b.CreateCondBr(b.CreateICmpEQ(index[j]!, b.getInt64(d.count)), tail, full);
    b.SetInsertPoint(full);
    this.dispatch(n, index, j + 1, mask);
    b.CreateBr(join);
    b.SetInsertPoint(tail);
    this.dispatch(n, index, j + 1, mask | (1 << j));
    b.CreateBr(join);
    b.SetInsertPoint(join);
  }

  private offsetPointer(p: Value, elements: number): Value {
    return elements === 0 ? p : this.b.CreateInBoundsGEP(this.f32, p, this.b.getInt64(elements));
  }

  private tile(n: TileNode): void {
    const lanes = this.lanes;
    const out = this.pointers[0]!;
    const zero = this.llvm.ConstantFP.get(this.f32, 0);
    this.acc = new Array<Value | undefined>(n.accumulators.length * lanes).fill(undefined);
    this.accCounts = n.accumulators.map((a) => a.count);
    n.accumulators.forEach((a, i) => {
      for (let l = 0; l < a.count; l++) {
        this.acc[i * lanes + l] = n.loadOutput ? this.b.CreateLoad(this.f32, this.offsetPointer(out, a.offset + l)) : zero;
      }
    });
    this.nodes(n.body);
    if (n.epilogue) n.accumulators.forEach((a, i) => this.epilogue(a, i));
    n.accumulators.forEach((a, i) => {
      for (let l = 0; l < a.count; l++) this.b.CreateStore(this.acc[i * lanes + l]!, this.offsetPointer(out, a.offset + l));
    });
    this.acc = [];
  }

  /** The program's epilogue on accumulator i's lanes; the k-th tensor-reading op reads `a.operands[k]`. */
  private epilogue(a: Accumulator, i: number): void {
    const ops = this.program.epilogue ?? [];
    let next = 0;
    for (const op of ops) {
      let operand: Operand | undefined;
      if (op.kind === 'bias' || op.kind === 'residual') {
        operand = a.operands?.[next++];
        if (!operand) throw new Error(`internal error: accumulator ${i} has no operand for its ${op.kind} epilogue op`);
      }
      // a broadcast operand is one load for every lane
      let loaded: Value | undefined;
      for (let l = 0; l < a.count; l++) {
        let value: Value | undefined;
        if (operand) {
          const offset = operand.offset + (operand.mode === 'vector' ? l * (operand.stride ?? 1) : 0);
          if (operand.mode === 'vector' || !loaded) loaded = this.b.CreateLoad(this.f32, this.offsetPointer(this.pointers[operand.tensor]!, offset));
          value = loaded;
        }
        const slot = i * this.lanes + l;
        this.acc[slot] = this.epilogueIr.apply(op, this.acc[slot]!, value);
      }
    }
  }

  private compute(n: ComputeNode): void {
    // one load per distinct element of the node (what EarlyCSE would leave), in first-use order
    const loads = new Map<number, Value>();
    const load = (x: Operand, lane: number): Value => {
      const offset = x.offset + (x.mode === 'vector' ? lane * (x.stride ?? 1) : 0);
      const key = offset * 8 + x.tensor;
      let v = loads.get(key);
      if (!v) {
        v = this.b.CreateLoad(this.f32, this.offsetPointer(this.pointers[x.tensor]!, offset));
        loads.set(key, v);
      }
      return v;
    };
    for (const group of n.groups) {
      for (const op of group) {
        for (let l = 0; l < this.accCounts[op.acc]!; l++) {
          const slot = op.acc * this.lanes + l;
          const inputs = op.inputs.map((x) => load(x, l));
          this.acc[slot] = this.apply(this.acc[slot]!, inputs);
        }
      }
    }
  }

  private apply(acc: Value, [x, y]: Value[]): Value {
    const b = this.b;
    switch (this.combine) {
      case 'fma': return b.CreateCall(this.fmuladd!, [x!, y!, acc]);
      case 'sum': return b.CreateFAdd(acc, x!);
      case 'max': return b.CreateSelect(b.CreateFCmpOGT(acc, x!), acc, x!);
      case 'add': return b.CreateFAdd(x!, y!);
      case 'mul': return b.CreateFMul(x!, y!);
      case 'relu': {
        const zero = this.llvm.ConstantFP.get(this.f32, 0);
        return b.CreateSelect(b.CreateFCmpOGT(zero, x!), zero, x!);
      }
      case 'copy': return x!;
    }
  }
}
