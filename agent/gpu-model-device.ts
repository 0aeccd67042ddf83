/**
 * The "device" a GPU model executor (agent/gpu-model.ts) runs on: memory, copies and kernel
 * launches, in the order they are called (one stream). Two implementations:
 *
 *  - the GPU through the CUDA driver (agent/gpu-model-driver.ts: cuMemAlloc, cuMemcpy, cuMemsetD32,
 *    cuLaunchKernel on the null stream, CUDA events for timing);
 *  - the PTX simulator (here: simulatorDevice): "device memory" is host Float32Arrays and every
 *    launch runs in targets/cuda/sim.ts, which checks every access against its tensor's bounds. It
 *    is how the executor is tested on a machine without a GPU: the same steps, the same PTX.
 *
 * A region is a handle to device memory: an allocation, or a view of one (an arena slot). Handles
 * belong to the device that made them; handing one to another device fails.
 */
import { fail } from '../ir/errors.ts';
import { simRunner } from '../targets/cuda/sim-runner.ts';
import { SimError, simulate } from '../targets/cuda/sim.ts';
import type { CudaKernel } from '../targets/cuda/target.ts';
import type { KernelRunner } from '../targets/verify.ts';

/** fp32 elements of device memory; made by a ModelDevice, opaque to everyone else. */
export interface DeviceRegion {
  readonly elements: number;
}

export interface ModelDevice {
  /** what it is, for describe(): 'NVIDIA H200, driver 13.0' or 'PTX simulator' */
  readonly name: string;
  /** a new allocation of `elements` fp32 values (contents undefined) */
  alloc(elements: number): DeviceRegion;
  /** `elements` values of `base` starting at element `offset` (no new memory) */
  view(base: DeviceRegion, offset: number, elements: number): DeviceRegion;
  /** frees an allocation made by alloc (not a view) */
  free(region: DeviceRegion): void;
  upload(to: DeviceRegion, data: Float32Array): void;
  /** waits for everything enqueued before it */
  download(from: DeviceRegion, into: Float32Array): void;
  /** every element of the region set to `value` */
  fill(region: DeviceRegion, value: number): void;
  /** makes the kernel launchable (the driver JIT-compiles it once); a failure throws one line */
  load(kernel: CudaKernel): void;
  /** enqueues one launch on the kernel's tensors, ABI order (output first) */
  launch(kernel: CudaKernel, tensors: readonly DeviceRegion[]): void;
  synchronize(): void;
  /** runs a kernel once on host arrays (targets/verify.ts), for checking a kernel before it is used */
  readonly runner: KernelRunner;
  /**
   * GPU seconds of each part, measured by events recorded between them on the stream (the parts
   * only enqueue work); absent where there is no clock to read (the simulator)
   */
  readonly timeParts?: (parts: readonly (() => void)[]) => number[];
  /** frees what the device holds (modules); allocations must have been freed */
  dispose(): void;
}

/** A region of the simulator: a view of a host array. */
class SimRegion implements DeviceRegion {
  constructor(readonly array: Float32Array, readonly owned: boolean) {}

  get elements(): number {
    return this.array.length;
  }
}

function simRegion(r: DeviceRegion): SimRegion {
  if (!(r instanceof SimRegion)) fail('simulator device: the region was not made by this device');
  return r;
}

/** The PTX simulator as a device: launches run to completion when called (slow: keep models tiny). */
export function simulatorDevice(options: { maxInstructions?: number } = {}): ModelDevice {
  const opts = options.maxInstructions !== undefined ? { maxInstructions: options.maxInstructions } : {};
  return {
    name: 'PTX simulator (targets/cuda/sim.ts)',
    alloc: (elements) => new SimRegion(new Float32Array(elements).fill(NaN), true),
    view(base, offset, elements) {
      const b = simRegion(base);
      if (offset < 0 || offset + elements > b.array.length) fail(`simulator device: a view of ${elements} at ${offset} exceeds its region of ${b.array.length}`);
      return new SimRegion(b.array.subarray(offset, offset + elements), false);
    },
    free(region) {
      if (!simRegion(region).owned) fail('simulator device: free takes an allocation, not a view');
    },
    upload(to, data) {
      const r = simRegion(to);
      if (data.length !== r.array.length) fail(`simulator device: upload of ${data.length} values into a region of ${r.array.length}`);
      r.array.set(data);
    },
    download(from, into) {
      const r = simRegion(from);
      if (into.length !== r.array.length) fail(`simulator device: download of a region of ${r.array.length} into ${into.length} values`);
      into.set(r.array);
    },
    fill: (region, value) => void simRegion(region).array.fill(value),
    load(kernel) {
      if (kernel.text === undefined) fail(`simulator device: kernel ${kernel.launch.entry} has no PTX text`);
    },
    launch(kernel, tensors) {
      try {
        simulate(kernel.text!, kernel.launch, tensors.map((t) => simRegion(t).array), opts);
      } catch (e) {
        if (e instanceof SimError) fail(`simulator: ${kernel.program.problem.spec}: ${e.message}`);
        throw e;
      }
    },
    synchronize: () => undefined,
    runner: simRunner(opts),
    dispose: () => undefined,
  };
}
