/**
 * The action table: LoopTune's actions at the cursor (up, down, swap_up, swap_down, split_N, merge),
 * the annotation actions a target may add (cuda: bind_block, bind_thread, stage_shared; threaded CPU
 * targets: parallel; their
 * transforms are in transforms.ts), and legality: an action is legal when its transform accepts the
 * schedule and, for splits, the nest stays within the loop limit. The env, the searchers and the
 * experiment schema take actions and masks from here; a target's extra actions come from its
 * Backend (targets/backend.ts `actions`).
 */
import type { Schedule } from './schedule.ts';
import { applyAction, CUDA_ACTIONS, isKnownAction, THREAD_ACTIONS, type TransformResult } from './transforms.ts';

/** LoopTune's default action set. */
export const LOOPTUNE_ACTIONS: readonly string[] = Object.freeze(['up', 'down', 'swap_up', 'swap_down', 'split_4', 'split_8', 'split_16']);

/** LoopTune's loop limit (a target may set its own: Backend.maxLoops). */
export const DEFAULT_MAX_LOOPS = 10;

/** Actions that exist only where a target adds them (they annotate loops for that target). */
export const TARGET_ACTIONS: readonly string[] = Object.freeze([...CUDA_ACTIONS, ...THREAD_ACTIONS]);

export { isKnownAction };

/** LoopTune's actions plus a target's extra ones. */
export function actionsWith(extra: readonly string[]): readonly string[] {
  return extra.length === 0 ? LOOPTUNE_ACTIONS : Object.freeze([...LOOPTUNE_ACTIONS, ...extra]);
}

/** Whether `action` is usable on a target that adds `extra`: known, and if a target action, one of its own. */
export function actionAllowed(action: string, extra: readonly string[]): boolean {
  return isKnownAction(action) && (!TARGET_ACTIONS.includes(action) || extra.includes(action));
}

/** applyAction plus the loop-count limit on splits: the legality rule shared by the env and searchers. */
export function tryAction(s: Schedule, action: string, maxLoops = DEFAULT_MAX_LOOPS): TransformResult {
  if (action.startsWith('split_') && s.loops.length >= maxLoops) {
    return { ok: false, error: `${action}: the nest already has ${s.loops.length} loops (at most ${maxLoops})` };
  }
  return applyAction(s, action);
}

/** Legal actions of `s` as a mask over `actions`. */
export function actionMaskOf(s: Schedule, actions: readonly string[], maxLoops = DEFAULT_MAX_LOOPS): boolean[] {
  return actions.map((a) => tryAction(s, a, maxLoops).ok);
}

/** (action index, next schedule) for every legal action. */
export function legalMoves(s: Schedule, actions: readonly string[], maxLoops = DEFAULT_MAX_LOOPS): { action: number; schedule: Schedule }[] {
  const out: { action: number; schedule: Schedule }[] = [];
  actions.forEach((a, i) => {
    const r = tryAction(s, a, maxLoops);
    if (r.ok) out.push({ action: i, schedule: r.schedule });
  });
  return out;
}
