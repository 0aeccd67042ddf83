/**
 * Tensor-core convolutions: a typed channels-last conv2d (ir/spec.ts `nhwc`) compiled as its
 * implicit GEMM (loopnest/implicit-gemm.ts) on sm_90a wgmma (bf16, f16) or mma.sync (also tf32,
 * and GPUs before Hopper). The tile choice is a schedule of the view matmul (any tile point of
 * either family whose k-tile divides the channels; the m block tile may end in a tail, since
 * N*OH*OW is rarely a multiple of it); the kernel takes the conv's tensors
 * (output, padded input, R S C K weights, epilogue operands) and computes the conv, so the same
 * runners, oracle checks and baselines apply. convTileSchedules lists the candidates.
 */
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { lowerGpu } from '../../loopnest/gpu.ts';
import { planMma } from '../../loopnest/gpu-mma.ts';
import { implicitGemm } from '../../loopnest/implicit-gemm.ts';
import { tensorCoreSchedules } from './mma-tiles.ts';
import { printMmaPtx } from './mma-ptx.ts';
import { cudaKernelOf, type CudaCompileOptions, type CudaKernel } from './target.ts';
import { printWgmmaPtx } from './wgmma-ptx.ts';

/** A conv's tensor-core kernel from a tile choice: a schedule (or its text) of the conv's view matmul. */
export function compileImplicitGemm(conv: Problem, tile: Schedule | string, options: CudaCompileOptions = {}): CudaKernel {
  const t0 = performance.now();
  const { view, gather } = implicitGemm(conv);
  const s = typeof tile === 'string' ? Schedule.parse(view, tile) : tile;
  if (s.problem.spec !== view.spec) fail(`cuda: the tile schedule of ${conv.spec} is one of its view ${view.spec}, not of ${s.problem.spec}`);
  const program = lowerGpu(s, { ...options });
  // the same plan as the view's, with the gather (the conv's own rule: a k-tile inside one tap)
  const plan = planMma(s, { ...(options.stages === undefined ? {} : { stages: options.stages }), ...(options.overwrite ? { overwrite: true } : {}) }, gather);
  const printed = plan.wgmma ? printWgmmaPtx(plan.wgmma, 'looptune_conv') : printMmaPtx(plan, 'looptune_conv');
  return cudaKernelOf(Schedule.initial(conv), program, printed, t0);
}

/** The tile points of both families (wgmma first; mma.sync, the only one for tf32) that make a kernel for the conv, as schedules of its view. */
export function convTileSchedules(conv: Problem): Schedule[] {
  const { view, gather } = implicitGemm(conv);
  // the view's tile points that the gather accepts too (a k-tile inside one tap)
  return tensorCoreSchedules(view, (s) => planMma(s, {}, gather));
}
