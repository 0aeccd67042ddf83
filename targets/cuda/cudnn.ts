/**
 * cuDNN through koffi: the conv2d baseline where the GPU machine has it (the other baseline is
 * im2col + cuBLAS, baselines.ts). Legacy (v7-style) API, which cuDNN 9 still exports:
 * NCHW float tensors, KCRS filters, no padding (the IR pre-pads), the problem's stride, cross-
 * correlation, y = x * w + y (alpha = beta = 1: our kernels accumulate too). The math type is
 * CUDNN_FMA_MATH, so cuDNN may not use TF32 tensor cores on fp32 data (its default on Ampere and
 * later would), and the algorithm is the fastest of cudnnFindConvolutionForwardAlgorithm's
 * measured ones: cuDNN at its best in plain fp32.
 *
 * Typed channels-last convs (ir/spec.ts `nhwc`, bf16 / f16): conv2dChannelsLast runs cuDNN the way a
 * tensor-core user does: NHWC tensors and KRSC filters of the type, fp32 accumulation,
 * CUDNN_TENSOR_OP_MATH, the input unpadded (cuDNN pads), y = x * w (beta = 0, y of the type), on
 * buffers of its own filled with random values.
 */
import { convAttributes } from '../../ir/spec.ts';
import { storageArray } from '../../ir/dtype.ts';
import { randomArray } from '../../ir/interpret.ts';
import type { Problem } from '../../ir/problem.ts';
import { loadNvidiaLibrary } from './cublas.ts';
import { CudaError, type CudaDevice, type DevicePtr } from './driver.ts';

const NAMES = ['libcudnn.so.9', 'libcudnn.so.8', 'libcudnn.so'];
const CUDNN_TENSOR_NCHW = 0;
const CUDNN_DATA_FLOAT = 0;
const CUDNN_CROSS_CORRELATION = 1;
const CUDNN_FMA_MATH = 3;
const CUDNN_TENSOR_NHWC = 1;
const CUDNN_DATA_HALF = 2;
const CUDNN_DATA_BFLOAT16 = 9;
const CUDNN_TENSOR_OP_MATH = 1;
/** sizeof(cudnnConvolutionFwdAlgoPerf_t): algo, status, time (float), memory (size_t), determinism, mathType, reserved[3] */
const PERF_BYTES = 48;

type Fn = (...args: unknown[]) => number;

export interface CudnnConv {
  /** runs y += conv(x, w) once (asynchronous) */
  run(): void;
  algorithm: number;
  workspaceBytes: number;
  dispose(): void;
}

export class Cudnn {
  readonly path: string;
  readonly version: number;
  private readonly handle: unknown;
  private readonly f: Record<string, Fn>;

  constructor() {
    const { lib, path } = loadNvidiaLibrary(NAMES, 'CUDNN_PATH', 'cuDNN');
    this.path = path;
    const decl: Record<string, string> = {
      create: 'int cudnnCreate(_Out_ void **handle)',
      version: 'size_t cudnnGetVersion()',
      errorString: 'const char *cudnnGetErrorString(int status)',
      createTensor: 'int cudnnCreateTensorDescriptor(_Out_ void **desc)',
      setTensor: 'int cudnnSetTensor4dDescriptor(void *desc, int format, int dataType, int n, int c, int h, int w)',
      destroyTensor: 'int cudnnDestroyTensorDescriptor(void *desc)',
      createFilter: 'int cudnnCreateFilterDescriptor(_Out_ void **desc)',
      setFilter: 'int cudnnSetFilter4dDescriptor(void *desc, int dataType, int format, int k, int c, int h, int w)',
      destroyFilter: 'int cudnnDestroyFilterDescriptor(void *desc)',
      createConv: 'int cudnnCreateConvolutionDescriptor(_Out_ void **desc)',
      setConv: 'int cudnnSetConvolution2dDescriptor(void *desc, int padH, int padW, int u, int v, int dilationH, int dilationW, int mode, int computeType)',
      setMath: 'int cudnnSetConvolutionMathType(void *desc, int mathType)',
      destroyConv: 'int cudnnDestroyConvolutionDescriptor(void *desc)',
      find: 'int cudnnFindConvolutionForwardAlgorithm(void *handle, void *x, void *w, void *conv, void *y, int requested, _Out_ int *returned, _Out_ uint8_t *perf)',
      forward: 'int cudnnConvolutionForward(void *handle, const float *alpha, void *x, uint64_t xData, void *w, uint64_t wData, void *conv, int algo, uint64_t workspace, size_t workspaceBytes, const float *beta, void *y, uint64_t yData)',
    };
    this.f = Object.fromEntries(Object.entries(decl).map(([k, d]) => [k, lib.func(d) as Fn]));
    const h: [unknown] = [null];
    this.check('cudnnCreate', this.f.create!(h));
    this.handle = h[0];
    this.version = Number(this.f.version!());
  }

