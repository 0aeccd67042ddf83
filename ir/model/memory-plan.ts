/**
 * The memory plan of a ModelGraph run: where every value lives, in which layout, and which copies
 * a run makes. Pure: it decides, the executor (agent/compiled-model.ts) allocates and runs.
 *
 * Storage. A value is stored dense (its shape, row-major) or inside a border: the storage of a
 * padded convolution's or pool's input (ir/problem.ts Padding), so the kernel reads its window
 * with no copy. The producer then writes straight into the interior: its output tensor becomes
 * the bordered storage with the access offset of the interior (what `outpad` does, for any border
 * and any kernel). A value's border is the widest any consumer pads it by (per side), so a 3x3
 * conv (pad 1) and a 1x1 conv (pad 0) read one storage; a consumer padding less than the border,
 * or an epilogue's residual, reads the interior through an access offset (planNode rewrites its
 * problem). Copies remain only where the layouts cannot meet:
 *   - a graph input feeding a padded consumer (the caller's array is dense): one copy per run;
 *   - a value read both dense (by a host op, a reshape, a kernel that cannot be rewritten) and
 *     bordered: one copy, made right after the producer;
 *   - consumers whose borders disagree on the fill value (zero for a conv, -Infinity for a max
 *     pool): one copy for the minority;
 *   - a graph output that is not its producer's own buffer (an alias of an input, a second output
 *     of one buffer): one copy at the end.
 * A reshape (Flatten, Squeeze, Identity) reads its input dense and its output is the same buffer.
 *
 * Transposes that only move whole rows (the innermost dimension stays innermost: BERT's head split
 * [1, S, H, D] -> [1, H, S, D] and merge) run as no copy at all where kernels can take them over:
 * when every consumer of the transposed value is a kernel, each reads the transpose's input
 * through a permuted access; else, when the transpose is the only consumer of a kernel's output,
 * that kernel writes the transposed layout directly. A transpose moving the innermost dimension
 * (BERT's K^T) stays a host op: a kernel reading it would lose its contiguous vectors.
 *
 * Arena. Every value not bound to the caller (graph inputs and outputs) or a weight gets a range
 * of one arena, live from the step that writes it to the last step that reads it (node order,
 * inclusive, so a node's output never shares memory with its inputs). Dense buffers are placed
 * greedy by size (largest first, best-fit gap among the buffers live at the same time: TFLite's
 * GreedyBySize). Bordered buffers share memory only with buffers of the same storage shape and
 * border (slots reused by lifetime), and those slots are never lent to anything else: a border is
 * filled once at load and stays valid because no kernel writes a border.
 */
import { fail } from '../errors.ts';
import { dataShape, elementCount, makeProblem, type Access, type EpilogueOp, type Padding, type Problem, type Tensor } from '../problem.ts';
import { nodeInputs, type KernelNode, type ModelGraph, type ModelNode } from './graph.ts';

/** A value's layout: its shape, dense, or (with `pad`) the storage shape around the data. */
export interface Storage {
  readonly shape: readonly number[];
  readonly pad?: Padding;
}

export type BufferPlace =
  | 'arena' // planned memory, reused by lifetime
  | 'input' // the caller's array of a graph input, bound per run
  | 'output' // the caller's array of a graph output, bound per run
  | 'weight' // a weight's own data, bound at load
  | 'constant'; // a weight in a bordered layout, filled once at load

export interface PlannedBuffer {
  readonly id: number;
  /** the value stored (an alias group's root) */
  readonly value: string;
  /** the values that live in it: the value and the reshapes that alias it */
  readonly values: readonly string[];
  readonly storage: Storage;
  readonly elements: number;
  readonly place: BufferPlace;
  /** the graph input, graph output or weight it is ('input', 'output', 'weight', 'constant') */
  readonly binding?: string;
  /** element offset in the arena ('arena' only; 0 elsewhere) */
  readonly offset: number;
  /** the steps (node indices, inclusive) it is live over */
  readonly first: number;
  readonly last: number;
}

/** A per-run copy of one value from one storage into another (the same data, another layout). */
export interface PlannedCopy {
  readonly value: string;
  readonly from: number;
  readonly to: number;
  /** elements moved (the value's data) */
  readonly elements: number;
  /** the step after which it runs; -1: before the first node */
  readonly after: number;
  readonly reason: string;
}

