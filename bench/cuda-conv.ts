/**
 * Tensor-core convolutions on the GPU (issue #18): ResNet-50's conv layers as typed channels-last
 * problems (ir/spec.ts `nhwc`), looptune's implicit-GEMM wgmma kernels
 * (targets/cuda/implicit-gemm-kernel.ts) against cuDNN at the same precision with tensor-core math,
 * in one process; and a differential fuzz of random small convs. Run through the tc bundle
 * (bench/cuda-tc.ts dispatches here):
 *
 *   conv [--type bf16] [--batch 32] [--layers all|3x3|1x1] [--stages 2,3,4] [--kernels wgmma,mma] [--overwrite]
 *        [--peers torch-conv.json] [--model M --screen K] [--out F]
 *       per layer: every tile point (convTileSchedules) at every depth is compiled and timed (the
 *       tuning time is that sweep's wall time); the best is run again on fresh inputs and checked
 *       against the typed oracle (sampled outputs); cuDNN's fastest algorithm (its own measured
 *       choice) on buffers of its layout is timed the same way; --peers merges the PyTorch peer's
 *       JSON (bench/peers/torch-conv.py, run beside it by python3 on the GPU machine); --overwrite
 *       compiles kernels that write O = conv without reading it (beta = 0, as the peers run);
 *       --model M --screen K times the cost model's top K first (`screen` in the record, beside the full sweep)
 *       --jit-only: only JIT-loads every candidate (the driver caches the SASS: CUDA_CACHE_MAXSIZE),
 *       so several processes can fill the cache side by side before the timed run
 *   convfuzz [--cases N] [--type bf16] [--seed S]
 *       random small convs (stride, dilation, padding, 1x1 and 3x3, epilogues, m tails) x random tiles
 *       and depths, run on the GPU and checked with the typed tolerance
 */
import { LoopTuneError } from '../ir/errors.ts';
import { checkSampledAgainstOracle, randomArray } from '../ir/interpret.ts';
import { elementCount, type Problem } from '../ir/problem.ts';
import { isWgmmaSchedule } from '../loopnest/gpu-wgmma.ts';
import { Rng } from '../ir/random.ts';
import { parseProblem } from '../ir/spec.ts';
import { Cudnn } from '../targets/cuda/cudnn.ts';
import { CudaError } from '../targets/cuda/driver.ts';
import { compileImplicitGemm, convTileSchedules } from '../targets/cuda/implicit-gemm-kernel.ts';
import type { CudaRunner } from '../targets/cuda/runner.ts';
import { modelRanking, sweepKernels } from './cuda-sweep.ts';
import type { CudaKernel } from '../targets/cuda/target.ts';
import type { KernelRunner } from '../targets/verify.ts';
import type { CostModel } from '../agent/costmodel/model.ts';
import { Schedule } from '../ir/schedule.ts';
import { setPipelineDepth } from '../ir/transforms.ts';

const log = (...x: unknown[]) => console.error('[cuda-conv]', ...x);

/** The types a tensor-core conv takes (bf16 / f16 on either family, tf32 on mma.sync). */
export const TENSOR_CORE_TYPES: readonly string[] = ['bf16', 'f16', 'tf32'];

/** ResNet-50 v1.5's distinct conv shapes past the stem (c=3 has no 8-channel chunks): the 3x3 convs, then the 1x1s. */
export const RESNET50_3X3 = [
  'c64 h56 w56 k64 r3 s3 stride1 pad1', 'c128 h28 w28 k128 r3 s3 stride1 pad1', 'c256 h14 w14 k256 r3 s3 stride1 pad1', 'c512 h7 w7 k512 r3 s3 stride1 pad1',
  'c128 h56 w56 k128 r3 s3 stride2 pad1', 'c256 h28 w28 k256 r3 s3 stride2 pad1', 'c512 h14 w14 k512 r3 s3 stride2 pad1',
];
export const RESNET50_1X1 = [
  'c64 h56 w56 k256 r1 s1 stride1', 'c256 h56 w56 k64 r1 s1 stride1', 'c128 h28 w28 k512 r1 s1 stride1', 'c512 h28 w28 k128 r1 s1 stride1',
  'c256 h14 w14 k1024 r1 s1 stride1', 'c1024 h14 w14 k256 r1 s1 stride1', 'c512 h7 w7 k2048 r1 s1 stride1', 'c2048 h7 w7 k512 r1 s1 stride1',
];

