/**
 * GPU sketches, Ansor's GPU sketch: multi-level tiling with block, thread and register levels and a
 * staged reduction, as templates.ts writes it. Seeds are the known-good template points of the
 * problem's family (shrunk to fit it; none for other ops), with a split-k twin where the seed's
 * grid is too small to fill the GPU; a sample is a random template point, or
 * a random annotated schedule where the op has no family. Nearly every fresh schedule is a sketch:
 * a random walk from the default mapping is usually thousands of times slower and costs its full
 * run time to measure.
 */
import type { Problem } from '../../ir/problem.ts';
import type { Rng } from '../../ir/random.ts';
import type { Schedule } from '../../ir/schedule.ts';
import type { SketchSource } from '../backend.ts';
import { randomCudaSchedule } from './fuzz.ts';
import { seedsFor } from './seeds.ts';
import { fitParams, GEMM_CHOICES, randomTemplateSchedule, templateSchedule, type GemmParams } from './templates.ts';
import { tensorCoreSchedules } from './mma-tiles.ts';
import { blockCount, splitKChoice } from './split-k.ts';

/** The seed split over blocks along k (loopnest/gpu.ts rule 10) where its grid is too small (splitKChoice). */
function splitK(p: Problem, params: GemmParams, blocks: number): Schedule | null {
  if ((params.gk ?? 1) > 1) return null;
  const valid = GEMM_CHOICES.gk.filter((gk) => templateSchedule(p, { ...params, gk }) !== null);
  const gk = splitKChoice(blocks, valid);
  return gk === undefined ? null : templateSchedule(p, { ...params, gk });
}

export const cudaSketches: SketchSource = {
  share: 0.95,
  seeds(problem: Problem, maxLoops: number): Schedule[] {
    // a typed matmul runs on tensor cores: its sketches are the tile points planMma accepts (wgmma and mma.sync)
    if (problem.dtype !== undefined) return tensorCoreSchedules(problem).filter((s) => s.loops.length <= maxLoops);
    const out: Schedule[] = [];
    const add = (s: Schedule | null) => {
      if (s && s.loops.length <= maxLoops && !out.some((x) => x.hash() === s.hash())) out.push(s);
    };
    for (const seed of seedsFor(problem)) {
      const params = fitParams(problem, seed);
      const s = params && templateSchedule(problem, params);
      add(s);
      if (s && params.family === 'gemm') add(splitK(problem, params, blockCount(s)));
    }
    return out;
  },
  sample(problem: Problem, rng: Rng, maxLoops: number): Schedule | undefined {
    if (problem.dtype !== undefined) {
      const all = tensorCoreSchedules(problem).filter((s) => s.loops.length <= maxLoops);
      return all.length > 0 ? all[rng.int(0, all.length - 1)] : undefined;
    }
    const t = randomTemplateSchedule(problem, rng, 20) ?? randomCudaSchedule(problem, rng, 0.7).schedule;
    return t.loops.length <= maxLoops ? t : undefined;
  },
};
