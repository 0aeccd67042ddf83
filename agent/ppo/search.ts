/**
 * Inference with a trained policy, behind the Searcher contract (so that it is compared with the
 * search baselines under the same budget accounting, and reused by `tune`).
 *
 * A policy rollout is cheap (one batched forward pass per step, 0.1-2 ms) while a measurement
 * costs milliseconds, so the search separates proposing from measuring:
 *  1. propose: from each root (the default schedule, plus e.g. the best tuning record), the greedy
 *     rollout (argmax action at every step) and a beam over the policy's top actions (width W,
 *     ranked by the path's log-probability) for `depth` steps. Every state visited is a candidate
 *     (deduplicated by schedule hash: the cursor does not change the code);
 *  2. measure the greedy rollouts' final states, then the `firstMeasured` proposals ranked best by
 *     the cost model (`options.predict`) or else by the policy's auxiliary GFLOPS head;
 *  3. with budget left: the shared evolution (agent/search/evolution.ts evolve) from everything
 *     measured so far, with the policy as one of its weighted mutators (policyRollout: short
 *     stochastic rollouts at temperature `temperature` from a random cursor, the policy as a learned
 *     mutation operator) beside the baselines' mutators; `randomInitial` fresh schedules start it,
 *     `freshPerRound` join each round. Without a cost model every child is measured; with one,
 *     `candidatesPerRound` children are scored and the best `batch` measured.
 * Measured on mm64-256 test problems with 40 measurements (AVX-512): an early policy (60 PPO
 * iterations) alone reaches about 80% of peak in its greedy rollout; the evolution phase is what
 * brings the result to evolution's level (about 95%); see the report of issue #6.
 */
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { graphEncoding, vectorEncoding } from '../../ir/graph.ts';
import type { SketchSource } from '../../env/evaluator.ts';
import { legalMoves, tryAction } from '../../ir/actions.ts';
import { runWithBudget, type SearchContext, type SearchOptions, type SearchResult, type Searcher } from '../searcher.ts';
import { evolve, type EvolutionOptions, type GenerationReport } from '../search/evolution.ts';
import { DEFAULT_MUTATORS, scaleWeights, type Mutator, type WeightedMutator } from '../search/mutators.ts';
import { sketchSourceOf } from '../search/sketch.ts';
import { vectorFormOf, type Observation, type PolicyNetwork } from '../policy/network.ts';
import { evaluatePolicy } from './act.ts';
import { AgentRng } from './rng.ts';

export interface PolicySearchOptions {
  /** name in reports (default 'ppo'). */
  name?: string;
  /** beam width and branching of the proposal beam (default 4). */
  beamWidth?: number;
  /** rollout length (default 10: one training episode). */
  depth?: number;
  /** extra start states besides the default schedule (e.g. the best tuning record). */
  roots?: (problem: Problem) => readonly Schedule[];
  /** called with the number of proposals once phase 1 is done (diagnostics). */
  onProposals?: (count: number) => void;
  /** proposals measured after the greedy finals, before the evolution (default 2). */
  firstMeasured?: number;
  /** fresh schedules measured to start the evolution (default 8). */
  randomInitial?: number;
  /** measured schedules the evolution breeds from (default 16). */
  population?: number;
  /** measurements per evolution round, fresh schedules included (default 8). */
  batch?: number;
  /** fresh schedules per round (default 2). */
  freshPerRound?: number;
  /** weight of the policy's rollouts among the mutators, the rest shared by `mutators` (default 0.34). */
  policyShare?: number;
  /** sampling temperature of those rollouts (default 1.5: a trained policy is nearly deterministic). */
  temperature?: number;
  /** children scored per round when a cost model ranks them (default 64). */
  candidatesPerRound?: number;
  /** the other mutators beside the policy, weights scaled to 1 - policyShare (default DEFAULT_MUTATORS). */
  mutators?: readonly WeightedMutator[];
  /** called after each evolution round (diagnostics: which mutator gave how many children). */
  onGeneration?: (g: GenerationReport) => void;
}

