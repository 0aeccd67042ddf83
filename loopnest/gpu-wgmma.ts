/**
 * The warpgroup tensor-core plan (sm_90a `wgmma.mma_async`) of a bf16 / f16 matmul, read off the
 * schedule's loops; targets/cuda/wgmma-ptx.ts prints it. The schedule says every tile:
 *
 *   m:{M/BM}b n:{N/BN}b k:{K/BK}s m:{WGm}t n:{WGn}t <warpgroup-tile loops> m:64 n:{NA} k:16
 *
 *  - the block loops (`b`) give the block tile BM x BN, the staged loop (`s`) the k-tile BK, which
 *    goes through a multistage cp.async pipeline in shared memory (as in gpu-mma.ts);
 *  - the thread loops (`t`) of m and n are WARPGROUPS here: WGm x WGn groups of 4 warps (128
 *    threads), each owning a warpgroup tile WM x WN = BM/WGm x BN/WGn;
 *  - the innermost three loops are the wgmma atom m64 nNA k16 (NA a multiple of 64, at most 256):
 *    one `wgmma.mma_async` of the warpgroup; the loops between the groups and the atom walk the
 *    warpgroup tile (their order is free: the printer issues k steps outermost);
 *  - optionally first, `k:{G}b` splits k over G blocks (split-k, gpu.ts rule 10: grid z), for
 *    problems whose output tiles are too few to fill the GPU (BERT's 128-token products): each
 *    block runs the pipeline over its share K / G from zero accumulators and adds them into C
 *    with `red.global.add.v2.f32`; not with an epilogue, an overwrite or a conv's gather.
 *
 * Shared layout, the canonical 128-byte-swizzle layouts of the PTX ISA (9.7.15.5.1.2), which wgmma
 * reads through matrix descriptors:
 *  - A (K-major): BK/64 panels of BM rows x 128 bytes (64 elements of k); panel q holds k in
 *    [64q, 64q + 64). Row r of a panel at r * 128 bytes; its 16-byte chunk c at (c ^ (r % 8)) * 16.
 *    Descriptor: start = the m64 tile's first row (+ 32 bytes per k16 step inside the panel),
 *    SBO = 1024 (the next 8 rows), LBO unused (1), swizzle mode 1 (128 B).
 *  - B (N-major, the instruction's imm-trans-b = 1, so B stays row-major [K, N] as in memory):
 *    BN/64 panels of BK rows x 128 bytes (64 elements of n); row k of panel p at p * BK * 128 +
 *    k * 128, chunk c at (c ^ (k % 8)) * 16. Descriptor: start = the atom's first panel at its k16
 *    step (+ 16 * 128 bytes a step), LBO = BK * 128 (the next 64 columns), SBO = 1024 (the next 8
 *    rows of k), swizzle mode 1.
 * The swizzle is a function of the address (bits 4-6 ^= bits 7-9), so every stage starts on a
 * 1024-byte boundary (base offset 0): the printer rounds the shared base up to 1024 and the plan
 * reserves 1 KiB for it. cp.async stores 16-byte chunks straight into this layout (no TMA yet),
 * panel by panel: a round of the block's T threads covers T / 8 rows of one panel. Every tile must
 * divide its problem, except the block tile of m: the outermost m loop may have a tail (a last,
 * partial block row whose missing rows read row M-1 and are not stored, so M needs no padding);
 * a tile's rows are a whole number of rounds, and the epilogue runs at the store (each warpgroup
 * holds whole reductions).
 *
 * A channels-last conv runs as its implicit GEMM (implicit-gemm.ts): the plan is the view
 * matmul's plus the gather, which needs every k-tile inside one filter tap (BK divides C).
 */
import { fail } from '../ir/errors.ts';
import type { ElementType } from '../ir/dtype.ts';
import { isReduction, type EpilogueOp, type Problem } from '../ir/problem.ts';
import { loopText, type Schedule } from '../ir/schedule.ts';
import { gridReductionObstacle } from '../ir/transforms.ts';
import type { ConvGather } from './implicit-gemm.ts';

export type WgmmaType = Extract<ElementType, 'bf16' | 'f16'>;

