/** targets/runtime: executing and measuring generated native kernels. See measure.ts for the main entry. */
export { BUFFER_ALIGNMENT, NativeFloat32Buffer, type BufferOptions } from './buffers.ts';
export {
  ExecutableCode, MAX_KERNEL_POINTERS, assertRunnableKernel,
  type KernelFunction, type KernelPointer, type NativeKernel,
} from './executable-memory.ts';
export { hostCaches, hostCores, hostIsa, hostTarget, isX86Host, type HostCaches, type HostIsa, type HostTarget } from './host.ts';
export { runInProcess, timeInProcess } from './in-process.ts';
export {
  MeasurementPool,
  type Failure, type FailureReason, type JobOptions, type OpenblasResult, type PingResult, type PoolOptions,
  type Result, type RunOptions, type RunResult, type TimeOptions, type TimeResult,
} from './measure.ts';
export { checkGemm, openblasEnvironment, type GemmCheck } from './openblas.ts';
export { defaultPeakCacheFile, peak, peakRecord, type PeakKernelFactory, type PeakOptions, type PeakRecord } from './peak.ts';
export type { OpenblasTiming } from './protocol.ts';
export { timeRepetitions, type Timing, type TimingOptions } from './timing.ts';
