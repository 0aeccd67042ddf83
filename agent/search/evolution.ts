/**
 * Evolutionary search in the style of Ansor / MetaSchedule:
 *  - a population of measured schedules, seeded with the default, Ansor-style sketches (multi-level
 *    tiling with a register tile that fits the target, see sketch.ts) and random samples of the
 *    action space;
 *  - each generation breeds candidates from parents picked by tournament on fitness; a child is a
 *    mutation (a short random action sequence at a random cursor, a re-tiling of one variable, a
 *    loop moved to another legal position, a split or merge anywhere) or, with probability
 *    `crossover`, the loop order of one parent with the tile sizes of another;
 *  - selection: with a cost model (`options.predict`), `candidates` children are scored and the top
 *    ones measured; without one, children are measured directly (fitness = measured GFLOPS);
 *  - a batch of `batch` real measurements per generation, of which a fraction `epsilon` are fresh
 *    random schedules (eps-greedy exploration);
 *  - survivors: the best `population` distinct schedules of parents and children.
 * On the cuda target the sketches are GPU ones (gpu-sketch.ts: block/thread/register tiling with a
 * staged reduction), the known-good template points are measured first, the actions include
 * bind_block, bind_thread and stage_shared, and candidates without a legal GPU mapping are dropped
 * before they cost a measurement.
 * Crossover defaults to off: Ansor dropped it, and here it showed no gain either. On the synthetic
 * evaluator (30 mm64-256 test problems, 60 measurements, 2-4 seeds each) crossover probabilities
 * 0 / 0.1 / 0.3 / 0.5 gave geomean best/peak of 0.37-0.41 / 0.34 / 0.40-0.42 / 0.38: within seed
 * noise. Not yet compared on real measurements. The option stays for experiments.
 */
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { runWithBudget, type SearchContext, type SearchOptions, type SearchResult, type Searcher } from '../searcher.ts';
import { sampleSketch, sketchTargetFor } from './sketch.ts';
import { gpuSeedSchedules, sampleGpuSketch } from './gpu-sketch.ts';
import { crossover, mutateOrder, mutateSplitMerge, mutateTiles, randomWalk, sampleSchedule } from './moves.ts';

export interface EvolutionSearchOptions {
  /** survivors per generation (default 16). */
  population?: number;
  /** real measurements per generation (default 8). */
  batch?: number;
  /** children scored by the cost model per generation when one is given (default 64). */
  candidates?: number;
  /** fraction of each batch spent on fresh random schedules (default 0.2). */
  epsilon?: number;
  /** probability that a child comes from crossover instead of mutation (default 0). */
  crossover?: number;
  /** schedules measured to seed the population (default 8). */
  initial?: number;
}

interface Member {
  s: Schedule;
  v: number;
}

export function mutate(ctx: SearchContext, s: Schedule): Schedule | undefined {
  const r = ctx.rng.next();
  if (r < 0.35) {
    const at = s.withCursor(ctx.rng.int(0, s.loops.length - 1));
    const child = randomWalk(at, ctx.rng, ctx.rng.int(1, 4), [...ctx.actions, 'merge'], ctx.maxLoops);
    return child.hash() === s.hash() ? undefined : child;
  }
  if (r < 0.6) return mutateTiles(s, ctx.rng, ctx.maxLoops);
  if (r < 0.85) return mutateOrder(s, ctx.rng, ctx.maxLoops);
  return mutateSplitMerge(s, ctx.rng, ctx.maxLoops);
}

export function evolutionSearch(params: EvolutionSearchOptions = {}): Searcher {
  const popSize = params.population ?? 16;
  const batch = params.batch ?? 8;
  const nCandidates = params.candidates ?? 64;
  const epsilon = params.epsilon ?? 0.2;
  const pCross = params.crossover ?? 0;
  const nInitial = params.initial ?? 8;
  return {
    name: 'evolution',
    search(problem: Problem, options: SearchOptions): Promise<SearchResult> {
      return runWithBudget('evolution', problem, options, async (ctx) => {
        const initial = Schedule.initial(problem);
        let pop: Member[] = [{ s: initial, v: ctx.defaultGflops }];
        // fresh schedules: mostly Ansor-style sketches (multi-level tiling with a register tile that
        // fits), sometimes random walks in the action space
        const gpu = ctx.evaluator.target === 'cuda';
        const sketchTarget = sketchTargetFor(ctx.evaluator.target);
        // (on the GPU nearly always sketches: a random walk from the default mapping is usually a
        // kernel thousands of times slower, and costs its full run time to measure)
        const fresh = (): Schedule => (ctx.rng.next() < (gpu ? 0.95 : 0.7)
          ? (gpu ? sampleGpuSketch(problem, ctx.rng, ctx.maxLoops) : sampleSketch(problem, ctx.rng, sketchTarget, ctx.maxLoops))
          : undefined) ?? sampleSchedule(initial, ctx.rng, ctx.actions, ctx.maxLoops);
        const add = (m: Member) => {
          if (!pop.some((p) => p.s.hash() === m.s.hash())) pop.push(m);
        };
        if (gpu) for (const s of gpuSeedSchedules(problem, ctx.maxLoops)) if (ctx.known(s) === undefined) add({ s, v: await ctx.evaluate(s) });
        for (let i = 0, tries = 0; i < nInitial && tries < nInitial * 20; tries++) {
          const s = fresh();
          if (ctx.known(s) !== undefined || !ctx.feasible(s)) continue;
          add({ s, v: await ctx.evaluate(s) });
          i++;
        }
        const tournament = (): Member => {
          const a = ctx.rng.pick(pop), b = ctx.rng.pick(pop);
          return a.v >= b.v ? a : b;
        };
        let barren = 0;
        for (;;) {
          const want = ctx.predictFn ? nCandidates : batch;
          const cands: Schedule[] = [];
          const hashes = new Set<string>();
          for (let tries = 0; cands.length < want && tries < want * 20; tries++) {
            const parent = tournament();
            const child = pop.length > 1 && ctx.rng.next() < pCross ? crossover(parent.s, tournament().s, ctx.maxLoops) : mutate(ctx, parent.s);
            if (!child || ctx.known(child) !== undefined || hashes.has(child.hash()) || !ctx.feasible(child)) continue;
            hashes.add(child.hash());
            cands.push(child);
          }
          const nRandom = epsilon > 0 ? Math.max(1, Math.round(epsilon * batch)) : 0;
          let chosen: Schedule[];
          const scores = await ctx.predict(cands);
          if (scores) {
            const order = cands.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
            chosen = order.slice(0, Math.max(0, batch - nRandom)).map((i) => cands[i]!);
          } else {
            chosen = cands.slice(0, Math.max(0, batch - nRandom));
          }
          for (let i = 0, tries = 0; i < nRandom && tries < nRandom * 20; tries++) {
            const s = fresh();
            if (ctx.known(s) !== undefined || hashes.has(s.hash()) || !ctx.feasible(s)) continue;
            hashes.add(s.hash());
            chosen.push(s);
            i++;
          }
          if (chosen.length === 0) {
            if (++barren > 10) return 'converged';
            continue;
          }
          barren = 0;
          for (const s of chosen) add({ s, v: await ctx.evaluate(s) });
          pop = pop.sort((a, b) => b.v - a.v).slice(0, popSize);
        }
      });
    },
  };
}
