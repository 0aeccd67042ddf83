/**
 * CUDA driver API through koffi (libcuda.so.1), bound once on first use. Every call is checked:
 * a failure throws CudaError with the function, the CUresult code and the driver's error string.
 * Where there is no driver, the first use throws one line: "no CUDA driver (libcuda.so.1 not found)".
 *
 * Notes (see also FACTS.md): koffi hands pointers back as BigInt; `_Out_ uint64_t *` (device
 * pointers) may come back as a Number, so they are normalized to BigInt; kernel parameters are an
 * array of `koffi.as(typedArray, 'void *')`, one per parameter, each pointing at the value.
 * The context is the device's primary context (the one the CUDA runtime, hence cuBLAS, uses),
 * retained and made current; cuCtxCreate_v2 is the fallback.
 */
import koffi from 'koffi';

export class CudaError extends Error {
  override name = 'CudaError';
  constructor(message: string, readonly code = -1) {
    super(message);
  }
}

export const NO_DRIVER = 'no CUDA driver (libcuda.so.1 not found)';

/** CUresult values worth naming. */
export const CUDA_ERROR_ILLEGAL_ADDRESS = 700;
export const CUDA_ERROR_LAUNCH_FAILED = 719;

// CUjit_option
const CU_JIT_INFO_LOG_BUFFER = 3;
const CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4;
const CU_JIT_ERROR_LOG_BUFFER = 5;
const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
const CU_JIT_LOG_VERBOSE = 12;
// CUfunction_attribute
export const CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1;
export const CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3;
export const CU_FUNC_ATTRIBUTE_NUM_REGS = 4;
export const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
// CUdevice_attribute
export const CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13;
export const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

type Fn = (...args: unknown[]) => number;

interface Api {
  cuInit: Fn; cuDriverGetVersion: Fn; cuDeviceGet: Fn; cuDeviceGetName: Fn; cuDeviceGetAttribute: Fn;
  cuDevicePrimaryCtxRetain: Fn; cuDevicePrimaryCtxReset: Fn; cuCtxSetCurrent: Fn; cuCtxCreate: Fn; cuCtxSynchronize: Fn;
  cuModuleLoadDataEx: Fn; cuModuleUnload: Fn; cuModuleGetFunction: Fn; cuFuncGetAttribute: Fn; cuFuncSetAttribute: Fn;
  cuOccupancyMaxActiveBlocksPerMultiprocessor: Fn;
  cuMemAlloc: Fn; cuMemFree: Fn; cuMemcpyHtoD: Fn; cuMemcpyDtoH: Fn; cuMemsetD32: Fn;
  cuLaunchKernel: Fn;
  cuEventCreate: Fn; cuEventRecord: Fn; cuEventSynchronize: Fn; cuEventElapsedTime: Fn; cuEventDestroy: Fn;
  cuGetErrorString: Fn; cuGetErrorName: Fn;
}

let api: Api | undefined;
let loadError: string | undefined;

