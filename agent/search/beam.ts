/**
 * Beam search over action sequences, in LoopTune's two flavours, to `depth` actions (default 10, one
 * episode):
 *  - bfs: level by level; all legal children of the beam are evaluated and the best `width` kept;
 *  - dfs: depth first; at each state the children are evaluated and the best `width` are explored
 *    in order, each to the depth limit, before the next.
 * States (schedule + cursor) are visited once per search. When a pass ends with budget left, the next
 * pass starts from a short random walk off the best schedule.
 */
import type { Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { runWithBudget, type SearchContext, type SearchOptions, type SearchResult, type Searcher } from '../searcher.ts';
import { legalMoves, randomWalk, stateKey } from './moves.ts';

export interface BeamSearchOptions {
  /** states kept per level (bfs) or explored per state (dfs); default 4. */
  width?: number;
  /** actions per pass (default 10). */
  depth?: number;
  variant?: 'bfs' | 'dfs';
}

interface Node {
  s: Schedule;
  v: number;
}

async function children(ctx: SearchContext, s: Schedule, visited: Set<string>): Promise<Node[]> {
  const out: Node[] = [];
  for (const m of legalMoves(s, ctx.actions, ctx.maxLoops)) {
    const key = stateKey(m.schedule);
    if (visited.has(key)) continue;
    visited.add(key);
    out.push({ s: m.schedule, v: await ctx.evaluate(m.schedule) });
  }
  // stable: equal values keep action order
  return out.sort((a, b) => b.v - a.v);
}

export function beamSearch(params: BeamSearchOptions = {}): Searcher {
  const width = params.width ?? 4;
  const depth = params.depth ?? 10;
  const variant = params.variant ?? 'bfs';
  if (!Number.isInteger(width) || width < 1) throw new RangeError(`beam: width must be a positive integer, got ${width}`);
  const name = `beam-${variant}${width}`;
  return {
    name,
    search(problem: Problem, options: SearchOptions): Promise<SearchResult> {
      return runWithBudget(name, problem, options, async (ctx) => {
        const visited = new Set<string>();
        const bfs = async (root: Schedule) => {
          let frontier: Node[] = [{ s: root, v: await ctx.evaluate(root) }];
          for (let d = 0; d < depth && frontier.length > 0; d++) {
            const next: Node[] = [];
            for (const f of frontier) next.push(...(await children(ctx, f.s, visited)));
            frontier = next.sort((a, b) => b.v - a.v).slice(0, width);
          }
        };
        const dfs = async (s: Schedule, d: number): Promise<void> => {
          if (d >= depth) return;
          const kids = (await children(ctx, s, visited)).slice(0, width);
          for (const k of kids) await dfs(k.s, d + 1);
        };
        let root = ctx.best.schedule;
        for (;;) {
          visited.add(stateKey(root));
          // evaluated every pass (free when known): a pass that finds nothing new still counts toward the stall limit
          await ctx.evaluate(root);
          if (variant === 'bfs') await bfs(root);
          else await dfs(root, 0);
          const best = ctx.best.schedule;
          root = randomWalk(best.withCursor(ctx.rng.int(0, best.loops.length - 1)), ctx.rng, ctx.rng.int(0, 3), ctx.actions, ctx.maxLoops);
        }
      });
    },
  };
}
