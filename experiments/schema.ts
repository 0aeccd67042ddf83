/**
 * The experiment file format (YAML), validated with zod. Errors name the file, the line and the
 * field: a zod issue's path is mapped back to the YAML node it came from.
 *
 *   name: ppo-mm-avx512            # run name; output defaults to runs/<name>
 *   description: free text
 *   target: avx512                 # avx512 | avx2 | host | cuda | synthetic
 *   dataset: { name: mm64-256, train: train, test: test, test_limit: 20,
 *              mix: [{ name: resnet18-conv2d, share: 0.15 }] }   # mix: other datasets' splits, drawn
 *                                  # this share of episodes (and their test splits join eval/compare)
 *   threads: 2                     # CPU threads of the kernels: rewards, peak, eval and compare (default 1)
 *   farm: { url: "redis://:secret@10.0.0.5:6379", key: "avx512 on ...", concurrency: 8 }
 *                                  # measure on the workers of a farm (looptune worker; url default
 *                                  # $LOOPTUNE_FARM, key default this machine's), for measured and
 *                                  # hybrid rewards, eval and compare
 *   env: { actions: [...], episode_steps: 10, max_loops: 10, observation: vector, start: initial }   # vector | graph; initial | sketch (cuda)
 *   reward: { source: measured, min_seconds: 0.01, records: path }   # measured | costmodel | hybrid | synthetic
 *   network: { kind: mlp, hidden: [256, 256], activation: tanh }
 *            # or { kind: gnn, hidden: 64, layers: 3, head_hidden: 128, max_nodes: 16 }
 *   ppo: { num_envs, num_steps, learning_rate, anneal_lr, gamma, gae_lambda, num_minibatches,
 *          update_epochs, norm_adv, clip_coef, clip_vloss, ent_coef, vf_coef, aux_coef,
 *          max_grad_norm, target_kl, adam_eps }
 *   iterations: 200
 *   seed: 1
 *   checkpoint: { every: 10, keep: 3 }
 *   evaluation: { budget: { measurements: 32 }, baselines: [random, greedy, beam, evolution],
 *                 beam_width: 4, depth: 10, problems: 20, min_seconds: 0.01,
 *                 extra_problems: ["matmul 1024x1024x1024"],   # evaluated after the test split
 *                 costmodel: default,     # searches rank candidates with it at `threads`, as tune does
 *                 policies: [{ name: shipped, path: agent/pretrained/avx512, band: true }] }
 *                                  # compare: other policies beside the experiment's; band: every
 *                                  # proposal gets the parallel band rule first (how tune runs a serial policy)
 *   variants:                      # optional: several agents in one experiment (e.g. MLP vs GNN);
 *     mlp: { network: {...} }      #   each overrides network/ppo/env/reward and trains into
 *     gnn: { network: {...} }      #   runs/<name>/<variant>/
 *   output: runs/ppo-mm-avx512     # relative paths (output, reward.records, reward.costmodel)
 *                                  # resolve against the current folder, as the CLI's paths do
 *
 * Every check, including the ones across sections (reward source vs target, batch divisibility),
 * happens here, before the runner creates or touches the run folder.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { LoopTuneError } from '../ir/errors.ts';
import { isKnownAction } from '../ir/transforms.ts';
import { datasetNames } from '../env/datasets.ts';
import { LOOPTUNE_ACTIONS } from '../ir/actions.ts';
import { backend } from '../targets/registry.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { parseProblem } from '../ir/spec.ts';

import { SEARCHER_NAMES } from '../agent/search/index.ts';
import type { NetworkConfig } from '../agent/policy/network.ts';
import type { PPOConfig } from '../agent/ppo/config.ts';
import { DEFAULT_PPO } from '../agent/ppo/config.ts';

/** The reward source that reads the target's own model: the synthetic target's figures. */
export const MODEL_REWARD = 'synthetic';

const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).max(1);

const actionName = z.string().refine(isKnownAction, { message: 'unknown action (expected up, down, swap_up, swap_down, split_N or merge)' });

const Env = z.strictObject({
  actions: z.array(actionName).min(1).default([...LOOPTUNE_ACTIONS]),
  episode_steps: positiveInt.default(10),
  max_loops: z.number().int().min(2).max(16).default(10),
  /** where episodes start: the default schedule, or (cuda) a random GPU sketch */
  start: z.enum(['initial', 'sketch']).default('initial'),
  /** observation form; it follows the network (mlp: vector, gnn: graph) and may be stated to check it */
  observation: z.enum(['vector', 'graph']).optional(),
});

