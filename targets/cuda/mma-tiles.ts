/**
 * Tensor-core tile choices for typed matmuls: (block tile, k-tile, warp grid) points that planMma
 * accepts for a problem, as schedules. They are the cuda sketches of a typed problem (seeds and
 * samples): the search picks the warp tile by picking among them and then moving loops, and
 * `stages` (the pipeline depth) is a compile option (CudaCompileOptions) the benchmark scans.
 * Two instruction families: mma.sync (MMA_TILES, any sm_80+ GPU) and sm_90a wgmma (WGMMA_TILES,
 * warpgroup tiles; their modules load on Hopper only, and ptxas takes them with -arch=sm_90a).
 * tensorCoreSchedules gives both (the benchmark's candidates); mmaSchedules stays mma.sync only.
 */
import { LoopTuneError } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { mmaScheduleText, planMma } from '../../loopnest/gpu-mma.ts';
import { wgmmaScheduleText, type WgmmaTile } from '../../loopnest/gpu-wgmma.ts';
import { splitKChoice } from './split-k.ts';

export interface MmaTile {
  bm: number; bn: number; bk: number; wgm: number; wgn: number;
}

/** Block x warp-grid points, the usual CUTLASS-style shapes first (warp tiles 64x64, then 32x64 and 64x32). */
export const MMA_TILES: readonly MmaTile[] = [
  { bm: 128, bn: 256, bk: 32, wgm: 2, wgn: 4 },
  { bm: 256, bn: 128, bk: 32, wgm: 4, wgn: 2 },
  { bm: 128, bn: 128, bk: 32, wgm: 2, wgn: 2 },
  { bm: 128, bn: 128, bk: 64, wgm: 2, wgn: 2 },
  { bm: 128, bn: 256, bk: 64, wgm: 2, wgn: 4 },
  { bm: 128, bn: 128, bk: 32, wgm: 2, wgn: 4 },
  { bm: 64, bn: 128, bk: 32, wgm: 2, wgn: 2 },
  { bm: 128, bn: 64, bk: 32, wgm: 2, wgn: 2 },
  { bm: 64, bn: 64, bk: 32, wgm: 2, wgn: 2 },
  { bm: 64, bn: 64, bk: 64, wgm: 1, wgn: 2 },
  { bm: 32, bn: 64, bk: 32, wgm: 1, wgn: 2 },
];

/** Refuses (a one-line LoopTuneError) a tile schedule that spells no kernel: planMma by default. */
export type TileCheck = (s: Schedule) => void;
const planCheck: TileCheck = (s) => planMma(s);

/** The tile points of MMA_TILES that spell a valid tensor-core kernel for p, as schedules. */
export function mmaSchedules(p: Problem, tiles: readonly MmaTile[] = MMA_TILES, check: TileCheck = planCheck): Schedule[] {
  if (p.op !== 'matmul' || p.dtype === undefined) return [];
  return validTiles(p, tiles, (t) => mmaScheduleText(p, t), check);
}

/**
 * Block x warpgroup-grid points for wgmma, CUTLASS's Hopper shapes first: two warpgroups of 64 x 256
 * (128 accumulators a thread), of 128 x 128, of 64 x 128 (90 registers: two blocks an SM at 3
 * stages), then single-warpgroup and small tiles for problems with few blocks.
 */
export const WGMMA_TILES: readonly WgmmaTile[] = [
  { bm: 128, bn: 256, bk: 64, wgm: 2, wgn: 1 },
  { bm: 256, bn: 128, bk: 64, wgm: 2, wgn: 1 },
  { bm: 128, bn: 128, bk: 64, wgm: 2, wgn: 1 },
  { bm: 128, bn: 256, bk: 64, wgm: 2, wgn: 2 },
  { bm: 128, bn: 128, bk: 64, wgm: 1, wgn: 1 },
  { bm: 128, bn: 128, bk: 128, wgm: 2, wgn: 1 },
  { bm: 64, bn: 256, bk: 64, wgm: 1, wgn: 1 },
  { bm: 64, bn: 128, bk: 64, wgm: 1, wgn: 1 },
  { bm: 128, bn: 64, bk: 64, wgm: 2, wgn: 1 },
  { bm: 64, bn: 64, bk: 64, wgm: 1, wgn: 1 },
  // narrow n (a conv's 64 output channels): tall block tiles keep the tensor cores fed
  { bm: 256, bn: 64, bk: 64, wgm: 2, wgn: 1 },
  { bm: 128, bn: 64, bk: 64, wgm: 1, wgn: 1 },
  { bm: 128, bn: 64, bk: 128, wgm: 2, wgn: 1 },
];

/** Splits of k tried for split-k tiles (each share a whole number of k-tiles). */
export const SPLIT_K_CHOICES = [2, 3, 4, 6, 8, 12, 16] as const;

/**
 * The tile points of WGMMA_TILES that spell a valid wgmma kernel for p (bf16 / f16 matmuls), as
 * schedules; a tile whose grid leaves the GPU short of SPLIT_K_TARGET_BLOCKS also comes split over
 * k (split-k.ts splitKChoice, and half as many), unless p has an epilogue.
 */
export function wgmmaSchedules(p: Problem, tiles: readonly WgmmaTile[] = WGMMA_TILES, check: TileCheck = planCheck): Schedule[] {
  if (p.op !== 'matmul' || (p.dtype !== 'bf16' && p.dtype !== 'f16')) return [];
  return validTiles(p, tiles.flatMap((t) => [t, ...splitKTiles(p, t)]), (t) => wgmmaScheduleText(p, t), check);
}

function splitKTiles(p: Problem, t: WgmmaTile): WgmmaTile[] {
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  if ((p.epilogue ?? []).length > 0 || (t.splitK ?? 1) > 1) return [];
  const fits = SPLIT_K_CHOICES.filter((g) => K % (g * t.bk) === 0);
  const reach = splitKChoice(Math.ceil(M / t.bm) * Math.ceil(N / t.bn), fits);
  if (reach === undefined) return [];
  const half = fits.filter((g) => g <= reach / 2).pop();
  return [reach, ...(half !== undefined ? [half] : [])].map((splitK) => ({ ...t, splitK }));
}

/**
 * The tiles that divide p's n and k (m may end in a partial block: both families clamp and guard
 * its rows, so only M >= BM is asked) and that `check` accepts, as schedules.
 */
function validTiles<T extends { bm: number; bn: number; bk: number }>(p: Problem, tiles: readonly T[], text: (t: T) => string, check: TileCheck): Schedule[] {
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const out: Schedule[] = [];
  for (const t of tiles) {
    if (M < t.bm || N % t.bn !== 0 || K % t.bk !== 0) continue;
    try {
      const s = Schedule.parse(p, text(t));
      check(s);
      out.push(s);
    } catch (e) {
      if (!(e instanceof LoopTuneError)) throw e;
    }
  }
  return out;
}

/** Both families' schedules of a typed matmul: wgmma first (sm_90a; bf16 and f16), then mma.sync. */
export function tensorCoreSchedules(p: Problem, check: TileCheck = planCheck): Schedule[] {
  return [...wgmmaSchedules(p, WGMMA_TILES, check), ...mmaSchedules(p, MMA_TILES, check)];
}
