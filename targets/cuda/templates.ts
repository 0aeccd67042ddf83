/**
 * Families of GPU schedules for the tuned fast path (matmul, bmm, conv1d/2d/3d): block tile, thread
 * layout, register tile and a shared-memory-staged reduction, written as ordinary schedule text,
 * e.g. for matmul with a 128x128 block tile, 16x16 threads, 8x8 registers split 2x4 per dimension:
 *
 *     m:8b n:8b k:128s m:2 n:2 m:16t n:16t k:8 m:4 n:4
 *
 * and, split over 4 blocks along k (split-k), `k:4b m:8b n:8b k:32s ...`.
 *
 * Every schedule is a point the RL actions can also reach (split, swap, bind_block, bind_thread,
 * stage_shared); the families only give searches a compact, well-formed space to sample and mutate:
 * `params -> schedule text`, `random params`, `mutate params`.
 */
import { isReduction, type Problem } from '../../ir/problem.ts';
import type { Rng } from '../../ir/random.ts';
import { Schedule } from '../../ir/schedule.ts';

export interface GemmParams {
  family: 'gemm';
  /** threads along m and n */
  ty: number;
  tx: number;
  /** register tile per thread: outer x inner along m and n (inner is contiguous) */
  rmo: number;
  rmi: number;
  rno: number;
  rni: number;
  /** reduction slice per staged iteration */
  bk: number;
  /** threads splitting each staged slice of k (1 = no split reduction) */
  sk?: number;
  /** blocks splitting k (split-k, loopnest/gpu.ts rule 10: each adds its share with atomics; 1 = none) */
  gk?: number;
  stage: boolean;
}

export interface ConvParams {
  family: 'conv';
  /** threads along k (output channels), the output rows (h or d*h) and w */
  tk: number;
  th: number;
  tw: number;
  /** registers along k, h, w */
  rk: number;
  rh: number;
  rw: number;
  /** input channels per staged iteration */
  bc: number;
  /** threads splitting each staged slice of c (1 = no split reduction) */
  sc?: number;
  stage: boolean;
}

export type TemplateParams = GemmParams | ConvParams;

export const GEMM_CHOICES = {
  ty: [2, 4, 8, 16, 32], tx: [4, 8, 16, 32, 64], rmo: [1, 2], rmi: [1, 2, 4, 8], rno: [1, 2], rni: [1, 2, 4, 8], bk: [4, 8, 16, 32], sk: [1, 2, 4, 8], gk: [2, 3, 4, 5, 6, 8, 16],
} as const;
export const CONV_CHOICES = {
  tk: [1, 2, 4, 8, 16, 32, 64], th: [1, 2, 4, 8], tw: [1, 2, 4, 8, 16, 32], rk: [1, 2, 4, 8], rh: [1, 2, 4], rw: [1, 2, 4, 8], bc: [1, 2, 4, 8, 16, 32], sc: [1, 2, 4, 8],
} as const;

export function familyOf(p: Problem): 'gemm' | 'conv' | null {
  if (p.op === 'matmul' || p.op === 'bmm') return 'gemm';
  if (p.op === 'conv1d' || p.op === 'conv2d' || p.op === 'conv3d') return 'conv';
  return null;
}

/** Loop text of a variable of extent `e` tiled as outer (what is left) x inner factors, outer bound with `suffix`. */
function tiled(name: string, e: number, inner: number[], outerSuffix: string): string[] | null {
  const block = inner.reduce((a, x) => a * x, 1);
  if (block > e) return null;
  const size = Math.floor(e / block);
  const tail = e % block;
  return [`${name}:${size}${tail ? `r${tail}` : ''}${outerSuffix}`];
}

export function templateSchedule(p: Problem, params: TemplateParams): Schedule | null {
  const ext = (n: string) => p.vars.find((v) => v.name === n)?.extent ?? 1;
  if (params.family === 'gemm') {
    if (p.op !== 'matmul' && p.op !== 'bmm') return null;
    const { ty, tx, rmo, rmi, rno, rni, bk } = params;
    const sk = params.sk ?? 1;
    const gk = params.gk ?? 1;
    if (ty * tx * sk > 1024) return null;
    const M = ext('m'), N = ext('n');
    // split-k: every block's share of k is whole, and it sums into the output, so no epilogue
    if (gk > 1 && (ext('k') % gk !== 0 || (p.epilogue ?? []).length > 0)) return null;
    const K = ext('k') / gk;
    const mb = tiled('m', M, [rmo, ty, rmi], 'b');
    const nb = tiled('n', N, [rno, tx, rni], 'b');
    const kk = Math.min(bk, K);
    const ko = tiled('k', K, [kk], params.stage ? 's' : '');
    if (!mb || !nb || !ko) return null;
    // a split reduction needs whole ranges: k divisible by the slice, the slice by the split
    if (sk > 1 && (K % kk !== 0 || kk % sk !== 0)) return null;
    const parts = [
      ...(gk > 1 ? [`k:${gk}b`] : []),
      ...(p.op === 'bmm' ? [`b:${ext('b')}b`] : []),
      ...mb, ...nb, ...ko, ...(sk > 1 ? [`k:${sk}t`] : []),
      `m:${rmo}`, `n:${rno}`, `m:${ty}t`, `n:${tx}t`, `k:${kk / sk}`, `m:${rmi}`, `n:${rni}`,
    ];
    return Schedule.parse(p, parts.join(' '));
  }
  if (familyOf(p) !== 'conv') return null;
  const { tk, th, tw, rk, rh, rw, bc } = params;
  const sc = params.sc ?? 1;
  if (tk * th * tw * sc > 1024) return null;
  const spatial = p.op === 'conv1d' ? ['w'] : p.op === 'conv2d' ? ['h', 'w'] : ['d', 'h', 'w'];
  const window = p.op === 'conv1d' ? ['s'] : p.op === 'conv2d' ? ['r', 's'] : ['t', 'r', 's'];
  const rowVar = spatial.length > 1 ? spatial[spatial.length - 2]! : null;
  const K = ext('k'), C = ext('c'), W = ext('w');
  const kb = tiled('k', K, [tk, rk], 'b');
  const wb = tiled('w', W, [tw, rw], 'b');
  const hb = rowVar ? tiled(rowVar, ext(rowVar), [th, rh], 'b') : [];
  const cc = Math.min(bc, C);
  const co = tiled('c', C, [cc], params.stage ? 's' : '');
  if (!kb || !wb || !hb || !co) return null;
  if (!rowVar && (th !== 1 || rh !== 1)) return null;
  if (sc > 1 && (C % cc !== 0 || cc % sc !== 0)) return null;
  const parts = [
    `n:${ext('n')}b`,
    // grouped convs (ir/spec.ts): one block per group
    ...(p.vars.some((v) => v.name === 'g') ? [`g:${ext('g')}b`] : []),
    ...(p.op === 'conv3d' ? [`d:${ext('d')}b`] : []),
    ...kb, ...hb, ...wb, ...co, ...(sc > 1 ? [`c:${sc}t`] : []),
    `c:${cc / sc}`, ...window.map((x) => `${x}:${ext(x)}`),
    `k:${tk}t`, ...(rowVar ? [`${rowVar}:${th}t`] : []), `w:${tw}t`,
    `k:${rk}`, ...(rowVar ? [`${rowVar}:${rh}`] : []), `w:${rw}`,
  ];
  return Schedule.parse(p, parts.join(' '));
}

