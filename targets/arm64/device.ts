/**
 * neon under qemu-aarch64 on an x86 host: correct results, emulated timings (reported as such,
 * never as a fraction of a native peak: the peak is NaN). There is no baseline library here.
 */
import type { Device } from '../backend.ts';
import { arm64Runner } from './runner.ts';
import { runArm64Kernel } from './qemu-runner.ts';

export function emulatedArm64Device(): Device {
  return {
    native: false,
    host: 'qemu-aarch64',
    run: arm64Runner(),
    async time(kernel, request = {}) {
      const tensors = kernel.abi.tensors.map((t) => new Float32Array(t.elements).fill(0.5));
      const samples: number[] = [];
      let reps = 1;
      const minSeconds = request.minSeconds ?? 0.05;
      for (let total = 0; samples.length < 3 || total < minSeconds;) {
        const r = await runArm64Kernel(kernel.code, tensors, { reps });
        if (!r.ok) return { ok: false, error: r.error };
        samples.push(r.seconds / reps);
        total += r.seconds;
        if (r.seconds < minSeconds / 5) reps *= 2;
      }
      const best = Math.min(...samples);
      const sorted = [...samples].sort((a, b) => a - b);
      return { ok: true, bestSeconds: best, medianSeconds: sorted[Math.floor(sorted.length / 2)]!, gflops: kernel.flops / best / 1e9, reps, samples: samples.length };
    },
    peak: async () => ({ gflops: NaN, source: 'model', method: 'none under emulation' }),
    close: async () => {},
  };
}
