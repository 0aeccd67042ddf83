/**
 * A channels-last convolution (ir/spec.ts `nhwc`) as the matmul the tensor cores run, cuDNN's and
 * CUTLASS's implicit GEMM:
 *
 *   C[M, N] += A[M, K] · B[K, N]   with M = n*oh*ow (output pixels), N = k, K = r*s*c
 *   A[m, (r, s, c)] = I[n, oh*stride + r*dilation, ow*stride + s*dilation, c]   (gathered, never stored)
 *   B = W as stored ([R*S*C, K] row-major), C = O as stored ([N*OH*OW, K] row-major)
 *
 * The input is stored padded (its border zero, the IR's convention), so every gathered element
 * exists: a k-tile of BK channels inside one (r, s) is one contiguous 2*BK-byte run per pixel, at
 * the pixel's base address plus an offset common to every pixel of the tile. The view is a typed
 * matmul problem with the conv's epilogue (bias over N = the output channel, residual like C), so
 * the matmul planners, tile tables and printers serve it; the printer reads A through `ConvGather`.
 */
import { fail } from '../ir/errors.ts';
import { elementCount, type Problem } from '../ir/problem.ts';
import { convAttributes, isChannelsLast, parseProblem } from '../ir/spec.ts';

/** How A's rows (output pixels) and k-tiles map into the stored input. */
export interface ConvGather {
  /** output pixels per image and per row: m = (n * OH + oh) * OW + ow */
  readonly OH: number;
  readonly OW: number;
  /** the stored (padded) input's rows and columns, and its channels */
  readonly H: number;
  readonly W: number;
  readonly C: number;
  readonly R: number;
  readonly S: number;
  readonly stride: number;
  readonly dilation: number;
}

export interface ImplicitGemm {
  /** the matmul M x N x K of the conv's type and epilogue */
  readonly view: Problem;
  readonly gather: ConvGather;
}

/** Element offset in the stored input of k-tile `tile` (BK channels of one (r, s)) from a pixel's first element. */
export function gatherTileOffset(g: ConvGather, BK: number, tile: number): number {
  const perTap = g.C / BK;
  const tap = Math.floor(tile / perTap), c0 = (tile % perTap) * BK;
  const r = Math.floor(tap / g.S), s = tap % g.S;
  return (r * g.dilation * g.W + s * g.dilation) * g.C + c0;
}

/** Element offset in the stored input of output pixel m's window origin. */
export function gatherPixelOffset(g: ConvGather, m: number): number {
  const perImage = g.OH * g.OW;
  const n = Math.floor(m / perImage), oh = Math.floor((m % perImage) / g.OW), ow = m % g.OW;
  return ((n * g.H + oh * g.stride) * g.W + ow * g.stride) * g.C;
}

/** The implicit GEMM of a typed nhwc conv2d; anything else fails with one `cuda:` line. */
export function implicitGemm(conv: Problem): ImplicitGemm {
  if (!isChannelsLast(conv)) fail(`cuda: tensor-core convolutions read the channels-last layout (add nhwc to the spec: ${conv.spec})`);
  if (conv.dtype === undefined) fail(`cuda: an implicit-GEMM conv runs on tensor cores: give it a type (bf16 or f16): ${conv.spec}`);
  const [O, I, Wt] = conv.tensors.map((t) => t.shape) as [number[], number[], number[]];
  const [N, OH, OW, K] = O as [number, number, number, number];
  const [, H, W, C] = I as [number, number, number, number];
  const [R, S] = Wt as [number, number];
  const { stride, dilation } = convAttributes(conv);
  if (stride[0] !== stride[1] || dilation[0] !== dilation[1]) fail(`cuda: implicit-GEMM convs take the same stride and dilation on both axes (${conv.spec})`);
  if (C % 8 !== 0) fail(`cuda: an implicit-GEMM conv copies 8 channels at a time; c=${C} is not a multiple of 8`);
  // element offsets are 32-bit registers (widened only when turned into addresses)
  for (const t of conv.tensors) {
    if (elementCount(t) >= 2 ** 32) fail(`cuda: tensor ${t.name} of ${conv.spec} has ${elementCount(t)} elements; implicit-GEMM kernels use 32-bit element offsets`);
  }
  const epilogue = conv.spec.split(' ').filter((t) => t.startsWith('+'));
  const view = parseProblem([`matmul ${N * OH * OW}x${K}x${R * S * C}`, conv.dtype, ...epilogue].join(' '));
  return { view, gather: { OH, OW, H, W, C, R, S, stride: stride[0]!, dilation: dilation[0]! } };
}
