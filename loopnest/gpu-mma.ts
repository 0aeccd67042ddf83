/**
 * The tensor-core plan of a typed matmul (bf16, f16: mma.sync m16n8k16; tf32: m16n8k8), read off the
 * schedule's loops; targets/cuda/mma-ptx.ts prints it. The schedule says every tile:
 *
 *   m:{M/BM}b n:{N/BN}b k:{K/BK}s m:{WGm}t n:{WGn}t <warp-tile loops> m:16 n:8 k:{16|8}
 *
 *  - the block loops (`b`) of m and n give the block tile BM x BN (the extent below them);
 *  - the staged loop (`s`, the outermost k loop) gives BK: one k-tile per iteration goes through a
 *    multistage cp.async pipeline in shared memory (`stages` buffers, stages - 1 tiles in flight);
 *  - the thread loops (`t`) of m and n are WARPS here, not threads: WGm x WGn warps of 32 lanes,
 *    each owning a warp tile WM x WN = BM/WGm x BN/WGn;
 *  - the innermost three loops are the mma atom (m16 n8 k16, k8 for tf32), the loops between the
 *    warps and the atom walk the warp tile (their order is free: the printer's fragment order is
 *    fixed, every A fragment used for all n, every B fragment for all m).
 *
 * Shared layout: each stage holds A's BM x BK tile (rows of BK elements) and B's BK x BN tile (rows
 * of BN elements), row-major, in 16-byte chunks permuted by an XOR swizzle: chunk c of row r sits at
 * c ^ swizzle(r), where swizzle(r) = (r / (8 / C)) mod min(C, 8) for C chunks per row (C >= 4). The
 * 8 rows one ldmatrix phase reads (8 lanes, 16 bytes each) then fall in 8 different 16-byte bank
 * groups: no bank conflicts, and cp.async's 16-byte stores stay whole. Every tile must divide its
 * problem, except the block tile of m (a partial last block row: A's rows clamped to M-1, C's rows
 * past M neither loaded nor stored), and the copy items must spread evenly over the threads.
 * The epilogue (bias, residual, relu, clip, scale, sigmoid, gelu) runs at the store: every tile
 * holds whole reductions.
 */
import { fail } from '../ir/errors.ts';
import { elementTypeOf, storageBytes, type ElementType } from '../ir/dtype.ts';
import { isReduction, type Problem } from '../ir/problem.ts';
import { loopText, type Schedule } from '../ir/schedule.ts';
import { isWgmmaSchedule, planWgmma, tensorCoreOpError, type GpuWgmmaPlan, type TensorCorePlanBase } from './gpu-wgmma.ts';
import type { ConvGather } from './implicit-gemm.ts';

/** Dynamic shared memory an H100/H200 block may opt into (227 KiB). */
export const MAX_DYNAMIC_SHARED = 227 * 1024;
export const MMA_MAX_STAGES = 8;

export type MmaType = Exclude<ElementType, 'f32'>;

export interface GpuMmaPlan extends TensorCorePlanBase {
  dtype: MmaType;
  /** the mma atom: m16 n8 k16 (bf16, f16) or k8 (tf32); a wgmma plan's is m64 nNA k16 */
  atom: { m: number; n: number; k: number };
  warps: { m: number; n: number };
  warpTile: { m: number; n: number };
  /** bytes of one input element in memory and in shared memory */
  elementBytes: number;
  /** 16-byte chunks per shared row of A (BK) and of B (BN) */
  chunksA: number;
  chunksB: number;
  /**
   * sm_90a warpgroup MMA (gpu-wgmma.ts), when the schedule's atom is m:64 n:NA k:16: the printer
   * follows this plan instead. The fields above then describe it for the GPU mapping: `warps` are
   * 4 per warpgroup along m, `warpTile` is each warp's share (a quarter of the warpgroup tile's rows).
   */
  wgmma?: GpuWgmmaPlan;
}

export interface MmaOptions {
  /** pipeline depth (buffers in shared memory); default: the staged loop's (`s3`), else as many as fit, at most 4 */
  stages?: number;
  /** O = A·B: the accumulators start from zero, C is not read (GpuLoweringOptions.overwrite) */
  overwrite?: boolean;
}

/** The swizzled chunk of chunk c in row r of a shared tile with `chunks` 16-byte chunks per row. */
export function swizzleChunk(r: number, c: number, chunks: number): number {
  return c ^ swizzleOf(r, chunks);
}

export function swizzleOf(r: number, chunks: number): number {
  const rowsPerLine = Math.max(1, 8 / chunks);
  return Math.floor(r / rowsPerLine) % Math.min(chunks, 8);
}

