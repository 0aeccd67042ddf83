/**
 * The measurement farm (issue #19) against local measurement, on this machine's cores.
 *
 *  overhead  (always) one worker, one job at a time: the same random search (same seed, so the same
 *            schedules) measured locally and through the farm on a problem where a measurement takes
 *            about 10 ms (a small matmul sampled for 10 ms): measurements/s each way and the farm's
 *            overhead per job in milliseconds.
 *  scaling   (--workers 1,2,4,8) N worker processes of one thread each; --searches S evolution
 *            searches (default 2N; seeds 0..S-1) share one farm evaluator of concurrency max(N, S) for
 *            --seconds each. A search asks for a generation at once where its evaluator runs several
 *            measurements (agent/searcher.ts evaluateAll), so even one search (--searches 1) keeps up
 *            to its batch (8) of workers busy, with a barrier at each generation's end. Reports
 *            measurements/s, the efficiency against N x the one-worker rate, and the best GFLOPS
 *            over time (the best of the searches at each moment).
 * The JSON goes to bench/results/farm.json (--out). A redis-server is started on 127.0.0.1 (a free
 * port, a random password; --redis-server PATH names the binary) unless --redis URL names one.
 *
 *   npm run bench -- farm [--workers 1,2]                                  (here, in the tree)
 *   npx tsx bench/farm.ts --workers 1,2,4,8 --seconds 30 --out $OUT/farm.json
 *   node looptune-farm.mjs --workers 1,2,4,8 --redis-server ./redis-server  (a bundle of this file
 *            beside the CLI bundle looptune.mjs, on a machine without npm: workers start from it)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runSearch, type RunSearchResult } from '../agent/search/run.ts';
import { evaluatorFor } from '../env/evaluator-for.ts';
import type { MeasuredEvaluator } from '../env/evaluator.ts';
import { RedisServer, startWorker, type WorkerProcess } from '../targets/farm/local-farm.ts';
import { hostIsa, hostTarget } from '../targets/runtime/host.ts';

export interface FarmBenchOptions {
  quick?: boolean;
  /** worker counts of the scaling mode (absent: the overhead mode only) */
  workers?: number[];
  /** the overhead mode's problem (default matmul 64x64x64) and measurements (default 100) */
  problem?: string;
  measurements?: number;
  /** the scaling mode's problem (default matmul 256x256x256) and seconds per worker count (default 30) */
  scalingProblem?: string;
  seconds?: number;
  /** concurrent searches of the scaling mode (default 2N) */
  searches?: number;
  /** redis-server binary to start (default: the one on PATH) */
  redisServer?: string;
  /** an existing farm Redis instead (its workers are still started here) */
  redis?: string;
  out?: string;
}

/** Minimum sampled seconds per measurement: what makes one take about 10 ms. */
const MIN_SECONDS = 0.01;

interface OverheadRow { mode: 'local' | 'farm'; measurements: number; seconds: number; measurementsPerSecond: number; msPerMeasurement: number }
interface ScalingRow {
  workers: number; searches: number; seconds: number; measured: number; failed: number;
  measurementsPerSecond: number; efficiency: number; bestGflops: number;
  /** [seconds since the start, best GFLOPS of any search so far] */
  bestOverTime: [number, number][];
}

export async function benchFarm(options: FarmBenchOptions = {}): Promise<unknown> {
  const target = hostTarget();
  const quick = options.quick ?? false;
  const server = options.redis ? undefined : await RedisServer.start(options.redisServer);
  const url = options.redis ?? server!.url;
  try {
    const overhead = await overheadMode(url, target, options.problem ?? 'matmul 64x64x64', options.measurements ?? (quick ? 30 : 100));
    const scaling: ScalingRow[] = [];
    for (const n of options.workers ?? []) {
      const row = await scalingMode(url, target, n, options.scalingProblem ?? 'matmul 256x256x256', options.seconds ?? (quick ? 10 : 30), scaling[0], options.searches);
      scaling.push(row);
      console.log(`farm: ${n} worker${n > 1 ? 's' : ''}: ${row.measurementsPerSecond.toFixed(1)} measurements/s (${(100 * row.efficiency).toFixed(0)}% of ${n} x one), best ${row.bestGflops.toFixed(1)} GFLOPS`);
    }
    const out = {
      bench: 'farm', date: new Date().toISOString(), host: hostIsa().model, cores: cpus().length, target,
      minSeconds: MIN_SECONDS, overhead, scaling,
      note: options.searches === undefined
        ? 'scaling: 2N concurrent evolution searches (seeds 0..2N-1) on one farm evaluator'
        : `scaling: ${options.searches} evolution search(es) on one farm evaluator of concurrency max(N, ${options.searches}); each asks for a generation (8) at once`,
    };
    const file = options.out ?? 'bench/results/farm.json';
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`farm: wrote ${file}`);
    return out;
  } finally {
    await server?.stop();
  }
}

