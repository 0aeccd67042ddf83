/**
 * Multi-core kernels (issue #15): looptune on 2 threads against itself on 1, against ONNX Runtime
 * (onnxruntime-node, MLAS, intra-op threads 1 and 2, weights as constant initializers) and against
 * OpenBLAS sgemm on the same thread counts, side by side in one run. For each problem, tune finds a
 * kernel on 1 thread and one on 2 (shipped policy and cost model, default budget, no records); then
 * every figure is re-timed in rounds that alternate the contenders, best of the rounds, so a busy
 * moment of the machine hits all of them. Also: the 1- and 2-core peaks and libgomp's fork-join,
 * and `tune "matmul 1024x1024x1024"` at 2 threads (the issue's <= 2 s figure). Writes
 * bench/results/parallel.json.
 *
 *   npm run bench -- parallel [--quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tune, type TuneResult } from '../agent/tune.ts';
import { splitEntries } from '../env/datasets.ts';
import { flops } from '../ir/problem.ts';
import { parseProblem } from '../ir/spec.ts';
import type { Device } from '../targets/backend.ts';
import { backend } from '../targets/registry.ts';
import { hostIsa, hostTarget } from '../targets/runtime/host.ts';
import { MeasurementPool } from '../targets/runtime/measure.ts';
import { forkJoinSeconds, peakRecord } from '../targets/runtime/peak.ts';
import { timeOnnxRuntime } from './peers/onnxruntime.ts';

const MATMULS = ['matmul 256x256x256', 'matmul 512x512x512', 'matmul 1024x1024x1024', 'matmul 2048x2048x2048', 'matmul 200x136x248'];
/** the goal applies to problems of at least this many flops */
const GOAL_FLOPS = 1e8;
const GOAL_SPEEDUP = 1.85;
const ROUNDS = 3;

interface Contender {
  name: string;
  time(): Promise<number>;
}

/** Best GFLOPS of each contender over ROUNDS rounds that alternate them. */
async function alternate(contenders: Contender[]): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of contenders) {
      try {
        best[c.name] = Math.max(best[c.name] ?? 0, await c.time());
      } catch (e) {
        console.log(`  ${c.name}: ${e instanceof Error ? e.message : String(e)}`);
        best[c.name] ??= 0;
      }
    }
  }
  return best;
}

async function kernelGflops(device: Device, r: TuneResult, threads: number): Promise<number> {
  const t = await device.time(r.kernel, { minSeconds: 0.2, threads });
  if (!t.ok) throw new Error(t.error);
  return t.gflops;
}

