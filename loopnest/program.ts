/**
 * LoopProgram: the target-independent form every emitter consumes.
 *
 * A tree of nodes over per-tensor "current pointers" (one per tensor, in kernel ABI order: output
 * first). Offsets and advances are in ELEMENTS (fp32); emitters scale them to bytes.
 *
 * - LoopNode: on entry add `offsets[t]` to pointer t; run `body` `count` times, adding `advance[t]`
 *   to pointer t after each iteration; on exit restore every pointer to its value before entry.
 * - TileNode: the register tile. Its accumulators (output vectors at `offset` from the output
 *   pointer, `count` valid lanes) live in registers for the whole tile: loaded from the output
 *   before the body when `loadOutput` (accumulating combines), stored after it. Loops inside a tile
 *   never move the output pointer.
 * - ComputeNode: fully unrolled operations on the accumulators, in groups (one group per point of
 *   the unrolled reduction loops; ops in a group are ordered so that the operand of the most
 *   varied tensor changes least often). Each op applies the program's `combine`:
 *     fma: acc += in0*in1   sum: acc += in0   max: acc = max(acc, in0)
 *     add: acc = in0+in1    mul: acc = in0*in1 relu: acc = max(in0, 0)   copy: acc = in0
 * - PackNode: copies the box of one input tensor that `body` reads (at `offset` from its pointer;
 *   `dims` outermost first, each a count and a source stride) into a dense scratch buffer, points
 *   the tensor's pointer at it for `body` (whose offsets and advances for that tensor are in the
 *   packed layout: row-major over `dims`), and restores the pointer after. BLIS's packing: rows a
 *   power-of-two stride apart all fall into the same cache sets; packed, they are contiguous.
 * - Operand: `vector` = `count` consecutive elements at `offset` (lanes past `count` must not be
 *   read: masked); `broadcast` = one element at `offset` in every lane. With lanes = 1 both are a
 *   scalar.
 */
import type { Combine, Problem } from '../ir/problem.ts';

export interface Operand {
  tensor: number;
  offset: number;
  mode: 'vector' | 'broadcast';
  count: number;
}

export interface Accumulator {
  offset: number;
  count: number;
}

export interface ComputeOp {
  acc: number;
  inputs: Operand[];
}

export interface ComputeNode {
  kind: 'compute';
  groups: ComputeOp[][];
}

export interface LoopNode {
  kind: 'loop';
  var: number;
  count: number;
  offsets: number[];
  advance: number[];
  body: ProgramNode[];
}

export interface TileNode {
  kind: 'tile';
  /** output offset of the tile relative to the output pointer at the tile */
  accumulators: Accumulator[];
  loadOutput: boolean;
  body: ProgramNode[];
}

export interface PackNode {
  kind: 'pack';
  tensor: number;
  /** element offset of the box from the tensor's pointer at this node */
  offset: number;
  /** box dimensions, outermost first; the innermost has stride 1 */
  dims: { count: number; stride: number }[];
  body: ProgramNode[];
}

export type ProgramNode = LoopNode | TileNode | ComputeNode | PackNode;

/** Elements of a pack node's scratch buffer. */
export function packElements(n: PackNode): number {
  return n.dims.reduce((a, d) => a * d.count, 1);
}

/** What the lowering decided, for `show`, the cost model and the reports. */
export interface TileDecision {
  /** fp32 lanes per register (1 = scalar path) */
  lanes: number;
  /** variable vectorized along, or null for the scalar path */
  vectorVar: number | null;
  /** first schedule loop of the fully unrolled region (loops.length when nothing is unrolled) */
  unrollFrom: number;
  /** first schedule loop inside the register tile (reduction loops above the unrolled region) */
  tileFrom: number;
  /** accumulator registers of a full tile */
  accumulators: number;
  /** vector operations of one full unrolled body */
  unrolledOps: number;
  /** registers set aside from the tile: a zero vector (relu) and a lane mask (partial vectors) */
  zeroRegister: boolean;
  maskRegister: boolean;
  /** why vectorization was not used, when it was not */
  scalarReason?: string;
}

export interface LoopProgram {
  problem: Problem;
  schedule: string;
  combine: Combine;
  tensors: { name: string; elements: number }[];
  decision: TileDecision;
  body: ProgramNode[];
}

/** Visits every node depth-first. */
export function walkProgram(nodes: readonly ProgramNode[], visit: (n: ProgramNode, depth: number) => void, depth = 0): void {
  for (const n of nodes) {
    visit(n, depth);
    if (n.kind !== 'compute') walkProgram(n.body, visit, depth + 1);
  }
}