const Reward = z.strictObject({
  source: z.enum(['measured', 'costmodel', 'hybrid', 'synthetic']).default('measured'),
  /** minimum sampled seconds per measurement */
  min_seconds: z.number().positive().default(0.01),
  /** tuning records (JSONL) shared by runs; default runs/<name>/records.jsonl */
  records: z.string().optional(),
  /** cost model directory (costmodel / hybrid) */
  costmodel: z.string().optional(),
  /** hybrid: fraction of evaluations that are really measured (the rest predicted) */
  measure_fraction: fraction.default(0.1),
});

const Ppo = z.strictObject({
  num_envs: positiveInt.default(DEFAULT_PPO.numEnvs),
  num_steps: positiveInt.default(DEFAULT_PPO.numSteps),
  learning_rate: z.number().positive().default(DEFAULT_PPO.learningRate),
  anneal_lr: z.boolean().default(DEFAULT_PPO.annealLr),
  gamma: fraction.default(DEFAULT_PPO.gamma),
  gae_lambda: fraction.default(DEFAULT_PPO.gaeLambda),
  num_minibatches: positiveInt.default(DEFAULT_PPO.numMinibatches),
  update_epochs: positiveInt.default(DEFAULT_PPO.updateEpochs),
  norm_adv: z.boolean().default(DEFAULT_PPO.normAdv),
  clip_coef: z.number().positive().default(DEFAULT_PPO.clipCoef),
  clip_vloss: z.boolean().default(DEFAULT_PPO.clipVloss),
  ent_coef: z.number().min(0).default(DEFAULT_PPO.entCoef),
  vf_coef: z.number().min(0).default(DEFAULT_PPO.vfCoef),
  aux_coef: z.number().min(0).default(DEFAULT_PPO.auxCoef),
  max_grad_norm: z.number().positive().default(DEFAULT_PPO.maxGradNorm),
  target_kl: z.number().positive().nullable().default(DEFAULT_PPO.targetKl),
  adam_eps: z.number().positive().default(DEFAULT_PPO.adamEps),
});

/**
 * A section whose keys are all optional and WITHOUT defaults (zod's .partial() keeps them): in a
 * variant, an absent key falls back to the top-level value, not to the default.
 */
function overrides<S extends z.ZodObject>(schema: S): z.ZodType<Partial<z.output<S>>> {
  const shape = Object.fromEntries(Object.entries(schema.shape).map(([k, v]) => {
    const inner = v instanceof z.ZodDefault ? (v.unwrap() as z.ZodType) : (v as z.ZodType);
    return [k, inner.optional()];
  }));
  return z.strictObject(shape) as unknown as z.ZodType<Partial<z.output<S>>>;
}

const Activation = z.enum(['tanh', 'relu']);
const Mlp = z.strictObject({
  kind: z.literal('mlp'),
  hidden: z.array(positiveInt).min(1).default([256, 256]),
  activation: Activation.default('tanh'),
});
const Gnn = z.strictObject({
  kind: z.literal('gnn'),
  hidden: positiveInt.default(64),
  layers: positiveInt.default(3),
  head_hidden: positiveInt.default(128),
  activation: Activation.default('tanh'),
  max_nodes: z.number().int().min(8).max(64).default(16),
});
const Network = z.discriminatedUnion('kind', [Mlp, Gnn]);

const Budget = z.strictObject({
  measurements: positiveInt.optional(),
  seconds: z.number().positive().optional(),
  steps: positiveInt.optional(),
}).refine((b) => b.measurements !== undefined || b.seconds !== undefined || b.steps !== undefined, {
  message: 'a budget needs measurements, seconds or steps',
});

const searcherName = z.string().refine((s) => /^([a-z-]+?)(\d+)?(?::(\d+))?$/.test(s) && SEARCHER_NAMES.some((n) => s.startsWith(n.split('-')[0]!)), {
  message: `unknown searcher (expected ${SEARCHER_NAMES.join(', ')}, optionally with :N)`,
});

const problemSpec = z.string().refine((t) => {
  try {
    parseProblem(t);
    return true;
  } catch {
    return false;
  }
}, { error: (issue) => `not a problem spec: '${String(issue.input).slice(0, 60)}' (e.g. "matmul 512x512x512")` });

