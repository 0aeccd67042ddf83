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
 * - ParallelNode: the parallel band (the schedule's adjacent `p` loops, collapsed). On entry add
 *   `offsets[t]` to pointer t. Its chunks are the points of the band's iteration space, each dim
 *   counting its full iterations plus one for its tail, numbered with the innermost dim fastest;
 *   thread `tid` of `threads` runs chunks threadRange(chunkCount, tid, threads), one body per
 *   chunk: `bodies[mask]`, where bit j of mask says dim j is at its tail iteration, with pointer
 *   t advanced by sum_j index_j * dims[j].advance[t] (restored after). Threads write disjoint
 *   outputs (band loops run over output variables only), so chunks need no synchronization.
 * - Epilogue (LoopProgram.epilogue, the problem's ops in order): a TileNode with `epilogue` applies
 *   the ops to each accumulator after its body and before the store (the tile then holds each
 *   output's whole reduction); a bias or residual op reads the accumulator's next operand in
 *   `Accumulator.operands` (one per epilogue tensor, in ABI order, at offsets from those tensors'
 *   pointers). Where the schedule splits a reduction above the tile, the lowering appends a
 *   separate pass instead: tiles with `loadOutput`, `epilogue` and an empty body over the output
 *   box (after each parallel chunk's body, or after the whole program).
 * - Operand: `vector` = `count` elements at `offset`, `stride` apart (lane i reads offset +
 *   stride*i; stride 1 when absent; elements past lane count-1 must not be read: masked);
 *   `broadcast` = one element at `offset` in every lane. With lanes = 1 both are a scalar.
 */
import type { Combine, EpilogueOp, Problem } from '../ir/problem.ts';

export interface Operand {
  tensor: number;
  offset: number;
  mode: 'vector' | 'broadcast';
  count: number;
  /** element distance between the lanes of a vector operand (the target's caps.vectorStrides); absent = 1 */
  stride?: number;
}

export interface Accumulator {
  offset: number;
  count: number;
  /** with an epilogue: the operand of each epilogue tensor for this accumulator (same lanes) */
  operands?: Operand[];
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
  /** the accumulators start at zero instead (an accumulating combine whose tile holds each output's
   *  whole reduction, lowered with `overwrite`: the kernel then writes, not adds to, its output) */
  zeroOutput?: boolean;
  /** apply the program's epilogue to every accumulator after the body, before the store */
  epilogue?: boolean;
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

export interface ParallelDim {
  var: number;
  /** full iterations */
  count: number;
  /** whether one more, partial, iteration follows the full ones */
  tail: boolean;
  /** pointer advance of one iteration, per tensor, elements */
  advance: number[];
}

export interface ParallelNode {
  kind: 'parallel';
  offsets: number[];
  /** the band's loops, outermost first */
  dims: ParallelDim[];
  /** body per tail mask (2^dims.length entries); null for masks that never occur */
  bodies: (ProgramNode[] | null)[];
}

export type ProgramNode = LoopNode | TileNode | ComputeNode | PackNode | ParallelNode;

/** Chunks of a parallel node: the points of its band, a tail counted as one iteration. */
export function chunkCount(dims: readonly Pick<ParallelDim, 'count' | 'tail'>[]): number {
  return dims.reduce((a, d) => a * (d.count + (d.tail ? 1 : 0)), 1);
}

/**
 * The contiguous, balanced chunk range of thread `tid` of `threads`: [floor(tid*n/T),
 * floor((tid+1)*n/T)). The ranges of all threads cover 0..n-1 exactly once and differ in length
 * by at most one (a thread gets none when n < T).
 */
export function threadRange(chunks: number, tid: number, threads: number): { begin: number; end: number } {
  return { begin: Math.floor((tid * chunks) / threads), end: Math.floor(((tid + 1) * chunks) / threads) };
}

/** Chunks whose tail mask is `mask`: per dim, its tail (bit set) or its full iterations. */
export function maskChunks(dims: readonly Pick<ParallelDim, 'count' | 'tail'>[], mask: number): number {
  return dims.reduce((a, d, j) => a * ((mask >> j) & 1 ? (d.tail ? 1 : 0) : d.count), 1);
}

/** Per-dim indices of chunk `c` (innermost dim fastest) and its tail mask. */
export function chunkIndices(dims: readonly Pick<ParallelDim, 'count' | 'tail'>[], c: number): { index: number[]; mask: number } {
  const index = new Array<number>(dims.length).fill(0);
  let rest = c;
  let mask = 0;
  for (let j = dims.length - 1; j >= 0; j--) {
    const n = dims[j]!.count + (dims[j]!.tail ? 1 : 0);
    index[j] = rest % n;
    rest = Math.floor(rest / n);
    if (index[j] === dims[j]!.count) mask |= 1 << j;
  }
  return { index, mask };
}

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
  /** a register set aside for the permutation index of strided vector reads (caps.indexRegisterForStrides); absent = none */
  indexRegister?: boolean;
  /** why vectorization was not used, when it was not */
  scalarReason?: string;
}

export interface LoopProgram {
  problem: Problem;
  schedule: string;
  combine: Combine;
  tensors: { name: string; elements: number }[];
  decision: TileDecision;
  /** the kernel overwrites its output (output = result) instead of accumulating into it (LowerOptions.overwrite) */
  overwrites?: boolean;
  /** the problem's epilogue (absent = none): see TileNode.epilogue */
  epilogue?: readonly EpilogueOp[];
  body: ProgramNode[];
}

/** Visits every node depth-first. */
export function walkProgram(nodes: readonly ProgramNode[], visit: (n: ProgramNode, depth: number) => void, depth = 0): void {
  for (const n of nodes) {
    visit(n, depth);
    for (const body of childBodies(n)) walkProgram(body, visit, depth + 1);
  }
}

/** Whether the program has a parallel band (its kernel then splits work by the ABI's tid and threads). */
export function hasParallelBand(program: Pick<LoopProgram, 'body'>): boolean {
  let found = false;
  walkProgram(program.body, (n) => (found ||= n.kind === 'parallel'));
  return found;
}

/** The node lists directly inside a node (a parallel node has one per tail mask that occurs). */
export function childBodies(n: ProgramNode): ProgramNode[][] {
  if (n.kind === 'compute') return [];
  if (n.kind === 'parallel') return n.bodies.filter((b): b is ProgramNode[] => b !== null);
  return [n.body];
}
