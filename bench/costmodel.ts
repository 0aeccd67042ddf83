/**
 * The learned cost model's record campaign, training, evaluation and experiments (issue 5).
 *
 *   npx tsx bench/costmodel.ts ship --target avx512 --fresh        (the whole pipeline, see `ship` below:
 *        records for train and test splits, training, held-out evaluation, throughput; on a QUIET machine)
 *   npx tsx bench/costmodel.ts records  --target avx512 --split train --dataset mm64-256,resnet18-conv2d \
 *        --problems 120 --schedules 40 --out agent/pretrained/avx512/records.jsonl
 *   npx tsx bench/costmodel.ts records  --target avx512 --threads 2 --split train --dataset mm64-256 \
 *        --problems 40 --schedules 30 --out agent/pretrained/avx512/records-threads2.jsonl
 *   npx tsx bench/costmodel.ts train    --target avx512 --records agent/pretrained/avx512/records.jsonl \
 *        --out agent/pretrained/avx512/costmodel [--validation held-out.jsonl] [--epochs 60] [--init default]
 *   npx tsx bench/costmodel.ts eval     --model default|<dir> --records held-out.jsonl [--json out.json]
 *   npx tsx bench/costmodel.ts compare-models --target avx512 --records train.jsonl --validation test.jsonl
 *   npx tsx bench/costmodel.ts transfer --target avx512 --records train.jsonl --source-ops matmul,bmm \
 *        --transfer-ops conv2d,conv3d --validation test.jsonl      (or --transfer other.jsonl)
 *   npx tsx bench/costmodel.ts throughput [--model default|<dir>] [--batch 4096]
 *   npx tsx bench/costmodel.ts compare-evolution --target avx512 --dataset mm64-256:test --problems 10 --budget 200 --seeds 3
 *
 * `records`: for each chosen problem of the split (problems spread over the split by a seeded
 * shuffle; those above --max-mflop skipped), measures --schedules distinct schedules: the default,
 * random walks of LoopTune's actions from it (the bad-to-average part), a few register-blocked
 * schedules (BLIS-style for matmuls, vectorSeeds for the others), then rounds of mutations
 * (re-tiling, loop moves, splits/merges, short walks) of the best measured so far (the good part). Measurements go through MeasuredEvaluator (worker
 * process, one at a time, --min-seconds per timing) and are appended to --out as tuning records; a
 * re-run skips problems that already have enough records (resumable). Run on a quiet machine.
 * `--threads T` (T > 1) opens the device on T threads (records carry the host key `<host> threads=T`)
 * and turns every schedule it would measure into one of three (threadVariant): serial, Ansor's outer
 * band (parallelizeOuter) or a random legal band, so the cost model sees all three at T threads.
 *
 * Results (JSON) go to bench/results/costmodel-*.json unless --json says otherwise.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng, randomBand } from '../ir/random.ts';
import { parallelizeOuter } from '../ir/parallelize.ts';
import { Schedule } from '../ir/schedule.ts';
import { flops, isReduction, tensorStrides, type Problem } from '../ir/problem.ts';
import type { Loop } from '../ir/schedule.ts';
import { vectorVariable } from '../loopnest/lower.ts';
import { split as datasetSplit, type SplitName, resolveProblems } from '../env/datasets.ts';
import type { MeasuredEvaluator, NativeTargetName } from '../env/evaluator.ts';
import { evaluatorFor } from '../env/evaluator-for.ts';
import { RecordStore } from '../env/records.ts';
import { LOOPTUNE_ACTIONS, DEFAULT_MAX_LOOPS } from '../ir/actions.ts';
import { mutateOrder, mutateSplitMerge, mutateTiles, randomWalk, sampleSchedule } from '../agent/search/moves.ts';
import { gemmCandidates } from './gemm-candidates.ts';
import { hostIsa } from '../targets/runtime/host.ts';
import { evolutionSearch } from '../agent/search/evolution.ts';
import type { SearchResult } from '../agent/searcher.ts';
import { CostModel, type Arch, type FeatureSet, type RankLoss } from '../agent/costmodel/model.ts';
import { groupRecords, readRecordFiles, threadsOfHost, type RecordGroup } from '../agent/costmodel/data.ts';
import { featurize } from '../agent/costmodel/features.ts';
import { trainCostModel, evalCostModel } from '../agent/costmodel/cli.ts';
import { costModelPredict, FeedbackEvaluator } from '../agent/costmodel/evaluator.ts';
import { initBackend } from '../agent/backend.ts';

type Args = Record<string, string | true>;

function parseArgs(argv: string[]): { cmd: string; args: Args } {
  const [cmd = 'help', ...rest] = argv;
  const args: Args = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const next = rest[i + 1];
    if (next === undefined || next.startsWith('--')) args[a.slice(2)] = true;
    else {
      args[a.slice(2)] = next;
      i++;
    }
  }
  return { cmd, args };
}

const str = (a: Args, k: string, d?: string): string => {
  const v = a[k];
  if (typeof v === 'string') return v;
  if (d === undefined) throw new Error(`--${k} is required`);
  return d;
};
const num = (a: Args, k: string, d: number): number => {
  const v = a[k];
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${k} must be a number, got ${String(v)}`);
  return n;
};
const list = (a: Args, k: string, d?: string): string[] => str(a, k, d).split(',').map((s) => s.trim()).filter(Boolean);

function writeJson(file: string, data: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  console.error(`wrote ${file}`);
}

const log = (s: string) => process.stderr.write(`${s}\n`);

// ---- records ------------------------------------------------------------------------------------

export interface RecordCampaignOptions {
  target: NativeTargetName;
  datasets: string[];
  split: SplitName;
  /** problems per dataset (at most the split's size). */
  problems: number;
  schedules: number;
  out: string;
  minSeconds: number;
  maxMflop: number;
  seed: number;
  /** threads the device runs kernels on (default 1); above 1 the schedules get bands (threadVariant). */
  threads?: number;
}

