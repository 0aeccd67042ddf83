/**
 * LoopTune's policy form: an MLP on the fixed 10 loops x 20 features vector (ir/graph.ts
 * vectorEncoding; on cuda its GPU form, 16 loops with bindings; with the parallel action, the
 * parallel flags appended), a shared torso and three linear heads (policy, value, auxiliary GFLOPS).
 * Initialization follows CleanRL: orthogonal, gain sqrt(2) in the torso, 0.01 on the policy head
 * (near-uniform first policy), 1 on the value and auxiliary heads.
 */
import { tf } from '../backend.ts';
import { LOOP_FEATURES, MAX_LOOPS, vectorSize } from '../../ir/graph.ts';
import {
  ParamStore, activate, applyDense, type Dense, type MlpConfig, type NetworkOutput, type Observation, type PolicyNetwork, type PolicySpec, vectorFormOf,
} from './network.ts';

export const VECTOR_SIZE = MAX_LOOPS * LOOP_FEATURES;

export class MlpPolicy implements PolicyNetwork {
  readonly spec: PolicySpec;
  readonly #store: ParamStore;
  readonly #torso: Dense[];
  readonly #pi: Dense;
  readonly #v: Dense;
  readonly #aux: Dense;
  readonly #config: MlpConfig;
  /** input width: LoopTune's 200 floats, the GPU form (bindings included) on cuda, or 210 with the parallel flags */
  readonly #size: number;

  constructor(spec: PolicySpec, seed: number | null) {
    if (spec.network.kind !== 'mlp') throw new TypeError('MlpPolicy needs an mlp network config');
    if (spec.observation !== 'vector') throw new TypeError(`the MLP reads the 'vector' observation, not '${spec.observation}'`);
    this.spec = spec;
    this.#config = spec.network;
    this.#store = new ParamStore(seed);
    this.#size = vectorSize(vectorFormOf(spec));
    let width = this.#size;
    this.#torso = this.#config.hidden.map((h, i) => {
      const d = this.#store.dense(`torso/${i}`, width, h, Math.SQRT2);
      width = h;
      return d;
    });
    this.#pi = this.#store.dense('policy', width, spec.actions.length, 0.01);
    this.#v = this.#store.dense('value', width, 1, 1);
    this.#aux = this.#store.dense('aux', width, 1, 1);
  }

  get params() {
    return this.#store.params;
  }

  inputs(observations: readonly Observation[]): tf.Tensor[] {
    const n = this.#size;
    const x = new Float32Array(observations.length * n);
    observations.forEach((o, i) => {
      if (!(o instanceof Float32Array) || o.length !== n) throw new TypeError(`the MLP needs ${n}-float vector observations`);
      x.set(o, i * n);
    });
    return [tf.tensor2d(x, [observations.length, n])];
  }

  apply(inputs: readonly tf.Tensor[]): NetworkOutput {
    let h = inputs[0] as tf.Tensor2D;
    for (const d of this.#torso) h = activate(applyDense(d, h), this.#config.activation);
    return {
      logits: applyDense(this.#pi, h),
      value: tf.reshape(applyDense(this.#v, h), [-1]) as tf.Tensor1D,
      aux: tf.reshape(applyDense(this.#aux, h), [-1]) as tf.Tensor1D,
    };
  }

  dispose(): void {
    this.#store.dispose();
  }
}
