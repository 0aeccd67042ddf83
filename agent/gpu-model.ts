/**
 * `loadGpuModel`: a whole ONNX model on the cuda backend, the GPU counterpart of loadModel
 * (agent/compiled-model.ts), over a ModelDevice (agent/gpu-model-device.ts: the GPU through the
 * CUDA driver, or the PTX simulator for tests):
 *
 *   const m = await loadGpuModel('resnet18.onnx', { device: driverDevice(), inputShapes: { input: [8, 3, 224, 224] } });
 *   const { logits } = m.run({ input });
 *   const seconds = m.time({ input }, { runs: 50 });   // CUDA events around the whole graph
 *   m.dispose();
 *
 * At load: the graph is imported and fused as on the CPU (ir/model/onnx-import.ts), its memory
 * planned by the CPU's planner (ir/model/memory-plan.ts: one arena with lifetime-based reuse,
 * padded layers' inputs kept inside their zero (or -Infinity) border and written there by their
 * producers, so no padding copy runs between layers; the border is filled once at load). Every
 * distinct kernel problem (as it runs, with its tensors in the plan's storages) gets one cuda
 * kernel (agent/gpu-model-schedules.ts: the target's first working seed, or a short tune within a
 * budget), verified on the device against the interpreter unless told not to; every buffer is
 * then allocated, the weights uploaded once, and the kernels loaded.
 *
 * A run enqueues, on one stream, in graph order:
 *  - the plan's copies between storages (a graph input into a padded layer's bordered storage) as
 *    copy kernels (agent/gpu-model-copies.ts);
 *  - per kernel node, the clear of its output (cuda kernels of accumulating problems add to it): a
 *    memset of the whole storage when the border already holds the combine's identity, else a fill
 *    kernel over the interior; then its launch;
 *  - host nodes (softmax, layer norm, transposes, broadcasting ops that did not fuse: none in
 *    ResNet-18, whose Flatten is an alias) on the CPU: inputs downloaded, the op run by
 *    targets/runtime/host-ops.ts, the output uploaded. describe() counts them.
 * Graph inputs are uploaded before, outputs downloaded after. Errors: a node no cuda kernel can run
 * gets one line naming the node and why.
 */
import { fail, LoopTuneError } from '../ir/errors.ts';
import { importOnnx, loadOnnxFile } from '../ir/model/onnx-import.ts';
import { modelTasks, type KernelNode, type ModelGraph, type ModelNode, type ModelValue } from '../ir/model/graph.ts';
import { isBordered, planModelMemory, storageSummary, storageTensor, type ModelMemoryPlan } from '../ir/model/memory-plan.ts';
import { copyFromStorage, isPadded, padded } from '../ir/padding.ts';
import { ACCUMULATES, dataShape, elementCount, type Problem } from '../ir/problem.ts';
import { prepareHostOp, type HostKernel } from '../targets/runtime/host-ops.ts';
import type { CudaKernel } from '../targets/cuda/target.ts';
import { copySchedule, interiorFillProblem, storageCopyProblem } from './gpu-model-copies.ts';
import type { DeviceRegion, ModelDevice } from './gpu-model-device.ts';
import {
  firstWorking, isTuned, seedCandidates, tuneKernels, type ChosenKernel, type GpuSchedulePolicy, type GpuScheduleSource,
} from './gpu-model-schedules.ts';

export interface LoadGpuModelOptions {
  readonly device: ModelDevice;
  /** static shapes of inputs whose dims are symbolic (the batch) */
  readonly inputShapes?: Readonly<Record<string, readonly number[]>>;
  /** how each kernel's schedule is chosen (default: the seed path, no measurement) */
  readonly schedules?: GpuSchedulePolicy;
  /** verify every seed-path kernel on the device against the interpreter before use (default true; tuned ones always are) */
  readonly verify?: boolean;
  readonly onProgress?: (line: string) => void;
}

/** How a node runs on the GPU model. */
export type GpuNodeImplementation = 'cuda' | 'host' | 'alias';

/** How a kernel node's output is cleared before its launch (its kernel adds to it). */
export type OutputClear = 'none' | 'memset' | 'fill kernel';

