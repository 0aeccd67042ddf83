/**
 * Tensor cores on the GPU (issue #18): looptune's bf16 / f16 / tf32 matmul kernels (loopnest/
 * gpu-mma.ts + targets/cuda/mma-ptx.ts) against cublasGemmEx at the same precision, in one process,
 * plus the GPU differential fuzz per precision. Bundled by targets/cuda/bundle.ts as
 * `.device/looptune/tc.sh`. Commands:
 *
 *   bench [--types bf16,f16,tf32] [--shapes 2048x2048x2048,...] [--stages 2,3,4] [--kernels wgmma,mma]
 *         [--fuzz N] [--peers triton.json] [--records F.jsonl] [--model M --screen K] [--out F]
 *       per problem: every tile point of the tile tables (targets/cuda/mma-tiles.ts: sm_90a wgmma
 *       and mma.sync, as --kernels says) at every pipeline depth is compiled and timed (the tuning
 *       time is the wall time of that sweep); the best of each kernel family is checked on the GPU
 *       against the typed oracle (sampled outputs) and reported against cuBLAS on buffers of the
 *       same shapes (`kernels`), the better of them as `looptune`; --peers merges the Triton
 *       peer's JSON (bench/peers/triton-matmul.py, run beside it by python3 on the GPU machine).
 *       Tiles include split-k twins where a tile's grid is too small for the GPU (mma-tiles.ts).
 *       --records appends every timing (and failure) as a tuning record (env/records.ts; the
 *       depth is in the schedule text, `k:32s3`): what the cuda cost model is trained on.
 *       --jit-only: only JIT-loads every candidate (fills the driver's cache, as conv's does).
 *       --model M --screen K: the cost model M ranks the candidates (compiled, never loaded) and
 *       only its top K are JIT-loaded and timed; the full sweep runs after it in the same process,
 *       so `screen` reports both bests and both tuning times
 *   fuzz [--cases N] [--types ...] [--seed S] [--kernels wgmma,mma]
 *       random small typed matmuls x random tile points (of both families; wgmma ones split over k
 *       in a third of the draws) and depths, run on the
 *       GPU, checked with the typed tolerance (ir/dtype.ts typeTolerance); mismatches are listed
 *   conv, convfuzz: tensor-core convolutions against cuDNN (bench/cuda-conv.ts says how)
 *
 * Every figure is the best of repeated launches timed with CUDA events (medians kept too).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { LoopTuneError } from '../ir/errors.ts';
import { checkSampledAgainstOracle, randomArray } from '../ir/interpret.ts';
import { elementCount, type Problem } from '../ir/problem.ts';
import { Rng } from '../ir/random.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { mmaScheduleText, planMma, type MmaType } from '../loopnest/gpu-mma.ts';
import { setPipelineDepth } from '../ir/transforms.ts';
import { RecordStore } from '../env/records.ts';
import { CostModel } from '../agent/costmodel/model.ts';
import { gpuHostKey } from '../targets/runtime/host.ts';
import { wgmmaScheduleText } from '../loopnest/gpu-wgmma.ts';
import { Cublas, timeGemmTyped } from '../targets/cuda/cublas.ts';
import { Cudnn } from '../targets/cuda/cudnn.ts';
import { benchConv, fuzzConvs, jitConv, resnet50Convs, torchConvPeers } from './cuda-conv.ts';
import { MMA_TILES, mmaSchedules, WGMMA_TILES, wgmmaSchedules } from '../targets/cuda/mma-tiles.ts';
import { CudaRunner } from '../targets/cuda/runner.ts';
import { modelRanking, sweepKernels } from './cuda-sweep.ts';
import { compileCuda, isCudaKernel, type CudaKernel } from '../targets/cuda/target.ts';
import type { KernelRunner } from '../targets/verify.ts';

type Args = { _: string[]; [k: string]: string | boolean | string[] };

function parseArgs(argv: string[]): Args {
  const out: Args = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      out._.push(a);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[a.slice(2)] = true;
    else {
      out[a.slice(2)] = next;
      i++;
    }
  }
  return out;
}
const str = (a: Args, k: string, d: string): string => (typeof a[k] === 'string' ? (a[k] as string) : d);
const num = (a: Args, k: string, d: number): number => (typeof a[k] === 'string' ? Number(a[k]) : d);
const log = (...x: unknown[]) => console.error('[cuda-tc]', ...x);

const DEFAULT_SHAPES = [
  '2048x2048x2048', '4096x4096x4096', '8192x8192x8192',
  // BERT-base (sequence 128): QKV/output projections and the FFN, as M x N x K
  '768x3072x128', '3072x768x128', '768x768x128', '128x768x768', '128x3072x768', '128x768x3072',
];
const TYPES: readonly MmaType[] = ['bf16', 'f16', 'tf32'];

/** The tensor-core instruction families: sm_90a warpgroup MMA and warp-level mma.sync. */
type KernelFamily = 'wgmma' | 'mma';
const FAMILIES: readonly KernelFamily[] = ['wgmma', 'mma'];