function bind(): Api {
  if (api) return api;
  if (loadError) throw new CudaError(loadError);
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load('libcuda.so.1');
  } catch {
    loadError = NO_DRIVER;
    throw new CudaError(NO_DRIVER);
  }
  const f = (decl: string): Fn => lib.func(decl) as Fn;
  const either = (a: string, b: string): Fn => {
    try {
      return f(a);
    } catch {
      return f(b);
    }
  };
  api = {
    cuInit: f('int cuInit(unsigned int flags)'),
    cuDriverGetVersion: f('int cuDriverGetVersion(_Out_ int *version)'),
    cuDeviceGet: f('int cuDeviceGet(_Out_ int *device, int ordinal)'),
    cuDeviceGetName: f('int cuDeviceGetName(uint8_t *name, int len, int dev)'),
    cuDeviceGetAttribute: f('int cuDeviceGetAttribute(_Out_ int *pi, int attrib, int dev)'),
    cuDevicePrimaryCtxRetain: f('int cuDevicePrimaryCtxRetain(_Out_ void **pctx, int dev)'),
    cuDevicePrimaryCtxReset: either('int cuDevicePrimaryCtxReset_v2(int dev)', 'int cuDevicePrimaryCtxReset(int dev)'),
    cuCtxSetCurrent: f('int cuCtxSetCurrent(void *ctx)'),
    cuCtxCreate: f('int cuCtxCreate_v2(_Out_ void **pctx, unsigned int flags, int dev)'),
    cuCtxSynchronize: f('int cuCtxSynchronize()'),
    cuModuleLoadDataEx: f('int cuModuleLoadDataEx(_Out_ void **module, const void *image, unsigned int numOptions, const int *options, void *optionValues)'),
    cuModuleUnload: f('int cuModuleUnload(void *hmod)'),
    cuModuleGetFunction: f('int cuModuleGetFunction(_Out_ void **hfunc, void *hmod, const char *name)'),
    cuFuncGetAttribute: f('int cuFuncGetAttribute(_Out_ int *pi, int attrib, void *hfunc)'),
    cuFuncSetAttribute: f('int cuFuncSetAttribute(void *hfunc, int attrib, int value)'),
    cuOccupancyMaxActiveBlocksPerMultiprocessor: f('int cuOccupancyMaxActiveBlocksPerMultiprocessor(_Out_ int *numBlocks, void *func, int blockSize, size_t dynamicSMemSize)'),
    cuMemAlloc: f('int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytesize)'),
    cuMemFree: f('int cuMemFree_v2(uint64_t dptr)'),
    cuMemcpyHtoD: f('int cuMemcpyHtoD_v2(uint64_t dstDevice, const void *srcHost, size_t byteCount)'),
    cuMemcpyDtoH: f('int cuMemcpyDtoH_v2(void *dstHost, uint64_t srcDevice, size_t byteCount)'),
    cuMemsetD32: f('int cuMemsetD32_v2(uint64_t dstDevice, unsigned int ui, size_t n)'),
    cuLaunchKernel: f('int cuLaunchKernel(void *f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, void *hStream, void **kernelParams, void **extra)'),
    cuEventCreate: f('int cuEventCreate(_Out_ void **phEvent, unsigned int flags)'),
    cuEventRecord: f('int cuEventRecord(void *hEvent, void *hStream)'),
    cuEventSynchronize: f('int cuEventSynchronize(void *hEvent)'),
    cuEventElapsedTime: either('int cuEventElapsedTime(_Out_ float *pMilliseconds, void *hStart, void *hEnd)', 'int cuEventElapsedTime_v2(_Out_ float *pMilliseconds, void *hStart, void *hEnd)'),
    cuEventDestroy: f('int cuEventDestroy_v2(void *hEvent)'),
    cuGetErrorString: f('int cuGetErrorString(int error, _Out_ const char **pStr)'),
    cuGetErrorName: f('int cuGetErrorName(int error, _Out_ const char **pStr)'),
  };
  return api;
}

function errorText(code: number): string {
  try {
    const name: [string | null] = [null];
    const desc: [string | null] = [null];
    api!.cuGetErrorName(code, name);
    api!.cuGetErrorString(code, desc);
    return `${name[0] ?? 'CUDA_ERROR'} (${code}): ${desc[0] ?? 'unknown error'}`;
  } catch {
    return `CUresult ${code}`;
  }
}

function check(what: string, code: number): void {
  if (code !== 0) throw new CudaError(`${what} failed: ${errorText(code)}`, code);
}

const toBig = (x: unknown): bigint => (typeof x === 'bigint' ? x : BigInt(x as number));

export interface DeviceInfo {
  name: string;
  driverVersion: string;
  multiprocessors: number;
  clockMHz: number;
  computeCapability: string;
}

export interface LoadedModule {
  module: bigint;
  func: bigint;
  entry: string;
  /** wall time of cuModuleLoadDataEx (JIT compilation), ms */
  jitMs: number;
  registers: number;
  localBytes: number;
  sharedBytes: number;
  /** the JIT's info log (register use etc.) */
  infoLog: string;
}

