/**
 * A tensor computation: index variables with extents, one output access and input accesses, each
 * an affine function of the variables per tensor dimension, and a combine operation.
 * Variables that do not index the output are reductions. Tensors are dense and row-major.
 */
import { fail } from './errors.ts';
import type { ElementType } from './dtype.ts';

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
  | 'avgpool1d' | 'avgpool2d' | 'avgpool3d'
  | 'add' | 'mul' | 'relu' | 'reduce' | 'copy' | 'transpose';
export const OPS: readonly Op[] = [
  'matmul', 'bmm', 'conv1d', 'conv2d', 'conv3d', 'maxpool1d', 'maxpool2d', 'maxpool3d', 'avgpool1d', 'avgpool2d', 'avgpool3d', 'add', 'mul', 'relu', 'reduce', 'copy', 'transpose',
];

export interface Variable {
  readonly name: string;
  readonly extent: number;
}

/** sum(coef * var) + constant, for one tensor dimension. */
export interface AffineIndex {
  readonly terms: readonly { readonly var: number; readonly coef: number }[];
}

/**
 * A zero (or -Infinity) border stored around a tensor's data: `shape` is the STORAGE shape, the
 * data is its interior (shape - before - after per dimension). Whoever fills the tensor fills the
 * border with `value` (a kernel never writes it): a padded convolution then reads its window
 * straight from storage, with no bounds checks and no copy (NeoCPU keeps such layouts between
 * layers; compileKernel copies a caller's unpadded array into one).
 */
export interface Padding {
  readonly before: readonly number[];
  readonly after: readonly number[];
  /** 0 for convolutions and average pools, -Infinity for max pools */
  readonly value: number;
}

export interface Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly pad?: Padding;
}

export interface Access {
  readonly tensor: number;
  readonly index: readonly AffineIndex[];
  /** constant element offset into the tensor's storage (an output written inside its padding); absent = 0 */
  readonly offset?: number;
}

/**
 * What happens to each output element once its value is complete (its whole reduction done),
 * in order, fused into the kernel that produces it. Tensor operands have their own access
 * (an affine function of the output variables).
 */
export type EpilogueOp =
  | { readonly kind: 'bias'; readonly access: Access } // out += bias[channel]
  | { readonly kind: 'residual'; readonly access: Access } // out += other[same position]
  | { readonly kind: 'scale'; readonly value: number } // out *= value (an average pool's 1/window)
  | { readonly kind: 'relu' } // out = max(out, 0)
  | { readonly kind: 'clip'; readonly min: number; readonly max: number } // out = min(max(out, min), max)
  | { readonly kind: 'sigmoid' } // out = 1 / (1 + exp(-out))
  | { readonly kind: 'gelu' }; // out = out/2 * (1 + erf(out/sqrt(2)))

export type EpilogueKind = EpilogueOp['kind'];
export const EPILOGUE_KINDS: readonly EpilogueKind[] = ['bias', 'residual', 'scale', 'relu', 'clip', 'sigmoid', 'gelu'];

/** The epilogue ops that read a tensor, in kernel ABI order (after the inputs). */
export function epilogueAccesses(p: Pick<Problem, 'epilogue'>): Access[] {
  return (p.epilogue ?? []).flatMap((e) => (e.kind === 'bias' || e.kind === 'residual' ? [e.access] : []));
}

/** Every access in kernel ABI order: the output, the inputs, then the epilogue's tensors. */
export function problemAccesses(p: Pick<Problem, 'output' | 'inputs' | 'epilogue'>): Access[] {
  return [p.output, ...p.inputs, ...epilogueAccesses(p)];
}

/** The value of one epilogue op at x (float64; the interpreter's definition). */
export function applyEpilogueOp(e: EpilogueOp, x: number, operand: number): number {
  switch (e.kind) {
    case 'bias': case 'residual': return x + operand;
    case 'scale': return x * e.value;
    case 'relu': return Math.max(x, 0);
    case 'clip': return Math.min(Math.max(x, e.min), e.max);
    case 'sigmoid': return 1 / (1 + Math.exp(-x));
    case 'gelu': return 0.5 * x * (1 + erf(x / Math.SQRT2));
  }
}

/** erf to float64 accuracy (Abramowitz-Stegun 7.1.26 is too coarse for an oracle): series near 0, continued fraction beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  if (ax < 2.5) {
    // Maclaurin series: 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax, sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * sum * (2 / Math.sqrt(Math.PI));
  }
  // erfc by Lentz's continued fraction: erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
  let f = ax, c = ax, d = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    d = ax + a * d;
    d = 1 / d;
    c = ax + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** The shape of a tensor's data: its storage shape less the padding. */
export function dataShape(t: Tensor): number[] {
  return t.shape.map((n, d) => n - (t.pad?.before[d] ?? 0) - (t.pad?.after[d] ?? 0));
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
  /** applied to each output element once complete; absent or empty = none */
  readonly epilogue?: readonly EpilogueOp[];
  /**
   * the inputs' element type (ir/dtype.ts): absent means f32, so f32 problems keep their specs and
   * hashes; the output and epilogue operands are always f32
   */
  readonly dtype?: Exclude<ElementType, 'f32'>;
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

/** Strides per tensor in kernel ABI order (output, inputs, epilogue tensors), per variable. */
export function tensorStrides(problem: Problem): number[][] {
  return problemAccesses(problem).map((a) => accessStrides(problem, a));
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
  const accesses = problemAccesses(p);
  if (accesses.length !== p.tensors.length || accesses.some((a, i) => a.tensor !== i)) {
    fail(`${p.op}: tensors must be the output, the inputs and the epilogue's operands, in that order`);
  }
  for (const a of accesses) {
    const t = p.tensors[a.tensor]!;
    a.index.forEach((ix, d) => {
      const max = ix.terms.reduce((s, term) => s + term.coef * (p.vars[term.var]!.extent - 1), 0);
      if (max >= t.shape[d]!) fail(`${p.op}: index of ${t.name} dimension ${d} reaches ${max}, beyond its size ${t.shape[d]}`);
    });
    const strides = accessStrides(p, a);
    const last = (a.offset ?? 0) + p.vars.reduce((s, v, i) => s + strides[i]! * (v.extent - 1), 0);
    if ((a.offset ?? 0) < 0 || last >= elementCount(t)) fail(`${p.op}: ${t.name} is read or written outside its storage`);
  }
  for (const a of epilogueAccesses(p)) {
    if (accessStrides(p, a).some((s, v) => s !== 0 && isReduction(p, v))) fail(`${p.op}: an epilogue operand may only follow the output's variables`);
  }
  return p;
}
