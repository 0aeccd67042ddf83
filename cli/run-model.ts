/**
 * `looptune run-model model.onnx [--tuned F] [--threads N] [--input name=file.npy|random]
 * [--shape name=1x3x224x224] [--repeat R] [--compare onnxruntime] [--json]`: loads the model
 * (agent/compiled-model.ts loadModel), runs it R times after warm-up and prints the latency (best
 * and median); with --compare, runs onnxruntime-node on the same inputs (same threads, graph
 * optimizations on) and prints each output's max abs and relative error.
 *
 * The relative error is max |ours - theirs| / max |theirs| over an output: normalized by the
 * output's magnitude, not element by element (an element near zero would make any rounding look
 * huge). MODEL_TOLERANCE is where that counts as agreement: fp32 sums in a different order differ
 * by about sqrt(K) * 2^-24 relative per dot product of K terms, compounded over the layers; the tiny
 * zoo models measure 1e-7 to 1e-6 here and the full ones a few 1e-6, so 1e-4 leaves a margin of
 * 100x and still fails any wrong computation (an off-by-one window or a missing epilogue is 1e-2 or more).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { fail } from '../ir/errors.ts';
import { fsFailure } from '../ir/fs-errors.ts';
import { randomArray } from '../ir/interpret.ts';
import { loadModel, type CompiledModel, type ModelDescription } from '../agent/compiled-model.ts';
import { echo, positiveInteger, threadCount } from './options.ts';

/** Outputs agree with the reference runtime when their relative error (see above) is at most this. */
export const MODEL_TOLERANCE = 1e-4;
/** Untimed runs before the timed ones: first-touch of the arena, warm caches and branch predictors. */
const WARMUP_RUNS = 2;
/** Seed of the random inputs (input k gets seed + k). */
const INPUT_SEED = 1;

export interface RunModelCommandOptions {
  readonly tuned?: string;
  readonly threads?: number;
  /** name=file.npy or name=random, one per input at most (unnamed inputs are random) */
  readonly input?: readonly string[];
  /** name=1x3x224x224: static shapes of inputs with symbolic dims */
  readonly shape?: readonly string[];
  readonly repeat?: number;
  /** 'onnxruntime' */
  readonly compare?: string;
  readonly json?: boolean;
  /** time every node of the timed runs and report the best of each (where the time goes) */
  readonly profile?: boolean;
}

/** One step of a profiled run: a node (or a layout copy), its best seconds over the timed runs. */
export interface ProfileEntry {
  readonly step: string;
  readonly what: string;
  readonly seconds: number;
}

export interface OutputComparison {
  readonly name: string;
  readonly maxAbsError: number;
  /** maxAbsError / max |reference| */
  readonly maxRelError: number;
  readonly withinTolerance: boolean;
}

export interface RunModelReport {
  readonly model: string;
  readonly target: string;
  readonly threads: number;
  readonly repeat: number;
  readonly bestSeconds: number;
  readonly medianSeconds: number;
  readonly inputs: readonly { readonly name: string; readonly shape: readonly number[]; readonly source: string }[];
  readonly outputs: readonly { readonly name: string; readonly shape: readonly number[] }[];
  readonly kernels: number;
  readonly peakBytes: number;
  readonly copiesPerRun: number;
  readonly compare?: { readonly library: string; readonly tolerance: number; readonly outputs: readonly OutputComparison[] };
  /** with --profile: every step, in run order */
  readonly profile?: readonly ProfileEntry[];
}

// ---------------------------------------------------------------- .npy

/** A float32 array read from a .npy file. */
export interface NpyArray {
  readonly shape: number[];
  readonly data: Float32Array;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Reads a .npy file's bytes: little-endian float32 ('<f4'), C order, versions 1-3; anything else is one line. */
export function readNpy(bytes: Uint8Array, where: string): NpyArray {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) fail(`${where}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  if (major < 1 || major > 3) fail(`${where}: .npy version ${major} is not supported (1, 2 or 3)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + headerLength > bytes.length) fail(`${where}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) fail(`${where}: malformed .npy header ${echo(header.trim())}`);
  if (descr !== '<f4') fail(`${where}: dtype ${descr} is not supported (float32 little-endian '<f4'; numpy: x.astype('<f4'))`);
  if (fortran === 'True') fail(`${where}: Fortran-order arrays are not supported (C order; numpy: np.ascontiguousarray(x))`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) fail(`${where}: malformed .npy shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLength;
  if (bytes.length - dataStart !== count * 4) fail(`${where}: .npy data holds ${bytes.length - dataStart} bytes, shape (${shape.join(', ')}) needs ${count * 4}`);
  // a copy: the data's offset in the file need not be 4-byte aligned
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = view.getFloat32(dataStart + 4 * i, true);
  return { shape, data };
}

// ---------------------------------------------------------------- option values

/** "name=value" split at the first '='; one line naming the option otherwise. */
function assignment(option: string, raw: string): [string, string] {
  const i = raw.indexOf('=');
  if (i <= 0 || i === raw.length - 1) fail(`${option} needs name=value, got ${echo(raw)}`);
  return [raw.slice(0, i), raw.slice(i + 1)];
}

/** "1x3x224x224" as dims. */
function parseDims(option: string, raw: string): number[] {
  const parts = raw.split(/x/i);
  const dims = parts.map(Number);
  if (parts.some((p) => !/^\d+$/.test(p)) || dims.some((n) => n < 1)) fail(`${option}: cannot read shape ${echo(raw)} (expected positive sizes joined by x, e.g. 1x3x224x224)`);
  return dims;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The error of `ours` against `theirs` (see the top of this file). */
export function compareOutputs(name: string, ours: Float32Array, theirs: ArrayLike<number>): OutputComparison {
  let maxAbs = 0, scale = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i]! - theirs[i]!);
    maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    scale = Math.max(scale, Math.abs(theirs[i]!));
  }
  if (ours.length !== theirs.length) maxAbs = Infinity;
  const maxRelError = maxAbs / (scale || 1);
  return { name, maxAbsError: maxAbs, maxRelError, withinTolerance: maxRelError <= MODEL_TOLERANCE };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw fsFailure(e);
  }
}

