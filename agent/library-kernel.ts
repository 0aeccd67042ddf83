/**
 * The vendor-library alternative of a matmul-shaped task (issue 17 item 3, Woodpecker-DL's choice
 * per layer): OpenBLAS `cblas_sgemm` in this process, with the problem's epilogue applied after
 * the GEMM in tight JavaScript loops, behind the same `run(inputs, output)` / `dispose()` shape
 * as compileKernel's CompiledKernel, so a model executor can call either.
 *
 * Which problems are GEMMs is read from the accesses, not the op name (`gemmMapping`): every
 * variable of extent > 1 is a batch, M, N or K variable, and each of M, N and K must be a dense
 * row-major block of its tensors (a transposed A or B is fine: sgemm's trans flags). That maps
 *  - matmul (A [M,K], B [K,N]) and bmm (per-batch matrices; a batch loop of sgemm calls),
 *  - 1x1, stride-1, unpadded convs (conv1d/2d/3d): per image, out[K, HW] = W[K, C] · I[C, HW]; a
 *    grouped one is a batch of them, one per group (and image),
 * and refuses, in one line saying why, everything else (windows, strides, padding, pools,
 * elementwise ops, blocked NCHWc layouts).
 *
 * OpenBLAS in this process: it picks its kernel set and thread count when it loads, from the
 * environment. This machine's environment pins OPENBLAS_CORETYPE=Haswell and OPENBLAS_L2_SIZE
 * (slow AVX2 kernels; /work/shared/FACTS.md), so the library is loaded with those removed and
 * OPENBLAS_NUM_THREADS set to the first kernel's threads (targets/runtime/openblas.ts
 * openblasEnvironment), the environment restored right after. A later kernel on another thread
 * count calls openblas_set_num_threads, which 0.3.21 handles poorly for a while after (see the
 * header of targets/runtime/openblas.ts): a process should use one thread count. Its workers'
 * busy-wait after a call is cut short (OPENBLAS_THREAD_TIMEOUT=4 unless set): in-process they
 * share the cores with the generated kernels' libgomp team, which bounds its own spin likewise
 * (targets/runtime/threads.ts).
 */
import koffi from 'koffi';
import { fail } from '../ir/errors.ts';
import { elementCount, flops, tensorStrides, type EpilogueOp, type Problem } from '../ir/problem.ts';
import { parseProblem } from '../ir/spec.ts';
import { openblasEnvironment } from '../targets/runtime/openblas.ts';
import type { KernelTensor } from '../targets/runtime/in-process-kernel.ts';
import { defaultThreads, threadCountError } from '../targets/runtime/threads.ts';
import { openblasLibraryName } from '../targets/x86/device.ts';

/** One matrix operand of sgemm: which tensor (ABI index), transposed or not, its leading dimension. */
export interface GemmOperand {
  readonly tensor: number;
  readonly trans: boolean;
  readonly ld: number;
}

/** A batch variable: its extent and the element stride it moves each of C, A and B by. */
export interface GemmBatchVariable {
  readonly name: string;
  readonly extent: number;
  readonly c: number;
  readonly a: number;
  readonly b: number;
}

/** How a problem runs as row-major C[M×N] = op(A)[M×K] · op(B)[K×N], once per batch point. */
export interface GemmMapping {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly a: GemmOperand;
  readonly b: GemmOperand;
  /** C's leading dimension (C is never transposed) */
  readonly ldc: number;
  /** outermost first; empty for a single GEMM */
  readonly batch: readonly GemmBatchVariable[];
  /** sgemm calls per run: the product of the batch extents */
  readonly calls: number;
}

const INT32_MAX = 2 ** 31 - 1;

/** Why `problem` is not one (batched) row-major sgemm, or undefined when it is (see `gemmMapping`). */
export function whyNotGemm(problem: Problem): string | undefined {
  const r = mapGemm(problem);
  return typeof r === 'string' ? r : undefined;
}

/** The sgemm form of `problem`; fails in one line naming why it has none. */
export function gemmMapping(problem: Problem): GemmMapping {
  const r = mapGemm(problem);
  if (typeof r === 'string') fail(`${problem.spec} is not matmul-shaped: ${r} (the library runs matmul, bmm and 1x1 stride-1 unpadded convs)`);
  return r;
}

