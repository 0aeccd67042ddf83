/**
 * The GPU results as a page: `npx tsx bench/cuda-report.ts [bench/results/cuda.json] [out.html]`
 * (default out: bench/results/cuda-report.html). Bars of looptune against cuBLAS for matmul and
 * against im2col + cuBLAS and cuDNN for the ResNet-18 layers, the searches' best-so-far curves,
 * and the tables behind them. It reads what bench/cuda.ts wrote on the GPU machine; nothing runs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { barPlot, esc, linePlot, type Series } from '../agent/report/svg.ts';

interface Search {
  measurements: number;
  seconds: number;
  history: { t: number; measurements: number; bestGflops: number }[];
}
interface Screened extends Search {
  gflops: number;
  ratio: number | null;
}
interface Kernel {
  gflops: number;
  schedule: string;
}
interface MatmulEntry {
  problem: string;
  cublas: { gflops: number } | null;
  looptune: Kernel | null;
  ratio: number | null;
  search: Search;
  screened?: Screened;
}
interface ConvEntry {
  problem: string;
  layer: string;
  baseline: { gflops: number } | null;
  cudnn?: { gflops: number; algorithm: number } | null;
  looptune: Kernel | null;
  ratio: number | null;
  ratioVsCudnn?: number | null;
  search: Search;
  screened?: Screened;
}
interface CudaResults {
  generated: string;
  device: { name: string; driverVersion: string };
  peakGflops?: number;
  fuzz?: { main: { cases: number; mismatches: number }; extra?: { cases: number; mismatches: number } };
  matmul: MatmulEntry[];
  conv: ConvEntry[];
  notes?: string[];
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);
const gf = (x: number | null | undefined) => (x === null || x === undefined ? '–' : (x / 1000).toFixed(2));

export function renderCudaReport(r: CudaResults): string {
  const tf = (x: number | undefined) => (x ?? 0) / 1000;
  const matmulBars = barPlot(r.matmul.map((m) => ({
    label: m.problem.replace('matmul ', ''),
    values: [
      { name: 'looptune (64 schedules)', value: tf(m.looptune?.gflops) },
      ...(m.screened ? [{ name: 'cost-model screened (16)', value: tf(m.screened.gflops) }] : []),
      { name: 'cuBLAS sgemm', value: tf(m.cublas?.gflops) },
    ],
  })), { title: 'fp32 matmul, TFLOPS', yLabel: 'TFLOPS' });
  const convBars = barPlot(r.conv.map((c) => ({
    label: c.layer,
    values: [
      { name: 'looptune', value: tf(c.looptune?.gflops) },
      ...(c.screened ? [{ name: 'cost-model screened', value: tf(c.screened.gflops) }] : []),
      { name: 'im2col + cuBLAS', value: tf(c.baseline?.gflops) },
      ...(c.cudnn ? [{ name: 'cuDNN (FMA math)', value: tf(c.cudnn.gflops) }] : []),
    ],
  })), { title: 'ResNet-18 conv2d layers, TFLOPS', yLabel: 'TFLOPS' });
  const curves = (entries: readonly { problem: string; search: Search; cublas?: { gflops: number } | null }[], title: string) => {
    const series: Series[] = entries.map((e) => ({ name: e.problem.replace(/^(matmul|conv2d) /, ''), points: e.search.history.map((h) => [h.measurements, h.bestGflops / 1000] as const) }));
    return linePlot(series, { title, xLabel: 'schedules measured', yLabel: 'best TFLOPS', width: 720 });
  };
  const matmulRows = r.matmul.map((m) => `<tr><td>${esc(m.problem)}</td><td>${gf(m.looptune?.gflops)}</td><td>${gf(m.cublas?.gflops)}</td><td>${pct(m.ratio)}</td><td>${m.search.measurements} in ${m.search.seconds.toFixed(1)} s</td><td>${m.screened ? `${pct(m.screened.ratio)} in ${m.screened.seconds.toFixed(1)} s (${m.screened.measurements})` : '–'}</td><td><code>${esc(m.looptune?.schedule ?? '')}</code></td></tr>`).join('');
  const convRows = r.conv.map((c) => `<tr><td>${esc(c.layer)}</td><td>${gf(c.looptune?.gflops)}</td><td>${gf(c.baseline?.gflops)}</td><td>${pct(c.ratio)}</td><td>${gf(c.cudnn?.gflops)}</td><td>${pct(c.ratioVsCudnn)}</td><td>${c.search.measurements} in ${c.search.seconds.toFixed(1)} s</td><td><code>${esc(c.looptune?.schedule ?? '')}</code></td></tr>`).join('');
  const fuzz = r.fuzz ? `${r.fuzz.main.cases + (r.fuzz.extra?.cases ?? 0)} random schedules, ${r.fuzz.main.mismatches + (r.fuzz.extra?.mismatches ?? 0)} mismatches` : 'not run';
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>looptune on ${esc(r.device.name)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}code{font-size:12px}</style></head>
<body><h1>looptune on ${esc(r.device.name)}</h1>
<p>Driver ${esc(r.device.driverVersion)}; measured FMA peak ${gf(r.peakGflops)} TFLOPS; GPU fuzz: ${esc(fuzz)}; generated ${esc(r.generated)}.
Every figure is a best-of-launches time measured beside its baseline in one process (bench/cuda.ts).</p>
<h2>Matmul</h2>
${matmulBars}
${curves(r.matmul, 'evolution on the GPU: best so far')}
<table><tr><th>problem</th><th>looptune TFLOPS</th><th>cuBLAS TFLOPS</th><th>of cuBLAS</th><th>search</th><th>screened by the cost model</th><th>schedule</th></tr>${matmulRows}</table>
<h2>Convolutions</h2>
${convBars}
${curves(r.conv.map((c) => ({ ...c, problem: c.layer })), 'evolution on the GPU: best so far')}
<table><tr><th>layer</th><th>looptune TFLOPS</th><th>im2col + cuBLAS</th><th>of it</th><th>cuDNN</th><th>of cuDNN</th><th>search</th><th>schedule</th></tr>${convRows}</table>
${r.notes?.length ? `<h2>Notes</h2><ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
</body></html>
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const input = process.argv[2] ?? 'bench/results/cuda.json';
  const output = process.argv[3] ?? 'bench/results/cuda-report.html';
  writeFileSync(output, renderCudaReport(JSON.parse(readFileSync(input, 'utf8')) as CudaResults));
  console.log(`wrote ${output}`);
}
