/**
 * A small Gymnasium-compatible API: spaces, the Env contract, a TimeLimit wrapper and a VectorEnv.
 * Async because a step may measure a kernel in another process.
 *
 * Semantics follow Gymnasium 0.26+/1.x:
 *  - `reset({ seed })` reseeds the environment's generator (same seed => same episode start); a reset
 *    without a seed continues the generator.
 *  - `step(action)` returns `terminated` (the task reached a terminal state) and `truncated` (the
 *    episode was cut, e.g. by a time limit) separately.
 *  - VectorEnv auto-resets a finished sub-environment in the same step (Gymnasium's "same-step"
 *    mode): the returned observation is the new episode's first, and the info of that environment
 *    carries `finalObservation` and `finalInfo` of the finished episode.
 */
import { Rng } from '../ir/random.ts';
import type { LoopGraph } from '../ir/graph.ts';

export type Info = { [key: string]: unknown };

export interface Space<T> {
  readonly kind: string;
  /** a random element; `mask` restricts Discrete samples to the allowed actions. */
  sample(rng: Rng, mask?: readonly boolean[]): T;
  contains(x: unknown): x is T;
}

/** {start, ..., start + n - 1}. */
export class Discrete implements Space<number> {
  readonly kind = 'discrete';
  constructor(readonly n: number, readonly start = 0) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Discrete: n must be a positive integer, got ${n}`);
  }

  sample(rng: Rng, mask?: readonly boolean[]): number {
    if (mask) {
      if (mask.length !== this.n) throw new RangeError(`Discrete(${this.n}): mask has ${mask.length} entries`);
      const allowed = mask.flatMap((m, i) => (m ? [i] : []));
      if (allowed.length === 0) throw new RangeError(`Discrete(${this.n}): the mask allows no action`);
      return this.start + rng.pick(allowed);
    }
    return this.start + Math.floor(rng.next() * this.n);
  }

  contains(x: unknown): x is number {
    return typeof x === 'number' && Number.isInteger(x) && x >= this.start && x < this.start + this.n;
  }
}

/** float32 tensors of a fixed shape with elementwise bounds (flattened row-major). */
export class Box implements Space<Float32Array> {
  readonly kind = 'box';
  readonly shape: readonly number[];
  readonly size: number;
  readonly low: Float32Array;
  readonly high: Float32Array;

  constructor(low: number | ArrayLike<number>, high: number | ArrayLike<number>, shape: readonly number[]) {
    this.shape = Object.freeze([...shape]);
    this.size = shape.reduce((a, b) => a * b, 1);
    const fill = (v: number | ArrayLike<number>, what: string) => {
      if (typeof v === 'number') return new Float32Array(this.size).fill(v);
      if (v.length !== this.size) throw new RangeError(`Box: ${what} has ${v.length} values, shape ${shape.join('x')} needs ${this.size}`);
      return Float32Array.from(v);
    };
    this.low = fill(low, 'low');
    this.high = fill(high, 'high');
    for (let i = 0; i < this.size; i++) {
      if (!(this.low[i]! <= this.high[i]!)) throw new RangeError(`Box: low[${i}] = ${this.low[i]} exceeds high[${i}] = ${this.high[i]}`);
    }
  }

  /** uniform on bounded dimensions; unbounded ones draw from an exponential/normal-ish spread like Gymnasium. */
  sample(rng: Rng): Float32Array {
    const out = new Float32Array(this.size);
    for (let i = 0; i < this.size; i++) {
      const lo = this.low[i]!, hi = this.high[i]!;
      const u = rng.next();
      if (Number.isFinite(lo) && Number.isFinite(hi)) out[i] = lo + u * (hi - lo);
      else if (Number.isFinite(lo)) out[i] = lo - Math.log(1 - u);
      else if (Number.isFinite(hi)) out[i] = hi + Math.log(1 - u);
      else out[i] = Math.log(u / (1 - u)); // logistic
    }
    return out;
  }

  contains(x: unknown): x is Float32Array {
    if (!(x instanceof Float32Array) || x.length !== this.size) return false;
    for (let i = 0; i < this.size; i++) if (!(x[i]! >= this.low[i]! && x[i]! <= this.high[i]!)) return false;
    return true;
  }
}

/**
 * Graphs of ir/graph.ts's shape: nodes with `nodeFeatures` features each, edges whose kind is one of
 * `edgeKinds` and whose endpoints are nodes of the graph.
 */
export class GraphSpace implements Space<LoopGraph> {
  readonly kind = 'graph';
  constructor(readonly nodeFeatures: number, readonly edgeKinds: readonly string[], readonly maxNodes = 64) {}

  /** a random graph: 1..maxNodes nodes of kind 'loop', random features in [0, 1), a chain of nest edges. */
  sample(rng: Rng): LoopGraph {
    const n = rng.int(1, this.maxNodes);
    const nodes = Array.from({ length: n }, (_, index) => ({
      kind: 'loop' as const, index, features: Array.from({ length: this.nodeFeatures }, () => rng.next()),
    }));
    const edges = Array.from({ length: n - 1 }, (_, i) => ({
      kind: (this.edgeKinds[0] ?? 'nest') as 'nest', src: i, dst: i + 1, stride: 0, strideBucket: 0,
    }));
    return { nodes, edges };
  }

  contains(x: unknown): x is LoopGraph {
    if (!x || typeof x !== 'object') return false;
    const g = x as Partial<LoopGraph>;
    if (!Array.isArray(g.nodes) || !Array.isArray(g.edges) || g.nodes.length === 0) return false;
    const n = g.nodes.length;
    return g.nodes.every((node) => Array.isArray(node?.features) && node.features.length === this.nodeFeatures && node.features.every(Number.isFinite))
      && g.edges.every((e) => this.edgeKinds.includes(e?.kind) && Number.isInteger(e.src) && Number.isInteger(e.dst)
        && e.src >= 0 && e.src < n && e.dst >= 0 && e.dst < n);
  }
}

export interface ResetOptions {
  /** reseeds the environment's generator: the same seed gives the same episode start. */
  seed?: number;
  /** environment-specific options (LoopNestEnv: problem, schedule). */
  options?: Record<string, unknown>;
}

export interface ResetResult<Obs, I extends object = Info> {
  observation: Obs;
  info: I;
}

export interface StepResult<Obs, I extends object = Info> {
  observation: Obs;
  reward: number;
  /** the episode reached a terminal state of the task. */
  terminated: boolean;
  /** the episode was cut short (time limit) without reaching a terminal state. */
  truncated: boolean;
  info: I;
}

export interface Env<Obs, Act = number, I extends object = Info> {
  readonly actionSpace: Space<Act>;
  readonly observationSpace: Space<Obs>;
  reset(options?: ResetOptions): Promise<ResetResult<Obs, I>>;
  step(action: Act): Promise<StepResult<Obs, I>>;
  close(): Promise<void>;
  /** legal actions of the current state (environments with Discrete actions may provide it). */
  actionMask?(): boolean[];
}

/** Forwards everything to the wrapped environment; subclasses override what they change. */
export class Wrapper<Obs, Act = number, I extends object = Info> implements Env<Obs, Act, I> {
  constructor(readonly env: Env<Obs, Act, I>) {}
  get actionSpace(): Space<Act> {
    return this.env.actionSpace;
  }
  get observationSpace(): Space<Obs> {
    return this.env.observationSpace;
  }
  /** the innermost environment. */
  get unwrapped(): Env<Obs, Act, I> {
    return this.env instanceof Wrapper ? (this.env as Wrapper<Obs, Act, I>).unwrapped : this.env;
  }
  reset(options?: ResetOptions): Promise<ResetResult<Obs, I>> {
    return this.env.reset(options);
  }
  step(action: Act): Promise<StepResult<Obs, I>> {
    return this.env.step(action);
  }
  close(): Promise<void> {
    return this.env.close();
  }
  actionMask(): boolean[] {
    if (!this.env.actionMask) throw new TypeError('the wrapped environment has no actionMask()');
    return this.env.actionMask();
  }
}

/** Truncates episodes after `maxEpisodeSteps` steps (Gymnasium's TimeLimit). */
export class TimeLimit<Obs, Act = number, I extends object = Info> extends Wrapper<Obs, Act, I> {
  #elapsed = 0;
  constructor(env: Env<Obs, Act, I>, readonly maxEpisodeSteps: number) {
    super(env);
    if (!(maxEpisodeSteps >= 1)) throw new RangeError(`TimeLimit: maxEpisodeSteps must be at least 1, got ${maxEpisodeSteps}`);
  }
  get elapsedSteps(): number {
    return this.#elapsed;
  }
  override async reset(options?: ResetOptions): Promise<ResetResult<Obs, I>> {
    this.#elapsed = 0;
    return this.env.reset(options);
  }
  override async step(action: Act): Promise<StepResult<Obs, I>> {
    const r = await this.env.step(action);
    this.#elapsed++;
    return this.#elapsed >= this.maxEpisodeSteps ? { ...r, truncated: true } : r;
  }
}

export interface VectorResetResult<Obs, I extends object = Info> {
  observations: Obs[];
  infos: I[];
}

/** `finalObservation`/`finalInfo` are set on the info of an environment that finished this step. */
export type VectorInfo<Obs, I extends object> = I & { finalObservation?: Obs; finalInfo?: I };

export interface VectorStepResult<Obs, I extends object = Info> {
  observations: Obs[];
  rewards: number[];
  terminated: boolean[];
  truncated: boolean[];
  infos: VectorInfo<Obs, I>[];
}

/**
 * Steps N environments together (concurrently: measurement concurrency is bounded by the evaluator).
 * `reset({ seed })` seeds environment i with seed + i. A finished environment is reset at once
 * (without a seed: its generator continues), its final observation and info kept in the info.
 */
export class VectorEnv<Obs, Act = number, I extends object = Info> {
  readonly envs: Env<Obs, Act, I>[];
  constructor(envs: readonly (Env<Obs, Act, I> | (() => Env<Obs, Act, I>))[]) {
    if (envs.length === 0) throw new RangeError('VectorEnv needs at least one environment');
    this.envs = envs.map((e) => (typeof e === 'function' ? e() : e));
  }
  get numEnvs(): number {
    return this.envs.length;
  }
  get singleActionSpace(): Space<Act> {
    return this.envs[0]!.actionSpace;
  }
  get singleObservationSpace(): Space<Obs> {
    return this.envs[0]!.observationSpace;
  }
  async reset(options: ResetOptions = {}): Promise<VectorResetResult<Obs, I>> {
    const results = await Promise.all(this.envs.map((env, i) =>
      env.reset({ ...options, ...(options.seed === undefined ? {} : { seed: options.seed + i }) })));
    return { observations: results.map((r) => r.observation), infos: results.map((r) => r.info) };
  }
  async step(actions: readonly Act[]): Promise<VectorStepResult<Obs, I>> {
    if (actions.length !== this.envs.length) throw new RangeError(`VectorEnv: ${actions.length} actions for ${this.envs.length} environments`);
    const results = await Promise.all(this.envs.map(async (env, i) => {
      const r = await env.step(actions[i]!);
      if (!r.terminated && !r.truncated) return { ...r, info: r.info as VectorInfo<Obs, I> };
      const next = await env.reset();
      const info = { ...next.info, finalObservation: r.observation, finalInfo: r.info } as VectorInfo<Obs, I>;
      return { ...r, observation: next.observation, info };
    }));
    return {
      observations: results.map((r) => r.observation),
      rewards: results.map((r) => r.reward),
      terminated: results.map((r) => r.terminated),
      truncated: results.map((r) => r.truncated),
      infos: results.map((r) => r.info),
    };
  }
  /** masks of every environment (each must provide actionMask). */
  actionMasks(): boolean[][] {
    return this.envs.map((e) => {
      if (!e.actionMask) throw new TypeError('VectorEnv: an environment has no actionMask()');
      return e.actionMask();
    });
  }
  async close(): Promise<void> {
    await Promise.all(this.envs.map((e) => e.close()));
  }
}
