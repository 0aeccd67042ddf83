/**
 * A verified kernel mapped into this process once and called many times on the caller's memory:
 * the deployment path (agent/compile-kernel.ts builds these after a measurement worker verified
 * the kernel). Unlike MeasurementPool, a crash here takes the caller down, so only code that ran
 * correctly in a worker belongs here.
 */
import type { NativeFloat32Buffer } from './buffers.ts';
import { ExecutableCode, assertRunnableKernel, type NativeKernel } from './executable-memory.ts';
import { kernelThreads, runParallel, threadCountError } from './threads.ts';

/** A tensor argument: a Float32Array (passed zero-copy: its own backing store) or native memory. */
export type KernelTensor = Float32Array | NativeFloat32Buffer;

export class InProcessKernel {
  readonly #kernel: NativeKernel;
  #code: ExecutableCode | undefined;

  constructor(kernel: NativeKernel) {
    assertRunnableKernel(kernel);
    this.#kernel = kernel;
    this.#code = new ExecutableCode(kernel.code, kernel.abi.tensors.length);
  }

  get disposed(): boolean {
    return this.#code === undefined;
  }

  /**
   * One call on `tensors` (ABI order: output first), on `threads` threads when the kernel has a
   * parallel band (one otherwise). Lengths are checked; nothing is copied.
   */
  call(tensors: readonly KernelTensor[], threads = 1): void {
    const code = this.#code;
    if (!code) throw new Error('kernel used after dispose()');
    const abi = this.#kernel.abi.tensors;
    if (tensors.length !== abi.length) throw new RangeError(`kernel takes ${abi.length} tensors, got ${tensors.length}`);
    tensors.forEach((t, i) => {
      if (t.length !== abi[i]!.elements) throw new RangeError(`${abi[i]!.name} must have ${abi[i]!.elements} elements, got ${t.length}`);
    });
    const bad = threadCountError(threads);
    if (bad) throw new RangeError(bad);
    const pointers = tensors.map((t) => (t instanceof Float32Array ? t : t.address));
    // the pointers go through koffi as arguments of this one call (the team's drive stub takes them too)
    runParallel(code, { pointers, threads: kernelThreads(this.#kernel.abi, threads), forks: 1, kernelReps: 1 });
  }

  dispose(): void {
    this.#code?.free();
    this.#code = undefined;
  }
}
