/**
 * The experiment runner: `train`, `eval`, `compare` and `export` for an experiment file.
 *
 * Run folder (runs/<name>/, one sub-folder per variant when the file has variants):
 *   .looptune-run            marker: the folder is looptune's (experiments/run-folder.ts); without it
 *                            the runner neither removes nor replaces anything there
 *   .looptune-lock           held by the one `train` running on the folder (experiments/run-lock.ts)
 *   experiment.yaml          copy of the file the run was started with
 *   records.jsonl            tuning records of every real measurement (shared by the variants)
 *   checkpoints/iter-NNNNNN  policy, Adam state, RNG state, counters (agent/ppo/checkpoint.ts)
 *   metrics.jsonl            one line per iteration (IterationStats + evaluator counters)
 *   policy/                  the final policy (model.json + weights.bin)
 *   eval.json                `eval`: the policy on the test split
 *   compare/report.html      `compare`: policy vs baselines, equal budgets, with learning curves
 *
 * `train` resumes from the newest checkpoint by default: weights, optimizer moments, RNG state and
 * iteration are restored, and metrics.jsonl is cut back to that iteration, so a killed run continues
 * as if it had not been interrupted. A damaged newest checkpoint is skipped with one warning.
 *
 * A relative `output:` (and `reward.records`, `reward.costmodel`) resolves against the current
 * folder, like every path option of the CLI; without `output:` the run goes to ./runs/<name>.
 * Validation (schema, options, cost model path) happens before anything is written; file-system
 * failures (read-only disk, a file where a folder should be) are one-line LoopTuneErrors.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import cliProgress from 'cli-progress';
import { fail, LoopTuneError } from '../ir/errors.ts';
import type { Problem } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';
import { split as datasetSplit } from '../env/datasets.ts';
import { VectorEnv } from '../env/core.ts';
import { LoopNestEnv, observesParallel } from '../env/loopnest-env.ts';
import { CachingEvaluator, type Evaluator, type NativeTargetName, type PredictFunction } from '../env/evaluator.ts';
import { evaluatorFor, measuresKernels } from '../env/evaluator-for.ts';
import type { Backend } from '../targets/backend.ts';
import type { FarmOptions } from '../targets/farm/farm-options.ts';
import { backend, findBackend } from '../targets/registry.ts';
import { hostIsa, hostTarget } from '../targets/runtime/host.ts';
import { initBackend } from '../agent/backend.ts';
import { createPolicy, loadPolicy, observationFor, savePolicy, type PolicyNetwork, type PolicySpec } from '../agent/policy/index.ts';
import { PPOTrainer, type IterationStats, type PolicyEnvs } from '../agent/ppo/ppo.ts';
import { checkpointDamage, findCheckpoint, folderDamage, latestCheckpoint, loadCheckpoint, readCheckpointState, saveCheckpoint, sealFolder } from '../agent/ppo/checkpoint.ts';
import { greedyRollout, policySearcher } from '../agent/ppo/search.ts';
import { bandedSearcher } from '../agent/ppo/banded-searcher.ts';
import { DEFAULT_TIMED_MAX_FLOPS, type Searcher } from '../agent/searcher.ts';
import { flops } from '../ir/problem.ts';
import { parseProblem } from '../ir/spec.ts';
import { runCompare } from '../agent/search/run.ts';
import { aggregateCurve, geomean, linePlot, renderCompareHtml, type CompareData, type Series } from '../agent/report/index.ts';
import type { HistoryPoint } from '../agent/searcher.ts';
import { loadExperiment, MODEL_REWARD, type Experiment, type ResolvedVariant } from './schema.ts';
import { openRunFolder } from './run-folder.ts';
import { lockRunFolder } from './run-lock.ts';
import { withFsErrors } from '../ir/fs-errors.ts';

export { loadExperiment, parseExperiment, ExperimentError, type Experiment, type ResolvedVariant } from './schema.ts';

export type ExperimentTarget = NativeTargetName | 'cuda' | 'synthetic';

export function resolveTarget(t: string): ExperimentTarget {
  if (t === 'host') return hostTarget();
  return t as ExperimentTarget;
}

function recordsPath(x: Experiment, v: ResolvedVariant): string {
  return v.reward.records ?? path.join(x.output, 'records.jsonl');
}

/** `threads:` of the file as device options (only where it is not the default: older runs stay the same). */
function threadOptions(x: Experiment): { threads?: number } {
  return x.spec.threads > 1 ? { threads: x.spec.threads } : {};
}

/** `farm:` of the file as evaluator options: measurements on the farm's workers. */
function farmOptions(x: Experiment): { farm?: FarmOptions } {
  const f = x.spec.farm;
  if (!f) return {};
  const url = f.url ?? process.env.LOOPTUNE_FARM;
  if (!url) fail(`${x.file}: farm: has no url and LOOPTUNE_FARM is not set (expected e.g. url: redis://:password@10.0.0.5:6379)`);
  return { farm: { url, ...(f.key !== undefined ? { key: f.key } : {}), ...(f.concurrency !== undefined ? { concurrency: f.concurrency } : {}) } };
}

