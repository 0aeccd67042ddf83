/**
 * looptune on the GPU: the device entry point (bundled by targets/cuda/bundle.ts) and the cuda
 * benchmark. Commands:
 *
 *   info                                  device, driver, cuBLAS
 *   run <spec> [--schedule S]             compile, check (against the interpreter when small, else
 *                                         cuBLAS for matmul), time; prints GFLOPS and the launch
 *   search <spec> [--budget N]            evolutionary search over the tuned schedule families
 *                                         (templates.ts) for matmul/bmm/conv, random GPU schedules
 *                                         otherwise; prints the best schedule
 *   fuzz [--cases N] [--seed S] [--ops a,b] [--scale X]
 *                                         differential fuzz on the GPU against the interpreter
 *   bench [--sizes 1024,2048,4096] [--budget N] [--conv-budget N] [--fuzz N] [--out F]
 *                                         everything the report needs, in one process: fuzz,
 *                                         matmul vs cuBLAS sgemm, ResNet-18 conv2d layers vs
 *                                         im2col + cuBLAS, with search (tuning) time per problem
 *
 * Every figure is a ratio measured side by side in this process (CUDA events, best of repeated
 * launches; medians are reported too). The search is this file's own (evolution over template
 * parameters: tile sizes, thread layout, register tile, reduction slice, staging); the lead's
 * agent/search searchers work on action sequences and do not propose GPU bindings.
 */
import { writeFileSync } from 'node:fs';
import { LoopTuneError } from '../ir/errors.ts';
import { elementCount, type Problem } from '../ir/problem.ts';
import { Rng } from '../ir/random.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { im2colFor } from '../targets/cuda/baselines.ts';
import { CUDA_FUZZ_OPS, fuzzCuda, randomCudaSchedule, type CudaFuzzReport } from '../targets/cuda/fuzz.ts';
import { describeMapping, gpuMapping } from '../targets/cuda/mapping.ts';
import { STICKY_ERRORS } from '../targets/cuda/runner.ts';
import { randomArray } from '../ir/interpret.ts';
import { compileCuda } from '../targets/cuda/target.ts';
import { familyOf, templateSchedule, type TemplateParams } from '../targets/cuda/templates.ts';
import { verifyKernel } from '../targets/verify.ts';
import { CudaTuner, GEMM_SEEDS, CONV_SEEDS, type Candidate, type CudaSearchResult } from '../targets/cuda/tuner.ts';
import { CudaError } from '../targets/cuda/driver.ts';

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

class Bench extends CudaTuner {}

/** Threads a template schedule launches in all (random draws prefer ones that fill the machine). */
function gridThreads(p: Problem, params: TemplateParams): number {
  const s = templateSchedule(p, params);
  if (!s) return 0;
  try {
    const m = gpuMapping(s);
    return m.blocks * m.threads;
  } catch {
    return 0;
  }
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
  search: Omit<CudaSearchResult, 'best'>;
  defaultSchedule: { schedule: string; gflops: number } | null;
}