function familiesOf(a: Args): KernelFamily[] {
  const out = str(a, 'kernels', FAMILIES.join(',')).split(',') as KernelFamily[];
  for (const f of out) if (!FAMILIES.includes(f)) throw new LoopTuneError(`--kernels: unknown kernel family '${f}' (expected ${FAMILIES.join(', ')})`);
  return out;
}

function familyOf(k: CudaKernel): KernelFamily {
  return k.gpu.mma?.wgmma ? 'wgmma' : 'mma';
}

interface Timed {
  kernel: KernelFamily;
  schedule: string;
  stages: number;
  gflops: number;
  bestMs: number;
  medianMs: number;
}

type Check = { ok: boolean; maxError: number; tolerance: number; checked: number };

/** One family's best on a problem, checked on the GPU, against cuBLAS. */
interface FamilyRecord {
  candidates: number;
  failed: number;
  best: Timed | null;
  /** best / cuBLAS best */
  ratio: number | null;
  check: Check | null;
  note?: string;
}

interface ProblemRecord {
  problem: string;
  type: MmaType;
  candidates: number;
  failed: number;
  tuningSeconds: number;
  /** the better of the families' checked bests */
  looptune: Timed | null;
  cublas: { library: string; gflops: number; bestMs: number; medianMs: number } | null;
  /** looptune best / cuBLAS best */
  ratio: number | null;
  check: Check | null;
  kernels: Partial<Record<KernelFamily, FamilyRecord>>;
  triton?: { gflops: number; config?: string; ratioToLooptune: number | null };
  screen?: ScreenRecord;
  note?: string;
}

function typedProblem(shape: string, type: MmaType) {
  return parseProblem(`matmul ${shape} ${type}`);
}

/** Every tile point x depth of the chosen families for a problem (the depth in the schedule: `k:32s3`); the ones planMma refuses are left out. */
function candidateSchedules(spec: string, stages: readonly number[], families: readonly KernelFamily[]): Schedule[] {
  const p = parseProblem(spec);
  const out: Schedule[] = [];
  const schedules = [...(families.includes('wgmma') ? wgmmaSchedules(p) : []), ...(families.includes('mma') ? mmaSchedules(p) : [])];
  for (const s of schedules) {
    for (const depth of stages) {
      const d = setPipelineDepth(s, depth);
      const staged = d.ok ? d.schedule : s;
      try {
        planMma(staged);
        out.push(staged);
      } catch (e) {
        if (!(e instanceof LoopTuneError)) throw e;
      }
    }
  }
  return out;
}

/** Appends a sweep's timings (and failures) as tuning records of the cuda target. */
function recordSweep(records: RecordStore | null, host: string, k: CudaKernel, t: { gflops: number; bestSeconds: number; medianSeconds: number } | { error: string }): void {
  if (!records) return;
  const s = Schedule.parse(k.program.problem, k.program.schedule);
  records.add({
    problem: k.program.problem.spec, target: 'cuda', schedule: s.text(), hash: s.hash(), timestamp: new Date().toISOString(), host,
    ...('error' in t ? { gflops: 0, error: t.error } : { gflops: t.gflops, bestSeconds: t.bestSeconds, medianSeconds: t.medianSeconds }),
  });
}

