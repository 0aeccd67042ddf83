/**
 * What the test machine runs, shared by every test that executes native x86 code. `npm test` runs
 * on x86-64 machines with AVX2+FMA, with or without AVX-512 (a Zen 5 has it, a Zen 3 does not), and
 * must pass on both without skipping:
 *  - a test whose point is not AVX-512 runs on RUN_TARGET (the host's best ISA);
 *  - a test whose point is AVX-512 runs its kernels where the host has it; elsewhere it compiles the
 *    same kernels and checks them with `checkWithoutRunning` (llvm-mc decodes every byte), which
 *    prints one line saying so.
 */
import * as assert from 'uvu/assert';
import type { Kernel } from '../targets/kernel.ts';
import { backend } from '../targets/registry.ts';
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
 * must not touch AVX-512 state (it would die of SIGILL on a host without it); among avx512 kernels
 * of the direct emitter, at least one uses zmm registers (they really are AVX-512 code).
 */
export function assertCompilesCleanly(target: string, kernels: readonly Kernel[]): void {
  const isa = isaOf(target);
  const b = backend(target);
  if (!b.disassemble) throw new Error(`${target} has no disassembler`);
  assert.ok(kernels.length > 0, `no ${target} kernels to check`);
  let zmm = 0;
  for (const [i, kernel] of kernels.entries()) {
    const what = `${target} kernel ${i} (${kernel.program.problem.spec})`;
    assert.is(kernel.target, target, `${what}: compiled for ${kernel.target}`);
    assert.ok(kernel.code.length > 0, `${what}: no code`);
    const lines = codeLines(target, b.disassemble(kernel));
    assert.ok(lines.length > 0, `${what}: no ret`);
    const bad = lines.filter((line) => line.includes('(bad)'));
    if (bad.length) assert.unreachable(`${what}: llvm-mc cannot decode ${bad.length} stretch(es), first: ${bad[0]!.trim()}`);
    const avx512 = lines.find((line) => AVX512_OPERAND.test(line));
    if (isa === 'avx2' && avx512) assert.unreachable(`${what}: AVX-512 in avx2 code: ${avx512.trim()}`);
    if (lines.some((line) => /\bzmm\d+\b/.test(line))) zmm++;
  }
  if (target === 'avx512') assert.ok(zmm > 0, `none of ${kernels.length} avx512 kernels uses zmm registers`);
}

/**
 * The instruction lines of a kernel listing ([] when it has no `ret`). The LLVM printer lists its
 * constants as `.byte` lines; the direct emitter writes one `ret` and then its constant pool
 * (masks, permutations, epilogue constants), which its listing does not tell apart from code yet:
 * decoding runs in order from the entry, so there the first `ret` ends the code.
 */
function codeLines(target: string, listing: string): string[] {
  const lines = listing.split('\n').filter((line) => line.trim() !== '' && !/^\S+:\s+\.byte\b/.test(line));
  const ret = lines.findIndex((line) => /^\S+:\s+ret\b/.test(line));
  if (ret < 0) return [];
  return target.startsWith('llvm-') ? lines : lines.slice(0, ret + 1);
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
