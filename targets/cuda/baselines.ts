/**
 * Baselines that are not looptune kernels: conv2d as im2col + cuBLAS sgemm (the usual library
 * path). im2col is a small hand-written PTX kernel, one thread per element of the column matrix
 * col[(c*R + r)*S + s][oh*OW + ow] = I[0, c, oh*stride + r, ow*stride + s]; then
 * O[k, oh*OW + ow] = W[k, (c r s)] · col, a row-major M x N x K = K_out x (OH*OW) x (C*R*S) product.
 * Batch 1 only (inference-style layers). Like cuBLAS and cuDNN, no epilogue and no padded output
 * (baselineObstacle); a padded input is only bigger storage, convolved with pad 0.
 */
import { convAttributes } from '../../ir/spec.ts';
import { fail } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';

/**
 * Why the vendor libraries' call cannot stand for this problem's kernel: cuBLAS sgemm and cuDNN's
 * forward convolution (y += conv(x, w) here) fuse no epilogue, and cuDNN's output descriptor is a
 * dense tensor, not the interior of a padded one. A padded input is fine: cuDNN convolves its
 * storage with pad 0, as our kernels do.
 */
export function baselineObstacle(p: Problem): string | undefined {
  const ops = p.epilogue ?? [];
  if (ops.length > 0) return `the cuBLAS/cuDNN comparison has no fused epilogue (${ops.map((e) => e.kind).join(', ')}): it is refused, not timed without it`;
  if (p.tensors[0]!.pad || (p.output.offset ?? 0) !== 0) return 'the cuBLAS/cuDNN comparison writes a dense output, not the interior of a padded one (outpad)';
  return undefined;
}

export interface Im2col {
  ptx: string;
  entry: string;
  grid: [number, number, number];
  block: [number, number, number];
  /** elements of the column matrix */
  elements: number;
  gemm: { m: number; n: number; k: number };
}

export function im2colFor(p: Problem): Im2col {
  if (p.op !== 'conv2d') fail(`im2col baseline: only conv2d, got ${p.op}`);
  const e = (n: string) => p.vars.find((v) => v.name === n)!.extent;
  const N = e('n'), K = e('k'), OH = e('h'), OW = e('w'), C = e('c'), R = e('r'), S = e('s');
  if (N !== 1) fail('im2col baseline: batch 1 only');
  const attributes = convAttributes(p);
  if (attributes.groups !== 1 || attributes.dilation.some((d) => d !== 1)) fail('im2col baseline: ungrouped, undilated conv2d only');
  const fused = baselineObstacle(p);
  if (fused) fail(`im2col baseline: ${fused}`);
  const [, , H, W] = p.tensors[1]!.shape as [number, number, number, number];
  const stride = p.inputs[0]!.index[2]!.terms.find((t) => t.var === p.vars.findIndex((v) => v.name === 'h'))!.coef;
  const total = C * R * S * OH * OW;
  const entry = 'looptune_im2col';
  const ptx = `.version 8.0
.target sm_80
.address_size 64
.visible .entry ${entry}(.param .u64 col, .param .u64 inp)
{
	.reg .pred %p<2>;
	.reg .b32 %r<20>;
	.reg .b64 %rd<8>;
	.reg .f32 %f<2>;
	ld.param.u64 %rd1, [col];
	ld.param.u64 %rd2, [inp];
	cvta.to.global.u64 %rd1, %rd1;
	cvta.to.global.u64 %rd2, %rd2;
	mov.u32 %r1, %ctaid.x;
	mov.u32 %r2, %tid.x;
	mad.lo.u32 %r3, %r1, 256, %r2;
	setp.ge.u32 %p1, %r3, ${total};
	@%p1 bra $DONE;
	rem.u32 %r4, %r3, ${OH * OW};
	div.u32 %r5, %r3, ${OH * OW};
	rem.u32 %r6, %r4, ${OW};
	div.u32 %r7, %r4, ${OW};
	rem.u32 %r8, %r5, ${S};
	div.u32 %r9, %r5, ${S};
	rem.u32 %r10, %r9, ${R};
	div.u32 %r11, %r9, ${R};
	mad.lo.u32 %r12, %r7, ${stride}, %r10;
	mad.lo.u32 %r13, %r6, ${stride}, %r8;
	mad.lo.u32 %r14, %r11, ${H}, %r12;
	mad.lo.u32 %r15, %r14, ${W}, %r13;
	mul.wide.u32 %rd3, %r15, 4;
	add.s64 %rd4, %rd2, %rd3;
	ld.global.nc.f32 %f1, [%rd4];
	mul.wide.u32 %rd5, %r3, 4;
	add.s64 %rd6, %rd1, %rd5;
	st.global.f32 [%rd6], %f1;
$DONE:
	ret;
}
`;
  return { ptx, entry, grid: [Math.ceil(total / 256), 1, 1], block: [256, 1, 1], elements: total, gemm: { m: K, n: OH * OW, k: C * R * S } };
}