/** The sweep's options: where timings go, and the cost-model screen. */
interface SweepOptions {
  records: RecordStore | null;
  host: string;
  model: CostModel | null;
  screen: number;
}

/** The cost model's screen of one problem: its top K timed, beside the full sweep's best. */
interface ScreenRecord {
  keep: number;
  of: number;
  /** featurize + predict + compile and time the K */
  seconds: number;
  best: Timed | null;
  /** screened best / full sweep's best */
  ratioToFull: number | null;
  /** the full sweep's best candidate's place in the model's ranking (1 = first) */
  fullBestRank: number | null;
}

/** The screened sweep: the model's top K of the candidates, compiled, loaded and timed. */
function screenSweep(gpu: CudaRunner, candidates: readonly Schedule[], o: SweepOptions): { record: ScreenRecord; ranking: string[] } {
  const t0 = performance.now();
  const ranked = modelRanking(o.model!, candidates);
  const top = ranked.slice(0, o.screen);
  let best: Timed | null = null;
  const kernels = top.map((s) => compileCuda(s));
  sweepKernels(gpu, kernels, (k, t) => {
    if (!best || t.gflops > best.gflops) best = { kernel: familyOf(k), schedule: k.program.schedule, stages: k.gpu.mma!.stages, gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3 };
  }, () => undefined);
  return { record: { keep: top.length, of: candidates.length, seconds: (performance.now() - t0) / 1000, best, ratioToFull: null, fullBestRank: null }, ranking: ranked.map((s) => s.text()) };
}

