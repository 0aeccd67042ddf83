/**
 * looptune on the GPU: the device entry point (bundled by targets/cuda/bundle.ts) and the cuda
 * benchmark. Commands:
 *
 *   info                                  device, driver, cuBLAS
 *   run <spec> [--schedule S]             compile, check (against the interpreter when small, else
 *                                         cuBLAS for matmul), time; prints GFLOPS and the launch
 *   search <spec> [--budget N] [--model M] the environment's evolution (agent/search, evaluatorFor(cuda):
 *                                         GPU sketches, the cuda actions), optionally screened by a
 *                                         cuda cost model; prints the best schedule
 *   collect [--problems N] [--budget N] --records F
 *                                         a record campaign for the cuda cost model: evolution
 *                                         searches on random matmul/bmm/conv2d shapes, every
 *                                         measurement appended to F
 *   fuzz [--cases N] [--seed S] [--ops a,b] [--scale X]
 *                                         differential fuzz on the GPU against the interpreter
 *   bench [--sizes 1024,2048,4096] [--budget N] [--conv-budget N] [--fuzz N] [--model M] [--out F]
 *                                         everything the report needs, in one process: fuzz,
 *                                         matmul vs cuBLAS sgemm, ResNet-18 conv2d layers vs
 *                                         im2col + cuBLAS, with search (tuning) time per problem;
 *                                         with --model also a second, model-screened search per
 *                                         problem (its tuning time and best)
 *   tails [--shapes MxNxK,...] [--budget N] [--model M] [--out F]
 *                                         fp32 shapes that are not multiples of the block tile (1000^3,
 *                                         3000x1500x2500, 4095^3, 1023^3; 1024^3 and 4096^3 as aligned
 *                                         references): search, best vs cuBLAS sgemm timed and checked
 *                                         in this process -> bench/results/cuda-tails.json
 *
 * Every figure is a ratio measured side by side in this process (CUDA events, best of repeated
 * launches; medians are reported too). Searches are `looptune search --target cuda --searcher
 * evolution`'s: agent/search's evolution on env/evaluator-for.ts, in the same environment as the
 * CPU targets.
 */
import { writeFileSync } from 'node:fs';
import { LoopTuneError } from '../ir/errors.ts';
import { elementCount, type Problem } from '../ir/problem.ts';
import { Rng } from '../ir/random.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { im2colFor } from '../targets/cuda/baselines.ts';
import { CUDA_FUZZ_OPS, fuzzCuda, type CudaFuzzReport } from '../targets/cuda/fuzz.ts';
import { describeMapping } from '../loopnest/gpu.ts';
import { STICKY_ERRORS } from '../targets/cuda/runner.ts';
import { randomArray } from '../ir/interpret.ts';
import { compileCuda } from '../targets/cuda/target.ts';
import { verifyKernel } from '../targets/verify.ts';
import { CudaTuner, type Candidate } from '../targets/cuda/tuner.ts';
import { CudaError } from '../targets/cuda/driver.ts';
import { evaluatorFor } from '../env/evaluator-for.ts';
import type { Evaluator } from '../env/evaluator.ts';
import { backend } from '../targets/registry.ts';
import { openCudaDevice } from '../targets/cuda/device.ts';
import { RecordStore } from '../env/records.ts';
import type { PredictFunction } from '../env/evaluator.ts';
import { runSearch, type RunSearchResult } from '../agent/search/run.ts';
import { costModelRanker } from '../agent/tune.ts';

type Args = { _: string[]; [k: string]: string | boolean | string[] };

function parseArgs(argv: string[]): Args {
  const out: Args = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const k = a.slice(2);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) out[k] = true;
      else {
        out[k] = next;
        i++;
      }
    } else out._.push(a);
  }
  return out;
}

const num = (a: Args, k: string, d: number): number => (typeof a[k] === 'string' ? Number(a[k]) : d);
const str = (a: Args, k: string, d: string): string => (typeof a[k] === 'string' ? (a[k] as string) : d);
const log = (...x: unknown[]) => console.error('[cuda]', ...x);

// ------------------------------------------------------------------------------------- evaluation

/** The GPU tuner plus the environment's evaluator on it (one context, one record store). */
class Bench extends CudaTuner {
  #evaluator: Promise<Evaluator> | undefined;
  records: RecordStore | null = null;

  /** the environment's evaluator on this tuner's context (evaluatorFor, as search and tune build it) */
  evaluator(): Promise<Evaluator> {
    this.#evaluator ??= this.fresh(this.records);
    return this.#evaluator;
  }

