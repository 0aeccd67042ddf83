/**
 * Real layers against ONNX Runtime (issue #16): every distinct conv of ResNet-18, ResNet-50 and
 * MobileNetV2 as the networks have them (padding, folded batch norm as +bias, +relu/+relu6 and the
 * skip connections' +residual fused: env/datasets.ts *-layers) and their pools, on 1 and 2
 * threads. Per layer: `tune` at its default budget (shipped policy and cost model, no records),
 * then looptune and onnxruntime-node (the same layer as an ONNX graph: Conv with pads and bias,
 * then Relu/Clip/Add, which ORT's optimizer fuses; weights as initializers) re-timed in
 * alternating rounds, best of three. looptune's kernel reads the padded input from storage (what a
 * model executor keeping padded layouts passes); the cost section below measures what padding and
 * epilogues cost. Writes bench/results/layers.json and layers.html.
 *
 * Layouts, chosen by measurement: every conv and pool is also tuned in the blocked NCHWc layout
 * (c = the target's vector lanes: ir/layout.ts); standalone it pays for converting its input to
 * NCHWc and its output back (both timed), in a model that keeps the layout between layers it does
 * not. `looptune<T>` is the faster of NCHW and blocked-with-conversions, `looptuneKeptLayout<T>`
 * the faster of NCHW and blocked alone.
 *
 * The cost section: on 1 thread, the same schedule on the layer without padding (pre-padded
 * input), with padding, and with each epilogue, GFLOPS side by side; and the copy compileKernel
 * makes when a caller passes a padded tensor unpadded (microseconds per call, against the call).
 *
 *   npm run bench -- layers [--quick] [--cost-only]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { compileKernel } from '../agent/compile-kernel.ts';
import { tune } from '../agent/tune.ts';
import { randomArray } from '../ir/interpret.ts';
import { dataShape, elementCount, type Problem } from '../ir/problem.ts';
import { blockedVariant, fromBlocked, toBlocked } from '../ir/layout.ts';
import { Schedule } from '../ir/schedule.ts';
import type { Device } from '../targets/backend.ts';
import { barPlot } from '../agent/report/svg.ts';
import { splitEntries } from '../env/datasets.ts';
import { parseProblem } from '../ir/spec.ts';
import { flops } from '../ir/problem.ts';
import { backend } from '../targets/registry.ts';
import { hostIsa, hostTarget } from '../targets/runtime/host.ts';
import { timeOnnxRuntime } from './peers/onnxruntime.ts';
import { bestMicrosPerCall } from './micros-per-call.ts';

const DATASETS = ['resnet18-layers', 'resnet50-layers', 'mobilenetv2-layers', 'real-pools'];
const ROUNDS = 3;

/** Layers whose padding and epilogues are costed: the plain layer first, then its variants. */
const COST_FAMILIES: { name: string; variants: string[] }[] = [
  {
    name: 'ResNet 3x3, 56x56, 64 channels',
    variants: [
      'conv2d n1 c64 h58 w58 k64 r3 s3 stride1',
      'conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1',
      'conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 +bias +relu',
      'conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 +bias +residual +relu',
    ],
  },
  {
    name: 'MobileNetV2 depthwise 3x3, 56x56, 144 channels',
    variants: [
      'conv2d n1 c144 h58 w58 k144 r3 s3 stride1 groups144',
      'conv2d n1 c144 h56 w56 k144 r3 s3 stride1 groups144 pad1',
      'conv2d n1 c144 h56 w56 k144 r3 s3 stride1 groups144 pad1 +bias +relu6',
    ],
  },
  {
    name: 'BERT-base FFN up, sequence 128',
    variants: ['matmul 128x3072x768', 'matmul 128x3072x768 +bias', 'matmul 128x3072x768 +bias +gelu', 'matmul 128x3072x768 +bias +sigmoid'],
  },
];

/** The layout conversions a blocked layer needs standalone: its input to NCHWc, its output back (weights are packed once, at load). */
function conversionKernels(problem: Problem, B: number, b: ReturnType<typeof backend>) {
  const input = dataShape(problem.tensors[1]!), output = dataShape(problem.tensors[0]!);
  return [toBlocked(input, B), fromBlocked(output, B)].map((p) => b.compile(Schedule.initial(p), { overwrite: true }));
}

/** Microseconds per compileKernel run of `schedule`, with padded tensors passed as their data (copied) or as storage (zero-copy). */
async function paddingCopyMicros(problem: Problem, schedule: Schedule, target: string): Promise<{ storage: number; data: number }> {
  const k = await compileKernel(problem, { target, schedule, threads: 1 });
  try {
    const storage = problem.tensors.slice(1).map((t, i) => randomArray(elementCount(t), i + 1));
    const data = problem.tensors.slice(1).map((t, i) => randomArray(elementCount({ name: t.name, shape: dataShape(t) }), i + 1));
    const out = new Float32Array(elementCount(problem.tensors[0]!));
    const per = (inputs: Float32Array[]) => bestMicrosPerCall(() => k.run(inputs, out), { warmup: 3, rounds: 5, calls: 20 });
    return { storage: per(storage), data: per(data) };
  } finally {
    k.dispose();
  }
}