const OtherPolicy = z.strictObject({
  /** name in the comparison (must differ from the experiment's searchers) */
  name: z.string().regex(/^[A-Za-z0-9][\w.+-]*$/, 'a name of letters, digits, ".", "+", "-" and "_"'),
  /** a policy folder (model.json + weights.bin), relative to the current folder */
  path: z.string().min(1),
  /** every proposal gets the parallel band rule (ir/parallelize.ts) first, as tune does */
  band: z.boolean().default(false),
});

const Evaluation = z.strictObject({
  /** per problem, identical for the policy and every baseline */
  budget: Budget.default({ measurements: 32 }),
  baselines: z.array(searcherName).default(['random', 'greedy', 'beam', 'evolution']),
  beam_width: positiveInt.default(4),
  /** rollout depth at inference (default: env.episode_steps) */
  depth: positiveInt.optional(),
  /** first N problems of the test split (default: all) */
  problems: positiveInt.optional(),
  min_seconds: z.number().positive().default(0.01),
  /** also time OpenBLAS on matmuls (compare) */
  openblas: z.boolean().default(true),
  /** problems evaluated after the test split(s), e.g. large ones where the band matters */
  extra_problems: z.array(problemSpec).optional(),
  /** a cost model ('default' = the target's shipped one, or a folder) ranking candidates at `threads`, as tune does */
  costmodel: z.string().optional(),
  /** compare: other policies beside the experiment's own */
  policies: z.array(OtherPolicy).optional(),
});

const datasetName = z.string().refine((n) => datasetNames().includes(n), { error: (issue) => `unknown dataset '${String(issue.input).slice(0, 40)}' (expected one of: ${datasetNames().join(', ')})` });

const Dataset = z.strictObject({
  name: datasetName,
  train: z.enum(['train', 'test', 'all']).default('train'),
  test: z.enum(['train', 'test', 'all']).default('test'),
  /** other datasets mixed in: their `train` split is drawn `share` of the episodes, their `test` split joins the evaluation */
  mix: z.array(z.strictObject({
    name: datasetName,
    share: z.number().gt(0).lt(1),
  })).min(1).optional(),
});

/** A measurement farm (targets/farm): every measured figure of the run comes from its workers. */
const Farm = z.strictObject({
  /** default $LOOPTUNE_FARM (keeps the password out of the file) */
  url: z.string().regex(/^rediss?:\/\/\S+$/, 'a Redis URL such as redis://:password@127.0.0.1:6379').optional(),
  /** the workers' hardware key (as `looptune worker` prints it); default: this machine's */
  key: z.string().min(1).optional(),
  /** measurements in flight at once */
  concurrency: positiveInt.max(1024).optional(),
});

const Variant = z.strictObject({
  network: Network.optional(),
  ppo: overrides(Ppo).optional(),
  env: overrides(Env).optional(),
  reward: overrides(Reward).optional(),
});

export const ExperimentSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][\w.-]*$/, 'a name of letters, digits, ".", "-" and "_"'),
  description: z.string().optional(),
  target: z.enum(['avx512', 'avx2', 'host', 'cuda', 'synthetic']),
  dataset: Dataset,
  env: Env.default(Env.parse({})),
  reward: Reward.default(Reward.parse({})),
  network: Network.default({ kind: 'mlp', hidden: [256, 256], activation: 'tanh' }),
  ppo: Ppo.default(Ppo.parse({})),
  iterations: positiveInt,
  /** CPU threads the kernels run on: training rewards (measured or predicted), the peak, eval and compare */
  threads: positiveInt.max(256).default(1),
  farm: Farm.optional(),
  seed: z.number().int().min(0).default(1),
  checkpoint: z.strictObject({ every: positiveInt.default(10), keep: positiveInt.default(3) }).default({ every: 10, keep: 3 }),
  evaluation: Evaluation.default(Evaluation.parse({})),
  variants: z.record(z.string().regex(/^[A-Za-z0-9][\w.-]*$/), Variant).optional(),
  output: z.string().optional(),
});

export type ExperimentFile = z.infer<typeof ExperimentSchema>;
export type NetworkSection = z.infer<typeof Network>;
export type PpoSection = z.infer<typeof Ppo>;

