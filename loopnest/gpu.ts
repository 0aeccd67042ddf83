/**
 * GPU lowering: Schedule -> GpuProgram, the target-independent plan a GPU printer (targets/cuda/
 * ptx.ts) turns into code without deciding anything. The rules:
 *
 * 1. Bound loops. A loop annotated `b` (bind: 'block') is spread over grid blocks, `t` (bind:
 *    'thread') over the threads of a block: its index comes from the block / thread index instead
 *    of a loop counter. A bound loop of size S with a tail runs S + 1 indices; the last covers the
 *    tail. Output-variable loops can be bound to blocks or threads. A reduction loop bound to
 *    threads is a split reduction inside a block: each thread sums its share, then the partial
 *    accumulators meet in shared memory and are added in a fixed order (so results are
 *    deterministic) by the threads whose reduction indices are all 0, which write the output; no
 *    loop of that variable at or above it may have a tail. A reduction loop bound to blocks is a
 *    grid reduction (split-k, rule 10). Bound loops are parallel, so their
 *    position in the nest only matters for tails: as everywhere in looptune, a loop's range is what
 *    the enclosing loops of the same variable leave it.
 * 2. Dimensions. Block loops, innermost first, take grid x, y, z; thread loops, innermost first,
 *    take block x, y, z (the innermost thread loop is the fastest-varying thread index, so it is the
 *    one to give unit stride for coalescing). When there are more than three loops of a kind, or a
 *    count exceeds its dimension's limit (grid y/z 65535; block x/y 1024, z 64), all loops of that
 *    kind are linearized into x instead, innermost fastest. At most 1024 threads per block.
 * 3. Default rule, for schedules with no `b`/`t` annotation at all: every output-variable loop is
 *    parallel. Reading the output loops from the innermost outwards, the longest run whose
 *    iteration counts multiply to at most 1024 becomes thread loops; all other output loops become
 *    block loops. Reductions stay serial. (`m:100 n:60 k:70` -> `m:100b n:60t k:70`.)
 *    Once a schedule has any annotation, exactly the annotated loops are parallel.
 * 4. Serial loops: everything else runs in each thread, in schedule order. The register tile is
 *    the rule the CPU lowering uses (lower.ts: fittingSuffix, tileStart), counted per thread: the
 *    longest suffix of the loops whose output points fit MAX_ACCUMULATORS registers and whose
 *    unrolled operations fit MAX_UNROLLED (bound loops count as one point, a tail as one more
 *    iteration) is fully unrolled, with accumulators in registers. Reduction (and bound) loops
 *    directly above it join the tile: its accumulators stay in registers across them, and the
 *    output is read and written once per tile.
 * 5. Shared memory: the outermost serial reduction loop annotated `s` (shared) stages, once per
 *    iteration, the box of every input tensor that the whole block reads in that iteration into
 *    shared memory (cooperative, 128-bit loads where alignment allows; past the tensor's end a load
 *    reads its last item instead: such box positions only feed output points that are not stored),
 *    between barriers, double-buffered when it fits (one barrier per iteration, the next box
 *    prefetched into registers during the compute). The annotation is honoured when every serial
 *    loop above it runs the same iterations in all threads of a block (reduction loops, or output
 *    loops of variables with no thread loop above them), it is above the register tile's unrolled
 *    part, and the boxes fit 48 KiB; otherwise it is ignored and `stageNote` says why. The shared
 *    layout makes the dimension the register tile walks along innermost (rows padded by 4 floats
 *    against bank conflicts when a permuted row is a multiple of 32). Each box is copied by a plan
 *    (CopyPlan) decided per entry state of the staged loop (its variables' ranges and the inputs'
 *    static offsets, which fix the box and its alignment).
 * 6. Split reductions: the partial sums meet in shared memory (after the staging buffers when the
 *    staged loop is inside the tile and so finished by then), `chunk` accumulators per round.
 * 7. Registers: with 'auto', when a register tile of at least 32 accumulators still has 48
 *    registers to spare, the kernel is capped so that two blocks fit on a multiprocessor.
 * 8. Epilogue (problem.epilogue) and offsets. Every access starts at its `Access.offset` (an output
 *    written inside its padding border; padded inputs are only bigger storage). The epilogue's
 *    tensors (bias, residual) follow the inputs; they are read once per output element, straight
 *    from global memory, never staged. The threads of a split reduction meet before the store, and
 *    with no grid reduction (rule 10) a reduction never spans blocks, so each output's value is
 *    complete at its tile's final store unless a serial reduction loop runs above the register tile (an output loop
 *    between them keeps it out of the tile): then each visit of the tile adds one part of the
 *    reduction. The epilogue is applied at the store ('store') when the tile holds whole
 *    reductions, else by a second walk of the same thread's output points after the first
 *    ('pass'): each thread re-reads the outputs it wrote, applies the ops and stores them again.
 *    No other thread writes those elements, so no barrier or second kernel is needed.
 * 9. Edge tiles. A block loop with a tail (its last index covers a partial tile) makes every point
 *    of the tile a run-time question: predicated stores, bounds-checked copies, run-time trip
 *    counts below it. When such loops lead their variable (only block loops of that variable above
 *    them, so their ranges are constants in whole blocks), the kernel gets two bodies behind one
 *    uniform branch at entry (GpuEdgeSplit): blocks whose indices are all below the loops' full
 *    counts are interior, their tiles lie inside the tensors, and they run the body printed as if
 *    those loops had no tail (the aligned code: no predicates, unchecked copies, constant trip
 *    counts); the other blocks run the general body. The branch depends only on block indices, so
 *    no warp diverges. Staging plans the interior body's entry states separately
 *    (GpuStaging.interior), without the bounds check where the box cannot leave the tensor.
 * 10. Grid reductions (split-k). A reduction loop bound to blocks gives each block one share of
 *    the reduction; the block adds its partial sums into the output with `red.global.add.f32`
 *    instead of a load, add and store. Kernels compute out += sum, so the shares need no second
 *    kernel and no workspace, only atomics: the sum is exact up to the order of the additions,
 *    which varies from run to run (a split reduction inside a block stays deterministic). It is
 *    what fills the multiprocessors when the output alone has fewer tiles than the GPU has slots
 *    (1000^3 with 128 x 128 tiles: 64 blocks for 132 multiprocessors). Only summing combines
 *    (fma, sum) qualify, and not with an epilogue: an epilogue needs the whole sum. Every block's
 *    share is the same whole range (no tail on the loop or above it), so the loops below it run
 *    the constant trip counts of an unsplit reduction, tails included.
 */
