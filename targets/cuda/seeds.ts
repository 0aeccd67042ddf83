/** Known-good template points of the GPU families, measured first by every search on cuda. */
import type { Problem } from '../../ir/problem.ts';
import { familyOf, type ConvParams, type GemmParams, type TemplateParams } from './templates.ts';

export const GEMM_SEEDS: GemmParams[] = [
  // the best of the last run on an H200 (2048 and 4096; 1024)
  { family: 'gemm', ty: 16, tx: 16, rmo: 1, rmi: 8, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 8, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, stage: true },
  // split reductions (more threads per output tile)
  { family: 'gemm', ty: 8, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, sk: 2, stage: true },
  { family: 'gemm', ty: 8, tx: 8, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 16, sk: 4, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, sk: 2, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 16, stage: true },
  { family: 'gemm', ty: 8, tx: 16, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 8, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 8, tx: 32, rmo: 2, rmi: 4, rno: 1, rni: 4, bk: 8, stage: true },
  // 64 x 64 block tiles, for sizes where 128 x 128 leaves multiprocessors idle
  { family: 'gemm', ty: 8, tx: 8, rmo: 2, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 8, rmo: 1, rmi: 4, rno: 2, rni: 4, bk: 8, stage: true },
  { family: 'gemm', ty: 16, tx: 16, rmo: 1, rmi: 4, rno: 1, rni: 4, bk: 16, stage: true },
];

export const CONV_SEEDS: ConvParams[] = [
  // the best of the last run on an H200 (conv2_x; conv3_1)
  { family: 'conv', tk: 16, th: 2, tw: 32, rk: 2, rh: 1, rw: 1, bc: 2, stage: true },
  { family: 'conv', tk: 4, th: 1, tw: 4, rk: 1, rh: 4, rw: 1, bc: 1, stage: false },
  // split reductions over input channels, for the deep layers' few outputs
  { family: 'conv', tk: 8, th: 2, tw: 4, rk: 2, rh: 2, rw: 2, bc: 16, sc: 4, stage: true },
  { family: 'conv', tk: 16, th: 1, tw: 4, rk: 2, rh: 1, rw: 2, bc: 32, sc: 8, stage: true },
  { family: 'conv', tk: 32, th: 1, tw: 2, rk: 2, rh: 1, rw: 1, bc: 16, sc: 4, stage: true },
  { family: 'conv', tk: 16, th: 2, tw: 8, rk: 2, rh: 1, rw: 1, bc: 8, sc: 2, stage: true },
  { family: 'conv', tk: 16, th: 1, tw: 8, rk: 4, rh: 1, rw: 1, bc: 32, sc: 4, stage: false },
  { family: 'conv', tk: 8, th: 2, tw: 8, rk: 4, rh: 1, rw: 2, bc: 8, stage: true },
  { family: 'conv', tk: 16, th: 2, tw: 4, rk: 4, rh: 2, rw: 2, bc: 8, stage: true },
  { family: 'conv', tk: 8, th: 4, tw: 8, rk: 2, rh: 1, rw: 2, bc: 8, stage: true },
  { family: 'conv', tk: 16, th: 1, tw: 8, rk: 4, rh: 2, rw: 2, bc: 16, stage: true },
  { family: 'conv', tk: 32, th: 1, tw: 4, rk: 2, rh: 1, rw: 2, bc: 16, stage: true },
  { family: 'conv', tk: 32, th: 2, tw: 2, rk: 4, rh: 1, rw: 1, bc: 8, stage: true },
  { family: 'conv', tk: 16, th: 2, tw: 8, rk: 4, rh: 2, rw: 4, bc: 8, stage: true },
  { family: 'conv', tk: 32, th: 2, tw: 2, rk: 2, rh: 2, rw: 2, bc: 32, stage: true },
];


/** The seed parameters of a problem's template family (none for problems without one). */
export function seedsFor(p: Problem): TemplateParams[] {
  const f = familyOf(p);
  return f === 'gemm' ? GEMM_SEEDS : f === 'conv' ? CONV_SEEDS : [];
}
