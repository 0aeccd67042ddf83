/**
 * Mutation operators of the evolution (agent/search/evolution.ts), MetaSchedule style: each is a
 * named operator with a weight, and every child slot of a generation draws its operator with
 * probability weight / sum of weights. An operator takes a batch of parents at once so that one
 * that runs a policy (agent/ppo/search.ts policyRollout) rolls all of them out in lockstep.
 *
 * A plain move of moves.ts (`(schedule, rng, maxLoops) => child | undefined`, e.g. mutateTiles) is an
 * operator too: `[[mutateTiles, 0.4], [mutateOrder, 0.3], [policyRollout(policy), 0.3]]`.
 */
import { fail } from '../../ir/errors.ts';
import type { Rng } from '../../ir/random.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { mutateOrder, mutateSplitMerge, mutateTiles, randomWalk } from './moves.ts';

/** What an operator may use besides its parents: the search's random stream and its action space. */
export interface MutationContext {
  rng: Rng;
  actions: readonly string[];
  maxLoops: number;
}

export interface Mutator {
  /** the operator's name in generation reports. */
  readonly name: string;
  /**
   * Children of `parents`, any number per parent (a rollout gives every state it visits); an
   * undefined entry is a parent that gave none. Children need not be new: the evolution filters.
   */
  mutate(parents: readonly Schedule[], ctx: MutationContext): (Schedule | undefined)[];
}

/** A single-parent move, as in moves.ts. */
export type MoveFunction = (s: Schedule, rng: Rng, maxLoops: number) => Schedule | undefined;

/** An operator (or a plain move) and its weight: its share of the child slots is weight / total. */
export type WeightedMutator = readonly [Mutator | MoveFunction, number];

/** An operator that applies a single-parent move to each parent in turn. */
export function moveMutator(name: string, move: MoveFunction): Mutator {
  return { name, mutate: (parents, ctx) => parents.map((p) => move(p, ctx.rng, ctx.maxLoops)) };
}

/** 1-4 random legal actions (merge included) from a random cursor: the action-space mutation. */
export const walkMutator: Mutator = {
  name: 'walk',
  mutate: (parents, ctx) => parents.map((s) => {
    const at = s.withCursor(ctx.rng.int(0, s.loops.length - 1));
    const child = randomWalk(at, ctx.rng, ctx.rng.int(1, 4), [...ctx.actions, 'merge'], ctx.maxLoops);
    return child.hash() === s.hash() ? undefined : child;
  }),
};

export const tileMutator = moveMutator('tiles', mutateTiles);
export const orderMutator = moveMutator('order', mutateOrder);
export const splitMergeMutator = moveMutator('split-merge', mutateSplitMerge);

/** The search baselines' mix (re-tiling, loop moves, splits/merges, action walks). */
export const DEFAULT_MUTATORS: readonly WeightedMutator[] = Object.freeze([
  [walkMutator, 0.35],
  [tileMutator, 0.25],
  [orderMutator, 0.25],
  [splitMergeMutator, 0.15],
] as const);

/** `list` with every weight multiplied by `factor` (to make room for another operator). */
export function scaleWeights(list: readonly WeightedMutator[], factor: number): WeightedMutator[] {
  return list.map(([m, w]) => [m, w * factor] as const);
}

/** The operators of a weighted list, plain moves wrapped, with cumulative weights for drawing. */
export class MutatorMix {
  readonly mutators: readonly Mutator[];
  readonly #cumulative: number[];
  readonly #total: number;

  constructor(list: readonly WeightedMutator[]) {
    if (list.length === 0) fail('evolution: the mutator list is empty');
    const mutators: Mutator[] = [];
    const cumulative: number[] = [];
    let total = 0;
    for (const [m, w] of list) {
      const name = typeof m === 'function' ? m.name || 'move' : m.name;
      if (!(Number.isFinite(w) && w >= 0)) fail(`evolution: mutator '${name}' has weight ${w}; weights must be finite and >= 0`);
      mutators.push(typeof m === 'function' ? moveMutator(name, m) : m);
      total += w;
      cumulative.push(total);
    }
    if (!(total > 0)) fail('evolution: the mutator weights sum to 0');
    this.mutators = mutators;
    this.#cumulative = cumulative;
    this.#total = total;
  }

  /** index of an operator drawn with probability weight / total (one draw of `rng`). */
  draw(rng: Rng): number {
    // u < total (next() < 1), so some index matches; a zero weight's range is empty: never drawn
    const u = rng.next() * this.#total;
    return this.#cumulative.findIndex((c) => u < c);
  }
}