import { fail } from '../ir/errors.ts';
import {
  ACCUMULATES, elementCount, isReduction, problemAccesses, tensorStrides, type EpilogueOp, type Problem,
} from '../ir/problem.ts';
import { type Loop, loopText, Schedule } from '../ir/schedule.ts';
import { gridReductionObstacle } from '../ir/transforms.ts';
import { fittingSuffix, tileStart } from './lower.ts';
import { planMma, usesTensorCores, type GpuMmaPlan } from './gpu-mma.ts';
import { isWgmmaSchedule } from './gpu-wgmma.ts';

export const MAX_THREADS = 1024;
export const MAX_GRID_X = 2 ** 31 - 1;
const GRID_LIMITS = [MAX_GRID_X, 65535, 65535];
const BLOCK_LIMITS = [1024, 1024, 64];
/** accumulators of one register tile (fp32 registers per thread) */
export const MAX_ACCUMULATORS = 128;
/** operations of one fully unrolled tile body */
export const MAX_UNROLLED = 2048;
/** static shared memory a block may use without opting in */
export const MAX_STATIC_SHARED = 48 * 1024;
/** copy items a thread keeps in registers per staged box (beyond: a copy loop) */
export const MAX_COPY_ITEMS = 8;

export type Dim = 'x' | 'y' | 'z';
const DIMS: Dim[] = ['x', 'y', 'z'];

/** Where a bound loop's index comes from: (special register / div) % mod, mod = 0 meaning no modulo. */
export interface BoundIndex {
  loop: number;
  source: 'ctaid' | 'tid';
  dim: Dim;
  div: number;
  mod: number;
  count: number;
}

export interface GpuMapping {
  /** the schedule with the bindings that apply (the default rule's, when the input had none) */
  schedule: Schedule;
  /** true when the default rule chose the bindings */
  defaulted: boolean;
  blockLoops: number[];
  /** all thread loops, the reduction loops bound to threads (split reductions) among them */
  threadLoops: number[];
  reductionThreadLoops: number[];
  /** the reduction loops bound to blocks (rule 10: the output is accumulated with atomics) */
  gridReductionLoops: number[];
  /** threads that share each output point: the product of the reduction thread loops */
  reductionThreads: number;
  serialLoops: number[];
  grid: [number, number, number];
  block: [number, number, number];
  blocks: number;
  threads: number;
  indices: BoundIndex[];
  /** first loop of the fully unrolled register tile (loops.length when nothing is unrolled) */
  unrollFrom: number;
  /** first loop of the register tile (reduction and bound loops above unrollFrom join it) */
  tileFrom: number;
  /** accumulators of a full register tile, and unrolled operations of its body */
  accumulators: number;
  unrolledOps: number;
  /** the loop whose body is staged in shared memory, if an `s` annotation is honoured */
  staged: number | null;
  stageNote?: string;
}

/** One input tensor's region of a shared staging buffer. */
export interface SharedTensor {
  tensor: number;
  /** natural dims in shared order (outer to inner) */
  order: number[];
  /** shared element stride of each natural dim */
  sstride: number[];
  /** shared element stride of each variable */
  sv: number[];
  /** byte offset of the region in the buffer, and its size */
  regionOffset: number;
  bytes: number;
}

/** How the block's threads copy one input's box into shared memory. */
export interface CopyPlan {
  /** index into GpuStaging.tensors */
  region: number;
  /** elements per copy item (4: one 128-bit access) */
  width: number;
  /** box extent of each dimension, and the tensor's element stride of each dimension */
  box: number[];
  gstride: number[];
  /** items per row of the box, items of the whole box, items per thread (ceil(items / threads)) */
  perRow: number;
  items: number;
  perThread: number;
  /** whether the box can reach past the tensor (only through output variables with tails): loads clamped to its end */
  check: boolean;
  /** elements of the tensor, for the check */
  elements: number;
  /** whether the tensor's own innermost dimension is innermost in shared memory too */
  naturalInner: boolean;
  /** shared element stride of the tensor's innermost dimension */
  innerStride: number;
  /** more than MAX_COPY_ITEMS items per thread: a loop copies straight to shared memory (no prefetch) */
  looped: boolean;
}