  fresh(records: RecordStore | null, peakGflops?: number): Promise<Evaluator> {
    return evaluatorFor(backend('cuda'), {
      device: openCudaDevice({ tuner: this }), records, minSeconds: 0.02, ...(peakGflops !== undefined ? { peakGflops } : {}),
    });
  }
}

/** What a bench record keeps of a search. */
interface SearchSummary {
  searcher: string;
  measurements: number;
  timed: number;
  seconds: number;
  stopReason: string;
  defaultGflops: number;
  firstGflops: number;
  history: RunSearchResult['history'];
  modelScreened: boolean;
}

/** `fresh`: an evaluator with an empty cache (its search measures everything it asks for). */
async function searchOn(b: Bench, p: Problem, budget: number, seed: number, predict?: PredictFunction, fresh = false): Promise<RunSearchResult> {
  const evaluator = fresh ? await b.fresh(null, (await b.evaluator()).peakGflops) : await b.evaluator();
  return runSearch(p, {
    searcher: 'evolution', budget: { measurements: budget }, evaluator, seed,
    ...(predict ? { predict } : {}),
  });
}

function summary(r: RunSearchResult, modelScreened: boolean): SearchSummary {
  return {
    searcher: r.searcher, measurements: r.measurements, timed: r.timed, seconds: r.seconds, stopReason: r.stopReason,
    defaultGflops: r.defaultGflops, firstGflops: r.history.find((h) => h.measurements > 1)?.bestGflops ?? 0, history: r.history, modelScreened,
  };
}

async function loadModel(ref: string | undefined): Promise<PredictFunction | undefined> {
  if (!ref) return undefined;
  const predict = await costModelRanker(ref, 'cuda');
  if (!predict) throw new LoopTuneError(`--model ${ref}: no cuda cost model could be loaded`);
  log(`cost model ${ref} loaded`);
  return predict;
}

// ------------------------------------------------------------------------------------- checks

function relErrors(got: Float32Array, want: Float32Array): { maxAbs: number; maxRel: number; norm: number } {
  let maxAbs = 0;
  let scale = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(want[i]!));
    num += d * d;
    den += want[i]! * want[i]!;
  }
  return { maxAbs, maxRel: maxAbs / Math.max(scale, 1e-30), norm: Math.sqrt(num / Math.max(den, 1e-30)) };
}

// ------------------------------------------------------------------------------------- commands

async function cmdFuzz(b: Bench, cases: number, seed: number, ops: readonly string[], scale: number): Promise<CudaFuzzReport> {
  let last = 0;
  const r = await fuzzCuda({
    cases, seed, ops, scale, runner: b.gpu.runner({ unloadAfter: true }),
    onProgress: (done, failed) => {
      if (done - last >= 250 || done === cases) {
        last = done;
        log(`fuzz ${done}/${cases}, failures ${failed}`);
      }
    },
  });
  return r;
}

interface MatmulRecord {
  problem: string;
  cublas: { gflops: number; bestMs: number; medianMs: number } | null;
  looptune: Candidate | null;
  /** looptune best GFLOPS / cuBLAS best GFLOPS */
  ratio: number | null;
  ratioMedian: number | null;
  check: { maxAbs: number; maxRel: number; norm: number } | null;
  noRegisterCap: { gflops: number; registers: number } | null;
  search: SearchSummary;
  /** the same search screened by the cost model (--model) */
  screened?: SearchSummary & { gflops: number; schedule: string; ratio: number | null };
  defaultSchedule: { schedule: string; gflops: number } | null;
}

/** C[m, n] += A[m, k] B[k, n], as the spec "matmul MxNxK" reads it. */
interface GemmShape {
  m: number;
  n: number;
  k: number;
}

const square = (size: number): GemmShape => ({ m: size, n: size, k: size });

