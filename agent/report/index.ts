/**
 * The comparison report: one self-contained HTML file with inline SVG plots (best GFLOPS over the
 * budget per searcher, per problem and aggregated as the geomean of best/peak; per-problem bars),
 * and the same data as JSON next to it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BaselineFigure } from '../../targets/backend.ts';
import type { Budget, HistoryPoint, StopReason } from '../searcher.ts';
import { barPlot, esc, linePlot, type Series } from './svg.ts';

export { linePlot, barPlot, niceTicks, type Series, type BarGroup, type PlotOptions } from './svg.ts';

export interface CompareSearcherResult {
  searcher: string;
  gflops: number;
  fractionOfPeak: number;
  speedupOverDefault: number;
  schedule: string;
  measurements: number;
  timed: number;
  cacheHits: number;
  steps: number;
  seconds: number;
  stopReason: StopReason;
  history: HistoryPoint[];
}

export interface CompareProblem {
  spec: string;
  flops: number;
  defaultGflops: number;
  /** the device's vendor library on this problem (its name, GFLOPS, best searcher / it) */
  baseline?: BaselineFigure;
  /** @deprecated one release: baseline.gflops */
  openblasGflops?: number;
  openblasError?: string;
  results: CompareSearcherResult[];
}

export interface CompareSummary {
  searcher: string;
  /** geometric mean over problems of best GFLOPS / peak. */
  geomeanFractionOfPeak: number;
  geomeanSpeedupOverDefault: number;
  /** problems where this searcher found the best schedule (ties count for each). */
  wins: number;
  meanMeasurements: number;
  meanSeconds: number;
}

export interface CompareData {
  title: string;
  createdAt: string;
  host: string;
  target: string;
  peakGflops: number;
  peakSource?: string;
  budget: Budget;
  seed: number;
  searchers: string[];
  problems: CompareProblem[];
  summary: CompareSummary[];
  /** geomean over problems of OpenBLAS GFLOPS / peak (problems where it was measured). */
  openblasGeomeanFractionOfPeak?: number;
  /** what the "openblas" figures are: 'OpenBLAS' on CPUs (default), 'cuBLAS' on cuda */
  blasName?: string;
}

export function geomean(values: readonly number[]): number {
  const v = values.filter((x) => x > 0);
  if (v.length === 0) return 0;
  return Math.exp(v.reduce((a, x) => a + Math.log(x), 0) / v.length);
}

export function summarize(problems: readonly CompareProblem[], searchers: readonly string[]): CompareSummary[] {
  return searchers.map((name) => {
    const rs = problems.map((p) => ({ p, r: p.results.find((r) => r.searcher === name) })).filter((x) => x.r) as { p: CompareProblem; r: CompareSearcherResult }[];
    const wins = rs.filter(({ p, r }) => r.gflops > 0 && r.gflops >= Math.max(...p.results.map((o) => o.gflops))).length;
    return {
      searcher: name,
      geomeanFractionOfPeak: geomean(rs.map(({ r }) => r.fractionOfPeak)),
      geomeanSpeedupOverDefault: geomean(rs.map(({ r }) => r.speedupOverDefault)),
      wins,
      meanMeasurements: rs.length ? rs.reduce((a, { r }) => a + r.measurements, 0) / rs.length : 0,
      meanSeconds: rs.length ? rs.reduce((a, { r }) => a + r.seconds, 0) / rs.length : 0,
    };
  });
}

type XAxis = 'measurements' | 't';

/** value of a best-so-far history at x (the first point's value before it). */
function bestAt(h: readonly HistoryPoint[], x: number, axis: XAxis): number {
  let v = h[0]?.bestGflops ?? 0;
  for (const p of h) {
    if (p[axis] <= x) v = p.bestGflops;
    else break;
  }
  return v;
}

