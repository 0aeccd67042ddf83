/**
 * What every policy network shares: the contract the PPO trainer and `tune` see, named parameters
 * (plain tf.Variables, so that the optimizer state and checkpoints are explicit), orthogonal
 * initialization from a seeded generator (deterministic across runs and machines), and dense layers.
 *
 * A network maps a batch of observations to
 *  - `logits` [B, A]: unnormalized action preferences (masking is the caller's job);
 *  - `value`  [B]: the critic's estimate of the return from the state;
 *  - `aux`    [B]: an auxiliary prediction of the state's own GFLOPS / peak, trained by regression on
 *    the figures the environment reports. It shapes the shared representation and lets `tune` rank
 *    the many schedules a rollout visits before spending real measurements on them.
 */
import { tf } from '../backend.ts';
import type { LoopGraph } from '../../ir/graph.ts';
import { AgentRng } from '../ppo/rng.ts';

export type Observation = Float32Array | LoopGraph;
export type Activation = 'tanh' | 'relu';

export interface MlpConfig {
  kind: 'mlp';
  /** hidden layer widths of the shared torso. */
  hidden: number[];
  activation: Activation;
}

export interface GnnConfig {
  kind: 'gnn';
  /** node embedding width. */
  hidden: number;
  /** message-passing layers. */
  layers: number;
  /** width of the layer between the pooled graph and the heads. */
  headHidden: number;
  activation: Activation;
  /** graphs are padded to this many nodes (loops + tensors + statement). */
  maxNodes: number;
}

export type NetworkConfig = MlpConfig | GnnConfig;

/** Everything needed to rebuild a network and to use it on an environment. */
export interface PolicySpec {
  network: NetworkConfig;
  /** the action names, in the order of the logits (the env's action list). */
  actions: string[];
  /** observation form the network reads: 'vector' (MLP) or 'graph' (GNN). */
  observation: 'vector' | 'graph';
  /** loop limit the env used (splits beyond it are illegal). */
  maxLoops: number;
  /** the env's target is a GPU: observations carry the loop bindings (ir/graph.ts vectorEncoding). */
  gpu?: boolean;
  /** vector observations carry each loop's parallel flag (CPU policies with the `parallel` action;
   *  absent in policies trained before it: they read the 200-float form). */
  parallel?: boolean;
}

/** The vector form a policy reads (ir/graph.ts vectorEncoding / vectorSize). */
export function vectorFormOf(spec: PolicySpec): { gpu: boolean; parallel: boolean } {
  return { gpu: spec.gpu ?? false, parallel: spec.parallel ?? false };
}

export interface NetworkOutput {
  logits: tf.Tensor2D;
  value: tf.Tensor1D;
  aux: tf.Tensor1D;
}

export interface Param {
  /** stable logical name (checkpoints and shipped weights use it). */
  name: string;
  variable: tf.Variable;
}

export interface PolicyNetwork {
  readonly spec: PolicySpec;
  readonly params: readonly Param[];
  /** input tensors for a batch of observations (the caller disposes them, e.g. inside tf.tidy). */
  inputs(observations: readonly Observation[]): tf.Tensor[];
  apply(inputs: readonly tf.Tensor[]): NetworkOutput;
  dispose(): void;
}

/**
 * Networks made in this process, counted on globalThis: tfjs's engine (and so its variable
 * namespace) is one per process, but this module can be loaded twice (a CommonJS require and an
 * ESM import() of the same file, as under a require-hook test runner), and two module-level
 * counters would hand out the same names.
 */
const INSTANCES = Symbol.for('looptune.policy.instances');
function nextInstance(): number {
  const g = globalThis as { [INSTANCES]?: number };
  g[INSTANCES] = (g[INSTANCES] ?? 0) + 1;
  return g[INSTANCES];
}

/** Owns a network's variables; tfjs needs globally unique variable names, logical names stay short. */
export class ParamStore {
  readonly params: Param[] = [];
  readonly #prefix: string;
  readonly #rng: AgentRng | null;

  /** `seed` null: zero weights (they are about to be overwritten by loaded ones). */
  constructor(seed: number | null) {
    this.#prefix = `looptune-policy-${nextInstance()}`;
    this.#rng = seed === null ? null : new AgentRng(seed);
  }

  add(name: string, values: Float32Array, shape: number[]): tf.Variable {
    const variable = tf.variable(tf.tensor(values, shape, 'float32'), true, `${this.#prefix}/${name}`);
    this.params.push({ name, variable });
    return variable;
  }

  /** weight [inputs, outputs] with orthogonal init scaled by `gain`, and a zero bias [outputs]. */
  dense(name: string, inputs: number, outputs: number, gain: number): Dense {
    return {
      w: this.add(`${name}/kernel`, this.#rng ? orthogonal(this.#rng, inputs, outputs, gain) : new Float32Array(inputs * outputs), [inputs, outputs]),
      b: this.add(`${name}/bias`, new Float32Array(outputs), [outputs]),
    };
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
  }
}

export interface Dense {
  w: tf.Variable;
  b: tf.Variable;
}

/**
 * x W with an explicit-transpose gradient: tfjs's MatMul gradient uses the transposeB form of
 * BatchMatMul, which the wasm backend runs several times slower than transpose + plain matMul
 * (a 640x448 by 448x64 layer: forward + backward 55 ms vs 13 ms).
 */
const matMulFastGrad = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor2D, tf.transpose(saved[1]!) as tf.Tensor2D),
      tf.matMul(tf.transpose(saved[0]!) as tf.Tensor2D, dy as tf.Tensor2D),
    ],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;

export function applyDense(layer: Dense, x: tf.Tensor2D): tf.Tensor2D {
  return tf.add(matMulFastGrad(x, layer.w), layer.b) as tf.Tensor2D;
}

export function activate(x: tf.Tensor2D, a: Activation): tf.Tensor2D {
  return a === 'tanh' ? tf.tanh(x) : tf.relu(x);
}

/**
 * A rows x cols matrix whose columns (rows, if there are fewer rows) are orthonormal, times `gain`
 * (Saxe et al.; what CleanRL's layer_init uses). Modified Gram-Schmidt on a Gaussian matrix.
 */
export function orthogonal(rng: AgentRng, rows: number, cols: number, gain: number): Float32Array {
  const tall = rows >= cols;
  const n = tall ? rows : cols; // vector length
  const k = tall ? cols : rows; // number of orthonormal vectors
  const q: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    let v = new Float64Array(n);
    for (;;) {
      for (let i = 0; i < n; i++) v[i] = rng.normal();
      for (const u of q) {
        let d = 0;
        for (let i = 0; i < n; i++) d += u[i]! * v[i]!;
        for (let i = 0; i < n; i++) v[i]! -= d * u[i]!;
      }
      let norm = 0;
      for (let i = 0; i < n; i++) norm += v[i]! * v[i]!;
      norm = Math.sqrt(norm);
      if (norm > 1e-6) {
        for (let i = 0; i < n; i++) v[i]! /= norm;
        break;
      }
      v = new Float64Array(n);
    }
    q.push(v);
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = gain * (tall ? q[c]![r]! : q[r]![c]!);
  }
  return out;
}
