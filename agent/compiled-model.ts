/**
 * `loadModel`: an ONNX model as a function an application calls in-process on its Float32Arrays:
 *
 *   const m = await loadModel('resnet18.onnx', { tuned: 'resnet18.tuned.json', threads: 2 });
 *   const { logits } = m.run({ input });   // named outputs; runInto(inputs, outputs) writes the caller's arrays
 *   m.dispose();
 *
 * At load: the graph is imported (ir/model/onnx-import.ts); the tasks the artifact tuned in the
 * blocked NCHWc layout run as their blocked twins, the layout kept between consecutive blocked
 * layers and converted only at the edges of a blocked region (ir/model/propagate-layout.ts:
 * `m.graph` is this graph as it runs, twins and conversion nodes included); its memory planned
 * (ir/model/memory-plan.ts: one arena, padded layers' inputs stored inside their borders and
 * written there by their producers, so no padding copy runs), and each distinct kernel problem
 * compiled once with compileKernel (agent/compile-kernel.ts), which verifies it in a measurement
 * worker before it runs here. A problem's schedule comes from the tuned artifact
 * (agent/tuned-model.ts) when it has the task; otherwise it is the shipped cost model's pick among
 * the cheap candidates `tune` starts from, without any measurement: LoopTune's initial schedule,
 * the BLIS-style register-blocked GEMM seeds (matmul-shaped problems) and DEFAULT_SKETCHES seeded
 * Ansor-style sketches (register tiles sized to the target's registers), each with its outer band
 * parallel on several threads. Without a cost model it takes the first GEMM seed, else the
 * initial schedule. describe() says which schedule each node got and why.
 *
 * A run: the caller's inputs and outputs are bound zero-copy (a kernel reads the input array and
 * writes the output array itself wherever the plan allows), weights were bound once at load (a
 * blocked twin's packed once), activations live in Float32Array views of one
 * ArrayBuffer, and nothing is allocated by runInto beyond what compileKernel's run does per call.
 * Host ops (softmax, layer norm, transposes...) run in JavaScript (targets/runtime/host-ops.ts).
 *
 * A task the artifact marks 'library' (the vendor BLAS won at tuning) runs OpenBLAS sgemm in this
 * process with its epilogue in JavaScript (agent/library-kernel.ts), on dense operands (the plan
 * keeps its tensors as the problem has them); where OpenBLAS cannot be loaded it runs its
 * generated kernel with the artifact's schedule instead, and describe() says so.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import pLimit from 'p-limit';
import { fail, LoopTuneError } from '../ir/errors.ts';
import { fsFailure } from '../ir/fs-errors.ts';
import { importOnnx } from '../ir/model/onnx-import.ts';
import { AlignedBlock, alignWeights } from './aligned-memory.ts';
import { propagateLayout } from '../ir/model/propagate-layout.ts';
import { whyNotBlocked } from '../ir/layout.ts';
import { layoutBlock } from '../ir/spec.ts';
import { modelTasks, type KernelNode, type ModelGraph, type ModelNode, type ModelValue } from '../ir/model/graph.ts';
import {
  isBordered, planModelMemory, storageSummary, storageTensor, type ModelMemoryPlan, type PlannedBuffer,
} from '../ir/model/memory-plan.ts';
import { copyFromStorage, copyIntoStorage, isPadded, padded } from '../ir/padding.ts';
import { bandedFor } from '../ir/parallelize.ts';
import { dataShape, type Problem, type Tensor } from '../ir/problem.ts';
import { Rng } from '../ir/random.ts';
import { Schedule } from '../ir/schedule.ts';
import type { Backend } from '../targets/backend.ts';
import { backend as backendNamed, hostBackend } from '../targets/registry.ts';
import { prepareHostOp, type HostKernel } from '../targets/runtime/host-ops.ts';
import { defaultThreads, threadCountError } from '../targets/runtime/threads.ts';
import { compileKernel, type CompiledKernel, type KernelOperand } from './compile-kernel.ts';
import { libraryKernel, type LibraryKernel } from './library-kernel.ts';
import { gemmSeeds, sampleSketch } from './search/sketch.ts';
import { checkTunedModelFor, readTunedModel, sha256Hex, tasksBySpec, type TunedModel, type TunedTask } from './tuned-model.ts';

export interface LoadModelOptions {
  /** the tuned artifact (a path or its parsed contents); without it every task gets the default schedule */
  readonly tuned?: string | TunedModel;
  /** threads of each kernel (default: the artifact's, else every core) */
  readonly threads?: number;
  /** static shapes of inputs whose dims are symbolic (default: the artifact's) */
  readonly inputShapes?: Readonly<Record<string, readonly number[]>>;
  /** an x86 backend or its name (default: the artifact's target, else the host's best) */
  readonly target?: Backend | string;
}

