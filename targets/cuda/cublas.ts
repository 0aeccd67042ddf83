/**
 * cuBLAS through koffi: the baseline every GPU figure is compared with, measured in the same run.
 * Row-major C = A·B + C (M x N = M x K · K x N) is column-major C^T = B^T·A^T + C^T, so the call
 * is sgemm(N, N, n=N, m=M, k=K, B, ldb=N, A, lda=K, C, ldc=N) with alpha = beta = 1.
 * The math mode is CUBLAS_DEFAULT_MATH (plain fp32, no TF32 tensor cores). Typed problems are
 * compared with `cublasGemmEx` at the same precision: bf16 / f16 inputs (CUDA_R_16BF / CUDA_R_16F)
 * with an fp32 output and CUBLAS_COMPUTE_32F, or fp32 inputs with CUBLAS_COMPUTE_32F_FAST_TF32.
 * The library is found as libcublas.so.13 / .so.12 / .so on the loader's path, then in the usual
 * CUDA folders and in Python's nvidia-cublas wheels (CUBLAS_PATH names a file or folder to use).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { randomArray } from '../../ir/interpret.ts';
import type { Timing } from '../runtime/timing.ts';
import { storageArray } from '../../ir/dtype.ts';
import type { MmaType } from '../../loopnest/gpu-mma.ts';
import { CudaError, type DevicePtr } from './driver.ts';
import type { CudaRunner, TimeOptions } from './runner.ts';

const NAMES = ['libcublas.so.13', 'libcublas.so.12', 'libcublas.so'];
const CUBLAS_OP_N = 0;
const CUBLAS_DEFAULT_MATH = 0;
// cudaDataType_t and cublasComputeType_t (library_types.h, cublas_api.h)
const CUDA_R_32F = 0;
const CUDA_R_16F = 2;
const CUDA_R_16BF = 14;
const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
const CUBLAS_GEMM_DEFAULT = -1;

/** Input type and compute type of a typed gemm (the output is fp32 in every case). */
const GEMM_EX: Record<MmaType, { input: number; compute: number }> = {
  bf16: { input: CUDA_R_16BF, compute: CUBLAS_COMPUTE_32F },
  f16: { input: CUDA_R_16F, compute: CUBLAS_COMPUTE_32F },
  tf32: { input: CUDA_R_32F, compute: CUBLAS_COMPUTE_32F_FAST_TF32 },
};

type Fn = (...args: unknown[]) => number;

/** Folders where NVIDIA libraries live (CUBLAS_PATH first; cuDNN's loader uses them too). */
export function candidateDirs(): string[] {
  const dirs: string[] = [];
  const env = process.env.CUBLAS_PATH;
  if (env) dirs.push(env);
  for (const d of (process.env.LD_LIBRARY_PATH ?? '').split(':')) if (d) dirs.push(d);
  const globDirs = (root: string, pattern: RegExp, tail: string[]) => {
    try {
      for (const e of readdirSync(root)) if (pattern.test(e)) dirs.push(join(root, e, ...tail));
    } catch {
      // not there
    }
  };
  globDirs('/usr/local', /^cuda/, ['lib64']);
  globDirs('/usr/local', /^cuda/, ['targets', 'x86_64-linux', 'lib']);
  dirs.push('/usr/lib/x86_64-linux-gnu', '/usr/local/nvidia/lib64');
  for (const root of ['/opt/torch/.venv/lib', '/usr/local/lib', '/usr/lib']) {
    try {
      for (const py of readdirSync(root)) {
        if (!/^python3/.test(py)) continue;
        for (const sp of ['site-packages', 'dist-packages']) {
          const nv = join(root, py, sp, 'nvidia');
          if (!existsSync(nv)) continue;
          for (const pkg of readdirSync(nv)) dirs.push(join(nv, pkg, 'lib'));
        }
      }
    } catch {
      // not there
    }
  }
  return dirs;
}

/**
 * Loads an NVIDIA library: the file named by the environment variable `envVar` if it names one,
 * else each of `names` on the loader's path, then in candidateDirs(); one line naming what was tried.
 */
export function loadNvidiaLibrary(names: readonly string[], envVar: string, what: string): { lib: ReturnType<typeof koffi.load>; path: string } {
  const tried: string[] = [];
  const env = process.env[envVar];
  if (env && /\.so/.test(env)) {
    return { lib: koffi.load(env), path: env };
  }
  for (const n of names) {
    try {
      return { lib: koffi.load(n), path: n };
    } catch {
      tried.push(n);
    }
  }
  for (const d of candidateDirs()) {
    for (const n of names) {
      const p = join(d, n);
      if (!existsSync(p)) continue;
      try {
        return { lib: koffi.load(p), path: p };
      } catch (e) {
        tried.push(`${p} (${(e as Error).message})`);
      }
    }
  }
  throw new CudaError(`${what} not found (tried ${tried.slice(0, 8).join(', ')}${tried.length > 8 ? ', ...' : ''}); set ${envVar}`);
}

