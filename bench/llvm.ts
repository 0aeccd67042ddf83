/**
 * The LLVM baseline (issue 8): the direct generator (`avx512`) against the same LoopPrograms
 * compiled by LLVM (`llvm-avx512`), side by side in one run, on 20 schedules of matmul 256^3 and
 * 10 of conv2d n1 c64 h58 w58 k64 r3 s3, from bad to good:
 *   - compile time, schedule -> executable bytes (lowering included in both): the direct
 *     generator's median over 20 repetitions (after warm-up), LLVM's median over 3 (after one
 *     warm-up compile that also loads llvm-bindings), with LLVM's phases;
 *   - run time of both kernels (MeasurementPool.time, 3 rounds in alternation: best repetition, and
 *     median);
 *   - both kernels' outputs on the same inputs, compared (they sum in the same order).
 * Writes bench/results/llvm.json.
 *
 * Schedules: the initial nest and one hand-written register tile per problem, then the
 * schedules of an evolutionary search on this machine that raised its best-so-far (bad to good),
 * filled up with other measured schedules of that search spread over its GFLOPS range.
 *
 *   npm run bench -- llvm [--quick]      (--quick: 4 + 2 schedules, for trying the script)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { maxRelativeError, randomArray } from '../ir/interpret.ts';
import type { Problem } from '../ir/problem.ts';
import { elementCount } from '../ir/problem.ts';
import { createEvaluator, runSearch } from '../agent/search/run.ts';
import type { Evaluator } from '../env/evaluator.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { lower } from '../loopnest/lower.ts';
import type { Kernel } from '../targets/kernel.ts';
import { llvmAvailable, llvmTarget, LLVM_ISA_FLAGS, OPT_PIPELINE, type LlvmPhases, type LlvmTarget } from '../targets/llvm/index.ts';
import { compileSchedule, backend } from '../targets/registry.ts';
import { hostIsa } from '../targets/runtime/host.ts';
import { MeasurementPool } from '../targets/runtime/measure.ts';
import { peak } from '../targets/runtime/peak.ts';

const DIRECT_REPS = 20;
const LLVM_REPS = 3;
const MIN_SECONDS = 0.05;
const ROUNDS = 3;
const GENERATOR_SEED = 8000;

interface Case {
  problem: Problem;
  schedule: Schedule;
  origin: 'hand-written' | 'search';
}

const MATMUL = 'matmul 256x256x256';
const CONV = 'conv2d n1 c64 h58 w58 k64 r3 s3';

const HAND_WRITTEN: Record<string, string[]> = {
  [MATMUL]: [
    'm:256 n:256 k:256', // the initial nest: n is not innermost, scalar path
    'm:256 k:256 n:16 n:16',
    'm:16 n:2 k:4 k:64 m:16 n:128',
    'm:64 n:2 k:256 m:4 n:128',
    'm:32 n:8 k:256 m:8 n:32',
    'n:4 m:64 k:256 m:4 n:64',
    'm:64 n:4 k:256 m:4 n:64',
    'm:42r4 n:4 k:256 m:6 n:64',
  ],
  [CONV]: [
    'n:1 k:64 h:56 w:56 c:64 r:3 s:3', // the initial nest: scalar path
    'n:1 h:56 k:4 c:64 r:3 s:3 k:16 w:3r8 w:16',
    'n:1 k:16 h:56 w:2 c:64 r:3 s:3 k:4 w:28',
    'n:1 k:10r4 h:56 c:64 r:3 s:3 k:6 w:56',
  ],
};

/**
 * `count` schedules from an evolutionary search's history on this machine (issue 8 asks for the
 * search's best-so-far histories, so the set ranges from bad to good): every schedule that raised
 * the best-so-far, then, if more are needed, measured schedules spread evenly over the GFLOPS range.
 */