/** How a node runs: a generated kernel, OpenBLAS (a 'library' task), JavaScript, or nothing (a reshape is its input's buffer). */
export type NodeImplementation = 'generated' | 'library' | 'host' | 'alias';
/** Where a kernel node's schedule came from. */
export type ScheduleSource = 'tuned' | 'cost-model default' | 'register-blocked default' | 'initial default' | 'layout conversion';

export interface NodeDescription {
  readonly name: string;
  readonly kind: 'kernel' | 'host';
  readonly implementation: NodeImplementation;
  /** a host node's op kind */
  readonly op?: string;
  /** a kernel node's problem (its task) */
  readonly spec?: string;
  /** the problem that runs, with its tensors in the plan's storages, when it differs from spec */
  readonly runs?: string;
  /** the generated kernel's schedule (a library node: the artifact's, unused) */
  readonly schedule?: string;
  /** a library node's build, e.g. 'OpenBLAS 0.3.21 (Cooperlake)' */
  readonly library?: string;
  /** 'nchw' or the blocked layout ('nchw16c') */
  readonly layout?: string;
  readonly scheduleSource?: ScheduleSource;
  /** why a task the artifact runs on the library runs its generated kernel here (OpenBLAS could not be loaded) */
  readonly libraryFallback?: string;
}

export interface CopyDescription {
  readonly value: string;
  readonly elements: number;
  readonly reason: string;
}

export interface ModelDescription {
  readonly name: string;
  readonly target: string;
  readonly threads: number;
  readonly nodes: readonly NodeDescription[];
  /** distinct kernel problems of the graph (modelTasks) and the kernels compiled for them */
  readonly tasks: readonly { readonly spec: string; readonly count: number; readonly kernels: number; readonly scheduleSource: ScheduleSource }[];
  /** kernels compiled (one per distinct problem as it runs, layout and schedule) */
  readonly kernels: number;
  /** activation memory of a run: the plan's arena */
  readonly peakBytes: number;
  /** what the arena's buffers would take without reuse */
  readonly unsharedBytes: number;
  readonly weightBytes: number;
  /** the copies a run makes between layouts (the plan's), and what is copied inside kernels' runs */
  readonly copies: readonly CopyDescription[];
  readonly copiesPerRun: number;
  /** one line per planned buffer: values, storage, place, offset, lifetime */
  readonly buffers: readonly string[];
}

/** Called after each node with its output's data (dense); for per-node checks, not for speed. */
export type AfterNode = (node: ModelNode, value: Float32Array) => void;

/** Called once per run with every step's wall seconds: node steps by node name, layout copies as 'copy <value>'. */
export type ProfileRun = (seconds: ReadonlyMap<string, number>) => void;

export interface RunModelOptions {
  readonly afterNode?: AfterNode;
  /** time every step of this run (performance.now around each: for where-time-goes tables, not for speed) */
  readonly profile?: ProfileRun;
}

export interface CompiledModel {
  readonly graph: ModelGraph;
  readonly inputs: readonly ModelValue[];
  readonly outputs: readonly ModelValue[];
  /** the outputs in new arrays */
  run(inputs: Readonly<Record<string, Float32Array>>, options?: RunModelOptions): Record<string, Float32Array>;
  /** the outputs written into the caller's arrays (one per graph output, its element count) */
  runInto(inputs: Readonly<Record<string, Float32Array>>, outputs: Readonly<Record<string, Float32Array>>, options?: RunModelOptions): void;
  describe(): ModelDescription;
  /** frees the kernels and the model's native memory: the arena and the weights (m.graph's weight arrays too) */
  dispose(): void;
}