async function benchMatmul(b: Bench, shape: GemmShape, budget: number, seed: number, predict?: PredictFunction): Promise<MatmulRecord> {
  const { m: M, n: N, k: K } = shape;
  const p = parseProblem(`matmul ${M}x${N}x${K}`);
  const name = p.spec;
  const A = b.upload(randomArray(M * K, 11));
  const B = b.upload(randomArray(K * N, 12));
  const C = b.upload(randomArray(M * N, 13));
  const ptrs = [C, A, B];
  const flops = 2 * M * N * K;
  const blas = b.cublas();
  let cublas: MatmulRecord['cublas'] = null;
  if (blas) {
    const t = b.gpu.timeLaunches(() => blas.gemm(M, N, K, A, B, C), flops, { minSeconds: 0.3 });
    cublas = { gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3 };
    log(`${name}: cuBLAS ${t.gflops.toFixed(0)} GFLOPS`);
  }
  // the screened search first: its tuning time must not profit from the driver's JIT cache
  let screened: MatmulRecord['screened'];
  if (predict) {
    const m = await searchOn(b, p, Math.max(8, Math.round(budget / 4)), seed, predict, true);
    screened = { ...summary(m, true), gflops: m.gflops, schedule: m.schedule, ratio: cublas ? m.gflops / cublas.gflops : null };
    log(`${name}: model-screened search ${m.measurements} schedules in ${m.seconds.toFixed(1)} s, best ${m.gflops.toFixed(0)} GFLOPS`);
  }
  const sr = await searchOn(b, p, budget, seed);
  log(`${name}: search ${sr.measurements} schedules in ${sr.seconds.toFixed(1)} s, best ${sr.gflops.toFixed(0)} GFLOPS ${sr.schedule}`);
  let best: Candidate | null = null;
  let check: MatmulRecord['check'] = null;
  let noCap: MatmulRecord['noRegisterCap'] = null;
  if (sr.gflops > 0) {
    const s = Schedule.parse(p, sr.schedule);
    const again = b.evaluate(s, ptrs, 0.3);
    best = typeof again === 'string' ? null : again;
    const nc = b.evaluate(s, ptrs, 0.1, { maxRegisters: 'none' });
    if (typeof nc !== 'string') noCap = { gflops: nc.gflops, registers: nc.registers };
    if (blas) {
      // correctness at full size: same inputs, C = 0, ours vs cuBLAS
      const zero = new Float32Array(M * N);
      const C1 = b.upload(zero);
      const C2 = b.upload(zero);
      const k = compileCuda(s);
      b.gpu.launch(k, [C1, A, B]);
      blas.gemm(M, N, K, A, B, C2);
      b.gpu.device.synchronize();
      const o1 = new Float32Array(M * N);
      const o2 = new Float32Array(M * N);
      b.gpu.device.download(o1, C1);
      b.gpu.device.download(o2, C2);
      check = relErrors(o1, o2);
      b.gpu.unload(k);
      b.gpu.freeAll([C1, C2]);
    }
  }
  let def: MatmulRecord['defaultSchedule'] = null;
  if (M * N * K <= 1024 ** 3) {
    const d = b.evaluate(Schedule.initial(p), ptrs, 0.05);
    if (typeof d !== 'string') def = { schedule: d.mapping, gflops: d.gflops };
  }
  b.gpu.freeAll(ptrs);
  return {
    problem: p.spec, cublas, looptune: best,
    ratio: best && cublas ? best.gflops / cublas.gflops : null,
    ratioMedian: best && cublas ? cublas.medianMs / best.medianMs : null,
    check, noRegisterCap: noCap, search: summary(sr, false), ...(screened ? { screened } : {}), defaultSchedule: def,
  };
}

interface ConvRecord {
  problem: string;
  layer: string;
  baseline: { method: string; gflops: number; bestMs: number; medianMs: number; gemmOnlyGflops: number; gemmOnlyMs: number } | null;
  looptune: Candidate | null;
  ratio: number | null;
  ratioVsGemmOnly: number | null;
  /** cuDNN's fastest fp32 (FMA math) forward algorithm on the same buffers, where cuDNN is installed */
  cudnn: { gflops: number; bestMs: number; medianMs: number; algorithm: number; workspaceBytes: number; check: { maxAbs: number; maxRel: number; norm: number } | null } | null;
  ratioVsCudnn: number | null;
  check: { maxAbs: number; maxRel: number; norm: number } | null;
  search: SearchSummary;
  screened?: SearchSummary & { gflops: number; schedule: string; ratio: number | null };
}