/** The cost of padding and epilogues: every variant of a family timed with the plain layer's tuned schedule, 1 thread. */
async function costOfPaddingAndEpilogues(device: Device, target: string): Promise<Record<string, unknown>[]> {
  const b = backend(target);
  const out: Record<string, unknown>[] = [];
  for (const family of COST_FAMILIES) {
    const plain = parseProblem(family.variants[0]!);
    const tuned = await tune(plain, { target: b, device, noRecords: true, seed: 0 });
    for (const spec of family.variants) {
      const problem = parseProblem(spec);
      const schedule = Schedule.parse(problem, tuned.schedule);
      const kernel = b.compile(schedule, { overwrite: true });
      let ours = 0, ort = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const t = await device.time(kernel, { minSeconds: 0.1, threads: 1 });
        if (t.ok) ours = Math.max(ours, t.gflops);
        ort = Math.max(ort, (await timeOnnxRuntime(problem, { threads: 1, minSeconds: 0.1 })).gflops);
      }
      const padded = problem.tensors.some((t) => t.pad);
      const copy = padded ? await paddingCopyMicros(problem, schedule, target) : undefined;
      out.push({ family: family.name, spec, schedule: tuned.schedule, looptune: ours, onnxruntime: ort, ...(copy ? { runMicrosStorage: copy.storage, runMicrosData: copy.data } : {}) });
      console.log(`  ${spec.padEnd(66)} ${ours.toFixed(0)} GFLOPS (ORT ${ort.toFixed(0)})${copy ? `; run ${copy.storage.toFixed(0)} us on padded storage, ${copy.data.toFixed(0)} us on unpadded data` : ''}`);
    }
  }
  return out;
}