/** Floats per 64 bytes: the alignment of every buffer a kernel reads in place. */
const ALIGNED_LANES = 16;

/** Seeded sketches the default schedule is picked among (besides the initial schedule and the GEMM seeds). */
export const DEFAULT_SKETCHES = 24;
/** Kernels compiled and verified at once (each verification runs in a worker process of its own). */
const COMPILE_CONCURRENCY = Math.max(1, Math.min(4, availableParallelism()));

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** 'nchw', or 'nchw<B>c' for a blocked twin and a conversion into or out of the blocked layout. */
function layoutName(p: Problem): string {
  const B = layoutBlock(p) ?? /(?:to|from)layout(\d+)/.exec(p.spec)?.[1];
  return B === null || B === undefined ? 'nchw' : `nchw${B}c`;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function loadModel(pathOrBytes: string | Uint8Array, options: LoadModelOptions = {}): Promise<CompiledModel> {
  const bytes = typeof pathOrBytes === 'string' ? await readModelFile(pathOrBytes) : pathOrBytes;
  const where = typeof options.tuned === 'string' ? options.tuned : 'the tuned model';
  const tuned = typeof options.tuned === 'string' ? await readTunedModel(options.tuned) : options.tuned;
  const b = options.target === undefined
    ? (tuned ? backendNamed(tuned.target) : hostBackend())
    : typeof options.target === 'string' ? backendNamed(options.target) : options.target;
  if (b.timing !== 'native' || b.processor !== 'cpu') fail(`loadModel: ${b.name} kernels cannot run in this process (an x86 target can)`);
  if (tuned) checkTunedModelFor(tuned, { sha256: sha256Hex(bytes), target: b.name, where });
  const threads = b.caps.threads ? options.threads ?? tuned?.threads ?? defaultThreads() : 1;
  const badThreads = threadCountError(threads);
  if (badThreads) fail(`loadModel: ${badThreads}`);
  const inputShapes = resolveInputShapes(options.inputShapes, tuned, where);
  const imported = importOnnx(bytes, { ...(inputShapes ? { inputShapes } : {}) });
  const tasks = tuned ? tasksBySpec(tuned) : new Map<string, TunedTask>();

  // tasks tuned in a blocked layout run as their twins, NCHWc kept between them (propagate-layout.ts)
  const blocked = new Map<string, number>();
  for (const n of imported.nodes) {
    if (n.kind !== 'kernel') continue;
    const layout = tasks.get(n.problem.spec)?.layout;
    if (layout !== undefined && layout !== 'nchw') {
      const B = Number(/^nchw(\d+)c$/.exec(layout)![1]);
      if (B !== b.caps.vectorLanes) fail(`${where}: task "${n.problem.spec}" is tuned in layout ${layout}, but ${b.name} runs blocks of ${b.caps.vectorLanes} (nchw${b.caps.vectorLanes}c)`);
      const why = whyNotBlocked(n.problem, B);
      if (why !== null) fail(`${where}: task "${n.problem.spec}" is tuned in layout ${layout}, but it has none: ${why}`);
      blocked.set(n.name, B);
    }
  }
  // weights in aligned native memory (aligned-memory.ts), their JS copies dropped
  const { graph, block: weightMemory } = alignWeights(propagateLayout(imported, blocked));
  // a library task's sgemm reads its tensors dense, as the problem has them
  const library = new Set(graph.nodes.filter((n) => n.kind === 'kernel' && tasks.get(n.task ?? n.problem.spec)?.implementation === 'library').map((n) => n.name));
  const plan = planModelMemory(graph, { rewritable: (n) => !library.has(n.name) });
  let kernels: Map<string, NodeKernel>;
  try {
    kernels = await compileKernels(graph, plan, { b, threads, tasks, where, tunedThreads: tuned?.threads });
  } catch (e) {
    weightMemory.free();
    throw e;
  }
  try {
    return new ModelExecutor(graph, plan, kernels, { target: b.name, threads }, weightMemory);
  } catch (e) {
    for (const k of new Set(kernels.values())) k.dispose();
    weightMemory.free();
    throw e;
  }
}

async function readModelFile(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw fsFailure(e);
  }
}

