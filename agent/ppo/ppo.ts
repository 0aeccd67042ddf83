/**
 * Proximal Policy Optimization (Schulman et al. 2017), CleanRL-style: one loop, every hyper-parameter
 * in PPOConfig.
 *
 * Per iteration:
 *   1. learning rate: linear anneal (optional);
 *   2. rollout: the N envs are reset with a seed derived from (config.seed, iteration), then stepped
 *      numSteps times; actions are sampled from softmax(masked logits) (illegal actions, from
 *      env.actionMask(), get logit -1e9 and are never drawn); finished episodes auto-reset;
 *   3. GAE(lambda) advantages and returns (an episode's end, time limit included, is terminal);
 *   4. updateEpochs passes over the shuffled batch in numMinibatches minibatches: clipped surrogate
 *      + (clipped) value loss - entropy bonus + auxiliary GFLOPS regression; gradients clipped to a
 *      global norm; Adam step. Optional early stop on approximate KL.
 * Resetting at the start of every iteration makes an iteration depend only on (weights, optimizer
 * state, RNG state, iteration): a run resumed from a checkpoint continues exactly as the
 * uninterrupted one would (given the same measurements, which the tuning records replay).
 */
import { tf } from '../backend.ts';
import type { VectorEnv } from '../../env/core.ts';
import type { LoopNestInfo } from '../../env/loopnest-env.ts';
import type { Observation, PolicyNetwork } from '../policy/network.ts';
import { evaluatePolicy, flattenMasks } from './act.ts';
import { Adam } from './adam.ts';
import { learningRateAt, ppoConfig, type PPOConfig } from './config.ts';
import { clipByGlobalNorm, computeGae, ppoLoss } from './losses.ts';
import { AgentRng } from './rng.ts';

export type PolicyEnvs = VectorEnv<Observation, number, LoopNestInfo>;

export interface EpisodeSummary {
  problem: string;
  return: number;
  initialGflops: number;
  finalGflops: number;
  bestGflops: number;
  schedule: string;
}

export interface IterationStats {
  /** 1-based number of the iteration just finished. */
  iteration: number;
  /** env steps taken so far. */
  globalStep: number;
  learningRate: number;
  episodes: number;
  meanEpisodeReturn: number;
  /** mean over finished episodes of the last state's GFLOPS. */
  meanFinalGflops: number;
  /** mean over finished episodes of the best GFLOPS seen in the episode. */
  meanBestGflops: number;
  meanInitialGflops: number;
  /** geomean of final / initial GFLOPS. */
  geomeanSpeedup: number;
  pgLoss: number;
  vLoss: number;
  entropy: number;
  auxLoss: number;
  approxKl: number;
  clipFrac: number;
  gradNorm: number;
  explainedVariance: number;
  /** share of sampled actions that were no-ops (illegal); 0 with masking. */
  illegalFraction: number;
  rolloutSeconds: number;
  updateSeconds: number;
  /** env steps per second over rollout + update. */
  stepsPerSecond: number;
}

export interface TrainerState {
  iteration: number;
  globalStep: number;
  rngState: number;
}

export interface PPOTrainerOptions {
  envs: PolicyEnvs;
  policy: PolicyNetwork;
  config: Partial<PPOConfig>;
  /** the reward's denominator: auxiliary targets are GFLOPS / peak. */
  peakGflops: number;
}

/** seed of the envs' reset at the start of iteration `iteration` (env i gets seed + i). */
export function rolloutSeed(seed: number, iteration: number, numEnvs: number): number {
  return (Math.imul(seed >>> 0, 1_000_003) + iteration * numEnvs) >>> 1;
}

export class PPOTrainer {
  readonly config: PPOConfig;
  readonly policy: PolicyNetwork;
  readonly envs: PolicyEnvs;
  readonly optimizer: Adam;
  readonly peakGflops: number;
  rng: AgentRng;
  iteration = 0;
  globalStep = 0;