async function benchProblem(gpu: CudaRunner, blas: Cublas | null, shape: string, type: MmaType, stages: readonly number[], families: readonly KernelFamily[], o: SweepOptions): Promise<ProblemRecord> {
  const p = typedProblem(shape, type);
  const [M, N, K] = p.vars.map((v) => v.extent) as [number, number, number];
  const record: ProblemRecord = { problem: p.spec, type, candidates: 0, failed: 0, tuningSeconds: 0, looptune: null, cublas: null, ratio: null, check: null, kernels: {} };
  const candidates = candidateSchedules(p.spec, stages, families);
  // the screen first, so that its JIT times are not served from the full sweep's cache
  const screen = o.model && o.screen > 0 ? screenSweep(gpu, candidates, o) : null;
  const t0 = performance.now();
  const kernels = candidates.map((s) => compileCuda(s));
  record.candidates = kernels.length;
  if (kernels.length === 0) {
    record.note = 'no tile point of the tables divides this shape';
    return record;
  }
  const best = new Map<KernelFamily, { kernel: CudaKernel; timed: Timed }>();
  for (const k of kernels) {
    const f = familyOf(k);
    const fr = (record.kernels[f] ??= { candidates: 0, failed: 0, best: null, ratio: null, check: null });
    fr.candidates++;
  }
  sweepKernels(gpu, kernels, (k, t) => {
    const f = familyOf(k);
    const timed: Timed = { kernel: f, schedule: k.program.schedule, stages: k.gpu.mma!.stages, gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3 };
    const b = best.get(f);
    if (!b || t.gflops > b.timed.gflops) best.set(f, { kernel: k, timed });
    recordSweep(o.records, o.host, k, t);
  }, (k, message, sticky) => {
    const f = familyOf(k);
    recordSweep(o.records, o.host, k, { error: message });
    record.failed++;
    record.kernels[f]!.failed++;
    log(`${p.spec}: ${k.program.schedule} x${k.gpu.mma?.stages}: ${message}`);
    // the context went with every buffer: noted
    if (sticky) record.kernels[f]!.note = record.note = `kernel fault: ${k.program.schedule} x${k.gpu.mma?.stages}: ${message}`;
  });
  record.tuningSeconds = (performance.now() - t0) / 1000;
  if (screen) {
    const full = [...best.values()].reduce<Timed | null>((a, b) => (!a || b.timed.gflops > a.gflops ? b.timed : a), null);
    const sb = screen.record.best as Timed | null;
    screen.record.ratioToFull = full && sb ? sb.gflops / full.gflops : null;
    screen.record.fullBestRank = full ? screen.ranking.indexOf(Schedule.parse(p, full.schedule).text()) + 1 : null;
    record.screen = screen.record;
    log(`${p.spec}: screen top ${screen.record.keep} of ${screen.record.of} in ${screen.record.seconds.toFixed(1)} s: ${sb ? (sb.gflops / 1e3).toFixed(1) : '-'} TFLOPS = ${screen.record.ratioToFull?.toFixed(3) ?? '-'} of the full sweep's best (ranked ${screen.record.fullBestRank})`);
  }
  // each family's winner against the typed oracle on fresh inputs (sampled outputs: 8192^3 is 550 G points)
  const inputs = [randomArray(M * K, 41), randomArray(K * N, 42)];
  const init = randomArray(M * N, 43);
  for (const [f, b] of best) {
    const fr = record.kernels[f]!;
    fr.best = b.timed;
    const r = await gpu.run(b.kernel, [init, ...inputs], { guard: true });
    gpu.unload(b.kernel);
    fr.check = r.ok ? checkSampledAgainstOracle(p, inputs, init, r.output, 96, 3) : { ok: false, maxError: Infinity, tolerance: 0, checked: 0 };
    if (!r.ok) fr.note = r.error;
    // the overall best is the fastest family whose winner is correct
    if (fr.check.ok && (!record.looptune || b.timed.gflops > record.looptune.gflops)) {
      record.looptune = b.timed;
      record.check = fr.check;
    }
  }
  if (!record.looptune && best.size > 0) {
    record.check = { ok: false, maxError: Infinity, tolerance: 0, checked: 0 };
    record.note = `no family's best passed the check: ${[...best.keys()].map((f) => `${f} ${record.kernels[f]!.note ?? `error ${record.kernels[f]!.check?.maxError}`}`).join('; ')}`;
  }
  if (blas) {
    const t = timeGemmTyped(gpu, blas, type, M, N, K, { minSeconds: 0.1 });
    record.cublas = { library: blas.name, gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3 };
    if (record.looptune) record.ratio = record.looptune.gflops / t.gflops;
    for (const fr of Object.values(record.kernels)) if (fr.best) fr.ratio = fr.best.gflops / t.gflops;
  }
  const perFamily = Object.entries(record.kernels).map(([f, fr]) => `${f} ${fr.best ? `${(fr.best.gflops / 1e3).toFixed(1)} TFLOPS = ${fr.ratio?.toFixed(2) ?? '-'} (${fr.best.schedule} x${fr.best.stages}, check ${fr.check?.ok ?? '-'})` : '-'}`).join(', ');
  log(`${p.spec}: ${perFamily}; cuBLAS ${record.cublas ? (record.cublas.gflops / 1e3).toFixed(1) : '-'} TFLOPS; best ratio ${record.ratio?.toFixed(2) ?? '-'}, ${record.candidates} candidates in ${record.tuningSeconds.toFixed(1)} s`);
  return record;
}

interface FuzzReport {
  type: MmaType;
  cases: number;
  passed: number;
  /** cases and passes per kernel family */
  byKernel: Partial<Record<KernelFamily, { cases: number; passed: number }>>;
  mismatches: { spec: string; schedule: string; stages: number; error: string }[];
  worstError: number;
}