export type DevicePtr = bigint;

/** One device, its primary context made current. */
export class CudaDevice {
  readonly ordinal: number;
  private dev = 0;
  private ctx: unknown = null;

  constructor(ordinal = 0) {
    this.ordinal = ordinal;
    const a = bind();
    check('cuInit', a.cuInit(0));
    const d: [number] = [0];
    check('cuDeviceGet', a.cuDeviceGet(d, ordinal));
    this.dev = d[0];
    this.openContext();
  }

  private openContext(): void {
    const a = bind();
    const c: [unknown] = [null];
    const rc = a.cuDevicePrimaryCtxRetain(c, this.dev);
    if (rc === 0) {
      check('cuCtxSetCurrent', a.cuCtxSetCurrent(c[0]));
    } else {
      check('cuCtxCreate_v2', a.cuCtxCreate(c, 0, this.dev));
    }
    this.ctx = c[0];
  }

  /** After a sticky error (e.g. an illegal address), the context is reset: every module and allocation is gone. */
  reset(): void {
    const a = bind();
    a.cuDevicePrimaryCtxReset(this.dev);
    this.openContext();
  }

  info(): DeviceInfo {
    const a = bind();
    const name = new Uint8Array(256);
    check('cuDeviceGetName', a.cuDeviceGetName(name, 256, this.dev));
    const attr = (k: number) => {
      const v: [number] = [0];
      check('cuDeviceGetAttribute', a.cuDeviceGetAttribute(v, k, this.dev));
      return v[0];
    };
    const ver: [number] = [0];
    check('cuDriverGetVersion', a.cuDriverGetVersion(ver));
    const end = name.indexOf(0);
    return {
      name: new TextDecoder().decode(name.subarray(0, end < 0 ? 256 : end)),
      driverVersion: `${Math.floor(ver[0] / 1000)}.${(ver[0] % 1000) / 10}`,
      multiprocessors: attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
      clockMHz: attr(CU_DEVICE_ATTRIBUTE_CLOCK_RATE) / 1000,
      computeCapability: `${attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)}.${attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)}`,
    };
  }

  /** JIT-compiles a PTX module and finds its entry; a failure throws with the JIT's error log. */
  loadPtx(ptx: string, entry: string): LoadedModule {
    const a = bind();
    const LOG = 16384;
    const errBuf = koffi.alloc('char', LOG) as unknown as bigint;
    const infoBuf = koffi.alloc('char', LOG) as unknown as bigint;
    try {
      new Uint8Array(koffi.view(errBuf, LOG)).fill(0);
      new Uint8Array(koffi.view(infoBuf, LOG)).fill(0);
      const options = new Int32Array([CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, CU_JIT_LOG_VERBOSE]);
      const values = new BigUint64Array([toBig(koffi.address(errBuf)), BigInt(LOG), toBig(koffi.address(infoBuf)), BigInt(LOG), 1n]);
      const image = new TextEncoder().encode(`${ptx}\0`);
      const mod: [unknown] = [null];
      const t0 = performance.now();
      const rc = a.cuModuleLoadDataEx(mod, image, options.length, options, values);
      const jitMs = performance.now() - t0;
      const text = (p: bigint) => {
        const bytes = new Uint8Array(koffi.view(p, LOG));
        const end = bytes.indexOf(0);
        return new TextDecoder().decode(bytes.subarray(0, end < 0 ? LOG : end)).trim();
      };
      if (rc !== 0) {
        const log = text(errBuf);
        throw new CudaError(`cuModuleLoadDataEx failed: ${errorText(rc)}${log ? `\n${log}` : ''}`, rc);
      }
      const fn: [unknown] = [null];
      check(`cuModuleGetFunction(${entry})`, a.cuModuleGetFunction(fn, mod[0], entry));
      const attr = (k: number) => {
        const v: [number] = [0];
        check('cuFuncGetAttribute', a.cuFuncGetAttribute(v, k, fn[0]));
        return v[0];
      };
      return {
        module: toBig(mod[0]), func: toBig(fn[0]), entry, jitMs,
        registers: attr(CU_FUNC_ATTRIBUTE_NUM_REGS), localBytes: attr(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES),
        sharedBytes: attr(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES), infoLog: text(infoBuf),
      };
    } finally {
      koffi.free(errBuf);
      koffi.free(infoBuf);
    }
  }

