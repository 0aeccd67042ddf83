/**
 * The host ops that run as native row kernels (targets/x86/row-kernels.ts) instead of float64
 * JavaScript: softmax over contiguous rows and layer normalization, on AVX-512 where the host has
 * it, else AVX2+FMA. Each function returns a HostKernel for the given rows, or undefined where
 * no native code can run (not x86-64, no AVX2+FMA, executable memory refused, or
 * LOOPTUNE_NATIVE_HOST_OPS=0 in the environment), and host-ops.ts then keeps its JS kernel.
 *
 * Code is emitted once per (op, ISA, row length, epsilon) and stays mapped for the life of the
 * process: a model has a handful of distinct row lengths, and kernels are prepared per model
 * load. Results are fp32 throughout (the JS kernels round float64 once per stored value).
 * Measured against float64 (tests/targets/runtime/native-host-ops.test.ts, both ISAs): softmax
 * within 2.4e-7 relative for inputs in [-1, 1], the error growing with |x - max| as its fp32
 * rounding (half an ulp: 4e-6 relative on e^-69, 1e-7 absolute at most); layer norm within
 * 2.5e-7 of max(1, |output|), rows offset by 1e4 included. On the BERT-base layer (1 thread,
 * AVX-512) softmax [1, 12, 128, 128] went from 3.1 ms to 0.08 ms, each layer norm
 * [1, 128, 768] from 0.72 ms to 0.04-0.07 ms.
 */
import { fail } from '../../ir/errors.ts';
import { layerNormRowsCode, softmaxRowsCode, type RowCode } from '../x86/row-kernels.ts';
import type { RowIsa } from '../x86/row-vector.ts';
import { ExecutableCode } from './executable-memory.ts';
import type { HostKernel } from './host-ops.ts';
import { hostIsa, type HostIsa } from './host.ts';

/** The ISA the row kernels use here, undefined where they cannot (or must not: the environment switch) run. */
export function nativeRowIsa(host: HostIsa = hostIsa(), env: NodeJS.ProcessEnv = process.env): RowIsa | undefined {
  if (env.LOOPTUNE_NATIVE_HOST_OPS === '0') return undefined;
  if (host.arch !== 'x64') return undefined;
  if (host.avx512) return 'avx512';
  if (host.avx2 && host.fma) return 'avx2';
  return undefined;
}

/** mapped code by op, ISA, length and epsilon; null: mapping failed once, do not retry */
const mapped = new Map<string, ExecutableCode | null>();

function load(key: string, pointers: number, emit: () => RowCode): ExecutableCode | undefined {
  const hit = mapped.get(key);
  if (hit !== undefined) return hit ?? undefined;
  const { code } = emit(); // an emitter error is a bug or bad input: it propagates
  let exe: ExecutableCode | null = null;
  try {
    exe = new ExecutableCode(code, pointers);
  } catch {
    exe = null; // no executable memory here (mmap/mprotect refused, koffi missing): JS it is
  }
  mapped.set(key, exe);
  return exe ?? undefined;
}

function checkLengths(kind: string, need: number, arrays: readonly Float32Array[]): void {
  for (const x of arrays) {
    if (x.length < need) fail(`host op ${kind}: a tensor of ${x.length} elements where the prepared shapes need ${need}`);
  }
}

/** Softmax over `rows` contiguous rows of `length` floats on `isa` (null: none), or undefined (see the header). */
export function nativeSoftmaxRows(rows: number, length: number, isa: RowIsa | null = nativeRowIsa() ?? null): HostKernel | undefined {
  if (isa === null || rows < 1 || length < 1) return undefined;
  const exe = load(`softmax ${isa} ${length}`, 2, () => softmaxRowsCode(isa, length));
  if (!exe) return undefined;
  const fn = exe.fn, need = rows * length;
  return (inputs, output) => {
    const x = inputs[0]!;
    checkLengths('softmax', need, [x, output]);
    fn(x, output, rows, 0, 1);
  };
}

/** Layer normalization of `rows` contiguous rows of `length` floats by gamma and beta of `length` on `isa` (null: none), or undefined (see the header). */
export function nativeLayerNormRows(rows: number, length: number, epsilon: number, isa: RowIsa | null = nativeRowIsa() ?? null): HostKernel | undefined {
  if (isa === null || rows < 1 || length < 1 || !Number.isFinite(epsilon)) return undefined;
  // the key keeps epsilon's fp32 value: the code holds it rounded to fp32
  const exe = load(`layernorm ${isa} ${length} ${Math.fround(epsilon)}`, 4, () => layerNormRowsCode(isa, length, epsilon));
  if (!exe) return undefined;
  const fn = exe.fn, need = rows * length;
  return (inputs, output) => {
    const x = inputs[0]!, gamma = inputs[1]!, beta = inputs[2]!;
    checkLengths('layernorm', need, [x, output]);
    checkLengths('layernorm', length, [gamma, beta]);
    fn(x, gamma, beta, output, rows, 0, 1);
  };
}
