/** PPO for LoopNestEnv: trainer, loss pieces, optimizer, checkpoints. */
export { DEFAULT_PPO, ppoConfig, learningRateAt, type PPOConfig } from './config.ts';
export {
  computeGae, maskLogits, selectedLogProbs, entropy, normalize, clippedSurrogate, valueLoss, ppoLoss, clipByGlobalNorm, MASKED_LOGIT,
  type LossInputs, type LossTerms, type LossCoefficients,
} from './losses.ts';
export { Adam, type AdamState } from './adam.ts';
export { AgentRng } from './rng.ts';
export { evaluatePolicy, flattenMasks, type PolicyOutputs } from './act.ts';
export { PPOTrainer, rolloutSeed, explainedVariance, type IterationStats, type EpisodeSummary, type TrainerState, type PolicyEnvs, type PPOTrainerOptions } from './ppo.ts';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint, listCheckpoints, readCheckpointState, type CheckpointState } from './checkpoint.ts';
export { policySearcher, policyRollout, proposeCandidates, greedyRollout, scoreStates, observe, type PolicySearchOptions, type PolicyRolloutOptions } from './search.ts';
export { bandedSearcher, type BandedSearcherOptions } from './banded-searcher.ts';
