/**
 * `looptune run`: compile a schedule, verify it against the interpreter, measure it, and put it
 * next to the device's peak and (where it covers the problem) the device's vendor library measured
 * in the same run.
 */
import type { Schedule } from '../ir/schedule.ts';
import type { Backend, BaselineComparison, Device } from './backend.ts';
import { resolveBackend, type TargetName } from './registry.ts';
import { assertVerifiable, verifyKernel } from './verify.ts';
import type { Kernel } from './kernel.ts';
import { assertTimeable } from './limits.ts';
import { compareWithBaseline } from './backend.ts';
import { kernelThreads } from './runtime/threads.ts';

export { compareWithBaseline, gemmShape, type BaselineComparison, type BaselineFigure } from './backend.ts';

export interface RunReport extends BaselineComparison {
  problem: string;
  schedule: string;
  target: string;
  gflops: number;
  /** of the device's threads: the peak is theirs */
  peakGflops: number;
  percentOfPeak: number;
  /** threads the kernel ran on (1 unless it has a parallel band) */
  threads: number;
  bestSeconds: number;
  medianSeconds: number;
  codegenMicros: number;
  verified: boolean;
  maxRelError: number;
  /** timings are native (false when emulated) */
  native: boolean;
  error?: string;
}

export async function runSchedule(
  schedule: Schedule, target: Backend | TargetName, device: Device, opts: { compareBaseline?: boolean; minSeconds?: number; kernel?: Kernel } = {},
): Promise<RunReport> {
  const b = resolveBackend(target);
  // refuse what cannot fit or finish before compiling or allocating anything
  assertVerifiable(schedule.problem);
  const kernel = opts.kernel ?? b.compile(schedule);
  const peakGflops = (await device.peak()).gflops;
  if (device.native) assertTimeable(schedule.problem, peakGflops);
  const v = await verifyKernel(kernel, schedule, device.run);
  const base = {
    problem: schedule.problem.spec, schedule: schedule.text(), target: b.name, peakGflops,
    threads: kernelThreads(kernel.abi, device.threads ?? 1),
    codegenMicros: kernel.codegenMicros, verified: v.verified, maxRelError: v.maxRelError, native: device.native,
  };
  if (!v.verified) {
    return { ...base, gflops: 0, percentOfPeak: 0, bestSeconds: NaN, medianSeconds: NaN, error: v.error ?? 'verification failed' };
  }
  const t = await device.time(kernel, opts.minSeconds === undefined ? {} : { minSeconds: opts.minSeconds });
  if (!t.ok) return { ...base, gflops: 0, percentOfPeak: 0, bestSeconds: NaN, medianSeconds: NaN, error: t.error };
  const report: RunReport = {
    ...base, gflops: t.gflops, percentOfPeak: Number.isFinite(peakGflops) ? (100 * t.gflops) / peakGflops : NaN, bestSeconds: t.bestSeconds, medianSeconds: t.medianSeconds,
  };
  if (opts.compareBaseline && device.baseline && device.baseline.coverage(schedule.problem) === undefined) {
    const blas = await compareWithBaseline(schedule.problem, device, t.gflops);
    Object.assign(report, blas);
    if (blas.baselineError) report.error = `${device.baseline.family}: ${blas.baselineError}`;
  }
  return report;
}
