/**
 * `looptune compile model.onnx [--budget 60s] [--threads N] [--shape name=1x3x224x224] [--out F]`:
 * tune a whole model within one budget (agent/tune-model.ts: the task scheduler, generated kernel
 * or OpenBLAS per task), then print the per-task table and write the tuned artifact
 * (agent/tuned-model.ts; default `<model>.tuned.json` next to the model). A progress bar on
 * stderr while it runs, only when stderr is a terminal. `runCompile` is the command without
 * commander, for tests and scripts.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import { fail, LoopTuneError } from '../ir/errors.ts';
import { fsFailure } from '../ir/fs-errors.ts';
import { importOnnx } from '../ir/model/onnx-import.ts';
import type { ModelGraph } from '../ir/model/graph.ts';
import { backend } from '../targets/registry.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { sha256Hex, writeTunedModel } from '../agent/tuned-model.ts';
import { DEFAULT_MODEL_BUDGET_SECONDS, tuneModel, type TuneModelProgress, type TuneModelResult } from '../agent/tune-model.ts';
import { echo, nonEmpty, positiveSeconds, threadCount } from './options.ts';
import { checkFarmKey, FARM_HELP, FARM_KEY_HELP, farmUrl } from './worker.ts';

export interface CompileOptions {
  /** seconds (default 60) */
  budget?: number;
  threads?: number;
  /** static shapes of inputs with symbolic dims, by input name */
  shapes?: Readonly<Record<string, readonly number[]>>;
  /** the artifact's path (default `<model>.tuned.json` next to the model) */
  out?: string;
  /** a records file, or false for none (default: the records store's default path) */
  records?: string | false;
  target?: string;
  /** measure on the workers of this farm (a Redis URL: targets/farm) */
  farm?: string;
  /** the farm's hardware key to measure on (default: this machine's) */
  farmKey?: string;
}

/** Where the command writes: the table and the summary (stdout), the progress bar (stderr, a terminal only). */
export interface CompileOutput {
  readonly log: (line: string) => void;
  readonly progress?: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface CompileReport {
  readonly result: TuneModelResult;
  /** the artifact's path */
  readonly out: string;
  /** the per-task table as printed */
  readonly table: string;
}

/** `<dir>/<name>.tuned.json` for `<dir>/<name>.onnx` (any other name: the name + .tuned.json). */
export function defaultTunedPath(modelPath: string): string {
  const dir = path.dirname(modelPath);
  return path.join(dir, `${path.basename(modelPath).replace(/\.onnx$/i, '')}.tuned.json`);
}

/** One --shape value, `name=1x3x224x224`, added to the ones before it. */
export function parseShapeOption(value: string, previous: Record<string, number[]> = {}): Record<string, number[]> {
  const m = /^([^=\s]+)=(\d+(?:x\d+)*)$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`cannot read shape ${echo(value)} (expected name=dims, e.g. input=1x3x224x224)`);
  const dims = m[2]!.toLowerCase().split('x').map(Number);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 1)) throw new InvalidArgumentError(`shape ${echo(value)}: every dimension must be a whole number >= 1`);
  if (previous[m[1]!]) throw new InvalidArgumentError(`--shape ${m[1]} is given twice`);
  return { ...previous, [m[1]!]: dims };
}

/** `value` as text of width `w`, right-aligned when `right`. */
function cell(value: string, w: number, right: boolean): string {
  return right ? value.padStart(w) : value.padEnd(w);
}

