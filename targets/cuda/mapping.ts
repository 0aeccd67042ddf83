/**
 * The GPU mapping rule: how a schedule becomes a grid of blocks of threads, each running serial loops.
 *
 * 1. Bound loops. A loop annotated `b` (bind: 'block') is spread over grid blocks, `t` (bind:
 *    'thread') over the threads of a block: its index comes from %ctaid / %tid instead of a loop
 *    counter. A bound loop of size S with a tail runs S + 1 indices; the last covers the tail.
 *    Output-variable loops can be bound to blocks or threads. A reduction loop can be bound to
 *    threads only (a split reduction inside a block, never atomics): each thread sums its share,
 *    then the partial accumulators meet in shared memory and are added in a fixed order (so results
 *    are deterministic) by the threads whose reduction indices are all 0, which write the output;
 *    no loop of that variable at or above it may have a tail. Bound loops are parallel, so their
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
 * 4. Serial loops: everything else runs in each thread, in schedule order. The register tile is the
 *    longest suffix of the serial loops whose output points fit MAX_ACCUMULATORS registers and whose
 *    unrolled operations fit MAX_UNROLLED (bound loops count as one point): it is fully unrolled,
 *    with accumulators in registers. Reduction (and bound) loops directly above it join the tile: its
 *    accumulators stay in registers across them, and the output is read and written once per tile.
 * 5. Shared memory: the outermost serial reduction loop annotated `s` (shared) stages, once per
 *    iteration, the box of every input tensor that the whole block reads in that iteration into
 *    shared memory (cooperative, 128-bit loads where alignment allows, zero fill past the tensor),
 *    between bar.sync barriers, double-buffered when it fits (one barrier per iteration, the next
 *    box prefetched into registers during the compute). The annotation is honoured when every serial
 *    loop above it runs the same iterations in all threads of a block (reduction loops, or output
 *    loops of variables with no thread loop above them), it is above the register tile's unrolled
 *    part, and the boxes fit 48 KiB; otherwise it is ignored and `stageNote` says why.
 */
import { fail } from '../../ir/errors.ts';
import { isReduction, type Problem } from '../../ir/problem.ts';
import { Schedule, type Loop, loopText } from '../../ir/schedule.ts';

export const MAX_THREADS = 1024;
export const MAX_GRID_X = 2 ** 31 - 1;
const GRID_LIMITS = [MAX_GRID_X, 65535, 65535];
const BLOCK_LIMITS = [1024, 1024, 64];
/** accumulators of one register tile (fp32 registers per thread) */
export const MAX_ACCUMULATORS = 128;
/** operations of one fully unrolled tile body */
export const MAX_UNROLLED = 2048;

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

export function loopIterations(l: Loop): number {
  return l.size + (l.tail > 0 ? 1 : 0);
}

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

export function gpuMapping(input: Schedule, opts: { maxUnrolled?: number } = {}): GpuMapping {
  const maxUnrolled = opts.maxUnrolled ?? MAX_UNROLLED;
  const { schedule: s, defaulted } = withDefaultBindings(input);
  const p: Problem = s.problem;
  const loops = s.loops;
  const blockLoops: number[] = [];
  const threadLoops: number[] = [];
  const serialLoops: number[] = [];
  const reductionThreadLoops: number[] = [];
  loops.forEach((l, i) => {
    if (l.bind && isReduction(p, l.var)) {
      const why = reductionThreadObstacle(s, i);
      if (why) fail(`cuda: ${why}`);
      reductionThreadLoops.push(i);
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

  // register tile: the longest fitting suffix, below the staged loop
  let unrollFrom = loops.length;
  let size = { accumulators: 1, ops: 1 };
  for (let u = loops.length - 1; u >= 0; u--) {
    if (staged !== null && u <= staged) break;
    const c = tileCost(s, u);
    if (c.accumulators > MAX_ACCUMULATORS || c.ops > maxUnrolled) break;
    unrollFrom = u;
    size = c;
  }
  let tileFrom = unrollFrom;
  while (tileFrom > 0 && (isReduction(p, loops[tileFrom - 1]!.var) || loops[tileFrom - 1]!.bind)) tileFrom--;
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
    grid: b.dims, block: t.dims, blocks, threads, reductionThreadLoops, reductionThreads,
    indices: [...b.idx, ...t.idx].sort((x, y) => x.loop - y.loop),
    unrollFrom, tileFrom, accumulators: size.accumulators, unrolledOps: size.ops,
    staged, ...(stageNote ? { stageNote } : {}),
  };
}

/**
 * Why reduction loop `i` cannot be bound to threads: only to threads (a block's threads combine
 * their partial sums in shared memory), and every range reaching it must be whole, so no loop of
 * its variable at or above it may have a tail.
 */
export function reductionThreadObstacle(s: Schedule, i: number): string | undefined {
  const p = s.problem;
  const l = s.loops[i]!;
  const text = loopText(p, l);
  if (l.bind === 'block') return `${text} is a reduction loop and cannot be bound to blocks (a reduction stays inside one block)`;
  if (l.shared) return `${text} is staged in shared memory and cannot also be bound to threads`;
  for (let j = 0; j <= i; j++) {
    const x = s.loops[j]!;
    if (x.var === l.var && x.tail > 0) return `the reduction loop ${text} is bound to threads, so no loop of ${p.vars[l.var]!.name} at or above it may have a tail (${loopText(p, x)} has one)`;
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
  return (m.defaulted ? 'default rule: ' : '') + parts.join('; ');
}