export class Cublas {
  readonly path: string;
  private readonly handle: unknown;
  private readonly sgemm: Fn;
  private readonly gemmEx: Fn;
  private readonly one = new Float32Array([1]);
  /** cublasGetVersion's integer: major * 10000 + minor * 100 + patch (130100 is 13.1.0). */
  readonly version: number;

  constructor() {
    const { lib, path } = loadNvidiaLibrary(NAMES, 'CUBLAS_PATH', 'cuBLAS');
    this.path = path;
    const f = (d: string): Fn => lib.func(d) as Fn;
    const create = f('int cublasCreate_v2(_Out_ void **handle)');
    const setMath = f('int cublasSetMathMode(void *handle, int mode)');
    const getVersion = f('int cublasGetVersion_v2(void *handle, _Out_ int *version)');
    this.sgemm = f('int cublasSgemm_v2(void *handle, int transa, int transb, int m, int n, int k, const float *alpha, uint64_t A, int lda, uint64_t B, int ldb, const float *beta, uint64_t C, int ldc)');
    this.gemmEx = f('int cublasGemmEx(void *handle, int transa, int transb, int m, int n, int k, const float *alpha, uint64_t A, int Atype, int lda, uint64_t B, int Btype, int ldb, const float *beta, uint64_t C, int Ctype, int ldc, int computeType, int algo)');
    const h: [unknown] = [null];
    const rc = create(h);
    if (rc !== 0) throw new CudaError(`cublasCreate_v2 failed (cublasStatus ${rc})`, rc);
    this.handle = h[0];
    setMath(this.handle, CUBLAS_DEFAULT_MATH);
    const v: [number] = [0];
    getVersion(this.handle, v);
    this.version = v[0];
  }

  /** The version as people write it: 'cuBLAS 13.1' (the patch level only when it is not 0). */
  get name(): string {
    const major = Math.floor(this.version / 10000);
    const minor = Math.floor((this.version % 10000) / 100);
    const patch = this.version % 100;
    return `cuBLAS ${major}.${minor}${patch ? `.${patch}` : ''}`;
  }

  /** Row-major C[M,N] += A[M,K] · B[K,N] on device buffers (asynchronous). */
  gemm(m: number, n: number, k: number, A: DevicePtr, B: DevicePtr, C: DevicePtr): void {
    const rc = this.sgemm(this.handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, this.one, B, n, A, k, this.one, C, n);
    if (rc !== 0) throw new CudaError(`cublasSgemm_v2 failed (cublasStatus ${rc})`, rc);
  }

  /**
   * Row-major C[M,N] (fp32) += A[M,K] · B[K,N] at a typed precision: A and B hold bf16/f16
   * patterns, or fp32 for tf32 (asynchronous).
   */
  gemmTyped(type: MmaType, m: number, n: number, k: number, A: DevicePtr, B: DevicePtr, C: DevicePtr): void {
    const { input, compute } = GEMM_EX[type];
    const rc = this.gemmEx(this.handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, this.one, B, input, n, A, input, k, this.one, C, CUDA_R_32F, n, compute, CUBLAS_GEMM_DEFAULT);
    if (rc !== 0) throw new CudaError(`cublasGemmEx (${type}) failed (cublasStatus ${rc})`, rc);
  }
}

/** Times `launch(A, B, C)` on fresh m x n x k buffers (random inputs; `stored` gives each one's device form: C, A, B in order), timed like our kernels (runner.ts). */
function timeOnFreshBuffers(
  gpu: CudaRunner, m: number, n: number, k: number, stored: (values: Float32Array, i: number) => Float32Array | Uint16Array,
  launch: (a: DevicePtr, b: DevicePtr, c: DevicePtr) => void, opts: TimeOptions,
): Timing {
  const [C, A, B] = [m * n, m * k, k * n].map((e, i) => {
    const data = stored(randomArray(e, 91 + i), i);
    const p = gpu.device.alloc(Math.ceil(data.byteLength / 4) * 4);
    gpu.device.upload(p, data);
    return p;
  }) as [DevicePtr, DevicePtr, DevicePtr];
  try {
    return gpu.timeLaunches(() => launch(A, B, C), 2 * m * n * k, opts);
  } finally {
    gpu.freeAll([C, A, B]);
  }
}

/** cublasGemmEx at a typed precision on fresh buffers (inputs stored as the type; C and tf32 stay fp32). */
export function timeGemmTyped(gpu: CudaRunner, blas: Cublas, type: MmaType, m: number, n: number, k: number, opts: TimeOptions = {}): Timing {
  return timeOnFreshBuffers(gpu, m, n, k, (v, i) => (i === 0 || type === 'tf32' ? v : storageArray(type, v)), (A, B, C) => blas.gemmTyped(type, m, n, k, A, B, C), opts);
}

/** cuBLAS sgemm on fresh m x n x k buffers (random inputs). */
export function timeSgemm(gpu: CudaRunner, blas: Cublas, m: number, n: number, k: number, opts: TimeOptions = {}): Timing {
  return timeOnFreshBuffers(gpu, m, n, k, (v) => v, (A, B, C) => blas.gemm(m, n, k, A, B, C), opts);
}