/**
 * The nearest parameters whose tiles fit the problem: each block dimension that exceeds its extent
 * is shrunk (outer registers first, then inner registers, then threads, halving), a split
 * reduction (of threads or blocks) that no longer divides is dropped. Seeds tuned for large shapes then still seed small ones.
 */
export function fitParams(p: Problem, params: TemplateParams): TemplateParams | null {
  const ext = (n: string) => p.vars.find((v) => v.name === n)?.extent ?? 1;
  const shrink = (q: Record<string, number>, keys: string[], limit: number): void => {
    for (let guard = 0; keys.reduce((a, k) => a * q[k]!, 1) > limit && guard < 32; guard++) {
      const k = keys.find((x) => q[x]! > 1);
      if (!k) return;
      q[k] = Math.max(1, Math.floor(q[k]! / 2));
    }
  };
  const q = { ...params } as unknown as Record<string, number>;
  if (params.family === 'gemm') {
    if (familyOf(p) !== 'gemm') return null;
    shrink(q, ['rmo', 'rmi', 'ty'], ext('m'));
    shrink(q, ['rno', 'rni', 'tx'], ext('n'));
  } else {
    if (familyOf(p) !== 'conv') return null;
    const row = p.op === 'conv2d' ? 'h' : p.op === 'conv3d' ? 'h' : null;
    shrink(q, ['rk', 'tk'], ext('k'));
    if (row) shrink(q, ['rh', 'th'], ext(row));
    else Object.assign(q, { th: 1, rh: 1 });
    shrink(q, ['rw', 'tw'], ext('w'));
  }
  const fitted = q as unknown as TemplateParams;
  if (templateSchedule(p, fitted)) return fitted;
  const plain = { ...fitted, ...(fitted.family === 'gemm' ? { sk: 1, gk: 1 } : { sc: 1 }) } as TemplateParams;
  return templateSchedule(p, plain) ? plain : null;
}

export function randomParams(p: Problem, rng: Rng): TemplateParams | null {
  const fam = familyOf(p);
  const pick = <T>(xs: readonly T[]) => rng.pick(xs);
  if (fam === 'gemm') {
    return { family: 'gemm', ty: pick(GEMM_CHOICES.ty), tx: pick(GEMM_CHOICES.tx), rmo: pick(GEMM_CHOICES.rmo), rmi: pick(GEMM_CHOICES.rmi), rno: pick(GEMM_CHOICES.rno), rni: pick(GEMM_CHOICES.rni), bk: pick(GEMM_CHOICES.bk), sk: rng.next() < 0.6 ? 1 : pick(GEMM_CHOICES.sk), gk: rng.next() < 0.75 ? 1 : pick(GEMM_CHOICES.gk), stage: rng.next() < 0.8 };
  }
  if (fam === 'conv') {
    return { family: 'conv', tk: pick(CONV_CHOICES.tk), th: pick(CONV_CHOICES.th), tw: pick(CONV_CHOICES.tw), rk: pick(CONV_CHOICES.rk), rh: pick(CONV_CHOICES.rh), rw: pick(CONV_CHOICES.rw), bc: pick(CONV_CHOICES.bc), sc: rng.next() < 0.5 ? 1 : pick(CONV_CHOICES.sc), stage: rng.next() < 0.8 };
  }
  return null;
}

export function paramsKey(params: TemplateParams): string {
  return JSON.stringify(params);
}

/** A random template schedule that is valid for the problem, or null after a few tries. */
export function randomTemplateSchedule(p: Problem, rng: Rng, tries = 20): Schedule | null {
  for (let i = 0; i < tries; i++) {
    const params = randomParams(p, rng);
    if (!params) return null;
    const s = templateSchedule(p, params);
    if (s) return s;
  }
  return null;
}

/** Variables of the problem that index the output (for callers building bindings by hand). */
export function outputVars(p: Problem): number[] {
  return p.vars.map((_, v) => v).filter((v) => !isReduction(p, v));
}