/** Threads of a warpgroup (4 warps): the unit every wgmma instruction runs on. */
export const WARPGROUP_THREADS = 128;
/** Bytes of one swizzled shared row (the 128-byte swizzle's atom is 8 such rows, 1024 bytes). */
export const SWIZZLE_ROW_BYTES = 128;
/** Slack for rounding the dynamic shared base up to the swizzle atom. */
export const WGMMA_ALIGN_SLACK = 1024;
/** Block rows of the grouped block order (a wave of 132 blocks then spans about 8 x 16 tiles). */
export const WGMMA_GROUP_ROWS = 8;
/** fp32 accumulators a thread may hold (the warpgroup tile is WM x WN / 128 of them). */
export const WGMMA_MAX_ACCUMULATORS = 128;

/** What both tensor-core plans (this one, gpu-mma.ts's GpuMmaPlan) say alike of a kernel. */
export interface TensorCorePlanBase {
  M: number; N: number; K: number;
  /** whether M has a partial last block row (rows past M are clamped on load and not stored) */
  mTail: boolean;
  /** a channels-last conv's input gather: A is read from the conv's input (implicit-gemm.ts) */
  gather?: ConvGather;
  /** O = A·B: the accumulators start from zero, C is not read */
  overwrite: boolean;
  /**
   * Split-k (gpu.ts rule 10): grid z splits k into this many whole shares of K / splitK; each
   * block's accumulators start from zero and are added into C with vector atomics (1: no split)
   */
  splitK: number;
  block: { m: number; n: number; k: number };
  stages: number;
  threads: number;
  /** grid x over N's block tiles, y over M's, z over the shares of a split k */
  grid: [number, number, number];
  /** bytes of one stage (A tile then B tile), and of the whole pipeline (wgmma: plus the 1 KiB alignment slack) */
  stageBytes: number;
  sharedBytes: number;
  /** the problem's epilogue, applied to each finished C + A·B value at the store (bias over n, residual like C) */
  epilogue: readonly EpilogueOp[];
}

export interface GpuWgmmaPlan extends TensorCorePlanBase {
  dtype: WgmmaType;
  warpgroups: { m: number; n: number };
  /** the tile one warpgroup computes (WM x WN) */
  groupTile: { m: number; n: number };
  /** n of the wgmma atom m64nNAk16 */
  atomN: number;
  /**
   * wgmma groups an iteration leaves running past its end (wgmma.wait_group N): 1 from 3 stages on,
   * so the tensor cores work through the next barrier; the buffer they still read is not refilled,
   * so stages - 1 - inFlight k-tiles are prefetched.
   */
  inFlight: 0 | 1;
  /**
   * Block order: the launch's blocks (x fastest) walk groups of `groupRows` block rows column by
   * column, so the blocks running at once share A's and B's panels in L2 (Triton's grouped order).
   */
  groupRows: number;
  /** bytes of A's tile in a stage (BK/64 panels of BM rows), then B's (BN/64 panels of BK rows) */
  aBytes: number;
  bBytes: number;
}

/** Limits the caller's hardware sets (gpu-mma.ts passes its own, shared by both tensor-core paths). */
export interface WgmmaLimits {
  maxSharedBytes: number;
  maxStages: number;
}

/**
 * Why a typed problem other than a matmul has no tensor-core schedule: a channels-last conv runs as
 * its implicit GEMM, compiled from a tile of the view matmul (implicit-gemm.ts), not from a
 * schedule of the conv's own loops.
 */
export function tensorCoreOpError(p: Problem): string {
  if (p.op === 'conv2d') {
    return `cuda: a typed conv runs on tensor cores as its implicit GEMM (nhwc layout, a tile of its view matmul: compileImplicitGemm, \`tc.sh conv\`); schedules of the conv's own loops have no tensor-core kernel (${p.spec})`;
  }
  return `cuda: tensor-core kernels cover matmul and nhwc conv2d so far, not ${p.op} (${p.spec})`;
}

/** Whether the schedule ends with a wgmma atom (m:64 n:N k:16) rather than mma.sync's m:16 n:8 k. */
export function isWgmmaSchedule(s: Schedule): boolean {
  const n = s.loops.length;
  const m = s.loops[n - 3];
  return n >= 3 && m !== undefined && m.var === 0 && m.size === 64;
}

