/**
 * One forward pass of a policy on a batch of states: masked log-probabilities, values and auxiliary
 * predictions as plain arrays (used by the PPO rollout and by inference-time tuning).
 */
import { tf } from '../backend.ts';
import type { Observation, PolicyNetwork } from '../policy/network.ts';
import { maskLogits } from './losses.ts';

export interface PolicyOutputs {
  /** [B * A] log pi(a|s), illegal actions at about -1e9. */
  logProbs: Float32Array;
  /** [B] value estimates. */
  values: Float32Array;
  /** [B] predicted GFLOPS / peak of each state. */
  aux: Float32Array;
}

export function flattenMasks(masks: readonly (readonly boolean[])[], numActions: number): Float32Array {
  const out = new Float32Array(masks.length * numActions);
  masks.forEach((m, i) => {
    if (m.length !== numActions) throw new RangeError(`action mask has ${m.length} entries, the policy has ${numActions} actions`);
    m.forEach((ok, a) => (out[i * numActions + a] = ok ? 1 : 0));
  });
  return out;
}

export function evaluatePolicy(policy: PolicyNetwork, observations: readonly Observation[], masks: readonly (readonly boolean[])[]): PolicyOutputs {
  const A = policy.spec.actions.length;
  const B = observations.length;
  if (B === 0) return { logProbs: new Float32Array(0), values: new Float32Array(0), aux: new Float32Array(0) };
  const [lp, v, aux] = tf.tidy(() => {
    const out = policy.apply(policy.inputs(observations));
    const mask = tf.tensor2d(flattenMasks(masks, A), [B, A]);
    return [tf.logSoftmax(maskLogits(out.logits, mask)), out.value, out.aux];
  });
  const result = { logProbs: lp!.dataSync() as Float32Array, values: v!.dataSync() as Float32Array, aux: aux!.dataSync() as Float32Array };
  tf.dispose([lp!, v!, aux!]);
  return result;
}