/**
 * The copies of one entry state of the staged loop: `key` (stagedInstanceKey) names the state,
 * `full` copies a box of the loop's full iterations, `tail` the box of its remainder.
 */
export interface StagedInstance {
  key: string;
  full: CopyPlan[] | null;
  tail: CopyPlan[] | null;
}

export interface GpuStaging {
  /** the staged loop */
  loop: number;
  tensors: SharedTensor[];
  /** bytes of one buffer (all regions); double-buffered when two fit */
  bufferBytes: number;
  double: boolean;
  /** span of each variable the layout was made for */
  spans: number[];
  instances: StagedInstance[];
  /** the entry states of the interior body (rule 9), when the program has one */
  interior: StagedInstance[] | null;
}

/**
 * Rule 9: the block loops whose tails the interior body ignores. A block is interior when every
 * listed loop's index is below `whole` (the loop's full iterations); its tile then lies inside
 * the tensors along those loops' variables.
 */
export interface GpuEdgeSplit {
  loops: { loop: number; whole: number }[];
}

export interface GpuSplitReduction {
  /** byte offset of the partial-sum area in shared memory (after the staging buffers when they are still live) */
  areaOffset: number;
  /** accumulators exchanged per round */
  chunk: number;
  /** linear thread-id offsets of the other reduction threads of an output point, in the order they are added */
  siblings: number[];
}

/** Where the epilogue is applied (rule 8). */
export interface GpuEpilogue {
  /** the problem's ops, in order */
  ops: readonly EpilogueOp[];
  /** 'store': in registers at the tile's final store; 'pass': a second walk over each thread's outputs */
  place: 'store' | 'pass';
  /** why a pass, naming the serial reduction loop above the tile */
  note?: string;
}

/**
 * What a GPU printer needs, decided: the mapping (grid, block, the bound loops and where their
 * indices come from, the register tile), the shared-memory staging with its copy plans, the split
 * reduction and the register cap. The statement is the problem's: its accesses and combine.
 */
export interface GpuProgram {
  problem: Problem;
  /** the schedule with the bindings that apply */
  schedule: Schedule;
  /** element stride of every variable in every tensor, output first */
  strides: number[][];
  mapping: GpuMapping;
  staging: GpuStaging | null;
  split: GpuSplitReduction | null;
  /** static shared memory of the kernel, bytes */
  sharedBytes: number;
  /** the register cap per thread, if any */
  registerCap: number | null;
  /** the problem's epilogue and where it runs; null without one */
  epilogue: GpuEpilogue | null;
  /** rule 9: interior and edge bodies, split on the block indices; null when every block is whole (or none is) */
  edges: GpuEdgeSplit | null;
  /** typed problems (bf16, f16, tf32): the tensor-core plan (gpu-mma.ts) the printer follows instead of the tile walk */
  mma?: GpuMmaPlan;
}

export interface GpuLoweringOptions {
  /** unrolled operations of the register tile (MAX_UNROLLED) */
  maxUnrolled?: number;
  /**
   * Register cap per thread. 'auto' (default): when a register tile of at least 32 accumulators
   * would still fit, cap the registers so that two blocks fit on a multiprocessor (65536 / (2 x
   * threads), in multiples of 8); 'none': let the assembler choose; or a number.
   */
  maxRegisters?: 'auto' | 'none' | number;
  /** tensor-core kernels: the cp.async pipeline's depth (gpu-mma.ts; default as many as fit, at most 4) */
  stages?: number;
  /**
   * tensor-core kernels: O = A·B (+ epilogue), the output's initial contents ignored, instead of
   * O += A·B: no loads of C. For callers whose output starts at zero anyway (a model's cleared
   * arena) and for comparisons with libraries run at beta = 0.
   */
  overwrite?: boolean;
}

export function loopIterations(l: Loop): number {
  return l.size + (l.tail > 0 ? 1 : 0);
}

/** Schedule -> GpuProgram. Illegal mappings fail with one line starting `cuda:` (a LoopTuneError). */
export function lowerGpu(input: Schedule, opts: GpuLoweringOptions = {}): GpuProgram {
  if (usesTensorCores(input.problem)) return lowerMma(input, opts);
  const deep = input.loops.find((l) => l.stages !== undefined);
  if (deep) fail(`cuda: a pipeline depth (${loopText(input.problem, deep)}) is for tensor-core kernels; fp32 staging is one buffer`);
  if (opts.overwrite) fail('cuda: overwrite (O = A·B, C not read) is for tensor-core kernels; fp32 kernels accumulate into their output');
  let m = gpuMapping(input, { maxUnrolled: opts.maxUnrolled ?? MAX_UNROLLED });
  const s = m.schedule;
  const p = s.problem;
  const strides = tensorStrides(p);
  for (const t of p.tensors) {
    if (elementCount(t) * 4 >= 2 ** 31) fail(`cuda: tensor ${t.name} has ${elementCount(t)} elements; kernels use 32-bit offsets (at most 2^29 elements)`);
  }
  if (!ACCUMULATES[p.combine] && p.vars.some((_, v) => isReduction(p, v))) {
    fail(`cuda: ${p.combine} with reduction variables is not supported`);
  }
  const edges = edgeSplit(s);
  let staging: GpuStaging | null = null;
  if (m.staged !== null) {
    const layout = stageLayout(s, m, strides, m.staged);
    if (layout.bufferBytes > MAX_STATIC_SHARED) {
      m = { ...m, staged: null, stageNote: `shared boxes need ${layout.bufferBytes} bytes, more than ${MAX_STATIC_SHARED}` };
    } else {
      const whole = new Set(edges?.loops.map((x) => x.loop) ?? []);
      staging = {
        ...layout, instances: stagedInstances(s, m, strides, layout, new Set()),
        interior: edges ? stagedInstances(s, m, strides, layout, whole) : null,
      };
    }
  }
  const stagingBytes = staging ? staging.bufferBytes * (staging.double ? 2 : 1) : 0;
  const split = m.reductionThreads > 1 ? splitReduction(m, stagingBytes) : null;
  const splitBytes = split ? split.areaOffset + split.chunk * m.threads * 4 : 0;
  const opt = opts.maxRegisters ?? 'auto';
  const registerCap = opt === 'none' ? null : opt === 'auto' ? autoRegisterCap(m.threads, m.accumulators) : opt;
  return {
    problem: p, schedule: s, strides, mapping: m, staging, split, sharedBytes: Math.max(stagingBytes, splitBytes), registerCap,
    epilogue: epiloguePlace(m), edges,
  };
}

