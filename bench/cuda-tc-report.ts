/**
 * The tensor-core results as a page (issue #18): `npx tsx bench/cuda-tc-report.ts [out.html]`
 * (default bench/results/cuda-tc-report.html). It reads what the GPU machine wrote, nothing runs:
 *   bench/results/cuda-tc-h100-before-launch-fix.json  typed matmuls vs cublasGemmEx, Triton merged (tc.sh bench --peers; H100, small shapes host-bound)
 *   bench/results/cuda-tc-wgmma.json       an earlier run (H200) and its Triton peer, cuda-tc-triton.json, where that file is missing
 *   bench/results/cuda-tc-conv.json        ResNet-50 convs vs cuDNN's legacy API (tc.sh conv)
 *   bench/results/cuda-tc-conv-torch.json  the PyTorch/cuDNN peer (bench/peers/torch-conv.py)
 * Bars of TFLOPS per problem and the tables of ratios behind them.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { barPlot, esc, type BarGroup } from '../agent/report/svg.ts';

interface MatmulProblem {
  problem: string;
  looptune: { kernel: string; schedule: string; stages: number; gflops: number } | null;
  cublas: { gflops: number } | null;
  tuningSeconds: number;
  /** the Triton peer merged by tc.sh bench --peers */
  triton?: { gflops: number };
}
interface MatmulRun { problems: MatmulProblem[] }
interface ConvLayer {
  problem: string;
  window: string;
  looptune: { schedule: string; stages: number; gflops: number } | null;
  check: { ok: boolean } | null;
  cudnn: { library: string; gflops: number; algorithm: number } | null;
  tuningSeconds: number;
  candidates: number;
}
interface PeerResults { results: { spec: string; tflops: number }[] }

const DIR = 'bench/results';

function read<T>(name: string): T | null {
  const f = `${DIR}/${name}`;
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as T) : null;
}

const tf = (gflops: number | undefined | null) => (gflops === undefined || gflops === null ? '-' : (gflops / 1e3).toFixed(1));
const ratio = (a: number | undefined | null, b: number | undefined | null) => (a && b ? (a / b).toFixed(2) : '-');
const short = (spec: string) => spec.replace(/^matmul /, '').replace(/^conv2d n\d+ /, '').replace(/ stride1/, '').replace(/ nhwc/, '');

