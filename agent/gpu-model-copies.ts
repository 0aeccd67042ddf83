/**
 * The data movements of a GPU model run as ordinary cuda kernels (copy Problems, compiled by the
 * cuda target like any other), so nothing of them runs on the host:
 *
 *  - storageCopyProblem: a value's data from one storage into another (the memory plan's copies:
 *    a graph input into a padded layer's bordered storage, a bordered value into a dense one...);
 *  - interiorFillProblem: the data points of a storage set to one value read from a one-element
 *    tensor, its border left as it is. cuda kernels of accumulating problems (conv, matmul, pools)
 *    ADD to their output (targets/cuda/ptx.ts storeTile), so their output's interior is cleared to
 *    the combine's identity (0, or -Infinity for a max pool) before each launch; where the border
 *    already holds that value, a whole-storage memset does it instead (agent/gpu-model.ts).
 *
 * Tensors are flat here ([storage elements], one affine index with each data dimension's storage
 * stride, the interior's start as the access offset), and data dimensions that are contiguous in
 * both tensors are merged into one variable (a dense copy is one loop). copySchedule maps the
 * innermost variable onto up to 256 threads, the rest onto blocks.
 */
import { dataShape, elementCount, makeProblem, type AffineIndex, type Problem, type Tensor } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';

const VAR_NAMES = ['i', 'j', 'l', 'p', 'q', 'u', 'v', 'x'];
/** threads per block of a copy kernel */
const COPY_THREADS = 256;

function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

/** Where the data of a tensor sits in its storage: per data dimension its extent and stride, and the first element. */
interface DataLayout {
  readonly extents: readonly number[];
  readonly strides: readonly number[];
  readonly start: number;
}

function layoutOf(t: Tensor): DataLayout {
  const strides = rowMajorStrides(t.shape);
  const start = strides.reduce((a, s, d) => a + s * (t.pad?.before[d] ?? 0), 0);
  return { extents: dataShape(t), strides, start };
}

/**
 * The data dimensions as loop variables: extents, and each tensor's stride per variable, with
 * neighbours merged where every tensor steps over the inner one contiguously.
 */
function mergedLoops(all: readonly number[], allStrides: readonly (readonly number[])[]): { extents: number[]; strides: number[][] } {
  // dimensions of extent 1 move nothing (one is kept when all are)
  const keep = all.map((n, d) => (n > 1 ? d : -1)).filter((d) => d >= 0);
  if (keep.length === 0) keep.push(all.length - 1);
  const extents = keep.map((d) => all[d]!);
  const strides = allStrides.map((t) => keep.map((d) => t[d]!));
  const e = [extents[0]!];
  const s = strides.map((t) => [t[0]!]);
  for (let d = 1; d < extents.length; d++) {
    const last = e.length - 1;
    const contiguous = strides.every((t, k) => s[k]![last] === t[d]! * extents[d]!);
    if (contiguous) {
      e[last] = e[last]! * extents[d]!;
      strides.forEach((t, k) => (s[k]![last] = t[d]!));
    } else {
      e.push(extents[d]!);
      strides.forEach((t, k) => s[k]!.push(t[d]!));
    }
  }
  return { extents: e, strides: s };
}

function flatIndex(strides: readonly number[]): AffineIndex[] {
  return [{ terms: strides.map((coef, v) => ({ var: v, coef })).filter((t) => t.coef !== 0) }];
}

function layoutText(l: { strides: readonly number[]; start: number }): string {
  return `strides ${l.strides.join(',')} at ${l.start}`;
}

/** out = copy of `from`'s data into `to`'s (the same data shape; either may be bordered). */
export function storageCopyProblem(from: Tensor, to: Tensor): Problem {
  const src = layoutOf(from), dst = layoutOf(to);
  if (src.extents.join('x') !== dst.extents.join('x')) {
    throw new Error(`internal: a storage copy between data of [${src.extents.join(', ')}] and [${dst.extents.join(', ')}]`);
  }
  const loops = mergedLoops(dst.extents, [dst.strides, src.strides]);
  const [outStrides, inStrides] = loops.strides as [number[], number[]];
  const vars = loops.extents.map((extent, i) => ({ name: VAR_NAMES[i]!, extent }));
  return makeProblem({
    op: 'copy',
    spec: `copy ${loops.extents.join('x')} [O ${layoutText({ strides: outStrides, start: dst.start })}; A ${layoutText({ strides: inStrides, start: src.start })}]`,
    vars,
    tensors: [{ name: 'O', shape: [elementCount(to)] }, { name: 'A', shape: [elementCount(from)] }],
    output: { tensor: 0, index: flatIndex(outStrides), ...(dst.start > 0 ? { offset: dst.start } : {}) },
    inputs: [{ tensor: 1, index: flatIndex(inStrides) }].map((a) => (src.start > 0 ? { ...a, offset: src.start } : a)),
    combine: 'copy',
  });
}

/** out's data points = value[0], a one-element tensor (the border of `t` is not written). */
export function interiorFillProblem(t: Tensor): Problem {
  const dst = layoutOf(t);
  const loops = mergedLoops(dst.extents, [dst.strides]);
  const strides = loops.strides[0]!;
  return makeProblem({
    op: 'copy',
    spec: `copy ${loops.extents.join('x')} [O ${layoutText({ strides, start: dst.start })}; A one value]`,
    vars: loops.extents.map((extent, i) => ({ name: VAR_NAMES[i]!, extent })),
    tensors: [{ name: 'O', shape: [elementCount(t)] }, { name: 'A', shape: [1] }],
    output: { tensor: 0, index: flatIndex(strides), ...(dst.start > 0 ? { offset: dst.start } : {}) },
    inputs: [{ tensor: 1, index: [{ terms: [] }] }],
    combine: 'copy',
  });
}

/** The innermost variable over up to COPY_THREADS threads (its remainder over blocks), every other variable over blocks. */
export function copySchedule(p: Problem): Schedule {
  const last = p.vars.length - 1;
  const outer = p.vars.slice(0, last).map((v) => `${v.name}:${v.extent}b`);
  const inner = p.vars[last]!;
  const threads = Math.min(COPY_THREADS, inner.extent);
  const blocks = Math.floor(inner.extent / threads);
  const tail = inner.extent % threads;
  const split = blocks > 1 || tail > 0 ? [`${inner.name}:${blocks}${tail > 0 ? `r${tail}` : ''}b`] : [];
  return Schedule.parse(p, [...outer, ...split, `${inner.name}:${threads}t`].join(' '));
}