  /** The version as people write it: cudnnGetVersion's 91900 is 'cuDNN 9.19' (the patch only when not 0). */
  get name(): string {
    const major = Math.floor(this.version / 10000);
    const minor = Math.floor((this.version % 10000) / 100);
    const patch = this.version % 100;
    return `cuDNN ${major}.${minor}${patch ? `.${patch}` : ''}`;
  }

  private check(what: string, rc: number): void {
    if (rc !== 0) throw new CudaError(`${what} failed: ${String(this.f.errorString!(rc))} (cudnnStatus ${rc})`, rc);
  }

  /** The fastest working forward algorithm cudnnFindConvolutionForwardAlgorithm measures. */
  private fastest(x: unknown, w: unknown, conv: unknown, y: unknown): { algorithm: number; workspaceBytes: number } {
    const perf = new Uint8Array(8 * PERF_BYTES);
    const count: [number] = [0];
    this.check('cudnnFindConvolutionForwardAlgorithm', this.f.find!(this.handle, x, w, conv, y, 8, count, perf));
    const view = new DataView(perf.buffer);
    for (let i = 0; i < count[0]; i++) {
      // results come sorted by time; the first that ran is the fastest
      if (view.getInt32(i * PERF_BYTES + 4, true) === 0) {
        return { algorithm: view.getInt32(i * PERF_BYTES, true), workspaceBytes: Number(view.getBigUint64(i * PERF_BYTES + 16, true)) };
      }
    }
    throw new CudaError('cuDNN found no working forward algorithm');
  }

  private descriptor(create: string, set: (d: unknown) => number): unknown {
    const d: [unknown] = [null];
    this.check(create, this.f[create]!(d));
    this.check(`${create} set`, set(d[0]));
    return d[0];
  }