function resolveInputShapes(given: LoadModelOptions['inputShapes'], tuned: TunedModel | undefined, where: string): Readonly<Record<string, readonly number[]>> | undefined {
  if (!tuned) return given;
  if (!given) return tuned.model.inputShapes;
  for (const [name, shape] of Object.entries(given)) {
    const t = tuned.model.inputShapes[name];
    if (t && (t.length !== shape.length || t.some((n, i) => n !== shape[i]))) {
      fail(`${where}: tuned for input ${name} of shape [${t.join(', ')}], not [${shape.join(', ')}] (compile again for that shape)`);
    }
  }
  return { ...tuned.model.inputShapes, ...given };
}

// ---------------------------------------------------------------- kernels

/** What runs a kernel node; shared by every node with the same problem, layout and schedule. */
type NodeKernel = (
  | { readonly implementation: 'generated'; readonly kernel: CompiledKernel; readonly libraryFallback?: string }
  | { readonly implementation: 'library'; readonly kernel: LibraryKernel; readonly schedule: string }
) & { readonly source: ScheduleSource; readonly dispose: () => void };

interface CompileContext {
  readonly b: Backend;
  readonly threads: number;
  readonly tasks: ReadonlyMap<string, TunedTask>;
  readonly where: string;
  readonly tunedThreads: number | undefined;
}

/** The kernel of every kernel node, by node name: one compileKernel per distinct problem, layout and schedule. */
async function compileKernels(g: ModelGraph, plan: ModelMemoryPlan, c: CompileContext): Promise<Map<string, NodeKernel>> {
  interface Job { problem: Problem; schedule?: Schedule; source: ScheduleSource; library: boolean }
  const jobs = new Map<string, Job>();
  const jobOf = new Map<string, string>();
  const needDefault: Job[] = [];
  g.nodes.forEach((n, i) => {
    if (n.kind !== 'kernel') return;
    const problem = plan.nodes[i]!.problem!;
    const taskSpec = n.task ?? n.problem.spec;
    const task = c.tasks.get(taskSpec);
    const key = `${problem.spec}|${task?.schedule ?? 'default'}`;
    jobOf.set(n.name, key);
    if (jobs.has(key)) return;
    const job: Job = { problem, source: task ? 'tuned' : 'initial default', library: task?.implementation === 'library' };
    if (task) {
      try {
        const s = Schedule.parse(problem, task.schedule);
        // tuned on fewer threads than this run: its outer band parallel here
        job.schedule = c.tunedThreads === undefined || c.tunedThreads >= c.threads ? s : bandedFor(s, c.threads);
      } catch (e) {
        if (e instanceof LoopTuneError) fail(`${c.where}: task "${taskSpec}": ${e.message}`);
        throw e;
      }
    } else if (n.problem.op === 'copy') {
      // a layout conversion (propagate-layout.ts): the nest as given, as tuning timed it
      job.schedule = bandedFor(Schedule.initial(problem), c.threads);
      job.source = 'layout conversion';
    } else {
      needDefault.push(job);
    }
    jobs.set(key, job);
  });
  if (needDefault.length > 0) {
    // loaded only here: TensorFlow.js and the cost model cost ~120 MB resident, which a fully tuned model never needs
    const { costModelRanker } = await import('./tune.ts');
    const predict = await costModelRanker('default', c.b.name, c.threads);
    for (const job of needDefault) {
      const d = await defaultSchedule(job.problem, c.b, c.threads, predict);
      job.schedule = d.schedule;
      job.source = d.source;
    }
  }
  const limit = pLimit(COMPILE_CONCURRENCY);
  const compiled = new Map<string, NodeKernel>();
  const settled = await Promise.allSettled([...jobs].map(([key, job]) => limit(async () => {
    let fallback: string | undefined;
    if (job.library) {
      try {
        const kernel = libraryKernel(job.problem, { threads: c.threads });
        const schedule = job.schedule!.text();
        compiled.set(key, { implementation: 'library', kernel, schedule, source: job.source, dispose: () => kernel.dispose() });
        return;
      } catch (e) {
        fallback = messageOf(e).split('\n')[0]!;
      }
    }
    let kernel: CompiledKernel;
    try {
      kernel = await compileKernel(job.problem, { target: c.b, threads: c.threads, schedule: job.schedule! });
    } catch (e) {
      if (e instanceof LoopTuneError && job.source === 'tuned') fail(`${c.where}: task "${job.problem.spec}": ${e.message}`);
      throw e;
    }
    compiled.set(key, { implementation: 'generated', kernel, source: job.source, dispose: () => kernel.dispose(), ...(fallback !== undefined ? { libraryFallback: fallback } : {}) });
  })));
  // every job has finished (none is left to add a kernel): on a failure, free what was compiled
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    for (const k of compiled.values()) k.dispose();
    throw failed.reason;
  }
  return new Map([...jobOf].map(([node, key]) => [node, compiled.get(key)!]));
}