/** onnxruntime-node's outputs on `inputs`, with `threads` intra-op threads and every graph optimization. */
async function onnxRuntimeOutputs(bytes: Uint8Array, m: CompiledModel, inputs: Record<string, Float32Array>, threads: number): Promise<{ library: string; outputs: Record<string, ArrayLike<number>> }> {
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch {
    fail('--compare onnxruntime: onnxruntime-node is not installed (npm install onnxruntime-node)');
  }
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  try {
    const feeds = Object.fromEntries(m.inputs.map((v) => [v.name, new ort.Tensor('float32', inputs[v.name]!, [...v.shape])]));
    const result = await session.run(feeds);
    const outputs: Record<string, ArrayLike<number>> = {};
    for (const v of m.outputs) {
      const t = result[v.name];
      if (!t) fail(`--compare onnxruntime: ONNX Runtime returned no output '${v.name}'`);
      outputs[v.name] = t.data as Float32Array;
    }
    return { library: `onnxruntime-node ${ort.env.versions.common}`, outputs };
  } finally {
    await session.release();
  }
}

/** What `looptune run-model` does, as a function (the command prints its result). */
export async function runModelCommand(file: string, opts: RunModelCommandOptions = {}): Promise<RunModelReport> {
  if (opts.compare !== undefined && opts.compare !== 'onnxruntime') fail(`--compare: unknown runtime ${echo(opts.compare)} (expected onnxruntime)`);
  const repeat = opts.repeat ?? 10;
  if (!Number.isInteger(repeat) || repeat < 1) fail(`--repeat must be a whole number >= 1, got ${repeat}`);
  const inputShapes: Record<string, number[]> = {};
  for (const s of opts.shape ?? []) {
    const [name, dims] = assignment('--shape', s);
    inputShapes[name] = parseDims('--shape', dims);
  }
  // inputs given as files: read first, so their shapes can fix symbolic dims
  const given = new Map<string, { data?: Float32Array; source: string }>();
  for (const s of opts.input ?? []) {
    const [name, value] = assignment('--input', s);
    if (given.has(name)) fail(`--input ${name} given twice`);
    if (value === 'random') {
      given.set(name, { source: 'random' });
      continue;
    }
    const npy = readNpy(await readBytes(value), value);
    given.set(name, { data: npy.data, source: value });
    inputShapes[name] ??= npy.shape;
  }
  const bytes = await readBytes(file);
  const m = await loadModel(bytes, {
    ...(opts.tuned !== undefined ? { tuned: opts.tuned } : {}),
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    ...(Object.keys(inputShapes).length > 0 ? { inputShapes } : {}),
  });
  try {
    for (const name of given.keys()) {
      if (!m.inputs.some((v) => v.name === name)) fail(`--input: '${name}' is not an input of ${file} (inputs: ${m.inputs.map((v) => v.name).join(', ')})`);
    }
    const inputs: Record<string, Float32Array> = {};
    const sources: { name: string; shape: readonly number[]; source: string }[] = [];
    m.inputs.forEach((v, k) => {
      const n = v.shape.reduce((a, b) => a * b, 1);
      const g = given.get(v.name);
      if (g?.data && g.data.length !== n) fail(`--input ${v.name}: ${g.source} holds ${g.data.length} elements, the model's input [${v.shape.join(', ')}] ${n}`);
      inputs[v.name] = g?.data ?? randomArray(n, INPUT_SEED + k);
      sources.push({ name: v.name, shape: v.shape, source: g?.source ?? 'random' });
    });
    const outputs: Record<string, Float32Array> = {};
    for (const v of m.outputs) outputs[v.name] = new Float32Array(v.shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < WARMUP_RUNS; i++) m.runInto(inputs, outputs);
    const seconds: number[] = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = performance.now();
      m.runInto(inputs, outputs);
      seconds.push((performance.now() - t0) / 1000);
    }
    const d: ModelDescription = m.describe();
    let profile: ProfileEntry[] | undefined;
    if (opts.profile) {
      // separate runs: timing every step perturbs the latency figures above
      const best = new Map<string, number>();
      for (let i = 0; i < repeat; i++) {
        m.runInto(inputs, outputs, { profile: (p) => { for (const [k, v] of p) best.set(k, Math.min(best.get(k) ?? Infinity, v)); } });
      }
      profile = [...best].map(([step, s]) => {
        const n = d.nodes.find((x) => x.name === step);
        const what = n ? `${n.implementation}${n.layout && n.layout !== 'nchw' ? ` ${n.layout}` : ''} ${n.spec ?? n.op ?? ''}`.trim() : 'layout copy';
        return { step, what, seconds: s };
      });
    }
    let compare: RunModelReport['compare'];
    if (opts.compare === 'onnxruntime') {
      const peer = await onnxRuntimeOutputs(bytes, m, inputs, d.threads);
      compare = { library: peer.library, tolerance: MODEL_TOLERANCE, outputs: m.outputs.map((v) => compareOutputs(v.name, outputs[v.name]!, peer.outputs[v.name]!)) };
    }
    return {
      model: file, target: d.target, threads: d.threads, repeat,
      bestSeconds: Math.min(...seconds), medianSeconds: median(seconds),
      inputs: sources, outputs: m.outputs.map((v) => ({ name: v.name, shape: v.shape })),
      kernels: d.kernels, peakBytes: d.peakBytes, copiesPerRun: d.copiesPerRun,
      ...(compare ? { compare } : {}),
      ...(profile ? { profile } : {}),
    };
  } finally {
    m.dispose();
  }
}