/** A group of variables that acts as one matrix dimension: dense row-major weights within the group. */
interface Group {
  readonly vars: readonly number[];
  readonly size: number;
  /** each variable's weight within the group (innermost 1, then the product of the inner extents) */
  readonly weight: ReadonlyMap<number, number>;
}

/** The variables sorted by their stride in `ref`, outermost first, with their row-major weights (groupStride checks a tensor against them). */
function denseGroup(vars: readonly number[], ref: readonly number[], extent: (v: number) => number): Group {
  const sorted = [...vars].sort((x, y) => ref[y]! - ref[x]!);
  const weight = new Map<number, number>();
  let w = 1;
  for (let i = sorted.length - 1; i >= 0; i--) {
    weight.set(sorted[i]!, w);
    w *= extent(sorted[i]!);
  }
  return { vars: sorted, size: w, weight };
}

/** The group's stride in a tensor whose strides are `s` (group stride × weight for every variable), or undefined when not dense there. */
function groupStride(g: Group, s: readonly number[]): number | undefined {
  if (g.vars.length === 0) return undefined;
  const inner = g.vars[g.vars.length - 1]!;
  const base = s[inner]!;
  if (!(base > 0)) return undefined;
  return g.vars.every((v) => s[v] === base * g.weight.get(v)!) ? base : NaN;
}

/** sgemm's form of a rows×cols matrix whose rows and columns move by these strides (undefined: a dimension of size 1). */
function matrixForm(tensor: number, rows: number, cols: number, rowStride: number | undefined, colStride: number | undefined): GemmOperand | undefined {
  if (Number.isNaN(rowStride) || Number.isNaN(colStride)) return undefined;
  if ((colStride ?? 1) === 1) {
    const ld = rowStride ?? cols;
    if (ld >= cols && ld <= INT32_MAX) return { tensor, trans: false, ld };
  }
  if ((rowStride ?? 1) === 1) {
    const ld = colStride ?? rows;
    if (ld >= rows && ld <= INT32_MAX) return { tensor, trans: true, ld };
  }
  return undefined;
}

function mapGemm(p: Problem): GemmMapping | string {
  if (p.combine !== 'fma' || p.inputs.length !== 2) return `${p.op} computes ${p.combine}, not a sum of products of two inputs`;
  const padded = p.tensors.find((t) => t.pad);
  if (padded) return `${padded.name} is padded`;
  if ([p.output, ...p.inputs].some((a) => (a.offset ?? 0) !== 0)) return 'an access starts at an offset';
  const strides = tensorStrides(p);
  const so = strides[0]!;
  const s0 = strides[p.inputs[0]!.tensor]!;
  const s1 = strides[p.inputs[1]!.tensor]!;
  const extent = (v: number) => p.vars[v]!.extent;
  const name = (v: number) => p.vars[v]!.name;
  if ([...so, ...s0, ...s1].some((s) => s < 0)) return 'an access runs backwards';
  const live = p.vars.map((_, v) => v).filter((v) => extent(v) > 1);
  const reduction: number[] = [];
  const output: number[] = [];
  for (const v of live) {
    const in0 = s0[v] !== 0, in1 = s1[v] !== 0;
    if (so[v] === 0) {
      if (!(in0 && in1)) return `it sums ${name(v)} over one input alone`;
      reduction.push(v);
    } else {
      if (!in0 && !in1) return `the output dimension ${name(v)} is read by no input`;
      output.push(v);
    }
  }
  // output variables innermost first: a run read by one input only (N, that input is B), then a
  // run read by the other input only (M, A); everything outside them is a batch loop
  output.sort((x, y) => so[x]! - so[y]!);
  const only = (v: number): 0 | 1 | undefined => (s0[v] !== 0 && s1[v] === 0 ? 0 : s1[v] !== 0 && s0[v] === 0 ? 1 : undefined);
  if (output.length > 0 && only(output[0]!) === undefined) return `its innermost output dimension ${name(output[0]!)} is read by both inputs (elementwise, not a GEMM)`;
  let i = 0;
  const bSide = output.length > 0 ? only(output[0]!)! : 1;
  const nVars: number[] = [];
  while (i < output.length && only(output[i]!) === bSide) nVars.push(output[i++]!);
  const mVars: number[] = [];
  while (i < output.length && only(output[i]!) === 1 - bSide) mVars.push(output[i++]!);
  const batchVars = output.slice(i).reverse();
  const [sa, sb] = bSide === 1 ? [s0, s1] : [s1, s0];
  const aTensor = p.inputs[1 - bSide]!.tensor, bTensor = p.inputs[bSide]!.tensor;

  const nGroup = denseGroup(nVars, so, extent);
  const mGroup = denseGroup(mVars, so, extent);
  const kGroup = denseGroup(reduction, sa, extent);
  const cCol = groupStride(nGroup, so), cRow = groupStride(mGroup, so);
  if ((cCol ?? 1) !== 1 || Number.isNaN(cRow)) return 'its output is not a dense row-major matrix per batch';
  const ldc = cRow ?? nGroup.size;
  if (ldc < nGroup.size || ldc > INT32_MAX) return 'its output rows overlap';
  const a = matrixForm(aTensor, mGroup.size, kGroup.size, groupStride(mGroup, sa), groupStride(kGroup, sa));
  if (!a) return `${p.tensors[aTensor]!.name} is not a dense matrix of its ${[...mVars, ...reduction].map(name).join(', ') || 'elements'}`;
  const b = matrixForm(bTensor, kGroup.size, nGroup.size, groupStride(kGroup, sb), groupStride(nGroup, sb));
  if (!b) return `${p.tensors[bTensor]!.name} is not a dense matrix of its ${[...reduction, ...nVars].map(name).join(', ') || 'elements'}`;
  const batch = batchVars.map((v) => ({ name: name(v), extent: extent(v), c: so[v]!, a: sa[v]!, b: sb[v]! }));
  return { m: mGroup.size, n: nGroup.size, k: kGroup.size, a, b, ldc, batch, calls: batch.reduce((x, v) => x * v.extent, 1) };
}