export interface GpuNodeDescription {
  readonly name: string;
  readonly implementation: GpuNodeImplementation;
  /** a host node's op */
  readonly op?: string;
  /** a kernel node's task (problem) */
  readonly spec?: string;
  /** the problem that runs, with its tensors in the plan's storages, when it differs from spec */
  readonly runs?: string;
  readonly schedule?: string;
  readonly source?: GpuScheduleSource;
  readonly clear?: OutputClear;
  /** a host node: fp32 values moved between device and host per run */
  readonly transferred?: number;
}

export interface GpuKernelDescription {
  readonly spec: string;
  readonly schedule: string;
  readonly source: GpuScheduleSource;
  readonly verified: boolean;
  readonly grid: readonly number[];
  readonly block: readonly number[];
  readonly note?: string;
  readonly tuning?: ChosenKernel['tuning'];
}

export interface GpuModelDescription {
  readonly name: string;
  readonly device: string;
  readonly schedules: string;
  readonly nodes: readonly GpuNodeDescription[];
  /** distinct kernel problems of the graph (modelTasks), with the nodes running each */
  readonly tasks: readonly { readonly spec: string; readonly count: number; readonly nodes: readonly string[] }[];
  /** every kernel compiled: node kernels, copies, fills */
  readonly kernels: readonly GpuKernelDescription[];
  /** per run: the plan's copies (as copy kernels), fill kernels, memsets, host ops (through the host) */
  readonly perRun: { readonly copies: number; readonly fills: number; readonly memsets: number; readonly hostOps: number; readonly launches: number };
  /** device memory: the arena (lifetime-based reuse of the CPU memory plan), what it would be unshared, weights */
  readonly arenaBytes: number;
  readonly unsharedBytes: number;
  readonly weightBytes: number;
  readonly buffers: readonly string[];
  /** how host nodes run, in words */
  readonly hostOps: string;
}

/** Called after each node with its output's data (dense, downloaded): for per-node checks. */
export type AfterGpuNode = (node: ModelNode, value: Float32Array) => void;