interface Candidate {
  schedule: Schedule;
  /** auxiliary head's GFLOPS / peak. */
  aux: number;
  logp: number;
}

/** `s` encoded the way the policy was trained (its spec says which vector form). */
export function observe(policy: PolicyNetwork, s: Schedule): Observation {
  return policy.spec.observation === 'graph' ? graphEncoding(s) : vectorEncoding(s, vectorFormOf(policy.spec));
}

function masks(policy: PolicyNetwork, states: readonly Schedule[]): boolean[][] {
  return states.map((s) => policy.spec.actions.map((a) => tryAction(s, a, policy.spec.maxLoops).ok));
}

/** One forward pass over `states`: per state its log-probabilities (A entries) and aux value. */
export function scoreStates(policy: PolicyNetwork, states: readonly Schedule[]): { logProbs: Float32Array[]; aux: number[]; values: number[] } {
  const A = policy.spec.actions.length;
  const out = evaluatePolicy(policy, states.map((s) => observe(policy, s)), masks(policy, states));
  return {
    logProbs: states.map((_, i) => out.logProbs.slice(i * A, (i + 1) * A)),
    aux: Array.from(out.aux),
    values: Array.from(out.values),
  };
}

const stateKey = (s: Schedule) => `${s.hash()}@${s.cursor}`;

function applyLegal(policy: PolicyNetwork, s: Schedule, action: number): Schedule {
  const r = tryAction(s, policy.spec.actions[action]!, policy.spec.maxLoops);
  if (!r.ok) throw new Error(`policy search: action ${policy.spec.actions[action]} is illegal here (${r.error})`);
  return r.schedule;
}

/** The argmax rollout: every state visited, the start included. */
export function greedyRollout(policy: PolicyNetwork, start: Schedule, depth: number): Schedule[] {
  const path = [start];
  let s = start;
  for (let d = 0; d < depth; d++) {
    const { logProbs } = scoreStates(policy, [s]);
    const lp = logProbs[0]!;
    let best = -1;
    for (const m of legalMoves(s, policy.spec.actions, policy.spec.maxLoops)) if (best < 0 || lp[m.action]! > lp[best]!) best = m.action;
    if (best < 0) break;
    s = applyLegal(policy, s, best);
    path.push(s);
  }
  return path;
}

/**
 * Phase 1: candidates from greedy rollouts and a beam over top actions from every root; returns
 * them with aux scores (one forward pass per beam level) and the greedy finals.
 */
export function proposeCandidates(policy: PolicyNetwork, roots: readonly Schedule[], depth: number, width: number): { candidates: Candidate[]; greedyFinals: Schedule[] } {
  const byHash = new Map<string, Candidate>();
  const note = (s: Schedule, aux: number, logp: number) => {
    const h = s.hash();
    const c = byHash.get(h);
    if (!c) byHash.set(h, { schedule: s, aux, logp });
    else if (logp > c.logp) { c.logp = logp; c.aux = Math.max(c.aux, aux); }
  };
  const greedyFinals: Schedule[] = [];
  for (const root of roots) {
    const path = greedyRollout(policy, root, depth);
    const sc = scoreStates(policy, path);
    path.forEach((s, i) => note(s, sc.aux[i]!, 0));
    greedyFinals.push(path[path.length - 1]!);

    let beam: { s: Schedule; logp: number }[] = [{ s: root, logp: 0 }];
    const seen = new Set([stateKey(root)]);
    for (let d = 0; d <= depth && beam.length > 0; d++) {
      const scores = scoreStates(policy, beam.map((b) => b.s));
      beam.forEach((b, i) => note(b.s, scores.aux[i]!, b.logp));
      if (d === depth) break;
      const next: { s: Schedule; logp: number }[] = [];
      beam.forEach((b, i) => {
        const lp = scores.logProbs[i]!;
        const moves = legalMoves(b.s, policy.spec.actions, policy.spec.maxLoops).sort((x, y) => lp[y.action]! - lp[x.action]!);
        for (const m of moves.slice(0, width)) {
          const k = stateKey(m.schedule);
          if (seen.has(k)) continue;
          seen.add(k);
          next.push({ s: m.schedule, logp: b.logp + lp[m.action]! });
        }
      });
      beam = next.sort((x, y) => y.logp - x.logp).slice(0, width);
    }
  }
  return { candidates: [...byHash.values()], greedyFinals };
}