/** Problems of a dataset split: a seeded shuffle, at most `count`, none above maxMflop. */
export function chooseProblems(dataset: string, which: SplitName, count: number, maxMflop: number, seed: number): Problem[] {
  const all = datasetSplit(dataset, which).filter((p) => flops(p) <= maxMflop * 1e6);
  const rng = new Rng(seed);
  const order = all.map((_, i) => i);
  for (let i = order.length - 1; i >= 1; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.slice(0, count).sort((a, b) => a - b).map((i) => all[i]!);
}

/**
 * Register-blocked seeds for any problem with a vectorizable output dimension (v): the largest other
 * output variable u split by mr and v by nr (a multiple of the lanes, or all of v when shorter), the
 * outer parts and the reductions above in a random order, the mr x nr tile innermost (so the
 * reductions join the register tile). The random walks from the default rarely vectorize a
 * convolution; these give the record set its good end (matmuls use gemmCandidates).
 */
export function vectorSeeds(p: Problem, lanes: number, rng: Rng, count: number): Schedule[] {
  const strides = tensorStrides(p);
  const v = vectorVariable(p, strides).var;
  if (v === null) return [];
  const outVars = p.vars.map((_, i) => i).filter((i) => i !== v && !isReduction(p, i));
  const redVars = p.vars.map((_, i) => i).filter((i) => isReduction(p, i));
  const u = outVars.length ? outVars.reduce((a, b) => (p.vars[b]!.extent > p.vars[a]!.extent ? b : a)) : null;
  const out: Schedule[] = [];
  const seen = new Set<string>();
  for (let t = 0; out.length < count && t < count * 10; t++) {
    const ev = p.vars[v]!.extent;
    const nr = ev <= lanes ? ev : Math.min(ev, lanes * rng.pick([1, 2, 4]));
    const loops: Loop[] = [];
    const tile: Loop[] = [];
    const splitInto = (x: number, f: number) => {
      const e = p.vars[x]!.extent;
      if (f >= e) {
        tile.push({ var: x, size: e, tail: 0 });
        return;
      }
      loops.push({ var: x, size: Math.floor(e / f), tail: e % f });
      tile.push({ var: x, size: f, tail: 0 });
    };
    const outer = outVars.filter((x) => x !== u).map((x): Loop => ({ var: x, size: p.vars[x]!.extent, tail: 0 }));
    if (u !== null) splitInto(u, Math.min(p.vars[u]!.extent, rng.pick([2, 3, 4, 6, 8])));
    splitInto(v, nr);
    const above = [...outer, ...loops];
    for (let i = above.length - 1; i >= 1; i--) {
      const j = rng.int(0, i);
      [above[i], above[j]] = [above[j]!, above[i]!];
    }
    const reds = redVars.map((x): Loop => ({ var: x, size: p.vars[x]!.extent, tail: 0 }));
    try {
      const s = new Schedule(p, [...above, ...reds, ...tile]);
      if (!seen.has(s.hash())) {
        seen.add(s.hash());
        out.push(s);
      }
    } catch {
      // a combination that does not cover the extents: skip
    }
  }
  return out;
}

/** `s` without its parallel band. */
export function serialOf(s: Schedule): Schedule {
  if (!s.loops.some((l) => l.parallel)) return s;
  return s.withLoops(s.loops.map(({ parallel: _, ...l }) => l), s.cursor);
}

/**
 * What the campaign measures of `s` on `threads` threads: about a quarter serial (a serial kernel
 * runs on one thread whatever the device has), 40% Ansor's outer band (the schedules searches
 * draw), the rest a random legal band (collapsed, inner, with tails: the bad bands too). At one
 * thread, `s` itself.
 */
export function threadVariant(s: Schedule, rng: Rng, threads: number): Schedule {
  if (threads <= 1) return s;
  const base = serialOf(s);
  const r = rng.next();
  if (r < 0.25) return base;
  if (r < 0.65) return parallelizeOuter(base, threads);
  return randomBand(base, rng);
}

/** Schedules to measure for one problem, generated in rounds (mutations need measured parents). */
async function measureProblem(
  p: Problem, want: number, ev: MeasuredEvaluator, rng: Rng, lanes: number, have: Map<string, { text: string; gflops: number }>, threads = 1,
): Promise<number> {
  const measured = new Map<string, { s: Schedule; g: number }>(); // this run's and earlier records
  const initial = Schedule.initial(p);
  for (const [hash, r] of have) {
    try {
      measured.set(hash, { s: Schedule.parse(p, r.text), g: r.gflops });
    } catch {
      // a record this version cannot read: measure anew
    }
  }
  let fresh = 0;
  const measure = async (candidate: Schedule): Promise<void> => {
    const s = threadVariant(candidate, rng, threads);
    if (measured.has(s.hash()) || measured.size >= want) return;
    const e = await ev.evaluate(s);
    measured.set(s.hash(), { s, g: e.gflops });
    fresh++;
  };
  await measure(initial);
  const walks = Math.round(want * 0.4);
  for (let t = 0; measured.size < walks && t < walks * 20; t++) await measure(sampleSchedule(initial, rng, LOOPTUNE_ACTIONS, DEFAULT_MAX_LOOPS));
  const cands = p.op === 'matmul' ? gemmCandidates(p, lanes) : vectorSeeds(p, lanes, rng, 3);
  for (let i = 0; i < Math.min(3, cands.length) && measured.size < want; i++) await measure(p.op === 'matmul' ? rng.pick(cands) : cands[i]!);
  const actions = [...LOOPTUNE_ACTIONS, 'merge'];
  for (let t = 0; measured.size < want && t < want * 40; t++) {
    const ranked = [...measured.values()].sort((a, b) => b.g - a.g);
    // mutations see serial parents (threadVariant gives the child its band)
    const parent = serialOf(ranked[Math.min(ranked.length - 1, Math.floor(rng.next() ** 2 * Math.min(8, ranked.length)))]?.s ?? initial);
    const r = rng.next();
    const child = r < 0.3 ? mutateTiles(parent, rng, DEFAULT_MAX_LOOPS)
      : r < 0.55 ? mutateOrder(parent, rng, DEFAULT_MAX_LOOPS)
        : r < 0.75 ? mutateSplitMerge(parent, rng, DEFAULT_MAX_LOOPS)
          : randomWalk(parent.withCursor(rng.int(0, parent.loops.length - 1)), rng, rng.int(1, 4), actions, DEFAULT_MAX_LOOPS);
    if (child) await measure(child);
  }
  return fresh;
}

export async function recordCampaign(o: RecordCampaignOptions): Promise<{ problems: number; measured: number; seconds: number; failed: number }> {
  const store = RecordStore.open(o.out);
  const threads = o.threads ?? 1;
  const ev = (await evaluatorFor(o.target, { records: store, minSeconds: o.minSeconds, timeoutSeconds: 10, threads })) as MeasuredEvaluator;
  const lanes = o.target === 'avx512' ? 16 : 8;
  const problems = o.datasets.flatMap((d) => chooseProblems(d, o.split, o.problems, o.maxMflop, o.seed));
  const t0 = performance.now();
  let measured = 0;
  try {
    for (const [i, p] of problems.entries()) {
      const have = new Map<string, { text: string; gflops: number }>();
      for (const r of store.records()) {
        if (r.problem === p.spec && r.target === o.target && threadsOfHost(r.host) === threads) have.set(r.hash, { text: r.schedule, gflops: r.gflops });
      }
      if (have.size >= o.schedules) continue;
      const rng = new Rng(o.seed * 7919 + i);
      const n = await measureProblem(p, o.schedules, ev, rng, lanes, have, threads);
      measured += n;
      const el = (performance.now() - t0) / 1000;
      const best = store.best(p.spec, o.target);
      log(`[${i + 1}/${problems.length}] ${p.spec}: +${n} (best ${best?.gflops.toFixed(1) ?? '-'} GFLOPS)  ${measured} measured in ${el.toFixed(0)} s, ${(el / Math.max(1, measured) * 1000).toFixed(0)} ms each`);
    }
  } finally {
    await ev.close();
  }
  return { problems: problems.length, measured, seconds: (performance.now() - t0) / 1000, failed: ev.stats.failed };
}

// ---- model comparison and transfer -------------------------------------------------------------

/** Groups of the record files for a target, optionally only problems of the given ops (first word of the spec). */
function groupsOf(files: string[], target: string, ops?: string[]): RecordGroup[] {
  const groups = groupRecords(readRecordFiles(files), { target }).groups;
  return ops ? groups.filter((g) => ops.includes(g.problem.split(' ')[0]!)) : groups;
}

/**
 * Trains each variant on `train` with `seeds` different seeds and evaluates on `test` (ranking
 * within problems): mean (and worst) over seeds; predictions per second on the test schedules,
 * features included.
 */
async function compareModels(target: string, train: RecordGroup[], test: RecordGroup[], epochs: number, variants: string[], seeds: number) {
  const rows = [];
  for (const v of variants) {
    const [featureSet, arch, loss] = v.split(':') as [FeatureSet, Arch, RankLoss | undefined];
    const runs: { spearman: number; pairwiseAccuracy: number; pairwiseAccuracy5: number; top10Recall: number; trainSeconds: number; perSecond: number }[] = [];
    for (let seed = 0; seed < seeds; seed++) {
      const m = await CostModel.create({ target, featureSet, arch, seed });
      const r = await m.fit(train, { epochs, seed: seed + 1, ...(loss ? { loss } : {}) });
      const e = m.evaluateGroups(test);
      const all = test.flatMap((g) => g.schedules);
      m.cache.clear();
      const t0 = performance.now();
      m.predict(all);
      runs.push({
        spearman: e.spearman, pairwiseAccuracy: e.pairwiseAccuracy, pairwiseAccuracy5: e.pairwiseAccuracy5, top10Recall: e.top10Recall,
        trainSeconds: r.seconds, perSecond: all.length / ((performance.now() - t0) / 1000),
      });
      m.dispose();
    }
    const mean = (k: keyof (typeof runs)[0]) => runs.reduce((a, r) => a + r[k], 0) / runs.length;
    const row = {
      variant: v, featureSet, arch, loss: loss ?? 'pairwise', epochs, seeds,
      spearman: mean('spearman'), spearmanMin: Math.min(...runs.map((r) => r.spearman)),
      pairwiseAccuracy: mean('pairwiseAccuracy'), pairwiseAccuracy5: mean('pairwiseAccuracy5'), top10Recall: mean('top10Recall'),
      trainSeconds: mean('trainSeconds'), predictionsPerSecond: mean('perSecond'),
      problems: test.length, records: test.reduce((a, g) => a + g.schedules.length, 0),
    };
    rows.push(row);
    log(`${v}: spearman ${row.spearman.toFixed(3)} (min ${row.spearmanMin.toFixed(3)}) pairwise ${row.pairwiseAccuracy.toFixed(3)} (>5% apart ${row.pairwiseAccuracy5.toFixed(3)}) top10 ${row.top10Recall.toFixed(2)}  train ${row.trainSeconds.toFixed(1)} s, ${row.predictionsPerSecond.toFixed(0)} predictions/s`);
  }
  return rows;
}

/**
 * Transfer: a model trained on `source` records, evaluated on `test` (a) as is, (b) after warm-start
 * fine-tuning on `transfer` records, against (c) a fresh model trained on `transfer` alone.
 */
async function transferExperiment(target: string, source: RecordGroup[], transfer: RecordGroup[], test: RecordGroup[], epochs: number) {
  const base = await CostModel.create({ target });
  await base.fit(source, { epochs });
  const zeroShot = base.evaluateGroups(test);
  const warm = await base.fit(transfer, { epochs: Math.max(5, Math.round(epochs / 3)), learningRate: 3e-4, keepNormalization: true });
  const warmEval = base.evaluateGroups(test);
  const fresh = await CostModel.create({ target });
  const freshReport = await fresh.fit(transfer, { epochs });
  const freshEval = fresh.evaluateGroups(test);
  base.dispose();
  fresh.dispose();
  const pick = (m: ReturnType<CostModel['evaluateGroups']>) => ({ spearman: m.spearman, pairwiseAccuracy: m.pairwiseAccuracy, top10Recall: m.top10Recall, problems: m.problems });
  return {
    zeroShot: pick(zeroShot),
    warmStart: { ...pick(warmEval), seconds: warm.seconds },
    fromScratch: { ...pick(freshEval), seconds: freshReport.seconds },
  };
}

// ---- throughput -----------------------------------------------------------------------------------

/**
 * Prediction throughput, features included, batched: on `batch` random-walk schedules of five
 * problems, or on the schedules of a record file (`recordFiles`: the measured mix, register-blocked
 * schedules with tails included), at most `batch` of them.
 */
async function throughput(modelRef: string | undefined, batch: number, target: string, recordFiles?: string[]) {
  const model = modelRef ? await CostModel.load(modelRef) : await CostModel.create({ target });
  const rng = new Rng(5);
  const specs = ['matmul 256x256x256', 'matmul 176x240x80', 'conv2d n1 c64 h58 w58 k64 r3 s3 stride1', 'matmul 384x2304x768', 'bmm b12 m128 n128 k64'];
  const schedules: Schedule[] = [];
  const fromRecords = recordFiles ? groupsOf(recordFiles, model.target).flatMap((g) => g.schedules) : [];
  if (fromRecords.length) batch = Math.min(batch, fromRecords.length); // distinct schedules only (the cache would answer repeats)
  for (let i = 0; i < batch; i++) {
    if (fromRecords.length) {
      schedules.push(fromRecords[i]!);
      continue;
    }
    const p = resolveProblems(specs[i % specs.length]!)[0]!;
    schedules.push(sampleSchedule(Schedule.initial(p), rng, LOOPTUNE_ACTIONS, DEFAULT_MAX_LOOPS));
  }
  // warm-up (JIT, wasm) on a part, then timed runs with a cold feature cache
  model.predict(schedules.slice(0, Math.min(512, batch)));
  const runs: { featuresPerSecond: number; schedulesPerSecond: number; cachedFeaturesPerSecond: number }[] = [];
  for (let r = 0; r < 3; r++) {
    model.cache.clear();
    let t0 = performance.now();
    featurize(schedules, model.featureContext);
    const featureSeconds = (performance.now() - t0) / 1000;
    model.cache.clear();
    t0 = performance.now();
    model.predict(schedules);
    const coldSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    model.predict(schedules);
    const warmSeconds = (performance.now() - t0) / 1000;
    runs.push({ featuresPerSecond: batch / featureSeconds, schedulesPerSecond: batch / coldSeconds, cachedFeaturesPerSecond: batch / warmSeconds });
  }
  model.dispose();
  const best = (k: keyof (typeof runs)[0]) => Math.max(...runs.map((r) => r[k]));
  return {
    batch, schedules: recordFiles ? `records: ${recordFiles.join(',')}` : `random walks on ${specs.join('; ')}`,
    backend: await initBackend(), host: hostIsa().model,
    featuresPerSecond: best('featuresPerSecond'),
    schedulesPerSecond: best('schedulesPerSecond'),
    schedulesPerSecondCachedFeatures: best('cachedFeaturesPerSecond'),
    runs,
  };
}

// ---- evolution with and without the cost model ------------------------------------------------------

interface EvolutionRun {
  variant: string;
  seed: number;
  budget: number;
  best: number;
  measurements: number;
  timed: number;
  /** measurements after which the run first reached 98% of the no-model run's best (null: never). */
  toReach: number | null;
  /** measurements after which it first reached 95% of the best any run found on the problem. */
  toReach95: number | null;
  history: { measurements: number; bestGflops: number }[];
}

function reached(r: SearchResult, gflops: number): number | null {
  for (const h of r.history) if (h.bestGflops >= gflops) return h.measurements;
  return null;
}

/**
 * On each problem: evolution with a budget B of measurements and no model, then with the cost model
 * ranking its candidates (static, and fine-tuned on the search's own measurements) under B/2.
 * One shared record cache: a schedule measured by one run costs the next nothing in time and gives
 * it the same figure (each run is still charged its distinct schedules), so runs are compared on
 * identical measurements. Reported per problem: best GFLOPS of each, and the measurements each
 * needed to reach 98% of the no-model run's best.
 */
async function compareEvolution(o: { model: string; problems: Problem[]; budget: number; seeds: number; target: NativeTargetName; minSeconds: number; recordsPath: string | null }) {
  const base = await CostModel.load(o.model);
  const store = RecordStore.open(o.recordsPath);
  const ev = (await evaluatorFor(o.target, { records: store, minSeconds: o.minSeconds })) as MeasuredEvaluator;
  const rows = [];
  const t0 = performance.now();
  try {
    for (const p of o.problems) {
      const runs: EvolutionRun[] = [];
      for (let seed = 1; seed <= o.seeds; seed++) {
        const plain = await evolutionSearch().search(p, { evaluator: ev, budget: { measurements: o.budget }, seed });
        const half = Math.max(8, Math.floor(o.budget / 2));
        const withModel = await evolutionSearch().search(p, { evaluator: ev, budget: { measurements: half }, seed, predict: costModelPredict(base) });
        // the online variant fine-tunes a copy (the base model stays as shipped for the next problem)
        const online = await CostModel.load(o.model);
        const feedback = new FeedbackEvaluator({ model: online, measured: ev, updateEvery: 16 });
        const withOnline = await evolutionSearch().search(p, { evaluator: feedback, budget: { measurements: half }, seed, predict: costModelPredict(online) });
        online.dispose();
        const goal = plain.best.gflops * 0.98;
        for (const [variant, r, budget] of [['evolution', plain, o.budget], ['evolution+costmodel', withModel, half], ['evolution+costmodel-online', withOnline, half]] as const) {
          runs.push({
            variant, seed, budget, best: r.best.gflops, measurements: r.measurements, timed: r.timed, toReach: reached(r, goal), toReach95: null,
            history: r.history.map((h) => ({ measurements: h.measurements, bestGflops: h.bestGflops })),
          });
        }
        log(`${p.spec} seed ${seed}: no model ${plain.best.gflops.toFixed(1)} @${o.budget} (98% at ${reached(plain, goal)}), model ${withModel.best.gflops.toFixed(1)} @${half} (${reached(withModel, goal) ?? '-'}), online ${withOnline.best.gflops.toFixed(1)} (${reached(withOnline, goal) ?? '-'})  [${((performance.now() - t0) / 1000).toFixed(0)} s]`);
      }
      const bestAll = Math.max(...runs.map((r) => r.best));
      for (const r of runs) r.toReach95 = r.history.find((h) => h.bestGflops >= 0.95 * bestAll)?.measurements ?? null;
      rows.push({ problem: p.spec, bestGflops: bestAll, runs });
    }
  } finally {
    await ev.close();
    base.dispose();
  }
  const summary: Record<string, { meanBestRatio: number; reachedFraction: number; medianToReach: number | null; reached95Fraction: number; medianToReach95: number | null }> = {};
  const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1]! : null);
  for (const variant of ['evolution', 'evolution+costmodel', 'evolution+costmodel-online']) {
    const ratios: number[] = [], reach: number[] = [], reach95: number[] = [];
    let total = 0;
    for (const row of rows) {
      for (const r of row.runs.filter((x) => x.variant === variant)) {
        const plain = row.runs.find((x) => x.variant === 'evolution' && x.seed === r.seed)!;
        ratios.push(r.best / plain.best);
        total++;
        if (r.toReach !== null) reach.push(r.toReach);
        if (r.toReach95 !== null) reach95.push(r.toReach95);
      }
    }
    summary[variant] = {
      meanBestRatio: ratios.reduce((a, b) => a + b, 0) / Math.max(1, ratios.length),
      reachedFraction: reach.length / Math.max(1, total),
      medianToReach: median(reach),
      reached95Fraction: reach95.length / Math.max(1, total),
      medianToReach95: median(reach95),
    };
  }
  return { budget: o.budget, seeds: o.seeds, target: o.target, model: o.model, host: hostIsa().model, seconds: (performance.now() - t0) / 1000, summary, problems: rows };
}

