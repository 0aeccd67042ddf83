/**
 * LoopNestEnv: LoopTune's environment. The state is a schedule with its cursor; an action is a
 * schedule transform at the cursor (default: up, down, swap_up, swap_down, split_4, split_8,
 * split_16, and for the cuda target also bind_block, bind_thread, stage_shared); the reward is (GFLOPS after - GFLOPS before) / peak, GFLOPS from the Evaluator.
 *
 *  - Illegal actions (those applyAction rejects, and splits that would exceed maxLoops loops) are
 *    no-ops: the state stays, reward 0, `info.illegal` says why. `actionMask()` lists legal ones.
 *  - The cuda actions exist only when the evaluator's target is 'cuda' (asking for them elsewhere is
 *    an error); there the vector observation also carries each loop's GPU binding (ir/graph.ts).
 *  - With the `parallel` action (CPU targets with threads) the vector observation also carries each
 *    loop's parallel flag (ir/graph.ts's `parallel` form, 210 floats instead of 200), so the policy
 *    sees the band it built; `parallelFlags` states it explicitly. The graph observation always has it.
 *  - The env runs at its evaluator's thread count (`threads`): rewards are the evaluator's figures
 *    at that count over its peak of as many threads.
 *  - Cursor moves do not change the code (the hash excludes the cursor): they reuse the current
 *    figure and cost no measurement.
 *  - Episodes are truncated after `maxSteps` steps (default 10); nothing terminates them.
 *  - `reset({ seed })` picks the problem from the dataset split with Rng(seed) (same seed => same
 *    problem); `reset({ options: { problem, schedule } })` starts from a given problem/schedule.
 */
import { fail } from '../ir/errors.ts';
import { graphEncoding, vectorEncoding, vectorSize, GPU_MAX_LOOPS, NODE_FEATURES, type LoopGraph } from '../ir/graph.ts';

export { actionMaskOf, DEFAULT_MAX_LOOPS, legalMoves, LOOPTUNE_ACTIONS, tryAction } from '../ir/actions.ts';
import type { Problem } from '../ir/problem.ts';
import { Rng } from '../ir/random.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { actionAllowed, actionMaskOf, actionsWith, DEFAULT_MAX_LOOPS, isKnownAction, TARGET_ACTIONS, tryAction } from '../ir/actions.ts';
import { randomTemplateSchedule } from '../targets/cuda/templates.ts';
import { backendsWithAction, findBackend } from '../targets/registry.ts';
import { Box, Discrete, GraphSpace, type Env, type ResetOptions, type ResetResult, type Space, type StepResult } from './core.ts';
import { split as datasetSplit, type SplitName } from './datasets.ts';
import type { EvaluationSource, Evaluator } from './evaluator.ts';

/** The loop limit of a target: its Backend's (LoopTune's 10 for names no backend has). */
export function maxLoopsForTarget(target: string): number {
  return findBackend(target)?.maxLoops ?? DEFAULT_MAX_LOOPS;
}

/** The default actions of a target: LoopTune's, plus its Backend's own (cuda: the GPU mapping actions). */
export function actionsForTarget(target: string): readonly string[] {
  return actionsWith(findBackend(target)?.actions ?? []);
}

/** Rejects actions a target does not have (another target's own actions, unknown names). */
export function checkActionsForTarget(actions: readonly string[], target: string): void {
  const extra = findBackend(target)?.actions ?? [];
  for (const a of actions) {
    if (actionAllowed(a, extra)) continue;
    if (!isKnownAction(a)) {
      // "bind_block, bind_thread, stage_shared on cuda; parallel on avx512, avx2, ...": targets grouped by their actions
      const byTarget = new Map<string, string[]>();
      for (const t of TARGET_ACTIONS) for (const on of backendsWithAction(t)) byTarget.set(on, [...(byTarget.get(on) ?? []), t]);
      const byActions = new Map<string, string[]>();
      for (const [on, names] of byTarget) byActions.set(names.join(', '), [...(byActions.get(names.join(', ')) ?? []), on]);
      const more = [...byActions].map(([names, on]) => `; ${names} on ${on.join(', ')}`).join('');
      fail(`unknown action '${a}' (expected up, down, swap_up, swap_down, split_N or merge${more})`);
    }
    const on = backendsWithAction(a);
    fail(`action '${a}' exists only on the ${on.join(', ')} target${on.length > 1 ? 's' : ''} (this evaluator's target is ${target})`);
  }
}
export const DEFAULT_EPISODE_STEPS = 10;

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
  /** vector observations carry each loop's parallel flag (default: when `actions` has 'parallel').
   *  A policy trained without them reads 200 floats, with them 210: the two never mix. */
  parallelFlags?: boolean;
}

/** Whether a CPU policy's vector observation carries the parallel flags by default: when it can build bands. */
export function observesParallel(actions: readonly string[]): boolean {
  return actions.includes('parallel');
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
  /** vector observations carry the parallel flags (see the header). */
  readonly parallelFlags: boolean;
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
    this.gpu = findBackend(this.evaluator.target)?.processor === 'gpu';
    this.start = options.start ?? 'initial';
    if (this.start === 'sketch' && !this.gpu) fail("LoopNestEnv: start 'sketch' is for the cuda target (GPU sketches)");
    this.actionSpace = new Discrete(this.actions.length);
    this.maxLoops = options.maxLoops ?? maxLoopsForTarget(this.evaluator.target);
    this.maxSteps = options.maxSteps ?? DEFAULT_EPISODE_STEPS;
    this.observationKind = (options.observation ?? 'vector') as K;
    this.parallelFlags = options.parallelFlags ?? observesParallel(this.actions);
    if (this.gpu && this.parallelFlags) fail('LoopNestEnv: GPU nests have no parallel band: parallel flags are for CPU targets');
    if (this.gpu && this.observationKind === 'graph') fail('LoopNestEnv: the graph observation does not encode GPU bindings yet; use the vector observation on cuda');
    const ds = options.dataset ?? 'mm64-256';
    this.problems = typeof ds === 'string'
      ? datasetSplit(ds, options.split ?? 'train')
      : ds.map((p) => (typeof p === 'string' ? parseProblem(p) : p));
    if (this.problems.length === 0) fail('LoopNestEnv: no problems to pick from');
    this.observationSpace = (this.observationKind === 'graph'
      ? new GraphSpace(NODE_FEATURES, ['nest', 'access', 'compute'], this.maxLoops + 8)
      : new Box(0, 8, [vectorSize(this.#form())])) as unknown as Space<ObservationOf<K>>;
  }

  /** threads the evaluator's kernels run on (1 when it does not say). */
  get threads(): number {
    return this.evaluator.threads ?? 1;
  }

  #form(): { gpu: boolean; parallel: boolean } {
    return { gpu: this.gpu, parallel: this.parallelFlags };
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
    return (this.observationKind === 'graph' ? graphEncoding(s) : vectorEncoding(s, this.#form())) as ObservationOf<K>;
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