function benchMatmul(b: Bench, size: number, budget: number, rng: Rng): MatmulRecord {
  const p = parseProblem(`matmul ${size}x${size}x${size}`);
  const A = b.upload(randomArray(size * size, 11));
  const B = b.upload(randomArray(size * size, 12));
  const C = b.upload(randomArray(size * size, 13));
  const ptrs = [C, A, B];
  const flops = 2 * size ** 3;
  const blas = b.cublas();
  let cublas: MatmulRecord['cublas'] = null;
  if (blas) {
    const t = b.gpu.timeLaunches(() => blas.gemm(size, size, size, A, B, C), flops, { minSeconds: 0.3 });
    cublas = { gflops: t.gflops, bestMs: t.bestSeconds * 1e3, medianMs: t.medianSeconds * 1e3 };
    log(`matmul ${size}: cuBLAS ${t.gflops.toFixed(0)} GFLOPS`);
  }
  const sms = b.gpu.device.info().multiprocessors;
  const sr = b.search(p, ptrs, budget, GEMM_SEEDS, rng, 0.02, sms * 256);
  log(`matmul ${size}: search ${sr.evaluations} schedules in ${sr.seconds.toFixed(1)} s, best ${sr.best?.gflops.toFixed(0)} GFLOPS ${sr.best?.schedule}`);
  let best: Candidate | null = null;
  let check: MatmulRecord['check'] = null;
  let noCap: MatmulRecord['noRegisterCap'] = null;
  if (sr.best) {
    const s = Schedule.parse(p, sr.best.schedule);
    const again = b.evaluate(s, ptrs, 0.3, {}, sr.best.params);
    best = typeof again === 'string' ? sr.best : again;
    const nc = b.evaluate(s, ptrs, 0.1, { maxRegisters: 'none' });
    if (typeof nc !== 'string') noCap = { gflops: nc.gflops, registers: nc.registers };
    if (blas) {
      // correctness at full size: same inputs, C = 0, ours vs cuBLAS
      const zero = new Float32Array(size * size);
      const C1 = b.upload(zero);
      const C2 = b.upload(zero);
      const k = compileCuda(s);
      b.gpu.launch(k, [C1, A, B]);
      blas.gemm(size, size, size, A, B, C2);
      b.gpu.device.synchronize();
      const o1 = new Float32Array(size * size);
      const o2 = new Float32Array(size * size);
      b.gpu.device.download(o1, C1);
      b.gpu.device.download(o2, C2);
      check = relErrors(o1, o2);
      b.gpu.unload(k);
      b.gpu.freeAll([C1, C2]);
    }
  }
  let def: MatmulRecord['defaultSchedule'] = null;
  if (size <= 1024) {
    const d = b.evaluate(Schedule.initial(p), ptrs, 0.05);
    if (typeof d !== 'string') def = { schedule: d.mapping, gflops: d.gflops };
  }
  b.gpu.freeAll(ptrs);
  const { best: _b, ...rest } = sr;
  return {
    problem: p.spec, cublas, looptune: best,
    ratio: best && cublas ? best.gflops / cublas.gflops : null,
    ratioMedian: best && cublas ? cublas.medianMs / best.medianMs : null,
    check, noRegisterCap: noCap, search: rest, defaultSchedule: def,
  };
}

interface ConvRecord {
  problem: string;
  layer: string;
  baseline: { method: string; gflops: number; bestMs: number; medianMs: number; gemmOnlyGflops: number; gemmOnlyMs: number } | null;
  looptune: Candidate | null;
  ratio: number | null;
  ratioVsGemmOnly: number | null;
  check: { maxAbs: number; maxRel: number; norm: number } | null;
  search: Omit<CudaSearchResult, 'best'>;
}