async function fromSearchHistory(problem: Problem, count: number, exclude: Set<string>): Promise<Schedule[]> {
  const inner = await createEvaluator({ target: 'avx512' });
  const log: { s: Schedule; gflops: number }[] = [];
  const logging: Evaluator = {
    target: inner.target, peakGflops: inner.peakGflops,
    evaluate: async (sch) => {
      const e = await inner.evaluate(sch);
      if (e.source === 'measured') log.push({ s: sch, gflops: e.gflops });
      return e;
    },
  };
  try {
    await runSearch(problem, { searcher: 'evolution', budget: { measurements: 120 }, evaluator: logging, seed: GENERATOR_SEED });
  } finally {
    await inner.close();
  }
  const out: Schedule[] = [];
  const take = (s: Schedule) => {
    if (out.length < count && !exclude.has(s.text())) {
      exclude.add(s.text());
      out.push(s);
    }
  };
  let best = -1;
  for (const e of log) {
    if (e.gflops > best) {
      best = e.gflops;
      take(e.s);
    }
  }
  const byGflops = [...log].filter((e) => e.gflops > 0).sort((a, b) => a.gflops - b.gflops);
  for (let i = 0; out.length < count && i < byGflops.length; i++) {
    take(byGflops[Math.floor((i * 7919) % byGflops.length)]!.s);
  }
  return out;
}

async function cases(quick: boolean): Promise<Case[]> {
  const out: Case[] = [];
  for (const [spec, total] of [[MATMUL, quick ? 4 : 20], [CONV, quick ? 2 : 10]] as const) {
    const problem = parseProblem(spec);
    const hand = HAND_WRITTEN[spec]!.slice(0, quick ? 1 : 2).map((t) => Schedule.parse(problem, t));
    const seen = new Set(hand.map((s) => s.text()));
    out.push(...hand.map((schedule) => ({ problem, schedule, origin: 'hand-written' as const })));
    out.push(...(await fromSearchHistory(problem, total - hand.length, seen)).map((schedule) => ({ problem, schedule, origin: 'search' as const })));
  }
  return out;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const geomean = (xs: number[]): number => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
const round = (x: number, digits = 3): number => Number(x.toPrecision(digits));

function directCompileMicros(s: Schedule): number {
  for (let i = 0; i < 3; i++) compileSchedule(s, 'avx512');
  return median(Array.from({ length: DIRECT_REPS }, () => compileSchedule(s, 'avx512').codegenMicros));
}

function llvmCompile(s: Schedule, t: LlvmTarget): { kernel: Kernel; micros: number; phases: LlvmPhases; linked: boolean } {
  const runs = Array.from({ length: LLVM_REPS }, () => {
    const t0 = performance.now();
    const { kernel, result } = t.compileDetailed(lower(s, t.caps));
    return { kernel, result, micros: (performance.now() - t0) * 1000 };
  });
  const phase = (k: keyof LlvmPhases) => round(median(runs.map((r) => r.result.phases[k])), 4);
  return {
    kernel: runs[0]!.kernel,
    micros: median(runs.map((r) => r.micros)),
    phases: { irMs: phase('irMs'), optMs: phase('optMs'), llcMs: phase('llcMs'), extractMs: phase('extractMs'), totalMs: phase('totalMs') },
    linked: runs[0]!.result.linked,
  };
}

async function time(pool: MeasurementPool, kernel: Kernel): Promise<{ gflops: number; medianGflops: number }> {
  const r = await pool.time(kernel, { minSeconds: MIN_SECONDS });
  if (!r.ok) throw new Error(`timing ${kernel.target} kernel of '${kernel.program.schedule}' failed: ${r.error}`);
  return { gflops: r.gflops, medianGflops: kernel.flops / r.medianSeconds / 1e9 };
}

/**
 * The kernels timed in alternation, ROUNDS times each (a, b, a, b, ...), so that a burst of load
 * from other processes hits both alike: per kernel the best GFLOPS over the rounds and the median
 * of the rounds' medians.
 */
async function timeSideBySide(pool: MeasurementPool, kernels: Kernel[]): Promise<{ gflops: number; medianGflops: number }[]> {
  const samples = kernels.map(() => [] as { gflops: number; medianGflops: number }[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, k] of kernels.entries()) samples[i]!.push(await time(pool, k));
  }
  return samples.map((xs) => ({
    gflops: round(Math.max(...xs.map((x) => x.gflops)), 4),
    medianGflops: round(median(xs.map((x) => x.medianGflops)), 4),
  }));
}

