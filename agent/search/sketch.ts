/**
 * Ansor-style sketches: the multi-level tiling structure that data-reuse computations want,
 * instantiated with random tile sizes. For any problem (not only matmul):
 *
 *   [outer tiles of the output variables, random order] [outer tiles of the reductions]
 *   [inner reduction loops] [register tile: inner output tiles, the unit-stride variable last]
 *
 * The register tile is drawn so that its accumulators fit the target's registers (inner tile of
 * the vector variable a multiple of the lanes), which is what makes the unrolled micro-kernel of
 * the lowering near-peak; the searchers then mutate sizes and order from there.
 */
import { isReduction, type Problem } from '../../ir/problem.ts';
import type { Rng } from '../../ir/random.ts';
import { Schedule, type Loop } from '../../ir/schedule.ts';
import { bandedFor } from '../../ir/parallelize.ts';
import { layoutBlock } from '../../ir/spec.ts';
import { tensorStrides } from '../../ir/problem.ts';
import { vectorVariable } from '../../loopnest/lower.ts';
import type { Evaluator, SketchSource } from '../../env/evaluator.ts';
import { findBackend } from '../../targets/registry.ts';

export type { SketchRegisters as SketchTarget } from '../../targets/backend.ts';
import type { SketchRegisters as SketchTarget } from '../../targets/backend.ts';

const ROW_TILES = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14];
const REDUCTION_TILES = [8, 16, 32, 64, 128, 256];

function splitLoops(v: number, extent: number, inner: number): { outer?: Loop; inner: Loop } {
  if (inner >= extent) return { inner: { var: v, size: extent, tail: 0 } };
  return { outer: { var: v, size: Math.floor(extent / inner), tail: extent % inner }, inner: { var: v, size: inner, tail: 0 } };
}

function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** The register budget a target's CPU sketches tile for (its Backend's); the AVX-512 one for names no backend has. */
export function sketchTargetFor(targetName: string): SketchTarget {
  return findBackend(targetName)?.sketchRegisters ?? { lanes: 16, registers: 31 };
}

/** A random sketch instance, or undefined when the draw does not fit `maxLoops`. */
export function sampleSketch(problem: Problem, rng: Rng, target: SketchTarget, maxLoops = 10): Schedule | undefined {
  const strides = tensorStrides(problem);
  const vv = vectorVariable(problem, strides).var;
  const outVars = problem.vars.map((_, i) => i).filter((v) => !isReduction(problem, v));
  const redVars = problem.vars.map((_, i) => i).filter((v) => isReduction(problem, v));
  const extent = (v: number) => problem.vars[v]!.extent;
  // register tile: vector variable gets 1..4 vectors, the other output variables row tiles, within the registers
  const tile = new Map<number, number>();
  let accumulators = 1;
  if (vv !== null) {
    const vectors = rng.int(1, Math.max(1, Math.min(4, Math.ceil(extent(vv) / target.lanes))));
    tile.set(vv, Math.min(extent(vv), vectors * target.lanes));
    accumulators = Math.ceil(tile.get(vv)! / target.lanes);
  }
  for (const v of shuffle(outVars.filter((x) => x !== vv), rng)) {
    const room = Math.floor((target.registers - 2) / accumulators);
    const choices = ROW_TILES.filter((t) => t <= room && t <= extent(v));
    const t = choices.length ? rng.pick(choices) : 1;
    tile.set(v, t);
    accumulators *= t;
  }
  const outerOut: Loop[] = [];
  const innerOut: Loop[] = [];
  for (const v of outVars) {
    const s = splitLoops(v, extent(v), tile.get(v) ?? 1);
    if (s.outer) outerOut.push(s.outer);
    if ((tile.get(v) ?? 1) > 1 || !s.outer) innerOut.push(s.inner);
    else outerOut[outerOut.length - 1] = { var: v, size: extent(v), tail: 0 };
  }
  const outerRed: Loop[] = [];
  const innerRed: Loop[] = [];
  for (const v of redVars) {
    // small reductions (convolution windows) stay whole; long ones are blocked for the caches
    const choices = REDUCTION_TILES.filter((t) => t < extent(v));
    const block = extent(v) <= 8 || choices.length === 0 || rng.next() < 0.4 ? extent(v) : rng.pick(choices);
    const s = splitLoops(v, extent(v), block);
    if (s.outer) outerRed.push(s.outer);
    innerRed.push(s.inner);
  }
  shuffle(outerOut, rng);
  shuffle(innerRed, rng);
  // the vector variable innermost in the register tile, other tile loops in random order above it
  const tileLoops = shuffle(innerOut.filter((l) => l.var !== vv), rng);
  const vecLoop = innerOut.find((l) => l.var === vv);
  const loops = [...outerOut, ...outerRed, ...innerRed, ...tileLoops, ...(vecLoop ? [vecLoop] : [])];
  if (loops.length > maxLoops) return undefined;
  try {
    return new Schedule(problem, loops);
  } catch {
    return undefined;
  }
}

