/**
 * looptune's library API. Everything a user or a plugin needs is re-exported from here.
 */
export * from './ir/index.ts';
export type {
  LoopProgram, ProgramNode, LoopNode, TileNode, ComputeNode, ComputeOp, Operand, Accumulator, TileDecision,
} from './loopnest/program.ts';
export { lower, vectorVariable } from './loopnest/lower.ts';
export type { Kernel, KernelAbi, Target, TargetCaps, TensorArg } from './targets/kernel.ts';
export { getTarget, registerTarget, targetNames, compileSchedule } from './targets/registry.ts';