// ---------------------------------------------------------------------------------------------
// The epilogue, after the GEMM: one tight pass over the output per op

/** A dimension of the output's walk: its extent and the stride an epilogue operand moves by. */
interface WalkDim {
  readonly extent: number;
  readonly stride: number;
}

/**
 * The output's variables (dense, row-major: the walk is the output's own element order) with the
 * operand's strides, adjacent dimensions merged where the operand is contiguous across them too
 * (a residual becomes one run of the whole output; a conv's per-channel bias rows of H·W).
 */
function operandWalk(p: Problem, tensor: number): WalkDim[] {
  const strides = tensorStrides(p);
  const so = strides[0]!, sx = strides[tensor]!;
  const vars = p.vars.map((_, v) => v).filter((v) => so[v] !== 0 && p.vars[v]!.extent > 1).sort((x, y) => so[y]! - so[x]!);
  const dims: WalkDim[] = [];
  for (const v of vars) {
    const d = { extent: p.vars[v]!.extent, stride: sx[v]! };
    const last = dims[dims.length - 1];
    if (last && last.stride === d.stride * d.extent) dims[dims.length - 1] = { extent: last.extent * d.extent, stride: d.stride };
    else dims.push(d);
  }
  return dims.length > 0 ? dims : [{ extent: 1, stride: 0 }];
}

/** out[i] += x[operand offset of i], walking `dims` (outermost first, the output dense in that order). */
function addOperand(out: Float32Array, x: Float32Array, dims: readonly WalkDim[]): void {
  const inner = dims[dims.length - 1]!;
  const outer = dims.slice(0, -1);
  const at = outer.map(() => 0);
  const rows = outer.reduce((a, d) => a * d.extent, 1);
  const e = inner.extent, s = inner.stride;
  let o = 0, xo = 0;
  for (let r = 0; r < rows; r++) {
    if (s === 0) {
      const v = x[xo]!;
      for (let j = 0; j < e; j++) out[o + j]! += v;
    } else if (s === 1) {
      for (let j = 0; j < e; j++) out[o + j]! += x[xo + j]!;
    } else {
      for (let j = 0; j < e; j++) out[o + j]! += x[xo + j * s]!;
    }
    o += e;
    // the odometer over the outer dimensions; the operand offset follows it
    for (let d = outer.length - 1; d >= 0; d--) {
      xo += outer[d]!.stride;
      if (++at[d]! < outer[d]!.extent) break;
      xo -= outer[d]!.stride * outer[d]!.extent;
      at[d] = 0;
    }
  }
}

/**
 * x/2 (1 + erf(x/√2)) with erf(u) = u P(u²) / Q(u²) on u clamped to [-4, 4]: the float erf of Eigen
 * and XLA that the x86 printer emits too (targets/x86/emit.ts ERF_P, ERF_Q), Horner's rule unrolled.
 */
