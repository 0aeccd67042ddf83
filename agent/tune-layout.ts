/**
 * The layout of a convolution or pool chosen by measurement (issue 16 item 4): `tune` on the layer
 * as given (NCHW) and on its blocked NCHWc twin (c = the target's vector lanes: ir/layout.ts), on
 * one device, and the blocked one charged for the conversions compileKernel's blocked kernels run
 * (ir/layout.ts blockedConversions: the input to NCHWc inside the twin's padding border, a
 * +residual to NCHWc, the output back; each compiled and timed there on one thread, as they run;
 * weights are packed once, at load, and not charged).
 * A model that keeps NCHWc between its layers pays no conversions: `keptLayout` says which layout
 * wins then.
 */
import { blockedVariant, conversionSchedules } from '../ir/layout.ts';
import { flops, type Problem } from '../ir/problem.ts';
import type { Schedule } from '../ir/schedule.ts';
import type { Backend, Device } from '../targets/backend.ts';
import { backend as backendNamed } from '../targets/registry.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { tune, type TuneOptions, type TuneResult } from './tune.ts';

export interface LayoutChoice {
  /** the faster standalone: 'nchw', or 'nchw<B>c' for the blocked twin with its conversions */
  layout: string;
  /** the same when the layout is kept between layers (no conversions) */
  keptLayout: string;
  nchw: TuneResult;
  /** the blocked twin's tuning (absent where the layout does not apply: ir/layout.ts blockedVariant) */
  blocked?: TuneResult;
  /** the blocked twin's spec, what a deployment compiles when it chose the blocked layout */
  blockedSpec?: string;
  /** seconds of one run: NCHW; blocked alone; its conversions (input, residual, output) */
  nchwSeconds: number;
  blockedSeconds?: number;
  conversionSeconds?: number;
}

export async function tuneLayouts(problem: Problem, options: TuneOptions = {}): Promise<LayoutChoice> {
  const b: Backend = options.target === undefined ? backendNamed(hostTarget()) : typeof options.target === 'string' ? backendNamed(options.target) : options.target;
  const lanes = b.caps.vectorLanes;
  const twin = blockedVariant(problem, lanes);
  const device = options.device ?? (await b.open({ ...(b.caps.threads && options.threads !== undefined ? { threads: options.threads } : {}) }));
  try {
    const shared = { ...options, target: b, device };
    const nchw = await tune(problem, shared);
    const f = flops(problem);
    const nchwSeconds = f / (nchw.gflops * 1e9);
    if (!twin) return { layout: 'nchw', keptLayout: 'nchw', nchw, nchwSeconds };
    const blocked = await tune(twin, shared);
    const blockedSeconds = f / (blocked.gflops * 1e9);
    const conversionSeconds = await timeConversions(problem, twin, b, device, 0.02);
    const name = `nchw${lanes}c`;
    return {
      layout: blockedSeconds + conversionSeconds < nchwSeconds ? name : 'nchw',
      keptLayout: blockedSeconds < nchwSeconds ? name : 'nchw',
      nchw, blocked, blockedSpec: twin.spec, nchwSeconds, blockedSeconds, conversionSeconds,
    };
  } finally {
    if (!options.device) await device.close();
  }
}


/** Seconds per call of each conversion around `twin` (ir/layout.ts blockedConversions), each timed on one thread as it runs. */
export interface ConversionTimes {
  readonly input: number;
  readonly residual?: number;
  readonly output: number;
}

export async function timeConversionParts(problem: Problem, twin: Problem, b: Backend, device: Device, minSeconds: number): Promise<ConversionTimes> {
  const seconds = async (s: Schedule): Promise<number> => {
    const t = await device.time(b.compile(s, { overwrite: true }), { minSeconds, threads: 1 });
    return t.ok ? t.bestSeconds : Infinity;
  };
  const c = conversionSchedules(problem, twin);
  return { input: await seconds(c.input), ...(c.residual ? { residual: await seconds(c.residual) } : {}), output: await seconds(c.output) };
}

/** Seconds per call of the conversions around `twin` (input, +residual, output) together. */
export async function timeConversions(problem: Problem, twin: Problem, b: Backend, device: Device, minSeconds: number): Promise<number> {
  const t = await timeConversionParts(problem, twin, b, device, minSeconds);
  return t.input + (t.residual ?? 0) + t.output;
}
