/**
 * The in-process fast path: no IPC, no child process, but a crash or hang takes the caller
 * down with it. Only for code known to be safe (the peak probe, kernels already verified in a
 * worker); generated code goes through MeasurementPool.
 */
import type { NativeFloat32Buffer } from './buffers.ts';
import { ExecutableCode, assertRunnableKernel, type NativeKernel } from './executable-memory.ts';
import { timeKernelCode } from './jobs.ts';
import { kernelThreads, runParallel } from './threads.ts';
import { DEFAULT_MIN_SECONDS, type Timing, type TimingOptions } from './timing.ts';

/** Run `kernel` once on `buffers` (ABI order, each at least as long as its tensor); a parallel kernel on `threads` threads. */
export function runInProcess(kernel: NativeKernel, buffers: NativeFloat32Buffer[], reps = 1, threads = 1): void {
  assertRunnableKernel(kernel);
  const tensors = kernel.abi.tensors;
  if (buffers.length !== tensors.length) {
    throw new RangeError(`kernel takes ${tensors.length} tensors, got ${buffers.length} buffers`);
  }
  buffers.forEach((b, i) => {
    if (b.length < tensors[i]!.elements) {
      throw new RangeError(`buffer ${i} (${tensors[i]!.name}) holds ${b.length} elements, kernel touches ${tensors[i]!.elements}`);
    }
  });
  const code = new ExecutableCode(kernel.code, tensors.length);
  try {
    runParallel(code, { pointers: buffers.map((b) => b.address), threads: kernelThreads(kernel.abi, threads), forks: reps, kernelReps: 1 });
  } finally {
    code.free();
  }
}

/** Time `kernel` on fresh random buffers, exactly as the worker's `time` job does. */
export function timeInProcess(kernel: NativeKernel, options: TimingOptions & { threads?: number; forkPerRep?: boolean } = {}): Timing {
  assertRunnableKernel(kernel);
  const elements = kernel.abi.tensors.map((t) => t.elements);
  return timeKernelCode(kernel.code, elements, kernel.flops, {
    minSeconds: options.minSeconds ?? DEFAULT_MIN_SECONDS,
    threads: kernelThreads(kernel.abi, options.threads ?? 1),
    forkPerRep: options.forkPerRep ?? true,
  });
}
