/**
 * Runs A64 kernels under qemu-aarch64 (natively on an AArch64 Linux host) through the harness:
 *
 *   const r = await runArm64Kernel(code, [out, a, b], { reps: 10, guard: true });
 *   if (r.ok) use(r.output, r.seconds); else console.log(r.error);
 *
 * The kernel is called as `kernel(t0, ..., t(n-1), reps)` (AAPCS64, targets/kernel.ts); `output`
 * is tensor 0 after the call. `seconds` is the kernel call (all reps) measured inside the emulated
 * process: useful to compare kernels under the same emulator, not native speed.
 *
 * A kernel that crashes, breaks the ABI or hangs gives `{ ok: false, error }` (never an exception);
 * the process is replaced, and in a batch the jobs after a failed one still run. qemu's start-up
 * (about 10 ms) dominates small kernels: runArm64Batch runs many jobs in one process.
 */
import { spawn } from 'node:child_process';
import { harnessPath } from './harness.ts';
import { CALLEE_SAVED, EXIT, RESULT, encodeJobFile, jobProblem, parseResultRecord, recordBytes, type JobSpec, type ResultRecord } from './job-format.ts';
import { NATIVE_ARM64, missingToolsMessage } from './tools.ts';

export interface Arm64RunOptions {
  /** repetitions passed to the kernel (default 1) */
  reps?: number;
  /** place each tensor right before a PROT_NONE page, so one element past its end faults */
  guard?: boolean;
  /** kill the process when one kernel runs longer than this (default 10000 ms) */
  timeoutMs?: number;
}

export type Arm64FailureKind = 'crash' | 'timeout' | 'abi' | 'invalid' | 'harness' | 'unavailable';

export type Arm64RunResult =
  | { ok: true; output: Float32Array; seconds: number }
  | { ok: false; error: string; kind: Arm64FailureKind };

export interface Arm64Job {
  code: Uint8Array;
  tensors: Float32Array[];
  reps?: number;
  guard?: boolean;
}

let availability: { ok: true } | { ok: false; reason: string } | null = null;

/** Whether kernels can run here: the tools are installed and the harness builds. Cached. */
export function arm64Available(): { ok: true } | { ok: false; reason: string } {
  if (availability) return availability;
  const missing = missingToolsMessage(NATIVE_ARM64 ? ['llvm-mc-14', 'ld.lld-14'] : ['llvm-mc-14', 'ld.lld-14', 'qemu-aarch64']);
  if (missing) return (availability = { ok: false, reason: `arm64 target unavailable: ${missing}` });
  try {
    harnessPath();
  } catch (e) {
    return (availability = { ok: false, reason: `arm64 harness does not build: ${(e as Error).message}` });
  }
  return (availability = { ok: true });
}

/** Run one kernel. */
export async function runArm64Kernel(code: Uint8Array, tensors: Float32Array[], opts: Arm64RunOptions = {}): Promise<Arm64RunResult> {
  const [r] = await runArm64Batch([{ code, tensors, reps: opts.reps, guard: opts.guard }], { timeoutMs: opts.timeoutMs });
  return r!;
}

/**
 * Run several kernels in one harness process (in order). Results come back in the same order;
 * a failed job costs a process restart for the ones after it.
 */
export async function runArm64Batch(jobs: Arm64Job[], opts: { timeoutMs?: number } = {}): Promise<Arm64RunResult[]> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const results: Arm64RunResult[] = new Array(jobs.length);
  const avail = arm64Available();
  const specs: JobSpec[] = jobs.map((j) => ({ code: j.code, tensors: j.tensors, reps: j.reps ?? 1, guard: j.guard ?? false }));
  let pending: number[] = [];
  specs.forEach((spec, i) => {
    const problem = avail.ok ? jobProblem(spec) : avail.reason;
    if (problem) results[i] = { ok: false, error: problem, kind: avail.ok ? 'invalid' : 'unavailable' };
    else pending.push(i);
  });
  while (pending.length > 0) {
    const got = await runProcess(pending.map((i) => specs[i]!), timeoutMs);
    got.forEach((r, k) => (results[pending[k]!] = r));
    pending = pending.slice(got.length);
  }
  return results;
}

/**
 * One harness process for `jobs`. Returns results for a prefix of them (at least one): it stops
 * at the first job that crashed, hung or took the process down.
 */
