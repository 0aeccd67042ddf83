/**
 * The binary protocol between the TypeScript runner and the AArch64 harness (harness-asm.ts).
 * This file is the one definition: the harness's assembly takes its offsets and magic numbers
 * from the constants below, so the two sides cannot drift apart.
 *
 * All integers are little-endian. Every part starts 8-byte aligned (parts are zero-padded).
 *
 * JOB FILE (harness argv[1], or stdin when there is no argument or it is "-")
 *
 *   file header, 16 bytes
 *     0   u32  magic 0x314a544c ("LTJ1")
 *     4   u32  version = 1
 *     8   u32  jobCount (>= 1): jobs run one after the other in one process
 *    12   u32  reserved (0)
 *   then jobCount jobs:
 *     0   u32  codeBytes (> 0, multiple of 4)
 *     4   u32  nTensors (1..7: x0..x(n-1) are the tensors, x(n) is reps, all in x0..x7)
 *     8   u32  flags: bit 0 = guard mode
 *    12   u32  reserved (0)
 *    16   u64  reps (passed to the kernel as is)
 *    24   u64  elements[nTensors] (fp32 elements of each tensor)
 *          u8  code[codeBytes], padded to 8
 *         f32  data[elements[i]] for each tensor i in order, each padded to 8
 *
 *   Each tensor gets its own mapping. Normal mode: the tensor starts the mapping (page aligned,
 *   so 64-byte aligned). Guard mode: the tensor ends exactly where a PROT_NONE page begins, so
 *   the first byte past it faults; its start is then 64-byte aligned only when its size is a
 *   multiple of 64 bytes (16 floats). The code is copied to its own mapping, which is made
 *   read+execute (never writable and executable at once) and synchronized with the i-cache.
 *
 * RESULT STREAM (harness stdout), one record per job, written as soon as the job ends
 *
 *     0   u32  magic 0x3152544c ("LTR1")
 *     4   u32  status: 0 ok, 1 ABI violation (callee-saved register or sp not preserved; the
 *              output is still sent), 2 signal (the kernel crashed; no output follows)
 *     8   u64  nanoseconds of the kernel call (all reps), CLOCK_MONOTONIC inside the process
 *    16   u64  outputElements: fp32 values of tensor 0 that follow the header (0 on a signal)
 *    24   u64  info0: status 1: bit mask of clobbered CALLEE_SAVED slots; status 2: signal number
 *    32   u64  info1: status 2: pc of the fault
 *    40   u64  info2: status 2: fault address (si_addr)
 *    48   u64  code base address
 *    56   u64  nTensors
 *    64   u64  tensor base addresses [7]
 *   120   u64  reserved
 *   128   f32  output[outputElements], padded to 8
 *
 *   After a signal record the harness exits with EXIT.signal; the jobs after it did not run.
 *   Exit codes: see EXIT (a one-line reason also goes to stderr).
 */

export const JOB = {
  magic: 0x314a544c,
  version: 1,
  fileHeaderBytes: 16,
  /** fixed part of a job header, before elements[] */
  jobHeaderBytes: 24,
  maxTensors: 7,
  flagGuard: 1,
  /** sanity bound on one tensor (elements), so sizes never overflow in the harness */
  maxElements: 2 ** 36,
} as const;

export const RESULT = {
  magic: 0x3152544c,
  headerBytes: 128,
  off: {
    magic: 0, status: 4, nanos: 8, outElements: 16, info0: 24, info1: 32, info2: 40,
    codeBase: 48, nTensors: 56, tensorBase: 64,
  },
  status: { ok: 0, abi: 1, signal: 2 },
} as const;

/** Harness exit codes. */
export const EXIT = { ok: 0, signal: 3, usage: 10, read: 11, format: 12, mmap: 13, write: 14 } as const;

/** Registers the harness checks after the call, in the bit order of info0 for status 1. */
export const CALLEE_SAVED = [
  'x19', 'x20', 'x21', 'x22', 'x23', 'x24', 'x25', 'x26', 'x27', 'x28', 'x29',
  'd8', 'd9', 'd10', 'd11', 'd12', 'd13', 'd14', 'd15', 'sp',
] as const;

export interface JobSpec {
  code: Uint8Array;
  tensors: Float32Array[];
  reps: number;
  guard: boolean;
}

