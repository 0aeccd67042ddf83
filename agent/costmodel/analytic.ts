/**
 * An analytic cost model, for targets this machine cannot time (neon runs only under emulation,
 * whose timings say nothing about Arm hardware): predicted GFLOPS = the target's nominal peak x the
 * roofline feature of the schedule's LoopProgram (features.ts, `mem.roofline`: the smaller of the
 * register tile's compute efficiency and what the cache traffic of each level allows). Nothing is
 * learned, so it ranks schedules by the generator's structure only; a learned model replaces it
 * once measurements on the hardware exist.
 */
import type { PredictFunction } from '../../env/evaluator.ts';
import { fail } from '../../ir/errors.ts';
import { FEATURE_COUNT, FEATURE_NAMES, featureContext, featurize } from './features.ts';

/** fp32 peak of a typical core of the target: lanes x 2 (FMA) x FMA pipes x clock. */
export const NOMINAL_PEAK_GFLOPS: Readonly<Record<string, number>> = Object.freeze({
  // Neoverse N1 / Cortex-A76 class: 4 lanes x 2 flops x 2 pipes x 3.0 GHz
  neon: 48,
});

export function analyticPredict(target: string): { predict: PredictFunction; peakGflops: number } {
  const peakGflops = NOMINAL_PEAK_GFLOPS[target];
  if (peakGflops === undefined) fail(`no analytic cost model for target '${target}' (have: ${Object.keys(NOMINAL_PEAK_GFLOPS).join(', ')})`);
  const ctx = featureContext(target);
  const roofline = FEATURE_NAMES.indexOf('mem.roofline');
  return {
    peakGflops,
    predict: (schedules) => {
      const f = featurize(schedules, ctx);
      return schedules.map((_, i) => peakGflops * f[i * FEATURE_COUNT + roofline]!);
    },
  };
}
