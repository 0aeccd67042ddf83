/**
 * Machine code in executable memory, callable from JS with the kernel ABI of targets/kernel.ts:
 * `void kernel(float *t0, ..., float *tN, int64_t reps, int64_t tid, int64_t threads)`, 1 to 5
 * pointers (System V: rdi..r8, then reps, tid, threads in the next integer registers or the stack).
 *
 * W^X: the pages are mapped read+write, filled, then switched to read+execute; they are never
 * writable and executable at once.
 */
import koffi, { type TypeObject } from 'koffi';
import { fail } from '../../ir/errors.ts';
import type { Kernel } from '../kernel.ts';
import { hostIsa, hostIsaError, type HostIsa, type HostTarget } from './host.ts';
import { PROT_EXEC, PROT_READ, PROT_WRITE, mapAnonymous, nativeView, protect, roundUpToPage, unmap } from './libc.ts';

export const MAX_KERNEL_POINTERS = 5;

/**
 * One pointer argument: a native address or a Float32Array (passed zero-copy: koffi hands the
 * kernel the array's own backing store, base + byteOffset).
 */
export type KernelPointer = bigint | Float32Array;

/** The decoded native function: pointers in ABI order, then the repetition count, tid and threads. */
export type KernelFunction = (...args: [...KernelPointer[], number | bigint, number, number]) => void;

/**
 * The part of a Kernel the runtime needs: its bytes, ABI and flops, and the target that printed it
 * when there is one (hand-assembled code, e.g. the tests' fixtures and the peak probe, has none).
 */
export type NativeKernel = Pick<Kernel, 'code' | 'abi' | 'flops'> & Partial<Pick<Kernel, 'target'>>;

/** The ISA each x86 printer's code needs (a target missing here is not checked: plain x86-64). */
const TARGET_ISA: ReadonlyMap<string, HostTarget> = new Map([
  ['avx512', 'avx512'], ['llvm-avx512', 'avx512'], ['avx2', 'avx2'], ['llvm-avx2', 'avx2'],
]);

/**
 * Throws unless `kernel` is x86-64 machine code this runtime can call on this CPU: code of an
 * ISA the host lacks is refused in one line (hostIsaError), since calling it would kill the
 * caller's process with SIGILL (in process) or only report a worker's SIGILL. `host` defaults to
 * this machine's (a parameter so that the refusal can be tested for any CPU).
 */
export function assertRunnableKernel(kernel: NativeKernel, host: HostIsa = hostIsa()): void {
  if (kernel.abi.kind !== 'sysv-x86-64') {
    throw new TypeError(`targets/runtime runs sysv-x86-64 kernels, not ${kernel.abi.kind}`);
  }
  if (process.arch !== 'x64') throw new Error(`host is ${process.arch}, not x86-64: cannot run x86 kernels`);
  const isa = kernel.target === undefined ? undefined : TARGET_ISA.get(kernel.target);
  const cannotRun = isa === undefined ? undefined : hostIsaError(isa, host);
  // the same line as the device's refusal (targets/x86/device.ts): a LoopTuneError, printed as is
  if (cannotRun) fail(cannotRun);
  const count = kernel.abi.tensors.length;
  if (count < 1 || count > MAX_KERNEL_POINTERS) {
    throw new RangeError(`a kernel takes 1 to ${MAX_KERNEL_POINTERS} tensors, this one has ${count}`);
  }
}

const protos = new Map<number, TypeObject>();

/** One koffi prototype per arity: `void (void *, ..., int64_t reps, int64_t tid, int64_t threads)`. */
function kernelProto(pointers: number): TypeObject {
  let proto = protos.get(pointers);
  if (!proto) {
    proto = koffi.proto('void', [...Array<string>(pointers).fill('void *'), 'int64_t', 'int64_t', 'int64_t']);
    protos.set(pointers, proto);
  }
  return proto;
}

export class ExecutableCode {
  readonly address: bigint;
  readonly size: number;
  readonly pointers: number;
  #fn: KernelFunction | undefined;
  readonly #mapped: number;

  constructor(code: Uint8Array, pointers: number) {
    if (!Number.isInteger(pointers) || pointers < 1 || pointers > MAX_KERNEL_POINTERS) {
      throw new RangeError(`a kernel takes 1 to ${MAX_KERNEL_POINTERS} pointers, got ${pointers}`);
    }
    if (code.length === 0) throw new RangeError('empty machine code');
    this.size = code.length;
    this.pointers = pointers;
    this.#mapped = roundUpToPage(code.length);
    this.address = mapAnonymous(this.#mapped, PROT_READ | PROT_WRITE);
    try {
      new Uint8Array(nativeView(this.address, code.length)).set(code);
      protect(this.address, this.#mapped, PROT_READ | PROT_EXEC);
    } catch (e) {
      unmap(this.address, this.#mapped);
      throw e;
    }
    // Decode once: calling through a decoded function is ~4x cheaper than koffi.call each time.
    this.#fn = koffi.decode(this.address, kernelProto(pointers)) as KernelFunction;
  }

  /** The callable kernel; throws once the code has been freed. */
  get fn(): KernelFunction {
    if (!this.#fn) throw new Error('ExecutableCode used after free()');
    return this.#fn;
  }

  get freed(): boolean {
    return this.#fn === undefined;
  }

  free(): void {
    if (!this.#fn) return;
    this.#fn = undefined;
    unmap(this.address, this.#mapped);
  }
}
