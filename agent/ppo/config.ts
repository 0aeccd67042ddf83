/**
 * Every PPO hyper-parameter in one object (CleanRL's ppo.py names, camelCase). Experiment files
 * set them under `ppo:` in snake_case (experiments/schema.ts maps one to the other).
 */
export interface PPOConfig {
  /** seeds weight init, action sampling, minibatch shuffles and the problems drawn by the envs. */
  seed: number;
  /** iterations of the whole run (the learning rate anneals linearly to 0 over them). */
  totalIterations: number;
  /** parallel environments (one VectorEnv). */
  numEnvs: number;
  /** steps per environment per iteration; a multiple of the episode length, so every rollout
   *  starts with fresh episodes (that makes a resumed run identical to an uninterrupted one). */
  numSteps: number;
  learningRate: number;
  annealLr: boolean;
  /** discount. */
  gamma: number;
  /** GAE lambda. */
  gaeLambda: number;
  numMinibatches: number;
  /** passes over each rollout. */
  updateEpochs: number;
  /** normalize advantages per minibatch. */
  normAdv: boolean;
  /** surrogate clipping coefficient (also the value clipping range when clipVloss). */
  clipCoef: number;
  clipVloss: boolean;
  entCoef: number;
  vfCoef: number;
  /** weight of the auxiliary loss: MSE of the predicted GFLOPS / peak of each visited state. */
  auxCoef: number;
  /** global-norm gradient clipping. */
  maxGradNorm: number;
  /** stop the epochs of an iteration early once the approximate KL exceeds this (null: never). */
  targetKl: number | null;
  adamEps: number;
}

export const DEFAULT_PPO: Readonly<PPOConfig> = Object.freeze({
  seed: 1,
  totalIterations: 100,
  numEnvs: 8,
  numSteps: 20,
  learningRate: 2.5e-4,
  annealLr: true,
  gamma: 0.99,
  gaeLambda: 0.95,
  numMinibatches: 4,
  updateEpochs: 4,
  normAdv: true,
  clipCoef: 0.2,
  clipVloss: true,
  entCoef: 0.01,
  vfCoef: 0.5,
  auxCoef: 0.5,
  maxGradNorm: 0.5,
  targetKl: null,
  adamEps: 1e-5,
});

export function ppoConfig(overrides: Partial<PPOConfig> = {}): PPOConfig {
  const c: PPOConfig = { ...DEFAULT_PPO, ...overrides };
  const batch = c.numEnvs * c.numSteps;
  if (!Number.isInteger(c.numEnvs) || c.numEnvs < 1) throw new RangeError(`numEnvs must be a positive integer, got ${c.numEnvs}`);
  if (!Number.isInteger(c.numSteps) || c.numSteps < 1) throw new RangeError(`numSteps must be a positive integer, got ${c.numSteps}`);
  if (!Number.isInteger(c.numMinibatches) || c.numMinibatches < 1 || batch % c.numMinibatches !== 0) {
    throw new RangeError(`numMinibatches (${c.numMinibatches}) must divide the batch numEnvs x numSteps = ${batch}`);
  }
  return c;
}

/** learning rate of iteration `iteration` (0-based): CleanRL's linear anneal. */
export function learningRateAt(c: PPOConfig, iteration: number): number {
  if (!c.annealLr) return c.learningRate;
  return Math.max(0, 1 - iteration / c.totalIterations) * c.learningRate;
}
