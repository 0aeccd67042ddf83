/** Text forms of results, shared by the commands. */
import type { BaselineFigure } from '../targets/backend.ts';
import type { RunReport } from '../targets/run-schedule.ts';

export { describeDecision } from '../targets/describe.ts';

/** "OpenBLAS sgemm (OpenBLAS 0.3.21 (Cooperlake), 1 thread): X GFLOPS -> 1.13x OpenBLAS", "cuBLAS 13.1 sgemm: ...":
 *  the library's own name (its first word is the family). */
export function describeBaseline(b: BaselineFigure): string {
  const family = b.library.split(' ')[0]!;
  const figure = `${b.gflops.toFixed(1)} GFLOPS -> ${b.ratio.toFixed(2)}x ${family}`;
  return b.threads !== undefined
    ? `${family} sgemm (${b.library}, ${b.threads} thread${b.threads === 1 ? '' : 's'}): ${figure}`
    : `${b.library} sgemm: ${figure}`;
}

export function formatCostModelEval(r: { spearman: number; pairwiseAccuracy: number; top10Recall: number; records: number; problems: number }): string {
  return `${r.records} records of ${r.problems} problems: Spearman ${r.spearman.toFixed(3)}, pairwise accuracy ${r.pairwiseAccuracy.toFixed(3)}, top-10 recall ${r.top10Recall.toFixed(2)} (within each problem, averaged)`;
}

/** A speed-up is only a figure when the default schedule was measured at a non-zero speed. */
export function speedupOverDefault(gflops: number, defaultGflops: number): number | null {
  return defaultGflops > 0 && Number.isFinite(defaultGflops) && Number.isFinite(gflops) ? gflops / defaultGflops : null;
}

/** "12.3x over the default schedule (1.20 GFLOPS)", or why there is no such figure. */
export function describeSpeedup(gflops: number, defaultGflops: number, predicted = ''): string {
  const s = speedupOverDefault(gflops, defaultGflops);
  return s === null
    ? 'the default schedule was not measured within the budget (no speed-up figure)'
    : `${s.toFixed(1)}x over the default schedule (${defaultGflops.toFixed(2)} GFLOPS${predicted})`;
}

export function formatRun(r: RunReport): string {
  const lines = [`${r.problem}   schedule ${r.schedule}   target ${r.target}`];
  lines.push(r.verified
    ? `verified against the interpreter (max error ${r.maxRelError.toExponential(1)}), codegen ${r.codegenMicros.toFixed(0)} us`
    : `NOT verified: ${r.error ?? 'mismatch'}`);
  if (r.verified && r.gflops > 0) {
    const on = r.threads > 1 ? ` on ${r.threads} threads` : '';
    const timing = `best ${(r.bestSeconds * 1e3).toFixed(3)} ms, median ${(r.medianSeconds * 1e3).toFixed(3)} ms: ${r.gflops.toFixed(1)} GFLOPS${on}`;
    lines.push(!r.native ? `${timing} under emulation (not comparable with native figures)`
      : Number.isFinite(r.peakGflops) ? `${timing} = ${r.percentOfPeak.toFixed(1)}% of peak ${r.peakGflops.toFixed(1)}` : timing);
  }
  if (r.baseline) lines.push(describeBaseline(r.baseline));
  if (r.error && r.verified) lines.push(`error: ${r.error}`);
  return lines.join('\n');
}

/** A run failed when it did not verify or its measurement failed (crash, hang, timeout). */
export function runFailed(r: Pick<RunReport, 'verified' | 'error'>): boolean {
  return !r.verified || r.error !== undefined;
}
