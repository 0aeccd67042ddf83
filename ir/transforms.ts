/**
 * Schedule transforms at the cursor. Each returns a new schedule or a typed error saying why the
 * transform is illegal here; none ever mutates its input.
 */
import { fail } from './errors.ts';
import { isReduction } from './problem.ts';
import { MAX_PIPELINE_STAGES, MAX_SCHEDULE_LOOPS, Schedule, type Loop, type LoopBinding, loopText, parallelBandError } from './schedule.ts';

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
  return withBand(s, loops, cursor, name);
}

/** The schedule with `loops`, or illegal when they break the parallel band's rules. */
function withBand(s: Schedule, loops: Loop[], cursor: number, name: string): TransformResult {
  const band = parallelBandError(s.problem, loops);
  return band ? illegal(`${name}: ${band}`) : ok(s.withLoops(loops, cursor));
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
  if (s.loops.length >= MAX_SCHEDULE_LOOPS) return illegal(`${name}: the schedule already has ${s.loops.length} loops, the most a schedule may have`);
  const step = s.steps[i]!;
  const extent = s.extent(i);
  const innerExtent = factor * step;
  const outer: Loop = { ...l, size: Math.floor(extent / innerExtent), tail: extent % innerExtent };
  const inner: Loop = { var: l.var, size: factor, tail: 0 };
  const loops = [...s.loops.slice(0, i), outer, inner, ...s.loops.slice(i + 1)];
  return withBand(s, loops, i, name);
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
  return withBand(s, loops, i, 'merge');
}

/** Most threads a CUDA block may have: bind_thread refuses to go past it. */
export const MAX_GPU_THREADS = 1024;

/** Iterations of a loop: its full iterations plus one for a tail. */
function iterations(l: Loop): number {
  return l.size + (l.tail > 0 ? 1 : 0);
}

/**
 * Why reduction loop `i` cannot be bound to blocks (loopnest/gpu.ts rule 10), as the rest of a
 * sentence that starts with the loop: blocks add their shares with atomic adds, so only the
 * summing combines (fma, sum) qualify; an epilogue would see one share instead of the sum; and
 * every block's share must be the same whole range, so neither it nor a loop of its variable
 * above it may have a tail (loops below it may: their ranges are then the same in every block).
 */
export function gridReductionObstacle(s: Schedule, i: number): string | undefined {
  const p = s.problem;
  if (p.combine !== 'fma' && p.combine !== 'sum') return `is a reduction loop: blocks can split a reduction only when their shares are added (this one combines with ${p.combine})`;
  if ((p.epilogue ?? []).length > 0) return 'is a reduction loop: with an epilogue the blocks cannot split the reduction (each would apply it to its share)';
  const tail = s.loops.slice(0, i + 1).find((x) => x.var === s.loops[i]!.var && x.tail > 0);
  if (tail) return `is a reduction loop bound to blocks, so every block's share must be whole, and ${loopText(p, tail)} has a tail`;
  return undefined;
}

function toggleBinding(s: Schedule, bind: LoopBinding, name: string): TransformResult {
  const i = s.cursor;
  const l = s.loops[i]!;
  const text = loopText(s.problem, l);
  if (isReduction(s.problem, l.var)) {
    const why = bind === 'block' ? gridReductionObstacle(s, i) : undefined;
    if (why) return illegal(`${name}: ${text} ${why}`);
    const tailAbove = bind === 'block' ? undefined : s.loops.slice(0, i + 1).find((x) => x.var === l.var && x.tail > 0);
    if (tailAbove) return illegal(`${name}: a reduction loop bound to threads needs whole ranges, and ${loopText(s.problem, tailAbove)} has a tail`);
  }
  if (l.shared) return illegal(`${name}: ${text} is staged in shared memory; only serial loops can be`);
  if (l.bind === bind) {
    const { bind: _drop, ...rest } = l;
    return ok(s.withLoops(s.loops.map((x, j) => (j === i ? rest : x)), i));
  }
  if (bind === 'thread') {
    const threads = s.loops.reduce((p, x, j) => (j !== i && x.bind === 'thread' ? p * iterations(x) : p), 1) * iterations(l);
    if (threads > MAX_GPU_THREADS) {
      return illegal(`${name}: binding ${text} would give ${threads} threads per block, more than ${MAX_GPU_THREADS}`);
    }
  }
  return ok(s.withLoops(s.loops.map((x, j) => (j === i ? { ...l, bind } : x)), i));
}

