/**
 * Moves shared by the searchers: legal actions (the env's rule), random walks, and direct edits of
 * the loop list (Ansor-style mutations) that always yield a valid schedule or nothing.
 */
import type { Rng } from '../../ir/random.ts';
import { Schedule, type Loop } from '../../ir/schedule.ts';
import { legalMoves, tryAction } from '../../ir/actions.ts';

/** hash plus cursor: states that differ only by cursor have the same code but different futures. */
export function stateKey(s: Schedule): string {
  return `${s.hash()}@${s.cursor}`;
}

export { legalMoves };

/** `length` random legal actions from `s` (stops early if none is legal). */
export function randomWalk(s: Schedule, rng: Rng, length: number, actions: readonly string[], maxLoops: number): Schedule {
  let cur = s;
  for (let i = 0; i < length; i++) {
    const moves = legalMoves(cur, actions, maxLoops);
    if (moves.length === 0) break;
    cur = rng.pick(moves).schedule;
  }
  return cur;
}

/** A schedule reached by 1..maxSteps random legal actions from the default (LoopTune's space). */
export function sampleSchedule(initial: Schedule, rng: Rng, actions: readonly string[], maxLoops: number, maxSteps = 24): Schedule {
  return randomWalk(initial, rng, rng.int(1, maxSteps), actions, maxLoops);
}

function build(base: Schedule, loops: readonly Loop[], maxLoops: number): Schedule | undefined {
  if (loops.length > maxLoops) return undefined;
  try {
    return new Schedule(base.problem, loops, Math.min(base.cursor, loops.length - 1));
  } catch {
    return undefined;
  }
}

/** Tile factors the direct edits choose from. */
export const TILE_FACTORS = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

/**
 * Re-tiles one variable: keeps the positions of its loops, draws new inner factors (inner loops
 * without tails, the outermost takes the remainder).
 */
export function mutateTiles(s: Schedule, rng: Rng, maxLoops: number): Schedule | undefined {
  const vars = [...new Set(s.loops.map((l) => l.var))].filter((v) => s.loops.filter((l) => l.var === v).length >= 2);
  if (vars.length === 0) return undefined;
  const v = rng.pick(vars);
  const extent = s.problem.vars[v]!.extent;
  const positions = s.loops.flatMap((l, i) => (l.var === v ? [i] : []));
  const loops = [...s.loops];
  let step = 1;
  for (let j = positions.length - 1; j >= 1; j--) {
    const candidates = TILE_FACTORS.filter((f) => f * step <= extent);
    if (candidates.length === 0) return undefined;
    const f = rng.pick(candidates);
    loops[positions[j]!] = { ...loops[positions[j]!]!, size: f, tail: 0 };
    step *= f;
  }
  const outer = positions[0]!;
  loops[outer] = { ...loops[outer]!, size: Math.floor(extent / step), tail: extent % step };
  if (loops[outer]!.size < 1) return undefined;
  const r = build(s, loops, maxLoops);
  return r && r.hash() !== s.hash() ? r : undefined;
}

/** Splits a random loop by a random factor, or merges a random loop with the one below it. */
export function mutateSplitMerge(s: Schedule, rng: Rng, maxLoops: number): Schedule | undefined {
  const at = s.withCursor(rng.int(0, s.loops.length - 1));
  const r = rng.next() < 0.6 ? tryAction(at, `split_${rng.pick(TILE_FACTORS)}`, maxLoops) : tryAction(at, 'merge', maxLoops);
  return r.ok ? r.schedule : undefined;
}

/**
 * Moves one loop to another position without crossing a loop of the same variable (so each
 * variable's tiling is unchanged): a loop-order mutation.
 */
export function mutateOrder(s: Schedule, rng: Rng, maxLoops: number): Schedule | undefined {
  const n = s.loops.length;
  if (n < 2) return undefined;
  const i = rng.int(0, n - 1);
  const v = s.loops[i]!.var;
  let lo = i, hi = i;
  while (lo > 0 && s.loops[lo - 1]!.var !== v) lo--;
  while (hi < n - 1 && s.loops[hi + 1]!.var !== v) hi++;
  if (lo === hi) return undefined;
  let j = rng.int(lo, hi - 1);
  if (j >= i) j++;
  const loops = [...s.loops];
  const [moved] = loops.splice(i, 1);
  loops.splice(j, 0, moved!);
  return build(s, loops, maxLoops);
}

/**
 * Crossover: the loop order of `a` with the tile sizes of `b`, variable by variable (only when both
 * have the same number of loops per variable; otherwise nothing).
 */
export function crossover(a: Schedule, b: Schedule, maxLoops: number): Schedule | undefined {
  const perVar = (s: Schedule) => {
    const m = new Map<number, Loop[]>();
    for (const l of s.loops) m.set(l.var, [...(m.get(l.var) ?? []), l]);
    return m;
  };
  const pa = perVar(a), pb = perVar(b);
  for (const [v, ls] of pa) if ((pb.get(v)?.length ?? -1) !== ls.length) return undefined;
  const used = new Map<number, number>();
  const loops = a.loops.map((l) => {
    const k = used.get(l.var) ?? 0;
    used.set(l.var, k + 1);
    const from = pb.get(l.var)![k]!;
    return { ...l, size: from.size, tail: from.tail };
  });
  const r = build(a, loops, maxLoops);
  return r && r.hash() !== a.hash() && r.hash() !== b.hash() ? r : undefined;
}