function gelu(x: number): number {
  const u = Math.min(4, Math.max(-4, x * Math.SQRT1_2));
  const z = u * u;
  const p = ((((((-2.72614225801306e-10 * z + 2.77068142495902e-08) * z - 2.10102402082508e-06) * z - 5.69250639462346e-05) * z
    - 7.34990630326855e-04) * z - 2.95459980854025e-03) * z - 1.60960333262415e-02);
  const q = (((-1.45660718464996e-05 * z - 2.13374055278905e-04) * z - 1.68282697438203e-03) * z - 7.37332916720468e-03) * z - 1.42647390514189e-02;
  return 0.5 * x * (1 + (u * p) / q);
}

/** One epilogue op over the whole output (`operand`: a bias's or residual's tensor and walk). */
function applyOp(e: EpilogueOp, out: Float32Array, operand: { x: Float32Array; walk: readonly WalkDim[] } | undefined): void {
  const n = out.length;
  switch (e.kind) {
    case 'bias': case 'residual': addOperand(out, operand!.x, operand!.walk); return;
    case 'scale': { const v = e.value; for (let i = 0; i < n; i++) out[i]! *= v; return; }
    case 'relu': for (let i = 0; i < n; i++) if (out[i]! < 0) out[i] = 0; return; // NaN stays NaN, as max(NaN, 0) does
    case 'clip': { const lo = e.min, hi = e.max; for (let i = 0; i < n; i++) out[i] = Math.min(Math.max(out[i]!, lo), hi); return; }
    case 'sigmoid': for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-out[i]!)); return;
    case 'gelu': for (let i = 0; i < n; i++) out[i] = gelu(out[i]!); return;
  }
}

// ---------------------------------------------------------------------------------------------
// OpenBLAS in this process

const LIBRARY = 'libopenblas.so.0';
const CblasRowMajor = 101;
const CblasNoTrans = 111;
const CblasTrans = 112;

type Sgemm = (order: number, transA: number, transB: number, m: number, n: number, k: number, alpha: number,
  a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number) => void;

interface InProcessBlas {
  readonly sgemm: Sgemm;
  /** 'OpenBLAS 0.3.21 (Cooperlake)': the build and the kernel set it chose at load */
  readonly library: string;
  threads: number;
  readonly setThreads: (n: number) => void;
}

let blas: InProcessBlas | undefined;

/** OPENBLAS_THREAD_TIMEOUT in this process unless the caller set one: workers sleep after 2^4 cycles of waiting. */
const IN_PROCESS_THREAD_TIMEOUT = '4';

/** OpenBLAS, loaded once per process on `threads` threads, free of this environment's kernel pin (see the header). */
function openblasInProcess(threads: number): InProcessBlas {
  if (blas) {
    if (blas.threads !== threads) {
      blas.setThreads(threads);
      blas.threads = threads;
    }
    return blas;
  }
  // its workers busy-wait ~2^28 cycles after each call by default: in a model the next generated
  // kernel's threads then share their cores with them (BERT at 2 threads: 12.2 -> 20.0 ms median)
  const wanted: NodeJS.ProcessEnv = { ...openblasEnvironment(process.env, undefined, threads), OPENBLAS_THREAD_TIMEOUT: process.env.OPENBLAS_THREAD_TIMEOUT ?? IN_PROCESS_THREAD_TIMEOUT };
  const saved = new Map<string, string | undefined>();
  for (const key of new Set([...Object.keys(process.env), ...Object.keys(wanted)])) {
    if (!key.startsWith('OPENBLAS_') && !key.startsWith('GOTO_') && key !== 'OMP_NUM_THREADS') continue;
    saved.set(key, process.env[key]);
    if (wanted[key] === undefined) delete process.env[key];
    else process.env[key] = wanted[key];
  }
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(LIBRARY);
  } catch {
    fail(`${LIBRARY} not found: the library kernels need OpenBLAS (apt-get install libopenblas0-pthread)`);
  } finally {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  const sgemm = lib.func('void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, '
    + 'const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)') as Sgemm;
  const corename = String(lib.func('const char *openblas_get_corename()')()).trim();
  const config = String(lib.func('const char *openblas_get_config()')()).trim();
  const setThreads = lib.func('void openblas_set_num_threads(int n)') as (n: number) => void;
  blas = { sgemm, library: openblasLibraryName(config, corename), threads, setThreads };
  return blas;
}