export interface PlannedNode {
  readonly name: string;
  /** the buffer each of the node's inputs (graph.ts nodeInputs) is read from */
  readonly reads: readonly number[];
  readonly writes: number;
  /** a reshape that is its input's buffer, or a transpose a kernel took over: nothing runs */
  readonly alias: boolean;
  /**
   * where the node's output value lives transposed: `writes` holds transpose(value, perm), of
   * `shape` (a kernel writing a transpose's layout, a transpose its consumers read through)
   */
  readonly stored?: { readonly perm: readonly number[]; readonly shape: readonly number[] };
  /** a kernel node's problem with its tensors in the buffers' storages (the node's own when nothing moved) */
  readonly problem?: Problem;
}

export interface ModelMemoryPlan {
  readonly buffers: readonly PlannedBuffer[];
  /** in graph order */
  readonly nodes: readonly PlannedNode[];
  /** what a run copies, in the order it runs them */
  readonly copies: readonly PlannedCopy[];
  /** the 'output' buffer of each graph output */
  readonly outputs: ReadonlyMap<string, number>;
  /** the arena's size in elements (fp32) */
  readonly arenaElements: number;
  /** the arena's bytes: the peak of activation memory a run needs beside the caller's arrays and the weights */
  readonly peakBytes: number;
  /** what the arena buffers would take without any reuse */
  readonly unsharedBytes: number;
}

export interface MemoryPlanOptions {
  /**
   * Whether a kernel node may run with its tensors in planned storages (its problem's accesses
   * rewritten); false: its operands and output are dense data (a blocked-layout kernel converts
   * them itself). Default: every kernel node may.
   */
  readonly rewritable?: (node: KernelNode) => boolean;
  /** arena offsets are multiples of this many elements (default 16: 64-byte cache lines) */
  readonly alignment?: number;
}

// ---------------------------------------------------------------- the arena

/** One buffer to place: its size and the steps it is live over (inclusive). */
export interface ArenaRequest {
  readonly elements: number;
  readonly first: number;
  readonly last: number;
}

export interface ArenaPlan {
  /** offset of each request, in elements, in request order */
  readonly offsets: readonly number[];
  /** the arena's size: the highest end of any request */
  readonly elements: number;
}