/** Measurements of the experiment's target (its records in the run's file; one line without its device). */
function measured(x: Experiment, v: ResolvedVariant, minSeconds: number): Promise<Evaluator> {
  const b = backend(resolveTarget(x.spec.target));
  // GPU launches are often tens of microseconds: at least 20 ms of samples each
  return evaluatorFor(b, { records: recordsPath(x, v), minSeconds: b.processor === 'gpu' ? Math.max(minSeconds, 0.02) : minSeconds, ...threadOptions(x), ...farmOptions(x) });
}

/** The evaluator that gives training rewards, from `reward.source`. */
export async function rewardEvaluator(x: Experiment, v: ResolvedVariant): Promise<Evaluator> {
  const b = backend(resolveTarget(x.spec.target));
  const source = v.reward.source;
  // the schema pairs the model reward with a model target and the others with real ones
  if (source === MODEL_REWARD || b.timing === 'model') {
    if (b.timing !== 'model') fail(`reward source '${source}' needs target: ${MODEL_REWARD}`);
    if (source !== MODEL_REWARD) fail(`reward source '${source}' needs a real target, not ${b.name}`);
    return evaluatorFor(b);
  }
  if (source === 'measured') return measured(x, v, v.reward.min_seconds);
  return costModelEvaluator(x, v, b);
}

/**
 * costmodel / hybrid rewards through agent/costmodel (loaded lazily: the runner does not need it
 * for measured or synthetic rewards). `reward.costmodel` names the model ('default:<target>' =
 * the shipped one); hybrid measures one evaluation in round(1 / measure_fraction).
 */
async function costModelEvaluator(x: Experiment, v: ResolvedVariant, b: Backend): Promise<Evaluator> {
  const cm = await import('../agent/costmodel/evaluator.ts');
  const model = await cm.resolveCostModel(v.reward.costmodel ?? `default:${b.name}`);
  if (v.reward.source === 'costmodel') {
    // no device needed to train on the model: on a GPU the reward's denominator is its nominal peak,
    // on this machine's CPU the probed (usually cached) one
    if (b.processor === 'gpu') return new cm.CostModelEvaluator({ model, target: b.name, peakGflops: b.nominalPeakGflops });
    // predictions and the reward's denominator at the file's thread count (the peak of as many cores)
    const device = await b.open(threadOptions(x));
    try {
      return new cm.CostModelEvaluator({ model, target: b.name, peakGflops: (await device.peak()).gflops, threads: x.spec.threads });
    } finally {
      await device.close();
    }
  }
  const real = await measured(x, v, v.reward.min_seconds);
  return new cm.HybridEvaluator({ model, measured: real, ownsMeasured: true, every: Math.max(1, Math.round(1 / Math.max(1e-3, v.reward.measure_fraction))) });
}

/** Real measurements for evaluation and comparison (the model on a model target). */
export async function measuringEvaluator(x: Experiment): Promise<Evaluator> {
  const b = backend(resolveTarget(x.spec.target));
  if (b.timing === 'model') return evaluatorFor(b);
  return measured(x, x.variants[0]!, x.spec.evaluation.min_seconds);
}

export function policySpecOf(v: ResolvedVariant, target?: string): PolicySpec {
  const gpu = target !== undefined && findBackend(target)?.processor === 'gpu';
  return {
    network: v.network, actions: [...v.env.actions], observation: observationFor(v.network), maxLoops: v.env.max_loops,
    // GPU observations carry each loop's binding; CPU ones each loop's parallel flag when the policy can build bands (LoopNestEnv's rule)
    ...(gpu ? { gpu: true } : {}),
    ...(!gpu && observesParallel(v.env.actions) ? { parallel: true } : {}),
  };
}

/**
 * The training problems: the dataset's train split, and each `mix` dataset's train split repeated
 * so that an episode draws it with about its `share` (episodes draw problems uniformly): with the
 * base split's share `rest`, a list of B / rest problems holds share x B / rest of each mixed one.
 */
export function trainProblems(x: Experiment): Problem[] {
  const base = datasetSplit(x.spec.dataset.name, x.spec.dataset.train);
  const mix = x.spec.dataset.mix ?? [];
  const rest = 1 - mix.reduce((a, m) => a + m.share, 0);
  const out = [...base];
  for (const m of mix) {
    const ps = datasetSplit(m.name, x.spec.dataset.train);
    const copies = Math.max(1, Math.round((m.share * base.length) / (rest * ps.length)));
    for (let c = 0; c < copies; c++) out.push(...ps);
  }
  return out;
}

function makeEnvs(x: Experiment, v: ResolvedVariant, evaluator: Evaluator): PolicyEnvs {
  const observation = observationFor(v.network);
  const problems = x.spec.dataset.mix ? trainProblems(x) : undefined;
  const envs = Array.from({ length: v.ppo.numEnvs }, () => new LoopNestEnv({
    evaluator, ...(problems ? { dataset: problems } : { dataset: x.spec.dataset.name, split: x.spec.dataset.train }), actions: v.env.actions,
    maxLoops: v.env.max_loops, maxSteps: v.env.episode_steps, observation, start: v.env.start,
  }));
  return new VectorEnv(envs) as unknown as PolicyEnvs;
}