/**
 * Rule 9: the block loops with a tail that lead their variable (every loop of the variable above
 * them is a block loop, so in an interior block each one's range is a constant: the extent, or the
 * enclosing block loop's step) and have at least one full iteration. Null when there is none.
 */
export function edgeSplit(s: Schedule): GpuEdgeSplit | null {
  const p = s.problem;
  const loops: GpuEdgeSplit['loops'] = [];
  p.vars.forEach((_, v) => {
    if (isReduction(p, v)) return;
    for (let j = 0; j < s.loops.length; j++) {
      const l = s.loops[j]!;
      if (l.var !== v) continue;
      // below a loop of another kind, or one with no full iteration, the range is a run-time value
      if (l.bind !== 'block' || (l.tail > 0 && l.size < 1)) break;
      if (l.tail > 0) loops.push({ loop: j, whole: l.size });
    }
  });
  loops.sort((a, b) => a.loop - b.loop);
  return loops.length > 0 ? { loops } : null;
}

/**
 * A typed problem's program: the tensor-core plan, with the mapping of its bound loops (the thread
 * loops are warps, so the block has 32 threads per warp-loop point).
 */
function lowerMma(s: Schedule, opts: GpuLoweringOptions): GpuProgram {
  const plan = planMma(s, { ...(opts.stages === undefined ? {} : { stages: opts.stages }), ...(opts.overwrite ? { overwrite: true } : {}) });
  const m = gpuMapping(s, { maxUnrolled: opts.maxUnrolled ?? MAX_UNROLLED });
  const mapping: GpuMapping = {
    ...m, grid: plan.grid, block: [plan.threads, 1, 1], blocks: plan.grid[0] * plan.grid[1] * plan.grid[2], threads: plan.threads,
    accumulators: (plan.warpTile.m * plan.warpTile.n) / 32, staged: s.loops.findIndex((l) => l.shared),
  };
  return {
    problem: s.problem, schedule: s, strides: tensorStrides(s.problem), mapping, staging: null, split: null,
    sharedBytes: plan.sharedBytes, registerCap: null, epilogue: plan.epilogue.length > 0 ? { ops: plan.epilogue, place: 'store' } : null, edges: null, mma: plan,
  };
}

/** Rule 8: at the store when every tile holds whole reductions, else a second pass. */
export function epiloguePlace(m: GpuMapping): GpuEpilogue | null {
  const p = m.schedule.problem;
  const ops = p.epilogue ?? [];
  if (ops.length === 0) return null;
  const above = m.schedule.loops.findIndex((l, j) => j < m.tileFrom && !l.bind && isReduction(p, l.var));
  if (above < 0) return { ops, place: 'store' };
  return { ops, place: 'pass', note: `the serial reduction loop ${loopText(p, m.schedule.loops[above]!)} runs above the register tile` };
}

/**
 * The register cap the 'auto' rule picks, or null: two blocks per multiprocessor (65536 registers,
 * allocated per warp) when a register tile of at least 32 accumulators still has 48 registers to
 * spare. Otherwise the assembler chooses; the block size it is given already makes it fit one block.
 */
export function autoRegisterCap(threads: number, accumulators: number): number | null {
  const warps = Math.ceil(threads / 32);
  const two = Math.floor(65536 / (2 * warps * 32) / 8) * 8;
  if (accumulators >= 32 && two < 255 && two >= accumulators + 48) return two;
  return null;
}

// ---------------------------------------------------------------- the mapping (rules 1-5)

/** Applies the default rule to a schedule with no bindings; returns the schedule unchanged otherwise. */
export function withDefaultBindings(s: Schedule): { schedule: Schedule; defaulted: boolean } {
  if (s.loops.some((l) => l.bind)) return { schedule: s, defaulted: false };
  const p = s.problem;
  const out = s.loops.map((l, i) => ({ l, i })).filter(({ l }) => !isReduction(p, l.var));
  const bind = new Map<number, 'block' | 'thread'>();
  let threads = 1;
  let inThreads = true;
  for (let j = out.length - 1; j >= 0; j--) {
    const { l, i } = out[j]!;
    const n = loopIterations(l);
    if (inThreads && threads * n <= MAX_THREADS) {
      threads *= n;
      bind.set(i, 'thread');
    } else {
      inThreads = false;
      bind.set(i, 'block');
    }
  }
  const loops = s.loops.map((l, i) => (bind.has(i) ? { ...l, bind: bind.get(i)! } : l));
  return { schedule: s.withLoops(loops, s.cursor), defaulted: true };
}