/** Whether a problem takes the tensor-core path: every typed problem (planMma refuses, in one line, what it cannot cover). */
export function usesTensorCores(p: Problem): boolean {
  return p.dtype !== undefined;
}

/** Schedule -> GpuMmaPlan; a schedule that does not spell a tensor-core kernel fails with one `cuda:` line. */
export function planMma(s: Schedule, opts: MmaOptions = {}, gather?: ConvGather): GpuMmaPlan {
  if (isWgmmaSchedule(s)) return wgmmaAsMmaPlan(planWgmma(s, opts, { maxSharedBytes: MAX_DYNAMIC_SHARED, maxStages: MMA_MAX_STAGES }, gather));
  const p = s.problem;
  const dtype = elementTypeOf(p);
  if (dtype === 'f32') fail('cuda: tensor cores take bf16, f16 or tf32 problems');
  if (p.op !== 'matmul') fail(tensorCoreOpError(p));
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const loops = s.loops;
  const atomK = dtype === 'tf32' ? 8 : 16;
  const name = (i: number) => loopText(p, loops[i]!);
  const outerM = loops.findIndex((l) => l.var === 0);
  for (let i = 0; i < loops.length; i++) {
    if (loops[i]!.tail > 0 && !(i === outerM && loops[i]!.bind === 'block')) fail(`cuda: tensor-core tiles must divide the problem, except the block tile of m (${name(i)} has a tail)`);
    if (loops[i]!.parallel) fail('cuda: parallel loops (suffix p) are for CPU threads');
  }
  const blockOf = (v: number) => loops.findIndex((l) => l.var === v && l.bind === 'block');
  const threadOf = (v: number) => loops.findIndex((l) => l.var === v && l.bind === 'thread');
  const shape = `m:{M/BM}b n:{N/BN}b k:{K/BK}s m:{warps}t n:{warps}t <warp tile> m:16 n:8 k:${atomK}`;
  const bm = blockOf(0), bn = blockOf(1), wm = threadOf(0), wn = threadOf(1);
  const staged = loops.findIndex((l) => l.shared);
  if (bm < 0 || bn < 0 || wm < 0 || wn < 0 || staged < 0) fail(`cuda: a tensor-core schedule reads ${shape}`);
  if (loops[0]!.var === 2 && loops[0]!.bind === 'block') fail(`cuda: split-k (${name(0)}) is a wgmma kernel's so far (bf16 / f16 on sm_90a), not mma.sync's`);
  if (loops.filter((l) => l.bind).length !== 4) fail(`cuda: a tensor-core schedule binds one m and one n loop to blocks and one of each to warps (${shape})`);
  if (!isReduction(p, loops[staged]!.var) || loops.findIndex((l) => l.var === 2) !== staged) {
    fail(`cuda: the staged loop of a tensor-core schedule is the outermost k loop (${shape})`);
  }
  if (staged > Math.min(wm, wn) || Math.max(bm, bn) > staged) fail(`cuda: tensor-core loops go blocks, staged k, warps (${shape})`);
  const n = loops.length;
  const atom = [loops[n - 3]!, loops[n - 2]!, loops[n - 1]!];
  if (!(atom[0]!.var === 0 && atom[0]!.size === 16 && atom[1]!.var === 1 && atom[1]!.size === 8 && atom[2]!.var === 2 && atom[2]!.size === atomK)) {
    fail(`cuda: a tensor-core schedule ends with the mma atom m:16 n:8 k:${atomK}`);
  }
  const BM = s.steps[bm]!, BN = s.steps[bn]!, BK = s.steps[staged]!;
  const WGm = loops[wm]!.size, WGn = loops[wn]!.size;
  const WM = s.steps[wm]!, WN = s.steps[wn]!;
  if (loops[bm]!.size * BM + loops[bm]!.tail !== M || loops[bn]!.size * BN !== N) fail(`cuda: the block loops of a tensor-core schedule are the outermost m and n loops (${shape})`);
  if (WGm * WM !== BM || WGn * WN !== BN) fail(`cuda: the warp loops of a tensor-core schedule come right below the block tile (${shape})`);
  if (WM % 16 !== 0 || WN % 16 !== 0) fail(`cuda: a warp tile is a multiple of 16 x 16 (got ${WM} x ${WN}; B fragments load 16 columns at a time)`);
  if (BK % atomK !== 0) fail(`cuda: the k-tile BK=${BK} is a multiple of the atom's k ${atomK}`);
  const threads = WGm * WGn * 32;
  if (threads > 1024) fail(`cuda: ${WGm * WGn} warps make ${threads} threads, more than 1024`);
  const eb = dtype === 'tf32' ? 4 : storageBytes(dtype);
  const chunksA = (BK * eb) / 16, chunksB = (BN * eb) / 16;
  const pow2 = (x: number) => Number.isInteger(x) && (x & (x - 1)) === 0;
  if (!pow2(chunksA) || !pow2(chunksB)) fail(`cuda: shared rows of A (BK=${BK}) and B (BN=${BN}) must be a power of two of 16-byte chunks (the XOR swizzle)`);
  if (gather && gather.C % BK !== 0) fail(`cuda: an implicit-GEMM conv's k-tile stays inside one filter tap: BK=${BK} must divide c=${gather.C}`);
  if (!Number.isInteger(chunksA) || chunksA < 4) fail(`cuda: a shared row of A is at least 64 bytes (BK=${BK} gives ${BK * eb})`);
  if (!Number.isInteger(chunksB) || chunksB < 4) fail(`cuda: a shared row of B is at least 64 bytes (BN=${BN} gives ${BN * eb})`);
  for (const [what, chunks, rows] of [['A', chunksA, BM], ['B', chunksB, BK]] as const) {
    // each thread's copy items are `threads / chunks` rows apart: one swizzle, offsets as immediates
    const items = chunks * rows;
    if (items % threads !== 0 || threads % chunks !== 0 || (threads / chunks) % 8 !== 0) {
      fail(`cuda: ${what}'s tile (${items} chunks of 16 bytes, ${chunks} a row) does not spread evenly over ${threads} threads in whole groups of 8 rows`);
    }
  }
  const stageBytes = (BM * BK + BK * BN) * eb;
  const fit = Math.floor(MAX_DYNAMIC_SHARED / stageBytes);
  // the compile option, else the schedule's depth (stages_N), else as many as fit, at most 4
  const stages = opts.stages ?? loops[staged]!.stages ?? Math.min(4, fit);
  if (!Number.isInteger(stages) || stages < 2 || stages > MMA_MAX_STAGES) fail(`cuda: pipeline stages must be an integer 2..${MMA_MAX_STAGES}, got ${stages}`);
  if (stages > fit) fail(`cuda: ${stages} stages of ${stageBytes} bytes exceed ${MAX_DYNAMIC_SHARED} bytes of shared memory`);
  return {
    dtype, atom: { m: 16, n: 8, k: atomK }, M, N, K,
    block: { m: BM, n: BN, k: BK }, warps: { m: WGm, n: WGn }, warpTile: { m: WM, n: WN },
    mTail: loops[bm]!.tail > 0, stages, threads, grid: [N / BN, Math.ceil(M / BM), 1], elementBytes: eb, chunksA, chunksB,
    stageBytes, sharedBytes: stageBytes * stages, epilogue: p.epilogue ?? [], ...(gather ? { gather } : {}), overwrite: opts.overwrite ?? false, splitK: 1,
  };
}