export function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()
      + (execFileSync('git', ['status', '--porcelain'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() ? '+dirty' : '');
  } catch {
    return null;
  }
}

/** Training-relevant settings: a resumed run must have the same ones (iterations may grow). */
function fingerprint(x: Experiment, v: ResolvedVariant): string {
  const { totalIterations: _ignored, ...ppo } = v.ppo;
  return JSON.stringify({ target: x.spec.target, dataset: x.spec.dataset, env: v.env, reward: v.reward, network: v.network, ppo, ...threadOptions(x) });
}

// ---------------------------------------------------------------------------------------- train

export interface TrainProgress {
  variant: string;
  iteration: number;
  iterations: number;
  stats: IterationStats;
}

/** Options every runner function takes. */
export interface RunnerOptions {
  /** write the run here instead of the file's output folder (tests, scratch runs). */
  output?: string;
  /** one-line messages (default: stderr). */
  log?: (line: string) => void;
}

export interface TrainOptions extends RunnerOptions {
  /** called after every iteration. */
  onProgress?: (p: TrainProgress) => void;
  /** continue from the newest checkpoint (default true); false starts over, deleting the old run. */
  resume?: boolean;
  /** show a cli-progress bar on stderr (default: when stderr is a terminal and no onProgress). */
  bar?: boolean;
  /** stop after this many iterations in this call (the run can be resumed later). */
  stopAfter?: number;
  /** train only these variants (default all). */
  variants?: string[];
}

export interface TrainedVariant {
  name: string;
  dir: string;
  iteration: number;
  globalStep: number;
  /** iteration of the checkpoint the run resumed from (absent: fresh start). */
  resumedFrom?: number;
  checkpoint: string | null;
  /** the final policy (written when the run completed all its iterations). */
  policyDir?: string;
  last?: IterationStats;
  /** mean env steps per second of this call's iterations. */
  stepsPerSecond?: number;
}

export interface TrainResult {
  output: string;
  variants: TrainedVariant[];
}

const defaultLog = (line: string) => process.stderr.write(line + '\n');

