/**
 * Schedule transforms at the cursor. Each returns a new schedule or a typed error saying why the
 * transform is illegal here; none ever mutates its input.
 */
import { fail } from './errors.ts';
import { Schedule, type Loop, loopText } from './schedule.ts';

export type TransformResult = { ok: true; schedule: Schedule } | { ok: false; error: string };

const ok = (schedule: Schedule): TransformResult => ({ ok: true, schedule });
const illegal = (error: string): TransformResult => ({ ok: false, error });

export function up(s: Schedule): TransformResult {
  if (s.cursor === 0) return illegal('up: the cursor is already on the outermost loop');
  return ok(s.withCursor(s.cursor - 1));
}

export function down(s: Schedule): TransformResult {
  if (s.cursor === s.loops.length - 1) return illegal('down: the cursor is already on the innermost loop');
  return ok(s.withCursor(s.cursor + 1));
}

/** Swaps the cursor's loop with the one above it; the cursor follows its loop. */
export function swapUp(s: Schedule): TransformResult {
  if (s.cursor === 0) return illegal('swap_up: the cursor is on the outermost loop, there is no loop above it');
  return swap(s, s.cursor - 1, s.cursor, 'swap_up', s.cursor - 1);
}

/** Swaps the cursor's loop with the one below it; the cursor follows its loop. */
export function swapDown(s: Schedule): TransformResult {
  if (s.cursor === s.loops.length - 1) return illegal('swap_down: the cursor is on the innermost loop, there is no loop below it');
  return swap(s, s.cursor, s.cursor + 1, 'swap_down', s.cursor + 1);
}

function swap(s: Schedule, a: number, b: number, name: string, cursor: number): TransformResult {
  const la = s.loops[a]!;
  const lb = s.loops[b]!;
  if (la.var === lb.var) {
    return illegal(`${name}: cannot swap two loops of the same variable ${s.problem.vars[la.var]!.name}`);
  }
  const loops = [...s.loops];
  loops[a] = lb;
  loops[b] = la;
  return ok(s.withLoops(loops, cursor));
}

/**
 * Tiles the cursor's loop by `factor`: an inner loop of `factor` iterations of the old step and an
 * outer loop over the rest (size floor(E / (factor * step)), tail E mod (factor * step)).
 * The cursor stays on the outer loop.
 */
export function split(s: Schedule, factor: number): TransformResult {
  const name = `split_${factor}`;
  if (!Number.isInteger(factor) || factor < 2) return illegal(`${name}: the factor must be an integer of at least 2`);
  const i = s.cursor;
  const l = s.loops[i]!;
  if (factor > l.size) {
    return illegal(`${name}: loop ${loopText(s.problem, l)} has only ${l.size} iterations, cannot split by ${factor}`);
  }
  const step = s.steps[i]!;
  const extent = s.extent(i);
  const innerExtent = factor * step;
  const outer: Loop = { ...l, size: Math.floor(extent / innerExtent), tail: extent % innerExtent };
  const inner: Loop = { var: l.var, size: factor, tail: 0 };
  const loops = [...s.loops.slice(0, i), outer, inner, ...s.loops.slice(i + 1)];
  return ok(s.withLoops(loops, i));
}

/** Merges the cursor's loop with the loop right below it, which must be of the same variable. */
export function merge(s: Schedule): TransformResult {
  const i = s.cursor;
  const outer = s.loops[i]!;
  const inner = s.loops[i + 1];
  if (inner === undefined || inner.var !== outer.var) {
    return illegal(`merge: the loop below the cursor must be of the same variable ${s.problem.vars[outer.var]!.name}`);
  }
  const extent = s.extent(i);
  const step = s.steps[i + 1]!;
  const merged: Loop = { ...outer, size: Math.floor(extent / step), tail: extent % step };
  const loops = [...s.loops.slice(0, i), merged, ...s.loops.slice(i + 2)];
  return ok(s.withLoops(loops, i));
}

/** Action names: up, down, swap_up, swap_down, split_N (N >= 2), merge. */
export function applyAction(s: Schedule, action: string): TransformResult {
  switch (action) {
    case 'up': return up(s);
    case 'down': return down(s);
    case 'swap_up': return swapUp(s);
    case 'swap_down': return swapDown(s);
    case 'merge': return merge(s);
  }
  const m = /^split_(\d+)$/.exec(action);
  if (m) return split(s, Number(m[1]));
  return illegal(`unknown action '${action}' (expected up, down, swap_up, swap_down, split_N or merge)`);
}

export function isKnownAction(action: string): boolean {
  return ['up', 'down', 'swap_up', 'swap_down', 'merge'].includes(action) || /^split_\d+$/.test(action);
}

/** Applies actions in order; throws a LoopTuneError naming the first illegal one. */
export function applyActions(s: Schedule, actions: readonly string[]): Schedule {
  let cur = s;
  for (const a of actions) {
    const r = applyAction(cur, a);
    if (!r.ok) fail(r.error);
    cur = r.schedule;
  }
  return cur;
}
