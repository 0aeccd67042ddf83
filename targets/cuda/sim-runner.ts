/**
 * A KernelRunner that executes cuda kernels in the PTX simulator (sim.ts): the same verify and
 * fuzz code paths as on a GPU, on any machine. Out-of-bounds or misaligned accesses and
 * shared-memory races come back as errors, like crashes.
 */
import type { KernelRunner } from '../verify.ts';
import { SimError, simulate } from './sim.ts';
import { deviceArray, isCudaKernel } from './target.ts';

export function simRunner(opts: { maxInstructions?: number } = {}): KernelRunner {
  return async (kernel, tensors) => {
    if (!isCudaKernel(kernel)) return { ok: false, error: 'not a cuda kernel' };
    // typed kernels read their inputs as 16-bit patterns; the output is always fp32
    const copies = tensors.map((t, i) => (kernel.storage[i] === 'f32' ? t.slice() : deviceArray(kernel.storage[i]!, t)));
    try {
      simulate(kernel.text!, kernel.launch, copies, opts);
    } catch (e) {
      if (e instanceof SimError) return { ok: false, error: `simulator: ${e.message}` };
      throw e;
    }
    return { ok: true, output: copies[0] as Float32Array };
  };
}
