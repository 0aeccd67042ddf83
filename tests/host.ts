/**
 * What the test machine runs, shared by every test that executes native x86 code. `npm test` runs
 * on x86-64 machines with AVX2+FMA, with or without AVX-512 (a Zen 5 has it, a Zen 3 does not), and
 * must pass on both without skipping:
 *  - a test whose point is not AVX-512 runs on RUN_TARGET (the host's best ISA);
 *  - a test whose point is AVX-512 runs its kernels where the host has it; elsewhere it compiles the
 *    same kernels and checks them with `checkWithoutRunning` (llvm-mc decodes every byte), which
 *    prints one line saying so (`fuzzOrCheck` and `kernelCheck` do either, by the host; of a large
 *    batch, CHECKED_WITHOUT_RUNNING kernels spread over it are decoded).
 */
import * as assert from 'uvu/assert';
import type { Schedule } from '../ir/schedule.ts';
import { fuzzTarget, type FuzzOptions, type FuzzReport } from '../targets/fuzz.ts';
import type { Kernel } from '../targets/kernel.ts';
import { backend } from '../targets/registry.ts';
import { verifyKernel, type KernelRunner } from '../targets/verify.ts';
import { HOST_TARGETS, hostIsa, hostIsaError, hostTarget, type HostIsa, type HostTarget } from '../targets/runtime/host.ts';

export const HOST_ISA: HostIsa = hostIsa();

/** The host's best native x86 target; importing this module on a host without AVX2+FMA fails in one line. */
export const RUN_TARGET: HostTarget = hostTarget();

/** The x86 ISAs this host executes, best first (avx2 always; avx512 where the CPU has it). */
export const RUNNABLE_X86: readonly HostTarget[] = HOST_TARGETS.filter((isa) => hostIsaError(isa, HOST_ISA) === undefined);

/** The ISA of an x86 backend name: 'avx512' and 'llvm-avx512' are avx512 code. */
export function isaOf(target: string): HostTarget {
  const isa = target.replace(/^llvm-/, '');
  if (isa !== 'avx512' && isa !== 'avx2') throw new Error(`${target} is not an x86 target`);
  return isa;
}

/** Whether this host executes the code of x86 backend `target` (avx2, avx512, llvm-avx2, llvm-avx512). */
export function hostRunsTarget(target: string): boolean {
  return RUNNABLE_X86.includes(isaOf(target));
}

/** AVX-512 state in an Intel-syntax listing: zmm, xmm16-31/ymm16-31, or an opmask register. */
const AVX512_OPERAND = /\b(zmm\d+|[xy]mm(1[6-9]|2\d|3[01])|k[1-7])\b/;

/**
 * What a kernel the host cannot execute still gets: each one is disassembled by llvm-mc-14 through
 * its printer's own listing (targets/x86/disassemble.ts, where llvm-mc's warnings become `(bad)`
 * rows) and its code must decode with no invalid bytes and no warnings, and return. An avx2 kernel
 * must not touch AVX-512 state (it would die of SIGILL on a host without it); a vectorized kernel
 * of the direct avx512 emitter uses zmm registers (it really is AVX-512 code; its scalar path, one
 * lane, is xmm code like avx2's).
 */
export function assertCompilesCleanly(target: string, kernels: readonly Kernel[]): void {
  const isa = isaOf(target);
  const b = backend(target);
  if (!b.disassemble) throw new Error(`${target} has no disassembler`);
  assert.ok(kernels.length > 0, `no ${target} kernels to check`);
  for (const [i, kernel] of kernels.entries()) {
    const what = `${target} kernel ${i} (${kernel.program.problem.spec})`;
    assert.is(kernel.target, target, `${what}: compiled for ${kernel.target}`);
    assert.ok(kernel.code.length > 0, `${what}: no code`);
    const lines = codeLines(b.disassemble(kernel));
    assert.ok(lines.length > 0, `${what}: no ret`);
    const bad = lines.filter((line) => line.includes('(bad)'));
    if (bad.length) assert.unreachable(`${what}: llvm-mc cannot decode ${bad.length} stretch(es), first: ${bad[0]!.trim()}`);
    const avx512 = lines.find((line) => AVX512_OPERAND.test(line));
    if (isa === 'avx2' && avx512) assert.unreachable(`${what}: AVX-512 in avx2 code: ${avx512.trim()}`);
    const lanes = kernel.program.decision.lanes;
    if (target === 'avx512' && lanes > 1 && !lines.some((line) => /\bzmm\d+\b/.test(line))) {
      assert.unreachable(`${what}: a ${lanes}-lane avx512 kernel without zmm registers`);
    }
  }
}

