/**
 * The search baselines behind one Searcher contract (agent/searcher.ts), and names for them:
 *   random | random:<walk length>
 *   greedy | greedy:<depth>            (default depth 2; also greedy1, greedy2, greedy3)
 *   beam | beam:<width> | beam-bfs:<width> | beam-dfs:<width>   (default width 4)
 *   evolution | evolution:<population>
 */
import { fail } from '../../ir/errors.ts';
import type { Searcher } from '../searcher.ts';
import { beamSearch } from './beam.ts';
import { evolutionSearch } from './evolution.ts';
import { greedySearch } from './greedy.ts';
import { randomSearch } from './random.ts';

export { randomSearch, type RandomSearchOptions } from './random.ts';
export { greedySearch, type GreedySearchOptions } from './greedy.ts';
export { beamSearch, type BeamSearchOptions } from './beam.ts';
export { evolutionSearch, evolve, type EvolutionOptions, type EvolutionSearchOptions, type GenerationReport } from './evolution.ts';
export {
  DEFAULT_MUTATORS, MutatorMix, moveMutator, walkMutator, tileMutator, orderMutator, splitMergeMutator, scaleWeights,
  type Mutator, type MutationContext, type MoveFunction, type WeightedMutator,
} from './mutators.ts';

export const SEARCHER_NAMES = ['random', 'greedy', 'beam', 'beam-dfs', 'evolution'] as const;

export function createSearcher(spec: string | Searcher): Searcher {
  if (typeof spec !== 'string') return spec;
  const m = /^([a-z-]+?)(\d+)?(?::(\d+))?$/.exec(spec.trim().toLowerCase());
  const base = m?.[1];
  const n = m?.[3] ?? m?.[2];
  const arg = n === undefined ? undefined : Number(n);
  if (arg !== undefined && arg < 1) fail(`searcher '${spec}': the parameter must be at least 1`);
  switch (base) {
    case 'random': return randomSearch(arg ? { walkLength: arg } : {});
    case 'greedy': return greedySearch(arg ? { depth: arg } : {});
    case 'beam':
    case 'beam-bfs': return beamSearch({ variant: 'bfs', ...(arg ? { width: arg } : {}) });
    case 'beam-dfs': return beamSearch({ variant: 'dfs', ...(arg ? { width: arg } : {}) });
    case 'evolution': return evolutionSearch(arg ? { population: arg } : {});
  }
  return fail(`unknown searcher '${spec}' (expected ${SEARCHER_NAMES.join(', ')}, optionally with :N, e.g. greedy:3, beam-dfs:8)`);
}
