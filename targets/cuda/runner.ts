/**
 * Running and timing cuda kernels on the GPU (CUDA driver API, driver.ts):
 *  - `runner()` is the KernelRunner for verify/fuzz: fresh device buffers per run, each tensor
 *    inside a guard zone filled with a canary pattern that is checked afterwards (an out-of-bounds
 *    write becomes an error result); a launch that faults resets the context and becomes an error
 *    result too, so a fuzz run goes on;
 *  - `time()` measures with CUDA events: one warm-up launch, a calibrated number of launches per
 *    sample (at least ~1 ms of GPU time), samples until a minimum total time; best and median
 *    seconds per launch, and GFLOPS from the best (the figure comparisons use).
 * Modules are cached by entry name and text; JIT time is recorded per module.
 */
import { randomArray } from '../../ir/interpret.ts';
import type { Timing } from '../runtime/timing.ts';
import type { KernelRunner, RunOutcome } from '../verify.ts';
import type { Kernel } from '../kernel.ts';
import { CudaDevice, CudaError, type DevicePtr, type LoadedModule } from './driver.ts';
import { deviceArray, isCudaKernel, type CudaKernel } from './target.ts';

const GUARD_BYTES = 4096;
/** CUresults after which the context is unusable (illegal address, launch failure, misaligned address...). */
export const STICKY_ERRORS = new Set([700, 702, 714, 715, 716, 717, 718, 719]);
const CANARY = 0x7fc0dead;

export interface TimeOptions {
  /** minimum total sampled GPU time, seconds (default 0.05) */
  minSeconds?: number;
  /** minimum samples (default 5) */
  minSamples?: number;
  /** GPU time one sample should last at least, seconds (default 0.001) */
  sampleSeconds?: number;
  /** a first launch at least this long is the whole measurement (default: no limit) */
  slowSeconds?: number;
}

function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16);
}

export class CudaRunner {
  readonly device: CudaDevice;
  private readonly modules = new Map<string, LoadedModule>();
  /**
   * Module keys by kernel object: hashing a module's text (100 KB and more) on every launch cost
   * about 15 µs of host time, longer than a small kernel runs, so timings of small problems
   * measured the host, not the GPU
   */
  private readonly keys = new WeakMap<CudaKernel, string>();

  constructor(ordinal = 0) {
    this.device = new CudaDevice(ordinal);
  }

  private key(k: CudaKernel): string {
    let key = this.keys.get(k);
    if (key === undefined) {
      key = `${k.launch.entry}:${k.text!.length}:${fnv(k.text!)}`;
      this.keys.set(k, key);
    }
    return key;
  }

  /** JIT-compiles (or finds) the kernel's module. */
  load(kernel: CudaKernel): LoadedModule {
    const key = this.key(kernel);
    let m = this.modules.get(key);
    if (!m) {
      m = this.device.loadPtx(kernel.text!, kernel.launch.entry);
      const dynamic = kernel.launch.dynamicSharedBytes ?? 0;
      if (dynamic > 48 * 1024) this.device.allowDynamicShared(m.func, dynamic);
      this.modules.set(key, m);
    }
    return m;
  }

  /** Unloads a kernel's module (searches and fuzzing load thousands). */
  unload(kernel: CudaKernel): void {
    const key = this.key(kernel);
    const m = this.modules.get(key);
    if (m) {
      this.modules.delete(key);
      this.device.unload(m);
    }
  }

  launch(kernel: CudaKernel, pointers: readonly DevicePtr[]): void {
    const m = this.load(kernel);
    this.device.launch(m.func, kernel.launch.grid, kernel.launch.block, kernel.launch.dynamicSharedBytes ?? 0, pointers);
  }

  /** After a fault the context is gone: reset it and forget every module. */
  recover(): void {
    this.modules.clear();
    this.device.reset();
  }