/** One agent of an experiment, with its variant's overrides applied. */
export interface ResolvedVariant {
  /** 'ppo' for a plain experiment, else the variant's name. */
  name: string;
  /** where this agent's run lives: runs/<name>[/<variant>]. */
  dir: string;
  env: z.infer<typeof Env>;
  reward: z.infer<typeof Reward>;
  network: NetworkConfig;
  ppo: PPOConfig;
}

export interface Experiment {
  file: string;
  /** the validated file, defaults filled in. */
  spec: ExperimentFile;
  /** the run folder. */
  output: string;
  variants: ResolvedVariant[];
}

export function toNetworkConfig(n: NetworkSection): NetworkConfig {
  return n.kind === 'mlp'
    ? { kind: 'mlp', hidden: [...n.hidden], activation: n.activation }
    : { kind: 'gnn', hidden: n.hidden, layers: n.layers, headHidden: n.head_hidden, activation: n.activation, maxNodes: n.max_nodes };
}

export function toPPOConfig(p: PpoSection, seed: number, iterations: number): PPOConfig {
  return {
    seed, totalIterations: iterations,
    numEnvs: p.num_envs, numSteps: p.num_steps, learningRate: p.learning_rate, annealLr: p.anneal_lr,
    gamma: p.gamma, gaeLambda: p.gae_lambda, numMinibatches: p.num_minibatches, updateEpochs: p.update_epochs,
    normAdv: p.norm_adv, clipCoef: p.clip_coef, clipVloss: p.clip_vloss, entCoef: p.ent_coef, vfCoef: p.vf_coef,
    auxCoef: p.aux_coef, maxGradNorm: p.max_grad_norm, targetKl: p.target_kl, adamEps: p.adam_eps,
  };
}

/** `file:line: field: message` errors, collected. */
export class ExperimentError extends LoopTuneError {
  override name = 'ExperimentError';
  constructor(readonly file: string, readonly problems: { line: number; field: string; message: string }[]) {
    super(problems.map((p) => `${file}:${p.line}: ${p.field ? `${p.field}: ` : ''}${p.message}`).join('\n'));
  }
}

/** The YAML node at `path` (as deep as it exists) and the line of its key or value, 1-based. */
export function lineOf(doc: ReturnType<typeof parseDocument>, lc: LineCounter, fieldPath: readonly PropertyKey[]): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as YamlNode | null)?.range?.[0] ?? 0;
  for (const seg of fieldPath) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const k = p.key as { value?: unknown } | null;
        return k !== null && typeof k === 'object' && String(k.value) === String(seg);
      });
      if (!pair) break;
      const keyRange = (pair.key as YamlNode | null)?.range;
      const value = pair.value as YamlNode | null;
      offset = keyRange?.[0] ?? value?.range?.[0] ?? offset;
      node = value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return lc.linePos(offset).line;
}

function fieldName(p: readonly PropertyKey[]): string {
  return p.map((s, i) => (typeof s === 'number' ? `[${s}]` : `${i ? '.' : ''}${String(s)}`)).join('');
}