async function fuzzType(gpu: CudaRunner, type: MmaType, cases: number, seed: number, families: readonly KernelFamily[]): Promise<FuzzReport> {
  const rng = new Rng(seed);
  const report: FuzzReport = { type, cases: 0, passed: 0, byKernel: {}, mismatches: [], worstError: 0 };
  // wgmma takes bf16 / f16 only; tf32 fuzzes mma.sync
  const tiles = [
    ...(families.includes('mma') ? MMA_TILES.filter((t) => t.bm <= 128 && t.bn <= 128).map((t) => ({ t, split: 1, text: (p: Problem) => mmaScheduleText(p, t) })) : []),
    // wgmma tiles also split k over blocks (split-k), one draw in three
    ...(families.includes('wgmma') && type !== 'tf32' ? WGMMA_TILES.flatMap((t) => [1, 1, 2, 3, 4].map((split) => ({ t, split, text: (p: Problem) => wgmmaScheduleText(p, { ...t, splitK: split }) }))) : []),
  ];
  if (tiles.length === 0) throw new LoopTuneError(`fuzz: no tile of --kernels ${families.join(',')} takes ${type}`);
  while (report.cases < cases) {
    const { t, split, text } = tiles[rng.int(0, tiles.length - 1)]!;
    const M = t.bm * rng.int(1, 3), N = t.bn * rng.int(1, 3), K = t.bk * split * rng.int(1, split > 1 ? 4 : 12);
    const p = parseProblem(`matmul ${M}x${N}x${K} ${type}`);
    let kernel: CudaKernel;
    const stages = rng.int(2, 4);
    try {
      const s = Schedule.parse(p, text(p));
      planMma(s, { stages });
      kernel = compileCuda(s, { stages });
    } catch (e) {
      if (e instanceof LoopTuneError) continue;
      throw e;
    }
    report.cases++;
    const fam = (report.byKernel[familyOf(kernel)] ??= { cases: 0, passed: 0 });
    fam.cases++;
    const inputs = [randomArray(M * K, seed + report.cases * 3), randomArray(K * N, seed + report.cases * 3 + 1)];
    const init = randomArray(elementCount(p.tensors[0]!), seed + report.cases * 3 + 2);
    const r = await gpu.run(kernel, [init, ...inputs], { guard: true });
    gpu.unload(kernel);
    const c = r.ok ? checkSampledAgainstOracle(p, inputs, init, r.output, 128, report.cases) : null;
    if (c) report.worstError = Math.max(report.worstError, c.maxError / c.tolerance);
    if (c?.ok) {
      report.passed++;
      fam.passed++;
    } else report.mismatches.push({ spec: p.spec, schedule: kernel.program.schedule, stages, error: r.ok ? `error ${c!.maxError} > ${c!.tolerance}` : r.error });
    if (report.cases % 100 === 0) log(`fuzz ${type}: ${report.cases}/${cases}, ${report.mismatches.length} mismatches`);
  }
  return report;
}