  constructor(o: PPOTrainerOptions) {
    this.config = ppoConfig(o.config);
    if (o.envs.numEnvs !== this.config.numEnvs) throw new RangeError(`config.numEnvs is ${this.config.numEnvs} but the VectorEnv has ${o.envs.numEnvs}`);
    const n = o.envs.singleActionSpace as unknown as { n?: number };
    if (n.n !== undefined && n.n !== o.policy.spec.actions.length) {
      throw new RangeError(`the env has ${n.n} actions, the policy ${o.policy.spec.actions.length}`);
    }
    this.policy = o.policy;
    this.envs = o.envs;
    this.peakGflops = o.peakGflops;
    this.rng = new AgentRng(this.config.seed ^ 0x5eed);
    this.optimizer = new Adam(o.policy.params.map((p) => p.variable), 0.9, 0.999, this.config.adamEps);
  }

  get state(): TrainerState {
    return { iteration: this.iteration, globalStep: this.globalStep, rngState: this.rng.state };
  }

  restore(s: TrainerState): void {
    this.iteration = s.iteration;
    this.globalStep = s.globalStep;
    this.rng.state = s.rngState >>> 0;
  }

  async iterate(): Promise<IterationStats> {
    const c = this.config;
    const E = c.numEnvs, T = c.numSteps, A = this.policy.spec.actions.length, N = E * T;
    const lr = learningRateAt(c, this.iteration);
    const t0 = performance.now();

    // ---- rollout
    const obs: Observation[] = new Array(N);
    const masks = new Float32Array(N * A);
    const actions = new Int32Array(N);
    const logProbs = new Float32Array(N);
    const values = new Float32Array(N);
    const rewards = new Float32Array(N);
    const dones = new Float32Array(N);
    const auxTargets = new Float32Array(N);
    const episodes: EpisodeSummary[] = [];
    const running = new Float64Array(E);
    let illegal = 0;

    const reset = await this.envs.reset({ seed: rolloutSeed(c.seed, this.iteration, E) });
    let current = reset.observations;
    let gflops = reset.infos.map((i) => i.gflops);
    for (let t = 0; t < T; t++) {
      const stepMasks = this.envs.actionMasks();
      const out = evaluatePolicy(this.policy, current, stepMasks);
      const flatMask = flattenMasks(stepMasks, A);
      const chosen: number[] = [];
      for (let e = 0; e < E; e++) {
        const i = t * E + e;
        obs[i] = current[e]!;
        masks.set(flatMask.subarray(e * A, (e + 1) * A), i * A);
        const row = out.logProbs.subarray(e * A, (e + 1) * A);
        const a = this.rng.categorical(row, stepMasks[e]);
        chosen.push(a);
        actions[i] = a;
        logProbs[i] = row[a]!;
        values[i] = out.values[e]!;
        auxTargets[i] = gflops[e]! / this.peakGflops;
      }
      const step = await this.envs.step(chosen);
      for (let e = 0; e < E; e++) {
        const i = t * E + e;
        rewards[i] = step.rewards[e]!;
        running[e]! += step.rewards[e]!;
        const info = step.infos[e]!;
        const done = step.terminated[e]! || step.truncated[e]!;
        dones[i] = done ? 1 : 0;
        const final = done ? info.finalInfo! : info;
        if (final.illegal !== undefined) illegal++;
        if (done) {
          episodes.push({
            problem: final.problem, return: running[e]!, initialGflops: final.initialGflops,
            finalGflops: final.gflops, bestGflops: final.bestGflops, schedule: final.schedule,
          });
          running[e] = 0;
        }
      }
      current = step.observations;
      gflops = step.infos.map((i) => i.gflops);
    }
    const last = evaluatePolicy(this.policy, current, this.envs.actionMasks());
    const { advantages, returns } = computeGae(rewards, values, dones, last.values, E, c.gamma, c.gaeLambda);
    const t1 = performance.now();

    // ---- update
    const vars = this.policy.params.map((p) => p.variable);
    const mbSize = N / c.numMinibatches;
    const sums = { pgLoss: 0, vLoss: 0, entropy: 0, auxLoss: 0, approxKl: 0, clipFrac: 0, gradNorm: 0 };
    let updates = 0;
    let stop = false;
    for (let epoch = 0; epoch < c.updateEpochs && !stop; epoch++) {
      const order = this.rng.permutation(N);
      let epochKl = 0, epochMb = 0;
      for (let start = 0; start < N; start += mbSize) {
        const idx = order.subarray(start, start + mbSize);
        const pick = (src: Float32Array) => Float32Array.from(idx, (i) => src[i]!);
        const mbMask = new Float32Array(mbSize * A);
        idx.forEach((i, k) => mbMask.set(masks.subarray(i * A, (i + 1) * A), k * A));
        const metrics = tf.tidy(() => {
          const inputs = this.policy.inputs(Array.from(idx, (i) => obs[i]!));
          const batch = {
            mask: tf.tensor2d(mbMask, [mbSize, A]),
            actions: tf.tensor1d(Int32Array.from(idx, (i) => actions[i]!), 'int32'),
            oldLogProbs: tf.tensor1d(pick(logProbs)),
            advantages: tf.tensor1d(pick(advantages)),
            returns: tf.tensor1d(pick(returns)),
            oldValues: tf.tensor1d(pick(values)),
            auxTargets: tf.tensor1d(pick(auxTargets)),
          };
          let kept: tf.Scalar[] = [];
          const { grads } = tf.variableGrads(() => {
            const out = this.policy.apply(inputs);
            const terms = ppoLoss({ ...batch, logits: out.logits, values: out.value, aux: out.aux }, c);
            kept = [terms.pgLoss, terms.vLoss, terms.entropy, terms.auxLoss, terms.approxKl, terms.clipFrac].map((x) => tf.keep(x));
            return terms.loss;
          }, vars);
          const clipped = clipByGlobalNorm(vars.map((v) => grads[v.name]!), c.maxGradNorm);
          this.optimizer.apply(clipped.grads, lr);
          const scalars = [...kept, clipped.norm].map((x) => x.dataSync()[0]!);
          tf.dispose(kept);
          return scalars;
        });
        const [pg, vl, ent, aux, kl, cf, gn] = metrics;
        sums.pgLoss += pg!; sums.vLoss += vl!; sums.entropy += ent!; sums.auxLoss += aux!;
        sums.approxKl += kl!; sums.clipFrac += cf!; sums.gradNorm += gn!;
        updates++;
        epochKl += kl!;
        epochMb++;
      }
      if (c.targetKl !== null && epochKl / epochMb > c.targetKl) stop = true;
    }
    const t2 = performance.now();

    this.iteration++;
    this.globalStep += N;
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    const ratios = episodes.filter((e) => e.initialGflops > 0 && e.finalGflops > 0).map((e) => Math.log(e.finalGflops / e.initialGflops));
    return {
      iteration: this.iteration,
      globalStep: this.globalStep,
      learningRate: lr,
      episodes: episodes.length,
      meanEpisodeReturn: mean(episodes.map((e) => e.return)),
      meanFinalGflops: mean(episodes.map((e) => e.finalGflops)),
      meanBestGflops: mean(episodes.map((e) => e.bestGflops)),
      meanInitialGflops: mean(episodes.map((e) => e.initialGflops)),
      geomeanSpeedup: ratios.length ? Math.exp(mean(ratios)) : 0,
      pgLoss: sums.pgLoss / updates,
      vLoss: sums.vLoss / updates,
      entropy: sums.entropy / updates,
      auxLoss: sums.auxLoss / updates,
      approxKl: sums.approxKl / updates,
      clipFrac: sums.clipFrac / updates,
      gradNorm: sums.gradNorm / updates,
      explainedVariance: explainedVariance(values, returns),
      illegalFraction: illegal / N,
      rolloutSeconds: (t1 - t0) / 1000,
      updateSeconds: (t2 - t1) / 1000,
      stepsPerSecond: N / ((t2 - t0) / 1000),
    };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** 1 - Var(returns - values) / Var(returns) (NaN when the returns do not vary). */
export function explainedVariance(values: ArrayLike<number>, returns: ArrayLike<number>): number {
  const n = values.length;
  let my = 0, md = 0;
  for (let i = 0; i < n; i++) { my += returns[i]!; md += returns[i]! - values[i]!; }
  my /= n; md /= n;
  let vy = 0, vd = 0;
  for (let i = 0; i < n; i++) {
    vy += (returns[i]! - my) ** 2;
    vd += (returns[i]! - values[i]! - md) ** 2;
  }
  return vy === 0 ? NaN : 1 - vd / vy;
}
