/**
 * Greedy search with lookahead (LoopTune's greedy baseline): from the current state, evaluate every
 * legal action sequence of length `depth`; a sequence is worth the best schedule along it (ties go
 * to the shorter prefix). If the best sequence beats the current state, take its first action and
 * repeat; otherwise the climb has converged. With `restarts` (default), the search then perturbs the
 * best schedule by a short random walk and climbs again until the budget is spent.
 */
import type { Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { runWithBudget, type SearchContext, type SearchOptions, type SearchResult, type Searcher } from '../searcher.ts';
import { legalMoves, randomWalk, stateKey } from './moves.ts';

export interface GreedySearchOptions {
  /** lookahead depth (default 2). */
  depth?: number;
  /** keep climbing from perturbations of the best schedule after convergence (default true). */
  restarts?: boolean;
}

interface Plan {
  value: number;
  length: number;
  first: Schedule;
}

async function lookahead(ctx: SearchContext, from: Schedule, depth: number, visited: Set<string>): Promise<Plan | undefined> {
  let best: Plan | undefined;
  const rec = async (s: Schedule, left: number, first: Schedule | undefined, length: number): Promise<void> => {
    for (const m of legalMoves(s, ctx.actions, ctx.maxLoops)) {
      const f = first ?? m.schedule;
      if (first === undefined && visited.has(stateKey(m.schedule))) continue;
      const value = await ctx.evaluate(m.schedule);
      if (!best || value > best.value || (value === best.value && length + 1 < best.length)) best = { value, length: length + 1, first: f };
      if (left > 1) await rec(m.schedule, left - 1, f, length + 1);
    }
  };
  await rec(from, depth, undefined, 0);
  return best;
}

export function greedySearch(params: GreedySearchOptions = {}): Searcher {
  const depth = params.depth ?? 2;
  if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`greedy: depth must be a positive integer, got ${depth}`);
  const restarts = params.restarts ?? true;
  const name = `greedy${depth}`;
  return {
    name,
    search(problem: Problem, options: SearchOptions): Promise<SearchResult> {
      return runWithBudget(name, problem, options, async (ctx) => {
        let start = ctx.best.schedule;
        for (;;) {
          let cur = start;
          let value = await ctx.evaluate(cur);
          const visited = new Set([stateKey(cur)]);
          for (;;) {
            const plan = await lookahead(ctx, cur, depth, visited);
            if (!plan || plan.value <= value) break;
            cur = plan.first;
            visited.add(stateKey(cur));
            value = await ctx.evaluate(cur);
          }
          if (!restarts) return 'converged';
          const best = ctx.best.schedule;
          start = randomWalk(best.withCursor(ctx.rng.int(0, best.loops.length - 1)), ctx.rng, ctx.rng.int(1, 4), ctx.actions, ctx.maxLoops);
        }
      });
    },
  };
}
