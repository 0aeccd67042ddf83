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
import type { Backend } from '../../targets/backend.ts';
import { FEATURE_COUNT, FEATURE_NAMES, featureContext, featurize } from './features.ts';

/** The analytic model of a backend: its nominal peak (targets/<isa>/backend.ts) x the roofline feature. */
export function analyticPredict(target: Backend): { predict: PredictFunction; peakGflops: number } {
  const peakGflops = target.nominalPeakGflops;
  if (!(peakGflops > 0)) fail(`no analytic cost model for target '${target.name}' (it has no nominal peak)`);
  const ctx = featureContext(target.name);
  const roofline = FEATURE_NAMES.indexOf('mem.roofline');
  return {
    peakGflops,
    predict: (schedules) => {
      const f = featurize(schedules, ctx);
      return schedules.map((_, i) => peakGflops * f[i * FEATURE_COUNT + roofline]!);
    },
  };
}
