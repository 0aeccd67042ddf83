/**
 * A whole model as looptune runs it: named fp32 tensors and a topological list of nodes. A kernel
 * node is a Problem (ir/problem.ts) with its fused epilogue, run by a generated kernel; a host node
 * is an op with no Problem form (softmax, layer norm, reshape, broadcasting elementwise ops that did
 * not fuse...), run in JavaScript by the executor. ir/model/onnx-import.ts builds one from an ONNX
 * file, ir/model/fuse.ts rewrites it, ir/model/reference.ts runs it as the oracle.
 *
 * Every tensor is fp32, dense and row-major (NCHW for images). A name is either a value (a graph
 * input or a node's output, computed at run time) or a weight (an initializer or a folded
 * constant, its data fixed at load); no name is both.
 */
import type { Problem } from '../problem.ts';

export interface ModelValue {
  readonly name: string;
  readonly shape: readonly number[];
}

/** An initializer or folded constant, already in the layout the kernel reads (conv weights [K, C/G, window...], matmul B [K, N]). */
export interface ModelWeight extends ModelValue {
  readonly data: Float32Array;
}

/**
 * Run by a generated kernel. The kernel ABI is (output, ...operands): the problem's inputs in
 * order, then its epilogue's tensors (bias, residual). Each operand (a value or weight name) and
 * the output value hold exactly the element count of the problem tensor's DATA (ir/problem.ts
 * dataShape, without a padding border), so they can be handed to compileKernel as they are; a
 * value's own shape may differ from the problem tensor's (a matmul over [1, S, K] reads it as
 * [S, K]) but never its element count.
 */
export interface KernelNode {
  readonly kind: 'kernel';
  /** unique among the graph's nodes */
  readonly name: string;
  readonly problem: Problem;
  /** the value it writes */
  readonly output: string;
  readonly operands: readonly string[];
  /** the ONNX nodes fused into it, in graph order */
  readonly sources: readonly string[];
  /** the spec of the tuned task that runs it when that is not its problem's: a blocked twin's
   *  layer (propagate-layout.ts), whose task's schedule is of the twin */
  readonly task?: string;
}

/** Broadcasting (numpy rules, as ONNX) binary ops: out = a op b. */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow';
export const BINARY_OPS: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow'];

/** Unary ops, elementwise: gelu is x/2 * (1 + erf(x/sqrt 2)), the erf form. */
export type UnaryOp = 'relu' | 'sigmoid' | 'erf' | 'sqrt' | 'gelu';
export const UNARY_OPS: readonly UnaryOp[] = ['relu', 'sigmoid', 'erf', 'sqrt', 'gelu'];

/**
 * What a host node computes. Axes are non-negative (normalized at import). Inputs per kind:
 *   binary      [a, b], each broadcast to the output shape
 *   unary, clip [x]
 *   softmax     [x]: exp(x - max) / sum, over `axis`
 *   layernorm   [x, gamma, beta]: (x - mean) / sqrt(var + epsilon) * gamma + beta, mean and
 *               (biased) variance over the dimensions axis..rank-1; gamma and beta have those dimensions' shape
 *   transpose   [x]: out dimension i is x's dimension perm[i]
 *   concat      [x0, x1, ...] along `axis`
 *   reshape     [x]: the same data under the output's shape (an alias; Flatten, Squeeze, Identity too)
 *   reducemean  [x]: the mean over `axes`, which stay as size 1 when keepdims
 */
export type HostOp =
  | { readonly kind: 'binary'; readonly op: BinaryOp }
  | { readonly kind: 'unary'; readonly op: UnaryOp }
  | { readonly kind: 'clip'; readonly min: number; readonly max: number }
  | { readonly kind: 'softmax'; readonly axis: number }
  | { readonly kind: 'layernorm'; readonly axis: number; readonly epsilon: number }
  | { readonly kind: 'transpose'; readonly perm: readonly number[] }
  | { readonly kind: 'concat'; readonly axis: number }
  | { readonly kind: 'reshape' }
  | { readonly kind: 'reducemean'; readonly axes: readonly number[]; readonly keepdims: boolean };

export type HostOpKind = HostOp['kind'];

/** Run by the executor in JavaScript. */
export interface HostNode {
  readonly kind: 'host';
  /** unique among the graph's nodes */
  readonly name: string;
  readonly op: HostOp;
  /** value or weight names, in the order HostOp's comment gives */
  readonly inputs: readonly string[];
  readonly output: string;
  /** the ONNX nodes it stands for */
  readonly sources: readonly string[];
}

export type ModelNode = KernelNode | HostNode;

export interface ModelGraph {
  readonly name: string;
  /** what a run is given, in the ONNX graph's order */
  readonly inputs: readonly ModelValue[];
  /** what a run returns, in the ONNX graph's order (values, never weights) */
  readonly outputs: readonly ModelValue[];
  /** every value: the inputs and every node's output */
  readonly values: ReadonlyMap<string, ModelValue>;
  readonly weights: ReadonlyMap<string, ModelWeight>;
  /** topological: a node reads only graph inputs, weights and earlier nodes' outputs */
  readonly nodes: readonly ModelNode[];
}

/** The names a node reads: a kernel's operands, a host node's inputs. */
export function nodeInputs(node: ModelNode): readonly string[] {
  return node.kind === 'kernel' ? node.operands : node.inputs;
}

/** One distinct kernel problem of a model (by canonical spec, epilogue included) and the nodes that run it. */
export interface ModelTask {
  readonly problem: Problem;
  /** how many nodes run it */
  readonly count: number;
  /** their names, in graph order */
  readonly nodes: string[];
}

/** The distinct kernel problems of the graph, in order of first occurrence: what tuning a model tunes. */
export function modelTasks(g: ModelGraph): ModelTask[] {
  const bySpec = new Map<string, { problem: Problem; nodes: string[] }>();
  for (const node of g.nodes) {
    if (node.kind !== 'kernel') continue;
    const task = bySpec.get(node.problem.spec);
    if (task) task.nodes.push(node.name);
    else bySpec.set(node.problem.spec, { problem: node.problem, nodes: [node.name] });
  }
  return [...bySpec.values()].map((t) => ({ problem: t.problem, count: t.nodes.length, nodes: t.nodes }));
}