/** Schedule -> GpuWgmmaPlan; a schedule that does not spell a wgmma kernel fails with one `cuda:` line. */
export function planWgmma(s: Schedule, opts: { stages?: number; overwrite?: boolean }, limits: WgmmaLimits, gather?: ConvGather): GpuWgmmaPlan {
  const p = s.problem;
  if (p.dtype !== 'bf16' && p.dtype !== 'f16') fail(`cuda: wgmma kernels take bf16 or f16 (got ${p.dtype ?? 'f32'}; tf32 wgmma reads B K-major only)`);
  if (p.op !== 'matmul') fail(tensorCoreOpError(p));
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const loops = s.loops;
  const name = (i: number) => loopText(p, loops[i]!);
  const outerM = loops.findIndex((l) => l.var === 0);
  for (let i = 0; i < loops.length; i++) {
    if (loops[i]!.tail > 0 && !(i === outerM && loops[i]!.bind === 'block')) fail(`cuda: tensor-core tiles must divide the problem, except the block tile of m (${name(i)} has a tail)`);
    if (loops[i]!.parallel) fail('cuda: parallel loops (suffix p) are for CPU threads');
  }
  const shape = '[k:{splits}b] m:{M/BM}b n:{N/BN}b k:{K/BK}s m:{groups}t n:{groups}t <warpgroup tile> m:64 n:{NA} k:16';
  const blockOf = (v: number) => loops.findIndex((l) => l.var === v && l.bind === 'block');
  const threadOf = (v: number) => loops.findIndex((l) => l.var === v && l.bind === 'thread');
  const bm = blockOf(0), bn = blockOf(1), wm = threadOf(0), wn = threadOf(1);
  const staged = loops.findIndex((l) => l.shared);
  if (bm < 0 || bn < 0 || wm < 0 || wn < 0 || staged < 0) fail(`cuda: a wgmma schedule reads ${shape}`);
  // split-k: the outermost loop may be a k loop bound to blocks (each block one whole share)
  const split = loops[0]!.var === 2 && loops[0]!.bind === 'block' ? 0 : -1;
  if (loops.filter((l) => l.bind).length !== 4 + (split === 0 ? 1 : 0)) fail(`cuda: a wgmma schedule binds one m and one n loop to blocks and one of each to warpgroups, and may split k over blocks first (${shape})`);
  if (!isReduction(p, loops[staged]!.var) || loops.findIndex((l, i) => l.var === 2 && i !== split) !== staged) {
    fail(`cuda: the staged loop of a tensor-core schedule is the outermost k loop below a split (${shape})`);
  }
  const splitK = split === 0 ? loops[0]!.size : 1;
  if (splitK > 1) {
    const why = gridReductionObstacle(s, 0);
    if (why) fail(`cuda: ${loopText(p, loops[0]!)} ${why}`);
    if (gather) fail('cuda: an implicit-GEMM conv does not split k over blocks (its k-tiles walk filter taps in order)');
    if (opts.overwrite) fail('cuda: a split k adds every share into C, so it cannot overwrite C');
  }
  if (staged > Math.min(wm, wn) || Math.max(bm, bn) > staged) fail(`cuda: tensor-core loops go blocks, staged k, warpgroups (${shape})`);
  const n = loops.length;
  const [am, an, ak] = [loops[n - 3]!, loops[n - 2]!, loops[n - 1]!];
  const NA = an.size;
  if (!(am.var === 0 && am.size === 64 && an.var === 1 && ak.var === 2 && ak.size === 16)) fail(`cuda: a wgmma schedule ends with the atom m:64 n:{NA} k:16 (${shape})`);
  if (NA % 64 !== 0 || NA > 256) fail(`cuda: the wgmma atom's n is a multiple of 64 up to 256 (got ${NA}: B is read in 64-column panels)`);
  const BM = s.steps[bm]!, BN = s.steps[bn]!, BK = s.steps[staged]!, share = K / splitK;
  const WGm = loops[wm]!.size, WGn = loops[wn]!.size;
  const WM = s.steps[wm]!, WN = s.steps[wn]!;
  if (loops[bm]!.size * BM + loops[bm]!.tail !== M || loops[bn]!.size * BN !== N) fail(`cuda: the block loops of a tensor-core schedule are the outermost m and n loops (${shape})`);
  if (WGm * WM !== BM || WGn * WN !== BN) fail(`cuda: the warpgroup loops of a wgmma schedule come right below the block tile (${shape})`);
  if (WM % 64 !== 0 || WN % NA !== 0) fail(`cuda: a warpgroup tile is a multiple of the atom 64 x ${NA} (got ${WM} x ${WN})`);
  if (BK % 64 !== 0) fail(`cuda: the k-tile of a wgmma schedule is a multiple of 64 (a 128-byte swizzled row of A), got BK=${BK}`);
  const accumulators = (WM * WN) / WARPGROUP_THREADS;
  if (accumulators > WGMMA_MAX_ACCUMULATORS) fail(`cuda: a ${WM} x ${WN} warpgroup tile holds ${accumulators} fp32 accumulators a thread, more than ${WGMMA_MAX_ACCUMULATORS}`);
  const threads = WGm * WGn * WARPGROUP_THREADS;
  if (threads > 1024) fail(`cuda: ${WGm * WGn} warpgroups make ${threads} threads, more than 1024`);
  for (const [what, rows, cols] of [['A', BM, BK], ['B', BK, BN]] as const) {
    // the copies go panel-major, T / 8 rows per round: whole rounds, and rounds that end on a panel
    const chunks = (rows * cols) / 8;
    if (chunks % threads !== 0 || rows % (threads / 8) !== 0) {
      fail(`cuda: ${what}'s tile (${rows} x ${cols}, ${chunks} chunks of 16 bytes) does not spread evenly over ${threads} threads (${threads / 8} rows of a 64-column panel at a time)`);
    }
  }
  if (gather && gather.C % BK !== 0) fail(`cuda: an implicit-GEMM conv's k-tile stays inside one filter tap: BK=${BK} must divide c=${gather.C}`);
  const mTail = loops[bm]!.tail > 0;
  const aBytes = BM * BK * 2, bBytes = BK * BN * 2, stageBytes = aBytes + bBytes;
  const fit = Math.floor((limits.maxSharedBytes - WGMMA_ALIGN_SLACK) / stageBytes);
  const stages = opts.stages ?? loops[staged]!.stages ?? Math.min(4, fit);
  if (!Number.isInteger(stages) || stages < 2 || stages > limits.maxStages) fail(`cuda: pipeline stages must be an integer 2..${limits.maxStages}, got ${stages}`);
  if (stages > fit) fail(`cuda: ${stages} stages of ${stageBytes} bytes exceed ${limits.maxSharedBytes} bytes of shared memory`);
  return {
    dtype: p.dtype, M, N, K, mTail, ...(gather ? { gather } : {}), overwrite: opts.overwrite ?? false, splitK, block: { m: BM, n: BN, k: BK }, warpgroups: { m: WGm, n: WGn }, groupTile: { m: WM, n: WN }, atomN: NA,
    stages, inFlight: stages >= 3 ? 1 : 0, threads, grid: [N / BN, Math.ceil(M / BM), splitK], groupRows: Math.min(WGMMA_GROUP_ROWS, Math.ceil(M / BM)), aBytes, bBytes, stageBytes,
    sharedBytes: stageBytes * stages + WGMMA_ALIGN_SLACK, epilogue: p.epilogue ?? [],
  };
}

/**
 * A wgmma tile choice: block tile, k-tile, warpgroup grid, the atom's n (default: the warpgroup
 * tile's n, at most 256), and the blocks k is split over (split-k; default 1).
 */
export interface WgmmaTile {
  bm: number; bn: number; bk: number; wgm: number; wgn: number; atomN?: number; splitK?: number;
}

/** The wgmma schedule of a tile choice, as planWgmma reads it. */
export function wgmmaScheduleText(p: Problem, t: WgmmaTile): string {
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const WM = t.bm / t.wgm, WN = t.bn / t.wgn;
  const NA = t.atomN ?? Math.min(WN, 256);
  const tail = M % t.bm;
  const G = t.splitK ?? 1;
  return [
    ...(G > 1 ? [`k:${G}b`] : []),
    `m:${Math.floor(M / t.bm)}${tail > 0 ? `r${tail}` : ''}b`, `n:${N / t.bn}b`, `k:${K / G / t.bk}s`, `m:${t.wgm}t`, `n:${t.wgn}t`,
    `k:${t.bk / 16}`, `m:${WM / 64}`, `n:${WN / NA}`, 'm:64', `n:${NA}`, 'k:16',
  ].join(' ');
}