async function benchConv(b: Bench, layer: string, spec: string, budget: number, seed: number, predict?: PredictFunction): Promise<ConvRecord> {
  const p = parseProblem(spec);
  const ins = p.tensors.map((t, i) => randomArray(elementCount(t), 21 + i));
  const ptrs = ins.map((x) => b.upload(x));
  const flops = 2 * p.vars.reduce((a, v) => a * v.extent, 1);
  const blas = b.cublas();
  let baseline: ConvRecord['baseline'] = null;
  let refOut: Float32Array | null = null;
  if (blas) {
    const im = im2colFor(p);
    const col = b.gpu.device.alloc(im.elements * 4);
    const m = b.gpu.device.loadPtx(im.ptx, im.entry);
    const { m: M, n: N, k: K } = im.gemm;
    const both = () => {
      b.gpu.device.launch(m.func, im.grid, im.block, 0, [col, ptrs[1]!]);
      blas.gemm(M, N, K, ptrs[2]!, col, ptrs[0]!);
    };
    const t = b.gpu.timeLaunches(both, flops, { minSeconds: 0.2 });
    const g = b.gpu.timeLaunches(() => blas.gemm(M, N, K, ptrs[2]!, col, ptrs[0]!), flops, { minSeconds: 0.2 });
    baseline = { method: 'im2col (looptune PTX) + cublasSgemm_v2', gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3, gemmOnlyGflops: g.gflops, gemmOnlyMs: g.bestSeconds * 1e3 };
    // reference output for the check: O = 0 + W·col
    const O = b.upload(new Float32Array(elementCount(p.tensors[0]!)));
    b.gpu.device.launch(m.func, im.grid, im.block, 0, [col, ptrs[1]!]);
    blas.gemm(M, N, K, ptrs[2]!, col, O);
    b.gpu.device.synchronize();
    refOut = new Float32Array(elementCount(p.tensors[0]!));
    b.gpu.device.download(refOut, O);
    b.gpu.freeAll([O, col]);
    b.gpu.device.unload(m);
    log(`${layer}: im2col+cuBLAS ${t.gflops.toFixed(0)} GFLOPS (gemm alone ${g.gflops.toFixed(0)})`);
  }
  let cudnn: ConvRecord['cudnn'] = null;
  const dnn = b.cudnn();
  if (dnn) {
    const conv = dnn.conv2d(p, b.gpu.device, ptrs);
    try {
      const t = b.gpu.timeLaunches(() => conv.run(), flops, { minSeconds: 0.2 });
      let dnnCheck: NonNullable<ConvRecord['cudnn']>['check'] = null;
      if (refOut) {
        // y = 0 + conv(x, w), against im2col + cuBLAS on the same inputs
        const O = b.upload(new Float32Array(elementCount(p.tensors[0]!)));
        const once = dnn.conv2d(p, b.gpu.device, [O, ptrs[1]!, ptrs[2]!]);
        once.run();
        b.gpu.device.synchronize();
        const o = new Float32Array(refOut.length);
        b.gpu.device.download(o, O);
        dnnCheck = relErrors(o, refOut);
        once.dispose();
        b.gpu.freeAll([O]);
      }
      cudnn = { gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3, algorithm: conv.algorithm, workspaceBytes: conv.workspaceBytes, check: dnnCheck };
      log(`${layer}: cuDNN ${t.gflops.toFixed(0)} GFLOPS (algorithm ${conv.algorithm})`);
    } finally {
      conv.dispose();
    }
  }
  // the screened search first: its tuning time must not profit from the driver's JIT cache
  let screened: ConvRecord['screened'];
  if (predict) {
    const m = await searchOn(b, p, Math.max(8, Math.round(budget / 4)), seed, predict, true);
    screened = { ...summary(m, true), gflops: m.gflops, schedule: m.schedule, ratio: baseline ? m.gflops / baseline.gflops : null };
    log(`${layer}: model-screened search ${m.measurements} in ${m.seconds.toFixed(1)} s, best ${m.gflops.toFixed(0)} GFLOPS`);
  }
  const sr = await searchOn(b, p, budget, seed);
  log(`${layer}: search ${sr.measurements} in ${sr.seconds.toFixed(1)} s, best ${sr.gflops.toFixed(0)} GFLOPS ${sr.schedule}`);
  let best: Candidate | null = null;
  let check: ConvRecord['check'] = null;
  if (sr.gflops > 0) {
    const s = Schedule.parse(p, sr.schedule);
    const again = b.evaluate(s, ptrs, 0.2);
    best = typeof again === 'string' ? null : again;
    if (refOut) {
      const O = b.upload(new Float32Array(elementCount(p.tensors[0]!)));
      const k = compileCuda(s);
      b.gpu.launch(k, [O, ptrs[1]!, ptrs[2]!]);
      b.gpu.device.synchronize();
      const o = new Float32Array(refOut.length);
      b.gpu.device.download(o, O);
      check = relErrors(o, refOut);
      b.gpu.unload(k);
      b.gpu.freeAll([O]);
    }
  }
  b.gpu.freeAll(ptrs);
  return {
    problem: p.spec, layer, baseline, looptune: best,
    ratio: best && baseline ? best.gflops / baseline.gflops : null,
    ratioVsGemmOnly: best && baseline ? best.gflops / baseline.gemmOnlyGflops : null,
    cudnn, ratioVsCudnn: best && cudnn ? best.gflops / cudnn.gflops : null,
    check, search: summary(sr, false), ...(screened ? { screened } : {}),
  };
}