/** The per-task table: task, count, share of latency, GFLOPS, % of peak, tuning seconds, generated or library. */
export function formatTaskTable(r: TuneModelResult): string {
  const head = ['task', 'count', 'share', 'GFLOPS', '% peak', 'tuning s', 'kernel'];
  const rows = r.tasks.map((t) => [
    t.spec, String(t.count), `${(100 * t.shareOfLatency).toFixed(1)}%`, t.gflops.toFixed(1), t.percentOfPeak.toFixed(1),
    t.tuningSeconds.toFixed(2), t.implementation,
  ]);
  const right = [false, true, true, true, true, true, false];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (row: readonly string[]) => row.map((v, c) => cell(v, widths[c]!, right[c]!)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** A progress bar over the budget's seconds, naming the task being tuned; nothing when `stream` is not a terminal. */
function progressBar(stream: CompileOutput['progress'], budget: number): { update(p: TuneModelProgress): void; stop(): void } {
  if (!stream || !stream.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({
    stream, hideCursor: true, clearOnComplete: true, barsize: 24,
    format: 'compile [{bar}] {seconds}/{budget} s | {phase} {task}/{tasks} {spec}{estimate}',
  }, cliProgress.Presets.shades_classic);
  bar.start(budget, 0, { seconds: '0.0', budget: String(budget), phase: 'round 0', task: '-', tasks: '-', spec: '(loading the model)', estimate: '' });
  return {
    update(p) {
      bar.update(Math.min(p.seconds, budget), {
        seconds: p.seconds.toFixed(1), phase: p.phase === 'round0' ? 'round 0' : 'tuning', task: p.task + 1, tasks: p.tasks,
        spec: p.spec.length > 60 ? `${p.spec.slice(0, 59)}…` : p.spec,
        estimate: p.estimatedLatency !== undefined ? ` | estimated ${(p.estimatedLatency * 1e3).toFixed(3)} ms` : '',
      });
    },
    stop() {
      bar.stop();
    },
  };
}

/** Tunes the model at `modelPath`, writes the artifact, prints the table; failures are one-line LoopTuneErrors. */
export async function runCompile(modelPath: string, options: CompileOptions = {}, output: CompileOutput = { log: (l) => console.log(l), progress: process.stderr }): Promise<CompileReport> {
  const b = backend(options.target ?? hostTarget());
  const budget = options.budget ?? DEFAULT_MODEL_BUDGET_SECONDS;
  if (!(budget > 0) || !Number.isFinite(budget)) fail(`compile: --budget must be a positive number of seconds, got ${budget}`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(modelPath);
  } catch (e) {
    throw fsFailure(e);
  }
  let graph: ModelGraph;
  try {
    graph = importOnnx(bytes, { ...(options.shapes ? { inputShapes: options.shapes } : {}) });
  } catch (e) {
    // the importer names its library option; on the command line it is --shape
    if (e instanceof LoopTuneError) fail(`${modelPath}: ${e.message.replace(/inputShapes: \{ (\S+): \[\.\.\.\] \}/, '--shape $1=<dims>, e.g. --shape $1=1x3x224x224')}`);
    throw e;
  }
  const out = options.out ?? defaultTunedPath(modelPath);
  // a farm's device: the tasks' measurements and verifications run on its workers
  const device = options.farm
    ? await (await import('../targets/farm/remote-device.ts')).openRemoteDevice(b, { url: options.farm, threads: options.threads ?? 1, ...(options.farmKey !== undefined ? { key: options.farmKey } : {}) })
    : undefined;
  const bar = progressBar(output.progress, budget);
  let result: TuneModelResult;
  try {
    result = await tuneModel(graph, {
      budgetSeconds: budget, target: b, sha256: sha256Hex(bytes), name: path.basename(modelPath).replace(/\.onnx$/i, ''),
      ...(device ? { device } : {}),
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.records === false ? { noRecords: true } : options.records !== undefined ? { records: options.records } : {}),
      onProgress: (p) => bar.update(p),
    });
  } finally {
    bar.stop();
    await device?.close();
  }
  await writeTunedModel(out, result.tuned);
  const table = formatTaskTable(result);
  output.log(table);
  // where the library was timed beside the generated kernel: which won, by how much
  const compared = result.tasks.filter((t) => t.sideBySide);
  if (compared.length > 0) {
    output.log('generated kernel or OpenBLAS, timed side by side:');
    for (const t of compared) output.log(`  ${t.spec}: ${t.chosenBecause}`);
  }
  const library = result.tasks.filter((t) => t.implementation === 'library').length;
  output.log(`${result.tasks.length} tasks (${result.tasks.length - library} generated, ${library} library), ${result.threads} thread${result.threads > 1 ? 's' : ''}, target ${result.target}: `
    + `estimated ${(result.endToEndEstimateSeconds * 1e3).toFixed(3)} ms per inference (kernels only), `
    + `tuned in ${result.seconds.toFixed(1)} s, ${result.measurements} schedules timed`);
  output.log(`wrote ${out}`);
  return { result, out, table };
}

interface CompileCliOptions { budget: number; threads?: number; shape?: Record<string, number[]>; out?: string; records?: string | boolean; target?: string; farm?: string; farmKey?: string }

export function registerCompile(program: Command): void {
  program
    .command('compile')
    .description('tune every kernel of an ONNX model within one budget (the task scheduler; the generated kernel or OpenBLAS per task), print where the time goes, write the tuned artifact')
    .argument('<model>', 'an .onnx file')
    .option('--budget <seconds>', 'total tuning seconds (e.g. 60 or 60s); every task is tuned once however small it is', positiveSeconds, DEFAULT_MODEL_BUDGET_SECONDS)
    .option('--threads <n>', 'CPU threads every kernel runs on (default: every core)', threadCount)
    .option('--shape <name=dims>', 'static shape of an input with symbolic dims, e.g. input=1x3x224x224 (repeat for several inputs)', parseShapeOption)
    .option('--out <file>', 'the tuned artifact (default: <model>.tuned.json next to the model)', nonEmpty('output path'))
    .option('--records <file>', 'tuning records (default $LOOPTUNE_RECORDS or the cache folder\'s looptune/records.jsonl)', nonEmpty('records path'))
    .option('--no-records', 'neither read nor write tuning records')
    .option('--target <name>', 'avx512 or avx2 (default: the host\'s best)')
    .option('--farm <url>', FARM_HELP, farmUrl)
    .option('--farm-key <key>', FARM_KEY_HELP)
    .action(async (model: string, opts: CompileCliOptions) => {
      checkFarmKey(opts);
      await runCompile(model, {
        budget: opts.budget,
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        ...(opts.shape ? { shapes: opts.shape } : {}),
        ...(opts.out !== undefined ? { out: opts.out } : {}),
        ...(opts.records === false ? { records: false } : typeof opts.records === 'string' ? { records: opts.records } : {}),
        ...(opts.target !== undefined ? { target: opts.target } : {}),
        ...(opts.farm !== undefined ? { farm: opts.farm } : {}),
        ...(opts.farmKey !== undefined ? { farmKey: opts.farmKey } : {}),
      });
    });
}
