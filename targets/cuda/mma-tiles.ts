/**
 * Tensor-core tile choices for typed matmuls: (block tile, k-tile, warp grid) points that planMma
 * accepts for a problem, as schedules. They are the cuda sketches of a typed problem (seeds and
 * samples): the search picks the warp tile by picking among them and then moving loops, and
 * `stages` (the pipeline depth) is a compile option (CudaCompileOptions) the benchmark scans.
 */
import { LoopTuneError } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { mmaScheduleText, planMma } from '../../loopnest/gpu-mma.ts';

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

/** The tile points of MMA_TILES that spell a valid tensor-core kernel for p, as schedules. */
export function mmaSchedules(p: Problem, tiles: readonly MmaTile[] = MMA_TILES): Schedule[] {
  if (p.op !== 'matmul' || p.dtype === undefined) return [];
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const out: Schedule[] = [];
  for (const t of tiles) {
    if (M % t.bm !== 0 || N % t.bn !== 0 || K % t.bk !== 0) continue;
    try {
      const s = Schedule.parse(p, mmaScheduleText(p, t));
      planMma(s);
      out.push(s);
    } catch (e) {
      if (!(e instanceof LoopTuneError)) throw e;
    }
  }
  return out;
}
