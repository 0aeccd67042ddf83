/**
 * Encodings of a scheduled nest for policies and cost models.
 *
 * Graph form: one node per loop, per tensor and one for the compute statement. Edges:
 *  - `nest`: loop -> next inner loop, and innermost loop -> statement (nesting order);
 *  - `access`: loop -> tensor when the loop moves through that tensor, carrying the stride of one
 *    iteration of the loop in elements and its log2 bucket;
 *  - `compute`: tensor -> statement (the statement reads/writes the tensor).
 * Every node has NODE_FEATURES features: a one-hot kind (loop, tensor, statement) followed by the
 * loop features below plus the loop's parallel flag (loops), or tensor features (tensors), zero-padded.
 *
 * Vector form (LoopTune's): MAX_LOOPS rows x LOOP_FEATURES features, loops outermost first,
 * zero rows past the last loop. Per loop:
 *   0  cursor flag (1 on the cursor's loop)
 *   1  log2(size + 1) / 16
 *   2  log2(tail + 1) / 16
 *   3  1 if the loop's variable is a reduction
 *   4  log2(step) / 16 (how coarse the tile level is)
 *   5..19  histogram over the tensors of log2 of the loop's per-iteration stride in elements:
 *          bucket 0 = stride 0 (loop does not move the tensor), bucket b = 1 + floor(log2(stride)),
 *          clipped to the last bucket; the output counts 1, each input 1.
 * For the cuda target (a policy must see the GPU mapping it edits, and GPU nests are deeper: block,
 * thread and register levels) the vector form has GPU_MAX_LOOPS rows, and appends GPU_MAX_LOOPS x
 * GPU_LOOP_FEATURES more: per loop, bound to blocks, bound to threads, staged in shared memory
 * (depth / 4 for a tensor-core pipeline of `stages` buffers, 1 for the default).
 * CPU observations keep LoopTune's 200 features, so policies trained on them stay loadable. No
 * column of the 10 x 20 is free for the parallel flag (0..4 are always written and 5..19 are the
 * STRIDE_BUCKETS = 15 histogram buckets, all reachable: bucket 14 is any stride >= 8192 elements),
 * so the `parallel` form appends MAX_LOOPS x CPU_LOOP_FEATURES more instead: per loop, 1 when it is
 * in the parallel band. Policies opt in to it (their input size changes); the default stays 200.
 */
import { isReduction, tensorStrides, elementCount } from './problem.ts';
import type { Schedule } from './schedule.ts';

export const MAX_LOOPS = 10;
export const LOOP_FEATURES = 20;
export const STRIDE_BUCKETS = 15;
export const NODE_KINDS = 3;
/** graph loop nodes: the LOOP_FEATURES of the vector form, then the parallel flag */
export const GRAPH_LOOP_FEATURES = LOOP_FEATURES + 1;
export const NODE_FEATURES = NODE_KINDS + GRAPH_LOOP_FEATURES;
export const GPU_LOOP_FEATURES = 3;
export const GPU_MAX_LOOPS = 16;
/** the CPU block of the `parallel` vector form: per loop, whether it is in the parallel band */
export const CPU_LOOP_FEATURES = 1;

/**
 * Which vector form: `gpu` (cuda: 16 rows and the bindings block) or `parallel` (CPU: 10 rows and
 * the parallel-flag block). A boolean is the `gpu` flag (the form's original signature).
 */
export interface VectorForm {
  gpu?: boolean;
  parallel?: boolean;
}

function formOf(form: boolean | VectorForm): Required<VectorForm> {
  const f = typeof form === 'boolean' ? { gpu: form } : form;
  const gpu = f.gpu ?? false;
  const parallel = f.parallel ?? false;
  // GPU nests carry no parallel band (cuda refuses one): the two blocks never combine
  if (gpu && parallel) throw new RangeError('a vector form is either gpu or parallel, not both');
  return { gpu, parallel };
}

export type NodeKind = 'loop' | 'tensor' | 'statement';

export interface GraphNode {
  kind: NodeKind;
  /** loop position, tensor index, or 0 for the statement */
  index: number;
  features: number[];
}

export interface GraphEdge {
  kind: 'nest' | 'access' | 'compute';
  src: number;
  dst: number;
  /** elements one iteration of the loop moves in the tensor (access edges only) */
  stride: number;
  strideBucket: number;
}

export interface LoopGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export function strideBucket(stride: number): number {
  if (stride === 0) return 0;
  return Math.min(STRIDE_BUCKETS - 1, 1 + Math.floor(Math.log2(Math.abs(stride))));
}