function overlaps(a: ArenaRequest, b: ArenaRequest): boolean {
  return a.first <= b.last && b.first <= a.last;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * Offsets for buffers such that two live at the same step never overlap: largest first, each in
 * the smallest gap left by the already placed buffers it is live with (or above them all).
 */
export function planArena(requests: readonly ArenaRequest[], alignment = 16): ArenaPlan {
  if (!Number.isInteger(alignment) || alignment < 1) fail(`planArena: alignment must be a positive integer, got ${alignment}`);
  requests.forEach((r, i) => {
    if (!Number.isInteger(r.elements) || r.elements < 0) fail(`planArena: request ${i} has ${r.elements} elements (expected a non-negative integer)`);
    if (!(r.first <= r.last)) fail(`planArena: request ${i} is live from step ${r.first} to ${r.last} (first must not be after last)`);
  });
  const order = requests.map((_, i) => i).sort((a, b) => requests[b]!.elements - requests[a]!.elements || requests[a]!.first - requests[b]!.first || a - b);
  const offsets = new Array<number>(requests.length).fill(0);
  const placed: number[] = [];
  let top = 0;
  for (const i of order) {
    const r = requests[i]!;
    const size = roundUp(r.elements, alignment);
    const live = placed.filter((j) => overlaps(requests[j]!, r)).sort((a, b) => offsets[a]! - offsets[b]!);
    let best = -1, bestGap = Infinity, end = 0;
    for (const j of live) {
      const gap = offsets[j]! - end;
      if (gap >= size && gap < bestGap) {
        best = end;
        bestGap = gap;
      }
      end = Math.max(end, offsets[j]! + roundUp(requests[j]!.elements, alignment));
    }
    offsets[i] = best >= 0 ? best : end;
    placed.push(i);
    top = Math.max(top, offsets[i]! + size);
  }
  return { offsets, elements: top };
}

// ---------------------------------------------------------------- storages

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

function isBordered(s: Storage): boolean {
  return s.pad !== undefined && [...s.pad.before, ...s.pad.after].some((x) => x > 0);
}

/** The storage of a value of `shape` inside a border of `before`/`after` per dimension filled with `value`. */
function borderedStorage(shape: readonly number[], before: readonly number[], after: readonly number[], value: number): Storage {
  if ([...before, ...after].every((x) => x === 0)) return { shape };
  return { shape: shape.map((n, d) => n + before[d]! + after[d]!), pad: { before, after, value } };
}

/** A key equal for equal storages (shape, border and fill value). */
function storageKey(s: Storage): string {
  return isBordered(s) ? `${s.shape.join('x')}|${s.pad!.before.join(',')}|${s.pad!.after.join(',')}|${s.pad!.value}` : `${s.shape.join('x')}|dense`;
}

function storageText(s: Storage): string {
  if (!isBordered(s)) return 'dense';
  const b = s.pad!;
  const all = [...b.before, ...b.after];
  const border = all.every((x) => x === all[0]) ? `${all[0]}` : `${b.before.join(',')}/${b.after.join(',')}`;
  return `border ${border}${b.value === 0 ? '' : ` of ${b.value}`}`;
}

/**
 * What one operand of a node accepts: dense data only, or (a kernel that may be rewritten, whose
 * problem tensor has the value's shape) any storage whose border covers the tensor's own padding
 * with the same fill value.
 */
type Need = { readonly kind: 'dense' } | { readonly kind: 'border'; readonly pad: Padding | undefined };

/** Whether storage `s` of a value can be read by an operand needing `need`. */
function serves(s: Storage, need: Need): boolean {
  if (need.kind === 'dense') return !isBordered(s);
  const p = need.pad;
  if (p === undefined || [...p.before, ...p.after].every((x) => x === 0)) return true;
  if (!isBordered(s)) return false;
  const b = s.pad!;
  return b.value === p.value || Object.is(b.value, p.value)
    ? p.before.every((x, d) => x <= b.before[d]!) && p.after.every((x, d) => x <= b.after[d]!)
    : false;
}

function paddedNeed(need: Need): need is { kind: 'border'; pad: Padding } {
  return need.kind === 'border' && need.pad !== undefined && [...need.pad.before, ...need.pad.after].some((x) => x > 0);
}

// ---------------------------------------------------------------- problem rewrites

/** Row-major strides of a shape. */
function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

/** The access of tensor `t` of `p` (output, inputs, epilogue operands: ABI order). */
function accessOf(p: Problem, t: number): Access {
  if (t === 0) return p.output;
  if (t <= p.inputs.length) return p.inputs[t - 1]!;
  const e = (p.epilogue ?? []).flatMap((op) => (op.kind === 'bias' || op.kind === 'residual' ? [op.access] : []));
  return e[t - 1 - p.inputs.length]!;
}

/**
 * `access` of tensor `from` moved into storage `to` (the same data shape, a wider border): its
 * constant offset re-expressed per dimension, shifted by the extra border, in `to`'s strides.
 */
function movedAccess(access: Access, from: Tensor, to: Storage): Access {
  const fromStrides = stridesOf(from.shape);
  let rest = access.offset ?? 0;
  const constant = fromStrides.map((s) => {
    const c = Math.floor(rest / s);
    rest -= c * s;
    return c;
  });
  const toStrides = stridesOf(to.shape);
  let offset = 0;
  for (let d = 0; d < to.shape.length; d++) {
    const shift = (to.pad?.before[d] ?? 0) - (from.pad?.before[d] ?? 0);
    offset += (constant[d]! + shift) * toStrides[d]!;
  }
  const { offset: _old, ...plain } = access;
  return offset > 0 ? { ...plain, offset } : plain;
}

/**
 * `p` with tensor t stored in `storages[t]` where given (a bordered storage of the tensor's data
 * shape): the tensor's shape and padding become the storage's and its access reads or writes the
 * same data there. The spec says where each moved tensor lives.
 */
export function withStorages(p: Problem, storages: readonly (Storage | undefined)[]): Problem {
  const tensors = [...p.tensors];
  const accesses = p.tensors.map((_, t) => accessOf(p, t));
  const moved: string[] = [];
  storages.forEach((s, t) => {
    if (s === undefined) return;
    const from = p.tensors[t]!;
    if (!sameDims(dataShape(from), dataShape({ name: from.name, shape: s.shape, ...(s.pad ? { pad: s.pad } : {}) }))) {
      fail(`memory plan: tensor ${from.name} of ${p.spec} has data [${dataShape(from).join(', ')}], its storage holds a different shape`);
    }
    if (storageKey(s) === storageKey({ shape: from.shape, ...(from.pad ? { pad: from.pad } : {}) })) return;
    tensors[t] = { name: from.name, shape: s.shape, ...(s.pad ? { pad: s.pad } : {}) };
    accesses[t] = movedAccess(accesses[t]!, from, s);
    moved.push(`${from.name} in ${s.shape.join('x')} at ${accesses[t]!.offset ?? 0}`);
  });
  if (moved.length === 0) return p;
  let e = p.inputs.length;
  const epilogue: EpilogueOp[] | undefined = p.epilogue?.map((op) => (op.kind === 'bias' || op.kind === 'residual' ? { ...op, access: accesses[++e]! } : op));
  return makeProblem({
    ...p,
    spec: `${p.spec} [${moved.join('; ')}]`,
    tensors,
    output: accesses[0]!,
    inputs: accesses.slice(1, 1 + p.inputs.length),
    ...(epilogue ? { epilogue } : {}),
  });
}

/**
 * `p` with tensor t stored transposed, in an array of `storage`'s shape: storage dimension e
 * holds the tensor's dimension K[order[e]], K being the tensor's dimensions of size above 1 (the
 * size-1 ones, always at index 0, are dropped). The tensor must be dense and unpadded.
 */
export function withTransposedTensor(p: Problem, t: number, storage: readonly number[], order: readonly number[]): Problem {
  const from = p.tensors[t]!;
  const access = accessOf(p, t);
  if (isPadded(from) || (access.offset ?? 0) !== 0) fail(`memory plan: tensor ${from.name} of ${p.spec} is padded; it cannot be read transposed`);
  const kept = from.shape.map((n, d) => (n !== 1 ? d : -1)).filter((d) => d >= 0);
  if (order.length !== kept.length || storage.length !== kept.length || order.some((j, e) => from.shape[kept[j]!] !== storage[e])) {
    fail(`memory plan: tensor ${from.name} [${from.shape.join(', ')}] of ${p.spec} is not [${storage.join(', ')}] transposed by (${order.join(', ')})`);
  }
  const tensors = [...p.tensors];
  tensors[t] = { name: from.name, shape: [...storage] };
  const moved: Access = { tensor: t, index: order.map((j) => access.index[kept[j]!]!) };
  let e = p.inputs.length;
  const epilogue: EpilogueOp[] | undefined = p.epilogue?.map((op) => (op.kind === 'bias' || op.kind === 'residual' ? (++e === t ? { ...op, access: moved } : op) : op));
  return makeProblem({
    ...p,
    spec: `${p.spec} [${from.name} as ${storage.join('x')} by (${order.join(',')})]`,
    tensors,
    output: t === 0 ? moved : p.output,
    inputs: p.inputs.map((a, i) => (i + 1 === t ? moved : a)),
    ...(epilogue ? { epilogue } : {}),
  });
}

function squeeze(shape: readonly number[]): number[] {
  return shape.filter((n) => n !== 1);
}

/** A transpose by `perm` of `x` over the dimensions of size above 1: output dimension j reads input dimension q[j]. */
function squeezedPerm(x: readonly number[], perm: readonly number[]): number[] {
  const kept = x.map((n, d) => (n !== 1 ? d : -1)).filter((d) => d >= 0);
  return perm.filter((p) => x[p] !== 1).map((p) => kept.indexOf(p));
}

function inverse(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

function isPadded(t: Tensor): boolean {
  return t.pad !== undefined && [...t.pad.before, ...t.pad.after].some((x) => x > 0);
}

// ---------------------------------------------------------------- the plan

interface Use {
  readonly node: number;
  readonly need: Need;
}

interface BufferDraft {
  id: number;
  value: string;
  values: string[];
  storage: Storage;
  place: BufferPlace;
  binding?: string;
  first: number;
  last: number;
}

/** Plans the storages, copies and arena of a run of `g` (see the top of this file). */
export function planModelMemory(g: ModelGraph, options: MemoryPlanOptions = {}): ModelMemoryPlan {
  const rewritable = options.rewritable ?? (() => true);
  const alignment = options.alignment ?? 16;
  const end = g.nodes.length - 1;
  const shapeOf = (name: string): readonly number[] => {
    const v = g.values.get(name) ?? g.weights.get(name);
    if (!v) fail(`memory plan: '${name}' is neither a value nor a weight of ${g.name}`);
    return v.shape;
  };
  const producer = new Map<string, number>();
  g.nodes.forEach((n, i) => {
    if (producer.has(n.output) || g.inputs.some((x) => x.name === n.output)) fail(`memory plan: value '${n.output}' of ${g.name} is written twice`);
    producer.set(n.output, i);
  });
  const isAlias = (n: ModelNode): boolean => n.kind === 'host' && n.op.kind === 'reshape';
  const needOf = (n: ModelNode, operand: number, name: string): Need => {
    if (n.kind !== 'kernel' || !rewritable(n)) return { kind: 'dense' };
    const t = n.problem.tensors[operand + 1]!;
    // a tensor read under another shape (a matmul over [1, S, K] as [S, K]) is read dense
    if (!sameDims(dataShape(t), shapeOf(name))) return { kind: 'dense' };
    return { kind: 'border', pad: t.pad };
  };
  const uses = new Map<string, Use[]>();
  g.nodes.forEach((n, i) => nodeInputs(n).forEach((name, k) => {
    const list = uses.get(name) ?? [];
    list.push({ node: i, need: needOf(n, k, name) });
    uses.set(name, list);
  }));
  const graphOutputs = new Set(g.outputs.map((o) => o.name));

  // transposes kernels take over (see the top of this file): the producer writing the output's layout
  const transposeOf = (n: ModelNode): readonly number[] | undefined => (n.kind === 'host' && n.op.kind === 'transpose' ? n.op.perm : undefined);
  const keepsRows = (q: readonly number[]): boolean => q.length === 0 || q[q.length - 1] === q.length - 1;
  const producerFold = new Map<number, { transpose: number; y: string; q: number[] }>();
  g.nodes.forEach((t, ti) => {
    const perm = transposeOf(t);
    if (!perm) return;
    const x = nodeInputs(t)[0]!, y = t.output;
    const pi = producer.get(x);
    const p = pi === undefined ? undefined : g.nodes[pi]!;
    if (!p || p.kind !== 'kernel' || !rewritable(p) || graphOutputs.has(x)) return;
    if ((uses.get(x) ?? []).length !== 1) return;
    const out = p.problem.tensors[0]!;
    if (isPadded(out) || (p.problem.output.offset ?? 0) !== 0 || !sameDims(squeeze(out.shape), squeeze(shapeOf(x)))) return;
    if ((uses.get(y) ?? []).some((u) => paddedNeed(u.need))) return;
    const q = squeezedPerm(shapeOf(x), perm);
    if (keepsRows(q)) producerFold.set(pi!, { transpose: ti, y, q });
  });
  const foldedByProducer = new Set([...producerFold.values()].map((f) => f.transpose));
  /** values read through a transposed access: the buffer of the transpose's input, and the order */
  const views = new Map<string, { buffer: number; order: number[]; storage: number[] }>();

  const buffers: BufferDraft[] = [];
  /** the buffers of each value or weight, by storage key */
  const forms = new Map<string, Map<string, number>>();
  const copies: { value: string; from: number; to: number; after: number; reason: string }[] = [];
  const newBuffer = (value: string, storage: Storage, place: BufferPlace, first: number, binding?: string): number => {
    const id = buffers.length;
    buffers.push({ id, value, values: [value], storage, place, first, last: first, ...(binding !== undefined ? { binding } : {}) });
    return id;
  };
  const addForm = (name: string, buffer: number): void => {
    const m = forms.get(name) ?? new Map<string, number>();
    m.set(storageKey(buffers[buffer]!.storage), buffer);
    forms.set(name, m);
  };

  /**
   * The storages `name` needs beyond `primary` (one per distinct fill value of padded consumers,
   * bordered as the widest of them; a dense one for consumers that need dense data), each a copy.
   */
  const extraStorages = (name: string, primary: Storage): { storage: Storage; reason: string }[] => {
    const shape = shapeOf(name);
    const list = (uses.get(name) ?? []).filter((u) => !serves(primary, u.need));
    const out: { storage: Storage; reason: string }[] = [];
    if (list.some((u) => u.need.kind === 'dense')) out.push({ storage: { shape }, reason: 'read dense (a host op, a reshape or a kernel in its own layout) and bordered' });
    const padded = list.map((u) => u.need).filter(paddedNeed);
    for (const value of [...new Set(padded.map((p) => p.pad.value))]) {
      const same = padded.filter((p) => Object.is(p.pad.value, value));
      const before = shape.map((_, d) => Math.max(...same.map((p) => p.pad.before[d]!)));
      const after = shape.map((_, d) => Math.max(...same.map((p) => p.pad.after[d]!)));
      const reason = isBordered(primary)
        ? `padded by consumers with border value ${value} as well as ${primary.pad!.value}`
        : producer.has(name) ? 'padded by a consumer, written dense by its producer' : 'a graph input read padded';
      out.push({ storage: borderedStorage(shape, before, after, value), reason });
    }
    return out;
  };

  /** The storage the producer writes: bordered for its padded consumers when it can write there, else dense. */
  const primaryStorage = (name: string, canWrite: boolean): Storage => {
    const shape = shapeOf(name);
    const padded = (uses.get(name) ?? []).map((u) => u.need).filter(paddedNeed);
    if (!canWrite || padded.length === 0) return { shape };
    // the fill value most padded consumers want (the first on a tie); the others get a copy
    const counts = new Map<number, number>();
    for (const p of padded) counts.set(p.pad.value, (counts.get(p.pad.value) ?? 0) + 1);
    const value = [...counts.entries()].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
    const same = padded.filter((p) => Object.is(p.pad.value, value));
    return borderedStorage(shape, shape.map((_, d) => Math.max(...same.map((p) => p.pad.before[d]!))), shape.map((_, d) => Math.max(...same.map((p) => p.pad.after[d]!))), value);
  };

  const addExtras = (name: string, primary: number, after: number): void => {
    for (const extra of extraStorages(name, buffers[primary]!.storage)) {
      const key = storageKey(extra.storage);
      if (forms.get(name)?.has(key)) continue;
      const id = newBuffer(name, extra.storage, 'arena', Math.max(0, after));
      addForm(name, id);
      copies.push({ value: name, from: primary, to: id, after, reason: extra.reason });
    }
  };

  // graph inputs: the caller's dense arrays; padded consumers read a copy made before the first node
  for (const v of g.inputs) {
    const id = newBuffer(v.name, { shape: v.shape }, 'input', 0, v.name);
    addForm(v.name, id);
    addExtras(v.name, id, -1);
  }
  // weights: their own data; a padded consumer's bordered layout is made once at load
  for (const [name, w] of g.weights) {
    if (!uses.has(name)) continue;
    const id = newBuffer(name, { shape: w.shape }, 'weight', 0, name);
    addForm(name, id);
    for (const extra of extraStorages(name, { shape: w.shape })) {
      const c = newBuffer(name, extra.storage, 'constant', 0, name);
      addForm(name, c);
    }
  }

  const planned: { name: string; writes: number; alias: boolean; stored?: PlannedNode['stored']; permutedOutput?: { order: number[]; storage: number[] } }[] = [];
  g.nodes.forEach((n, i) => {
    const perm = transposeOf(n);
    if (perm && foldedByProducer.has(i)) {
      // its producer wrote the transposed layout: the output is that buffer
      planned.push({ name: n.name, writes: forms.get(n.output)!.get(storageKey({ shape: shapeOf(n.output) }))!, alias: true });
      return;
    }
    if (perm) {
      const x = nodeInputs(n)[0]!, y = n.output;
      const dense = forms.get(x)?.get(storageKey({ shape: shapeOf(x) }));
      const q = squeezedPerm(shapeOf(x), perm);
      const readers = uses.get(y) ?? [];
      const kernelsTakeIt = dense !== undefined && !graphOutputs.has(y) && readers.length > 0 && keepsRows(q) && readers.every((u) => {
        const c = g.nodes[u.node]!;
        if (c.kind !== 'kernel' || !rewritable(c)) return false;
        return nodeInputs(c).every((name, k) => {
          if (name !== y) return true;
          const t = c.problem.tensors[k + 1]!;
          return !isPadded(t) && sameDims(squeeze(dataShape(t)), squeeze(shapeOf(y)));
        });
      });
      if (kernelsTakeIt && dense !== undefined) {
        views.set(y, { buffer: dense, order: inverse(q), storage: squeeze(shapeOf(x)) });
        planned.push({ name: n.name, writes: dense, alias: true, stored: { perm: inverse(perm), shape: shapeOf(x) } });
        return;
      }
    }
    const fold = producerFold.get(i);
    if (fold) {
      // writes the transpose's output layout: the transposed value's buffer
      const id = newBuffer(fold.y, { shape: shapeOf(fold.y) }, 'arena', i);
      addForm(fold.y, id);
      const t = g.nodes[fold.transpose]!;
      planned.push({
        name: n.name, writes: id, alias: false,
        stored: { perm: transposeOf(t)!, shape: shapeOf(fold.y) }, permutedOutput: { order: fold.q, storage: squeeze(shapeOf(fold.y)) },
      });
      addExtras(fold.y, id, i);
      return;
    }
    if (isAlias(n)) {
      // the reshape's output is its input's dense buffer, under another shape
      const input = nodeInputs(n)[0]!;
      const dense = forms.get(input)?.get(storageKey({ shape: shapeOf(input) }));
      if (dense === undefined) fail(`memory plan: reshape '${n.name}' reads '${input}', which has no dense storage`);
      const b = buffers[dense]!;
      b.values.push(n.output);
      forms.set(n.output, new Map([[storageKey({ shape: shapeOf(n.output) }), dense]]));
      planned.push({ name: n.name, writes: dense, alias: true });
      addExtras(n.output, dense, i);
      return;
    }
    const writesOwnShape = n.kind === 'kernel' && rewritable(n) && sameDims(dataShape(n.problem.tensors[0]!), shapeOf(n.output));
    const storage = primaryStorage(n.output, writesOwnShape && !graphOutputs.has(n.output));
    const id = newBuffer(n.output, storage, 'arena', i);
    addForm(n.output, id);
    planned.push({ name: n.name, writes: id, alias: false });
    addExtras(n.output, id, i);
  });

  // what each node reads: the first storage of the value that serves the operand
  const reads: number[][] = g.nodes.map((n, i) => nodeInputs(n).map((name, k) => {
    // a transpose taken over reads nothing; a value read through a transposed access, its source
    if (transposeOf(n) && planned[i]!.alias) return planned[i]!.writes;
    const view = views.get(name);
    if (view) {
      buffers[view.buffer]!.last = Math.max(buffers[view.buffer]!.last, i);
      return view.buffer;
    }
    const need = needOf(n, k, name);
    const m = forms.get(name);
    if (!m) fail(`memory plan: node '${n.name}' reads '${name}' before it is written`);
    const served = [...m.values()].find((b) => serves(buffers[b]!.storage, need));
    if (served === undefined) fail(`memory plan: no storage of '${name}' serves node '${n.name}'`);
    const b = buffers[served]!;
    b.last = Math.max(b.last, i);
    return served;
  }));
  for (const c of copies) buffers[c.from]!.last = Math.max(buffers[c.from]!.last, Math.max(0, c.after));

  // graph outputs: their own dense buffer bound to the caller's array where it is free, else a copy at the end
  const outputs = new Map<string, number>();
  for (const o of g.outputs) {
    const dense = forms.get(o.name)?.get(storageKey({ shape: o.shape }));
    const source = dense ?? [...(forms.get(o.name)?.values() ?? [])][0];
    if (source === undefined) fail(`memory plan: graph output '${o.name}' of ${g.name} is never written`);
    const b = buffers[source]!;
    if (dense !== undefined && b.place === 'arena') {
      b.place = 'output';
      b.binding = o.name;
      outputs.set(o.name, source);
      continue;
    }
    const id = newBuffer(o.name, { shape: o.shape }, 'output', end, o.name);
    b.last = Math.max(b.last, end);
    copies.push({ value: o.name, from: source, to: id, after: end, reason: b.place === 'output' ? 'a second graph output of one buffer' : b.place === 'arena' ? 'a graph output stored bordered' : `a graph output that is a graph ${b.place}` });
    outputs.set(o.name, id);
  }

  // the arena: bordered buffers in slots of their own storage (borders stay valid), dense ones greedy by size
  const arena = buffers.filter((b) => b.place === 'arena');
  const slotOf = new Map<number, number>();
  const slots: { key: string; elements: number; last: number }[] = [];
  for (const b of [...arena].filter((x) => isBordered(x.storage)).sort((x, y) => x.first - y.first || x.id - y.id)) {
    const key = storageKey(b.storage);
    let s = slots.findIndex((x) => x.key === key && x.last < b.first);
    if (s < 0) {
      s = slots.length;
      slots.push({ key, elements: product(b.storage.shape), last: b.last });
    } else {
      slots[s]!.last = b.last;
    }
    slotOf.set(b.id, s);
  }
  const dense = arena.filter((b) => !isBordered(b.storage));
  const requests: ArenaRequest[] = [
    ...slots.map((s) => ({ elements: s.elements, first: -1, last: end + 1 })),
    ...dense.map((b) => ({ elements: product(b.storage.shape), first: b.first, last: b.last })),
  ];
  const placement = planArena(requests, alignment);
  const offsetOf = new Map<number, number>();
  for (const [id, s] of slotOf) offsetOf.set(id, placement.offsets[s]!);
  dense.forEach((b, i) => offsetOf.set(b.id, placement.offsets[slots.length + i]!));

  const final: PlannedBuffer[] = buffers.map((b) => ({
    id: b.id, value: b.value, values: b.values, storage: b.storage, elements: product(b.storage.shape), place: b.place,
    ...(b.binding !== undefined ? { binding: b.binding } : {}),
    offset: offsetOf.get(b.id) ?? 0, first: b.first, last: b.last,
  }));
  const nodes: PlannedNode[] = g.nodes.map((n, i) => {
    const p = planned[i]!;
    const base = { name: p.name, reads: reads[i]!, writes: p.writes, alias: p.alias, ...(p.stored ? { stored: p.stored } : {}) };
    if (n.kind !== 'kernel') return base;
    if (!rewritable(n)) return { ...base, problem: n.problem };
    const storages = [p.writes, ...reads[i]!].map((b) => (isBordered(final[b]!.storage) ? final[b]!.storage : undefined));
    let problem = withStorages(n.problem, storages);
    if (p.permutedOutput) problem = withTransposedTensor(problem, 0, p.permutedOutput.storage, p.permutedOutput.order);
    n.operands.forEach((name, k) => {
      const view = views.get(name);
      if (view) problem = withTransposedTensor(problem, k + 1, view.storage, view.order);
    });
    return { ...base, problem };
  });
  const order = (c: { after: number }) => c.after;
  return {
    buffers: final,
    nodes,
    copies: [...copies].sort((a, b) => order(a) - order(b)).map((c) => ({ ...c, elements: product(shapeOf(c.value)) })),
    outputs,
    arenaElements: placement.elements,
    peakBytes: placement.elements * 4,
    unsharedBytes: 4 * (slots.reduce((a, s) => a + s.elements, 0) + dense.reduce((a, b) => a + product(b.storage.shape), 0)),
  };
}

/** One line per buffer of a plan's storage decisions, for describe() and debugging. */
export function storageSummary(b: PlannedBuffer): string {
  return `${b.values.join(' = ')}: ${storageText(b.storage)}, ${b.place}${b.place === 'arena' ? ` @${b.offset}` : ''}, steps ${b.first}..${b.last}`;
}

export { isBordered, storageText };

/** The tensor a buffer's storage is, named after its value (for ir/padding.ts's copies). */
export function storageTensor(b: PlannedBuffer): Tensor {
  return { name: b.value, shape: b.storage.shape, ...(b.storage.pad ? { pad: b.storage.pad } : {}) };
}

/** Element count of a storage (border included). */
export function storageElements(s: Storage): number {
  return elementCount({ name: '', shape: s.shape });
}
