/**
 * Random search: random walks of legal actions from the default schedule (each visited schedule is
 * evaluated, like a random policy in the env), alternating with random samples (a schedule reached by
 * 1..24 random legal actions; only the endpoint is evaluated).
 */
import type { Problem } from '../../ir/problem.ts';
import { runWithBudget, type SearchOptions, type SearchResult, type Searcher } from '../searcher.ts';
import { legalMoves, sampleSchedule } from './moves.ts';

export interface RandomSearchOptions {
  /** actions per walk (default 10: one LoopTune episode). */
  walkLength?: number;
  /** probability that a round is a random sample rather than a walk (default 0.5). */
  sampleProbability?: number;
}

export function randomSearch(params: RandomSearchOptions = {}): Searcher {
  const walkLength = params.walkLength ?? 10;
  const pSample = params.sampleProbability ?? 0.5;
  return {
    name: 'random',
    search(problem: Problem, options: SearchOptions): Promise<SearchResult> {
      return runWithBudget('random', problem, options, async (ctx) => {
        const initial = ctx.initial;
        for (;;) {
          if (ctx.rng.next() < pSample) {
            await ctx.evaluate(sampleSchedule(initial, ctx.rng, ctx.actions, ctx.maxLoops));
            continue;
          }
          let s = initial;
          for (let i = 0; i < walkLength; i++) {
            const moves = legalMoves(s, ctx.actions, ctx.maxLoops);
            if (moves.length === 0) break;
            s = ctx.rng.pick(moves).schedule;
            await ctx.evaluate(s);
          }
        }
      });
    },
  };
}