/** A wgmma plan in GpuMmaPlan's terms (what loopnest/gpu.ts maps), the plan itself in `wgmma`. */
function wgmmaAsMmaPlan(w: GpuWgmmaPlan): GpuMmaPlan {
  const { M, N, K, mTail, gather, overwrite, splitK, block, stages, threads, grid, stageBytes, sharedBytes, epilogue } = w;
  const base: TensorCorePlanBase = { M, N, K, mTail, ...(gather ? { gather } : {}), overwrite, splitK, block, stages, threads, grid, stageBytes, sharedBytes, epilogue };
  return {
    ...base, dtype: w.dtype, atom: { m: 64, n: w.atomN, k: 16 },
    warps: { m: 4 * w.warpgroups.m, n: w.warpgroups.n }, warpTile: { m: w.groupTile.m / 4, n: w.groupTile.n },
    elementBytes: 2, chunksA: w.block.k / 8, chunksB: w.block.n / 8, wgmma: w,
  };
}

/** The tensor-core schedule of a tile choice (BM, BN, BK, warps), as planMma reads it. */
export function mmaScheduleText(p: Problem, t: { bm: number; bn: number; bk: number; wgm: number; wgn: number }): string {
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const atomK = p.dtype === 'tf32' ? 8 : 16;
  const WM = t.bm / t.wgm, WN = t.bn / t.wgn;
  const tail = M % t.bm;
  return [
    `m:${Math.floor(M / t.bm)}${tail > 0 ? `r${tail}` : ''}b`, `n:${N / t.bn}b`, `k:${K / t.bk}s`, `m:${t.wgm}t`, `n:${t.wgn}t`,
    `k:${t.bk / atomK}`, `m:${WM / 16}`, `n:${WN / 8}`, 'm:16', 'n:8', `k:${atomK}`,
  ].join(' ');
}