function runProcess(jobs: JobSpec[], timeoutMs: number): Promise<Arm64RunResult[]> {
  return new Promise((resolve) => {
    const results: Arm64RunResult[] = [];
    let harness: string;
    try {
      harness = harnessPath();
    } catch (e) {
      resolve([{ ok: false, error: (e as Error).message, kind: 'unavailable' }]);
      return;
    }
    const [cmd, args] = NATIVE_ARM64 ? [harness, []] : ['qemu-aarch64', [harness]];
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
    };
    const finish = (tail: Arm64RunResult | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (tail && results.length < jobs.length) results.push(tail);
      if (results.length === 0) results.push({ ok: false, error: 'harness produced no result', kind: 'harness' });
      resolve(results);
    };

    // Chunks are kept in a list and joined only when a whole record is there (a 4 MB output
    // arrives in many 64 KB chunks: concatenating on every chunk would be quadratic).
    const chunks: Buffer[] = [];
    let buffered = 0;
    let need: number = RESULT.headerBytes;
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      buffered += chunk.length;
      if (buffered < need) return;
      let out = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, buffered);
      chunks.length = 0;
      let at = 0;
      try {
        for (;;) {
          const rec = parseResultRecord(out, at);
          if (!rec) break;
          at = rec.next;
          results.push(toResult(rec.record, jobs[results.length]!));
          arm(); // the next job starts now
        }
        need = recordBytes(out, at);
      } catch (e) {
        child.kill('SIGKILL');
        finish({ ok: false, error: `harness output unreadable: ${(e as Error).message}`, kind: 'harness' });
        return;
      }
      out = out.subarray(at);
      buffered = out.length;
      if (buffered) chunks.push(out);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.on('error', (e) => finish({ ok: false, error: `cannot start ${cmd}: ${e.message}`, kind: 'unavailable' }));
    child.on('close', (code, signal) => {
      const last = results[results.length - 1];
      if (last && !last.ok && last.kind === 'crash') return finish(null); // the signal record said it all
      if (results.length >= jobs.length && code === 0) return finish(null);
      if (timedOut) return finish({ ok: false, error: `kernel timed out after ${timeoutMs} ms (killed)`, kind: 'timeout' });
      const why = signal ? `${cmd} was killed by ${signal}` : `harness exited with code ${code} (${exitMeaning(code)})`;
      const detail = stderr.trim().split('\n').filter(Boolean).slice(-2).join(' | ');
      finish({ ok: false, error: detail ? `${why}: ${detail}` : why, kind: signal ? 'crash' : 'harness' });
    });
    child.stdin.on('error', () => { /* the harness died before reading all input: reported on close */ });
    arm();
    child.stdin.end(encodeJobFile(jobs));
  });
}

const SIGNALS: Record<number, string> = { 4: 'SIGILL', 5: 'SIGTRAP', 7: 'SIGBUS', 8: 'SIGFPE', 11: 'SIGSEGV' };

function exitMeaning(code: number | null): string {
  const name = Object.entries(EXIT).find(([, v]) => v === code)?.[0];
  return name ? `${name} error` : 'unexpected';
}

function toResult(rec: ResultRecord, job: JobSpec): Arm64RunResult {
  if (rec.status === RESULT.status.ok) return { ok: true, output: rec.output, seconds: Number(rec.nanos) / 1e9 };
  if (rec.status === RESULT.status.abi) {
    const mask = Number(rec.info[0]);
    const regs = CALLEE_SAVED.filter((_, i) => mask & (1 << i));
    return { ok: false, error: `kernel broke the AAPCS64 contract: ${regs.join(', ')} not preserved across the call`, kind: 'abi' };
  }
  const [sig, pc, addr] = rec.info;
  const name = SIGNALS[Number(sig)] ?? `signal ${sig}`;
  return { ok: false, error: `kernel crashed: ${name} at ${describePc(pc, rec.codeBase, job.code.length)}, fault address ${describeAddress(addr, rec.tensorBases, job)}`, kind: 'crash' };
}

function describePc(pc: bigint, codeBase: bigint, codeBytes: number): string {
  const off = pc - codeBase;
  return off >= 0n && off < BigInt(codeBytes) ? `code+0x${off.toString(16)}` : `pc 0x${pc.toString(16)} (outside the kernel)`;
}

/** Say which tensor an address belongs to (or is just past), for guard-mode faults. */
function describeAddress(addr: bigint, bases: bigint[], job: JobSpec): string {
  const text = `0x${addr.toString(16)}`;
  for (let i = 0; i < bases.length; i++) {
    const bytes = BigInt(job.tensors[i]!.length * 4);
    const off = addr - bases[i]!;
    if (off >= 0n && off < bytes) return `${text} (inside tensor ${i}, byte ${off})`;
    if (off >= bytes && off < bytes + 4096n) return `${text} (tensor ${i} + ${off} bytes: ${off - bytes} bytes past its end)`;
    if (off < 0n && off >= -4096n) return `${text} (${-off} bytes before tensor ${i})`;
  }
  return text;
}