/** The default schedule of a problem without measurement (see the top of this file). */
async function defaultSchedule(
  problem: Problem, b: Backend, threads: number, predict: ((s: readonly Schedule[]) => number[] | Promise<number[]>) | undefined,
): Promise<{ schedule: Schedule; source: ScheduleSource }> {
  const banded = (s: Schedule): Schedule => bandedFor(s, threads);
  const usable = (s: Schedule): boolean => b.validate?.(s) === undefined;
  const initial = banded(Schedule.initial(problem));
  const seeds = gemmSeeds(problem, b.sketchRegisters, b.maxLoops).map(banded).filter(usable);
  if (!predict) return seeds.length > 0 ? { schedule: seeds[0]!, source: 'register-blocked default' } : { schedule: initial, source: 'initial default' };
  const rng = new Rng(1);
  const candidates = new Map<string, Schedule>();
  for (const s of [initial, ...seeds]) candidates.set(s.hash(), s);
  for (let i = 0; i < DEFAULT_SKETCHES * 2 && candidates.size < DEFAULT_SKETCHES + seeds.length + 1; i++) {
    const s = sampleSketch(problem, rng, b.sketchRegisters, b.maxLoops);
    if (s && usable(banded(s))) candidates.set(banded(s).hash(), banded(s));
  }
  const list = [...candidates.values()];
  const scores = await predict(list);
  let best = 0;
  for (let i = 1; i < list.length; i++) if (scores[i]! > scores[best]!) best = i;
  return { schedule: list[best]!, source: 'cost-model default' };
}

// ---------------------------------------------------------------- the executor

/** A place in a step's argument list that holds a buffer bound per run (a graph input or output). */
interface Patch {
  readonly list: KernelOperand[] | Float32Array[];
  readonly index: number;
}

/** Copies the data of one storage into another storage of the same data (dense, bordered or both). */
function storageCopy(from: Tensor, to: Tensor): (src: Float32Array, dst: Float32Array) => void {
  const fromPadded = isPadded(from), toPadded = isPadded(to);
  if (!fromPadded && !toPadded) return (src, dst) => dst.set(src);
  if (!fromPadded) return (src, dst) => copyIntoStorage(to, src, dst);
  if (!toPadded) return (src, dst) => copyFromStorage(from, src, dst);
  // bordered to bordered: through the rows of the data, each at its own offset in either storage
  const shape = dataShape(from);
  const rank = shape.length;
  const strides = (t: Tensor): number[] => {
    const s = new Array<number>(rank).fill(1);
    for (let d = rank - 2; d >= 0; d--) s[d] = s[d + 1]! * t.shape[d + 1]!;
    return s;
  };
  const fs = strides(from), ts = strides(to);
  const start = (t: Tensor, s: number[]) => s.reduce((a, x, d) => a + x * (t.pad?.before[d] ?? 0), 0);
  const f0 = start(from, fs), t0 = start(to, ts);
  const width = shape[rank - 1]!;
  const rows = product(shape.slice(0, -1));
  const at = new Array<number>(Math.max(0, rank - 1)).fill(0);
  return (src, dst) => {
    at.fill(0);
    for (let r = 0; r < rows; r++) {
      let f = f0, t = t0;
      for (let d = 0; d < rank - 1; d++) {
        f += at[d]! * fs[d]!;
        t += at[d]! * ts[d]!;
      }
      for (let i = 0; i < width; i++) dst[t + i] = src[f + i]!;
      for (let d = rank - 2; d >= 0; d--) {
        if (++at[d]! < shape[d]!) break;
        at[d] = 0;
      }
    }
  };
}

