/**
 * looptune's library API. Everything a user or a plugin needs is re-exported from here.
 */
export * from './ir/index.ts';
export type {
  LoopProgram, ProgramNode, LoopNode, TileNode, ComputeNode, ComputeOp, Operand, Accumulator, TileDecision,
} from './loopnest/program.ts';
export { lower, vectorVariable } from './loopnest/lower.ts';
export type { Kernel, KernelAbi, Target, TargetCaps, TensorArg } from './targets/kernel.ts';
export { backend, backendNames, hostBackend, registerBackend, compileSchedule } from './targets/registry.ts';
export type { Backend, Device, Baseline, BaselineFigure, PeakReading, SketchSource } from './targets/backend.ts';

// running and checking kernels
export { runSchedule, type RunReport } from './targets/run-schedule.ts';
export { verifyKernel, type KernelRunner, type Verification } from './targets/verify.ts';
export { fuzzTarget, type FuzzReport } from './targets/fuzz.ts';
export { peak, peakRecord } from './targets/runtime/peak.ts';
export { hostTarget, hostIsa } from './targets/runtime/host.ts';

// the environment (Gymnasium-style), datasets, evaluators and tuning records
export { Discrete, Box, GraphSpace, TimeLimit, VectorEnv, Wrapper, type Env, type Space } from './env/core.ts';
export { LoopNestEnv } from './env/loopnest-env.ts';
export { LOOPTUNE_ACTIONS, tryAction, actionMaskOf, legalMoves } from './ir/actions.ts';
export { RecordStore, type TuningRecord } from './env/records.ts';
export { MeasuredEvaluator, PredictedEvaluator, CachingEvaluator, type Evaluator, type Evaluation } from './env/evaluator.ts';
export { evaluatorFor, type EvaluatorForOptions } from './env/evaluator-for.ts';
export { getDataset, listDatasets, datasetNames, resolveProblems, split as datasetSplit } from './env/datasets.ts';

// searchers, the comparison report, tuning with the shipped policy
export type { Searcher, SearchOptions, SearchResult, Budget } from './agent/searcher.ts';
export { createSearcher, randomSearch, greedySearch, beamSearch, evolutionSearch, SEARCHER_NAMES } from './agent/search/index.ts';
export { runSearch, runCompare } from './agent/search/run.ts';
export { writeCompareReport } from './agent/report/index.ts';
export { tune, type TuneOptions, type TuneResult } from './agent/tune.ts';

// deployable kernels: verified once in a measurement worker, then called in-process
export { compileKernel, PreparedOperand, KERNEL_LAYOUTS, type CompiledKernel, type CompileKernelOptions, type KernelOperand, type KernelLayout, type RunOptions as KernelRunOptions } from './agent/compile-kernel.ts';
export { NativeFloat32Buffer } from './targets/runtime/buffers.ts';

// the cost model, PPO and experiments
export { CostModel, trainCostModel, evalCostModel, CostModelEvaluator, HybridEvaluator, costModelPredict } from './agent/costmodel/index.ts';
export { PPOTrainer, ppoConfig, policySearcher } from './agent/ppo/index.ts';
export { createPolicy, loadPolicy, savePolicy } from './agent/policy/index.ts';
export { trainExperiment, evalExperiment, compareExperiment, exportPolicy } from './experiments/runner.ts';
export {
  importOnnx, loadOnnxFile, runReference, modelTasks,
  type ModelGraph, type ModelNode, type KernelNode, type HostNode, type ModelTask, type ModelValue, type ModelWeight,
} from './ir/model/index.ts';
export { loadModel, type CompiledModel, type LoadModelOptions, type ModelDescription, type NodeDescription, type RunModelOptions } from './agent/compiled-model.ts';
export { loadGpuModel, type GpuModel, type GpuModelDescription, type LoadGpuModelOptions } from './agent/gpu-model.ts';
// tensor-core convolutions: a typed nhwc conv2d compiled as its implicit GEMM from a tile of its view matmul
export { implicitGemm, type ImplicitGemm, type ConvGather } from './loopnest/implicit-gemm.ts';
export { compileImplicitGemm, convTileSchedules } from './targets/cuda/implicit-gemm-kernel.ts';
export { driverDevice } from './agent/gpu-model-driver.ts';
export { simulatorDevice, type ModelDevice } from './agent/gpu-model-device.ts';
export { readTunedModel, writeTunedModel, parseTunedModel, type TunedModel, type TunedTask } from './agent/tuned-model.ts';
export { planModelMemory, type ModelMemoryPlan } from './ir/model/memory-plan.ts';
export { tuneModel, type TuneModelOptions, type TuneModelResult, type ModelTaskReport, type LatencyPoint } from './agent/tune-model.ts';
export { libraryKernel, gemmMapping, whyNotGemm, type LibraryKernel } from './agent/library-kernel.ts';