/** cuda: binds the cursor's loop to grid blocks (or unbinds it if it already is); a reduction loop of a sum (fma, sum) without an epilogue splits over blocks. */
export function bindBlock(s: Schedule): TransformResult {
  return toggleBinding(s, 'block', 'bind_block');
}

/**
 * cuda: binds the cursor's loop to threads of a block (or unbinds it), up to 1024 threads. A
 * reduction loop bound to threads splits the reduction inside the block (no loop of its variable
 * at or above it may have a tail).
 */
export function bindThread(s: Schedule): TransformResult {
  return toggleBinding(s, 'thread', 'bind_thread');
}

/** cuda: stages the inputs read by the cursor's loop body in shared memory (or stops staging). Reduction loops only. */
export function stageShared(s: Schedule): TransformResult {
  const i = s.cursor;
  const l = s.loops[i]!;
  if (!isReduction(s.problem, l.var)) {
    return illegal(`stage_shared: ${loopText(s.problem, l)} is not a reduction loop; only a reduction loop's body can be staged`);
  }
  if (l.bind) return illegal(`stage_shared: ${loopText(s.problem, l)} is bound to threads; only a serial loop can be staged`);
  // unstaged, the loop drops its pipeline depth too
  const next: Loop = l.shared ? (({ shared: _drop, stages: _depth, ...rest }) => rest)(l) : { ...l, shared: true };
  return ok(s.withLoops(s.loops.map((x, j) => (j === i ? next : x)), i));
}

/** Pipeline depths the stages_N actions offer (targets/cuda: 2 is double buffering; 4 rarely loses to more). */
export const PIPELINE_DEPTHS: readonly number[] = Object.freeze([2, 3, 4]);

/**
 * cuda tensor cores: the staged loop's pipeline takes `depth` shared buffers (stages_N, wherever
 * the cursor is: a schedule has one staged loop). Typed problems only (fp32 SIMT staging is a
 * single buffer); whether the buffers fit in shared memory is the target's question (validate).
 */
export function setPipelineDepth(s: Schedule, depth: number): TransformResult {
  const name = `stages_${depth}`;
  if (s.problem.dtype === undefined) return illegal(`${name}: a pipeline depth is for tensor-core kernels (bf16, f16, tf32 problems), not fp32`);
  if (!Number.isInteger(depth) || depth < 2 || depth > MAX_PIPELINE_STAGES) return illegal(`${name}: a pipeline has 2 to ${MAX_PIPELINE_STAGES} stages`);
  const i = s.loops.findIndex((l) => l.shared);
  if (i < 0) return illegal(`${name}: no loop is staged in shared memory (stage_shared first)`);
  if (s.loops[i]!.stages === depth) return illegal(`${name}: the pipeline already has ${depth} stages`);
  return ok(s.withLoops(s.loops.map((x, j) => (j === i ? { ...x, stages: depth } : x)), s.cursor));
}

/**
 * cuda: moves a factor of 2 between the cursor's thread loop and the next inner loop of its
 * variable, the tile each thread (on tensor cores: each warp or warpgroup) walks: warps_more gives
 * twice the threads half the tile each, warps_fewer the reverse. Both loops keep whole ranges
 * (no tails), the inner one stays serial, and a block keeps at most 1024 thread-loop points.
 */