export interface GpuModel {
  readonly graph: ModelGraph;
  readonly inputs: readonly ModelValue[];
  readonly outputs: readonly ModelValue[];
  /** uploads the inputs, runs the graph, downloads the outputs */
  run(inputs: Readonly<Record<string, Float32Array>>, options?: { afterNode?: AfterGpuNode }): Record<string, Float32Array>;
  /** uploads the inputs, runs `warmup` untimed runs, then `runs` timed ones: GPU seconds per run (events around the graph, transfers excluded) */
  time(inputs: Readonly<Record<string, Float32Array>>, options?: { runs?: number; warmup?: number }): number[];
  /** one run (after the last upload) with events between nodes: GPU seconds per node name ('copies' for the plan's initial copies) */
  profile(): Map<string, number>;
  describe(): GpuModelDescription;
  /** frees the model's device memory; the device itself (and the kernels it loaded) stays the caller's to dispose */
  dispose(): void;
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The combine's identity: what an accumulating kernel's output starts from. */
function identityOf(p: Problem): number {
  return p.combine === 'max' ? -Infinity : 0;
}

/** How a kernel node's output is cleared: by memset where the whole storage may take the identity, else a fill kernel. */
function clearOf(p: Problem): OutputClear {
  if (!ACCUMULATES[p.combine]) return 'none';
  const out = p.tensors[0]!;
  return !isPadded(out) || out.pad!.value === identityOf(p) ? 'memset' : 'fill kernel';
}

export async function loadGpuModel(model: string | Uint8Array | ModelGraph, options: LoadGpuModelOptions): Promise<GpuModel> {
  const shapes = options.inputShapes ? { inputShapes: options.inputShapes } : {};
  const graph = typeof model === 'string' ? await loadOnnxFile(model, shapes) : model instanceof Uint8Array ? importOnnx(model, shapes) : model;
  const plan = planModelMemory(graph);
  const device = options.device;
  const policy = options.schedules ?? { kind: 'seed' };
  const runner = options.verify ?? true ? device.runner : undefined;
  const log = options.onProgress ?? (() => undefined);

  // every distinct problem that runs: the nodes' (as the plan stores their tensors), the copies', the fills'
  const nodeProblems = new Map<string, { problem: Problem; count: number; nodes: string[] }>();
  graph.nodes.forEach((n, i) => {
    if (n.kind !== 'kernel') return;
    const p = plan.nodes[i]!.problem!;
    const entry = nodeProblems.get(p.spec) ?? { problem: p, count: 0, nodes: [] };
    entry.count++;
    entry.nodes.push(n.name);
    nodeProblems.set(p.spec, entry);
  });
  const movers = new Map<string, Problem>();
  for (const c of plan.copies) {
    const p = storageCopyProblem(storageTensor(plan.buffers[c.from]!), storageTensor(plan.buffers[c.to]!));
    movers.set(p.spec, p);
  }
  for (const { problem } of nodeProblems.values()) {
    if (clearOf(problem) === 'fill kernel') {
      const p = interiorFillProblem(problem.tensors[0]!);
      movers.set(p.spec, p);
    }
  }

  const chosen = new Map<string, ChosenKernel>();
  /** why tune failed on a problem that then took the seed path */
  const tuneFailures = new Map<string, string>();
  const toTune = policy.kind === 'tune' ? [...nodeProblems.values()].filter((e) => isTuned(e.problem)) : [];
  if (policy.kind === 'tune' && toTune.length > 0) {
    log(`tuning ${toTune.length} problems within ${policy.budgetSeconds} s`);
    const { tuned, failed } = await tuneKernels(toTune, policy, log);
    for (const c of tuned) chosen.set(c.problem.spec, c);
    for (const f of failed) tuneFailures.set(f.problem.spec, f.why);
  }
  for (const [spec, e] of nodeProblems) {
    if (chosen.has(spec)) continue;
    try {
      const c = await firstWorking(e.problem, seedCandidates(e.problem), runner);
      const why = tuneFailures.get(spec);
      chosen.set(spec, why === undefined ? c : { ...c, note: `tune failed (${why}); ${c.note ?? 'took the seed path'}` });
    } catch (err) {
      if (err instanceof LoopTuneError) fail(`node ${e.nodes[0]} (${spec}): ${err.message}`);
      throw err;
    }
  }
  for (const [spec, p] of movers) {
    try {
      chosen.set(spec, await firstWorking(p, [{ schedule: copySchedule(p), source: 'copy' }], runner));
    } catch (err) {
      if (err instanceof LoopTuneError) fail(`${spec}: ${err.message}`);
      throw err;
    }
  }
  log(`${chosen.size} kernels compiled${runner ? ' and verified' : ''} on ${device.name}`);
  return new GpuModelExecutor(graph, plan, device, chosen, policy);
}

/** One thing a run does (a launch, a memset, a host op). */
type Step = () => void;

class GpuModelExecutor implements GpuModel {
  readonly graph: ModelGraph;
  readonly inputs: readonly ModelValue[];
  readonly outputs: readonly ModelValue[];
  readonly #plan: ModelMemoryPlan;
  readonly #device: ModelDevice;
  readonly #kernels: Map<string, ChosenKernel>;
  readonly #policy: GpuSchedulePolicy;
  /** device memory that is ours to free */
  readonly #allocations: DeviceRegion[] = [];
  /** per planned buffer, its region */
  readonly #regions: DeviceRegion[] = [];
  /** what a run does: group 0 before the first node (copies), group i + 1 node i's (its clear, launch, the copies after it); an alias's is empty */
  readonly #groups: Step[][] = [];
  readonly #nodes: GpuNodeDescription[] = [];
  readonly #perRun = { copies: 0, fills: 0, memsets: 0, hostOps: 0, launches: 0 };
  #disposed = false;

