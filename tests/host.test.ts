/**
 * The shared host helper (tests/host.ts): RUN_TARGET and RUNNABLE_X86 follow the CPU, and
 * assertCompilesCleanly (what an avx512 kernel gets on a host that cannot run it) passes real
 * kernels of every x86 target and catches undecodable bytes, AVX-512 in avx2 code, a missing ret,
 * the wrong target and an empty batch.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import type { Kernel } from '../targets/kernel.ts';
import { llvmAvailable } from '../targets/llvm/index.ts';
import { backend } from '../targets/registry.ts';
import { hostIsa } from '../targets/runtime/host.ts';
import { HOST_ISA, RUNNABLE_X86, RUN_TARGET, assertCompilesCleanly, checkWithoutRunning, hostRunsTarget, isaOf } from './host.ts';

const compile = (target: string, spec: string, text?: string): Kernel => {
  const problem = parseProblem(spec);
  return backend(target).compile(text === undefined ? Schedule.initial(problem) : Schedule.parse(problem, text));
};

/** `kernel` with other bytes (the printer's listing then decodes them all as code) */
const withCode = (kernel: Kernel, code: Uint8Array): Kernel => ({ ...kernel, code });

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** fn fails with an uvu assertion matching `pattern` (assert.throws rethrows assertions, so it cannot say) */
function failsWith(fn: () => void, pattern: RegExp): void {
  let message: string | undefined;
  try {
    fn();
  } catch (e) {
    message = e instanceof Error ? e.message : String(e);
  }
  assert.ok(message !== undefined, `passed; expected a failure matching ${pattern}`);
  assert.match(message ?? '', pattern);
}

test('RUN_TARGET and RUNNABLE_X86 follow the CPU flags', () => {
  assert.is(HOST_ISA, hostIsa());
  assert.equal([...RUNNABLE_X86], HOST_ISA.avx512 ? ['avx512', 'avx2'] : ['avx2']);
  assert.is(RUN_TARGET, RUNNABLE_X86[0]);
  assert.is(isaOf('llvm-avx512'), 'avx512');
  assert.is(isaOf('avx2'), 'avx2');
  assert.throws(() => isaOf('neon'), /neon is not an x86 target/);
  assert.is(hostRunsTarget('llvm-avx512'), HOST_ISA.avx512);
  assert.ok(hostRunsTarget('llvm-avx2'));
});

test('assertCompilesCleanly passes real kernels: tails, strided reads, constants, bands; both printers', () => {
  const llvm = llvmAvailable();
  assert.ok(llvm.ok, `the LLVM tools are missing (npm test's pretest installs them): ${llvm.ok ? '' : llvm.reason}`);
  const cases: [string, string | undefined][] = [
    ['matmul 23x55x16', 'm:5r3p n:3r7p k:16 n:16 m:4'],
    ['conv2d n1 c2 h1 w42 k1 r1 s1 stride2', 'n:1 k:1 h:1 c:2 r:1 s:1 w:21'],
    ['matmul 13x19x7 +bias +sigmoid', undefined],
    ['add 37x50', undefined],
  ];
  for (const target of ['avx512', 'avx2']) assertCompilesCleanly(target, cases.map(([spec, text]) => compile(target, spec, text)));
  for (const target of ['llvm-avx512', 'llvm-avx2']) assertCompilesCleanly(target, [compile(target, 'matmul 23x55x16', 'm:5r3p n:3r7p k:16 n:16 m:4')]);
});

test('assertCompilesCleanly catches bad bytes, AVX-512 in avx2 code, no ret, the wrong target, no kernels', () => {
  const avx2 = compile('avx2', 'matmul 8x16x8', 'm:8 n:16 k:8');
  // 0x06 (push es) does not exist in 64-bit mode
  failsWith(() => assertCompilesCleanly('avx2', [withCode(avx2, concat(new Uint8Array([0x06]), avx2.code))]), /cannot decode 1 stretch/);
  // vaddps zmm0, zmm1, zmm2 (EVEX) ahead of real avx2 code
  const evex = new Uint8Array([0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2]);
  failsWith(() => assertCompilesCleanly('avx2', [withCode(avx2, concat(evex, avx2.code))]), /AVX-512 in avx2 code: .*vaddps\s+zmm0/);
  // four nops and no ret
  failsWith(() => assertCompilesCleanly('avx2', [withCode(avx2, new Uint8Array([0x90, 0x90, 0x90, 0x90]))]), /no ret/);
  failsWith(() => assertCompilesCleanly('avx512', [avx2]), /compiled for avx2/);
  failsWith(() => assertCompilesCleanly('avx2', []), /no avx2 kernels to check/);
});

test('checkWithoutRunning checks, then prints one line', () => {
  const kernels = [compile('avx512', 'matmul 8x16x8', 'm:8 n:16 k:8'), compile('avx512', 'relu 37x91', 'i:37 j:91')];
  const printed: unknown[][] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void printed.push(args);
  try {
    checkWithoutRunning('avx512', kernels);
  } finally {
    console.log = log;
  }
  assert.equal(printed, [['  host lacks AVX-512: 2 avx512 kernels compiled and disassembled, not run']]);
});

test.run();
