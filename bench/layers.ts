/**
 * Real layers against ONNX Runtime (issue #16): every distinct conv of ResNet-18, ResNet-50 and
 * MobileNetV2, and the max pools of the pooling dataset (env/datasets.ts: padded input sizes, since
 * padding is not in the IR yet), on 1 and 2 threads. Per layer: `tune` at its default budget (shipped policy and cost model, no records),
 * then looptune and onnxruntime-node (the same layer as one ONNX Conv node, weights as an
 * initializer, group and dilation set) re-timed in alternating rounds, best of three. Writes
 * bench/results/layers.json and layers.html (GFLOPS per layer, both thread counts).
 *
 *   npm run bench -- layers [--quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tune } from '../agent/tune.ts';
import { barPlot } from '../agent/report/svg.ts';
import { splitEntries } from '../env/datasets.ts';
import { parseProblem } from '../ir/spec.ts';
import { flops } from '../ir/problem.ts';
import { backend } from '../targets/registry.ts';
import { hostIsa, hostTarget } from '../targets/runtime/host.ts';
import { timeOnnxRuntime } from './peers/onnxruntime.ts';

const DATASETS = ['resnet18-conv2d', 'resnet50-conv2d', 'mobilenetv2-conv2d', 'pooling'];
const ROUNDS = 3;

export async function benchLayers(opts: { quick?: boolean } = {}): Promise<object> {
  const target = hostTarget();
  const b = backend(target);
  const seen = new Set<string>();
  const layers = DATASETS.flatMap((d) => splitEntries(d).map((e) => ({ dataset: d, name: e.name, spec: e.spec })))
    .filter((l) => (seen.has(l.spec) ? false : (seen.add(l.spec), true)));
  const chosen = opts.quick ? layers.filter((_, i) => i % 12 === 0) : layers;
  const devices = { 1: await b.open({ threads: 1, timeoutSeconds: 60 }), 2: await b.open({ threads: 2, timeoutSeconds: 60 }) } as const;
  const rows: Record<string, unknown>[] = [];
  try {
    for (const layer of chosen) {
      const problem = parseProblem(layer.spec);
      const row: Record<string, unknown> = { ...layer, flops: flops(problem) };
      for (const threads of [1, 2] as const) {
        const device = devices[threads];
        const r = await tune(problem, { target: b, device, noRecords: true, seed: 0 });
        let ours = 0, ort = 0;
        for (let round = 0; round < ROUNDS; round++) {
          const t = await device.time(r.kernel, { minSeconds: 0.1, threads: r.threads });
          if (t.ok) ours = Math.max(ours, t.gflops);
          ort = Math.max(ort, (await timeOnnxRuntime(problem, { threads, minSeconds: 0.1 })).gflops);
        }
        Object.assign(row, { [`schedule${threads}`]: r.schedule, [`looptune${threads}`]: ours, [`onnxruntime${threads}`]: ort, [`ratio${threads}`]: ours / ort, [`tuneSeconds${threads}`]: r.seconds });
      }
      rows.push(row);
      console.log(`${String(layer.name).padEnd(22)} ${layer.spec.padEnd(52)} 1 thread ${(row.looptune1 as number).toFixed(0)} vs ${(row.onnxruntime1 as number).toFixed(0)} (${(row.ratio1 as number).toFixed(2)}x); 2 threads ${(row.looptune2 as number).toFixed(0)} vs ${(row.onnxruntime2 as number).toFixed(0)} (${(row.ratio2 as number).toFixed(2)}x)`);
    }
  } finally {
    await Promise.all([devices[1].close(), devices[2].close()]);
  }
  const ratios = (k: string) => rows.map((r) => r[k] as number);
  const summary = {
    layers: rows.length,
    atLeastOnnxruntime1: ratios('ratio1').filter((x) => x >= 1).length,
    atLeastOnnxruntime2: ratios('ratio2').filter((x) => x >= 1).length,
    minRatio1: Math.min(...ratios('ratio1')), minRatio2: Math.min(...ratios('ratio2')),
  };
  console.log(JSON.stringify(summary, null, 2));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/layers.json', JSON.stringify({ target, host: hostIsa().model, date: new Date().toISOString(), summary, rows }, null, 2) + '\n');
  const plot = (threads: 1 | 2) => barPlot(rows.map((r) => ({
    label: `${r.dataset as string}:${r.name as string}`,
    values: [{ name: 'looptune', value: r[`looptune${threads}`] as number }, { name: 'ONNX Runtime', value: r[`onnxruntime${threads}`] as number }],
  })), { title: `layers, ${threads} thread${threads > 1 ? 's' : ''}`, yLabel: 'GFLOPS' });
  writeFileSync('bench/results/layers.html', `<!doctype html><meta charset="utf-8"><title>looptune layers</title>${plot(1)}<br>${plot(2)}\n`);
  return summary;
}