/** ResNet-18's 3x3 (and 7x7) conv layers at batch 1; padding is pre-applied to the input size (the IR has none). */
export const RESNET18_LAYERS: [string, string][] = [
  ['conv1 7x7/2', 'conv2d n1 c3 h229 w229 k64 r7 s7 stride2'],
  ['conv2_x 3x3', 'conv2d n1 c64 h58 w58 k64 r3 s3 stride1'],
  ['conv3_1 3x3/2', 'conv2d n1 c64 h57 w57 k128 r3 s3 stride2'],
  ['conv3_x 3x3', 'conv2d n1 c128 h30 w30 k128 r3 s3 stride1'],
  ['conv4_x 3x3', 'conv2d n1 c256 h16 w16 k256 r3 s3 stride1'],
  ['conv5_x 3x3', 'conv2d n1 c512 h9 w9 k512 r3 s3 stride1'],
];

async function cmdBench(b: Bench, a: Args): Promise<void> {
  const out = str(a, 'out', 'bench/results/cuda.json');
  const t0 = performance.now();
  const result: Record<string, unknown> = {
    generated: new Date().toISOString(), device: b.gpu.device.info(), node: process.version,
    cublas: b.cublas() ? { path: b.cublas()!.path, version: b.cublas()!.version } : null,
    method: 'CUDA events around back-to-back launches; best (and median) per launch over samples of >= 1 ms; cuBLAS measured in the same process on the same buffers; GFLOPS = 2*M*N*K / best time',
    search: 'looptune search --target cuda --searcher evolution: agent/search evolution on env/evaluator-for.ts (the environment\'s evaluator; actions include bind_block, bind_thread, stage_shared), population seeded with the templates.ts seed points and GPU sketches (random template points), then mutations (re-tiling, loop moves, random action walks); candidates without a legal GPU mapping are dropped before measuring; each distinct schedule compiled (PTX + driver JIT) and timed once (>= 20 ms of samples); the best re-timed (>= 0.3 s) and checked against cuBLAS / im2col+cuBLAS on the same inputs',
  };
  const predict = await loadModel(typeof a.model === 'string' ? a.model : undefined);
  if (typeof a.records === 'string') b.records = RecordStore.open(a.records);
  const gpuPeak = (await b.evaluator()).peakGflops;
  result.peakGflops = gpuPeak;
  log(`GPU FMA peak ${gpuPeak.toFixed(0)} GFLOPS`);
  const save = () => writeFileSync(out, JSON.stringify(result, null, 1));
  const phase = async (name: string, f: () => Promise<void> | void): Promise<void> => {
    try {
      await f();
    } catch (e) {
      log(`${name} failed: ${(e as Error).stack ?? (e as Error).message}`);
      (result.errors as string[] | undefined) ?? (result.errors = []);
      (result.errors as string[]).push(`${name}: ${(e as Error).message}`);
      if (e instanceof CudaError && STICKY_ERRORS.has(e.code)) b.gpu.recover();
      save();
    }
  };
  const fuzzCases = num(a, 'fuzz', 2000);
  if (fuzzCases > 0) {
    await phase('fuzz', async () => {
      const main = await cmdFuzz(b, fuzzCases, num(a, 'seed', 20261122), ['matmul', 'bmm', 'conv2d', 'add', 'mul', 'relu', 'copy', 'transpose'], 1);
      result.fuzz = { main };
      save();
      const extra = await cmdFuzz(b, Math.round(fuzzCases / 5), 77, ['conv1d', 'conv3d', 'reduce'], 1);
      result.fuzz = { main, extra };
      log(`fuzz: ${main.cases + extra.cases} cases, ${main.mismatches + extra.mismatches} mismatches, ${main.crashes + extra.crashes} crashes, ${main.codegenErrors + extra.codegenErrors} codegen errors`);
      save();
    });
  }
  const seed = num(a, 'seed', 20261122);
  const sizes = str(a, 'sizes', '1024,2048,4096').split(',').filter((x) => x).map(Number);
  const matmul: MatmulRecord[] = [];
  for (const n of sizes) {
    await phase(`matmul ${n}`, async () => {
      matmul.push(await benchMatmul(b, square(n), num(a, 'budget', 128), seed, predict));
      result.matmul = matmul;
      save();
    });
  }
  const conv: ConvRecord[] = [];
  const only = typeof a.layers === 'string' ? a.layers.split(',').map(Number) : null;
  const layers = a['no-conv'] ? [] : RESNET18_LAYERS.filter((_, i) => !only || only.includes(i));
  for (const [layer, spec] of layers) {
    await phase(layer, async () => {
      conv.push(await benchConv(b, layer, spec, num(a, 'conv-budget', 96), seed, predict));
      result.conv = conv;
      save();
    });
  }
  result.seconds = (performance.now() - t0) / 1000;
  save();
  // summary table
  console.log(`device: ${(result.device as { name: string }).name}`);
  for (const r of matmul) {
    console.log(`${r.problem.padEnd(24)} looptune ${r.looptune?.gflops.toFixed(0).padStart(6)} GFLOPS  cuBLAS ${r.cublas?.gflops.toFixed(0).padStart(6)}  ${(100 * (r.ratio ?? 0)).toFixed(1)}%  (median ${(100 * (r.ratioMedian ?? 0)).toFixed(1)}%)  tuned ${r.search.seconds.toFixed(1)} s/${r.search.measurements}${r.screened ? `  screened: ${(100 * (r.screened.ratio ?? 0)).toFixed(1)}% in ${r.screened.seconds.toFixed(1)} s/${r.screened.measurements}` : ''}  err ${r.check?.maxRel.toExponential(1)}  ${r.looptune?.schedule}`);
  }
  for (const r of conv) {
    console.log(`${r.layer.padEnd(14)} looptune ${r.looptune?.gflops.toFixed(0).padStart(6)}  im2col+cuBLAS ${r.baseline?.gflops.toFixed(0).padStart(6)}  ${(100 * (r.ratio ?? 0)).toFixed(1)}%  (gemm only ${(100 * (r.ratioVsGemmOnly ?? 0)).toFixed(1)}%)  cuDNN ${r.cudnn?.gflops.toFixed(0) ?? '-'} ${r.ratioVsCudnn ? `${(100 * r.ratioVsCudnn).toFixed(1)}%` : ''}  tuned ${r.search.seconds.toFixed(1)} s/${r.search.measurements}${r.screened ? `  screened: ${(100 * (r.screened.ratio ?? 0)).toFixed(1)}% in ${r.screened.seconds.toFixed(1)} s/${r.screened.measurements}` : ''}  err ${r.check?.maxRel.toExponential(1)}  ${r.looptune?.schedule}`);
  }
  console.log(`wrote ${out} (${(result.seconds as number).toFixed(0)} s)`);
}