  constructor(g: ModelGraph, plan: ModelMemoryPlan, device: ModelDevice, kernels: Map<string, ChosenKernel>, policy: GpuSchedulePolicy) {
    this.graph = g;
    this.inputs = g.inputs;
    this.outputs = g.outputs;
    this.#plan = plan;
    this.#device = device;
    this.#kernels = kernels;
    this.#policy = policy;
    try {
      this.#allocate();
      for (const k of new Set([...kernels.values()].map((c) => c.kernel))) device.load(k);
      this.#build();
    } catch (e) {
      this.#free();
      throw e;
    }
  }

  #alloc(elements: number): DeviceRegion {
    const r = this.#device.alloc(elements);
    this.#allocations.push(r);
    return r;
  }

  /** Device memory for every buffer: one arena (bordered slots' borders filled here), inputs, outputs, weights (uploaded once). */
  #allocate(): void {
    const plan = this.#plan, d = this.#device;
    const arena = plan.arenaElements > 0 ? this.#alloc(plan.arenaElements) : undefined;
    for (const buf of plan.buffers) {
      let r: DeviceRegion;
      switch (buf.place) {
        case 'arena':
          r = d.view(arena!, buf.offset, buf.elements);
          if (isBordered(buf.storage)) d.fill(r, buf.storage.pad!.value);
          break;
        case 'weight':
          r = this.#alloc(buf.elements);
          d.upload(r, this.#weight(buf.binding!));
          break;
        case 'constant':
          r = this.#alloc(buf.elements);
          d.upload(r, padded(storageTensor(buf), this.#weight(buf.binding!)));
          break;
        default:
          r = this.#alloc(buf.elements);
      }
      this.#regions.push(r);
    }
  }

  #weight(name: string): Float32Array {
    const w = this.graph.weights.get(name);
    if (!w) fail(`loadGpuModel: weight '${name}' of ${this.graph.name} is missing`);
    return w.data;
  }

  #kernel(spec: string): CudaKernel {
    return this.#kernels.get(spec)!.kernel;
  }