function readMetrics(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Whether `a` and `b` name the same existing file. */
function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** Checks what the schema cannot (paths on disk) before the run folder is created. */
async function preflight(x: Experiment, variants: readonly ResolvedVariant[]): Promise<void> {
  for (const v of variants) {
    if (v.reward.source !== 'costmodel' && v.reward.source !== 'hybrid') continue;
    const { resolveModelPath } = await import('../agent/costmodel/model.ts');
    const ref = v.reward.costmodel ?? `default:${resolveTarget(x.spec.target)}`;
    const dir = resolveModelPath(ref);
    if (!existsSync(path.join(dir, 'model.json'))) fail(`${x.file}: reward.costmodel: no cost model at ${dir} (expected model.json and weights.bin)`);
  }
}

/**
 * Trains every (or the chosen) variant of an experiment into its run folder, resuming from the
 * newest complete checkpoint unless `resume` is false. The folder must be looptune's (or new, or
 * empty) and not in use by another train.
 */
export async function trainExperiment(file: string, opts: TrainOptions = {}): Promise<TrainResult> {
  const x = loadExperiment(file, opts.output);
  const log = opts.log ?? defaultLog;
  if (opts.stopAfter !== undefined && !(Number.isSafeInteger(opts.stopAfter) && opts.stopAfter > 0)) {
    fail(`stopAfter must be a positive whole number of iterations, not ${opts.stopAfter}`);
  }
  const wanted = x.variants.filter((v) => !opts.variants || opts.variants.includes(v.name));
  if (wanted.length === 0) fail(`no variant named ${opts.variants?.join(', ')} in ${file}`);
  await preflight(x, wanted);
  const backend = await initBackend();
  return withFsErrors(async () => {
    openRunFolder(x.output, file);
    const lock = lockRunFolder(x.output, log);
    try {
      const copy = path.join(x.output, 'experiment.yaml');
      if (!sameFile(file, copy)) copyFileSync(file, copy);
      const out: TrainedVariant[] = [];
      for (const v of wanted) out.push(await trainVariant(x, v, backend, opts, log));
      return { output: x.output, variants: out };
    } finally {
      lock.release();
    }
  });
}

/** The newest complete checkpoint to resume from; damaged newer ones cost one warning line. */
function resumePoint(v: ResolvedVariant, ckDir: string, log: (l: string) => void): string | null {
  const { checkpoint, damaged } = findCheckpoint(ckDir);
  if (damaged.length === 0) return checkpoint;
  const what = damaged.map((d) => `${d.name} (${d.reason})`).join(', ');
  if (!checkpoint) fail(`${v.name}: no complete checkpoint in ${ckDir}: ${what} damaged; train with resume off (--fresh) to start over`);
  log(`warning: ${v.name}: skipping damaged checkpoint${damaged.length > 1 ? 's' : ''} ${what}; resuming from ${path.basename(checkpoint)}`);
  return checkpoint;
}

/** Writes the final policy as a sealed folder, replacing the old one only once it is complete. */
async function saveFinalPolicy(policy: PolicyNetwork, dir: string, metadata: Record<string, unknown>): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await savePolicy(policy, tmp, metadata);
  sealFolder(tmp);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

async function trainVariant(x: Experiment, v: ResolvedVariant, backend: string, opts: TrainOptions, log: (l: string) => void): Promise<TrainedVariant> {
  const iterations = x.spec.iterations;
  const ckDir = path.join(v.dir, 'checkpoints');
  const metricsFile = path.join(v.dir, 'metrics.jsonl');
  const fp = fingerprint(x, v);
  const resume = opts.resume ?? true;
  mkdirSync(v.dir, { recursive: true });
  const latest = resume ? resumePoint(v, ckDir, log) : null;
  if (latest) {
    const st = readCheckpointState(latest);
    if (st.extra.fingerprint !== undefined && st.extra.fingerprint !== fp) {
      fail(`${x.file}: the settings of '${v.name}' changed since ${latest} was written; train with resume off (--fresh) to start over`);
    }
  } else {
    rmSync(ckDir, { recursive: true, force: true });
    rmSync(metricsFile, { force: true });
    rmSync(path.join(v.dir, 'policy'), { recursive: true, force: true });
  }
  writeFileSync(path.join(v.dir, 'experiment.json'), JSON.stringify({ file: x.file, variant: v, spec: x.spec }, null, 2) + '\n');

  const evaluator = await rewardEvaluator(x, v);
  const peak = evaluator.peakGflops;
  const policy = createPolicy(policySpecOf(v, resolveTarget(x.spec.target)), v.ppo.seed);
  const envs = makeEnvs(x, v, evaluator);
  const trainer = new PPOTrainer({ envs, policy, config: v.ppo, peakGflops: peak });
  let elapsed = 0;
  let resumedFrom: number | undefined;
  if (latest) {
    const st = loadCheckpoint(trainer, latest);
    elapsed = st.elapsedSeconds;
    resumedFrom = st.iteration;
    // drop metric lines written after the checkpoint (the run died before its next one)
    const kept = readMetrics(metricsFile).filter((m) => typeof m.iteration === 'number' && m.iteration <= st.iteration);
    writeFileSync(metricsFile, kept.map((m) => JSON.stringify(m) + '\n').join(''));
    log(`${v.name}: resuming from ${latest} (iteration ${st.iteration} of ${iterations}, ${st.globalStep} env steps)`);
  }
  log(`${x.spec.name}${v.name === 'ppo' ? '' : `/${v.name}`}: PPO on ${x.spec.target} (${x.spec.dataset.name}:${x.spec.dataset.train}), `
    + `${v.network.kind} policy, reward ${v.reward.source}, TensorFlow.js backend '${backend}', peak ${peak.toFixed(1)} GFLOPS`);

  const useBar = opts.bar ?? (!opts.onProgress && process.stderr.isTTY === true);
  const bar = useBar ? new cliProgress.SingleBar({
    format: `${v.name} |{bar}| {value}/{total} it | return {ret} | GFLOPS {gflops} (best {best}) | {sps} steps/s | eta {eta_formatted}`,
    stream: process.stderr, hideCursor: true, etaBuffer: 20,
  }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(iterations, trainer.iteration, { ret: '-', gflops: '-', best: '-', sps: '-' });
  const every = x.spec.checkpoint.every;
  const keep = x.spec.checkpoint.keep;
  const meta = (extra: Record<string, unknown> = {}) => ({
    experiment: x.file, name: x.spec.name, variant: v.name, target: resolveTarget(x.spec.target), dataset: x.spec.dataset.name,
    trainSplit: x.spec.dataset.train, episodeSteps: v.env.episode_steps, rewardSource: v.reward.source, peakGflops: peak,
    iteration: trainer.iteration, globalStep: trainer.globalStep, commit: gitCommit(), ...extra,
  });
  let last: IterationStats | undefined;
  const spsList: number[] = [];
  let ran = 0;
  const stats = evaluator instanceof CachingEvaluator ? evaluator.stats : undefined;
  try {
    while (trainer.iteration < iterations && (opts.stopAfter === undefined || ran < opts.stopAfter)) {
      const t0 = performance.now();
      const measuredBefore = stats?.measured ?? 0;
      last = await trainer.iterate();
      ran++;
      elapsed += (performance.now() - t0) / 1000;
      spsList.push(last.stepsPerSecond);
      const line = {
        variant: v.name, ...last, elapsedSeconds: elapsed,
        measurements: stats ? stats.measured - measuredBefore : undefined, timestamp: new Date().toISOString(),
      };
      appendFileSync(metricsFile, JSON.stringify(line) + '\n');
      if (trainer.iteration % every === 0 || trainer.iteration === iterations) {
        await saveCheckpoint(trainer, ckDir, { elapsedSeconds: elapsed, keep, extra: { fingerprint: fp }, metadata: meta() });
      }
      bar?.update(trainer.iteration, {
        ret: last.meanEpisodeReturn.toFixed(3), gflops: last.meanFinalGflops.toFixed(1), best: last.meanBestGflops.toFixed(1),
        sps: last.stepsPerSecond.toFixed(0),
      });
      opts.onProgress?.({ variant: v.name, iteration: trainer.iteration, iterations, stats: last });
      // an iteration on synthetic or model rewards never waits for I/O: without this turn of the
      // event loop, SIGINT/SIGTERM (whose handler releases the run lock) would wait for the whole run
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!bar && !opts.onProgress && (trainer.iteration % every === 0 || trainer.iteration === iterations)) {
        log(`${v.name} ${trainer.iteration}/${iterations}: return ${last.meanEpisodeReturn.toFixed(3)}, GFLOPS ${last.meanFinalGflops.toFixed(1)} `
          + `(best ${last.meanBestGflops.toFixed(1)}), ${last.stepsPerSecond.toFixed(0)} steps/s`);
      }
    }
  } finally {
    bar?.stop();
    await evaluator.close?.();
  }
  let policyDir: string | undefined;
  if (trainer.iteration >= iterations) {
    policyDir = path.join(v.dir, 'policy');
    await saveFinalPolicy(policy, policyDir, meta({ elapsedSeconds: elapsed }));
  }
  const result: TrainedVariant = {
    name: v.name, dir: v.dir, iteration: trainer.iteration, globalStep: trainer.globalStep,
    checkpoint: latestCheckpoint(ckDir),
    ...(resumedFrom !== undefined ? { resumedFrom } : {}),
    ...(policyDir ? { policyDir } : {}),
    ...(last ? { last } : {}),
    ...(spsList.length ? { stepsPerSecond: spsList.reduce((a, b) => a + b, 0) / spsList.length } : {}),
  };
  trainer.dispose();
  policy.dispose();
  return result;
}

// ---------------------------------------------------------------------------------------- eval

/** `dir` when its policy files are complete; else one line saying what is damaged. */
function intactPolicy(dir: string): string {
  const isCheckpoint = existsSync(path.join(dir, 'state.json'));
  const damage = isCheckpoint ? checkpointDamage(dir) : folderDamage(dir);
  if (damage) fail(`${isCheckpoint ? 'checkpoint' : 'policy'} ${dir} is damaged: ${damage}`);
  return dir;
}

/** The newest complete checkpoint of a checkpoints folder, or one line when there is none. */
function newestIntact(ckDir: string, what: string): string | null {
  const { checkpoint, damaged } = findCheckpoint(ckDir);
  if (!checkpoint && damaged.length > 0) fail(`${what}: no complete checkpoint in ${ckDir} (${damaged.map((d) => `${d.name}: ${d.reason}`).join('; ')})`);
  return checkpoint;
}

/**
 * Where a variant's policy is: an explicit checkpoint/policy folder, else policy/, else the newest
 * complete checkpoint. A damaged policy or checkpoint is one line, never a silent substitute.
 */
export function policyLocation(v: ResolvedVariant, checkpoint?: string): string {
  if (checkpoint) {
    if (existsSync(path.join(checkpoint, 'model.json'))) return intactPolicy(checkpoint);
    const inner = newestIntact(checkpoint, `--checkpoint ${checkpoint}`);
    if (inner) return inner;
    fail(`no policy at ${checkpoint} (expected a folder with model.json, or a checkpoints folder)`);
  }
  const final = path.join(v.dir, 'policy');
  if (existsSync(path.join(final, 'model.json'))) return intactPolicy(final);
  const latest = newestIntact(path.join(v.dir, 'checkpoints'), `variant '${v.name}'`);
  if (latest) return latest;
  fail(`variant '${v.name}' has no trained policy in ${v.dir} (run train first)`);
}

/** loadPolicy with a damaged file as one line instead of a decoder's trace. */
function loadPolicyAt(dir: string): { policy: PolicyNetwork; metadata: Record<string, unknown> } {
  try {
    return loadPolicy(dir);
  } catch (e) {
    if (e instanceof LoopTuneError) throw e;
    fail(`cannot load policy ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export interface EvalProblem {
  spec: string;
  defaultGflops: number;
  /** the greedy rollout's final schedule (LoopTune's "one episode" inference). */
  greedyGflops: number;
  greedySchedule: string;
  /** the policy search's best within the evaluation budget. */
  bestGflops: number;
  schedule: string;
  fractionOfPeak: number;
  speedupOverDefault: number;
  measurements: number;
  seconds: number;
  history: HistoryPoint[];
}

export interface EvalSummary {
  problems: number;
  geomeanSpeedupOverDefault: number;
  geomeanGreedySpeedup: number;
  geomeanFractionOfPeak: number;
  meanSeconds: number;
}

export interface EvalResult {
  variant: string;
  policy: string;
  iteration: number | null;
  target: string;
  peakGflops: number;
  budget: Record<string, number | undefined>;
  problems: EvalProblem[];
  summary: EvalSummary;
}

export interface EvalOptions extends RunnerOptions {
  /** policy folder or checkpoints folder (default: the variant's final policy or newest checkpoint). */
  checkpoint?: string;
  variant?: string;
  /** at most this many test problems (default: evaluation.problems, else all). */
  problems?: number;
}

/**
 * The evaluation problems: the first `limit` (evaluation.problems) of the dataset's test split, then
 * every `mix` dataset's test split and `evaluation.extra_problems`, each problem once.
 */
export function testProblems(x: Experiment, limit?: number): Problem[] {
  const all = datasetSplit(x.spec.dataset.name, x.spec.dataset.test);
  const n = limit ?? x.spec.evaluation.problems;
  const out = [
    ...(n === undefined ? all : all.slice(0, n)),
    ...(x.spec.dataset.mix ?? []).flatMap((m) => datasetSplit(m.name, x.spec.dataset.test)),
    ...(x.spec.evaluation.extra_problems ?? []).map((spec) => parseProblem(spec)),
  ];
  return out.filter((p, i) => out.findIndex((q) => q.spec === p.spec) === i);
}

/** evaluation.costmodel's predictions at the file's threads (searches rank with it, as tune does). */
async function evaluationRanker(x: Experiment): Promise<PredictFunction | undefined> {
  const ref = x.spec.evaluation.costmodel;
  if (ref === undefined) return undefined;
  const cm = await import('../agent/costmodel/evaluator.ts');
  const target = resolveTarget(x.spec.target);
  return cm.costModelPredict(await cm.resolveCostModel(ref === 'default' ? `default:${target}` : ref), x.spec.threads);
}

/** The searchers of evaluation.policies (compare), loaded; `band` wraps one in the parallel band rule. */
function otherPolicySearchers(x: Experiment, loaded: PolicyNetwork[]): Searcher[] {
  return (x.spec.evaluation.policies ?? []).map((o) => {
    // a shipped folder's manifest.json is the export's, not a sealed folder's: the files are checked by loading them
    if (!existsSync(path.join(o.path, 'model.json'))) fail(`evaluation.policies: no policy at ${o.path} (expected model.json and weights.bin)`);
    const { policy, metadata } = loadPolicyAt(o.path);
    loaded.push(policy);
    const depth = x.spec.evaluation.depth ?? (typeof metadata.episodeSteps === 'number' ? metadata.episodeSteps : 10);
    const s = policySearcher(policy, { name: o.name, beamWidth: x.spec.evaluation.beam_width, depth });
    return o.band ? bandedSearcher(s, { name: o.name, threads: x.spec.threads }) : s;
  });
}

function evalBudget(x: Experiment) {
  const b = x.spec.evaluation.budget;
  return {
    ...(b.measurements !== undefined ? { measurements: b.measurements } : {}),
    ...(b.seconds !== undefined ? { seconds: b.seconds } : {}),
    ...(b.steps !== undefined ? { steps: b.steps } : {}),
  };
}

export async function evalExperiment(file: string, opts: EvalOptions = {}): Promise<EvalResult[]> {
  const x = loadExperiment(file, opts.output);
  const log = opts.log ?? defaultLog;
  await initBackend();
  const variants = x.variants.filter((v) => !opts.variant || v.name === opts.variant);
  if (variants.length === 0) fail(`no variant '${opts.variant}' in ${file}`);
  const locations = variants.map((v) => policyLocation(v, opts.checkpoint));
  const problems = testProblems(x, opts.problems);
  return withFsErrors(async () => {
    openRunFolder(x.output, file);
    const evaluator = await measuringEvaluator(x);
    const budget = evalBudget(x);
    const predict = await evaluationRanker(x);
    const results: EvalResult[] = [];
    try {
      for (const [vi, v] of variants.entries()) {
        const where = locations[vi]!;
        const { policy, metadata } = loadPolicyAt(where);
        const depth = x.spec.evaluation.depth ?? v.env.episode_steps;
        const searcher = policySearcher(policy, { beamWidth: x.spec.evaluation.beam_width, depth });
        const rows: EvalProblem[] = [];
        for (const [i, problem] of problems.entries()) {
          const greedy = greedyRollout(policy, Schedule.initial(problem), depth);
          const greedyFinal = greedy[greedy.length - 1]!;
          const greedyGflops = (await evaluator.evaluate(greedyFinal)).gflops;
          // a large problem's default kernel would take seconds to time: with a cost model it is predicted (as tune does)
          const skipDefault = predict !== undefined && measuresKernels(evaluator) && flops(problem) > DEFAULT_TIMED_MAX_FLOPS;
          const r = await searcher.search(problem, { evaluator, budget, seed: x.spec.seed, ...(predict ? { predict, skipDefault } : {}) });
          rows.push({
            spec: problem.spec, defaultGflops: r.defaultGflops, greedyGflops, greedySchedule: greedyFinal.text(),
            bestGflops: r.best.gflops, schedule: r.best.schedule.text(), fractionOfPeak: r.best.gflops / evaluator.peakGflops,
            speedupOverDefault: r.defaultGflops > 0 ? r.best.gflops / r.defaultGflops : 0,
            measurements: r.measurements, seconds: r.seconds, history: r.history,
          });
          log(`${v.name} [${i + 1}/${problems.length}] ${problem.spec}: default ${r.defaultGflops.toFixed(1)}, greedy ${greedyGflops.toFixed(1)}, `
            + `best ${r.best.gflops.toFixed(1)} GFLOPS (${(100 * r.best.gflops / evaluator.peakGflops).toFixed(1)}% of peak, ${r.measurements} measurements)`);
        }
        const summary: EvalSummary = {
          problems: rows.length,
          geomeanSpeedupOverDefault: geomean(rows.map((r) => r.speedupOverDefault)),
          geomeanGreedySpeedup: geomean(rows.map((r) => (r.defaultGflops > 0 ? r.greedyGflops / r.defaultGflops : 0))),
          geomeanFractionOfPeak: geomean(rows.map((r) => r.fractionOfPeak)),
          meanSeconds: rows.reduce((a, r) => a + r.seconds, 0) / Math.max(1, rows.length),
        };
        const result: EvalResult = {
          variant: v.name, policy: where, iteration: typeof metadata.iteration === 'number' ? metadata.iteration : null,
          target: evaluator.target, peakGflops: evaluator.peakGflops, budget, problems: rows, summary,
        };
        writeFileSync(path.join(v.dir, 'eval.json'), JSON.stringify(result, null, 2) + '\n');
        log(`${v.name}: geomean ${summary.geomeanSpeedupOverDefault.toFixed(2)}x over default (greedy rollout ${summary.geomeanGreedySpeedup.toFixed(2)}x), `
          + `${(100 * summary.geomeanFractionOfPeak).toFixed(1)}% of peak on ${rows.length} test problems`);
        results.push(result);
        policy.dispose();
      }
    } finally {
      await evaluator.close?.();
    }
    return results;
  });
}

// ---------------------------------------------------------------------------------------- compare

export interface CompareOptions extends RunnerOptions {
  checkpoint?: string;
  problems?: number;
}

export interface CompareResult {
  data: CompareData;
  html: string;
  json: string;
}

/** Learning curves of every variant from its metrics.jsonl, as inline SVG. */
export function learningCurvesHtml(x: Experiment): string {
  const curves = x.variants.map((v) => ({ v, m: readMetrics(path.join(v.dir, 'metrics.jsonl')) })).filter((c) => c.m.length > 0);
  if (curves.length === 0) return '<h2>Training</h2><p>No metrics.jsonl yet.</p>';
  const series = (key: string): Series[] => curves.map(({ v, m }) => ({
    name: v.name, step: false,
    points: m.map((r) => [Number(r.globalStep), Number(r[key])] as const).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b)),
  }));
  const plot = (key: string, title: string, yLabel: string) => linePlot(series(key), { title, xLabel: 'env steps', yLabel, width: 540 });
  return `<h2>Training</h2>
${plot('meanEpisodeReturn', 'mean episode return', 'return')}
${plot('meanBestGflops', 'mean best GFLOPS per episode', 'GFLOPS')}
${plot('meanFinalGflops', 'mean final GFLOPS per episode', 'GFLOPS')}
${plot('entropy', 'policy entropy', 'nats')}`;
}

export async function compareExperiment(file: string, opts: CompareOptions = {}): Promise<CompareResult> {
  const x = loadExperiment(file, opts.output);
  const log = opts.log ?? defaultLog;
  await initBackend();
  const locations = x.variants.map((v) => policyLocation(v, opts.checkpoint));
  return withFsErrors(async () => {
    openRunFolder(x.output, file);
    const evaluator = await measuringEvaluator(x);
    const policies: PolicyNetwork[] = [];
    try {
      const predict = await evaluationRanker(x);
      const own = x.variants.map((v, vi) => {
        const { policy } = loadPolicyAt(locations[vi]!);
        policies.push(policy);
        return policySearcher(policy, {
          name: v.name === 'ppo' ? 'ppo' : `ppo-${v.name}`,
          beamWidth: x.spec.evaluation.beam_width, depth: x.spec.evaluation.depth ?? v.env.episode_steps,
        });
      });
      const searchers = [...own, ...otherPolicySearchers(x, policies)];
      const problems = testProblems(x, opts.problems);
      let lastProblem = -1;
      const r = await runCompare(problems, {
        searchers: [...searchers, ...x.spec.evaluation.baselines],
        budget: evalBudget(x), evaluator, seed: x.spec.seed, ...(predict ? { predict } : {}),
        compareBaseline: x.spec.evaluation.openblas && findBackend(evaluator.target)?.timing !== 'model',
        minSeconds: x.spec.evaluation.min_seconds,
        title: `${x.spec.name}: PPO vs search baselines on ${x.spec.dataset.name}:${x.spec.dataset.test}`,
        onProgress: (p) => {
          if (p.problemIndex !== lastProblem) {
            lastProblem = p.problemIndex;
            log(`compare [${p.problemIndex + 1}/${p.problemCount}] ${p.problem}`);
          }
        },
      });
      const dir = path.join(x.output, 'compare');
      mkdirSync(dir, { recursive: true });
      const html = path.join(dir, 'report.html');
      const json = path.join(dir, 'report.json');
      writeFileSync(json, JSON.stringify(r.data, null, 2) + '\n');
      const overTime = linePlot(r.data.searchers.map((name) => ({ name, points: aggregateCurve(r.data.problems, name, r.data.peakGflops, 't') })), {
        title: 'geomean over problems of best / peak, over wall time', xLabel: 'seconds', yLabel: 'fraction of peak', width: 720,
      });
      const page = renderCompareHtml(r.data).replace('<h2>Summary</h2>', `${learningCurvesHtml(x)}\n<h2>Summary</h2>`)
        .replace('<h2>Per problem</h2>', `${overTime}\n<h2>Per problem</h2>`);
      writeFileSync(html, page);
      for (const s of r.data.summary) {
        log(`${s.searcher.padEnd(12)} geomean ${(100 * s.geomeanFractionOfPeak).toFixed(1)}% of peak, ${s.geomeanSpeedupOverDefault.toFixed(2)}x over default, wins ${s.wins}/${r.data.problems.length}`);
      }
      return { data: r.data, html, json };
    } finally {
      for (const p of policies) p.dispose();
      await evaluator.close?.();
    }
  });
}

// ---------------------------------------------------------------------------------------- export

export interface ExportOptions extends RunnerOptions {
  variant?: string;
  checkpoint?: string;
  /** destination folder (default agent/pretrained/<target>). */
  to?: string;
}

/**
 * Copies a trained policy into a shipped-policy folder with manifest.json: experiment file,
 * dataset, commit, training steps and the test-split metrics of eval.json (run `eval` first).
 */
export async function exportPolicy(file: string, opts: ExportOptions = {}): Promise<{ dir: string; manifest: Record<string, unknown> }> {
  const x = loadExperiment(file, opts.output);
  const v = x.variants.find((w) => !opts.variant || w.name === opts.variant);
  if (!v) fail(`no variant '${opts.variant}' in ${file}`);
  const target = resolveTarget(x.spec.target);
  const from = policyLocation(v, opts.checkpoint);
  return withFsErrors(async () => {
    const dir = opts.to ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'agent', 'pretrained', target);
    mkdirSync(dir, { recursive: true });
    copyFileSync(path.join(from, 'model.json'), path.join(dir, 'model.json'));
    copyFileSync(path.join(from, 'weights.bin'), path.join(dir, 'weights.bin'));
    const metrics = readMetrics(path.join(v.dir, 'metrics.jsonl'));
    const lastMetrics = metrics[metrics.length - 1];
    const evalFile = path.join(v.dir, 'eval.json');
    const evaluation = existsSync(evalFile) ? (JSON.parse(readFileSync(evalFile, 'utf8')) as EvalResult) : undefined;
    const { metadata } = loadPolicyMetadata(from);
    // the settings the run was trained with (the file may have changed since)
    const runFile = path.join(v.dir, 'experiment.json');
    const trained = existsSync(runFile) ? (JSON.parse(readFileSync(runFile, 'utf8')) as { variant?: ResolvedVariant }).variant : undefined;
    const manifest: Record<string, unknown> = {
      format: 'looptune-pretrained-policy',
      target,
      experiment: path.relative(process.cwd(), path.resolve(file)),
      experimentName: x.spec.name,
      variant: v.name,
      dataset: { name: x.spec.dataset.name, train: x.spec.dataset.train, test: x.spec.dataset.test },
      commit: metadata.commit ?? gitCommit(),
      trainedOn: hostIsa().model,
      exportedAt: new Date().toISOString(),
      network: trained?.network ?? v.network,
      actions: trained?.env.actions ?? v.env.actions,
      episodeSteps: trained?.env.episode_steps ?? v.env.episode_steps,
      maxLoops: trained?.env.max_loops ?? v.env.max_loops,
      rewardSource: trained?.reward.source ?? v.reward.source,
      // the thread count its rewards were figures at; its observation's form (parallel flags with the parallel action)
      threads: x.spec.threads,
      parallelFlags: observesParallel(trained?.env.actions ?? v.env.actions),
      ppo: trained?.ppo ?? v.ppo,
      iterations: metadata.iteration ?? null,
      trainingSteps: metadata.globalStep ?? (lastMetrics?.globalStep ?? null),
      trainingSeconds: metadata.elapsedSeconds ?? (lastMetrics?.elapsedSeconds ?? null),
      ...(evaluation ? {
        testSplit: {
          problems: evaluation.summary.problems, budget: evaluation.budget, peakGflops: evaluation.peakGflops,
          geomeanSpeedupOverDefault: evaluation.summary.geomeanSpeedupOverDefault,
          geomeanGreedySpeedup: evaluation.summary.geomeanGreedySpeedup,
          geomeanFractionOfPeak: evaluation.summary.geomeanFractionOfPeak,
          policyIteration: evaluation.iteration,
        },
      } : { testSplit: null }),
    };
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    (opts.log ?? defaultLog)(`exported ${from} -> ${dir}`);
    return { dir, manifest };
  });
}

function loadPolicyMetadata(dir: string): { metadata: Record<string, unknown> } {
  const model = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as { userDefinedMetadata?: Record<string, unknown> };
  return { metadata: model.userDefinedMetadata ?? {} };
}