/** The tail shapes of issue 18 (not multiples of any block tile), then the aligned references. */
export const TAIL_SHAPES = ['1000x1000x1000', '3000x1500x2500', '4095x4095x4095', '1023x1023x1023', '1024x1024x1024', '4096x4096x4096'];

/** What the tails report keeps per shape: the figures, then the whole matmul record. */
interface TailRecord {
  problem: string;
  looptuneGflops: number | null;
  cublasGflops: number | null;
  /** looptune best GFLOPS / cuBLAS best GFLOPS */
  ratio: number | null;
  schedule: string | null;
  searchSeconds: number;
  measurements: number;
  /** the best kernel's edge split (rule 9 of loopnest/gpu.ts): interior blocks run the aligned body */
  edges: { interiorBlocks: number; blocks: number } | null;
  /** ours vs cuBLAS on the same inputs, C = 0 + A·B */
  check: MatmulRecord['check'];
  record: MatmulRecord;
}

function parseShape(text: string): GemmShape {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(text);
  if (!m) throw new LoopTuneError(`tails: bad shape '${text}' (expected MxNxK, e.g. 3000x1500x2500)`);
  return { m: Number(m[1]), n: Number(m[2]), k: Number(m[3]) };
}

/** Interior and total blocks of a schedule's kernel (null without an edge split). */
function edgeBlocks(s: Schedule): TailRecord['edges'] {
  const k = compileCuda(s);
  const edges = k.gpu.edges;
  if (!edges) return null;
  const whole = new Map(edges.loops.map((x) => [x.loop, x.whole]));
  const interior = k.mapping.blockLoops.reduce((a, j) => a * (whole.get(j) ?? k.mapping.indices.find((ix) => ix.loop === j)!.count), 1);
  return { interiorBlocks: interior, blocks: k.mapping.blocks };
}

/**
 * fp32 shapes that are not multiples of the block tile, against cuBLAS sgemm: per shape the
 * evolution search (as `bench` runs it for matmul), the best re-timed beside cuBLAS in this
 * process and checked against it. Writes bench/results/cuda-tails.json (or --out).
 */
