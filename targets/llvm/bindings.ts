/**
 * The part of `llvm-bindings` (0.4.2, an optional dependency built against Debian llvm-14-dev)
 * this target uses, typed here rather than imported from the package: when the package is absent
 * (no llvm-14-dev when `npm install` ran) the project must still type-check and every other
 * target must still work. Loaded lazily, once, on the first compile or `llvmIr` call.
 *
 * What 0.4.2 can express: scalar types, instructions and intrinsic calls, module triple and data
 * layout, verification, printing and bitcode. What it cannot: vector types, fast-math flags,
 * function/parameter attributes (noalias, nounwind), metadata on loops, object emission, JIT.
 */
import { createRequire } from 'node:module';

export interface Value { getType(): Type }
export interface Type { readonly __type?: never }
export interface BasicBlock extends Value { readonly __block?: never }
export interface PHINode extends Value { addIncoming(value: Value, block: BasicBlock): void }
export interface LlvmFunction extends Value { getArg(i: number): Value }
export interface LlvmContext { readonly __context?: never }

export interface Module {
  setTargetTriple(triple: string): void;
  setDataLayout(layout: string): void;
  print(): string;
}

export interface IRBuilder {
  SetInsertPoint(block: BasicBlock): void;
  GetInsertBlock(): BasicBlock | null;
  getFloatTy(): Type;
  getInt64Ty(): Type;
  getVoidTy(): Type;
  getInt32Ty(): Type;
  getInt64(value: number): Value;
  getInt32(value: number): Value;
  CreateRetVoid(): Value;
  CreateBr(dest: BasicBlock): Value;
  CreateCondBr(cond: Value, then: BasicBlock, otherwise: BasicBlock): Value;
  CreateFAdd(a: Value, b: Value, name?: string): Value;
  CreateFSub(a: Value, b: Value, name?: string): Value;
  CreateFMul(a: Value, b: Value, name?: string): Value;
  CreateFDiv(a: Value, b: Value, name?: string): Value;
  CreateAdd(a: Value, b: Value, name?: string): Value;
  CreateMul(a: Value, b: Value, name?: string): Value;
  CreateShl(a: Value, b: Value, name?: string): Value;
  CreateUDiv(a: Value, b: Value, name?: string): Value;
  CreateURem(a: Value, b: Value, name?: string): Value;
  CreateICmpEQ(a: Value, b: Value, name?: string): Value;
  CreateICmpNE(a: Value, b: Value, name?: string): Value;
  CreateICmpULT(a: Value, b: Value, name?: string): Value;
  CreateFCmpOGT(a: Value, b: Value, name?: string): Value;
  CreateFCmpOLT(a: Value, b: Value, name?: string): Value;
  CreateFPToSI(value: Value, type: Type, name?: string): Value;
  CreateBitCast(value: Value, type: Type, name?: string): Value;
  CreateSelect(cond: Value, a: Value, b: Value, name?: string): Value;
  CreateLoad(type: Type, ptr: Value, name?: string): Value;
  CreateStore(value: Value, ptr: Value): Value;
  CreateInBoundsGEP(type: Type, ptr: Value, index: Value, name?: string): Value;
  CreatePHI(type: Type, reserved: number, name?: string): PHINode;
  CreateCall(callee: LlvmFunction, args: Value[], name?: string): Value;
}

export interface LlvmBindings {
  LLVMContext: new () => LlvmContext;
  Module: new (id: string, context: LlvmContext) => Module;
  IRBuilder: new (context: LlvmContext) => IRBuilder;
  Type: { getFloatPtrTy(context: LlvmContext, addrSpace?: number): Type };
  FunctionType: { get(ret: Type, params: Type[], isVarArg: boolean): Type };
  Function: {
    Create(type: Type, linkage: number, name: string, module: Module): LlvmFunction;
    LinkageTypes: { ExternalLinkage: number };
  };
  BasicBlock: { Create(context: LlvmContext, name?: string, parent?: LlvmFunction): BasicBlock };
  ConstantFP: { get(type: Type, value: number): Value };
  Intrinsic: { fmuladd: number; fma: number; rint: number; getDeclaration(module: Module, id: number, types?: Type[]): LlvmFunction };
  /** true when the module is BROKEN (LLVM's convention) */
  verifyModule(module: Module): boolean;
  WriteBitcodeToFile(module: Module, path: string): void;
}

let loaded: { ok: true; llvm: LlvmBindings } | { ok: false; error: string } | undefined;

/** llvm-bindings, or the one-line reason it cannot be loaded. */
export function loadBindings(): { ok: true; llvm: LlvmBindings } | { ok: false; error: string } {
  if (!loaded) {
    try {
      loaded = { ok: true, llvm: createRequire(import.meta.url)('llvm-bindings') as LlvmBindings };
    } catch (e) {
      const first = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
      loaded = {
        ok: false,
        error: `llvm-bindings did not load (${first}): install the Debian package llvm-14-dev, then run npm install to build it`,
      };
    }
  }
  return loaded;
}

export function bindings(): LlvmBindings {
  const b = loadBindings();
  if (!b.ok) throw new Error(b.error);
  return b.llvm;
}
