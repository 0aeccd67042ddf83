/** Microseconds per call of `f`: `warmup` calls, then the best of `rounds` rounds of `calls` calls (the benches' in-process timing). */
export function bestMicrosPerCall(f: () => void, o: { warmup: number; rounds: number; calls: number }): number {
  for (let i = 0; i < o.warmup; i++) f();
  let best = Infinity;
  for (let round = 0; round < o.rounds; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < o.calls; i++) f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e3 / o.calls);
  }
  return best;
}