/** The CPU sketches of a target, 70% of a search's fresh schedules (the rest random action walks), and the GEMM seeds. */
export function cpuSketches(target: SketchTarget): SketchSource {
  return {
    share: 0.7,
    sample: (problem, rng, maxLoops) => sampleSketch(problem, rng, target, maxLoops),
    seeds: (problem, maxLoops) => [...gemmSeeds(problem, target, maxLoops), ...blockedSeeds(problem, target, maxLoops)],
  };
}

/** Loops from (variable, step) pairs, outermost first: each loop covers its variable's range left by the loops above it. */
function tiledLoops(problem: Problem, order: readonly (readonly [number, number])[]): Loop[] {
  const left = problem.vars.map((v) => v.extent);
  const loops: Loop[] = [];
  for (const [v, step] of order) {
    const range = left[v]!;
    if (range <= step) continue; // one iteration or none: the next level covers the range
    loops.push({ var: v, size: Math.floor(range / step), tail: range % step });
    left[v] = step;
  }
  return loops;
}

/** Register tiles (rows x vector columns) of the GEMM seeds, per lane count: the accumulators fit the registers. */
const GEMM_TILES: Record<number, readonly (readonly [number, number])[]> = { 16: [[6, 3], [12, 2]], 8: [[6, 2], [4, 3]] };

/**
 * BLIS-style schedules of a GEMM-shaped problem (one reduction, the vector variable and one other
 * output variable, any batch variables outermost), measured first by every search: a register
 * tile of rows x vectors with an unrolled k:8 inside, k blocked by 128 or 256 (the B panel then
 * stays in L2 and is packed where its rows are 4 KB apart), and for large problems rows and
 * columns blocked around it (96 x 192: many chunks for a parallel band, which sketchSourceOf adds).
 * Large matmuls were where random sketches did worst (2048^3 at 0.75-1 of OpenBLAS, and 21% of peak
 * on the 16-core Xeon with the 16-thread tune's budget).
 */
export function gemmSeeds(problem: Problem, target: SketchTarget, maxLoops: number): Schedule[] {
  const strides = tensorStrides(problem);
  const n = vectorVariable(problem, strides).var;
  const reductions = problem.vars.map((_, v) => v).filter((v) => isReduction(problem, v));
  const others = problem.vars.map((_, v) => v).filter((v) => v !== n && !isReduction(problem, v));
  if (n === null || reductions.length !== 1 || others.length === 0) return [];
  const k = reductions[0]!;
  const m = others[others.length - 1]!;
  // the rows variable moves the other input along its rows: otherwise this is not a GEMM shape
  if (problem.inputs.length !== 2 || strides.slice(1).every((st) => st[m] === 0)) return [];
  const batch = others.slice(0, -1).map((v) => [v, 1] as const);
  const lanes = target.lanes;
  // blocking pays where the panels outgrow L2: at 1024^3 the plain tiles were faster (245 vs 207 GFLOPS per core)
  const big = problem.vars[m]!.extent * problem.vars[n]!.extent * problem.vars[k]!.extent >= 1536 ** 3;
  const out: Schedule[] = [];
  for (const [rows, vectors] of GEMM_TILES[lanes] ?? [[4, 2]]) {
    if (rows * vectors + 2 > target.registers) continue;
    const cols = vectors * lanes;
    for (const kc of [256, 128]) {
      // m:M/rows n:N/cols k:K/kc k:kc/8 n:vectors k:8 n:lanes m:rows (the unrolled tile: n:vectors k:8 n:lanes m:rows)
      const tile = [[k, 8], [n, lanes], [k, 1], [n, 1], [m, 1]] as const;
      const plain = [...batch, [m, rows], [n, cols], [k, kc], ...tile] as const;
      const blocked = [...batch, [m, 96], [n, 192], [k, kc], [m, rows], [n, cols], ...tile] as const;
      for (const order of big ? [blocked, plain] : [plain]) {
        const loops = tiledLoops(problem, order);
        if (loops.length > maxLoops) continue;
        try {
          const s = new Schedule(problem, loops);
          if (!out.some((x) => x.hash() === s.hash())) out.push(s);
        } catch {
          // a shape these steps do not fit
        }
      }
    }
  }
  return out;
}

