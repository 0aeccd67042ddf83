/**
 * Tensor-core convolutions: a typed channels-last conv2d (ir/spec.ts `nhwc`) compiled as its
 * implicit GEMM (loopnest/implicit-gemm.ts) on sm_90a wgmma. The tile choice is a schedule of the
 * view matmul (any WGMMA_TILES point whose k-tile divides the channels; the m block tile may end
 * in a tail, since N*OH*OW is rarely a multiple of it); the kernel takes the conv's tensors
 * (output, padded input, R S C K weights, epilogue operands) and computes the conv, so the same
 * runners, oracle checks and baselines apply. convTileSchedules lists the candidates.
 */
import { LoopTuneError, fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { lowerGpu } from '../../loopnest/gpu.ts';
import { MAX_DYNAMIC_SHARED, MMA_MAX_STAGES } from '../../loopnest/gpu-mma.ts';
import { isWgmmaSchedule, planWgmma, wgmmaScheduleText } from '../../loopnest/gpu-wgmma.ts';
import { implicitGemm } from '../../loopnest/implicit-gemm.ts';
import { WGMMA_TILES } from './mma-tiles.ts';
import { cudaKernelOf, type CudaCompileOptions, type CudaKernel } from './target.ts';
import { printWgmmaPtx } from './wgmma-ptx.ts';

/** A conv's tensor-core kernel from a tile choice: a schedule (or its text) of the conv's view matmul. */
export function compileImplicitGemm(conv: Problem, tile: Schedule | string, options: CudaCompileOptions = {}): CudaKernel {
  const t0 = performance.now();
  const { view, gather } = implicitGemm(conv);
  const s = typeof tile === 'string' ? Schedule.parse(view, tile) : tile;
  if (s.problem.spec !== view.spec) fail(`cuda: the tile schedule of ${conv.spec} is one of its view ${view.spec}, not of ${s.problem.spec}`);
  if (!isWgmmaSchedule(s)) fail('cuda: implicit-GEMM convs run on wgmma tiles (a schedule ending m:64 n:{NA} k:16)');
  const stages = options.stages === undefined ? {} : { stages: options.stages };
  const program = lowerGpu(s, { ...options });
  const plan = planWgmma(s, stages, { maxSharedBytes: MAX_DYNAMIC_SHARED, maxStages: MMA_MAX_STAGES }, gather);
  return cudaKernelOf(Schedule.initial(conv), program, printWgmmaPtx(plan, 'looptune_conv'), t0);
}

/** The wgmma tile points that make a kernel for the conv, as schedules of its view. */
export function convTileSchedules(conv: Problem): Schedule[] {
  const { view } = implicitGemm(conv);
  const [M, N, K] = view.vars.map((v) => v.extent) as [number, number, number];
  const out: Schedule[] = [];
  for (const t of WGMMA_TILES) {
    if (M < t.bm || N % t.bn !== 0 || K % t.bk !== 0) continue;
    try {
      const s = Schedule.parse(view, wgmmaScheduleText(view, t));
      compileImplicitGemm(conv, s);
      out.push(s);
    } catch (e) {
      if (!(e instanceof LoopTuneError)) throw e;
    }
  }
  return out;
}