/** Draws a fresh schedule is the best of, by the cost model, when there is one. */
const FRESH_DRAWS = 4;

/** Sketches ranked against the policy's proposals when a cost model is present. */
const SKETCHES_RANKED = 48;

function sketchCandidates(sketches: SketchSource, problem: Problem, maxLoops: number, seed: number, n: number): Candidate[] {
  const g = new AgentRng((seed ^ 0x5bd1e995) >>> 0);
  const out: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const s = sketches.sample(problem, g, maxLoops);
    if (s) out.push({ schedule: s, aux: 0, logp: -Infinity });
  }
  return out;
}

/**
 * The greedy finals worth measuring: all of them without a cost model; with one, those predicted at
 * least a quarter of the best proposal's figure. A policy trained on small shapes can roll out a
 * schedule that is hopeless on a large one (4 GFLOPS on a 1024^3 matmul: half a second to time),
 * and the model sees that for free.
 */
async function promising(ctx: SearchContext, finals: readonly Schedule[], cands: readonly Candidate[]): Promise<Schedule[]> {
  if (!ctx.predictFn || finals.length === 0) return [...finals];
  const scores = await ctx.predict([...finals, ...cands.map((c) => c.schedule)]);
  if (!scores) return [...finals];
  const best = Math.max(...scores);
  return finals.filter((_, i) => scores[i]! >= 0.25 * best);
}

/** The untried candidates, best first: cost-model scores when available, else the aux head. */
async function rank(ctx: SearchContext, cands: Candidate[]): Promise<Candidate[]> {
  const fresh = cands.filter((c) => ctx.untried(c.schedule));
  const predicted = await ctx.predict(fresh.map((c) => c.schedule));
  const key = predicted ? new Map(fresh.map((c, i) => [c, predicted[i]!])) : new Map(fresh.map((c) => [c, c.aux]));
  return fresh.sort((a, b) => key.get(b)! - key.get(a)! || b.logp - a.logp);
}

/**
 * Stochastic rollouts of the policy at `temperature`, all in lockstep (one batched forward pass per
 * step); rollout i runs steps[i] steps from starts[i]. Returns every state visited after the starts.
 */
function sampleRollouts(policy: PolicyNetwork, starts: readonly Schedule[], steps: readonly number[], rng: AgentRng, temperature: number): Schedule[] {
  const out: Schedule[] = [];
  let live = starts.map((s, i) => ({ s, left: steps[i]! })).filter((r) => r.left > 0);
  while (live.length > 0) {
    const states = live.map((r) => r.s);
    const { logProbs } = scoreStates(policy, states);
    const ms = masks(policy, states);
    const next: typeof live = [];
    live.forEach((r, i) => {
      if (!ms[i]!.some(Boolean)) return;
      const s = applyLegal(policy, r.s, rng.categorical(logProbs[i]!.map((x) => x / temperature), ms[i]));
      out.push(s);
      if (r.left > 1) next.push({ s, left: r.left - 1 });
    });
    live = next;
  }
  return out;
}

export interface PolicyRolloutOptions {
  /** sampling temperature (default 1.5: a trained policy is nearly deterministic). */
  temperature?: number;
  /** a rollout runs 1..maxSteps steps (default 4). */
  maxSteps?: number;
}