  #build(): void {
    const g = this.graph, plan = this.#plan, d = this.#device;
    const regions = this.#regions;
    // the one-element sources of fill kernels, by value
    const constants = new Map<number, DeviceRegion>();
    const constant = (value: number): DeviceRegion => {
      let r = constants.get(value);
      if (!r) {
        r = this.#alloc(1);
        d.upload(r, new Float32Array([value]));
        constants.set(value, r);
      }
      return r;
    };
    const addCopies = (after: number): void => {
      for (const c of plan.copies.filter((x) => x.after === after)) {
        const k = this.#kernel(storageCopyProblem(storageTensor(plan.buffers[c.from]!), storageTensor(plan.buffers[c.to]!)).spec);
        const tensors = [regions[c.to]!, regions[c.from]!];
        this.#groups[after + 1]!.push(() => d.launch(k, tensors));
        this.#perRun.copies++;
        this.#perRun.launches++;
      }
    };
    for (let i = 0; i <= g.nodes.length; i++) this.#groups.push([]);
    addCopies(-1);
    g.nodes.forEach((n, i) => {
      const p = plan.nodes[i]!;
      if (p.alias) {
        this.#nodes.push({ name: n.name, implementation: 'alias', ...(n.kind === 'host' ? { op: n.op.kind } : {}) });
      } else if (n.kind === 'kernel') {
        this.#kernelNode(n, i, constant);
      } else {
        this.#hostNode(n, i);
      }
      addCopies(i);
    });
  }

  #kernelNode(n: KernelNode, i: number, constant: (value: number) => DeviceRegion): void {
    const d = this.#device, p = this.#plan.nodes[i]!;
    const runs = p.problem!;
    const chosen = this.#kernels.get(runs.spec)!;
    const k = chosen.kernel;
    const tensors = [this.#regions[p.writes]!, ...p.reads.map((b) => this.#regions[b]!)];
    runs.tensors.forEach((t, ti) => {
      if (tensors[ti]!.elements !== elementCount(t)) {
        throw new Error(`internal: node ${n.name} tensor ${t.name} holds ${elementCount(t)} values, its buffer ${tensors[ti]!.elements}`);
      }
    });
    const clear = clearOf(runs);
    if (clear === 'memset') {
      const out = tensors[0]!, value = identityOf(runs);
      this.#groups[i + 1]!.push(() => d.fill(out, value));
      this.#perRun.memsets++;
    } else if (clear === 'fill kernel') {
      const fill = this.#kernel(interiorFillProblem(runs.tensors[0]!).spec);
      const args = [tensors[0]!, constant(identityOf(runs))];
      this.#groups[i + 1]!.push(() => d.launch(fill, args));
      this.#perRun.fills++;
      this.#perRun.launches++;
    }
    this.#groups[i + 1]!.push(() => d.launch(k, tensors));
    this.#perRun.launches++;
    this.#nodes.push({
      name: n.name, implementation: 'cuda', spec: n.problem.spec,
      ...(runs.spec !== n.problem.spec ? { runs: runs.spec } : {}),
      schedule: chosen.schedule.text(), source: chosen.source, clear,
    });
  }

  #hostNode(n: Extract<ModelNode, { kind: 'host' }>, i: number): void {
    const g = this.graph, d = this.#device, p = this.#plan.nodes[i]!;
    const shapeOf = (name: string) => (g.values.get(name) ?? g.weights.get(name))!.shape;
    const fn: HostKernel = prepareHostOp(n.op, n.inputs.map(shapeOf), shapeOf(n.output));
    // host copies of what it reads (a weight's own data) and writes
    const reads = p.reads.map((b) => {
      const buf = this.#plan.buffers[b]!;
      return buf.place === 'weight' ? { region: undefined, data: this.#weight(buf.binding!) } : { region: this.#regions[b]!, data: new Float32Array(buf.elements) };
    });
    const out = new Float32Array(this.#plan.buffers[p.writes]!.elements);
    const outRegion = this.#regions[p.writes]!;
    this.#groups[i + 1]!.push(() => {
      for (const r of reads) if (r.region) d.download(r.region, r.data);
      fn(reads.map((r) => r.data), out);
      d.upload(outRegion, out);
    });
    this.#perRun.hostOps++;
    const transferred = reads.reduce((a, r) => a + (r.region ? r.data.length : 0), 0) + out.length;
    this.#nodes.push({ name: n.name, implementation: 'host', op: n.op.kind, transferred });
  }

  #upload(inputs: Readonly<Record<string, Float32Array>>): void {
    if (this.#disposed) fail('run: the GPU model was disposed');
    for (const name in inputs) {
      if (!this.inputs.some((v) => v.name === name)) fail(`run: '${name}' is not an input of ${this.graph.name} (inputs: ${this.inputs.map((i) => i.name).join(', ')})`);
    }
    for (const v of this.inputs) {
      const x = inputs[v.name];
      const n = product(v.shape);
      if (!(x instanceof Float32Array)) fail(`run: input '${v.name}' not given as a Float32Array (inputs: ${this.inputs.map((i) => `${i.name} [${i.shape.join(', ')}]`).join(', ')})`);
      if (x.length !== n) fail(`run: input '${v.name}' has ${x.length} elements, ${n} expected for shape [${v.shape.join(', ')}]`);
      this.#plan.buffers.forEach((buf, b) => {
        if (buf.place === 'input' && buf.binding === v.name) this.#device.upload(this.#regions[b]!, x);
      });
    }
  }

  run(inputs: Readonly<Record<string, Float32Array>>, options: { afterNode?: AfterGpuNode } = {}): Record<string, Float32Array> {
    this.#upload(inputs);
    const after = options.afterNode;
    this.#groups.forEach((steps, k) => {
      for (const step of steps) step();
      if (after && k > 0) this.#report(k - 1, after);
    });
    const outputs: Record<string, Float32Array> = {};
    for (const v of this.outputs) {
      const data = new Float32Array(product(v.shape));
      this.#device.download(this.#regions[this.#plan.outputs.get(v.name)!]!, data);
      outputs[v.name] = data;
    }
    return outputs;
  }

  /** Hands `after` node i's output data: downloaded, moved out of its border or transposed back. */
  #report(i: number, after: AfterGpuNode): void {
    const n = this.graph.nodes[i]!;
    const planned = this.#plan.nodes[i]!;
    const buf = this.#plan.buffers[planned.writes]!;
    const storage = new Float32Array(buf.elements);
    this.#device.download(this.#regions[planned.writes]!, storage);
    const shape = this.graph.values.get(n.output)!.shape;
    if (planned.stored) {
      const back = planned.stored.perm.map((_, d) => planned.stored!.perm.indexOf(d));
      const data = new Float32Array(product(shape));
      prepareHostOp({ kind: 'transpose', perm: back }, [planned.stored.shape], shape)([storage], data);
      after(n, data);
    } else if (isBordered(buf.storage)) {
      const data = new Float32Array(product(dataShape(storageTensor(buf))));
      copyFromStorage(storageTensor(buf), storage, data);
      after(n, data);
    } else {
      after(n, storage);
    }
  }

  #timeParts(what: string): NonNullable<ModelDevice['timeParts']> {
    const t = this.#device.timeParts;
    if (!t) fail(`${what}: ${this.#device.name} has no clock (time on the GPU)`);
    return t;
  }

  time(inputs: Readonly<Record<string, Float32Array>>, options: { runs?: number; warmup?: number } = {}): number[] {
    const runs = options.runs ?? 20, warmup = options.warmup ?? 3;
    if (!Number.isInteger(runs) || runs < 1) fail(`time: runs must be a positive integer, got ${runs}`);
    const timeParts = this.#timeParts('time');
    this.#upload(inputs);
    const all = () => {
      for (const steps of this.#groups) for (const step of steps) step();
    };
    for (let w = 0; w < warmup; w++) all();
    this.#device.synchronize();
    const seconds: number[] = [];
    for (let r = 0; r < runs; r++) seconds.push(timeParts([all])[0]!);
    return seconds;
  }

  profile(): Map<string, number> {
    const timeParts = this.#timeParts('profile');
    if (this.#disposed) fail('profile: the GPU model was disposed');
    const timed = this.#groups.map((steps, k) => ({ k, steps })).filter((x) => x.steps.length > 0);
    const seconds = timeParts(timed.map(({ steps }) => () => steps.forEach((step) => step())));
    return new Map(timed.map(({ k }, j) => [k > 0 ? this.graph.nodes[k - 1]!.name : 'copies', seconds[j]!]));
  }

  describe(): GpuModelDescription {
    const plan = this.#plan;
    let weightBytes = 0;
    for (const buf of plan.buffers) if (buf.place === 'weight' || buf.place === 'constant') weightBytes += buf.elements * 4;
    const kernels = [...this.#kernels.values()].map((c): GpuKernelDescription => ({
      spec: c.problem.spec, schedule: c.schedule.text(), source: c.source, verified: c.verified,
      grid: c.kernel.launch.grid, block: c.kernel.launch.block,
      ...(c.note !== undefined ? { note: c.note } : {}), ...(c.tuning ? { tuning: c.tuning } : {}),
    }));
    return {
      name: this.graph.name,
      device: this.#device.name,
      schedules: this.#policy.kind === 'seed' ? 'the cuda target\'s first working seed (no measurement)' : `tune --target cuda within ${this.#policy.budgetSeconds} s`,
      nodes: this.#nodes,
      tasks: modelTasks(this.graph).map((t) => ({ spec: t.problem.spec, count: t.count, nodes: t.nodes })),
      kernels,
      perRun: { ...this.#perRun },
      arenaBytes: plan.peakBytes, unsharedBytes: plan.unsharedBytes, weightBytes,
      buffers: plan.buffers.map((b) => storageSummary(b)),
      hostOps: this.#perRun.hostOps === 0 ? 'none: every node runs on the GPU'
        : `${this.#perRun.hostOps} host ops run on the CPU per run (targets/runtime/host-ops.ts): inputs downloaded, output uploaded`,
    };
  }

  #free(): void {
    for (const r of this.#allocations) {
      try {
        this.#device.free(r);
      } catch {
        // a reset context took them already
      }
    }
    this.#allocations.length = 0;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#free();
  }
}