// ---------------------------------------------------------------------------------------------
// The kernel

export interface LibraryKernelOptions {
  /** OpenBLAS threads (default: every core; see the header on changing it within a process) */
  threads?: number;
}

/** A matmul-shaped problem run by OpenBLAS sgemm plus a JS epilogue; `run` and `dispose` as CompiledKernel's. */
export interface LibraryKernel {
  readonly problem: Problem;
  readonly implementation: 'library';
  /** the build that runs, e.g. 'OpenBLAS 0.3.21 (Cooperlake)' */
  readonly library: string;
  readonly threads: number;
  readonly gemm: GemmMapping;
  readonly flops: number;
  /** output = the problem on `inputs` (its inputs, then the epilogue's bias/residual, in order) */
  run(inputs: readonly KernelTensor[], output: KernelTensor): void;
  dispose(): void;
}

function arrayOf(t: KernelTensor): Float32Array {
  return t instanceof Float32Array ? t : t.array;
}

/** The OpenBLAS kernel of a matmul-shaped problem; fails in one line for any other problem. */
export function libraryKernel(spec: string | Problem, options: LibraryKernelOptions = {}): LibraryKernel {
  const problem = typeof spec === 'string' ? parseProblem(spec) : spec;
  const threads = options.threads ?? defaultThreads();
  const bad = threadCountError(threads);
  if (bad) fail(`libraryKernel: ${bad}`);
  const g = gemmMapping(problem);
  const lib = openblasInProcess(threads);
  const sizes = problem.tensors.map(elementCount);
  const epilogue = problem.epilogue ?? [];
  // the epilogue's tensors follow the inputs in run's list, in epilogue order (ir/problem.ts epilogueAccesses)
  const walks: (readonly WalkDim[] | undefined)[] = [];
  const operandTensor: (number | undefined)[] = [];
  for (const e of epilogue) {
    if (e.kind === 'bias' || e.kind === 'residual') {
      walks.push(operandWalk(problem, e.access.tensor));
      operandTensor.push(e.access.tensor);
    } else {
      walks.push(undefined);
      operandTensor.push(undefined);
    }
  }
  const transA = g.a.trans ? CblasTrans : CblasNoTrans;
  const transB = g.b.trans ? CblasTrans : CblasNoTrans;
  const at = g.batch.map(() => 0);
  let disposed = false;
  return {
    problem, implementation: 'library', library: lib.library, threads, gemm: g, flops: flops(problem),
    run(inputs, output) {
      if (disposed) fail('libraryKernel: run after dispose()');
      if (inputs.length !== sizes.length - 1) fail(`run: ${problem.spec} takes ${sizes.length - 1} tensors after the output (${problem.tensors.slice(1).map((t) => t.name).join(', ')}), got ${inputs.length}`);
      const arrays = [arrayOf(output), ...inputs.map(arrayOf)];
      arrays.forEach((x, t) => {
        if (x.length !== sizes[t]) fail(`${problem.tensors[t]!.name} must have ${sizes[t]} elements, got ${x.length}`);
      });
      if (lib.threads !== threads) {
        lib.setThreads(threads);
        lib.threads = threads;
      }
      const c = arrays[0]!, a = arrays[g.a.tensor]!, b = arrays[g.b.tensor]!;
      at.fill(0);
      let oc = 0, oa = 0, ob = 0;
      for (let call = 0; call < g.calls; call++) {
        // subarrays pass base + offset, zero-copy (koffi)
        lib.sgemm(CblasRowMajor, transA, transB, g.m, g.n, g.k, 1,
          oa === 0 ? a : a.subarray(oa), g.a.ld, ob === 0 ? b : b.subarray(ob), g.b.ld, 0, oc === 0 ? c : c.subarray(oc), g.ldc);
        for (let d = g.batch.length - 1; d >= 0; d--) {
          const v = g.batch[d]!;
          oc += v.c; oa += v.a; ob += v.b;
          if (++at[d]! < v.extent) break;
          oc -= v.c * v.extent; oa -= v.a * v.extent; ob -= v.b * v.extent;
          at[d] = 0;
        }
      }
      epilogue.forEach((e, i) => {
        const t = operandTensor[i];
        applyOp(e, c, t === undefined ? undefined : { x: arrays[t]!, walk: walks[i]! });
      });
    },
    dispose() {
      disposed = true;
    },
  };
}