/**
 * The policy as a mutation operator of the evolution: from each parent, at a random cursor, a short
 * stochastic rollout of the policy; every state it visits is a child. All parents roll out in
 * lockstep (one batched forward pass per step).
 */
export function policyRollout(policy: PolicyNetwork, o: PolicyRolloutOptions = {}): Mutator {
  const temperature = o.temperature ?? 1.5;
  const maxSteps = o.maxSteps ?? 4;
  return {
    name: 'policy',
    mutate(parents, ctx) {
      const starts = parents.map((p) => p.withCursor(ctx.rng.int(0, p.loops.length - 1)));
      const steps = parents.map(() => ctx.rng.int(1, maxSteps));
      // the categorical draws come from the search's own stream, so a seed still fixes every child
      return sampleRollouts(policy, starts, steps, new AgentRng(ctx.rng.int(0, 0xffffffff)), temperature);
    },
  };
}

export function policySearcher(policy: PolicyNetwork, o: PolicySearchOptions = {}): Searcher {
  const name = o.name ?? 'ppo';
  const width = o.beamWidth ?? 4;
  const depth = o.depth ?? 10;
  const firstMeasured = o.firstMeasured ?? 2;
  const batch = o.batch ?? 8;
  const policyShare = o.policyShare ?? 0.34;
  if (!(policyShare >= 0 && policyShare <= 1)) fail(`policy search: policyShare must be within 0..1, got ${policyShare}`);
  // the policy's children come first in each generation (it is listed first): a rollout gives
  // several, so they are most of the candidates, as they were before the evolution was shared
  const mutators: WeightedMutator[] = [
    [policyRollout(policy, { temperature: o.temperature ?? 1.5 }), policyShare],
    ...scaleWeights(o.mutators ?? DEFAULT_MUTATORS, 1 - policyShare),
  ];
  const evolution: EvolutionOptions = {
    population: o.population ?? 16, batch, candidates: o.candidatesPerRound ?? 64,
    epsilon: (o.freshPerRound ?? 2) / batch, initial: o.randomInitial ?? 8, freshDraws: FRESH_DRAWS, mutators,
    ...(o.onGeneration ? { onGeneration: o.onGeneration } : {}),
  };
  return {
    name,
    search(problem: Problem, options: SearchOptions): Promise<SearchResult> {
      return runWithBudget(name, problem, options, async (ctx) => {
        const initial = Schedule.initial(problem);
        const maxLoops = Math.min(ctx.maxLoops, policy.spec.maxLoops);
        const sketches = sketchSourceOf(ctx.evaluator);
        const proposed: Schedule[] = [];
        const measure = async (x: Schedule) => {
          if (!ctx.untried(x)) return;
          await ctx.evaluate(x);
          proposed.push(x);
        };

        // 1-2: proposals; the roots besides the default (records; the target's seed sketches) and the greedy finals first
        const roots = [initial, ...(o.roots?.(problem) ?? []), ...(sketches.seeds?.(problem, policy.spec.maxLoops) ?? [])];
        const { candidates, greedyFinals } = proposeCandidates(policy, roots, depth, width);
        o.onProposals?.(candidates.length);
        // with a cost model, sketches compete with the policy's proposals from the start (their own
        // random stream): on shapes far from its training set the policy's proposals can be
        // hopeless, and timing one costs up to seconds on a large problem
        const pool = ctx.predictFn ? [...candidates, ...sketchCandidates(sketches, problem, maxLoops, options.seed ?? 0, SKETCHES_RANKED)] : candidates;
        const finals = greedyFinals.filter((x) => ctx.feasible(x));
        for (const x of [...roots.slice(1), ...(await promising(ctx, finals, pool))]) await measure(x);
        for (const c of (await rank(ctx, pool)).slice(0, firstMeasured)) await measure(c.schedule);

        // 3: the shared evolution, from everything measured so far, with the policy as a mutator
        return evolve(ctx, { ...evolution, seeds: proposed, maxLoops });
      });
    },
  };
}