export async function benchLayers(opts: { quick?: boolean; costOnly?: boolean } = {}): Promise<object> {
  const target = hostTarget();
  const b = backend(target);
  if (opts.costOnly) {
    // only the cost of padding and epilogues: bench/results/layers-cost.json
    const device = await b.open({ threads: 1, timeoutSeconds: 60 });
    try {
      const cost = await costOfPaddingAndEpilogues(device, target);
      mkdirSync('bench/results', { recursive: true });
      writeFileSync('bench/results/layers-cost.json', JSON.stringify({ target, host: hostIsa().model, date: new Date().toISOString(), cost }, null, 2) + '\n');
      return cost;
    } finally {
      await device.close();
    }
  }
  const seen = new Set<string>();
  const layers = DATASETS.flatMap((d) => splitEntries(d).map((e) => ({ dataset: d, name: e.name, spec: e.spec })))
    .filter((l) => (seen.has(l.spec) ? false : (seen.add(l.spec), true)));
  const chosen = opts.quick ? layers.filter((_, i) => i % 12 === 0) : layers;
  const devices = { 1: await b.open({ threads: 1, timeoutSeconds: 60 }), 2: await b.open({ threads: 2, timeoutSeconds: 60 }) } as const;
  const rows: Record<string, unknown>[] = [];
  let cost: Record<string, unknown>[] = [];
  let peak1 = NaN;
  try {
    peak1 = (await devices[1].peak()).gflops;
    for (const layer of chosen) {
      const problem = parseProblem(layer.spec);
      const row: Record<string, unknown> = { ...layer, flops: flops(problem) };
      for (const threads of [1, 2] as const) {
        const device = devices[threads];
        const r = await tune(problem, { target: b, device, noRecords: true, seed: 0 });
        // the blocked layout (NCHWc, one vector of channels innermost), tuned the same way
        const blockedProblem = blockedVariant(problem, b.caps.vectorLanes);
        const blocked = blockedProblem ? await tune(blockedProblem, { target: b, device, noRecords: true, seed: 0 }) : undefined;
        const conversions = blockedProblem ? conversionKernels(problem, b.caps.vectorLanes, b) : [];
        let ours = 0, ort = 0, oursBlocked = 0, conversionSeconds = Infinity;
        for (let round = 0; round < ROUNDS; round++) {
          const t = await device.time(r.kernel, { minSeconds: 0.1, threads: r.threads });
          if (t.ok) ours = Math.max(ours, t.gflops);
          if (blocked) {
            const tb = await device.time(blocked.kernel, { minSeconds: 0.1, threads: blocked.threads });
            if (tb.ok) oursBlocked = Math.max(oursBlocked, tb.gflops);
            let sum = 0;
            for (const k of conversions) {
              const tc = await device.time(k, { minSeconds: 0.05, threads: 1 });
              sum += tc.ok ? tc.bestSeconds : Infinity;
            }
            conversionSeconds = Math.min(conversionSeconds, sum);
          }
          ort = Math.max(ort, (await timeOnnxRuntime(problem, { threads, minSeconds: 0.1 })).gflops);
        }
        // standalone, a blocked kernel pays for converting its input and output; in a model that keeps
        // the layout between layers it does not: both choices, each by measurement
        const f = flops(problem);
        const blockedStandalone = blocked ? f / (f / (oursBlocked * 1e9) + conversionSeconds) / 1e9 : 0;
        const standalone = Math.max(ours, blockedStandalone);
        const kept = Math.max(ours, oursBlocked);
        Object.assign(row, {
          [`schedule${threads}`]: r.schedule, [`nchw${threads}`]: ours,
          ...(blocked ? { [`blockedSchedule${threads}`]: blocked.schedule, [`blocked${threads}`]: oursBlocked, [`conversionMicros${threads}`]: conversionSeconds * 1e6 } : {}),
          [`layout${threads}`]: standalone === ours ? 'nchw' : `nchw${b.caps.vectorLanes}c`,
          [`looptune${threads}`]: standalone, [`looptuneKeptLayout${threads}`]: kept,
          [`onnxruntime${threads}`]: ort, [`ratio${threads}`]: standalone / ort, [`ratioKeptLayout${threads}`]: kept / ort,
          [`tuneSeconds${threads}`]: r.seconds + (blocked?.seconds ?? 0),
        });
      }
      row.percentOfPeak1 = (100 * (row.looptune1 as number)) / peak1;
      rows.push(row);
      console.log(`${String(layer.name).padEnd(22)} ${layer.spec.padEnd(66)} 1 thread ${(row.looptune1 as number).toFixed(0)} vs ${(row.onnxruntime1 as number).toFixed(0)} (${(row.ratio1 as number).toFixed(2)}x); 2 threads ${(row.looptune2 as number).toFixed(0)} vs ${(row.onnxruntime2 as number).toFixed(0)} (${(row.ratio2 as number).toFixed(2)}x)`);
    }
    console.log('the cost of padding and epilogues (1 thread, the plain layer\'s schedule):');
    cost = await costOfPaddingAndEpilogues(devices[1], target);
  } finally {
    await Promise.all([devices[1].close(), devices[2].close()]);
  }
  const ratios = (k: string) => rows.map((r) => r[k] as number);
  const summary = {
    layers: rows.length,
    atLeastOnnxruntime1: ratios('ratio1').filter((x) => x >= 1).length,
    atLeastOnnxruntime2: ratios('ratio2').filter((x) => x >= 1).length,
    atLeastOnnxruntimeKeptLayout1: ratios('ratioKeptLayout1').filter((x) => x >= 1).length,
    atLeastOnnxruntimeKeptLayout2: ratios('ratioKeptLayout2').filter((x) => x >= 1).length,
    blockedChosen1: rows.filter((r) => r.layout1 !== 'nchw').length,
    blockedChosen2: rows.filter((r) => r.layout2 !== 'nchw').length,
    minRatio1: Math.min(...ratios('ratio1')), minRatio2: Math.min(...ratios('ratio2')),
    peakGflops1: peak1,
    /** ResNet's 3x3 convs at 1 thread, % of the FMA peak (goal >= 95) */
    resnet3x3PercentOfPeak1: rows.filter((r) => String(r.dataset).startsWith('resnet') && String(r.spec).startsWith('conv2d') && / r3 s3 /.test(String(r.spec)) && !/ c3 /.test(String(r.spec)))
      .map((r) => ({ spec: r.spec, percent: r.percentOfPeak1 })),
  };
  console.log(JSON.stringify(summary, null, 2));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/layers.json', JSON.stringify({ target, host: hostIsa().model, date: new Date().toISOString(), summary, rows, cost }, null, 2) + '\n');
  const plot = (threads: 1 | 2) => barPlot(rows.map((r) => ({
    label: `${r.dataset as string}:${r.name as string}`,
    values: [{ name: 'looptune', value: r[`looptune${threads}`] as number }, { name: 'ONNX Runtime', value: r[`onnxruntime${threads}`] as number }],
  })), { title: `layers, ${threads} thread${threads > 1 ? 's' : ''}`, yLabel: 'GFLOPS' });
  const costPlot = barPlot(cost.map((r) => ({
    label: String(r.spec),
    values: [{ name: 'looptune', value: r.looptune as number }, { name: 'ONNX Runtime', value: r.onnxruntime as number }],
  })), { title: 'the cost of padding and epilogues, 1 thread (same schedule per family)', yLabel: 'GFLOPS' });
  writeFileSync('bench/results/layers.html', `<!doctype html><meta charset="utf-8"><title>looptune layers</title>${plot(1)}<br>${plot(2)}<br>${costPlot}\n`);
  return summary;
}