/** The same search locally and through one worker, one measurement at a time. */
async function overheadMode(url: string, target: string, problem: string, measurements: number): Promise<{ problem: string; rows: OverheadRow[]; overheadMsPerJob: number }> {
  const row = (mode: OverheadRow['mode'], r: RunSearchResult): OverheadRow => ({
    mode, measurements: r.measurements, seconds: r.seconds, measurementsPerSecond: r.measurements / r.seconds, msPerMeasurement: (1000 * r.seconds) / r.measurements,
  });
  const search = async (farm: boolean): Promise<RunSearchResult> => {
    const evaluator = await evaluatorFor(target, { minSeconds: MIN_SECONDS, ...(farm ? { farm: { url, concurrency: 1 } } : {}) });
    try {
      return await runSearch(problem, { evaluator, searcher: 'random', budget: { measurements }, seed: 1, skipDefault: false });
    } finally {
      await evaluator.close();
    }
  };
  const local = row('local', await search(false));
  const worker = await startWorker(url, ['--targets', target]);
  let remote: OverheadRow;
  try {
    remote = row('farm', await search(true));
  } finally {
    await worker.stop();
  }
  const overheadMsPerJob = remote.msPerMeasurement - local.msPerMeasurement;
  console.log(`farm: ${problem}: local ${local.msPerMeasurement.toFixed(2)} ms per measurement, farm ${remote.msPerMeasurement.toFixed(2)} ms: ${overheadMsPerJob.toFixed(2)} ms overhead per job`);
  return { problem, rows: [local, remote], overheadMsPerJob };
}

/** N workers, 2N searches at once on one farm evaluator, for `seconds`. */
async function scalingMode(url: string, target: string, n: number, problem: string, seconds: number, one: ScalingRow | undefined, searchCount?: number): Promise<ScalingRow> {
  const workers: WorkerProcess[] = [];
  try {
    workers.push(...await Promise.all(Array.from({ length: n }, () => startWorker(url, ['--targets', target, '--threads', '1']))));
    const searches = searchCount ?? 2 * n;
    const evaluator = await evaluatorFor(target, { minSeconds: MIN_SECONDS, farm: { url, concurrency: Math.max(n, searches) } }) as MeasuredEvaluator;
    try {
      const t0 = performance.now();
      const results = await Promise.all(Array.from({ length: searches }, (_, seed) =>
        runSearch(problem, { evaluator, searcher: 'evolution', budget: { seconds }, seed })));
      const wall = (performance.now() - t0) / 1000;
      const points = results.flatMap((r) => r.history.map((h): [number, number] => [h.t, h.bestGflops])).sort((a, b) => a[0] - b[0]);
      const bestOverTime: [number, number][] = [];
      for (const [t, g] of points) if (bestOverTime.length === 0 || g > bestOverTime[bestOverTime.length - 1]![1]) bestOverTime.push([t, g]);
      const rate = evaluator.stats.measured / wall;
      return {
        workers: n, searches, seconds: wall, measured: evaluator.stats.measured, failed: evaluator.stats.failed,
        measurementsPerSecond: rate, efficiency: one ? rate / (n * (one.measurementsPerSecond / one.workers)) : 1,
        bestGflops: Math.max(0, ...results.map((r) => r.gflops)), bestOverTime,
      };
    } finally {
      await evaluator.close();
    }
  } finally {
    await Promise.allSettled(workers.map((w) => w.stop()));
  }
}

/** `--name value` pairs of a command line. */
function parseArgs(argv: readonly string[]): FarmBenchOptions {
  const o: FarmBenchOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench farm: ${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--workers') o.workers = workerCounts(value());
    else if (a === '--seconds') o.seconds = Number(value().replace(/s$/, ''));
    else if (a === '--searches') o.searches = Number(value());
    else if (a === '--measurements') o.measurements = Number(value());
    else if (a === '--problem') o.problem = value();
    else if (a === '--scaling-problem') o.scalingProblem = value();
    else if (a === '--redis-server') o.redisServer = value();
    else if (a === '--redis') o.redis = value();
    else if (a === '--out') o.out = value();
    else throw new Error(`bench farm: unknown option ${a} (expected --workers, --seconds, --searches, --measurements, --problem, --scaling-problem, --redis-server, --redis, --out, --quick)`);
  }
  return o;
}

export function workerCounts(text: string): number[] {
  const counts = text.split(',').map(Number);
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`bench farm: --workers expects counts such as 1,2,4,8, got '${text}'`);
  return counts;
}

// run as a script (npx tsx bench/farm.ts, or its bundle): the command line's options
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchFarm(parseArgs(process.argv.slice(2)));
}