export function moveThreadFactor(s: Schedule, more: boolean): TransformResult {
  const name = more ? 'warps_more' : 'warps_fewer';
  const i = s.cursor;
  const t = s.loops[i]!;
  if (t.bind !== 'thread') return illegal(`${name}: ${loopText(s.problem, t)} is not bound to threads (warps)`);
  const j = s.loops.findIndex((x, k) => k > i && x.var === t.var);
  const w = s.loops[j];
  if (j < 0 || !w) return illegal(`${name}: ${loopText(s.problem, t)} has no inner loop of its variable to trade with`);
  if (w.bind || w.shared || w.parallel) return illegal(`${name}: the next inner loop ${loopText(s.problem, w)} is not a plain serial loop`);
  if (t.tail > 0 || w.tail > 0) return illegal(`${name}: ${loopText(s.problem, t.tail > 0 ? t : w)} has a tail; a factor moves between whole ranges only`);
  const from = more ? w : t;
  if (from.size % 2 !== 0) return illegal(`${name}: ${loopText(s.problem, from)} has no factor of 2 to give`);
  const threads = s.loops.reduce((p, x) => (x.bind === 'thread' ? p * iterations(x) : p), 1) * (more ? 2 : 1);
  if (threads > MAX_GPU_THREADS) return illegal(`${name}: ${threads} thread-loop points per block, more than ${MAX_GPU_THREADS}`);
  const tSize = more ? t.size * 2 : t.size / 2, wSize = more ? w.size / 2 : w.size * 2;
  return ok(s.withLoops(s.loops.map((x, k) => (k === i ? { ...t, size: tSize } : k === j ? { ...w, size: wSize } : x)), i));
}

/** The extra actions of the cuda target (the env offers them only there): GPU bindings, staging, pipeline depth, the warp tile. */
export const CUDA_ACTIONS: readonly string[] = Object.freeze([
  'bind_block', 'bind_thread', 'stage_shared', ...PIPELINE_DEPTHS.map((d) => `stages_${d}`), 'warps_more', 'warps_fewer',
]);

/**
 * CPU (targets with threads): marks the cursor's loop parallel, or serial again. Legal when the
 * result keeps parallelBandError's rules (an output loop, one band of adjacent loops, one loop per
 * variable, not the innermost) and the loop has more than one iteration to share.
 */
export function toggleParallel(s: Schedule): TransformResult {
  const i = s.cursor;
  const l = s.loops[i]!;
  if (!l.parallel && iterations(l) < 2) return illegal(`parallel: ${loopText(s.problem, l)} has a single iteration, nothing to share among threads`);
  const next: Loop = l.parallel ? (({ parallel: _drop, ...rest }) => rest)(l) : { ...l, parallel: true };
  return withBand(s, s.loops.map((x, j) => (j === i ? next : x)), i, 'parallel');
}

/** The extra action of CPU targets that run kernels on several threads. */
export const THREAD_ACTIONS: readonly string[] = Object.freeze(['parallel']);

/** Action names: up, down, swap_up, swap_down, split_N (N >= 2), merge; for cuda also bind_block, bind_thread, stage_shared, stages_N, warps_more, warps_fewer; for threaded CPU targets parallel. */
export function applyAction(s: Schedule, action: string): TransformResult {
  switch (action) {
    case 'up': return up(s);
    case 'down': return down(s);
    case 'swap_up': return swapUp(s);
    case 'swap_down': return swapDown(s);
    case 'merge': return merge(s);
    case 'bind_block': return bindBlock(s);
    case 'bind_thread': return bindThread(s);
    case 'stage_shared': return stageShared(s);
    case 'warps_more': return moveThreadFactor(s, true);
    case 'warps_fewer': return moveThreadFactor(s, false);
    case 'parallel': return toggleParallel(s);
  }
  const m = /^split_(\d+)$/.exec(action);
  if (m) return split(s, Number(m[1]));
  const depth = /^stages_(\d+)$/.exec(action);
  if (depth) return setPipelineDepth(s, Number(depth[1]));
  return illegal(`unknown action '${action}' (expected up, down, swap_up, swap_down, split_N or merge)`);
}

export function isKnownAction(action: string): boolean {
  return ['up', 'down', 'swap_up', 'swap_down', 'merge', ...CUDA_ACTIONS, ...THREAD_ACTIONS].includes(action) || /^(split|stages)_\d+$/.test(action);
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