export async function benchParallel(opts: { quick?: boolean } = {}): Promise<object> {
  const target = hostTarget();
  const b = backend(target);
  const convs = splitEntries('resnet18-conv2d').filter((e) => / r3 s3 /.test(e.spec)).map((e) => e.spec);
  const problems = opts.quick ? ['matmul 256x256x256', convs[0]!] : [...MATMULS, ...convs];
  const pool = new MeasurementPool();
  const one = await b.open({ threads: 1, timeoutSeconds: 60 });
  const two = await b.open({ threads: 2, timeoutSeconds: 60 });
  const rows: Record<string, unknown>[] = [];
  let tune1024: Record<string, unknown> | undefined;
  try {
    const peak1 = await peakRecord(target, { fresh: true, pool });
    const peak2 = await peakRecord(target, { fresh: true, pool, threads: 2 });
    const forkJoinMicros = (await forkJoinSeconds(pool, 2)) * 1e6;
    console.log(`peak: ${peak1.gflops.toFixed(1)} GFLOPS on 1 core, ${peak2.gflops.toFixed(1)} on 2 (${(peak2.gflops / peak1.gflops).toFixed(2)}x); fork-join ${forkJoinMicros.toFixed(1)} us`);
    for (const spec of problems) {
      const problem = parseProblem(spec);
      const r1 = await tune(problem, { target: b, device: one, noRecords: true, seed: 0 });
      const r2 = await tune(problem, { target: b, device: two, noRecords: true, seed: 0 });
      const blas = b.baselineFamily && one.baseline?.coverage(problem) === undefined;
      const contenders: Contender[] = [
        { name: 'looptune1', time: () => kernelGflops(one, r1, 1) },
        { name: 'looptune2', time: () => kernelGflops(two, r2, r2.threads) },
        { name: 'onnxruntime1', time: async () => (await timeOnnxRuntime(problem, { threads: 1, minSeconds: 0.2 })).gflops },
        { name: 'onnxruntime2', time: async () => (await timeOnnxRuntime(problem, { threads: 2, minSeconds: 0.2 })).gflops },
        ...(blas ? [
          { name: 'openblas1', time: async () => { const o = await one.baseline!.time(problem, { minSeconds: 0.2 }); if (!o.ok) throw new Error(o.error); return o.gflops; } },
          { name: 'openblas2', time: async () => { const o = await two.baseline!.time(problem, { minSeconds: 0.2 }); if (!o.ok) throw new Error(o.error); return o.gflops; } },
        ] : []),
      ];
      const g = await alternate(contenders);
      const row = {
        problem: spec, flops: flops(problem),
        schedule1: r1.schedule, schedule2: r2.schedule, threads2: r2.threads, verified: r1.verified && r2.verified,
        tuneSeconds1: r1.seconds, tuneSeconds2: r2.seconds, ...g,
        speedup: g.looptune2! / g.looptune1!,
        vsOnnxruntime2: g.looptune2! / g.onnxruntime2!,
        onnxruntimeSpeedup: g.onnxruntime2! / g.onnxruntime1!,
        ...(blas ? { vsOpenblas2: g.looptune2! / g.openblas2! } : {}),
        percentOfPeak2: (100 * g.looptune2!) / peak2.gflops,
      };
      rows.push(row);
      console.log(`${spec.padEnd(42)} 1 thread ${g.looptune1!.toFixed(0)}, 2 threads ${g.looptune2!.toFixed(0)} GFLOPS (${row.speedup.toFixed(2)}x); ONNX Runtime ${g.onnxruntime1!.toFixed(0)} / ${g.onnxruntime2!.toFixed(0)} -> ${row.vsOnnxruntime2.toFixed(2)}x${blas ? `; OpenBLAS ${g.openblas1!.toFixed(0)} / ${g.openblas2!.toFixed(0)} -> ${(row as { vsOpenblas2: number }).vsOpenblas2.toFixed(2)}x` : ''}`);
    }
    // the issue's inference-time figure: tune 1024^3 on 2 threads with the shipped policy, as a user would
    const r = await tune('matmul 1024x1024x1024', { target: b, device: two, noRecords: true, seed: 1, compareBaseline: true });
    const ort2 = await timeOnnxRuntime(parseProblem('matmul 1024x1024x1024'), { threads: 2, minSeconds: 0.3 });
    tune1024 = {
      seconds: r.seconds, gflops: r.gflops, threads: r.threads, schedule: r.schedule, verified: r.verified,
      onnxruntime2: ort2.gflops, vsOnnxruntime2: r.gflops / ort2.gflops,
      openblas2: r.baseline?.gflops, vsOpenblas2: r.baseline ? r.gflops / r.baseline.gflops : undefined,
    };
    console.log(`tune matmul 1024^3 on 2 threads: ${r.seconds.toFixed(2)} s, ${r.gflops.toFixed(0)} GFLOPS = ${(r.gflops / ort2.gflops).toFixed(2)}x ONNX Runtime, ${r.baseline ? (r.gflops / r.baseline.gflops).toFixed(2) : '-'}x OpenBLAS (2 threads each)`);
    const big = rows.filter((x) => (x.flops as number) >= GOAL_FLOPS);
    const summary = {
      peak1: peak1.gflops, peak2: peak2.gflops, forkJoinMicros,
      problemsAtGoalSize: big.length,
      speedupGoalMet: big.filter((x) => (x.speedup as number) >= GOAL_SPEEDUP).length,
      minSpeedup: Math.min(...big.map((x) => x.speedup as number)),
      onnxruntimeGoalMet: rows.filter((x) => (x.vsOnnxruntime2 as number) >= 1).length,
      minVsOnnxruntime2: Math.min(...rows.map((x) => x.vsOnnxruntime2 as number)),
      tune1024,
    };
    console.log(JSON.stringify(summary, null, 2));
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/parallel.json', JSON.stringify({ target, host: hostIsa().model, date: new Date().toISOString(), summary, rows }, null, 2) + '\n');
    return summary;
  } finally {
    await Promise.all([one.close(), two.close(), pool.close()]);
  }
}