const pad8 = (n: number) => (n + 7) & ~7;

/** Validate a job; returns the reason it cannot run, or null. */
export function jobProblem(job: JobSpec): string | null {
  if (job.code.length === 0 || job.code.length % 4 !== 0) return `code is ${job.code.length} bytes: must be a non-empty multiple of 4`;
  if (job.tensors.length < 1 || job.tensors.length > JOB.maxTensors) return `${job.tensors.length} tensors: AAPCS64 passes 1..${JOB.maxTensors} tensor pointers plus reps in x0..x7`;
  if (!Number.isSafeInteger(job.reps) || job.reps < 0) return `reps ${job.reps} must be a non-negative integer`;
  for (const t of job.tensors) if (t.length > JOB.maxElements) return `tensor of ${t.length} elements is too large`;
  return null;
}

/** The job file for `jobs` (validate them with jobProblem first). */
export function encodeJobFile(jobs: JobSpec[]): Uint8Array {
  let size = JOB.fileHeaderBytes;
  for (const j of jobs) {
    size += JOB.jobHeaderBytes + 8 * j.tensors.length + pad8(j.code.length);
    for (const t of j.tensors) size += pad8(t.length * 4);
  }
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, JOB.magic, true);
  dv.setUint32(4, JOB.version, true);
  dv.setUint32(8, jobs.length, true);
  let o = JOB.fileHeaderBytes;
  for (const j of jobs) {
    dv.setUint32(o, j.code.length, true);
    dv.setUint32(o + 4, j.tensors.length, true);
    dv.setUint32(o + 8, j.guard ? JOB.flagGuard : 0, true);
    dv.setBigUint64(o + 16, BigInt(j.reps), true);
    o += JOB.jobHeaderBytes;
    for (const t of j.tensors) { dv.setBigUint64(o, BigInt(t.length), true); o += 8; }
    buf.set(j.code, o);
    o += pad8(j.code.length);
    for (const t of j.tensors) {
      buf.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength), o);
      o += pad8(t.byteLength);
    }
  }
  return buf;
}

export interface ResultRecord {
  status: number;
  nanos: bigint;
  output: Float32Array;
  info: [bigint, bigint, bigint];
  codeBase: bigint;
  tensorBases: bigint[];
}

/** Bytes of the record starting at `offset` (its header only, when that is not complete yet). */
export function recordBytes(buf: Uint8Array, offset: number): number {
  if (buf.length - offset < RESULT.headerBytes) return RESULT.headerBytes;
  const dv = new DataView(buf.buffer, buf.byteOffset + offset, RESULT.headerBytes);
  return RESULT.headerBytes + pad8(Number(dv.getBigUint64(RESULT.off.outElements, true)) * 4);
}

/**
 * Parse one result record at `offset` of `buf`; null when the record is not complete yet
 * (streaming), throws when the bytes are not a record.
 */
export function parseResultRecord(buf: Uint8Array, offset: number): { record: ResultRecord; next: number } | null {
  if (buf.length - offset < RESULT.headerBytes) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset + offset, buf.length - offset);
  const O = RESULT.off;
  if (dv.getUint32(O.magic, true) !== RESULT.magic) throw new Error('harness output is not a result record (bad magic)');
  const outElements = Number(dv.getBigUint64(O.outElements, true));
  const next = offset + RESULT.headerBytes + pad8(outElements * 4);
  if (buf.length < next) return null;
  const output = new Float32Array(outElements);
  new Uint8Array(output.buffer).set(buf.subarray(offset + RESULT.headerBytes, offset + RESULT.headerBytes + outElements * 4));
  const nT = Math.min(Number(dv.getBigUint64(O.nTensors, true)), JOB.maxTensors);
  return {
    record: {
      status: dv.getUint32(O.status, true),
      nanos: dv.getBigUint64(O.nanos, true),
      output,
      info: [dv.getBigUint64(O.info0, true), dv.getBigUint64(O.info1, true), dv.getBigUint64(O.info2, true)],
      codeBase: dv.getBigUint64(O.codeBase, true),
      tensorBases: Array.from({ length: nT }, (_, i) => dv.getBigUint64(O.tensorBase + 8 * i, true)),
    },
    next,
  };
}