  unload(m: LoadedModule): void {
    check('cuModuleUnload', bind().cuModuleUnload(m.module));
  }

  occupancy(m: LoadedModule, blockSize: number): number {
    const v: [number] = [0];
    check('cuOccupancyMaxActiveBlocksPerMultiprocessor', bind().cuOccupancyMaxActiveBlocksPerMultiprocessor(v, m.func, blockSize, 0));
    return v[0];
  }

  alloc(bytes: number): DevicePtr {
    const p: [unknown] = [0];
    check(`cuMemAlloc_v2(${bytes})`, bind().cuMemAlloc(p, Math.max(4, bytes)));
    return toBig(p[0]);
  }

  free(p: DevicePtr): void {
    check('cuMemFree_v2', bind().cuMemFree(p));
  }

  /** Lets a function take more than 48 KiB of dynamic shared memory (tensor-core pipelines). */
  allowDynamicShared(func: bigint, bytes: number): void {
    check('cuFuncSetAttribute', bind().cuFuncSetAttribute(func, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
  }

  upload(dst: DevicePtr, src: Float32Array | Uint32Array | Uint16Array): void {
    check('cuMemcpyHtoD_v2', bind().cuMemcpyHtoD(dst, src, src.byteLength));
  }

  download(dst: Float32Array | Uint32Array, src: DevicePtr): void {
    check('cuMemcpyDtoH_v2', bind().cuMemcpyDtoH(dst, src, dst.byteLength));
  }

  fill32(dst: DevicePtr, bits: number, count: number): void {
    check('cuMemsetD32_v2', bind().cuMemsetD32(dst, bits >>> 0, count));
  }

  /** Launches with one 64-bit parameter per pointer (the kernel ABI); asynchronous. */
  launch(func: bigint, grid: readonly number[], block: readonly number[], sharedBytes: number, pointers: readonly DevicePtr[]): void {
    this.launcher(func, grid, block, sharedBytes, pointers)();
  }

  /** The same launch, its parameter array built once, for launching again and again (timing loops). */
  launcher(func: bigint, grid: readonly number[], block: readonly number[], sharedBytes: number, pointers: readonly DevicePtr[]): () => void {
    const values = pointers.map((p) => new BigUint64Array([p]));
    const params = values.map((v) => koffi.as(v, 'void *'));
    const a = bind();
    const [gx, gy, gz] = grid as [number, number, number];
    const [bx, by, bz] = block as [number, number, number];
    return () => check('cuLaunchKernel', a.cuLaunchKernel(func, gx, gy, gz, bx, by, bz, sharedBytes, null, params, null));
  }

  synchronize(): void {
    check('cuCtxSynchronize', bind().cuCtxSynchronize());
  }

  event(): bigint {
    const e: [unknown] = [null];
    check('cuEventCreate', bind().cuEventCreate(e, 0));
    return toBig(e[0]);
  }

  record(e: bigint): void {
    check('cuEventRecord', bind().cuEventRecord(e, null));
  }

  /** Milliseconds between two recorded events (waits for the second). */
  elapsed(start: bigint, end: bigint): number {
    const a = bind();
    check('cuEventSynchronize', a.cuEventSynchronize(end));
    const ms: [number] = [0];
    check('cuEventElapsedTime', a.cuEventElapsedTime(ms, start, end));
    return ms[0];
  }

  destroyEvent(e: bigint): void {
    check('cuEventDestroy_v2', bind().cuEventDestroy(e));
  }
}

/** True when libcuda.so.1 can be loaded (does not initialize anything). */
export function hasCudaDriver(): boolean {
  try {
    bind();
    return true;
  } catch {
    return false;
  }
}