function benchConv(b: Bench, layer: string, spec: string, budget: number, rng: Rng): ConvRecord {
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
  const sr = b.search(p, ptrs, budget, CONV_SEEDS, rng, 0.02, b.gpu.device.info().multiprocessors * 256);
  log(`${layer}: search ${sr.evaluations} in ${sr.seconds.toFixed(1)} s, best ${sr.best?.gflops.toFixed(0)} GFLOPS ${sr.best?.schedule}`);
  let best: Candidate | null = null;
  let check: ConvRecord['check'] = null;
  if (sr.best) {
    const s = Schedule.parse(p, sr.best.schedule);
    const again = b.evaluate(s, ptrs, 0.2, {}, sr.best.params);
    best = typeof again === 'string' ? sr.best : again;
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
  const { best: _b, ...rest } = sr;
  return {
    problem: p.spec, layer, baseline, looptune: best,
    ratio: best && baseline ? best.gflops / baseline.gflops : null,
    ratioVsGemmOnly: best && baseline ? best.gflops / baseline.gemmOnlyGflops : null,
    check, search: rest,
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
    search: 'bench/cuda.ts evolution over templates.ts parameters (tile sizes, thread layout, register tile, reduction slice, split reduction, staging), seeded with 8-9 points (hand-picked, and the winners of earlier runs on an H200), then random members that launch >= 256 threads per multiprocessor, then mutations of the best six; each distinct schedule compiled (PTX + driver JIT) and timed once (>= 20 ms of samples); the best re-timed (>= 0.3 s) and checked against cuBLAS / im2col+cuBLAS on the same inputs',
  };
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
  const rng = new Rng(num(a, 'seed', 20261122));
  const sizes = str(a, 'sizes', '1024,2048,4096').split(',').filter((x) => x).map(Number);
  const matmul: MatmulRecord[] = [];
  for (const n of sizes) {
    await phase(`matmul ${n}`, () => {
      matmul.push(benchMatmul(b, n, num(a, 'budget', 56), rng));
      result.matmul = matmul;
      save();
    });
  }
  const conv: ConvRecord[] = [];
  const only = typeof a.layers === 'string' ? a.layers.split(',').map(Number) : null;
  const layers = a['no-conv'] ? [] : RESNET18_LAYERS.filter((_, i) => !only || only.includes(i));
  for (const [layer, spec] of layers) {
    await phase(layer, () => {
      conv.push(benchConv(b, layer, spec, num(a, 'conv-budget', 56), rng));
      result.conv = conv;
      save();
    });
  }
  result.seconds = (performance.now() - t0) / 1000;
  save();
  // summary table
  console.log(`device: ${(result.device as { name: string }).name}`);
  for (const r of matmul) {
    console.log(`${r.problem.padEnd(24)} looptune ${r.looptune?.gflops.toFixed(0).padStart(6)} GFLOPS  cuBLAS ${r.cublas?.gflops.toFixed(0).padStart(6)}  ${(100 * (r.ratio ?? 0)).toFixed(1)}%  (median ${(100 * (r.ratioMedian ?? 0)).toFixed(1)}%)  tuned ${r.search.seconds.toFixed(1)} s/${r.search.evaluations}  err ${r.check?.maxRel.toExponential(1)}  ${r.looptune?.schedule}`);
  }
  for (const r of conv) {
    console.log(`${r.layer.padEnd(14)} looptune ${r.looptune?.gflops.toFixed(0).padStart(6)}  im2col+cuBLAS ${r.baseline?.gflops.toFixed(0).padStart(6)}  ${(100 * (r.ratio ?? 0)).toFixed(1)}%  (gemm only ${(100 * (r.ratioVsGemmOnly ?? 0)).toFixed(1)}%)  tuned ${r.search.seconds.toFixed(1)} s  err ${r.check?.maxRel.toExponential(1)}  ${r.looptune?.schedule}`);
  }
  console.log(`wrote ${out} (${(result.seconds as number).toFixed(0)} s)`);
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
  const budget = num(a, 'budget', 40);
  const rng = new Rng(num(a, 'seed', 1));
  const ptrs = p.tensors.map((t, i) => b.upload(randomArray(elementCount(t), 31 + i)));
  let best: Candidate | null = null;
  const t0 = performance.now();
  if (familyOf(p)) {
    const r = b.search(p, ptrs, budget, familyOf(p) === 'gemm' ? GEMM_SEEDS : CONV_SEEDS, rng);
    best = r.best;
  } else {
    const seen = new Set<string>();
    for (let i = 0; i < budget * 4 && seen.size < budget; i++) {
      const { schedule } = randomCudaSchedule(p, rng);
      if (seen.has(schedule.text())) continue;
      seen.add(schedule.text());
      const c = b.evaluate(schedule, ptrs, 0.02);
      if (typeof c !== 'string' && (!best || c.gflops > best.gflops)) best = c;
    }
  }
  b.gpu.freeAll(ptrs);
  console.log(JSON.stringify({ problem: p.spec, seconds: (performance.now() - t0) / 1000, best }, null, 1));
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const cmd = a._[0] ?? 'help';
  if (cmd === 'help' || a.help) {
    console.log('usage: looptune-cuda info | run <spec> [--schedule S] | search <spec> [--budget N] | fuzz [--cases N] [--seed S] [--ops a,b] [--scale X] [--out F] | bench [--sizes 1024,2048,4096] [--budget N] [--conv-budget N] [--fuzz N] [--out F]');
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
  }
  throw new LoopTuneError(`unknown command '${cmd}' (expected info, run, search, fuzz, bench)`);
}

main().catch((e) => {
  if (e instanceof LoopTuneError || e instanceof CudaError) {
    console.error(`looptune-cuda: ${e.message}`);
    process.exit(1);
  }
  console.error(e);
  process.exit(2);
});
