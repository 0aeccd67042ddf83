/**
 * Tensor-core convolutions: a typed channels-last conv2d (ir/spec.ts `nhwc`) compiled as its
 * implicit GEMM (loopnest/implicit-gemm.ts) on sm_90a wgmma (bf16, f16) or mma.sync (also tf32,
 * and GPUs before Hopper). The tile choice is a schedule of the view matmul (any tile point of
 * either family whose k-tile divides the channels; the m block tile may end in a tail, since
 * N*OH*OW is rarely a multiple of it); the kernel takes the conv's tensors
 * (output, padded input, R S C K weights, epilogue operands) and computes the conv, so the same
 * runners, oracle checks and baselines apply. convTileSchedules lists the candidates.
 */
import { LoopTuneError, fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { lowerGpu } from '../../loopnest/gpu.ts';
import { mmaScheduleText, planMma } from '../../loopnest/gpu-mma.ts';
import { wgmmaScheduleText } from '../../loopnest/gpu-wgmma.ts';
import { implicitGemm } from '../../loopnest/implicit-gemm.ts';
import { MMA_TILES, WGMMA_TILES } from './mma-tiles.ts';
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
  const { view } = implicitGemm(conv);
  const [M, N, K] = view.vars.map((v) => v.extent) as [number, number, number];
  const out: Schedule[] = [];
  const wgmma = view.dtype === 'bf16' || view.dtype === 'f16';
  const texts = [
    ...(wgmma ? WGMMA_TILES.map((t) => ({ t, text: () => wgmmaScheduleText(view, t) })) : []),
    ...MMA_TILES.map((t) => ({ t, text: () => mmaScheduleText(view, t) })),
  ];
  for (const { t, text } of texts) {
    if (M < t.bm || N % t.bn !== 0 || K % t.bk !== 0) continue;
    try {
      const s = Schedule.parse(view, text());
      compileImplicitGemm(conv, s);
      out.push(s);
    } catch (e) {
      if (!(e instanceof LoopTuneError)) throw e;
    }
  }
  return out;
}
