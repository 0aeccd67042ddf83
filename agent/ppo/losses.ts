/**
 * The pieces of PPO's objective, each a small function so that tests can check them on hand-made
 * numbers: GAE(lambda), masked categorical log-probabilities and entropy, the clipped surrogate, the
 * (optionally clipped) value loss, global-norm gradient clipping.
 */
import { tf } from '../backend.ts';

/**
 * Generalized advantage estimation over a rollout of T steps x E envs, stored step-major
 * (index t * E + e). `dones[t*E+e]` = 1 when the episode of env e ended AT step t (its reward
 * r_t was the last of the episode; no bootstrapping past it; truncation by the time limit counts
 * as an end, since the episode length is part of the task). `lastValues[e]` = V(s_T), used when
 * step T-1 did not end the episode.
 *   delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)
 *   A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
 *   R_t     = A_t + V(s_t)
 */
export function computeGae(
  rewards: ArrayLike<number>, values: ArrayLike<number>, dones: ArrayLike<number>, lastValues: ArrayLike<number>,
  numEnvs: number, gamma: number, lambda: number,
): { advantages: Float32Array; returns: Float32Array } {
  const n = rewards.length;
  const T = n / numEnvs;
  if (!Number.isInteger(T) || values.length !== n || dones.length !== n || lastValues.length !== numEnvs) {
    throw new RangeError('computeGae: rewards, values and dones must hold T x numEnvs entries, lastValues numEnvs');
  }
  const advantages = new Float32Array(n);
  const returns = new Float32Array(n);
  for (let e = 0; e < numEnvs; e++) {
    let last = 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = t * numEnvs + e;
      const notDone = 1 - dones[i]!;
      const nextValue = t === T - 1 ? lastValues[e]! : values[i + numEnvs]!;
      const delta = rewards[i]! + gamma * nextValue * notDone - values[i]!;
      last = delta + gamma * lambda * notDone * last;
      advantages[i] = last;
      returns[i] = last + values[i]!;
    }
  }
  return { advantages, returns };
}

export const MASKED_LOGIT = -1e9;

/** logits with illegal actions (mask 0) set to -1e9, so softmax gives them probability 0. */
export function maskLogits(logits: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
  return tf.where(tf.cast(mask, 'bool'), logits, tf.fill(logits.shape, MASKED_LOGIT)) as tf.Tensor2D;
}

/**
 * log pi(a|s) of the given actions, as sum(oneHot(a) * logSoftmax(logits)): tf.gather's gradient
 * is not available on the wasm backend.
 */
export function selectedLogProbs(logProbs: tf.Tensor2D, actions: tf.Tensor1D): tf.Tensor1D {
  const oneHot = tf.oneHot(tf.cast(actions, 'int32'), logProbs.shape[1]);
  return tf.sum(tf.mul(oneHot, logProbs), 1) as tf.Tensor1D;
}

/** entropy of each row's categorical distribution: -sum p log p (masked entries contribute 0). */
export function entropy(logProbs: tf.Tensor2D): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(tf.exp(logProbs), logProbs), 1)) as tf.Tensor1D;
}

/** (x - mean) / (std + 1e-8), std unbiased like torch.std(). */
export function normalize(x: tf.Tensor1D): tf.Tensor1D {
  const n = x.shape[0];
  const mean = tf.mean(x);
  const centered = tf.sub(x, mean);
  const variance = tf.div(tf.sum(tf.square(centered)), Math.max(1, n - 1));
  return tf.div(centered, tf.add(tf.sqrt(variance), 1e-8)) as tf.Tensor1D;
}

/** mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))). */
export function clippedSurrogate(ratio: tf.Tensor1D, advantages: tf.Tensor1D, clipCoef: number): tf.Scalar {
  const l1 = tf.mul(tf.neg(advantages), ratio);
  const l2 = tf.mul(tf.neg(advantages), tf.clipByValue(ratio, 1 - clipCoef, 1 + clipCoef));
  return tf.mean(tf.maximum(l1, l2)) as tf.Scalar;
}

/** 0.5 * mean((V - R)^2), or with clipping 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)). */
export function valueLoss(newValues: tf.Tensor1D, returns: tf.Tensor1D, oldValues: tf.Tensor1D, clipCoef: number | null): tf.Scalar {
  const unclipped = tf.square(tf.sub(newValues, returns));
  if (clipCoef === null) return tf.mul(0.5, tf.mean(unclipped)) as tf.Scalar;
  const clippedV = tf.add(oldValues, tf.clipByValue(tf.sub(newValues, oldValues), -clipCoef, clipCoef));
  const clipped = tf.square(tf.sub(clippedV, returns));
  return tf.mul(0.5, tf.mean(tf.maximum(unclipped, clipped))) as tf.Scalar;
}

export interface LossInputs {
  logits: tf.Tensor2D;
  values: tf.Tensor1D;
  aux: tf.Tensor1D;
  mask: tf.Tensor2D;
  actions: tf.Tensor1D;
  oldLogProbs: tf.Tensor1D;
  advantages: tf.Tensor1D;
  returns: tf.Tensor1D;
  oldValues: tf.Tensor1D;
  auxTargets: tf.Tensor1D;
}

export interface LossTerms {
  loss: tf.Scalar;
  pgLoss: tf.Scalar;
  vLoss: tf.Scalar;
  entropy: tf.Scalar;
  auxLoss: tf.Scalar;
  approxKl: tf.Scalar;
  clipFrac: tf.Scalar;
}

export interface LossCoefficients {
  clipCoef: number;
  clipVloss: boolean;
  normAdv: boolean;
  entCoef: number;
  vfCoef: number;
  auxCoef: number;
}

/** CleanRL's loss: pg - entCoef * entropy + vfCoef * v (+ auxCoef * aux). */
export function ppoLoss(x: LossInputs, c: LossCoefficients): LossTerms {
  const logProbs = tf.logSoftmax(maskLogits(x.logits, x.mask)) as tf.Tensor2D;
  const newLogProbs = selectedLogProbs(logProbs, x.actions);
  const logRatio = tf.sub(newLogProbs, x.oldLogProbs);
  const ratio = tf.exp(logRatio) as tf.Tensor1D;
  const approxKl = tf.mean(tf.sub(tf.sub(ratio, 1), logRatio)) as tf.Scalar;
  const clipFrac = tf.mean(tf.cast(tf.greater(tf.abs(tf.sub(ratio, 1)), c.clipCoef), 'float32')) as tf.Scalar;
  const adv = c.normAdv ? normalize(x.advantages) : x.advantages;
  const pgLoss = clippedSurrogate(ratio, adv, c.clipCoef);
  const vLoss = valueLoss(x.values, x.returns, x.oldValues, c.clipVloss ? c.clipCoef : null);
  const ent = tf.mean(entropy(logProbs)) as tf.Scalar;
  const auxLoss = tf.mean(tf.square(tf.sub(x.aux, x.auxTargets))) as tf.Scalar;
  const loss = tf.addN([pgLoss, tf.mul(-c.entCoef, ent), tf.mul(c.vfCoef, vLoss), tf.mul(c.auxCoef, auxLoss)]) as tf.Scalar;
  return { loss, pgLoss, vLoss, entropy: ent, auxLoss, approxKl, clipFrac };
}

/** torch.nn.utils.clip_grad_norm_: scales all gradients by min(1, maxNorm / (globalNorm + 1e-6)). */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: tf.Scalar } {
  const norm = tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
  const scale = tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6)));
  return { grads: grads.map((g) => tf.mul(g, scale)), norm };
}