export interface ConvRecord {
  problem: string;
  window: '3x3' | '1x1';
  candidates: number;
  failed: number;
  tuningSeconds: number;
  looptune: { schedule: string; stages: number; gflops: number; bestMs: number; medianMs: number } | null;
  check: { ok: boolean; maxError: number; tolerance: number; checked: number } | null;
  cudnn: { library: string; algorithm: number; gflops: number; bestMs: number; medianMs: number } | null;
  /** looptune best / cuDNN best */
  ratio: number | null;
  /** the PyTorch peer (cuDNN's v9 engines): its TFLOPS as GFLOPS, and looptune / it */
  torch?: { gflops: number; ratioToLooptune: number | null };
  /** the cost model's screen: its top `keep` of `of` candidates timed, its best over the full sweep's */
  screen?: { keep: number; of: number; seconds: number; best: { schedule: string; gflops: number } | null; ratioToFull: number | null };
  note?: string;
}

/** The PyTorch peer's results (bench/peers/torch-conv.py's JSON) by spec, as GFLOPS. */
export function torchConvPeers(text: string | null): Map<string, number> {
  if (!text) return new Map();
  const data = JSON.parse(text) as { results?: { spec: string; tflops: number }[] };
  return new Map((data.results ?? []).map((r) => [r.spec, r.tflops * 1e3]));
}

/** Which tensor-core families a sweep takes: sm_90a wgmma, warp-level mma.sync. */
export type ConvFamily = 'wgmma' | 'mma';


/** What a sweep compiles: depths, families, and whether the kernels overwrite their output (O = conv, C not read: beta = 0, as cuDNN runs here). */
export interface SweepChoice {
  stages: readonly number[];
  families: readonly ConvFamily[];
  overwrite: boolean;
  /** a cuda cost model that ranks the candidates (their view matmul's features), and how many of its top it times */
  model?: CostModel | null;
  screen?: number;
}

/** Every tile x depth of the chosen families, as schedules of the conv's view (the depth in the text, `k:36s3`). */
function candidateTiles(conv: Problem, { stages, families }: SweepChoice): Schedule[] {
  const out: Schedule[] = [];
  for (const s of convTileSchedules(conv).filter((t) => families.includes(isWgmmaSchedule(t) ? 'wgmma' : 'mma'))) {
    for (const depth of stages) {
      const d = setPipelineDepth(s, depth);
      if (d.ok) out.push(d.schedule);
    }
  }
  return out;
}

function compileTiles(conv: Problem, tiles: readonly Schedule[], overwrite: boolean): CudaKernel[] {
  const out: CudaKernel[] = [];
  for (const s of tiles) {
    try {
      out.push(compileImplicitGemm(conv, s, overwrite ? { overwrite } : {}));
    } catch (e) {
      if (!(e instanceof LoopTuneError)) throw e;
    }
  }
  return out;
}

function candidates(conv: Problem, choice: SweepChoice): CudaKernel[] {
  return compileTiles(conv, candidateTiles(conv, choice), choice.overwrite);
}

/** JIT-loads every candidate of a conv (nothing timed): fills the driver's compute cache. */
export function jitConv(gpu: CudaRunner, spec: string, choice: SweepChoice): number {
  const t0 = performance.now();
  for (const k of candidates(parseProblem(spec), choice)) {
    gpu.load(k);
    gpu.unload(k);
  }
  return (performance.now() - t0) / 1000;
}

/**
 * The screened sweep: the cost model ranks the view schedules (it was trained on matmuls: the
 * gather's address arithmetic is not in the features), its top K are compiled and timed.
 */
function screenConv(gpu: CudaRunner, conv: Problem, choice: SweepChoice): { seconds: number; keep: number; of: number; best: { schedule: string; gflops: number } | null } {
  const t0 = performance.now();
  const tiles = candidateTiles(conv, choice);
  const top = modelRanking(choice.model!, tiles).slice(0, choice.screen);
  let best: { schedule: string; gflops: number } | null = null;
  sweepKernels(gpu, compileTiles(conv, top, choice.overwrite), (k, tm) => {
    if (!best || tm.gflops > best.gflops) best = { schedule: k.gpu.schedule.text(), gflops: tm.gflops };
  }, () => undefined);
  return { seconds: (performance.now() - t0) / 1000, keep: top.length, of: tiles.length, best };
}