/** Triton's results (bench/peers/triton-matmul.py's JSON) by spec. */
function tritonPeers(file: string | undefined): Map<string, { gflops: number; config?: string }> {
  const out = new Map<string, { gflops: number; config?: string }>();
  if (!file) return out;
  const data = JSON.parse(readFileSync(file, 'utf8')) as { results?: { spec: string; tflops: number; config?: string }[] };
  for (const r of data.results ?? []) out.set(r.spec, { gflops: r.tflops * 1e3, ...(r.config ? { config: r.config } : {}) });
  return out;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const cmd = a._[0] ?? 'bench';
  const types = str(a, 'types', TYPES.join(',')).split(',') as MmaType[];
  const families = familiesOf(a);
  for (const t of types) if (!TYPES.includes(t)) throw new LoopTuneError(`--types: unknown type '${t}' (expected ${TYPES.join(', ')})`);
  const gpu = new CudaRunner(0);
  const info = gpu.device.info();
  log(`${info.name}, driver ${info.driverVersion}`);
  if (cmd === 'fuzz') {
    const reports = [];
    for (const t of types) reports.push(await fuzzType(gpu, t, num(a, 'cases', 500), num(a, 'seed', 1), families));
    console.log(JSON.stringify(reports, null, 2));
    return;
  }
  if (cmd === 'convfuzz') {
    // each case's module is unloaded after its run (thousands would fill the context)
    const run: KernelRunner = async (k, tensors, o) => {
      const r = await gpu.run(k, tensors, o);
      if (isCudaKernel(k)) gpu.unload(k);
      return r;
    };
    console.log(JSON.stringify(await fuzzConvs(run, str(a, 'type', 'bf16'), num(a, 'cases', 300), num(a, 'seed', 1)), null, 2));
    return;
  }
  if (cmd === 'conv') {
    let dnn: Cudnn | null = null;
    try {
      dnn = new Cudnn();
    } catch (e) {
      log(`cuDNN unavailable: ${(e as Error).message}`);
    }
    const stages = str(a, 'stages', '2,3,4').split(',').map(Number);
    const all = resnet50Convs(num(a, 'batch', 32), str(a, 'type', 'bf16'), str(a, 'layers', 'all'));
    // --layer I: only the I-th (e.g. one JIT-filling process per layer)
    const layer = typeof a.layer === 'string' ? Number(a.layer) : null;
    if (layer !== null && !(Number.isInteger(layer) && layer >= 0 && layer < all.length)) throw new LoopTuneError(`--layer must be 0..${all.length - 1}, got '${String(a.layer)}'`);
    const specs = layer === null ? all : [all[layer]!];
    const choice = {
      stages, families, overwrite: a.overwrite === true,
      model: typeof a.model === 'string' ? await CostModel.load(a.model) : null, screen: num(a, 'screen', 0),
    };
    if (a['jit-only']) {
      for (const spec of specs) log(`${spec}: JIT-loaded in ${jitConv(gpu, spec, choice).toFixed(1)} s`);
      return;
    }
    const peers = torchConvPeers(typeof a.peers === 'string' ? readFileSync(a.peers, 'utf8') : null);
    const layers = [];
    for (const spec of specs) {
      const r = await benchConv(gpu, dnn, spec, choice);
      const peer = peers.get(r.problem);
      if (peer) r.torch = { gflops: peer, ratioToLooptune: r.looptune && r.check?.ok ? r.looptune.gflops / peer : null };
      layers.push(r);
    }
    const result = { device: info, cudnn: dnn?.name ?? null, date: new Date().toISOString(), stages, kernels: families, overwrite: choice.overwrite, layers };
    const out = str(a, 'out', 'bench/results/cuda-tc-conv.json');
    writeFileSync(out, JSON.stringify(result, null, 2));
    log(`wrote ${out}`);
    return;
  }
  if (cmd !== 'bench') throw new LoopTuneError(`unknown command '${cmd}' (expected bench, fuzz, conv or convfuzz)`);
  let blas: Cublas | null = null;
  try {
    blas = new Cublas();
  } catch (e) {
    log(`cuBLAS unavailable: ${(e as Error).message}`);
  }
  const shapes = str(a, 'shapes', DEFAULT_SHAPES.join(',')).split(',');
  const stages = str(a, 'stages', '2,3,4').split(',').map(Number);
  const peers = tritonPeers(typeof a.peers === 'string' ? a.peers : undefined);
  const problems: ProblemRecord[] = [];
  const screen = num(a, 'screen', 0);
  if (screen > 0 && typeof a.model !== 'string') throw new LoopTuneError('--screen K needs --model M (a cuda cost model directory)');
  const sweep: SweepOptions = {
    records: typeof a.records === 'string' ? RecordStore.open(a.records) : null, host: gpuHostKey(info),
    model: typeof a.model === 'string' ? await CostModel.load(a.model) : null, screen,
  };
  if (a['jit-only']) {
    // fills the driver's compute cache (CUDA_CACHE_MAXSIZE) for a later timed run, nothing timed
    for (const t of types) {
      for (const shape of shapes) {
        const t0 = performance.now();
        const all = candidateSchedules(typedProblem(shape, t).spec, stages, families);
        for (const s of all) {
          const k = compileCuda(s);
          gpu.load(k);
          gpu.unload(k);
        }
        log(`matmul ${shape} ${t}: ${all.length} candidates JIT-loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    }
    return;
  }
  for (const t of types) {
    for (const shape of shapes) {
      const r = await benchProblem(gpu, blas, shape, t, stages, families, sweep);
      const peer = peers.get(r.problem);
      if (peer) r.triton = { ...peer, ratioToLooptune: r.looptune ? r.looptune.gflops / peer.gflops : null };
      problems.push(r);
    }
  }
  const fuzzCases = num(a, 'fuzz', 0);
  const fuzz = [];
  for (const t of fuzzCases > 0 ? types : []) fuzz.push(await fuzzType(gpu, t, fuzzCases, 7, families));
  const result = { device: info, cublas: blas?.name ?? null, date: new Date().toISOString(), kernels: families, stages, problems, fuzz };
  const out = str(a, 'out', 'bench/results/cuda-tc.json');
  writeFileSync(out, JSON.stringify(result, null, 2));
  log(`wrote ${out}`);
}

main().catch((e) => {
  console.error(e instanceof LoopTuneError ? `error: ${e.message}` : e);
  process.exit(1);
});