function defined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Parses and validates an experiment file's text. */
export function parseExperiment(text: string, file: string, outputOverride?: string): Experiment {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ExperimentError(file, doc.errors.map((e) => ({
      line: e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line, field: '', message: `YAML: ${e.message.split('\n')[0]}`,
    })));
  }
  const raw = doc.toJS() as unknown;
  const r = ExperimentSchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((issue) => {
      const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
      const p = keys.length === 1 ? [...issue.path, keys[0]!] : issue.path;
      const message = keys.length > 0 ? `unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')}` : issue.message;
      return { line: lineOf(doc, lc, p), field: fieldName(p), message, unknownKey: keys.length > 0 };
    });
    // a misspelt key explains the 'missing' field it was meant to be: it comes first, then by line
    problems.sort((a, b) => Number(b.unknownKey) - Number(a.unknownKey) || a.line - b.line);
    throw new ExperimentError(file, problems.map(({ unknownKey: _, ...p }) => p));
  }
  const spec = r.data;
  const issues: { path: PropertyKey[]; message: string }[] = [];
  const output = outputOverride ?? spec.output ?? path.join('runs', spec.name);
  // threads are a CPU backend's capability (its printer emits parallel bands); a model target times nothing
  const targetBackend = backend(spec.target === 'host' ? hostTarget() : spec.target);
  const threadedTarget = targetBackend.caps.threads === true && targetBackend.timing !== 'model';
  if (spec.threads > 1 && !threadedTarget) issues.push({ path: ['threads'], message: `the ${spec.target} target runs kernels on one thread (no parallel bands)` });
  if (spec.farm && targetBackend.timing !== 'native') issues.push({ path: ['farm'], message: `a farm measures kernels: the ${spec.target} target's figures are not timings` });
  const shares = (spec.dataset.mix ?? []).reduce((a, m) => a + m.share, 0);
  if (shares >= 1) issues.push({ path: ['dataset', 'mix'], message: `the shares add up to ${+shares.toFixed(3)}: they must leave some episodes to ${spec.dataset.name}` });
  (spec.evaluation.policies ?? []).forEach((p, i) => {
    if ((spec.evaluation.policies ?? []).findIndex((q) => q.name === p.name) !== i) issues.push({ path: ['evaluation', 'policies', i, 'name'], message: `'${p.name}' is named twice` });
  });
  const resolve = (name: string, v: z.infer<typeof Variant> | undefined, base: PropertyKey[]): ResolvedVariant => {
    const env = { ...spec.env, ...defined(v?.env) };
    const reward = { ...spec.reward, ...defined(v?.reward) };
    const ppoSection = { ...spec.ppo, ...defined(v?.ppo) };
    const network = toNetworkConfig(v?.network ?? spec.network);
    const ppo = toPPOConfig(ppoSection, spec.seed, spec.iterations);
    const batch = ppo.numEnvs * ppo.numSteps;
    // point at the variant's own key when it sets one, else at the top-level key it inherits
    const at = (section: 'ppo' | 'env' | 'reward', key: string): PropertyKey[] => {
      const own = (v?.[section] as Record<string, unknown> | undefined)?.[key];
      return own !== undefined ? [...base, section, key] : [section, key];
    };
    const wants = network.kind === 'gnn' ? 'graph' : 'vector';
    if (env.observation !== undefined && env.observation !== wants) {
      issues.push({ path: at('env', 'observation'), message: `the ${network.kind} network reads the '${wants}' observation, not '${env.observation}'` });
    }
    if (ppo.numSteps % env.episode_steps !== 0) {
      issues.push({ path: at('ppo', 'num_steps'), message: `must be a multiple of env.episode_steps (${env.episode_steps}), so that every rollout starts with fresh episodes` });
    }
    if (batch % ppo.numMinibatches !== 0) {
      issues.push({ path: at('ppo', 'num_minibatches'), message: `must divide the batch num_envs x num_steps = ${batch}` });
    }
    // a target whose figures are its own model (synthetic) has neither measurements nor a cost model
    const modelTarget = spec.target !== 'host' && backend(spec.target).timing === 'model';
    const modelReward = reward.source === MODEL_REWARD;
    if ((reward.source === 'costmodel' || reward.source === 'hybrid') && modelTarget) {
      issues.push({ path: at('reward', 'source'), message: `the ${spec.target} target has no cost model (use source: ${MODEL_REWARD})` });
    }
    if (reward.source === 'measured' && modelTarget) {
      issues.push({ path: at('reward', 'source'), message: `the ${spec.target} target measures nothing (use source: ${MODEL_REWARD}, or a real target)` });
    }
    if (modelReward && !modelTarget) {
      issues.push({ path: at('reward', 'source'), message: `${MODEL_REWARD} reward needs target: ${MODEL_REWARD}` });
    }
    return { name, dir: name === 'ppo' ? output : path.join(output, name), env, reward, network, ppo };
  };
  const variants = spec.variants
    ? Object.entries(spec.variants).map(([name, v]) => resolve(name, v, ['variants', name]))
    : [resolve('ppo', undefined, [])];
  if (issues.length > 0) {
    const all = issues.map((i) => ({ line: lineOf(doc, lc, i.path), field: fieldName(i.path), message: i.message }));
    const unique = all.filter((p, i) => all.findIndex((q) => q.field === p.field && q.message === p.message) === i);
    throw new ExperimentError(file, unique.sort((a, b) => a.line - b.line));
  }
  return { file, spec, output, variants };
}

/** Reads and validates an experiment file; `outputOverride` replaces its output folder. */
export function loadExperiment(file: string, outputOverride?: string): Experiment {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LoopTuneError(`cannot read experiment ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parseExperiment(text, file, outputOverride);
}
