/**
 * Code generator benchmark (issue 3): how fast schedules become machine code, and how fast that
 * code runs against the measured FMA peak and OpenBLAS, side by side in one run.
 * Writes bench/results/codegen.json.
 *
 *   npm run bench -- codegen [--quick]
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { parseProblem } from '../ir/spec.ts';
import { Schedule } from '../ir/schedule.ts';
import { Rng, randomSchedule } from '../ir/random.ts';
import { compileSchedule, backend } from '../targets/registry.ts';
import { x86Device } from '../targets/x86/device.ts';
import { X86_NOMINAL_PEAK } from '../targets/x86/backend.ts';
import { peakRecord } from '../targets/runtime/peak.ts';
import { hostIsa } from '../targets/runtime/host.ts';
import { verifyKernel } from '../targets/verify.ts';
import { gemmCandidates } from './gemm-candidates.ts';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Median microseconds from schedule to executable bytes, per schedule, after warm-up (600 kernels). */
function codegenSpeed(target: string): { schedules: { schedule: string; medianMicros: number; bytes: number; ops: number }[]; medianMicros: number } {
  const p = parseProblem('matmul 256x256x256');
  const t = backend(target);
  const rng = new Rng(256);
  const schedules = [
    ...['m:64 n:4 k:256 m:4 n:64', 'm:42r4 n:4 k:256 m:6 n:64', 'n:8 m:64 k:256 m:4 n:32', 'k:2 m:42r4 n:4 k:128 m:6 n:64', 'm:256 n:256 k:256']
      .map((x) => Schedule.parse(p, x)),
    ...Array.from({ length: 15 }, () => randomSchedule(p, rng, 16)),
  ];
  // steady state, as in a search: the generator's code is JIT-optimized after a few hundred kernels
  for (let round = 0; round < 30; round++) for (const s of schedules) compileSchedule(s, t);
  const rows = schedules.map((s) => {
    const xs = Array.from({ length: 50 }, () => compileSchedule(s, t).codegenMicros);
    const k = compileSchedule(s, t);
    return { schedule: s.text(), medianMicros: median(xs), bytes: k.code.length, ops: k.program.decision.unrolledOps };
  });
  return { schedules: rows, medianMicros: median(rows.map((r) => r.medianMicros)) };
}

const SHAPES = ['64x64x64', '128x128x128', '256x256x256', '512x512x512', '1024x1024x1024', '100x60x70', '200x136x248', '67x45x33'];

export async function benchCodegen(opts: { quick?: boolean } = {}): Promise<object> {
  const isa = hostIsa();
  const targets = (['avx512', 'avx2'] as const).filter((t) => isa[t]);
  const result: Record<string, unknown> = { host: isa.model, date: new Date().toISOString(), targets: {} };
  for (const target of targets) {
    const exec = x86Device(target, X86_NOMINAL_PEAK[target], { timeoutSeconds: 60 });
    // AVX2 rows are also put next to OpenBLAS pinned to its AVX2 (Haswell) kernels: the same ISA
    const avx2Blas = target === 'avx2' ? x86Device('avx2', X86_NOMINAL_PEAK.avx2, { openblasCoretype: 'Haswell' }) : null;
    try {
      const peak = await peakRecord(target, { fresh: true });
      console.log(`${target}: peak ${peak.gflops.toFixed(1)} GFLOPS (${peak.chains} chains)`);
      const speed = codegenSpeed(target);
      console.log(`${target}: codegen median ${speed.medianMicros.toFixed(1)} us over ${speed.schedules.length} schedules of matmul 256^3`);
      const rows = [];
      for (const shape of opts.quick ? SHAPES.slice(0, 3) : SHAPES) {
        const p = parseProblem(`matmul ${shape}`);
        const cands = gemmCandidates(p, target === 'avx512' ? 16 : 8);
        // screen every candidate briefly, then measure the best three properly
        const screened = [];
        for (const s of cands) {
          const k = compileSchedule(s, target);
          const t = await exec.time(k, { minSeconds: 0.01 });
          if (t.ok) screened.push({ s, k, gflops: t.gflops });
        }
        screened.sort((a, b) => b.gflops - a.gflops);
        let best = null;
        for (const c of screened.slice(0, 3)) {
          const t = await exec.time(c.k, { minSeconds: 0.2 });
          if (t.ok && (!best || t.gflops > best.gflops)) best = { ...c, gflops: t.gflops, medianSeconds: t.medianSeconds, bestSeconds: t.bestSeconds };
        }
        if (!best) throw new Error(`no candidate ran for ${shape}`);
        const v = await verifyKernel(best.k, best.s, exec.run);
        const blas = await exec.baseline!.time(p);
        const blasAvx2 = avx2Blas ? await avx2Blas.baseline!.time(p) : null;
        const row = {
          shape, schedule: best.s.text(), candidates: cands.length, verified: v.verified,
          gflops: best.gflops, percentOfPeak: (100 * best.gflops) / peak.gflops,
          bestSeconds: best.bestSeconds, medianSeconds: best.medianSeconds,
          registerTile: best.k.program.decision,
          baseline: blas.ok ? { library: blas.library, gflops: blas.gflops, ratio: best.gflops / blas.gflops } : null,
          openblasGflops: blas.ok ? blas.gflops : null, openblasCorename: blas.ok ? blas.library : null,
          ratioToOpenblas: blas.ok ? best.gflops / blas.gflops : null,
          ...(blasAvx2 ? {
            openblasAvx2Gflops: blasAvx2.ok ? blasAvx2.gflops : null,
            ratioToOpenblasAvx2: blasAvx2.ok ? best.gflops / blasAvx2.gflops : null,
          } : {}),
        };
        const avx2Note = blasAvx2?.ok ? `  OpenBLAS-Haswell ${blasAvx2.gflops.toFixed(1)} -> ${(best.gflops / blasAvx2.gflops).toFixed(2)}x` : '';
        console.log(`${target} ${shape.padEnd(15)} ${row.gflops.toFixed(1).padStart(6)} GFLOPS ${row.percentOfPeak.toFixed(1).padStart(5)}% peak  OpenBLAS ${row.openblasGflops?.toFixed(1)} -> ${row.ratioToOpenblas?.toFixed(2)}x${avx2Note}  ${row.schedule}`);
        rows.push(row);
      }
      (result.targets as Record<string, unknown>)[target] = { peakGflops: peak.gflops, peakChains: peak.chains, codegen: speed, matmul: rows };
    } finally {
      await exec.close();
      await avx2Blas?.close();
    }
  }
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/codegen.json', JSON.stringify(result, null, 2) + '\n');
  console.log('wrote bench/results/codegen.json');
  return result;
}
