/**
 * Per-schedule features for the learned cost model, computed from the LoopProgram the code
 * generator will actually emit (`lower(schedule, caps)`): the register tile the lowering chose, its
 * operand traffic, tails and lane waste, plus an Ansor-style per-tensor cache model against the
 * host's L1/L2/L3. The program's counts come from program-stats.ts: by default without
 * materializing the unrolled bodies (the same numbers as walking lower()'s program, checked by the
 * tests and once per process at run time; about 10x faster on schedules with tails). Every feature
 * is log-scaled or a ratio, divided by a fixed constant so that typical values fall in [0, 1] (the
 * model standardizes them again with its training statistics). Deterministic: pure arithmetic on
 * the schedule, the thread count, the target caps and the cache sizes.
 *
 * The thread count is the measurement's, not the schedule's (a record's host key says it,
 * data.ts threadsOfHost): the same schedule runs at different speeds on 1 and 2 threads, so it is
 * an input, and the last block (parallel, 10) describes the lowered program's ParallelNode at that
 * count. The first SERIAL_FEATURE_COUNT = 182 features are those of feature version 1, unchanged
 * (thread-blind models read just those).
 *
 * FEATURE_COUNT = 192, in this order (lg(x) = log2(1 + x); "op" = one vector operation of the
 * unrolled body, i.e. one FMA for matmul/conv; "exec-weighted" = summed over the whole program with
 * each node counted as often as it runs):
 *
 * | index   | name                    | value                                                                        |
 * |---------|-------------------------|------------------------------------------------------------------------------|
 * | **problem (10)** |                |                                                                              |
 * | 0       | problem.flops           | lg(flops of one run) / 40                                                    |
 * | 1       | problem.bytes           | lg(bytes of all tensors) / 32                                                |
 * | 2       | problem.intensity       | lg(flops / bytes) / 8  (the best arithmetic intensity any schedule can reach) |
 * | 3       | problem.fma             | 1 when the combine is fma (out += a*b)                                       |
 * | 4       | problem.inputs          | inputs / 2                                                                   |
 * | 5       | problem.vars            | variables / 10                                                               |
 * | 6       | problem.reductions      | reduction variables / 4                                                      |
 * | 7-9     | problem.op.{gemm,conv,other} | one-hot: matmul/bmm, conv1d/2d/3d, anything else                        |
 * | **register tile (21)** |          | from `program.decision` and the ComputeNode groups                           |
 * | 10      | tile.lanes              | fp32 lanes / 16 (1/16 on the scalar path)                                    |
 * | 11      | tile.scalar             | 1 when the lowering fell back to the scalar path                             |
 * | 12      | tile.accumulators       | lg(accumulator registers) / 6                                                |
 * | 13      | tile.occupancy          | accumulators / (registers - 2)                                               |
 * | 14      | tile.latencyCover       | min(1, accumulators / (FMA latency x FMA ports))                             |
 * | 15      | tile.unrolledOps        | lg(ops of one full unrolled body) / 10                                       |
 * | 16      | tile.unrolledLoops      | loops in the unrolled region / 10                                            |
 * | 17      | tile.hoistedLoops       | reduction loops inside the tile but not unrolled (unrollFrom - tileFrom) / 10 |
 * | 18      | tile.hoisted            | 1 when accumulators stay in registers across reduction loops (tileFrom < unrollFrom) |
 * | 19      | tile.accReuse           | lg(unrolled bodies run per tile entry) / 16                                  |
 * | 20      | tile.vectorLoadsPerOp   | distinct vector operands per op, per group (main compute node)               |
 * | 21      | tile.broadcastsPerOp    | distinct broadcast operands per op, per group (main compute node)            |
 * | 22      | tile.operandLoadsPerOp  | [20] + [21], capped at 4, / 4                                                |
 * | 23      | tile.laneUtilization    | exec-weighted sum of valid lanes / (ops x lanes): 1 = no tail waste          |
 * | 24      | tile.partialOps         | exec-weighted fraction of ops on partial (masked) vectors                    |
 * | 25      | tile.accTrafficPerOp    | lg(accumulator loads + stores per op, exec-weighted) / 2                     |
 * | 26      | tile.loopIterPerOp      | lg(loop iterations per op, exec-weighted) / 2 (branch and pointer overhead)  |
 * | 27      | tile.staticOps          | lg(ops in all compute nodes of the program: code size) / 14                  |
 * | 28      | tile.tileInstances      | lg(tile nodes in the program: tail duplication) / 8                          |
 * | 29      | tile.operandPressure    | min(4, operands of the main compute node (sum over groups) / free registers) / 4 |
 * | 30      | tile.computeEfficiency  | analytic fraction of peak: lanes/target lanes x lane utilization x latency cover x load-port limit / (1 + loop iterations per op) |
 * | **loop levels (10 x 10 = 100)** | | level j = 0..9 is the j-th loop from the INSIDE (loops[n-1-j]); zeros past the outermost loop |
 * | 31+10j  | loop[j].present         | 1 when the level exists                                                      |
 * | 32+10j  | loop[j].size            | lg(size) / 16                                                                |
 * | 33+10j  | loop[j].tail            | lg(tail) / 16                                                                |
 * | 34+10j  | loop[j].reduction       | 1 when its variable is a reduction                                           |
 * | 35+10j  | loop[j].vector          | 1 when its variable is the vectorized one                                    |
 * | 36+10j  | loop[j].unrolled        | 1 when the loop is in the fully unrolled region                              |
 * | 37+10j  | loop[j].inTile          | 1 when it is inside the register tile but not unrolled                       |
 * | 38+10j..40+10j | loop[j].stride.t{0,1,2} | lg(elements one iteration moves tensor t: output, input 0, input 1) / 24 |
 * | **per tensor (3 x 14 = 42)** |   | slot t = 0 output, 1 input 0, 2 input 1 (zeros when absent); base b = 131 + 14t |
 * | b+0     | t.present               | 1 when the tensor exists                                                     |
 * | b+1     | t.bytes                 | lg(bytes) / 32                                                               |
 * | b+2     | t.reuse                 | lg(iteration points / elements) / 16 (uses of each element)                  |
 * | b+3     | t.kernelStride          | lg(stride of the innermost loop outside the unrolled region) / 24            |
 * | b+4     | t.unrolledFootprint     | lg(elements one unrolled body touches) / 12                                  |
 * | b+5     | t.tileFootprint         | lg(bytes one register-tile entry touches) / 24                               |
 * | b+6..8  | t.traffic.{l1,l2,l3}    | bytes per flop brought INTO L1 / L2 / L3 (cache model below), (log2(x + 2^-16) + 16) / 20 |
 * | b+9..11 | t.fits.{l1,l2,l3}       | 1 when the whole tensor fits in L1 / L2 / L3                                 |
 * | b+12    | t.lineUse               | fraction of each 64-byte line used by the innermost loop that moves t        |
 * | b+13    | t.innerMoves            | 1 when the innermost loop moves t (0: t is reused in registers there)        |
 * | **whole-program memory (9)** |   |                                                                              |
 * | 173-175 | mem.traffic.{l1,l2,l3}  | sum of the tensors' traffic, same scaling as b+6..8                          |
 * | 176-178 | mem.fitLevel.{l1,l2,l3} | loops outside the outermost sub-nest that fits in L1 / L2 / L3, / 10         |
 * | 179     | mem.roofline            | analytic fraction of peak: min(computeEfficiency, nominal bandwidth / traffic, per level) |
 * | 180     | mem.dramPerFlop         | compulsory bytes (all tensors once) per flop, same scaling as b+6            |
 * | 181     | mem.l1Operands          | lg(register operand bytes loaded per flop x 16) / 8                          |
 * | **parallel (10)** |               | T = threads; a serial kernel is one band instance of 1 chunk (it runs on one thread); |
 * |         |                         | busy = sum over band instances of ceil(chunks / T) (chunks the busiest thread runs); work = sum of chunks |
 * | 182     | par.threads             | log2(T) / 6                                                                  |
 * | 183     | par.parallel            | 1 when the lowered program has a parallel band (ParallelNode)                |
 * | 184     | par.chunks              | lg(chunks of the band instance with the most work) / 16                      |
 * | 185     | par.chunksPerThread     | lg(busy) / 16                                                                |
 * | 186     | par.balance             | work / (T x busy): ir/parallelize.ts bandBalance over all instances (1/T serial) |
 * | 187     | par.speedup             | log2(work / busy) / 6: the ideal speedup over one thread                     |
 * | 188     | par.threadFlops         | lg(flops x busy / work) / 40: the busiest thread's flops (fork-join is worth it?) |
 * | 189     | par.threadBytes         | lg(per-thread working set) / 32: bytes (in lines) the busiest thread's chunks of the main instance touch: the cache model's footprint of the sub-nest below the band with the band variables covering ceil(chunks / T) consecutive chunks (innermost band loop first); serial: the whole nest's |
 * | 190     | par.threadFitsL2        | 1 when that working set fits in L2 (L2 is per core)                          |
 * | 191     | par.instances           | lg(band instances run) / 16 (a band below serial loops is entered once per outer iteration) |
 *
 * Cache model (Ansor-like, by loop levels): the sub-nest loops[l..] touches, per tensor, the index
 * range of each dimension its affine access spans when every variable covers the extent of its
 * outermost loop inside the sub-nest; footprints are counted in 64-byte lines. For a cache of C
 * bytes, l_C is the outermost level whose sub-nest's total footprint fits in C; the traffic of
 * tensor t into that cache is (iterations of the loops outside l_C) x (its lines at l_C) x 64.
 */