async function cmdTails(b: Bench, a: Args): Promise<void> {
  const out = str(a, 'out', 'bench/results/cuda-tails.json');
  const shapes = str(a, 'shapes', TAIL_SHAPES.join(',')).split(',').filter((x) => x).map(parseShape);
  const budget = num(a, 'budget', 64);
  const seed = num(a, 'seed', 20261122);
  const predict = await loadModel(typeof a.model === 'string' ? a.model : undefined);
  const t0 = performance.now();
  const result: Record<string, unknown> = {
    generated: new Date().toISOString(), device: b.gpu.device.info(), node: process.version,
    cublas: b.cublas() ? { path: b.cublas()!.path, version: b.cublas()!.version } : null,
    method: 'per shape: looptune search --target cuda --searcher evolution with the given budget (measurements), the best re-timed (>= 0.3 s of CUDA-event samples, best per launch) beside cublasSgemm_v2 on the same buffers in this process, and its output (C = 0 + A·B) compared with cuBLAS\'s; GFLOPS = 2*M*N*K / best time',
    budget, seed,
  };
  const tails: TailRecord[] = [];
  const save = () => writeFileSync(out, JSON.stringify({ ...result, tails, seconds: (performance.now() - t0) / 1000 }, null, 1));
  for (const shape of shapes) {
    const spec = `matmul ${shape.m}x${shape.n}x${shape.k}`;
    try {
      const r = await benchMatmul(b, shape, budget, seed, predict);
      const schedule = r.looptune?.schedule ?? null;
      tails.push({
        problem: r.problem, looptuneGflops: r.looptune?.gflops ?? null, cublasGflops: r.cublas?.gflops ?? null, ratio: r.ratio,
        schedule, searchSeconds: r.search.seconds, measurements: r.search.measurements,
        edges: schedule ? edgeBlocks(Schedule.parse(parseProblem(r.problem), schedule)) : null, check: r.check, record: r,
      });
    } catch (e) {
      log(`${spec} failed: ${(e as Error).stack ?? (e as Error).message}`);
      (result.errors as string[] | undefined) ?? (result.errors = []);
      (result.errors as string[]).push(`${spec}: ${(e as Error).message}`);
      if (e instanceof CudaError && STICKY_ERRORS.has(e.code)) b.gpu.recover();
    }
    save();
  }
  console.log(`device: ${(result.device as { name: string }).name}`);
  for (const r of tails) {
    const edges = r.edges ? `${r.edges.interiorBlocks}/${r.edges.blocks} blocks interior` : 'no edge split';
    console.log(`${r.problem.padEnd(28)} looptune ${r.looptuneGflops?.toFixed(0).padStart(6)} GFLOPS  cuBLAS ${r.cublasGflops?.toFixed(0).padStart(6)}  ${(100 * (r.ratio ?? 0)).toFixed(1)}%  tuned ${r.searchSeconds.toFixed(1)} s/${r.measurements}  err ${r.check?.maxRel.toExponential(1)}  ${edges}  ${r.schedule}`);
  }
  console.log(`wrote ${out} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

async function cmdRun(b: Bench, a: Args): Promise<void> {
  const spec = a._[1];
  if (!spec) throw new LoopTuneError('run: missing problem spec, e.g. looptune-cuda run "matmul 1024x1024x1024" --schedule "..."');
  const p = parseProblem(spec);
  const s = typeof a.schedule === 'string' ? Schedule.parse(p, a.schedule) : Schedule.initial(p);
  const k = compileCuda(s);
  console.log(`schedule: ${s.text()}`);
  console.log(`mapping: ${describeMapping(k.mapping)}`);
  console.log(`launch: grid (${k.launch.grid.join(', ')}) block (${k.launch.block.join(', ')}) shared ${k.launch.sharedBytes} B; PTX ${k.text!.length} chars in ${(k.codegenMicros / 1000).toFixed(2)} ms`);
  const points = p.vars.reduce((x, v) => x * v.extent, 1);
  if (points <= 5e7) {
    const v = await verifyKernel(k, s, b.gpu.runner(), { seed: 1 });
    console.log(`check vs interpreter: ${v.verified ? 'ok' : 'FAILED'} (error ${v.maxRelError.toExponential(2)}, tolerance ${v.tolerance.toExponential(2)})${v.error ? ` ${v.error}` : ''}`);
  }
  const ptrs = b.gpu.randomTensors(k, 3);
  const m = b.gpu.load(k);
  const t = b.gpu.time(k, ptrs, { minSeconds: 0.2 });
  console.log(`time: best ${(t.bestSeconds * 1e3).toFixed(4)} ms, median ${(t.medianSeconds * 1e3).toFixed(4)} ms, ${t.gflops.toFixed(1)} GFLOPS; ${m.registers} registers, ${m.localBytes} B local, JIT ${m.jitMs.toFixed(1)} ms`);
  b.gpu.freeAll(ptrs);
}

async function cmdSearch(b: Bench, a: Args): Promise<void> {
  const spec = a._[1];
  if (!spec) throw new LoopTuneError('search: missing problem spec');
  const p = parseProblem(spec);
  if (typeof a.records === 'string') b.records = RecordStore.open(a.records);
  const predict = await loadModel(typeof a.model === 'string' ? a.model : undefined);
  const r = await searchOn(b, p, num(a, 'budget', 64), num(a, 'seed', 1), predict);
  console.log(JSON.stringify(r, null, 1));
}

/** Random shapes for the cost model's record campaign: matmul, bmm and conv2d of many sizes. */
function randomShape(rng: Rng): string {
  const pick = <T>(xs: readonly T[]) => rng.pick(xs);
  const r = rng.next();
  if (r < 0.45) {
    const dim = () => (rng.next() < 0.8 ? pick([128, 256, 384, 512, 768, 1024, 1536, 2048]) : rng.int(100, 1500));
    return `matmul ${dim()}x${dim()}x${dim()}`;
  }
  if (r < 0.6) return `bmm b${pick([2, 4, 8, 16])} m${pick([64, 128, 256, 512])} n${pick([64, 128, 256, 512])} k${pick([64, 128, 256, 512])}`;
  const c = pick([3, 16, 32, 64, 128, 256]);
  const k = pick([32, 64, 128, 256, 512]);
  const hw = pick([9, 16, 30, 32, 58, 64]);
  const f = pick([1, 3, 3, 5]);
  return `conv2d n1 c${c} h${hw + f - 1} w${hw + f - 1} k${k} r${f} s${f} stride1`;
}

async function cmdCollect(b: Bench, a: Args): Promise<void> {
  const path = str(a, 'records', '');
  if (!path) throw new LoopTuneError('collect: --records <file.jsonl> is required');
  b.records = RecordStore.open(path);
  const rng = new Rng(num(a, 'seed', 5));
  const problems = num(a, 'problems', 24);
  const budget = num(a, 'budget', 48);
  const t0 = performance.now();
  for (let i = 0; i < problems; i++) {
    const spec = randomShape(rng);
    try {
      const r = await searchOn(b, parseProblem(spec), budget, 100 + i);
      log(`collect ${i + 1}/${problems} ${spec}: ${r.measurements} schedules, best ${r.gflops.toFixed(0)} GFLOPS, ${r.seconds.toFixed(1)} s`);
    } catch (e) {
      log(`collect ${spec}: ${(e as Error).message.split('\n')[0]}`);
      if (e instanceof CudaError && STICKY_ERRORS.has(e.code)) b.gpu.recover();
    }
  }
  console.log(`collect: ${problems} problems in ${((performance.now() - t0) / 1000).toFixed(0)} s -> ${path}`);
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const cmd = a._[0] ?? 'help';
  if (cmd === 'help' || a.help) {
    console.log('usage: looptune-cuda info | run <spec> [--schedule S] | search <spec> [--budget N] [--model M] [--records F] | collect --records F [--problems N] [--budget N] | fuzz [--cases N] [--seed S] [--ops a,b] [--scale X] [--out F] | bench [--sizes 1024,2048,4096] [--budget N] [--conv-budget N] [--fuzz N] [--model M] [--records F] [--out F] | tails [--shapes 1000x1000x1000,...] [--budget N] [--seed S] [--model M] [--out F]');
    return;
  }
  const b = new Bench();
  switch (cmd) {
    case 'info': {
      const blas = b.cublas();
      console.log(JSON.stringify({ device: b.gpu.device.info(), cublas: blas ? { path: blas.path, version: blas.version } : null }, null, 1));
      return;
    }
    case 'run': return cmdRun(b, a);
    case 'search': return cmdSearch(b, a);
    case 'collect': return cmdCollect(b, a);
    case 'fuzz': {
      const ops = typeof a.ops === 'string' ? a.ops.split(',') : CUDA_FUZZ_OPS;
      const r = await cmdFuzz(b, num(a, 'cases', 500), num(a, 'seed', 1), ops, num(a, 'scale', 1));
      const text = JSON.stringify(r, null, 1);
      if (typeof a.out === 'string') writeFileSync(a.out, text);
      console.log(`fuzz: ${r.cases} cases, ${r.mismatches} mismatches, ${r.crashes} crashes, ${r.codegenErrors} codegen errors, ${r.seconds.toFixed(1)} s`);
      if (r.failures.length) console.log(JSON.stringify(r.failures.slice(0, 5), null, 1));
      return;
    }
    case 'bench': return cmdBench(b, a);
    case 'tails': return cmdTails(b, a);
  }
  throw new LoopTuneError(`unknown command '${cmd}' (expected info, run, search, collect, fuzz, bench, tails)`);
}

main().catch((e) => {
  if (e instanceof LoopTuneError || e instanceof CudaError) {
    console.error(`looptune-cuda: ${e.message}`);
    process.exit(1);
  }
  console.error(e);
  process.exit(2);
});