const lg = (x: number) => Math.log2(x) / 16;

/** The 20 features of loop i (see the header). */
export function loopFeatures(s: Schedule, i: number, strides = tensorStrides(s.problem)): number[] {
  const l = s.loops[i]!;
  const f = new Array<number>(LOOP_FEATURES).fill(0);
  f[0] = i === s.cursor ? 1 : 0;
  f[1] = lg(l.size + 1);
  f[2] = lg(l.tail + 1);
  f[3] = isReduction(s.problem, l.var) ? 1 : 0;
  f[4] = lg(s.steps[i]!);
  for (const perVar of strides) f[5 + strideBucket(perVar[l.var]! * s.steps[i]!)]! += 1;
  return f;
}

/** Length of the vector observation (with the GPU mapping block for the cuda target, or the parallel block). */
export function vectorSize(form: boolean | VectorForm = false): number {
  const { gpu, parallel } = formOf(form);
  if (gpu) return GPU_MAX_LOOPS * (LOOP_FEATURES + GPU_LOOP_FEATURES);
  return MAX_LOOPS * (LOOP_FEATURES + (parallel ? CPU_LOOP_FEATURES : 0));
}

/**
 * LoopTune's fixed-size observation: MAX_LOOPS x LOOP_FEATURES, flattened row-major; the `gpu` form
 * appends the bindings, the `parallel` form the parallel flags (see the header).
 */
export function vectorEncoding(s: Schedule, form: boolean | VectorForm = false): Float32Array {
  const { gpu, parallel } = formOf(form);
  const v = new Float32Array(vectorSize({ gpu, parallel }));
  const strides = tensorStrides(s.problem);
  const rows = gpu ? GPU_MAX_LOOPS : MAX_LOOPS;
  const n = Math.min(s.loops.length, rows);
  for (let i = 0; i < n; i++) v.set(loopFeatures(s, i, strides), i * LOOP_FEATURES);
  const base = rows * LOOP_FEATURES;
  if (gpu) {
    for (let i = 0; i < n; i++) {
      const l = s.loops[i]!;
      v[base + i * GPU_LOOP_FEATURES] = l.bind === 'block' ? 1 : 0;
      v[base + i * GPU_LOOP_FEATURES + 1] = l.bind === 'thread' ? 1 : 0;
      // a staged loop's pipeline depth (stages_N) as depth / 4: 1 for the default depth (at most 4)
      v[base + i * GPU_LOOP_FEATURES + 2] = l.shared ? (l.stages ?? 4) / 4 : 0;
    }
  }
  if (parallel) for (let i = 0; i < n; i++) v[base + i * CPU_LOOP_FEATURES] = s.loops[i]!.parallel ? 1 : 0;
  return v;
}

function node(kind: NodeKind, index: number, features: number[]): GraphNode {
  const f = new Array<number>(NODE_FEATURES).fill(0);
  f[['loop', 'tensor', 'statement'].indexOf(kind)] = 1;
  features.forEach((x, i) => (f[NODE_KINDS + i] = x));
  return { kind, index, features: f };
}

export function graphEncoding(s: Schedule): LoopGraph {
  const p = s.problem;
  const strides = tensorStrides(p);
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  s.loops.forEach((l, i) => nodes.push(node('loop', i, [...loopFeatures(s, i, strides), l.parallel ? 1 : 0])));
  const tensorBase = nodes.length;
  p.tensors.forEach((t, ti) => {
    // tensor features: is-output, log2 elements, rank
    nodes.push(node('tensor', ti, [ti === 0 ? 1 : 0, lg(elementCount(t)), t.shape.length / 8]));
  });
  const stmt = nodes.length;
  nodes.push(node('statement', 0, [p.combine === 'fma' ? 1 : 0, p.inputs.length / 2]));
  const none = { stride: 0, strideBucket: 0 };
  for (let i = 0; i + 1 < s.loops.length; i++) edges.push({ kind: 'nest', src: i, dst: i + 1, ...none });
  edges.push({ kind: 'nest', src: s.loops.length - 1, dst: stmt, ...none });
  s.loops.forEach((l, i) => {
    strides.forEach((perVar, t) => {
      const stride = perVar[l.var]! * s.steps[i]!;
      if (stride !== 0) edges.push({ kind: 'access', src: i, dst: tensorBase + t, stride, strideBucket: strideBucket(stride) });
    });
  });
  p.tensors.forEach((_, t) => edges.push({ kind: 'compute', src: tensorBase + t, dst: stmt, ...none }));
  return { nodes, edges };
}