/**
 * NCHWc register tiles (NeoCPU, MLAS) for a conv or pool in a blocked layout whose block is the
 * target's vector: one vector along the channel block (ki), `cols` output columns (w) times `rows`
 * of a second variable (the output-channel block kb of a dense conv, whose input does not move
 * with it; else the output row h) as accumulators, every reduction (cb r s ci) inside the tile or
 * the input-channel block cb hoisted above the rows (its input block then stays in L1 over a
 * whole output plane). Random sketches rarely hit this: on ResNet's 7x7 layers the tuned blocked
 * kernels ran at 99-110 GFLOPS where `kb:16 cb:32 h:7 r:3 s:3 ci:16 kb:2 w:7 ki:16` runs at 244
 * on one Zen 5 core.
 */
export function blockedSeeds(problem: Problem, target: SketchTarget, maxLoops: number): Schedule[] {
  if (layoutBlock(problem) !== target.lanes) return [];
  const strides = tensorStrides(problem);
  const vv = vectorVariable(problem, strides).var;
  if (vv === null || problem.vars[vv]!.extent !== target.lanes) return [];
  const outVars = problem.vars.map((_, v) => v).filter((v) => v !== vv && !isReduction(problem, v));
  const reductions = problem.vars.map((_, v) => v).filter((v) => isReduction(problem, v));
  const w = outVars[outVars.length - 1];
  if (w === undefined) return [];
  const weights = strides[2];
  const kb = outVars.find((v) => v !== w && strides[1]![v] === 0 && weights !== undefined && weights[v] !== 0);
  const second = kb ?? outVars[outVars.length - 2];
  const extent = (v: number) => problem.vars[v]!.extent;
  const W = extent(w);
  const room = target.registers - 2;
  const colChoices = [...new Set([W <= 14 ? W : 0, ...[14, 12, 8, 7, 6, 4].filter((c) => c < W && W % c === 0)].filter((c) => c > 0))].slice(0, 2);
  // a second width with a tail (7 = 4 + 3) where W has no divisor to offer
  if (colChoices.length < 2 && W > 1) colChoices.push(Math.min(8, Math.ceil(W / 2)));
  const hoist = kb === undefined ? undefined : reductions.find((v) => extent(v) > 1 && strides[1]![v] !== 0 && weights !== undefined && weights[v] !== 0 && v !== reductions[reductions.length - 1]);
  const out: Schedule[] = [];
  for (const cols of colChoices) {
    for (const rows of [4, 2, 1]) {
      if (cols * rows > room || (second !== undefined && rows > extent(second)) || (second === undefined && rows > 1)) continue;
      const outer = outVars.filter((v) => v !== w).map((v) => [v, v === second ? rows : 1] as const);
      const tile = [...(second !== undefined && rows > 1 ? [[second, 1] as const] : []), [w, 1] as const, [vv, 1] as const];
      // the input's unit-stride reduction (ci) innermost: its scalars are broadcast in turn
      const reduce = [...reductions].sort((a, b) => strides[1]![b]! - strides[1]![a]!).map((v) => [v, 1] as const);
      const orders = [[...outer, [w, cols] as const, ...reduce, ...tile]];
      if (hoist !== undefined) {
        const at = second === undefined ? 0 : outer.findIndex(([v]) => v === second) + 1;
        orders.push([...outer.slice(0, at), [hoist, 1] as const, ...outer.slice(at), [w, cols] as const, ...reduce.filter(([v]) => v !== hoist), ...tile]);
      }
      for (const order of orders) {
        const tiled = tiledLoops(problem, order);
        // a variable of extent 1 (the batch) gets its one loop outermost
        const loops = [...problem.vars.flatMap((_, v) => (tiled.some((l) => l.var === v) ? [] : [{ var: v, size: 1, tail: 0 }])), ...tiled];
        if (loops.length > maxLoops) continue;
        try {
          const s = new Schedule(problem, loops);
          if (!out.some((x) => x.hash() === s.hash())) out.push(s);
        } catch {
          // a shape these steps do not fit
        }
      }
    }
  }
  return out;
}

/**
 * The sketches a search draws from on this evaluator: its own (e.g. GPU tilings), else the CPU
 * ones; on several threads a problem worth a fork gets its outer band parallel (ir/parallelize.ts).
 */
export function sketchSourceOf(evaluator: Evaluator): SketchSource {
  const source = evaluator.sketches ?? cpuSketches(sketchTargetFor(evaluator.target));
  const threads = evaluator.threads ?? 1;
  if (threads <= 1) return source;
  const banded = (s: Schedule): Schedule => bandedFor(s, threads);
  return {
    share: source.share,
    sample: (problem, rng, maxLoops) => {
      const s = source.sample(problem, rng, maxLoops);
      return s && banded(s);
    },
    ...(source.seeds ? { seeds: (problem: Problem, maxLoops: number) => source.seeds!(problem, maxLoops).map(banded) } : {}),
  };
}