/** Assigns loops of one kind to x/y/z (innermost first) or linearizes them into x. */
function assignDims(loops: readonly Loop[], which: number[], source: 'ctaid' | 'tid', limits: number[]): { dims: [number, number, number]; idx: BoundIndex[] } {
  const counts = which.map((i) => loopIterations(loops[i]!));
  const inner = [...which].reverse();
  const innerCounts = [...counts].reverse();
  const direct = inner.length <= 3 && innerCounts.every((c, j) => c <= limits[j]!);
  if (direct) {
    const dims: [number, number, number] = [1, 1, 1];
    const idx = inner.map((loop, j): BoundIndex => {
      dims[j] = innerCounts[j]!;
      return { loop, source, dim: DIMS[j]!, div: 1, mod: 0, count: innerCounts[j]! };
    });
    return { dims, idx: idx.reverse() };
  }
  let div = 1;
  const idx: BoundIndex[] = [];
  inner.forEach((loop, j) => {
    const c = innerCounts[j]!;
    idx.push({ loop, source, dim: 'x', div, mod: j === inner.length - 1 ? 0 : c, count: c });
    div *= c;
  });
  if (div > limits[0]!) fail(`${source === 'tid' ? 'threads' : 'blocks'}: ${div} exceed the limit ${limits[0]}`);
  return { dims: [div, 1, 1], idx: idx.reverse() };
}

/** Output points and unrolled operations of loops[u..] for one thread (bound loops count as one). */
export function tileCost(s: Schedule, u: number): { accumulators: number; ops: number } {
  const p = s.problem;
  let acc = 1;
  let red = 1;
  for (let i = u; i < s.loops.length; i++) {
    const l = s.loops[i]!;
    if (l.bind) continue;
    const n = loopIterations(l);
    if (isReduction(p, l.var)) red *= n;
    else acc *= n;
  }
  return { accumulators: acc, ops: acc * red };
}

/** Rules 1-5: bindings, dimensions, register tile and the staged loop (before its shared-memory size is checked). */
export function gpuMapping(input: Schedule, opts: { maxUnrolled?: number } = {}): GpuMapping {
  const maxUnrolled = opts.maxUnrolled ?? MAX_UNROLLED;
  // a GPU kernel maps loops by bind_block/bind_thread: CPU threads mean nothing there
  if (input.loops.some((l) => l.parallel)) fail('cuda: parallel loops (suffix p) are for CPU threads; map loops to the GPU with bind_block/bind_thread (suffixes b, t)');
  const { schedule: s, defaulted } = withDefaultBindings(input);
  const p: Problem = s.problem;
  const loops = s.loops;
  const blockLoops: number[] = [];
  const threadLoops: number[] = [];
  const serialLoops: number[] = [];
  const reductionThreadLoops: number[] = [];
  const gridReductionLoops: number[] = [];
  loops.forEach((l, i) => {
    if (l.bind && isReduction(p, l.var)) {
      const why = l.bind === 'block' ? gridReductionObstacle(s, i) : reductionThreadObstacle(s, i);
      if (why) fail(`cuda: ${loopText(p, l)} ${why}`);
      (l.bind === 'block' ? gridReductionLoops : reductionThreadLoops).push(i);
    }
    if (l.bind === 'block') blockLoops.push(i);
    else if (l.bind === 'thread') threadLoops.push(i);
    else serialLoops.push(i);
  });
  const threads = threadLoops.reduce((a, i) => a * loopIterations(loops[i]!), 1);
  if (threads > MAX_THREADS) {
    fail(`cuda: the thread loops ${threadLoops.map((i) => loopText(p, loops[i]!)).join(' ')} make ${threads} threads per block, more than ${MAX_THREADS}`);
  }
  const b = assignDims(loops, blockLoops, 'ctaid', GRID_LIMITS);
  const t = assignDims(loops, threadLoops, 'tid', BLOCK_LIMITS);
  const blocks = b.dims[0] * b.dims[1] * b.dims[2];

  // the staged loop: the outermost `s` reduction loop
  let staged: number | null = null;
  let stageNote: string | undefined;
  const marked = loops.findIndex((l) => l.shared);
  if (marked >= 0) {
    const l = loops[marked]!;
    const why = stagingObstacle(s, marked);
    if (!isReduction(p, l.var) || l.bind) stageNote = `${loopText(p, l)}: only a serial reduction loop can be staged`;
    else if (why) stageNote = `${loopText(p, l)}: not staged, ${why}`;
    else if (p.inputs.length === 0) stageNote = 'no input to stage';
    else staged = marked;
  }

  // register tile: the shared rule (lower.ts), counted per thread, below the staged loop
  const tile = fittingSuffix(loops.length, (u) => tileCost(s, u), { accumulators: MAX_ACCUMULATORS, ops: maxUnrolled }, staged ?? -1);
  const unrollFrom = tile.unrollFrom;
  const tileFrom = tileStart(unrollFrom, (i) => isReduction(p, loops[i]!.var) || Boolean(loops[i]!.bind));
  if (reductionThreadLoops.length > 0) {
    // the partial sums meet in shared memory, behind barriers: every thread must reach the tile
    for (let j = 0; j < tileFrom; j++) {
      const l = loops[j]!;
      if (l.bind || isReduction(p, l.var)) continue;
      if (threadDependentRange(s, j)) {
        fail(`cuda: with reduction loops bound to threads, the serial loop ${loopText(p, l)} above the register tile must run the same range in every thread`);
      }
    }
  }
  const reductionThreads = reductionThreadLoops.reduce((a, i) => a * loopIterations(loops[i]!), 1);

  return {
    schedule: s, defaulted, blockLoops, threadLoops, serialLoops,
    grid: b.dims, block: t.dims, blocks, threads, reductionThreadLoops, gridReductionLoops, reductionThreads,
    indices: [...b.idx, ...t.idx].sort((x, y) => x.loop - y.loop),
    unrollFrom, tileFrom, accumulators: tile.size.accumulators, unrolledOps: tile.size.ops,
    staged, ...(stageNote ? { stageNote } : {}),
  };
}