/** The report as the command prints it without --json. */
export function formatRunModel(r: RunModelReport): string {
  const ms = (s: number) => `${(s * 1e3).toFixed(3)} ms`;
  const lines = [
    `${r.model}: ${r.target}, ${r.threads} thread${r.threads > 1 ? 's' : ''}, ${r.kernels} kernels, arena ${(r.peakBytes / 1024).toFixed(1)} KiB, ${r.copiesPerRun} cop${r.copiesPerRun === 1 ? 'y' : 'ies'} per run`,
    `latency over ${r.repeat} run${r.repeat > 1 ? 's' : ''}: best ${ms(r.bestSeconds)}, median ${ms(r.medianSeconds)}`,
  ];
  if (r.compare) {
    lines.push(`against ${r.compare.library} (tolerance ${r.compare.tolerance} relative to each output's largest magnitude):`);
    for (const o of r.compare.outputs) {
      lines.push(`  ${o.name}: max abs error ${o.maxAbsError.toExponential(2)}, relative ${o.maxRelError.toExponential(2)} ${o.withinTolerance ? 'ok' : 'MISMATCH'}`);
    }
  }
  if (r.profile) {
    const total = r.profile.reduce((a, e) => a + e.seconds, 0);
    lines.push(`profile (best per step over ${r.repeat} runs; sum ${ms(total)}):`);
    for (const e of r.profile) lines.push(`  ${ms(e.seconds).padStart(10)} ${((100 * e.seconds) / total).toFixed(1).padStart(5)}%  ${e.step.padEnd(24)} ${e.what}`);
  }
  return lines.join('\n');
}

export function registerRunModel(program: Command): void {
  program
    .command('run-model')
    .description('load an ONNX model (with its tuned schedules), run it in-process and time it; optionally check it against ONNX Runtime')
    .argument('<model>', 'the .onnx file')
    .option('--tuned <file>', 'the tuned artifact looptune compile wrote (default: every task gets its default schedule)')
    .option('--threads <n>', 'threads of each kernel (default: the artifact\'s, else every core)', threadCount)
    .option('--input <name=file>', 'an input from a float32 .npy file, or name=random (repeatable; default random)', collect)
    .option('--shape <name=dims>', 'the static shape of an input with symbolic dims, e.g. input=1x3x224x224 (repeatable)', collect)
    .option('--repeat <r>', 'timed runs after the warm-up', positiveInteger, 10)
    .option('--compare <runtime>', 'also run onnxruntime (onnxruntime-node) on the same inputs and print the outputs\' errors')
    .option('--json', 'print the report as JSON')
    .option('--profile', 'time every node (separate runs) and print where the time goes')
    .action(async (model: string, opts: RunModelCommandOptions) => {
      const r = await runModelCommand(model, opts);
      console.log(opts.json ? JSON.stringify(r, null, 2) : formatRunModel(r));
      if (r.compare?.outputs.some((o) => !o.withinTolerance)) process.exitCode = 1;
    });
}

