/**
 * A deterministic analytic stand-in for measurement, for tests, demos and CI on machines that cannot
 * run the generated code. It is NOT a cost model of any real machine; it only rewards what helps on
 * real CPUs too, so that search and RL code can be exercised in milliseconds:
 *  - vectorization: the innermost loop should move the output contiguously (stride 1), with at least
 *    16 iterations (one AVX-512 vector);
 *  - locality: a footprint model with a cache of CACHE_ELEMENTS floats. Walking loops from the
 *    innermost out, the outermost sub-nest whose tensor footprint still fits in the cache is loaded
 *    once per iteration of the loops around it; arithmetic intensity = points / loaded elements.
 *  - small tails cost a little.
 */
import { tensorStrides, iterationPoints } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';

const CACHE_ELEMENTS = 8192;
const VECTOR_LANES = 16;

/** Synthetic GFLOPS of a schedule, in (0, peak]. */
export function syntheticGflops(s: Schedule, peakGflops: number): number {
  const p = s.problem;
  const strides = tensorStrides(p);
  const n = s.loops.length;
  const inner = s.loops[n - 1]!;
  const outStride = strides[0]![inner.var]!;
  const vec = outStride === 1 ? Math.min(1, inner.size / VECTOR_LANES) : outStride === 0 ? 0.25 : 1 / VECTOR_LANES;

  // coverage[v]: elements of variable v covered by the sub-nest starting at level l (l walking up).
  const coverage = new Array<number>(p.vars.length).fill(1);
  const accesses = [p.output, ...p.inputs];
  const footprint = (): number => accesses.reduce((sum, a) => {
    const t = p.tensors[a.tensor]!;
    // per dimension: extent of the index range = sum over terms coef * (coverage - 1) + 1
    return sum + a.index.reduce((prod, ix, d) => {
      const range = ix.terms.reduce((r, term) => r + term.coef * (coverage[term.var]! - 1), 0) + 1;
      return prod * Math.min(range, t.shape[d]!);
    }, 1);
  }, 0);
  let level = n;
  let fits = footprint();
  for (let l = n - 1; l >= 0; l--) {
    const saved = coverage[s.loops[l]!.var]!;
    coverage[s.loops[l]!.var] = s.extent(l);
    const f = footprint();
    if (f > CACHE_ELEMENTS) {
      coverage[s.loops[l]!.var] = saved;
      break;
    }
    level = l;
    fits = f;
  }
  const outerIterations = s.loops.slice(0, level).reduce((a, l) => a * (l.size + (l.tail > 0 ? 1 : 0)), 1);
  const loaded = outerIterations * fits;
  const intensity = iterationPoints(p) / loaded;
  const locality = intensity / (intensity + 4);
  const tails = s.loops.filter((l) => l.tail > 0).length;
  const tailFactor = Math.pow(0.97, tails);
  return Math.max(1e-3, peakGflops * vec * locality * tailFactor);
}
