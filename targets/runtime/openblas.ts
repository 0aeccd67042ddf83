/**
 * OpenBLAS `cblas_sgemm`, the CPU baseline: Debian's libopenblas.so.0 through koffi, row-major,
 * C = A*B + C (beta 1, like the accumulate ABI of our kernels), on as many threads as the
 * looptune kernel it is compared with. The thread count is fixed when the library loads
 * (OPENBLAS_NUM_THREADS of the worker's environment, see openblasEnvironment): changing it later
 * with openblas_set_num_threads left the next calls of 0.3.21 on one thread, or slower than one,
 * for a while (measured here: 2 threads after 1 gave 109-215 GFLOPS where a fixed 2 gives 380-440),
 * so each thread count of the baseline gets workers of its own (targets/x86/device.ts).
 *
 * OpenBLAS picks its kernel set when the library loads, from OPENBLAS_CORETYPE if set. This
 * environment pins OPENBLAS_CORETYPE=Haswell and OPENBLAS_L2_SIZE=512 (slow AVX2 kernels), so the
 * library must be loaded only in a process spawned with `openblasEnvironment(...)` (the
 * measurement worker), never in the main process.
 */
import koffi, { type LibraryHandle } from 'koffi';
import { availableParallelism } from 'node:os';

const LIBRARY = 'libopenblas.so.0';
const CblasRowMajor = 101;
const CblasNoTrans = 111;

/** Variables that steer OpenBLAS's choice of kernels and threads at load time. */
const PINNING_VARIABLES = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'];

/**
 * The environment for a process that will load OpenBLAS: free to pick the best kernels for the
 * CPU unless `coretype` pins a set (e.g. 'Haswell', 'SkylakeX') for experiments, on `threads`
 * threads (default 1).
 */
export function openblasEnvironment(base: NodeJS.ProcessEnv, coretype?: string, threads = 1): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const name of PINNING_VARIABLES) delete env[name];
  if (coretype) env.OPENBLAS_CORETYPE = coretype;
  env.OPENBLAS_NUM_THREADS = String(threads);
  env.GOTO_NUM_THREADS = String(threads);
  delete env.OMP_NUM_THREADS;
  return env;
}

/** The threads OpenBLAS starts with in a process of this environment. */
export function openblasThreadsOf(env: NodeJS.ProcessEnv): number {
  const n = Number(env.OPENBLAS_NUM_THREADS);
  return Number.isInteger(n) && n >= 1 ? n : availableParallelism();
}

export interface OpenBlas {
  /** C[m×n] += A[m×k] · B[k×n], row-major, dense (lda = k, ldb = n, ldc = n); native addresses. */
  sgemm(m: number, n: number, k: number, a: bigint, b: bigint, c: bigint): void;
  /** the threads it runs on (fixed at load, see the header) */
  threads: number;
  /** the kernel set OpenBLAS chose at load, e.g. 'Cooperlake', 'Haswell'. */
  corename: string;
  /** build configuration string, e.g. 'OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64'. */
  config: string;
}

let loaded: OpenBlas | undefined;

export function loadOpenBlas(): OpenBlas {
  if (loaded) return loaded;
  let lib: LibraryHandle;
  try {
    lib = koffi.load(LIBRARY);
  } catch {
    throw new Error(`${LIBRARY} not found: install the Debian package libopenblas0 (apt-get install libopenblas0)`);
  }
  const cblasSgemm = lib.func(
    'void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, ' +
      'void *A, int lda, void *B, int ldb, float beta, void *C, int ldc)',
  );
  const corename = lib.func('const char *openblas_get_corename()');
  const config = lib.func('const char *openblas_get_config()');
  loaded = {
    sgemm: (m, n, k, a, b, c) => cblasSgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 1, c, n),
    threads: openblasThreadsOf(process.env),
    corename: String(corename()).trim(),
    config: String(config()).trim(),
  };
  return loaded;
}

export interface GemmCheck {
  /** entries compared with the float64 reference. */
  checked: number;
  /** max |c − ref| / (Σ|a·b| + |c0|) over the checked entries: rounding error relative to magnitude. */
  maxRelativeError: number;
  /** the bound the error must stay under: (k + 2) · 2⁻²³, a few units of fp32 rounding per term. */
  tolerance: number;
}

/**
 * Compare C = C0 + A·B against a float64 reference: every entry for small outputs, otherwise
 * `sampleEntries` entries picked with a fixed stride pattern (cheap at any size).
 */
export function checkGemm(
  m: number, n: number, k: number,
  a: Float32Array, b: Float32Array, c0: Float32Array, c: Float32Array,
  sampleEntries = 256,
): GemmCheck {
  const total = m * n;
  const count = Math.min(total, Math.max(sampleEntries, total <= 4096 ? total : 0));
  let maxRelativeError = 0;
  for (let s = 0; s < count; s++) {
    // Spread the samples over the whole output (a multiplicative stride visits rows and columns).
    const index = count === total ? s : (s * 2654435761) % total;
    const i = Math.floor(index / n);
    const j = index % n;
    let ref = c0[index]!;
    let magnitude = Math.abs(ref);
    for (let p = 0; p < k; p++) {
      const term = a[i * k + p]! * b[p * n + j]!;
      ref += term;
      magnitude += Math.abs(term);
    }
    const error = Math.abs(c[index]! - ref) / (magnitude || 1);
    // A NaN (garbage output) must fail the check, not slip past a comparison.
    maxRelativeError = Number.isNaN(error) ? Infinity : Math.max(maxRelativeError, error);
  }
  return { checked: count, maxRelativeError, tolerance: (k + 2) * 2 ** -23 };
}