export function renderTensorCoreReport(): string {
  const latest = read<MatmulRun & { device?: { name: string } }>('cuda-tc-h100-before-launch-fix.json');
  const wg = read<{ square?: MatmulRun; bert?: MatmulRun; date?: string }>('cuda-tc-wgmma.json');
  const useLatest = (latest?.problems ?? []).length > 0;
  const matmuls = useLatest ? latest!.problems : [...(wg?.square?.problems ?? []), ...(wg?.bert?.problems ?? [])];
  const triton = useLatest
    ? new Map(matmuls.filter((p) => p.triton).map((p) => [p.problem, p.triton!.gflops]))
    : new Map((read<PeerResults>('cuda-tc-triton.json')?.results ?? []).map((r) => [r.spec, r.tflops * 1e3]));
  const matmulDevice = useLatest ? latest!.device?.name ?? 'GPU' : 'NVIDIA H200';
  const conv = read<{ cudnn: string | null; date: string; layers: ConvLayer[] }>('cuda-tc-conv.json');
  const torchConv = read<PeerResults & { torch?: string; cudnn?: number }>('cuda-tc-conv-torch.json');
  const torch = new Map((torchConv?.results ?? []).map((r) => [r.spec, r.tflops * 1e3]));

  /** one problem's bars in TFLOPS: the figures that exist, GFLOPS in */
  const bars = (problem: string, figures: [string, number | null | undefined][]): BarGroup => ({
    label: short(problem),
    values: figures.filter((f): f is [string, number] => typeof f[1] === 'number').map(([name, gflops]) => ({ name, value: gflops / 1e3 })),
  });
  const matmulBars = matmuls.map((p) => bars(p.problem, [['looptune', p.looptune?.gflops ?? 0], ['cuBLAS', p.cublas?.gflops ?? 0], ['Triton', triton.get(p.problem)]]));
  const layers = conv?.layers ?? [];
  const convBars = layers.map((l) => bars(l.problem, [['looptune', l.looptune?.gflops ?? 0], ['cuDNN legacy API', l.cudnn?.gflops ?? 0], ['PyTorch (cuDNN v9)', torch.get(l.problem)]]));
  const matmulRows = matmuls.map((p) => `<tr><td>${esc(p.problem)}</td><td>${tf(p.looptune?.gflops)}</td><td>${tf(p.cublas?.gflops)}</td><td>${ratio(p.looptune?.gflops, p.cublas?.gflops)}</td><td>${tf(triton.get(p.problem))}</td><td>${ratio(p.looptune?.gflops, triton.get(p.problem))}</td><td>${esc(p.looptune?.kernel ?? '-')} x${p.looptune?.stages ?? '-'}</td><td>${p.tuningSeconds.toFixed(1)}</td></tr>`).join('\n');
  const convRows = layers.map((l) => `<tr><td>${esc(l.problem)}</td><td>${l.window}</td><td>${tf(l.looptune?.gflops)}</td><td>${l.check?.ok ? 'yes' : 'no'}</td><td>${tf(l.cudnn?.gflops)}</td><td>${ratio(l.looptune?.gflops, l.cudnn?.gflops)}</td><td>${tf(torch.get(l.problem))}</td><td>${ratio(l.looptune?.gflops, torch.get(l.problem))}</td><td><code>${esc(l.looptune?.schedule ?? '-')}</code> x${l.looptune?.stages ?? '-'}</td><td>${l.candidates} in ${l.tuningSeconds.toFixed(1)} s</td></tr>`).join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>looptune tensor cores</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}code{font-size:11px}</style></head>
<body><h1>looptune on tensor cores</h1>
<h2>Typed matmuls (${esc(matmulDevice)})</h2><p>Best tile point x pipeline depth of the wgmma and mma.sync tables (split-k twins for small grids), checked on the GPU, against cublasGemmEx at the same precision in the same process, and Triton's autotuned kernel (a separate run on the same GPU). Timed before the launch fix: the small (BERT) shapes read the host's ~18 us per launch, not their kernels.</p>
${barPlot(matmulBars, { title: 'matmul TFLOPS', yLabel: 'TFLOPS', height: 320 })}
<table><tr><th>problem</th><th>looptune TFLOPS</th><th>cuBLAS</th><th>ratio</th><th>Triton</th><th>ratio to Triton</th><th>kernel</th><th>sweep s</th></tr>
${matmulRows}</table>
<h2>ResNet-50 convolutions, bf16, batch 32, channels last (NVIDIA H200)</h2><p>looptune's implicit-GEMM wgmma kernels (fp32 output, accumulating) against cuDNN ${esc(conv?.cudnn ?? '')} through its legacy API (cudnnFindConvolutionForwardAlgorithm's fastest, tensor-op math, bf16 output) in the same process, and PyTorch ${esc(torchConv?.torch ?? '')} F.conv2d (cuDNN ${torchConv?.cudnn ?? ''} engines, cudnn.benchmark) in a separate run on the same GPU. Sweep times are with the driver's JIT cache filled beforehand.</p>
${barPlot(convBars, { title: 'conv TFLOPS', yLabel: 'TFLOPS', height: 320 })}
<table><tr><th>layer</th><th>window</th><th>looptune TFLOPS</th><th>checked</th><th>cuDNN legacy</th><th>ratio</th><th>PyTorch</th><th>ratio to PyTorch</th><th>tile</th><th>sweep</th></tr>
${convRows}</table>
</body></html>
`;
}

const out = process.argv[2] ?? `${DIR}/cuda-tc-report.html`;
writeFileSync(out, renderTensorCoreReport());
console.error(`wrote ${out}`);
