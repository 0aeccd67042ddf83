/** targets/llvm: LoopProgram -> LLVM IR -> opt/llc -> raw x86-64 bytes (the baseline of targets/x86). */
export { llvmAvailable, llvmTarget, llvmTargetName, type LlvmTarget } from './target.ts';
export { llvmIr, buildModule, KERNEL_SYMBOL, X86_64_DATA_LAYOUT, X86_64_TRIPLE } from './ir.ts';
export {
  compileWithLlvm, llvmUnavailableReason, DEFAULT_TOOLS, LLVM_ISA_FLAGS, OPT_PIPELINE,
  type LlvmCompileResult, type LlvmIsa, type LlvmOptions, type LlvmPhases, type LlvmTools,
} from './pipeline.ts';