/** Both kernels on the same inputs: their largest relative difference (0 when bit-identical). */
async function agreement(pool: MeasurementPool, a: Kernel, b: Kernel, problem: Problem): Promise<number> {
  const tensors = problem.tensors.map((t, i) => randomArray(elementCount(t), 808 + i));
  const [x, y] = await Promise.all([a, b].map((k) => pool.run(k, tensors.map((t) => t.slice()))));
  if (!x!.ok || !y!.ok) throw new Error(`running '${a.program.schedule}' failed: ${!x!.ok ? x!.error : !y!.ok ? y!.error : ''}`);
  return maxRelativeError(y!.output, x!.output);
}

export async function benchLlvm(opts: { quick?: boolean } = {}): Promise<object> {
  const started = performance.now();
  const host = hostIsa();
  if (!host.avx512) throw new Error(`bench/llvm compares avx512 kernels; this CPU (${host.model}) has no AVX-512`);
  const available = llvmAvailable();
  if (!available.ok) throw new Error(available.reason);
  const loadStart = loadavg();
  const pool = new MeasurementPool({ timeoutSeconds: 120 });
  const llvm = llvmTarget('avx512');
  try {
    const peakGflops = await peak('avx512', { pool });
    const list = await cases(opts.quick ?? false);
    // warm-up: JIT of the direct path, and loading llvm-bindings (110 MB addon) once
    compileSchedule(list[0]!.schedule, backend('avx512'));
    llvm.compile(lower(list[0]!.schedule, llvm.caps));
    const rows = [];
    for (const [i, c] of list.entries()) {
      const directMicros = directCompileMicros(c.schedule);
      const direct = compileSchedule(c.schedule, 'avx512');
      const viaLlvm = llvmCompile(c.schedule, llvm);
      const [d, l] = (await timeSideBySide(pool, [direct, viaLlvm.kernel])) as [{ gflops: number; medianGflops: number }, { gflops: number; medianGflops: number }];
      const diff = await agreement(pool, direct, viaLlvm.kernel, c.problem);
      const row = {
        problem: c.problem.spec,
        schedule: c.schedule.text(),
        origin: c.origin,
        lanes: direct.program.decision.lanes,
        accumulators: direct.program.decision.accumulators,
        direct: { compileMicros: round(directMicros), gflops: d.gflops, medianGflops: d.medianGflops, codeBytes: direct.code.length },
        llvm: {
          compileMs: round(viaLlvm.micros / 1000), phasesMs: viaLlvm.phases, gflops: l.gflops, medianGflops: l.medianGflops,
          codeBytes: viaLlvm.kernel.code.length, linkedConstants: viaLlvm.linked,
        },
        /** LLVM compile time / direct compile time */
        compileRatio: round(viaLlvm.micros / directMicros, 4),
        /** direct GFLOPS / LLVM GFLOPS (best repetitions): >= 1 means the direct generator is at least as fast */
        runtimeRatio: round(d.gflops / l.gflops, 4),
        outputsMaxRelDiff: diff,
      };
      rows.push(row);
      console.error(
        `[${i + 1}/${list.length}] ${c.problem.op} ${row.schedule.padEnd(44)} compile ${row.direct.compileMicros} us vs ${row.llvm.compileMs} ms` +
          `  run ${d.gflops.toFixed(1)} vs ${l.gflops.toFixed(1)} GFLOPS (x${row.runtimeRatio})`,
      );
    }
    // the best schedule of each problem (by the direct generator's GFLOPS), and LLVM's own best
    const best: Record<string, object> = {};
    for (const spec of [...new Set(rows.map((r) => r.problem))]) {
      const mine = rows.filter((r) => r.problem === spec);
      const top = mine.reduce((a, b) => (b.direct.gflops > a.direct.gflops ? b : a));
      const llvmTop = mine.reduce((a, b) => (b.llvm.gflops > a.llvm.gflops ? b : a));
      // the same program through plain -O3 (no EarlyCSE cleanup), to show what that cleanup is worth
      const plain = llvmTarget('avx512', { optPipeline: 'default<O3>' });
      const plainKernel = plain.compile(lower(Schedule.parse(parseProblem(spec), top.schedule), plain.caps));
      const plainTime = (await timeSideBySide(pool, [plainKernel]))[0]!;
      best[spec] = {
        schedule: top.schedule,
        directGflops: top.direct.gflops,
        llvmGflops: top.llvm.gflops,
        runtimeRatio: top.runtimeRatio,
        percentOfPeak: { direct: round((100 * top.direct.gflops) / peakGflops), llvm: round((100 * top.llvm.gflops) / peakGflops) },
        compile: { directMicros: top.direct.compileMicros, llvmMs: top.llvm.compileMs, ratio: top.compileRatio },
        llvmPlainO3Gflops: plainTime.gflops,
        llvmBest: { schedule: llvmTop.schedule, gflops: llvmTop.llvm.gflops, directGflopsThere: llvmTop.direct.gflops },
        bestVsBest: round(top.direct.gflops / llvmTop.llvm.gflops, 4),
      };
    }
    const ratios = rows.map((r) => r.runtimeRatio);
    const summary = {
      schedules: rows.length,
      medianCompileRatio: round(median(rows.map((r) => r.compileRatio)), 4),
      medianDirectCompileMicros: round(median(rows.map((r) => r.direct.compileMicros))),
      medianLlvmCompileMs: round(median(rows.map((r) => r.llvm.compileMs))),
      runtimeRatio: {
        geomean: round(geomean(ratios), 4),
        median: round(median(ratios), 4),
        min: round(Math.min(...ratios), 4),
        max: round(Math.max(...ratios), 4),
        /** fraction of schedules where the direct generator is at least as fast (ratio >= 1.0) */
        fractionDirectAtLeastAsFast: round(ratios.filter((x) => x >= 1).length / ratios.length, 4),
      },
      best,
      maxOutputRelDiff: Math.max(...rows.map((r) => r.outputsMaxRelDiff)),
    };
    const loadEnd = loadavg();
    const result = {
      date: new Date().toISOString(),
      host: { model: host.model, cores: cpus().length, loadavgStart: loadStart.map((x) => round(x)), loadavgEnd: loadEnd.map((x) => round(x)) },
      peakGflops: round(peakGflops, 4),
      llvm: { isa: 'avx512', cpu: LLVM_ISA_FLAGS.avx512.cpu, mattr: LLVM_ISA_FLAGS.avx512.mattr, optPipeline: OPT_PIPELINE, llc: '-O3 -relocation-model=pic' },
      method: {
        directCompile: `median of ${DIRECT_REPS} compileSchedule(s, 'avx512') after 3 warm-ups (lowering + emission)`,
        llvmCompile: `median of ${LLVM_REPS} (lowering + IR + opt + llc + extraction), llvm-bindings loaded beforehand`,
        runtime: `MeasurementPool.time (minSeconds ${MIN_SECONDS}), ${ROUNDS} rounds alternating direct/LLVM; gflops: the best repetition of all rounds; medianGflops: median of the rounds' medians`,
        generator: `the initial nest and one hand-written schedule per problem, then the schedules of an evolutionary search (seed ${GENERATOR_SEED}, 120 measurements on avx512) that raised its best-so-far, then measured schedules spread over its GFLOPS range`,
      },
      summary,
      rows,
      seconds: round((performance.now() - started) / 1000),
    };
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    writeFileSync(new URL('./results/llvm.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
    return result;
  } finally {
    await pool.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = (await benchLlvm({ quick: process.argv.includes('--quick') })) as { summary: object; seconds: number; host: object };
  console.log(JSON.stringify({ summary: r.summary, host: r.host, seconds: r.seconds }, null, 2));
}
