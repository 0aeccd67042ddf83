/**
 * LoopNestEnv: LoopTune's environment. The state is a schedule with its cursor; an action is a
 * schedule transform at the cursor (default: up, down, swap_up, swap_down, split_4, split_8,
 * split_16, and for the cuda target also bind_block, bind_thread, stage_shared); the reward is (GFLOPS after - GFLOPS before) / peak, GFLOPS from the Evaluator.
 *
 *  - Illegal actions (those applyAction rejects, and splits that would exceed maxLoops loops) are
 *    no-ops: the state stays, reward 0, `info.illegal` says why. `actionMask()` lists legal ones.
 *  - The cuda actions exist only when the evaluator's target is 'cuda' (asking for them elsewhere is
 *    an error); there the vector observation also carries each loop's GPU binding (ir/graph.ts).
 *  - Cursor moves do not change the code (the hash excludes the cursor): they reuse the current
 *    figure and cost no measurement.
 *  - Episodes are truncated after `maxSteps` steps (default 10); nothing terminates them.
 *  - `reset({ seed })` picks the problem from the dataset split with Rng(seed) (same seed => same
 *    problem); `reset({ options: { problem, schedule } })` starts from a given problem/schedule.
 */
import { fail } from '../ir/errors.ts';
import { graphEncoding, vectorEncoding, vectorSize, GPU_MAX_LOOPS, NODE_FEATURES, type LoopGraph } from '../ir/graph.ts';
import type { Problem } from '../ir/problem.ts';
import { Rng } from '../ir/random.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { randomTemplateSchedule } from '../targets/cuda/templates.ts';
import { applyAction, isKnownAction, CUDA_ACTIONS, type TransformResult } from '../ir/transforms.ts';
import { Box, Discrete, GraphSpace, type Env, type ResetOptions, type ResetResult, type Space, type StepResult } from './core.ts';
import { split as datasetSplit, type SplitName } from './datasets.ts';
import type { EvaluationSource, Evaluator } from './evaluator.ts';

export const LOOPTUNE_ACTIONS: readonly string[] = Object.freeze(['up', 'down', 'swap_up', 'swap_down', 'split_4', 'split_8', 'split_16']);
export const DEFAULT_MAX_LOOPS = 10;
/** GPU nests carry block, thread and register levels (a staged conv tile has 13-14 loops). */
export { GPU_MAX_LOOPS };

/** The default loop limit of a target. */
export function maxLoopsForTarget(target: string): number {
  return target === 'cuda' ? GPU_MAX_LOOPS : DEFAULT_MAX_LOOPS;
}

/** The default actions of a target: LoopTune's, plus the GPU mapping actions on cuda. */
export function actionsForTarget(target: string): readonly string[] {
  return target === 'cuda' ? Object.freeze([...LOOPTUNE_ACTIONS, ...CUDA_ACTIONS]) : LOOPTUNE_ACTIONS;
}

/** Rejects actions a target does not have (the cuda actions anywhere but on cuda). */
export function checkActionsForTarget(actions: readonly string[], target: string): void {
  for (const a of actions) {
    if (!isKnownAction(a)) fail(`unknown action '${a}' (expected up, down, swap_up, swap_down, split_N or merge; bind_block, bind_thread, stage_shared on cuda)`);
    if (CUDA_ACTIONS.includes(a) && target !== 'cuda') fail(`action '${a}' exists only on the cuda target (this evaluator's target is ${target})`);
  }
}
export const DEFAULT_EPISODE_STEPS = 10;

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

export type ObservationKind = 'vector' | 'graph';
export type ObservationOf<K extends ObservationKind> = K extends 'graph' ? LoopGraph : Float32Array;

export interface LoopNestEnvOptions<K extends ObservationKind = 'vector'> {
  evaluator: Evaluator;
  /** a dataset name (see env/datasets.ts) or explicit problems/specs (default 'mm64-256'). */
  dataset?: string | readonly (Problem | string)[];
  /** split of a named dataset (default 'train'). */
  split?: SplitName;
  actions?: readonly string[];
  /** at most this many loops (default 10; 16 on cuda). */
  maxLoops?: number;
  /** steps per episode before truncation (default 10; Infinity to leave it to a TimeLimit wrapper). */
  maxSteps?: number;
  observation?: K;
  /** where episodes start when reset() is not given a schedule: LoopTune's default schedule
   *  ('initial', the default), or on cuda a random GPU sketch ('sketch': block/thread/register tiling,
   *  targets/cuda/templates.ts), so that episodes refine mapped kernels instead of spending their
   *  steps building one. */
  start?: 'initial' | 'sketch';
}

export interface LoopNestInfo {
  problem: string;
  schedule: string;
  cursor: number;
  hash: string;
  gflops: number;
  source: EvaluationSource;
  /** GFLOPS of the episode's first schedule and the best seen in the episode. */
  initialGflops: number;
  bestGflops: number;
  /** steps taken in this episode. */
  step: number;
  /** legal actions of the new state. */
  actionMask: boolean[];
  /** set when the action was illegal (a no-op): why. */
  illegal?: string;
  /** the action's name (steps only). */
  action?: string;
  /** why the kernel gave no timing (GFLOPS 0). */
  error?: string;
}

export class LoopNestEnv<K extends ObservationKind = 'vector'> implements Env<ObservationOf<K>, number, LoopNestInfo> {
  readonly actions: readonly string[];
  readonly actionSpace: Discrete;
  readonly observationSpace: Space<ObservationOf<K>>;
  readonly evaluator: Evaluator;
  readonly problems: readonly Problem[];
  readonly maxLoops: number;
  readonly maxSteps: number;
  readonly observationKind: K;
  /** the target is a GPU: observations carry the bindings. */
  readonly gpu: boolean;
  readonly start: 'initial' | 'sketch';
  #rng = new Rng(0);
  #schedule: Schedule | undefined;
  #gflops = 0;
  #initialGflops = 0;
  #bestGflops = 0;
  #steps = 0;

