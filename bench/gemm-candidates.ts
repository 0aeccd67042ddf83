/**
 * Hand-written schedule families for matmul, BLIS-style: a register tile of mr rows x nr columns
 * (nr a multiple of the vector width), the reduction loop around it, optional k-blocking so the B
 * panel stays in L1/L2, and both orders of the outer m/n loops. Used by the benchmarks to report
 * "our best schedule" per shape; the searchers find such schedules on their own.
 */
import { Schedule, type Loop } from '../ir/schedule.ts';
import type { Problem } from '../ir/problem.ts';

function split(extent: number, inner: number): { size: number; tail: number } | null {
  if (inner > extent) return null;
  return { size: Math.floor(extent / inner), tail: extent % inner };
}

export function gemmCandidates(p: Problem, lanes: number): Schedule[] {
  if (p.op !== 'matmul') return [];
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const tiles = lanes === 16
    ? [[4, 64], [6, 64], [8, 48], [12, 32], [14, 32], [6, 48], [4, 48], [8, 32]]
    : [[6, 16], [4, 24], [3, 32], [8, 8], [4, 16], [2, 32]];
  const kBlocks = [K, 512, 256, 128, 64].filter((kc, i, a) => kc <= K && a.indexOf(kc) === i);
  const out: Schedule[] = [];
  const seen = new Set<string>();
  for (const [mr0, nr0] of tiles) {
    const mr = Math.min(mr0!, M);
    const nr = Math.min(nr0!, N);
    const mOuter = split(M, mr);
    const nOuter = split(N, nr);
    if (!mOuter || !nOuter) continue;
    for (const kc of kBlocks) {
      const kOuter = split(K, kc)!;
      for (const order of ['mn', 'nm']) {
        const loops: Loop[] = [];
        if (kc < K) loops.push({ var: 2, ...kOuter });
        const m: Loop = { var: 0, ...mOuter };
        const n: Loop = { var: 1, ...nOuter };
        loops.push(...(order === 'mn' ? [m, n] : [n, m]));
        loops.push({ var: 2, size: kc, tail: 0 }, { var: 0, size: mr, tail: 0 }, { var: 1, size: nr, tail: 0 });
        try {
          const s = new Schedule(p, loops);
          if (!seen.has(s.text())) {
            seen.add(s.text());
            out.push(s);
          }
        } catch {
          // a combination whose tails do not fit the coverage rules: skip it
        }
      }
    }
  }
  return out;
}
