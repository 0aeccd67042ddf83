import { parseProblem, Schedule, Rng, type Problem } from '../../../ir/index.ts';
import { sampleSchedule, mutateTiles } from '../../../agent/search/moves.ts';
import { LOOPTUNE_ACTIONS } from '../../../env/loopnest-env.ts';
import { syntheticGflops } from '../../../env/synthetic.ts';
import type { RecordGroup } from '../../../agent/costmodel/data.ts';
import { lower } from '../../../loopnest/lower.ts';
import { backend } from '../../../targets/registry.ts';

/** `count` distinct schedules of `p`: random walks from the default, half of them re-tiled. */
export function schedulesOf(p: Problem, count: number, rng: Rng): Schedule[] {
  const seen = new Map<string, Schedule>();
  for (let t = 0; seen.size < count && t < count * 20; t++) {
    let s = sampleSchedule(Schedule.initial(p), rng, LOOPTUNE_ACTIONS, 10);
    if (rng.next() < 0.5) s = mutateTiles(s, rng, 10) ?? s;
    seen.set(s.hash(), s);
  }
  return [...seen.values()];
}

/** Records from a known function (env/synthetic.ts) on small matmuls. */
export function syntheticGroups(specs: string[], perProblem: number, seed: number): RecordGroup[] {
  const rng = new Rng(seed);
  return specs.map((spec) => {
    const schedules = schedulesOf(parseProblem(spec), perProblem, rng);
    return { problem: spec, schedules, gflops: schedules.map((s) => syntheticGflops(s, 100)) };
  });
}

export const TRAIN_SPECS = [
  'matmul 64x64x64', 'matmul 96x128x64', 'matmul 128x64x96', 'matmul 80x112x128', 'matmul 128x128x128', 'matmul 64x160x80',
  'matmul 144x96x112', 'matmul 112x80x144', 'conv2d n1 c8 h18 w18 k16 r3 s3', 'conv2d n1 c16 h10 w34 k8 r3 s3',
];

/**
 * A known, non-linear function of the lowering's decisions, for learnability tests: register
 * blocking (accumulators up to 12), vectorization, unrolling, a penalty per loop with a tail and a
 * small one per loop.
 */
export function knownGflops(s: Schedule): number {
  const d = lower(s, backend('avx512').caps).decision;
  const blocking = Math.min(d.accumulators, 12) / 12;
  const vector = d.lanes > 1 ? 1 : 0.15;
  const tails = s.loops.filter((l) => l.tail > 0).length;
  const unroll = 0.8 + 0.2 * Math.log2(1 + d.unrolledOps) / 9;
  return 100 * (0.05 + blocking * vector) * Math.pow(0.8, tails) * unroll * (1 - 0.02 * s.loops.length);
}

export function knownGroups(specs: string[], perProblem: number, seed: number): RecordGroup[] {
  const rng = new Rng(seed);
  return specs.map((spec) => {
    const schedules = schedulesOf(parseProblem(spec), perProblem, rng);
    return { problem: spec, schedules, gflops: schedules.map(knownGflops) };
  });
}