/**
 * Why reduction loop `i` cannot be bound to threads, as the rest of a sentence that starts with
 * the loop: every range reaching it must be whole (the threads' partial sums meet in shared
 * memory), so no loop of its variable at or above it may have a tail.
 */
export function reductionThreadObstacle(s: Schedule, i: number): string | undefined {
  const p = s.problem;
  const l = s.loops[i]!;
  if (l.shared) return 'is staged in shared memory and cannot also be bound to threads';
  for (let j = 0; j <= i; j++) {
    const x = s.loops[j]!;
    if (x.var === l.var && x.tail > 0) return `is a reduction loop bound to threads, so no loop of ${p.vars[l.var]!.name} at or above it may have a tail (${loopText(p, x)} has one)`;
  }
  return undefined;
}

/**
 * Whether loop j's range can differ between the threads of a block: a thread loop of the same
 * variable above it leaves a partial range to some threads unless it, and every loop of the
 * variable above it, has no tail (then every thread gets the loop's whole step).
 */
function threadDependentRange(s: Schedule, j: number): boolean {
  const v = s.loops[j]!.var;
  for (let i = 0; i < j; i++) {
    const x = s.loops[i]!;
    if (x.var !== v || x.bind !== 'thread') continue;
    if (s.loops.slice(0, i + 1).some((y) => y.var === v && y.tail > 0)) return true;
  }
  return false;
}

/** Why loop `i` cannot be staged (a serial loop above it may run differently in threads of one block). */
function stagingObstacle(s: Schedule, i: number): string | undefined {
  const p = s.problem;
  for (let j = 0; j < i; j++) {
    const l = s.loops[j]!;
    if (l.bind || isReduction(p, l.var)) continue;
    if (threadDependentRange(s, j)) return `the serial loop ${loopText(p, l)} above it runs a different range in each thread`;
  }
  return undefined;
}

/** One line describing the mapping, for `show` and reports. */
export function describeMapping(m: GpuMapping): string {
  const p = m.schedule.problem;
  const name = (i: number) => loopText(p, m.schedule.loops[i]!);
  const parts = [
    `grid (${m.grid.join(', ')}) = ${m.blockLoops.map(name).join(' ') || '1'}`,
    `block (${m.block.join(', ')}) = ${m.threadLoops.map(name).join(' ') || '1'}`,
    `tile from ${m.tileFrom < m.schedule.loops.length ? name(m.tileFrom) : '-'} unrolled from ${m.unrollFrom < m.schedule.loops.length ? name(m.unrollFrom) : '-'} (${m.accumulators} accumulators)`,
    m.staged !== null ? `shared staging at ${name(m.staged)}` : m.stageNote ?? 'no shared staging',
  ];
  if (m.schedule.problem.dtype !== undefined) {
    parts.push(isWgmmaSchedule(m.schedule)
      ? `tensor cores (${m.schedule.problem.dtype}, wgmma): thread loops are warpgroups of 128 threads`
      : `tensor cores (${m.schedule.problem.dtype}): thread loops are warps of 32 lanes`);
  }
  // only problems with an epilogue get a part for it: existing descriptions stay as they were
  const e = epiloguePlace(m);
  if (e) parts.push(e.place === 'store' ? 'epilogue at the store' : `epilogue in a second pass (${e.note})`);
  return (m.defaulted ? 'default rule: ' : '') + parts.join('; ');
}

// ---------------------------------------------------------------- split reductions (rule 6)

function splitReduction(m: GpuMapping, stagingBytes: number): GpuSplitReduction {
  const T = m.threads;
  // the area may reuse the staging buffers once the staged loop is over, i.e. when it is inside the tile
  const areaOffset = m.staged !== null && m.staged < m.tileFrom ? stagingBytes : 0;
  const chunk = Math.min(m.accumulators, Math.floor((MAX_STATIC_SHARED - areaOffset) / (4 * T)));
  if (chunk < 1) fail(`cuda: no shared memory left for the partial sums of ${T} threads`);
  // linear thread-id offsets of the other reduction threads of an output point
  const strideOf = (loop: number): number => {
    const ix = m.indices.find((x) => x.loop === loop)!;
    const [bx, by] = m.block;
    return ix.div * (ix.dim === 'x' ? 1 : ix.dim === 'y' ? bx : bx * by);
  };
  let siblings = [0];
  for (const j of m.reductionThreadLoops) {
    const c = loopIterations(m.schedule.loops[j]!);
    const st = strideOf(j);
    siblings = siblings.flatMap((o) => Array.from({ length: c }, (_, i) => o + i * st));
  }
  return { areaOffset, chunk, siblings: siblings.slice(1) };
}