/**
 * The instruction lines of a kernel listing ([] when it has no `ret`): both printers mark where
 * their code ends (the direct emitter's constant pool follows its `ret`, LLVM's constants its
 * .text), and the listing shows what follows as `.byte` data lines.
 */
function codeLines(listing: string): string[] {
  const lines = listing.split('\n').filter((line) => line.trim() !== '' && !/^\S+:\s+\.byte\b/.test(line));
  return lines.some((line) => /^\S+:\s+ret\b/.test(line)) ? lines : [];
}

/**
 * A test of `target` code on a host that cannot execute it: assertCompilesCleanly, then ONE line
 * saying what was checked instead of run.
 */
export function checkWithoutRunning(target: string, kernels: readonly Kernel[]): void {
  assertCompilesCleanly(target, kernels);
  const lacks = isaOf(target) === 'avx512' ? 'AVX-512' : 'AVX2+FMA';
  console.log(`  host lacks ${lacks}: ${kernels.length} ${target} kernels compiled and disassembled, not run`);
}

/** How many kernels of a large batch a host that cannot run them decodes (llvm-mc runs once or more per kernel). */
export const CHECKED_WITHOUT_RUNNING = 60;

/** `n` of `items` spread evenly from the first (all of them when there are no more). */
export function spread<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  return Array.from({ length: n }, (_, j) => items[Math.floor((j * items.length) / n)]!);
}

/** What the recording runner of a host that cannot run the kernels answers (fuzzTarget counts it as a crash). */
const NOT_RUN = 'compiled, not run: this host cannot execute it';

/**
 * fuzzTarget where the host runs `opts.target` (its report as it is). Elsewhere the same cases are
 * drawn and compiled, and the runner records each kernel instead of running it: every case must
 * compile and reach the runner, and `sample` kernels spread over the run go through
 * checkWithoutRunning. That report counts no crash or failure for the cases not run, so the
 * caller's assertions (no failures, op coverage, bands, packing, epilogue placements) hold on both.
 */
export async function fuzzOrCheck(opts: FuzzOptions, sample = CHECKED_WITHOUT_RUNNING): Promise<FuzzReport> {
  const target = typeof opts.target === 'string' ? opts.target : opts.target.name;
  if (hostRunsTarget(target)) return fuzzTarget(opts);
  const kernels: Kernel[] = [];
  const record: KernelRunner = async (kernel) => {
    kernels.push(kernel);
    return { ok: false, error: NOT_RUN };
  };
  const r = await fuzzTarget({ ...opts, runner: record });
  const codegen = r.failures.filter((f) => f.kind === 'codegen');
  assert.is(r.codegenErrors, 0, `${r.codegenErrors} of ${r.cases} ${target} cases did not compile, first: ${JSON.stringify(codegen.slice(0, 3))}`);
  assert.is(kernels.length, r.cases, 'every compiled kernel reaches the runner');
  assert.is(r.crashes, r.cases, 'the recording runner answered every case');
  assert.ok(r.failures.every((f) => f.message === NOT_RUN), JSON.stringify(r.failures.slice(0, 3)));
  checkWithoutRunning(target, spread(kernels, sample));
  return { ...r, crashes: 0, failures: [] };
}

/** One test's interpreter check of `target` kernels: run where the host executes them, decoded elsewhere. */
export interface KernelCheck {
  /** whether the kernels run (the host executes the target) */
  readonly runs: boolean;
  /**
   * verifyKernel through the runner, returning its error (undefined when verified), where the
   * kernels run; elsewhere records the kernel and returns undefined.
   */
  verify(kernel: Kernel, schedule: Schedule, opts?: Parameters<typeof verifyKernel>[3]): Promise<string | undefined>;
  /** Once, at the end of the test: where the kernels did not run, checkWithoutRunning on `sample` of the recorded ones. */
  finish(): void;
}

export function kernelCheck(target: string, runner: KernelRunner, sample = CHECKED_WITHOUT_RUNNING): KernelCheck {
  const runs = hostRunsTarget(target);
  const recorded: Kernel[] = [];
  return {
    runs,
    async verify(kernel, schedule, opts) {
      if (!runs) {
        recorded.push(kernel);
        return undefined;
      }
      const v = await verifyKernel(kernel, schedule, runner, opts);
      return v.verified ? undefined : v.error ?? 'not verified';
    },
    finish() {
      if (!runs) checkWithoutRunning(target, spread(recorded, sample));
    },
  };
}

/** A fuzz report with `cases` cases and no mismatch, crash or code-generation error (the first failures shown). */
export function assertFuzzClean(r: FuzzReport, cases: number): void {
  assert.is(r.cases, cases);
  assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
  assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
}