class ModelExecutor implements CompiledModel {
  readonly graph: ModelGraph;
  readonly inputs: readonly ModelValue[];
  readonly outputs: readonly ModelValue[];
  readonly #plan: ModelMemoryPlan;
  readonly #kernels: Map<string, NodeKernel>;
  readonly #description: ModelDescription;
  /** what a run does, in order */
  readonly #steps: (() => void)[] = [];
  /** the node each step belongs to (afterNode), -1 for copies */
  readonly #stepNode: number[] = [];
  /** per graph input / output: the argument slots its caller's array goes into */
  readonly #inputPatches = new Map<string, Patch[]>();
  readonly #outputPatches = new Map<string, Patch[]>();
  /** every buffer's array (inputs and outputs: the last run's caller arrays) */
  readonly #arrays: Float32Array[];
  /** the arena (and bordered weights), and the weights: native, freed by dispose */
  readonly #memory: AlignedBlock[];
  #disposed = false;

  constructor(g: ModelGraph, plan: ModelMemoryPlan, kernels: Map<string, NodeKernel>, info: { target: string; threads: number }, weightMemory: AlignedBlock) {
    this.graph = g;
    this.inputs = g.inputs;
    this.outputs = g.outputs;
    this.#plan = plan;
    this.#kernels = kernels;
    // aligned native memory (aligned-memory.ts): the arena, bordered slots filled with their border
    // value once, here; the weights in a bordered layout after it, each at an aligned offset
    const constants = plan.buffers.filter((buf) => buf.place === 'constant');
    const constantOffsets = new Map<number, number>();
    let end = plan.arenaElements;
    for (const buf of constants) {
      end = Math.ceil(end / ALIGNED_LANES) * ALIGNED_LANES;
      constantOffsets.set(buf.id, end);
      end += buf.elements;
    }
    const memory = new AlignedBlock(end);
    this.#memory = [memory, weightMemory];
    const placeholder = new Float32Array(0);
    this.#arrays = plan.buffers.map((buf) => {
      switch (buf.place) {
        case 'arena': {
          const view = memory.view(buf.offset, buf.elements);
          if (isBordered(buf.storage)) view.fill(buf.storage.pad!.value);
          return view;
        }
        case 'weight': return this.#weight(buf.binding!);
        case 'constant': {
          const view = memory.view(constantOffsets.get(buf.id)!, buf.elements);
          view.set(padded(storageTensor(buf), this.#weight(buf.binding!)));
          return view;
        }
        default: return placeholder; // bound per run
      }
    });
    const bind = (list: KernelOperand[] | Float32Array[], index: number, buffer: number): void => {
      const buf = plan.buffers[buffer]!;
      const patches = buf.place === 'input' ? this.#inputPatches : buf.place === 'output' ? this.#outputPatches : undefined;
      if (patches) {
        const ps = patches.get(buf.binding!) ?? [];
        ps.push({ list, index });
        patches.set(buf.binding!, ps);
      }
      list[index] = this.#arrays[buffer]!;
    };
    const copiesAfter = (step: number) => plan.copies.filter((c) => c.after === step);
    const addCopies = (step: number): void => {
      for (const c of copiesAfter(step)) {
        const copy = storageCopy(storageTensor(plan.buffers[c.from]!), storageTensor(plan.buffers[c.to]!));
        const io: Float32Array[] = [];
        bind(io, 0, c.from);
        bind(io, 1, c.to);
        this.#steps.push(() => copy(io[0]!, io[1]!));
        this.#stepNode.push(-1);
      }
    };
    addCopies(-1);
    g.nodes.forEach((n, i) => {
      const p = plan.nodes[i]!;
      if (!p.alias) {
        this.#steps.push(n.kind === 'kernel' ? this.#kernelStep(n, i, bind) : this.#hostStep(n, i, bind));
        this.#stepNode.push(i);
      } else {
        this.#steps.push(() => undefined);
        this.#stepNode.push(i);
      }
      addCopies(i);
    });
    this.#description = this.#describe(info);
  }