export async function benchConv(gpu: CudaRunner, dnn: Cudnn | null, spec: string, choice: SweepChoice): Promise<ConvRecord> {
  const conv = parseProblem(spec);
  const window = / r1 s1 /.test(spec) ? '1x1' : '3x3';
  const record: ConvRecord = { problem: conv.spec, window, candidates: 0, failed: 0, tuningSeconds: 0, looptune: null, check: null, cudnn: null, ratio: null };
  // the screen first: its JIT times are its own, not served by the full sweep's
  const screen = choice.model && (choice.screen ?? 0) > 0 ? screenConv(gpu, conv, choice) : null;
  const t0 = performance.now();
  const kernels = candidates(conv, choice);
  record.candidates = kernels.length;
  if (kernels.length === 0) {
    record.note = 'no wgmma tile point takes this conv';
    return record;
  }
  type Best = { kernel: CudaKernel; gflops: number; bestMs: number; medianMs: number };
  const found: { best: Best | null } = { best: null };
  sweepKernels(gpu, kernels, (k, t) => {
    if (!found.best || t.gflops > found.best.gflops) found.best = { kernel: k, gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3 };
  }, (k, message, sticky) => {
    record.failed++;
    log(`${conv.spec}: ${k.program.schedule} x${k.gpu.mma?.stages}: ${message}`);
    if (sticky) record.note = `kernel fault: ${message}`;
  });
  record.tuningSeconds = (performance.now() - t0) / 1000;
  const best = found.best;
  if (screen) {
    const sb = screen.best as { schedule: string; gflops: number } | null;
    record.screen = { keep: screen.keep, of: screen.of, seconds: screen.seconds, best: sb, ratioToFull: sb && best ? sb.gflops / best.gflops : null };
    log(`${conv.spec}: screen top ${screen.keep} of ${screen.of} in ${screen.seconds.toFixed(1)} s: ${record.screen.ratioToFull?.toFixed(3) ?? '-'} of the full sweep's best`);
  }
  if (best) {
    const plan = best.kernel.gpu.mma!;
    record.looptune = { schedule: best.kernel.gpu.schedule.text(), stages: plan.stages, gflops: best.gflops, bestMs: best.bestMs, medianMs: best.medianMs };
    const inputs = conv.tensors.slice(1).map((t, i) => randomArray(elementCount(t), 41 + i));
    const init = randomArray(elementCount(conv.tensors[0]!), 49);
    const r = await gpu.run(best.kernel, [init, ...inputs], { guard: true });
    gpu.unload(best.kernel);
    // an overwriting kernel ignores what the output held: its oracle starts from zero
    const start = choice.overwrite ? new Float32Array(init.length) : init;
    record.check = r.ok ? checkSampledAgainstOracle(conv, inputs, start, r.output, 96, 3) : { ok: false, maxError: Infinity, tolerance: 0, checked: 0 };
    if (!r.ok) record.note = r.error;
  }
  if (dnn) {
    try {
      const c = dnn.conv2dChannelsLast(conv, gpu.device);
      try {
        const flops = 2 * conv.vars.reduce((a, v) => a * v.extent, 1);
        const t = gpu.timeLaunches(() => c.run(), flops, { minSeconds: 0.1 });
        record.cudnn = { library: dnn.name, algorithm: c.algorithm, gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3 };
        if (record.looptune && record.check?.ok) record.ratio = record.looptune.gflops / t.gflops;
      } finally {
        c.dispose();
      }
    } catch (e) {
      if (!(e instanceof CudaError)) throw e;
      record.note = `${record.note ? `${record.note}; ` : ''}cuDNN: ${e.message}`;
    }
  }
  log(`${conv.spec}: looptune ${record.looptune ? `${(record.looptune.gflops / 1e3).toFixed(1)} TFLOPS (${record.looptune.schedule} x${record.looptune.stages}, check ${record.check?.ok})` : '-'}; ${record.cudnn ? `cuDNN ${(record.cudnn.gflops / 1e3).toFixed(1)} TFLOPS (algo ${record.cudnn.algorithm})` : 'no cuDNN'}; ratio ${record.ratio?.toFixed(2) ?? '-'}; ${record.candidates} candidates in ${record.tuningSeconds.toFixed(1)} s`);
  return record;
}