  constructor(options: LoopNestEnvOptions<K>) {
    this.evaluator = options.evaluator;
    this.actions = Object.freeze([...(options.actions ?? actionsForTarget(this.evaluator.target))]);
    if (this.actions.length === 0) fail('LoopNestEnv: the action list is empty');
    checkActionsForTarget(this.actions, this.evaluator.target);
    this.gpu = this.evaluator.target === 'cuda';
    this.start = options.start ?? 'initial';
    if (this.start === 'sketch' && !this.gpu) fail("LoopNestEnv: start 'sketch' is for the cuda target (GPU sketches)");
    this.actionSpace = new Discrete(this.actions.length);
    this.maxLoops = options.maxLoops ?? maxLoopsForTarget(this.evaluator.target);
    this.maxSteps = options.maxSteps ?? DEFAULT_EPISODE_STEPS;
    this.observationKind = (options.observation ?? 'vector') as K;
    if (this.gpu && this.observationKind === 'graph') fail('LoopNestEnv: the graph observation does not encode GPU bindings yet; use the vector observation on cuda');
    const ds = options.dataset ?? 'mm64-256';
    this.problems = typeof ds === 'string'
      ? datasetSplit(ds, options.split ?? 'train')
      : ds.map((p) => (typeof p === 'string' ? parseProblem(p) : p));
    if (this.problems.length === 0) fail('LoopNestEnv: no problems to pick from');
    this.observationSpace = (this.observationKind === 'graph'
      ? new GraphSpace(NODE_FEATURES, ['nest', 'access', 'compute'], this.maxLoops + 8)
      : new Box(0, 8, [vectorSize(this.gpu)])) as unknown as Space<ObservationOf<K>>;
  }

  /** the current schedule (after reset). */
  get schedule(): Schedule {
    if (!this.#schedule) throw new Error('LoopNestEnv: call reset() first');
    return this.#schedule;
  }

  get gflops(): number {
    return this.#gflops;
  }

  actionMask(): boolean[] {
    return actionMaskOf(this.schedule, this.actions, this.maxLoops);
  }

  observe(s: Schedule = this.schedule): ObservationOf<K> {
    return (this.observationKind === 'graph' ? graphEncoding(s) : vectorEncoding(s, this.gpu)) as ObservationOf<K>;
  }

  async reset(options: ResetOptions = {}): Promise<ResetResult<ObservationOf<K>, LoopNestInfo>> {
    if (options.seed !== undefined) this.#rng = new Rng(options.seed);
    const o = options.options ?? {};
    let problem: Problem;
    if (o.problem !== undefined) {
      problem = typeof o.problem === 'string' ? parseProblem(o.problem) : (o.problem as Problem);
    } else {
      problem = this.problems[this.#rng.int(0, this.problems.length - 1)]!;
    }
    let schedule: Schedule;
    if (o.schedule instanceof Schedule) schedule = o.schedule;
    else if (typeof o.schedule === 'string') schedule = Schedule.parse(problem, o.schedule);
    else if (this.start === 'sketch') schedule = randomTemplateSchedule(problem, this.#rng) ?? Schedule.initial(problem);
    else schedule = Schedule.initial(problem);
    if (schedule.problem.spec !== problem.spec) fail(`reset: the schedule is for ${schedule.problem.spec}, not ${problem.spec}`);
    const e = await this.evaluator.evaluate(schedule);
    this.#schedule = schedule;
    this.#gflops = this.#initialGflops = this.#bestGflops = e.gflops;
    this.#steps = 0;
    return { observation: this.observe(), info: this.#info(e.source, e.error) };
  }

  async step(action: number): Promise<StepResult<ObservationOf<K>, LoopNestInfo>> {
    const current = this.schedule;
    if (!this.actionSpace.contains(action)) {
      throw new RangeError(`action ${action} is not in Discrete(${this.actions.length}) (actions: ${this.actions.join(', ')})`);
    }
    this.#steps++;
    const name = this.actions[action]!;
    const r = tryAction(current, name, this.maxLoops);
    const truncated = this.#steps >= this.maxSteps;
    if (!r.ok) {
      return { observation: this.observe(), reward: 0, terminated: false, truncated, info: { ...this.#info('cached'), action: name, illegal: r.error } };
    }
    const before = this.#gflops;
    let source: EvaluationSource = 'cached';
    let error: string | undefined;
    if (r.schedule.hash() !== current.hash()) {
      const e = await this.evaluator.evaluate(r.schedule);
      this.#gflops = e.gflops;
      source = e.source;
      error = e.error;
    }
    this.#schedule = r.schedule;
    this.#bestGflops = Math.max(this.#bestGflops, this.#gflops);
    const reward = (this.#gflops - before) / this.evaluator.peakGflops;
    return { observation: this.observe(), reward, terminated: false, truncated, info: { ...this.#info(source, error), action: name } };
  }

  async close(): Promise<void> {
    this.#schedule = undefined;
  }

  #info(source: EvaluationSource, error?: string): LoopNestInfo {
    const s = this.schedule;
    return {
      problem: s.problem.spec,
      schedule: s.text(),
      cursor: s.cursor,
      hash: s.hash(),
      gflops: this.#gflops,
      source,
      initialGflops: this.#initialGflops,
      bestGflops: this.#bestGflops,
      step: this.#steps,
      actionMask: this.actionMask(),
      ...(error !== undefined ? { error } : {}),
    };
  }
}