  /** A typed nhwc conv2d as cuDNN runs it on tensor cores, on buffers of its own (see the header). */
  conv2dChannelsLast(p: Problem, device: CudaDevice): CudnnConv {
    if (p.dtype !== 'bf16' && p.dtype !== 'f16') throw new CudaError(`cuDNN tensor-core baseline: bf16 or f16, not ${p.dtype ?? 'f32'}`);
    const type = p.dtype === 'bf16' ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    const [O, I, W] = p.tensors.map((t) => t.shape) as [number[], number[], number[]];
    const { stride, dilation, pads } = convAttributes(p);
    const [N, P, Q, K] = O as [number, number, number, number];
    const [R, S, C] = W as [number, number, number];
    const H = I[1]! - pads[0]! - pads[2]!, Wd = I[2]! - pads[1]! - pads[3]!;
    if (pads[0] !== pads[2] || pads[1] !== pads[3]) throw new CudaError('cuDNN baseline: symmetric padding only');
    const buffers = [N * H * Wd * C, K * R * S * C, N * P * Q * K].map((e, i) => {
      const data = storageArray(p.dtype as 'bf16' | 'f16', randomArray(e, 61 + i));
      const ptr = device.alloc(Math.ceil(data.byteLength / 4) * 4);
      device.upload(ptr, data);
      return ptr;
    }) as [DevicePtr, DevicePtr, DevicePtr];
    const x = this.descriptor('createTensor', (d) => this.f.setTensor!(d, CUDNN_TENSOR_NHWC, type, N, C, H, Wd));
    const y = this.descriptor('createTensor', (d) => this.f.setTensor!(d, CUDNN_TENSOR_NHWC, type, N, K, P, Q));
    const w = this.descriptor('createFilter', (d) => this.f.setFilter!(d, type, CUDNN_TENSOR_NHWC, K, C, R, S));
    const conv = this.descriptor('createConv', (d) => this.f.setConv!(d, pads[0], pads[1], stride[0], stride[1], dilation[0], dilation[1], CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    return this.forward({ x, y, w, conv }, CUDNN_TENSOR_OP_MATH, device, { x: buffers[0], w: buffers[1], y: buffers[2] }, 0, buffers);
  }

  /**
   * The forward convolution of prepared descriptors: the math type set, cuDNN's fastest algorithm
   * and its workspace, y = x * w + beta * y per run; dispose frees the descriptors, the workspace
   * and the buffers the convolution owns.
   */
  private forward(
    d: { x: unknown; y: unknown; w: unknown; conv: unknown }, math: number, device: CudaDevice,
    data: { x: DevicePtr; w: DevicePtr; y: DevicePtr }, beta: number, owned: readonly DevicePtr[] = [],
  ): CudnnConv {
    this.check('cudnnSetConvolutionMathType', this.f.setMath!(d.conv, math));
    const { algorithm, workspaceBytes } = this.fastest(d.x, d.w, d.conv, d.y);
    const workspace = workspaceBytes > 0 ? device.alloc(workspaceBytes) : 0n;
    const one = new Float32Array([1]), scale = new Float32Array([beta]);
    return {
      algorithm, workspaceBytes,
      run: () => this.check('cudnnConvolutionForward', this.f.forward!(this.handle, one, d.x, data.x, d.w, data.w, d.conv, algorithm, workspace, workspaceBytes, scale, d.y, data.y)),
      dispose: () => {
        if (workspace) device.free(workspace);
        for (const b of owned) device.free(b);
        this.f.destroyTensor!(d.x);
        this.f.destroyTensor!(d.y);
        this.f.destroyFilter!(d.w);
        this.f.destroyConv!(d.conv);
      },
    };
  }

  /**
   * A conv2d problem's forward convolution on its device buffers [output, input, weights]
   * (looptune's tensor order), with the fastest algorithm cuDNN measures for it.
   */
  conv2d(p: Problem, device: CudaDevice, ptrs: readonly DevicePtr[]): CudnnConv {
    if (p.op !== 'conv2d') throw new CudaError(`cuDNN baseline: conv2d only, not ${p.op}`);
    const [O, I, W] = p.tensors.map((t) => t.shape) as [number[], number[], number[]];
    // the stride: the output row's coefficient in the input's row index (h * stride + r)
    const h = p.vars.findIndex((v) => v.name === 'h');
    const stride = p.inputs[0]!.index[2]!.terms.find((t) => t.var === h)?.coef ?? 1;
    const x = this.descriptor('createTensor', (d) => this.f.setTensor!(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, ...I));
    const y = this.descriptor('createTensor', (d) => this.f.setTensor!(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, ...O));
    const w = this.descriptor('createFilter', (d) => this.f.setFilter!(d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, ...W));
    const conv = this.descriptor('createConv', (d) => this.f.setConv!(d, 0, 0, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    return this.forward({ x, y, w, conv }, CUDNN_FMA_MATH, device, { y: ptrs[0]!, x: ptrs[1]!, w: ptrs[2]! }, 1);
  }
}