/** The ResNet-50 layers at a batch and type, as nhwc specs. */
export function resnet50Convs(batch: number, type: string, layers: string): string[] {
  const pick = layers === '3x3' ? RESNET50_3X3 : layers === '1x1' ? RESNET50_1X1 : layers === 'all' ? [...RESNET50_3X3, ...RESNET50_1X1] : null;
  if (!pick) throw new LoopTuneError(`--layers: expected all, 3x3 or 1x1, got '${layers}'`);
  if (!TENSOR_CORE_TYPES.includes(type)) throw new LoopTuneError(`--type must be one of ${TENSOR_CORE_TYPES.join(', ')}, got '${type}'`);
  if (!Number.isInteger(batch) || batch < 1) throw new LoopTuneError(`--batch must be a positive integer, got ${batch}`);
  return pick.map((l) => `conv2d n${batch} ${l} nhwc ${type}`);
}

export interface ConvFuzzReport {
  type: string;
  cases: number;
  passed: number;
  mismatches: { spec: string; schedule: string; stages: number; error: string }[];
  worstError: number;
}

/**
 * Random small convs x random tiles and depths, run by `run` (the GPU's runner, or the PTX
 * simulator's in the tests, with `maxSide` keeping them small), against the typed oracle.
 */
export async function fuzzConvs(run: KernelRunner, type: string, cases: number, seed: number, maxSide = 12): Promise<ConvFuzzReport> {
  if (!TENSOR_CORE_TYPES.includes(type)) throw new LoopTuneError(`convfuzz: --type must be one of ${TENSOR_CORE_TYPES.join(', ')}, got '${type}'`);
  const rng = new Rng(seed);
  const report: ConvFuzzReport = { type, cases: 0, passed: 0, mismatches: [], worstError: 0 };
  const epilogues = ['', '+bias', '+relu', '+bias +relu', '+residual', '+bias +residual +relu', '+gelu'];
  // most draws make a kernel; a generator that stops making them is a bug, not a long wait
  for (let draws = 0; report.cases < cases; draws++) {
    if (draws > 100 * cases) throw new LoopTuneError(`convfuzz: ${draws} random convs made only ${report.cases} kernels`);
    const window = rng.int(0, 2) === 0 ? 1 : 3;
    const stride = rng.int(1, 2), dilation = window === 3 && rng.int(0, 4) === 0 ? 2 : 1;
    const pad = window === 3 ? dilation * rng.int(0, 1) : 0;
    const c = 64 * rng.int(1, 3), k = 64 * rng.int(1, 4), n = rng.int(1, 3);
    const h = rng.int(window * dilation, maxSide), w = rng.int(window * dilation, maxSide);
    let conv: Problem;
    let tiles;
    try {
      conv = parseProblem(`conv2d n${n} c${c} h${h} w${w} k${k} r${window} s${window} stride${stride} dilation${dilation} pad${pad} nhwc ${type} ${epilogues[rng.int(0, epilogues.length - 1)]}`);
      tiles = convTileSchedules(conv);
    } catch (e) {
      if (e instanceof LoopTuneError) continue;
      throw e;
    }
    if (tiles.length === 0) continue;
    const tile = tiles[rng.int(0, tiles.length - 1)]!;
    const stages = rng.int(2, 4);
    let kernel: CudaKernel;
    try {
      kernel = compileImplicitGemm(conv, tile, { stages });
    } catch (e) {
      if (e instanceof LoopTuneError) continue;
      throw e;
    }
    report.cases++;
    const inputs = conv.tensors.slice(1).map((t, i) => randomArray(elementCount(t), seed + report.cases * 5 + i));
    const init = randomArray(elementCount(conv.tensors[0]!), seed + report.cases * 5 + 4);
    const r = await run(kernel, [init, ...inputs], { guard: true });
    const check = r.ok ? checkSampledAgainstOracle(conv, inputs, init, r.output, 128, report.cases) : null;
    if (check) report.worstError = Math.max(report.worstError, check.maxError / check.tolerance);
    if (check?.ok) report.passed++;
    else report.mismatches.push({ spec: conv.spec, schedule: tile.text(), stages, error: r.ok ? `error ${check!.maxError} > ${check!.tolerance}` : r.error });
    if (report.cases % 100 === 0) log(`convfuzz ${type}: ${report.cases}/${cases}, ${report.mismatches.length} mismatches`);
  }
  return report;
}
