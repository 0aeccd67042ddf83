/**
 * The memory a run of a problem needs, computed from its tensors before anything is allocated,
 * so that a problem too big for the machine is refused with one line instead of swapping, being
 * OOM-killed or failing inside V8 (targets/runtime/memory-limit.ts compares it with the machine).
 *
 * The figures count every copy the current code makes (fp32 elements, 4 bytes each); they were
 * checked against the peak RSS of both processes on `add 4000x4000` and `matmul 1x4000x4000`:
 *  - verification, caller: the inputs, the initial output, the copy of it that is sent, the output
 *    that comes back, and the whole job message twice (advanced serialization, then the pipe's
 *    queue); a full (not sampled) check adds two float64 copies of the output (value, magnitude)
 *    and the inputs' absolute values.
 *  - verification, measurement worker: the received message, the tensors decoded from it, the
 *    native (aligned) buffers the kernel runs on, and the output copied out and serialized back.
 *  - timing, measurement worker: one native buffer per tensor, plus the packing frame (the
 *    x86 emitter packs a box of at most 192 KB on the stack: counted as PACKING_BYTES).
 */
import { elementCount, type Problem } from './problem.ts';

export const FLOAT_BYTES = 4;

/** Upper bound of the stack frame a packing kernel uses for its packed box (loopnest/lower.ts). */
export const PACKING_BYTES = 256 * 1024;

/**
 * Most elements one tensor may have: typed arrays of Node 20 stop at 2^32 elements, and the ABI's
 * element counts and the generated address arithmetic are sized for 2^31 - 1.
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

export interface Footprint {
  /** every tensor once */
  tensorBytes: number;
  inputBytes: number;
  outputBytes: number;
  /** verification, in the calling process */
  verifyCallerBytes: number;
  /** verification, in the measurement worker (see workerRunBytes) */
  verifyWorkerBytes: number;
  /** verification, both processes together: the most a run (verify, then time) holds at once */
  verifyBytes: number;
  /** timing, in the measurement worker (see timingBytes) */
  timeBytes: number;
}

/** Bytes a measurement worker holds while it runs a kernel once on tensors it was sent. */
export function workerRunBytes(tensorBytes: number, outputBytes: number): number {
  return 3 * tensorBytes + 2 * outputBytes;
}

/** Bytes a measurement worker holds while it times a kernel on its own buffers. */
export function timingBytes(tensorBytes: number): number {
  return tensorBytes + PACKING_BYTES;
}

/**
 * What verifying and timing `problem` costs. `fullCheck`: the interpreter checks every output
 * element (targets/verify.ts decides; false: a sample of elements, which costs nothing extra).
 */
export function problemFootprint(problem: Problem, options: { fullCheck: boolean }): Footprint {
  const [output, ...inputs] = problem.tensors.map((t) => elementCount(t) * FLOAT_BYTES);
  const outputBytes = output!;
  const inputBytes = inputs.reduce((a, b) => a + b, 0);
  const tensorBytes = inputBytes + outputBytes;
  const fullCheckBytes = options.fullCheck ? 4 * outputBytes + inputBytes : 0;
  const verifyCallerBytes = inputBytes + 3 * outputBytes + 2 * tensorBytes + fullCheckBytes;
  const verifyWorkerBytes = workerRunBytes(tensorBytes, outputBytes);
  return {
    tensorBytes, inputBytes, outputBytes, verifyCallerBytes, verifyWorkerBytes,
    verifyBytes: verifyCallerBytes + verifyWorkerBytes,
    timeBytes: timingBytes(tensorBytes),
  };
}

/** The first tensor with more than MAX_TENSOR_ELEMENTS elements, or null. */
export function oversizedTensor(problem: Problem): { name: string; elements: number } | null {
  for (const t of problem.tensors) {
    const elements = elementCount(t);
    if (elements > MAX_TENSOR_ELEMENTS) return { name: t.name, elements };
  }
  return null;
}