// ---------------------------------------------------------------- shared-memory staging (rule 5)

/** The loops of v that vary inside one iteration of the staged loop, across the block. */
function varyingLoops(s: Schedule, v: number, staged: number): number[] {
  const out: number[] = [];
  s.loops.forEach((l, j) => {
    if (l.var !== v) return;
    if (l.bind === 'thread' || (!l.bind && j > staged)) out.push(j);
  });
  return out;
}

/** Span of each variable across one staged iteration: exact for reductions (given their ranges), a bound for outputs. */
function spans(s: Schedule, staged: number, reductionRange: (v: number) => number): number[] {
  const p = s.problem;
  const reach = (js: number[]) => js.reduce((a, j) => a + (loopIterations(s.loops[j]!) - 1) * s.steps[j]!, 0);
  return p.vars.map((_, v) => {
    const vary = varyingLoops(s, v, staged);
    if (vary.length === 0) return 1;
    // only thread loops vary a reduction: each thread's slice is one point wide
    if (isReduction(p, v) && !vary.some((j) => j > staged)) return 1 + reach(vary);
    // thread loops of a reduction above the staged loop put the threads' slices side by side
    if (isReduction(p, v)) return reach(vary.filter((j) => j < staged)) + reductionRange(v);
    return 1 + reach(vary);
  });
}

/** Box extent of each dimension of a tensor for given variable spans. */
function boxSpans(p: Problem, t: number, spanOf: number[]): number[] {
  const access = problemAccesses(p)[t]!;
  return access.index.map((ix) => 1 + ix.terms.reduce((a, term) => a + term.coef * (spanOf[term.var]! - 1), 0));
}

function stageLayout(s: Schedule, m: GpuMapping, strides: number[][], staged: number): Omit<GpuStaging, 'instances' | 'interior'> {
  const p = s.problem;
  const loops = s.loops;
  const lv = loops[staged]!.var;
  const spanOf = spans(s, staged, (v) => {
    if (v === lv) return s.steps[staged]!;
    const first = loops.findIndex((l, j) => j > staged && l.var === v);
    return s.extent(first);
  });
  // the variable the register tile (or else the thread layout) walks along
  const innerVar = (t: number): number | null => {
    for (let j = loops.length - 1; j >= m.unrollFrom; j--) {
      const l = loops[j]!;
      if (!l.bind && !isReduction(p, l.var) && strides[t]![l.var] !== 0) return l.var;
    }
    for (let k = m.threadLoops.length - 1; k >= 0; k--) {
      const l = loops[m.threadLoops[k]!]!;
      if (strides[t]![l.var] !== 0) return l.var;
    }
    return null;
  };
  const tensors: SharedTensor[] = [];
  let offset = 0;
  // the inputs only: epilogue tensors are read once per output, from global memory (rule 8)
  for (let t = 1; t <= p.inputs.length; t++) {
    const access = p.inputs[t - 1]!;
    const box = boxSpans(p, t, spanOf);
    const nd = box.length;
    let order = box.map((_, d) => d);
    const iv = innerVar(t);
    if (iv !== null) {
      let dim = -1;
      access.index.forEach((ix, d) => { if (ix.terms.some((x) => x.var === iv)) dim = d; });
      if (dim >= 0 && dim !== nd - 1) order = [...order.filter((d) => d !== dim), dim];
    }
    const permuted = order[nd - 1] !== nd - 1;
    const sstride = new Array<number>(nd).fill(0);
    let row = box[order[nd - 1]!]!;
    if (permuted && row % 32 === 0) row += 4;
    let acc = 1;
    for (let k = nd - 1; k >= 0; k--) {
      const d = order[k]!;
      sstride[d] = acc;
      acc *= k === nd - 1 ? row : box[d]!;
    }
    const bytes = Math.ceil((acc * 4) / 16) * 16;
    const sv = p.vars.map((_, v) => access.index.reduce((a, ix, d) => a + ix.terms.reduce((x, term) => x + (term.var === v ? term.coef : 0), 0) * sstride[d]!, 0));
    tensors.push({ tensor: t, order, sstride, sv, regionOffset: offset, bytes });
    offset += bytes;
  }
  return { loop: staged, tensors, bufferBytes: offset, double: offset * 2 <= MAX_STATIC_SHARED, spans: spanOf };
}

/** Alignment (elements) of the block's box origin in tensor t: gcd of everything that can move it. */
function boxAlign(s: Schedule, strides: number[][], t: number, staged: number, staticOff: number): number {
  const st = strides[t]!;
  let a = staticOff;
  s.loops.forEach((l, j) => {
    if (l.bind === 'thread') return;
    if (l.bind === 'block' || j <= staged) a = gcd(a, s.steps[j]! * st[l.var]!);
  });
  return a;
}

