/**
 * The one place evaluators are built: `evaluatorFor(backend, options)`. What the backend is decides
 * where figures come from, never its name:
 *  - timing 'native': Backend.compile + Device.time behind the record cache (MeasuredEvaluator);
 *    the peak is the device's (or given); the backend's launch feasibility and sketches come along;
 *  - timing 'emulated' (neon under qemu): the caller's predictor (the agent passes the analytic
 *    cost model); the kernels run only to verify, through the backend's device;
 *  - timing 'model' (synthetic): the backend's own model behind the record cache.
 * Cost-model and hybrid evaluators (agent/costmodel) wrap what this returns.
 */
import { fail } from '../ir/errors.ts';
import type { Schedule } from '../ir/schedule.ts';
import type { Backend, Device, DeviceOptions } from '../targets/backend.ts';
import { DEFAULT_FARM_CONCURRENCY, type FarmOptions } from '../targets/farm/farm-options.ts';
import type { Kernel } from '../targets/kernel.ts';
import { resolveBackend } from '../targets/registry.ts';
import { slowSecondsFor } from '../targets/runtime/timing.ts';
import { CachingEvaluator, MeasuredEvaluator, PredictedEvaluator, type Evaluator, type MeasureFunction, type PredictFunction } from './evaluator.ts';
import { RecordStore } from './records.ts';
import { syntheticEvaluator } from './synthetic.ts';

export interface EvaluatorForOptions extends DeviceOptions {
  /** a shared store, a JSONL path, or null for memory only (default null). */
  records?: RecordStore | string | null;
  /** skip the peak probe and use this figure. */
  peakGflops?: number;
  /** measure on this device (it is then not closed by close()). */
  device?: Device;
  /** figures of a backend whose kernels cannot be timed here (timing 'emulated'); required there. */
  predict?: PredictFunction;
  /** every kernel a measurement compiled (tune keeps them for verification). */
  onKernel?: (schedule: Schedule, kernel: Kernel) => void;
  persistFailures?: boolean;
  /** milliseconds each model "measurement" waits (timing 'model'; exercises time budgets). */
  delayMs?: number;
  /** measure on the workers of a farm (targets/farm) instead of this machine (timing 'native';
   *  measurements at once default to the farm's concurrency) */
  farm?: FarmOptions;
}

export type OwnedEvaluator = Evaluator & { close(): Promise<void> };

export async function evaluatorFor(target: Backend | string, options: EvaluatorForOptions = {}): Promise<OwnedEvaluator> {
  const backend = resolveBackend(target);
  const records = options.records instanceof RecordStore ? options.records : RecordStore.open(options.records ?? null);
  // no figure beats the peak: this host's records above it are corrupt or forged (the nominal peak
  // bounds them if the probe read lower: a busy machine reads low)
  const rejectImpossible = (host: string, peakGflops: number, threads = 1) =>
    records.rejectAbovePeak(backend.name, host, Math.max(peakGflops, backend.nominalPeakGflops * threads));
  if (options.farm && backend.timing !== 'native') fail(`a farm measures kernels on its workers: ${backend.name} figures are not timings (${backend.timing})`);
  if (backend.timing === 'model') {
    const device = options.device ?? (await backend.open());
    const peakGflops = options.peakGflops ?? (await device.peak()).gflops;
    rejectImpossible(device.host, peakGflops);
    return syntheticEvaluator({
      target: backend.name, peakGflops, records, host: device.host,
      ...(backend.model ? { model: backend.model } : {}),
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.delayMs !== undefined ? { delayMs: options.delayMs } : {}),
    });
  }
  if (backend.timing === 'emulated') {
    if (!options.predict) fail(`${backend.name} kernels run only under emulation here: their figures need a predictor (e.g. the analytic cost model)`);
    const e = new PredictedEvaluator({ target: backend.name, peakGflops: options.peakGflops ?? backend.nominalPeakGflops, predict: options.predict });
    return Object.assign(e, { close: async () => {} });
  }
  const device = options.device ?? (options.farm ? await openFarmDevice(backend, options.farm, options) : await backend.open({
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.timeoutSeconds !== undefined ? { timeoutSeconds: options.timeoutSeconds } : {}),
    ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
  }));
  // a farm's workers measure side by side: as many at once as the farm lets this caller queue
  const concurrency = options.concurrency ?? (options.farm && !options.device ? options.farm.concurrency ?? DEFAULT_FARM_CONCURRENCY : undefined);
  const peak = options.peakGflops !== undefined ? { gflops: options.peakGflops, source: 'given' as const } : await device.peak();
  const peakGflops = peak.gflops;
  const measure: MeasureFunction = async (schedule) => {
    let kernel: Kernel;
    try {
      kernel = backend.compile(schedule);
    } catch (e) {
      return { gflops: 0, error: `code generation failed: ${e instanceof Error ? e.message : String(e)}` };
    }
    options.onKernel?.(schedule, kernel);
    const r = await device.time(kernel, {
      ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
      slowSeconds: slowSecondsFor(kernel.flops, peakGflops),
    });
    if (!r.ok) return { gflops: 0, error: r.error, codegenMicros: kernel.codegenMicros };
    return { gflops: r.gflops, bestSeconds: r.bestSeconds, medianSeconds: r.medianSeconds, codegenMicros: kernel.codegenMicros, ...(r.servedBy ? { servedBy: r.servedBy } : {}) };
  };
  rejectImpossible(device.host, peakGflops, device.threads);
  return new MeasuredEvaluator({
    target: backend.name, peakGflops, measure, records, host: device.host,
    ...(concurrency !== undefined ? { concurrency } : {}),
    ...(options.persistFailures !== undefined ? { persistFailures: options.persistFailures } : {}),
  }, { backend, device, ownsDevice: options.device === undefined, peak });
}

/** The farm's device (loaded on use: BullMQ and ioredis stay out of runs without a farm). */
async function openFarmDevice(backend: Backend, farm: FarmOptions, options: EvaluatorForOptions): Promise<Device> {
  const { openRemoteDevice } = await import('../targets/farm/remote-device.ts');
  return openRemoteDevice(backend, {
    ...farm,
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.minSeconds !== undefined ? { minSeconds: options.minSeconds } : {}),
  });
}

/** Whether an evaluator measures real kernels (its figures are timings on a native device). */
export function measuresKernels(e: Evaluator): e is MeasuredEvaluator {
  return e instanceof MeasuredEvaluator;
}