  #weight(name: string): Float32Array {
    const w = this.graph.weights.get(name);
    if (!w) fail(`loadModel: weight '${name}' of ${this.graph.name} is missing`);
    return w.data;
  }

  #kernelStep(n: KernelNode, i: number, bind: (list: KernelOperand[], index: number, buffer: number) => void): () => void {
    const nk = this.#kernels.get(n.name)!;
    const p = this.#plan.nodes[i]!;
    const args: KernelOperand[] = [];
    const out: Float32Array[] = [];
    bind(out, 0, p.writes);
    if (nk.implementation === 'library') {
      const lib = nk.kernel;
      p.reads.forEach((buffer, operand) => bind(args, operand, buffer));
      const tensors = args as Float32Array[];
      return () => lib.run(tensors, out[0]!);
    }
    const k = nk.kernel;
    p.reads.forEach((buffer, operand) => bind(args, operand, buffer));
    return () => k.run(args, out[0]!);
  }

  #hostStep(n: Extract<ModelNode, { kind: 'host' }>, i: number, bind: (list: Float32Array[], index: number, buffer: number) => void): () => void {
    const g = this.graph;
    const shapeOf = (name: string) => (g.values.get(name) ?? g.weights.get(name))!.shape;
    const fn: HostKernel = prepareHostOp(n.op, n.inputs.map(shapeOf), shapeOf(n.output));
    const p = this.#plan.nodes[i]!;
    const args: Float32Array[] = [];
    p.reads.forEach((buffer, k) => bind(args, k, buffer));
    const out: Float32Array[] = [];
    bind(out, 0, p.writes);
    return () => fn(args, out[0]!);
  }

  runInto(inputs: Readonly<Record<string, Float32Array>>, outputs: Readonly<Record<string, Float32Array>>, options: RunModelOptions = {}): void {
    if (this.#disposed) fail('run: the model was disposed');
    for (const v of this.inputs) {
      const x = inputs[v.name];
      const n = product(v.shape);
      if (!(x instanceof Float32Array)) fail(`run: input '${v.name}' not given as a Float32Array (inputs: ${this.inputs.map((i) => `${i.name} [${i.shape.join(', ')}]`).join(', ')})`);
      if (x.length !== n) fail(`run: input '${v.name}' has ${x.length} elements, ${n} expected for shape [${v.shape.join(', ')}]`);
      for (const patch of this.#inputPatches.get(v.name) ?? []) patch.list[patch.index] = x;
    }
    for (const name in inputs) {
      if (!this.inputs.some((v) => v.name === name)) fail(`run: '${name}' is not an input of ${this.graph.name} (inputs: ${this.inputs.map((i) => i.name).join(', ')})`);
    }
    for (const v of this.outputs) {
      const y = outputs[v.name];
      const n = product(v.shape);
      if (!(y instanceof Float32Array)) fail(`runInto: output '${v.name}' not given as a Float32Array (outputs: ${this.outputs.map((o) => `${o.name} [${o.shape.join(', ')}]`).join(', ')})`);
      if (y.length !== n) fail(`runInto: output '${v.name}' has ${y.length} elements, ${n} expected for shape [${v.shape.join(', ')}]`);
      for (const patch of this.#outputPatches.get(v.name) ?? []) patch.list[patch.index] = y;
    }
    const steps = this.#steps;
    const after = options.afterNode;
    const profile = options.profile ? new Map<string, number>() : undefined;
    for (let s = 0; s < steps.length; s++) {
      if (profile) {
        const t0 = performance.now();
        steps[s]!();
        const node = this.#stepNode[s]!;
        const key = node >= 0 ? this.graph.nodes[node]!.name : `copy ${s}`;
        profile.set(key, (profile.get(key) ?? 0) + (performance.now() - t0) / 1000);
      } else steps[s]!();
      if (after && this.#stepNode[s]! >= 0 && this.#stepNode[s + 1] !== this.#stepNode[s]) this.#report(this.#stepNode[s]!, after, inputs, outputs);
    }
    if (profile) options.profile!(profile);
  }

  /** Hands `after` the data of node i's output (its dense copy when it is stored bordered). */
  #report(i: number, after: AfterNode, inputs: Readonly<Record<string, Float32Array>>, outputs: Readonly<Record<string, Float32Array>>): void {
    const n = this.graph.nodes[i]!;
    const planned = this.#plan.nodes[i]!;
    const buf = this.#plan.buffers[planned.writes]!;
    const array = buf.place === 'input' ? inputs[buf.binding!]! : buf.place === 'output' ? outputs[buf.binding!]! : this.#arrays[buf.id]!;
    if (planned.stored) {
      // the buffer holds the value transposed: transpose it back
      const shape = this.graph.values.get(n.output)!.shape;
      const back = planned.stored.perm.map((_, d) => planned.stored!.perm.indexOf(d));
      const data = new Float32Array(product(shape));
      prepareHostOp({ kind: 'transpose', perm: back }, [planned.stored.shape], shape)([array], data);
      after(n, data);
      return;
    }
    if (!isBordered(buf.storage)) {
      after(n, array.slice());
      return;
    }
    const data = new Float32Array(product(dataShape(storageTensor(buf))));
    copyFromStorage(storageTensor(buf), array, data);
    after(n, data);
  }

  run(inputs: Readonly<Record<string, Float32Array>>, options: RunModelOptions = {}): Record<string, Float32Array> {
    const outputs: Record<string, Float32Array> = {};
    for (const v of this.outputs) outputs[v.name] = new Float32Array(product(v.shape));
    this.runInto(inputs, outputs, options);
    return outputs;
  }

  describe(): ModelDescription {
    return this.#description;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const k of new Set(this.#kernels.values())) k.dispose();
    for (const block of this.#memory) block.free();
  }

  #describe(info: { target: string; threads: number }): ModelDescription {
    const g = this.graph, plan = this.#plan;
    const copies: CopyDescription[] = plan.copies.map((c) => ({ value: c.value, elements: c.elements, reason: c.reason }));
    const nodes = g.nodes.map((n, i): NodeDescription => {
      const p = plan.nodes[i]!;
      if (n.kind === 'host') return { name: n.name, kind: 'host', implementation: p.alias ? 'alias' : 'host', op: n.op.kind };
      const nk = this.#kernels.get(n.name)!;
      const base = { name: n.name, kind: 'kernel' as const, spec: n.problem.spec, scheduleSource: nk.source };
      if (nk.implementation === 'library') return { ...base, implementation: 'library', schedule: nk.schedule, library: nk.kernel.library, layout: 'nchw' };
      const k = nk.kernel;
      // what compileKernel still copies on each run of this node: a padded tensor handed over as its data
      n.problem.tensors.forEach((t, ti) => {
        const buf = plan.buffers[ti === 0 ? p.writes : p.reads[ti - 1]!]!;
        const runs = p.problem!.tensors[ti]!;
        if (isPadded(runs) && buf.elements !== product(runs.shape)) {
          copies.push({ value: buf.value, elements: product(dataShape(runs)), reason: `node ${n.name} reads its ${t.name} padded under another shape: staged by compileKernel on each run` });
        }
      });
      return {
        ...base, implementation: 'generated',
        ...(p.problem && p.problem.spec !== n.problem.spec ? { runs: p.problem.spec } : {}),
        schedule: k.schedule.text(), layout: layoutName(n.problem),
        ...(nk.libraryFallback !== undefined ? { libraryFallback: nk.libraryFallback } : {}),
      };
    });
    const tasks = modelTasks(g).map((t) => {
      const ks = new Set(t.nodes.map((name) => this.#kernels.get(name)!));
      return { spec: t.problem.spec, count: t.count, kernels: ks.size, scheduleSource: [...ks][0]!.source };
    });
    let weightBytes = 0;
    for (const w of g.weights.values()) weightBytes += w.data.byteLength;
    return {
      name: g.name, target: info.target, threads: info.threads, nodes, tasks,
      kernels: new Set(this.#kernels.values()).size,
      peakBytes: plan.peakBytes, unsharedBytes: plan.unsharedBytes, weightBytes,
      copies, copiesPerRun: copies.length,
      buffers: plan.buffers.map((buf: PlannedBuffer) => storageSummary(buf)),
    };
  }
}