import { elementCount, flops as problemFlops, isReduction, iterationPoints, tensorStrides, type Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';
import { Rng, randomBand, randomProblem, randomSchedule, RANDOM_OPS } from '../../ir/random.ts';
import { vectorEncoding, MAX_LOOPS, LOOP_FEATURES } from '../../ir/graph.ts';
import { lower, loweredBand } from '../../loopnest/lower.ts';
import type { LoopProgram } from '../../loopnest/program.ts';
import type { TargetCaps } from '../../targets/kernel.ts';
import { backend } from '../../targets/registry.ts';
import { hostCaches, type HostCaches } from '../../targets/runtime/host.ts';
import { analyticStats, programStats, tileDecision } from './program-stats.ts';

export const LEVELS = 10;
export const PER_LEVEL = 10;
export const TENSOR_SLOTS = 3;
export const PER_TENSOR = 14;
const P0 = 0;
const T0 = 10;
const L0 = 31;
const X0 = L0 + LEVELS * PER_LEVEL; // 131
const M0 = X0 + TENSOR_SLOTS * PER_TENSOR; // 173
/** The features of version 1 (no thread count): a prefix of today's. */
export const SERIAL_FEATURE_COUNT = M0 + 9; // 182
const R0 = SERIAL_FEATURE_COUNT;
export const PARALLEL_FEATURES = 10;
export const FEATURE_COUNT = R0 + PARALLEL_FEATURES; // 192

/** Names of the FEATURE_COUNT features, in order (see the table in the header). */
export const FEATURE_NAMES: readonly string[] = Object.freeze((() => {
  const n: string[] = [
    'problem.flops', 'problem.bytes', 'problem.intensity', 'problem.fma', 'problem.inputs', 'problem.vars',
    'problem.reductions', 'problem.op.gemm', 'problem.op.conv', 'problem.op.other',
    'tile.lanes', 'tile.scalar', 'tile.accumulators', 'tile.occupancy', 'tile.latencyCover', 'tile.unrolledOps',
    'tile.unrolledLoops', 'tile.hoistedLoops', 'tile.hoisted', 'tile.accReuse', 'tile.vectorLoadsPerOp',
    'tile.broadcastsPerOp', 'tile.operandLoadsPerOp', 'tile.laneUtilization', 'tile.partialOps', 'tile.accTrafficPerOp',
    'tile.loopIterPerOp', 'tile.staticOps', 'tile.tileInstances', 'tile.operandPressure', 'tile.computeEfficiency',
  ];
  for (let j = 0; j < LEVELS; j++) {
    for (const f of ['present', 'size', 'tail', 'reduction', 'vector', 'unrolled', 'inTile', 'stride.t0', 'stride.t1', 'stride.t2']) n.push(`loop[${j}].${f}`);
  }
  for (let t = 0; t < TENSOR_SLOTS; t++) {
    for (const f of ['present', 'bytes', 'reuse', 'kernelStride', 'unrolledFootprint', 'tileFootprint', 'traffic.l1', 'traffic.l2',
      'traffic.l3', 'fits.l1', 'fits.l2', 'fits.l3', 'lineUse', 'innerMoves']) n.push(`t${t}.${f}`);
  }
  n.push('mem.traffic.l1', 'mem.traffic.l2', 'mem.traffic.l3', 'mem.fitLevel.l1', 'mem.fitLevel.l2', 'mem.fitLevel.l3',
    'mem.roofline', 'mem.dramPerFlop', 'mem.l1Operands');
  n.push('par.threads', 'par.parallel', 'par.chunks', 'par.chunksPerThread', 'par.balance', 'par.speedup', 'par.threadFlops',
    'par.threadBytes', 'par.threadFitsL2', 'par.instances');
  return n;
})());

/** What features depend on besides the schedule: the target's register file and the caches. */
export interface FeatureContext {
  caps: TargetCaps;
  /** bytes */
  caches: { l1d: number; l2: number; l3: number };
  /** lower() every schedule instead of the analytic statistics (same features, slower; for checks). */
  exact?: boolean;
}

/** Cache sizes used when the host reports none (FACTS.md: Zen 5). */
export const FALLBACK_CACHES = Object.freeze({ l1d: 48 * 1024, l2: 1024 * 1024, l3: 32 * 1024 * 1024 });

export function resolveCaches(c?: Partial<HostCaches>): { l1d: number; l2: number; l3: number } {
  const h = c ?? hostCaches();
  return {
    l1d: h.l1d && h.l1d > 0 ? h.l1d : FALLBACK_CACHES.l1d,
    l2: h.l2 && h.l2 > 0 ? h.l2 : FALLBACK_CACHES.l2,
    l3: h.l3 && h.l3 > 0 ? h.l3 : FALLBACK_CACHES.l3,
  };
}

/** The context for a target's features; checks once per target that the analytic path still matches lower(). */
export function featureContext(target: string, caches?: Partial<HostCaches>): FeatureContext {
  const caps = backend(target).caps;
  return { caps, caches: resolveCaches(caches), ...(analyticMatchesLowering(caps) ? {} : { exact: true }) };
}

const analyticChecked = new WeakMap<TargetCaps, boolean>();

/**
 * Whether program-stats.ts's analytic path reproduces lower() for these caps on a fixed sample of
 * schedules (every op, tails, register-blocked matmuls). If not (loopnest changed its tiling rule
 * and program-stats.ts was not updated), features fall back to lowering every schedule, with one
 * warning: the features stay right, only slower.
 */
export function analyticMatchesLowering(caps: TargetCaps): boolean {
  const known = analyticChecked.get(caps);
  if (known !== undefined) return known;
  const rng = new Rng(20240605);
  const sample: Schedule[] = [];
  for (let i = 0; i < 40; i++) sample.push(randomSchedule(randomProblem(rng, RANDOM_OPS[i % RANDOM_OPS.length], 1.5), rng, rng.int(2, 16)));
  // parallel bands (collapsed, below serial loops, with tails): ParallelNodes in the program
  for (let i = 0; i < 20; i++) sample.push(randomBand(randomSchedule(randomProblem(rng, RANDOM_OPS[i % RANDOM_OPS.length], 1.5), rng, rng.int(2, 16)), rng));
  const mm = parseProblem('matmul 100x70x90');
  for (const text of ['m:16r4 n:1r6 k:90 m:6 n:64', 'n:2r6 m:25 k:3 k:30 m:4 n:32', 'm:100 n:70 k:90']) sample.push(Schedule.parse(mm, text));
  let ok = true;
  for (const s of sample) {
    const prog = lower(s, caps);
    const d = tileDecision(s, caps);
    if (JSON.stringify(d) !== JSON.stringify(prog.decision) || JSON.stringify(analyticStats(s, d, undefined, loweredBand(s, caps))) !== JSON.stringify(programStats(prog))) {
      ok = false;
      process.stderr.write(`looptune: cost-model features: the analytic program statistics no longer match lower() (first difference: ${s.problem.spec} | ${s.text()}); lowering every schedule instead (slower). Update agent/costmodel/program-stats.ts.\n`);
      break;
    }
  }
  analyticChecked.set(caps, ok);
  return ok;
}

const LINE = 64;
const LINE_ELEMS = 16;
const lg = (x: number) => Math.log2(1 + Math.max(0, x));
/** bytes-per-flop scaling: 2^-16 .. 2^4 -> 0 .. 1 */
const bpf = (x: number) => Math.max(0, (Math.log2(x + 2 ** -16) + 16) / 20);
/** nominal bytes per AVX-512 peak flop (64 flops/cycle) each level delivers: L2->L1, L3->L2, memory->L3 */
const NOMINAL_BPF = [1, 0.5, 0.125];
/** load ports per FMA port (nominal) */
const LOAD_PORTS = 2;

/** Per-problem values every schedule of the problem shares (cached on the Problem object). */
interface ProblemInfo {
  strides: number[][];
  reduction: boolean[];
  flops: number;
  points: number;
  tensorElems: number[];
  bytes: number;
  head: Float32Array;
}
const problemInfos = new WeakMap<Problem, ProblemInfo>();

function problemInfo(p: Problem): ProblemInfo {
  let info = problemInfos.get(p);
  if (info) return info;
  const strides = tensorStrides(p);
  const tensorElems = [p.output, ...p.inputs].map((a) => elementCount(p.tensors[a.tensor]!));
  const bytes = p.tensors.reduce((s, t) => s + elementCount(t) * 4, 0);
  const flops = problemFlops(p);
  const head = new Float32Array(10);
  head[0] = lg(flops) / 40;
  head[1] = lg(bytes) / 32;
  head[2] = lg(flops / bytes) / 8;
  head[3] = p.combine === 'fma' ? 1 : 0;
  head[4] = p.inputs.length / 2;
  head[5] = p.vars.length / 10;
  const reduction = p.vars.map((_, v) => isReduction(p, v));
  head[6] = reduction.filter(Boolean).length / 4;
  const gemm = p.op === 'matmul' || p.op === 'bmm';
  const conv = p.op.startsWith('conv');
  head[7] = gemm ? 1 : 0;
  head[8] = conv ? 1 : 0;
  head[9] = gemm || conv ? 0 : 1;
  info = { strides, reduction, flops, points: iterationPoints(p), tensorElems, bytes, head };
  problemInfos.set(p, info);
  return info;
}

/**
 * Footprint in 64-byte lines of one access when every variable v covers `cov[v]` consecutive
 * values (clipped to the tensor's shape); the footprint in elements is left in `fpElems`.
 */
let fpElems = 0;
function footprintLines(p: Problem, t: number, cov: readonly number[]): number {
  const a = t === 0 ? p.output : p.inputs[t - 1]!;
  const shape = p.tensors[a.tensor]!.shape;
  let elems = 1, lines = 1;
  const last = a.index.length - 1;
  for (let d = 0; d <= last; d++) {
    let r = 1;
    for (const term of a.index[d]!.terms) r += term.coef * (cov[term.var]! - 1);
    r = Math.min(r, shape[d]!);
    elems *= r;
    lines *= d === last ? Math.ceil(r / LINE_ELEMS) : r;
  }
  fpElems = elems;
  return lines;
}

/**
 * Features of one schedule run on `threads` threads, as a fresh Float32Array of FEATURE_COUNT (see
 * the header). The program statistics come from `program` when given (or `ctx.exact`: lower() is
 * called), else from the analytic path (program-stats.ts), which gives the same numbers much faster.
 */
export function scheduleFeatures(s: Schedule, ctx: FeatureContext, program?: LoopProgram, threads = 1): Float32Array {
  const out = new Float32Array(FEATURE_COUNT);
  writeFeatures(s, ctx, out, 0, program, threads);
  return out;
}

/** Writes the features of `s` on `threads` threads into `out` at `offset`. */
export function writeFeatures(s: Schedule, ctx: FeatureContext, out: Float32Array, offset: number, program?: LoopProgram, threads = 1): void {
  if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const p = s.problem;
  const info = problemInfo(p);
  const prog = program ?? (ctx.exact ? lower(s, ctx.caps) : undefined);
  const d = prog ? prog.decision : tileDecision(s, ctx.caps, info.strides);
  const band = loweredBand(s, ctx.caps);
  const st = prog ? programStats(prog) : analyticStats(s, d, info.strides, band);
  const caps = ctx.caps;
  const loops = s.loops;
  const n = loops.length;
  const nT = 1 + p.inputs.length;
  const f = out;
  const o = offset;

  f.set(info.head, o + P0);

  // ---- register tile -------------------------------------------------------------------------
  const lanes = d.lanes;
  const registers = lanes > 1 ? caps.vectorRegisters : caps.scalarRegisters;
  const mainOps = Math.max(1, st.mainOps);
  const totalOps = Math.max(1, st.totalOps);
  const latencyCover = Math.min(1, d.accumulators / (caps.fmaLatency * caps.fmaPorts));
  const laneUtil = st.laneSum / (totalOps * lanes);
  const loadsPerOp = (st.mainVec + st.mainBcast) / mainOps;
  const loopPerOp = st.loopIters / totalOps;
  let accReuse = 1;
  for (let i = d.tileFrom; i < d.unrollFrom; i++) accReuse *= s.extent(i) / s.steps[i]!;
  const computeEff = (lanes / caps.vectorLanes) * laneUtil * latencyCover
    * Math.min(1, LOAD_PORTS / Math.max(1e-9, loadsPerOp * caps.fmaPorts)) / (1 + loopPerOp);
  f[o + T0 + 0] = lanes / 16;
  f[o + T0 + 1] = lanes === 1 ? 1 : 0;
  f[o + T0 + 2] = lg(d.accumulators) / 6;
  f[o + T0 + 3] = d.accumulators / Math.max(1, registers - 2);
  f[o + T0 + 4] = latencyCover;
  f[o + T0 + 5] = lg(d.unrolledOps) / 10;
  f[o + T0 + 6] = (n - d.unrollFrom) / 10;
  f[o + T0 + 7] = (d.unrollFrom - d.tileFrom) / 10;
  f[o + T0 + 8] = d.tileFrom < d.unrollFrom ? 1 : 0;
  f[o + T0 + 9] = lg(accReuse) / 16;
  f[o + T0 + 10] = st.mainVec / mainOps;
  f[o + T0 + 11] = st.mainBcast / mainOps;
  f[o + T0 + 12] = Math.min(4, loadsPerOp) / 4;
  f[o + T0 + 13] = laneUtil;
  f[o + T0 + 14] = st.partialOps / totalOps;
  f[o + T0 + 15] = lg(st.accTraffic / totalOps) / 2;
  f[o + T0 + 16] = lg(loopPerOp) / 2;
  f[o + T0 + 17] = lg(st.staticOps) / 14;
  f[o + T0 + 18] = lg(st.tiles) / 8;
  f[o + T0 + 19] = Math.min(4, (st.mainVec + st.mainBcast) / Math.max(1, registers - st.mainAccumulators)) / 4;
  f[o + T0 + 20] = computeEff;

  // ---- loop levels (innermost first) ---------------------------------------------------------
  for (let j = 0; j < LEVELS && j < n; j++) {
    const i = n - 1 - j;
    const l = loops[i]!;
    const b = o + L0 + j * PER_LEVEL;
    f[b] = 1;
    f[b + 1] = lg(l.size) / 16;
    f[b + 2] = lg(l.tail) / 16;
    f[b + 3] = info.reduction[l.var] ? 1 : 0;
    f[b + 4] = l.var === d.vectorVar ? 1 : 0;
    f[b + 5] = i >= d.unrollFrom ? 1 : 0;
    f[b + 6] = i >= d.tileFrom && i < d.unrollFrom ? 1 : 0;
    for (let t = 0; t < nT && t < TENSOR_SLOTS; t++) f[b + 7 + t] = lg(Math.abs(info.strides[t]![l.var]!) * s.steps[i]!) / 24;
  }

  // ---- cache model: footprints of every sub-nest loops[l..], l = n..0 ---------------------------
  const cov = new Array<number>(p.vars.length).fill(1);
  const bandEnd = band.length > 0 ? band[band.length - 1]! : -1;
  let belowBand: number[] | undefined;
  // lines[l * nT + t], elems likewise
  const lines = new Float64Array((n + 1) * nT);
  const elems = new Float64Array((n + 1) * nT);
  const total = new Float64Array(n + 1);
  for (let l = n; l >= 0; l--) {
    if (l < n) cov[loops[l]!.var] = s.extent(l);
    if (l === bandEnd + 1 && bandEnd >= 0) belowBand = cov.slice();
    let sum = 0;
    for (let t = 0; t < nT; t++) {
      const fl = footprintLines(p, t, cov);
      lines[l * nT + t] = fl;
      elems[l * nT + t] = fpElems;
      sum += fl;
    }
    total[l] = sum * LINE;
  }
  // trips[l] = iterations of loops[0..l-1]
  const trips = new Float64Array(n + 1);
  trips[0] = 1;
  for (let i = 0; i < n; i++) trips[i + 1] = trips[i]! * (s.extent(i) / s.steps[i]!);
  const capacities = [ctx.caches.l1d, ctx.caches.l2, ctx.caches.l3];
  const fitLevel = capacities.map((c) => {
    let l = n;
    while (l > 0 && total[l - 1]! <= c) l--;
    return l;
  });
  const memTraffic = [0, 0, 0];
  for (let t = 0; t < TENSOR_SLOTS; t++) {
    const b = o + X0 + t * PER_TENSOR;
    if (t >= nT) continue; // zeros
    const elemsT = info.tensorElems[t]!;
    f[b] = 1;
    f[b + 1] = lg(elemsT * 4) / 32;
    f[b + 2] = lg(info.points / elemsT) / 16;
    const kl = d.unrollFrom - 1;
    f[b + 3] = kl >= 0 ? lg(Math.abs(info.strides[t]![loops[kl]!.var]!) * s.steps[kl]!) / 24 : 0;
    f[b + 4] = lg(elems[d.unrollFrom * nT + t]!) / 12;
    f[b + 5] = lg(lines[d.tileFrom * nT + t]! * LINE) / 24;
    for (let c = 0; c < 3; c++) {
      const l = fitLevel[c]!;
      const bytes = trips[l]! * lines[l * nT + t]! * LINE;
      memTraffic[c]! += bytes;
      f[b + 6 + c] = bpf(bytes / info.flops);
      f[b + 9 + c] = elemsT * 4 <= capacities[c]! ? 1 : 0;
    }
    // line use of the innermost loop that moves t
    let lineUse = 0;
    for (let i = n - 1; i >= 0; i--) {
      const stride = Math.abs(info.strides[t]![loops[i]!.var]!) * (i >= d.unrollFrom && loops[i]!.var === d.vectorVar ? 1 : s.steps[i]!);
      if (stride !== 0) {
        lineUse = Math.min(1, 1 / stride);
        if (stride === 1 || loops[i]!.var === d.vectorVar) lineUse = 1;
        lineUse = Math.max(lineUse, 1 / LINE_ELEMS);
        break;
      }
    }
    f[b + 12] = lineUse;
    f[b + 13] = n > 0 && info.strides[t]![loops[n - 1]!.var] !== 0 ? 1 : 0;
  }
  let roofline = computeEff;
  for (let c = 0; c < 3; c++) {
    const perFlop = memTraffic[c]! / info.flops;
    f[o + M0 + c] = bpf(perFlop);
    f[o + M0 + 3 + c] = fitLevel[c]! / 10;
    // the level's nominal bandwidth relative to this target's peak (NOMINAL_BPF is per AVX-512 flop)
    roofline = Math.min(roofline, (NOMINAL_BPF[c]! * (16 / caps.vectorLanes)) / Math.max(1e-12, perFlop));
  }
  f[o + M0 + 6] = roofline;
  f[o + M0 + 7] = bpf(info.bytes / info.flops);
  const flopsPerOp = (info.flops / info.points) * lanes * laneUtil;
  f[o + M0 + 8] = lg((loadsPerOp * lanes * 4 * 16) / Math.max(1e-9, flopsPerOp)) / 8;

  // ---- parallel: the band at this thread count ------------------------------------------------
  const parallel = st.bands.length > 0;
  const bands = parallel ? st.bands : [{ chunks: 1, runs: 1 }];
  let busy = 0, work = 0, instances = 0;
  let main = bands[0]!;
  for (const b of bands) {
    busy += b.runs * Math.ceil(b.chunks / threads);
    work += b.runs * b.chunks;
    instances += b.runs;
    if (b.runs * b.chunks > main.runs * main.chunks) main = b;
  }
  // per-thread working set: a thread's chunks are consecutive (innermost band loop fastest), each
  // one iteration of the band over the sub-nest below it
  let threadBytes = total[0]!;
  if (parallel && belowBand) {
    const c = belowBand;
    let left = Math.ceil(main.chunks / threads);
    for (let j = band.length - 1; j >= 0; j--) {
      const i = band[j]!;
      const iters = loops[i]!.size + (loops[i]!.tail > 0 ? 1 : 0);
      c[loops[i]!.var] = Math.min(s.extent(i), Math.min(iters, left) * s.steps[i]!);
      left = Math.ceil(left / iters);
    }
    threadBytes = 0;
    for (let t = 0; t < nT; t++) threadBytes += footprintLines(p, t, c) * LINE;
  }
  f[o + R0 + 0] = Math.log2(threads) / 6;
  f[o + R0 + 1] = parallel ? 1 : 0;
  f[o + R0 + 2] = lg(main.chunks) / 16;
  f[o + R0 + 3] = lg(busy) / 16;
  f[o + R0 + 4] = work / (threads * busy);
  f[o + R0 + 5] = Math.log2(work / busy) / 6;
  f[o + R0 + 6] = lg((info.flops * busy) / work) / 40;
  f[o + R0 + 7] = lg(threadBytes) / 32;
  f[o + R0 + 8] = threadBytes <= ctx.caches.l2 ? 1 : 0;
  f[o + R0 + 9] = lg(instances) / 16;
}

/** Rows of features for a batch run on `threads` threads, concatenated (schedules.length x FEATURE_COUNT). */
export function featurize(schedules: readonly Schedule[], ctx: FeatureContext, cache?: FeatureCache, threads = 1): Float32Array {
  const out = new Float32Array(schedules.length * FEATURE_COUNT);
  schedules.forEach((s, i) => {
    if (cache) {
      const key = `${s.problem.spec}|${s.text()}|${threads}`;
      const hit = cache.get(key);
      if (hit) {
        out.set(hit, i * FEATURE_COUNT);
        return;
      }
      writeFeatures(s, ctx, out, i * FEATURE_COUNT, undefined, threads);
      cache.set(key, out.slice(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT));
    } else {
      writeFeatures(s, ctx, out, i * FEATURE_COUNT, undefined, threads);
    }
  });
  return out;
}

/** A bounded memo of feature rows by (problem spec, schedule text, threads): cleared when full. */
export class FeatureCache {
  readonly #map = new Map<string, Float32Array>();
  constructor(readonly capacity = 200_000) {}
  get(key: string): Float32Array | undefined {
    return this.#map.get(key);
  }
  set(key: string, row: Float32Array): void {
    if (this.#map.size >= this.capacity) this.#map.clear();
    this.#map.set(key, row);
  }
  clear(): void {
    this.#map.clear();
  }
  get size(): number {
    return this.#map.size;
  }
}

// ---- the alternative input: LoopTune's 10 x 20 vector encoding ----------------------------------

export const LOOPTUNE_FEATURE_COUNT = MAX_LOOPS * LOOP_FEATURES;

/** LoopTune's observation with the cursor column zeroed (the cursor does not change the code); thread-blind. */
export function looptuneFeatures(s: Schedule): Float32Array {
  const v = vectorEncoding(s);
  for (let i = 0; i < MAX_LOOPS; i++) v[i * LOOP_FEATURES] = 0;
  return v;
}

export function featurizeLooptune(schedules: readonly Schedule[]): Float32Array {
  const out = new Float32Array(schedules.length * LOOPTUNE_FEATURE_COUNT);
  schedules.forEach((s, i) => out.set(looptuneFeatures(s), i * LOOPTUNE_FEATURE_COUNT));
  return out;
}