/** A Markdown table: per problem (mean over seeds), best GFLOPS of each variant and measurements to 98% of the no-model best. */
function evolutionTable(rows: { problem: string; runs: EvolutionRun[] }[]): string {
  const variants = ['evolution', 'evolution+costmodel', 'evolution+costmodel-online'];
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const lines = [
    '| problem | no model: best @B | to 98% | cost model: best @B/2 | to 98% | online model: best @B/2 | to 98% |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    const cells = variants.map((v) => {
      const rs = row.runs.filter((r) => r.variant === v);
      const reach = rs.map((r) => r.toReach);
      const got = reach.filter((x): x is number => x !== null);
      return `${mean(rs.map((r) => r.best)).toFixed(1)} | ${got.length ? mean(got).toFixed(0) : '-'}${got.length < reach.length ? ` (${got.length}/${reach.length})` : ''}`;
    });
    lines.push(`| ${row.problem} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

// ---- the whole shipped-model pipeline ------------------------------------------------------------------

export const SHIP_OTHER_DATASETS = ['resnet18-conv2d', 'conv3d-small', 'bert-gemm', 'tall-skinny'];

/**
 * Record campaign (train and test splits), training, held-out evaluation and throughput for one
 * target; writes the shipped records and model, the held-out records and bench/results/costmodel-<target>.json.
 */
async function ship(o: { target: NativeTargetName; mmProblems: number; otherProblems: number; testProblems: number; schedules: number; epochs: number; fresh: boolean; minSeconds: number; seed: number; dir?: string }) {
  // --dir puts every file under one folder instead (a trial run that leaves the shipped files alone)
  const at = (p: string) => (o.dir ? path.join(o.dir, path.basename(p)) : p);
  const trainFile = at(`agent/pretrained/${o.target}/records.jsonl`);
  const testFile = at(`bench/results/costmodel-heldout-${o.target}.jsonl`);
  const modelDir = at(`agent/pretrained/${o.target}/costmodel`);
  const resultFile = at(`bench/results/costmodel-${o.target}.json`);
  // the 2-thread records (`records --threads 2`, see the header), kept by --fresh and learned from when present
  const { existsSync } = await import('node:fs');
  const threadFiles = [at(`agent/pretrained/${o.target}/records-threads2.jsonl`)].filter((f) => existsSync(f));
  const threadTestFiles = [at(`bench/results/costmodel-heldout-${o.target}-threads2.jsonl`)].filter((f) => existsSync(f));
  if (o.fresh) {
    const { rmSync } = await import('node:fs');
    rmSync(trainFile, { force: true });
    rmSync(testFile, { force: true });
  }
  const common = { target: o.target, schedules: o.schedules, minSeconds: o.minSeconds, maxMflop: 300, seed: o.seed };
  const t0 = performance.now();
  const campaign = [
    await recordCampaign({ ...common, datasets: ['mm64-256'], split: 'train', problems: o.mmProblems, out: trainFile }),
    await recordCampaign({ ...common, datasets: SHIP_OTHER_DATASETS, split: 'train', problems: o.otherProblems, out: trainFile }),
    await recordCampaign({ ...common, datasets: ['mm64-256'], split: 'test', problems: o.testProblems, out: testFile }),
    await recordCampaign({ ...common, datasets: SHIP_OTHER_DATASETS, split: 'test', problems: o.otherProblems, out: testFile }),
  ];
  const campaignSeconds = (performance.now() - t0) / 1000;
  const trained = await trainCostModel([trainFile, ...threadFiles], {
    out: modelDir, target: o.target, epochs: o.epochs, validation: [testFile, ...threadTestFiles],
    onProgress: (p) => p.validation && log(`epoch ${p.epoch}/${p.epochs} loss ${p.loss.toFixed(4)} held-out spearman ${p.validation.spearman.toFixed(3)} pairwise ${p.validation.pairwiseAccuracy.toFixed(3)} top10 ${p.validation.top10Recall.toFixed(2)}`),
  });
  const heldOut = await evalCostModel(modelDir, [testFile, ...threadTestFiles]);
  const speed = await throughput(modelDir, 4096, o.target, [testFile, trainFile]);
  const result = {
    target: o.target, host: hostIsa().model, createdAt: new Date().toISOString(),
    campaign: { seconds: campaignSeconds, runs: campaign, trainFile, testFile, schedulesPerProblem: o.schedules },
    training: trained.meta.training, data: trained.data,
    heldOut,
    throughput: { schedulesPerSecond: speed.schedulesPerSecond, featuresPerSecond: speed.featuresPerSecond, batch: speed.batch, backend: speed.backend },
  };
  writeJson(resultFile, result);
  const { perProblem: _, ...summary } = heldOut;
  return { ...summary, trainSeconds: trained.report.seconds, campaignSeconds, schedulesPerSecond: speed.schedulesPerSecond };
}

// ---- main ----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { cmd, args } = parseArgs(process.argv.slice(2));
  switch (cmd) {
    case 'records': {
      const r = await recordCampaign({
        target: str(args, 'target', 'avx512') as NativeTargetName,
        datasets: list(args, 'dataset', 'mm64-256'),
        split: str(args, 'split', 'train') as SplitName,
        problems: num(args, 'problems', 20),
        schedules: num(args, 'schedules', 20),
        out: str(args, 'out'),
        minSeconds: num(args, 'min-seconds', 0.01),
        maxMflop: num(args, 'max-mflop', 300),
        seed: num(args, 'seed', 1),
        threads: num(args, 'threads', 1),
      });
      console.log(JSON.stringify(r));
      return;
    }
    case 'ship': {
      const r = await ship({
        target: str(args, 'target', 'avx512') as NativeTargetName,
        mmProblems: num(args, 'problems', 150), otherProblems: num(args, 'other-problems', 10), testProblems: num(args, 'test-problems', 40),
        schedules: num(args, 'schedules', 40), epochs: num(args, 'epochs', 60), fresh: args.fresh === true,
        minSeconds: num(args, 'min-seconds', 0.01), seed: num(args, 'seed', 1),
        ...(typeof args.dir === 'string' ? { dir: args.dir } : {}),
      });
      console.log(JSON.stringify(r, null, 2));
      return;
    }
    case 'train': {
      const target = str(args, 'target', 'avx512');
      const validation = typeof args.validation === 'string' ? list(args, 'validation') : undefined;
      const r = await trainCostModel(list(args, 'records'), {
        out: str(args, 'out'), target,
        ...(args.epochs !== undefined ? { epochs: num(args, 'epochs', 60) } : {}),
        ...(typeof args.init === 'string' ? { init: args.init } : {}),
        ...(typeof args.arch === 'string' ? { arch: args.arch as Arch } : {}),
        ...(typeof args.features === 'string' ? { featureSet: args.features as FeatureSet } : {}),
        ...(typeof args.loss === 'string' ? { loss: args.loss as RankLoss } : {}),
        ...(args.seed !== undefined ? { seed: num(args, 'seed', 0) } : {}),
        ...(validation ? { validation } : {}),
        onProgress: (p) => {
          if (p.epoch % 10 === 0 || p.epoch === p.epochs || p.validation) {
            log(`epoch ${p.epoch}/${p.epochs} loss ${p.loss.toFixed(4)} ${p.seconds.toFixed(1)} s${p.validation ? `  held-out spearman ${p.validation.spearman.toFixed(3)} pairwise ${p.validation.pairwiseAccuracy.toFixed(3)} top10 ${p.validation.top10Recall.toFixed(2)}` : ''}`);
          }
        },
      });
      const { perProblem: _, ...validationSummary } = r.validation ?? { perProblem: [] };
      const out = { out: r.out, report: { ...r.report, validation: undefined }, data: r.data, training: r.meta.training, validation: r.validation ? validationSummary : undefined };
      console.log(JSON.stringify(out, null, 2));
      if (typeof args.json === 'string') writeJson(args.json, out);
      return;
    }
    case 'eval': {
      const r = await evalCostModel(str(args, 'model', 'default'), list(args, 'records'));
      const { perProblem, ...summary } = r;
      console.log(JSON.stringify(summary, null, 2));
      if (typeof args.json === 'string') writeJson(args.json, r);
      void perProblem;
      return;
    }
    case 'compare-models': {
      const target = str(args, 'target', 'avx512');
      const epochs = num(args, 'epochs', 60);
      const variants = list(args, 'variants', 'program:mlp,program:linear,looptune:mlp,program:mlp:listwise');
      const rows = await compareModels(target, groupsOf(list(args, 'records'), target), groupsOf(list(args, 'validation'), target), epochs, variants, num(args, 'seeds', 3));
      const out = { target, host: hostIsa().model, train: list(args, 'records'), test: list(args, 'validation'), rows };
      writeJson(str(args, 'json', `bench/results/costmodel-models-${target}.json`), out);
      return;
    }
    case 'transfer': {
      // e.g. --records train.jsonl --source-ops matmul,bmm --transfer-ops conv2d,conv3d --validation test.jsonl
      const target = str(args, 'target', 'avx512');
      const sourceOps = typeof args['source-ops'] === 'string' ? list(args, 'source-ops') : undefined;
      const transferOps = typeof args['transfer-ops'] === 'string' ? list(args, 'transfer-ops') : undefined;
      const transferFiles = typeof args.transfer === 'string' ? list(args, 'transfer') : list(args, 'records');
      const r = await transferExperiment(target, groupsOf(list(args, 'records'), target, sourceOps), groupsOf(transferFiles, target, transferOps),
        groupsOf(list(args, 'validation'), target, transferOps), num(args, 'epochs', 60));
      console.log(JSON.stringify(r, null, 2));
      if (typeof args.json === 'string') writeJson(args.json, r);
      return;
    }
    case 'throughput': {
      const r = await throughput(typeof args.model === 'string' ? args.model : undefined, num(args, 'batch', 4096), str(args, 'target', 'avx512'),
        typeof args.records === 'string' ? list(args, 'records') : undefined);
      console.log(JSON.stringify(r, null, 2));
      if (typeof args.json === 'string') writeJson(args.json, r);
      return;
    }
    case 'compare-evolution': {
      const target = str(args, 'target', 'avx512') as NativeTargetName;
      // a dataset split ("mm64-256:test"): problems spread over it by the seeded shuffle; else a spec list ("matmul 64x64x64;...")
      // several refs separated by commas, each "name:split[:count]" (default count: --problems)
      const count = num(args, 'problems', 10);
      const problems = list(args, 'dataset', 'mm64-256:test').flatMap((ref) => {
        const m = /^([\w-]+):(train|test|all)(?::(\d+))?$/.exec(ref);
        return m
          ? chooseProblems(m[1]!, m[2] as SplitName, m[3] ? Number(m[3]) : count, num(args, 'max-mflop', 300), num(args, 'seed', 1))
          : resolveProblems(ref.split(';')).slice(0, count);
      });
      const r = await compareEvolution({
        model: str(args, 'model', `default:${target}`), problems, budget: num(args, 'budget', 200), seeds: num(args, 'seeds', 1), target,
        minSeconds: num(args, 'min-seconds', 0.01), recordsPath: typeof args.records === 'string' ? args.records : null,
      });
      console.log(evolutionTable(r.problems));
      console.log(JSON.stringify(r.summary, null, 2));
      writeJson(str(args, 'json', `bench/results/costmodel-evolution-${target}.json`), r);
      return;
    }
    case 'help':
    case '--help': {
      const { readFileSync } = await import('node:fs');
      const text = readFileSync(new URL(import.meta.url), 'utf8');
      console.log(text.slice(0, text.indexOf('*/')).replace(/^\/\*\*\n?/, '').replace(/^ \* ?/gm, ''));
      return;
    }
    default:
      throw new Error(`unknown command '${cmd}' (expected ship, records, train, eval, compare-models, transfer, throughput, compare-evolution)`);
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('bench/costmodel.ts')) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
