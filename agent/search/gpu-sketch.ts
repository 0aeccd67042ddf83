/**
 * GPU sketches for the searchers on the cuda target, the counterpart of sketch.ts's CPU ones:
 * Ansor's GPU sketch is multi-level tiling with block, thread and register levels and a staged
 * reduction, which is what targets/cuda/templates.ts writes as schedule text. A search seeds its
 * population with the known-good template points (seedsFor) and draws fresh members from random
 * template parameters; the generic mutations (re-tiling, moving loops, random actions including
 * bind_block, bind_thread and stage_shared) take it from there. Everything stays an ordinary
 * schedule that the environment's actions can reach.
 */
import type { Problem } from '../../ir/problem.ts';
import type { Rng } from '../../ir/random.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { randomCudaSchedule } from '../../targets/cuda/fuzz.ts';
import { fitParams, randomTemplateSchedule, templateSchedule } from '../../targets/cuda/templates.ts';
import { seedsFor } from '../../targets/cuda/tuner.ts';

/** The seed schedules of the problem's template family, shrunk to fit it where needed (none for other ops). */
export function gpuSeedSchedules(problem: Problem, maxLoops: number): Schedule[] {
  const out: Schedule[] = [];
  for (const seed of seedsFor(problem)) {
    const params = fitParams(problem, seed);
    const s = params && templateSchedule(problem, params);
    if (s && s.loops.length <= maxLoops && !out.some((x) => x.hash() === s.hash())) out.push(s);
  }
  return out;
}

/** A random GPU sketch: a random template point where the op has a family, else a random annotated schedule. */
export function sampleGpuSketch(problem: Problem, rng: Rng, maxLoops: number): Schedule | undefined {
  const t = randomTemplateSchedule(problem, rng, 20) ?? randomCudaSchedule(problem, rng, 0.7).schedule;
  return t.loops.length <= maxLoops ? t : undefined;
}