/** `whole`: block loops whose tails the body ignores (rule 9): they cannot take the box past the tensor. */
function copyPlan(s: Schedule, m: GpuMapping, strides: number[][], regions: SharedTensor[], region: number, spanOf: number[], originAlign: number, whole: ReadonlySet<number>): CopyPlan {
  const p = s.problem;
  const tl = regions[region]!;
  const t = tl.tensor;
  const shape = p.tensors[t]!.shape;
  const box = boxSpans(p, t, spanOf);
  const nd = box.length;
  const gstride = new Array<number>(nd).fill(1);
  for (let d = nd - 2; d >= 0; d--) gstride[d] = gstride[d + 1]! * shape[d + 1]!;
  const width = box[nd - 1]! % 4 === 0 && shape[nd - 1]! % 4 === 0 && originAlign % 4 === 0 ? 4 : 1;
  const perRow = box[nd - 1]! / width;
  const items = box.slice(0, nd - 1).reduce((a, x) => a * x, perRow);
  const perThread = Math.ceil(items / m.threads);
  const check = p.vars.some((_, v) => !isReduction(p, v) && strides[t]![v] !== 0 && s.loops.some((l, j) => l.var === v && l.tail > 0 && !whole.has(j)));
  return {
    region, width, box, gstride, perRow, items, perThread, check, elements: elementCount(p.tensors[t]!),
    naturalInner: tl.order[nd - 1] === nd - 1, innerStride: tl.sstride[nd - 1]!, looped: perThread > MAX_COPY_ITEMS,
  };
}

/** Names an entry state of the staged loop: the ranges of the reduction variables and the staged inputs' static offsets. */
export function stagedInstanceKey(reductionRanges: readonly number[], inputOffsets: readonly number[]): string {
  return `${reductionRanges.join(',')}|${inputOffsets.join(',')}`;
}

/** A variable's range at some depth of the walk: a constant, or (for some threads partial) known only at run time. */
type WalkRange = { kind: 'const'; value: number } | { kind: 'runtime' };

/**
 * Every entry state of the staged loop and its copy plans. The state is what the loops above leave
 * it, exactly as a printer walks them: a bound loop narrows its variable to its step (to a run-time
 * range when its iterations overrun the range; inside the register tile output bindings leave the
 * range as it is), a serial loop with a constant range runs its full iterations (range: its step)
 * and then its tail (range: the remainder, the inputs' static offsets advanced past the full part),
 * a serial loop with a run-time range keeps it run-time. In the interior body (rule 9) the loops in
 * `whole` narrow to their step like loops without a tail.
 */
function stagedInstances(s: Schedule, m: GpuMapping, strides: number[][], layout: Omit<GpuStaging, 'instances' | 'interior'>, whole: ReadonlySet<number>): StagedInstance[] {
  const p = s.problem;
  const staged = layout.loop;
  const v = s.loops[staged]!.var;
  const st = s.steps[staged]!;
  const out = new Map<string, StagedInstance>();
  const reductions = p.vars.map((_, x) => x).filter((x) => isReduction(p, x));
  const visit = (range: WalkRange[], offs: number[]): void => {
    const r = range[v]!;
    if (r.kind !== 'const') return; // a printer refuses it (internal error); nothing to plan
    const constOf = (x: number) => { const q = range[x]!; return q.kind === 'const' ? q.value : NaN; };
    const key = stagedInstanceKey(reductions.map(constOf), layout.tensors.map((tl) => offs[tl.tensor]!));
    if (out.has(key)) return;
    const full = Math.floor(r.value / st);
    const rem = r.value % st;
    const origins = layout.tensors.map((tl) => boxAlign(s, strides, tl.tensor, staged, offs[tl.tensor]!));
    const plans = (rangeOfV: number, align: (k: number) => number) => {
      const spanOf = spans(s, staged, (x) => (x === v ? rangeOfV : constOf(x)));
      return layout.tensors.map((_, k) => copyPlan(s, m, strides, layout.tensors, k, spanOf, align(k), whole));
    };
    out.set(key, {
      key,
      full: full > 0 ? plans(st, (k) => origins[k]!) : null,
      tail: rem > 0 ? plans(rem, (k) => gcd(origins[k]!, offs[layout.tensors[k]!.tensor]! + full * st * strides[layout.tensors[k]!.tensor]![v]!)) : null,
    });
  };
  const walk = (d: number, range: WalkRange[], offs: number[]): void => {
    if (d === staged) return visit(range, offs);
    const l = s.loops[d]!;
    const x = l.var;
    const step = s.steps[d]!;
    const r = range[x]!;
    const withRange = (q: WalkRange) => range.map((y, i) => (i === x ? q : y));
    if (l.bind) {
      if (d >= m.tileFrom) return walk(d + 1, isReduction(p, x) ? withRange({ kind: 'const', value: step }) : range, offs);
      const fits = whole.has(d) || (r.kind === 'const' && loopIterations(l) <= Math.floor(r.value / step));
      return walk(d + 1, withRange(fits ? { kind: 'const', value: step } : { kind: 'runtime' }), offs);
    }
    if (r.kind !== 'const') return walk(d + 1, range, offs);
    const full = Math.floor(r.value / step);
    const rem = r.value % step;
    if (full >= 1) walk(d + 1, withRange({ kind: 'const', value: step }), offs);
    if (rem > 0) walk(d + 1, withRange({ kind: 'const', value: rem }), offs.map((o, t) => o + strides[t]![x]! * step * full));
  };
  walk(0, p.vars.map((x) => ({ kind: 'const', value: x.extent })), problemAccesses(p).map((a) => a.offset ?? 0));
  return [...out.values()];
}

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
}