/** geomean over problems of best-so-far / peak, as a step curve over the union of x points. */
export function aggregateCurve(problems: readonly CompareProblem[], searcher: string, peak: number, axis: XAxis): [number, number][] {
  const hs = problems.map((p) => p.results.find((r) => r.searcher === searcher)?.history).filter((h): h is HistoryPoint[] => !!h && h.length > 0);
  if (hs.length === 0) return [];
  const xs = [...new Set(hs.flatMap((h) => h.map((p) => p[axis])))].sort((a, b) => a - b);
  return xs.map((x) => [x, geomean(hs.map((h) => bestAt(h, x, axis) / peak))]);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
/** per-problem line plots beyond this many problems are left out (the bars and JSON keep all). */
const MAX_PROBLEM_PLOTS = 40;

export function renderCompareHtml(data: CompareData): string {
  const blas = data.blasName ?? 'OpenBLAS';
  const axis: XAxis = data.budget.measurements !== undefined ? 'measurements' : 't';
  const xLabel = axis === 'measurements' ? 'measurements' : 'seconds';
  const budgetText = Object.entries(data.budget).filter(([, v]) => v !== undefined).map(([k, v]) => `${v} ${k}`).join(', ');
  const agg: Series[] = data.searchers.map((s) => ({ name: s, points: aggregateCurve(data.problems, s, data.peakGflops, axis) }));
  if (data.openblasGeomeanFractionOfPeak) {
    const xMax = Math.max(1, ...agg.flatMap((s) => s.points.map((p) => p[0])));
    agg.push({ name: blas, points: [[0, data.openblasGeomeanFractionOfPeak], [xMax, data.openblasGeomeanFractionOfPeak]], dashed: true, color: '#000' });
  }
  const bars = barPlot(data.problems.map((p) => ({
    label: p.spec,
    values: [
      { name: 'default', value: p.defaultGflops / data.peakGflops },
      ...p.results.map((r) => ({ name: r.searcher, value: r.fractionOfPeak })),
      ...(p.openblasGflops ? [{ name: blas, value: p.openblasGflops / data.peakGflops }] : []),
    ],
  })), { title: 'best / peak per problem', yLabel: 'fraction of peak' });
  const summaryRows = data.summary.map((s) => `<tr><td>${esc(s.searcher)}</td><td>${pct(s.geomeanFractionOfPeak)}</td><td>${num(s.geomeanSpeedupOverDefault, 2)}x</td><td>${s.wins}/${data.problems.length}</td><td>${num(s.meanMeasurements)}</td><td>${num(s.meanSeconds, 2)}</td></tr>`).join('');
  const sections = data.problems.slice(0, MAX_PROBLEM_PLOTS).map((p) => {
    const series: Series[] = p.results.map((r) => ({ name: r.searcher, points: r.history.map((h) => [h[axis], h.bestGflops] as const) }));
    if (p.openblasGflops) {
      const xMax = Math.max(1e-9, ...series.flatMap((s) => s.points.map((q) => q[0])));
      series.push({ name: blas, points: [[0, p.openblasGflops], [xMax, p.openblasGflops]], dashed: true, color: '#000' });
    }
    const rows = p.results.map((r) => `<tr><td>${esc(r.searcher)}</td><td>${num(r.gflops)}</td><td>${pct(r.fractionOfPeak)}</td><td>${num(r.speedupOverDefault, 2)}x</td><td>${r.measurements} (${r.timed} timed)</td><td>${num(r.seconds, 2)}</td><td>${esc(r.stopReason)}</td><td><code>${esc(r.schedule)}</code></td></tr>`).join('');
    return `<section><h3>${esc(p.spec)}</h3><p>default ${num(p.defaultGflops)} GFLOPS${p.openblasGflops ? `, ${esc(blas)} ${num(p.openblasGflops)} GFLOPS` : ''}${p.openblasError ? ` (${esc(blas)}: ${esc(p.openblasError)})` : ''}</p>
${linePlot(series, { title: p.spec, xLabel, yLabel: 'best GFLOPS' })}
<table><tr><th>searcher</th><th>GFLOPS</th><th>of peak</th><th>vs default</th><th>measurements</th><th>seconds</th><th>stop</th><th>schedule</th></tr>${rows}</table></section>`;
  }).join('\n');
  const omitted = data.problems.length > MAX_PROBLEM_PLOTS ? `<p>${data.problems.length - MAX_PROBLEM_PLOTS} more problems are in report.json.</p>` : '';
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(data.title)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}code{font-size:12px}section{margin-top:2em}</style></head>
<body><h1>${esc(data.title)}</h1>
<table><tr><th>target</th><td>${esc(data.target)}</td></tr><tr><th>host</th><td>${esc(data.host)}</td></tr>
<tr><th>peak</th><td>${num(data.peakGflops)} GFLOPS${data.peakSource ? ` (${esc(data.peakSource)})` : ''}</td></tr>
<tr><th>budget per search</th><td>${esc(budgetText)}</td></tr><tr><th>seed</th><td>${data.seed}</td></tr>
<tr><th>problems</th><td>${data.problems.length}</td></tr><tr><th>date</th><td>${esc(data.createdAt)}</td></tr></table>
<p>Budgets charge distinct schedules per search (a cold-cache count); "timed" is how many were actually run now.</p>
<h2>Summary</h2>
<table><tr><th>searcher</th><th>geomean best/peak</th><th>geomean vs default</th><th>wins</th><th>mean measurements</th><th>mean seconds</th></tr>${summaryRows}</table>
${linePlot(agg, { title: 'geomean over problems of best / peak', xLabel, yLabel: 'fraction of peak', width: 720 })}
<h2>Per problem</h2>
${bars}
${sections}
${omitted}
</body></html>
`;
}

/** Writes `report.html` and `report.json` into `dir` (created if needed); returns their paths. */
export function writeCompareReport(dir: string, data: CompareData): { html: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const html = path.join(dir, 'report.html');
  const json = path.join(dir, 'report.json');
  writeFileSync(json, JSON.stringify(data, null, 2) + '\n');
  writeFileSync(html, renderCompareHtml(data));
  return { html, json };
}