  /** Runs once on copies of `tensors` (ABI order); returns the output or an error line. */
  async run(kernel: Kernel, tensors: Float32Array[], opts: { guard?: boolean } = {}): Promise<RunOutcome> {
    if (!isCudaKernel(kernel)) return { ok: false, error: 'not a cuda kernel' };
    const guard = opts.guard ?? true;
    const bases: DevicePtr[] = [];
    try {
      // a typed kernel's inputs go up as 16-bit patterns (kernel.storage)
      const stored = tensors.map((t, i) => deviceArray(kernel.storage[i] ?? 'f32', t));
      const ptrs = stored.map((t) => {
        const bytes = Math.ceil(t.byteLength / 4) * 4 + (guard ? 2 * GUARD_BYTES : 0);
        const base = this.device.alloc(bytes);
        bases.push(base);
        if (guard) this.device.fill32(base, CANARY, bytes / 4);
        const p = guard ? base + BigInt(GUARD_BYTES) : base;
        if (t.length > 0) this.device.upload(p, t);
        return p;
      });
      this.launch(kernel, ptrs);
      this.device.synchronize();
      const out = new Float32Array(tensors[0]!.length);
      this.device.download(out, ptrs[0]!);
      if (guard) {
        const zone = new Uint32Array(GUARD_BYTES / 4);
        for (let t = 0; t < tensors.length; t++) {
          for (const [where, p] of [['before', bases[t]!], ['after', ptrs[t]! + BigInt(Math.ceil(stored[t]!.byteLength / 4) * 4)]] as const) {
            this.device.download(zone, p);
            const bad = zone.findIndex((x) => x !== CANARY);
            if (bad >= 0) return { ok: false, error: `out-of-bounds write ${where} tensor ${t} (${kernel.abi.tensors[t]?.name ?? t}), ${bad * 4} bytes into the guard zone` };
          }
        }
      }
      return { ok: true, output: out };
    } catch (e) {
      if (!(e instanceof CudaError)) throw e;
      const sticky = STICKY_ERRORS.has(e.code);
      if (sticky) {
        bases.length = 0;
        this.recover();
      }
      return { ok: false, error: e.message.split('\n').slice(0, 6).join(' | ') };
    } finally {
      for (const b of bases) {
        try {
          this.device.free(b);
        } catch {
          // the context was reset
        }
      }
    }
  }

  runner(opts: { unloadAfter?: boolean } = {}): KernelRunner {
    return async (kernel, tensors, o) => {
      const r = await this.run(kernel, tensors, { guard: o.guard });
      if (opts.unloadAfter && isCudaKernel(kernel)) {
        try {
          this.unload(kernel);
        } catch {
          // the module went with a reset context
        }
      }
      return r;
    };
  }

  /** Device buffers for a kernel's tensors, filled with seeded random values in [-1, 1). */
  randomTensors(kernel: Kernel, seed = 1): DevicePtr[] {
    return kernel.abi.tensors.map((t, i) => {
      const values = randomArray(t.elements, seed * 7919 + i);
      const stored = isCudaKernel(kernel) ? deviceArray(kernel.storage[i] ?? 'f32', values) : values;
      const p = this.device.alloc(Math.ceil(stored.byteLength / 4) * 4);
      this.device.upload(p, stored);
      return p;
    });
  }

  freeAll(ptrs: DevicePtr[]): void {
    for (const p of ptrs) this.device.free(p);
  }

  /** Times launches of the kernel on the given buffers. */
  time(kernel: CudaKernel, pointers: readonly DevicePtr[], opts: TimeOptions = {}): Timing {
    const m = this.load(kernel);
    // parameters built once: the loop then costs one driver call per launch, as cuBLAS's does
    const launch = this.device.launcher(m.func, kernel.launch.grid, kernel.launch.block, kernel.launch.dynamicSharedBytes ?? 0, pointers);
    return this.timeLaunches(launch, kernel.flops, opts);
  }

  /** The timing loop for any launch sequence (also used for cuBLAS). */
  timeLaunches(launch: () => void, flops: number, opts: TimeOptions = {}): Timing {
    const d = this.device;
    const minSeconds = opts.minSeconds ?? 0.05;
    const minSamples = opts.minSamples ?? 5;
    const sampleSeconds = opts.sampleSeconds ?? 0.001;
    const slowSeconds = opts.slowSeconds ?? Infinity;
    const start = d.event();
    const end = d.event();
    try {
      const measure = (reps: number): number => {
        d.record(start);
        for (let i = 0; i < reps; i++) launch();
        d.record(end);
        return d.elapsed(start, end) / 1000;
      };
      const warm = measure(1); // warm-up
      if (warm >= slowSeconds) {
        // hopeless next to any good kernel (searches meet many): one launch is figure enough
        return { bestSeconds: warm, medianSeconds: warm, gflops: flops / warm / 1e9, reps: 1, samples: 1 };
      }
      const one = measure(1);
      const reps = Math.max(1, Math.min(10000, Math.ceil(sampleSeconds / Math.max(one, 1e-7))));
      const samples: number[] = [];
      let total = 0;
      while ((total < minSeconds || samples.length < minSamples) && samples.length < 500) {
        const t = measure(reps);
        total += t;
        samples.push(t / reps);
      }
      samples.sort((a, b) => a - b);
      const mid = samples.length >> 1;
      const medianSeconds = samples.length % 2 ? samples[mid]! : (samples[mid - 1]! + samples[mid]!) / 2;
      return { bestSeconds: samples[0]!, medianSeconds, gflops: flops / samples[0]! / 1e9, reps, samples: samples.length };
    } finally {
      d.destroyEvent(start);
      d.destroyEvent(end);
    }
  }
}

