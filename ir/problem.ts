/**
 * A tensor computation: index variables with extents, one output access and input accesses, each
 * an affine function of the variables per tensor dimension, and a combine operation.
 * Variables that do not index the output are reductions. Tensors are dense and row-major.
 */
import { fail } from './errors.ts';

/** How one point of the iteration space updates the output. */
export type Combine =
  | 'fma' // out += in0 * in1
  | 'sum' // out += in0
  | 'max' // out = max(out, in0)
  | 'add' // out = in0 + in1
  | 'mul' // out = in0 * in1
  | 'relu' // out = max(in0, 0)
  | 'copy'; // out = in0

export const COMBINE_ARITY: Record<Combine, number> = { fma: 2, sum: 1, max: 1, add: 2, mul: 2, relu: 1, copy: 1 };
/** Accumulating combines read the output; the others overwrite it. */
export const ACCUMULATES: Record<Combine, boolean> = {
  fma: true, sum: true, max: true, add: false, mul: false, relu: false, copy: false,
};

export type Op =
  | 'matmul' | 'bmm' | 'conv1d' | 'conv2d' | 'conv3d' | 'maxpool1d' | 'maxpool2d' | 'maxpool3d'
  | 'add' | 'mul' | 'relu' | 'reduce' | 'copy' | 'transpose';
export const OPS: readonly Op[] = [
  'matmul', 'bmm', 'conv1d', 'conv2d', 'conv3d', 'maxpool1d', 'maxpool2d', 'maxpool3d', 'add', 'mul', 'relu', 'reduce', 'copy', 'transpose',
];

export interface Variable {
  readonly name: string;
  readonly extent: number;
}

/** sum(coef * var) + constant, for one tensor dimension. */
export interface AffineIndex {
  readonly terms: readonly { readonly var: number; readonly coef: number }[];
}

export interface Tensor {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface Access {
  readonly tensor: number;
  readonly index: readonly AffineIndex[];
}

export interface Problem {
  readonly op: Op;
  /** canonical one-line spec, e.g. "matmul 256x256x256" */
  readonly spec: string;
  readonly vars: readonly Variable[];
  /** tensors[0] is the output; the kernel ABI passes them in this order. */
  readonly tensors: readonly Tensor[];
  readonly output: Access;
  readonly inputs: readonly Access[];
  readonly combine: Combine;
}

export function elementCount(t: Tensor): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** Element stride of each variable in the flattened tensor of an access: offset = sum(stride[v] * v). */
export function accessStrides(problem: Problem, access: Access): number[] {
  const shape = problem.tensors[access.tensor]!.shape;
  const strides = new Array<number>(problem.vars.length).fill(0);
  let dimStride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    for (const t of access.index[d]!.terms) strides[t.var]! += t.coef * dimStride;
    dimStride *= shape[d]!;
  }
  return strides;
}

/** Strides per tensor (output first, then inputs), per variable. */
export function tensorStrides(problem: Problem): number[][] {
  return [problem.output, ...problem.inputs].map((a) => accessStrides(problem, a));
}

export function isReduction(problem: Problem, v: number): boolean {
  return problem.output.index.every((ix) => ix.terms.every((t) => t.var !== v));
}

export function iterationPoints(problem: Problem): number {
  return problem.vars.reduce((a, v) => a * v.extent, 1);
}

/** Floating-point operations of one run: 2 per point for fma, 1 otherwise (copy counts 1 move). */
export function flops(problem: Problem): number {
  return iterationPoints(problem) * (problem.combine === 'fma' ? 2 : 1);
}

export function varIndex(problem: Problem, name: string): number {
  const i = problem.vars.findIndex((v) => v.name === name);
  if (i < 0) fail(`unknown loop variable '${name}' for ${problem.op} (variables: ${problem.vars.map((v) => v.name).join(', ')})`);
  return i;
}

/** Builds a validated problem; every access stays inside its tensor for every point. */
export function makeProblem(p: Problem): Problem {
  if (p.inputs.length !== COMBINE_ARITY[p.combine]) fail(`${p.op}: combine ${p.combine} needs ${COMBINE_ARITY[p.combine]} inputs`);
  for (const v of p.vars) {
    if (!Number.isInteger(v.extent) || v.extent < 1) fail(`${p.op}: size of ${v.name} must be a positive integer, got ${v.extent}`);
  }
  for (const a of [p.output, ...p.inputs]) {
    const t = p.tensors[a.tensor]!;
    a.index.forEach((ix, d) => {
      const max = ix.terms.reduce((s, term) => s + term.coef * (p.vars[term.var]!.extent - 1), 0);
      if (max >= t.shape[d]!) fail(`${p.op}: index of ${t.name} dimension ${d} reaches ${max}, beyond its size ${t.shape[d]}`);
    });
  }
  return p;
}
