/**
 * The shared host helper (tests/host.ts): RUN_TARGET and RUNNABLE_X86 follow the CPU, and
 * assertCompilesCleanly (what an avx512 kernel gets on a host that cannot run it) passes real
 * kernels of every x86 target and catches undecodable bytes (after a ret too), AVX-512 in avx2
 * code, a missing ret, the wrong target, avx512 vector code without zmm and an empty batch; fuzzOrCheck and kernelCheck run where
 * the host can and decode elsewhere, printing the one line, and still fail what does not compile.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import type { Kernel } from '../targets/kernel.ts';
import { llvmAvailable } from '../targets/llvm/index.ts';
import { workerRunner } from '../targets/native-runner.ts';
import { backend } from '../targets/registry.ts';
import { hostIsa } from '../targets/runtime/host.ts';
import { MeasurementPool } from '../targets/runtime/measure.ts';
import { x86Target } from '../targets/x86/target.ts';
import {
  HOST_ISA, RUNNABLE_X86, RUN_TARGET, assertCompilesCleanly, checkWithoutRunning, fuzzOrCheck, hostRunsTarget, isaOf, kernelCheck, spread,
} from './host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });

test.after(async () => {
  await pool.close();
});

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

/** What `fn` prints with console.log, and what it returns. */
async function printedBy<T>(fn: () => Promise<T> | T): Promise<{ printed: unknown[][]; value: T }> {
  const printed: unknown[][] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void printed.push(args);
  try {
    return { printed, value: await fn() };
  } finally {
    console.log = log;
  }
}

/** The one line checkWithoutRunning prints for `n` avx512 kernels, where this host prints it. */
const notRunLines = (n: number): unknown[][] => (HOST_ISA.avx512 ? [] : [[`  host lacks AVX-512: ${n} avx512 kernels compiled and disassembled, not run`]]);

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

test('assertCompilesCleanly catches bad bytes, AVX-512 in avx2 code, no ret, the wrong target, avx512 vectors without zmm, no kernels', () => {
  const avx2 = compile('avx2', 'matmul 8x16x8', 'm:8 n:16 k:8');
  // 0x06 (push es) does not exist in 64-bit mode
  failsWith(() => assertCompilesCleanly('avx2', [withCode(avx2, concat(new Uint8Array([0x06]), avx2.code))]), /cannot decode 1 stretch/);
  // vaddps zmm0, zmm1, zmm2 (EVEX) ahead of real avx2 code
  const evex = new Uint8Array([0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2]);
  failsWith(() => assertCompilesCleanly('avx2', [withCode(avx2, concat(evex, avx2.code))]), /AVX-512 in avx2 code: .*vaddps\s+zmm0/);
  // four nops and no ret
  failsWith(() => assertCompilesCleanly('avx2', [withCode(avx2, new Uint8Array([0x90, 0x90, 0x90, 0x90]))]), /no ret/);
  // bytes after a ret are decoded too: only the printer's own mark (the constant pool) ends the code
  failsWith(() => assertCompilesCleanly('avx2', [withCode(avx2, concat(new Uint8Array([0xc3, 0x06]), avx2.code))]), /cannot decode 1 stretch/);
  failsWith(() => assertCompilesCleanly('avx512', [avx2]), /compiled for avx2/);
  // a vectorized avx512 kernel whose code has no zmm register is not AVX-512 code; its scalar path (one lane) is xmm code
  const avx512 = compile('avx512', 'matmul 8x16x8', 'm:8 n:16 k:8');
  failsWith(() => assertCompilesCleanly('avx512', [withCode(avx512, avx2.code)]), /a 16-lane avx512 kernel without zmm registers/);
  const scalar = compile('avx512', 'copy 2x4001', 'j:4001 i:2');
  assert.is(scalar.program.decision.lanes, 1);
  assertCompilesCleanly('avx512', [scalar]);
  failsWith(() => assertCompilesCleanly('avx2', []), /no avx2 kernels to check/);
});

test('checkWithoutRunning checks, then prints one line', async () => {
  const kernels = [compile('avx512', 'matmul 8x16x8', 'm:8 n:16 k:8'), compile('avx512', 'relu 37x91', 'i:37 j:91')];
  const { printed } = await printedBy(() => checkWithoutRunning('avx512', kernels));
  assert.equal(printed, [['  host lacks AVX-512: 2 avx512 kernels compiled and disassembled, not run']]);
});

test('spread takes n items evenly from the first, or all of them', () => {
  assert.equal(spread([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4), [0, 2, 5, 7]);
  assert.equal(spread([1, 2], 5), [1, 2]);
});

test('fuzzOrCheck: avx512 cases run where the host has AVX-512, else all compile and a spread is decoded; the report is clean either way', async () => {
  const opts = { target: 'avx512', cases: 8, seed: 5, runner: workerRunner(pool) } as const;
  const { printed, value: r } = await printedBy(() => fuzzOrCheck(opts, 3));
  assert.is(r.cases, 8);
  assert.equal(r.failures, []);
  assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
  assert.is(Object.keys(r.perOp).length, 8);
  assert.equal(printed, notRunLines(3));
  // avx2 always runs: nothing printed
  assert.equal((await printedBy(() => fuzzOrCheck({ ...opts, target: 'avx2' }))).printed, []);
});

test('fuzzOrCheck fails a case that does not compile on either kind of host', async () => {
  const broken = { ...x86Target('avx512'), compile: (): Kernel => { throw new Error('no code today'); } };
  const outcome = await fuzzOrCheck({ target: broken, cases: 3, seed: 1, runner: workerRunner(pool) }).then(
    (r) => r,
    (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
  );
  if (!HOST_ISA.avx512) {
    assert.instance(outcome, Error);
    assert.match((outcome as Error).message, /3 of 3 avx512 cases did not compile, first: .*no code today/);
  } else if (outcome instanceof Error) {
    assert.unreachable(`fuzzOrCheck threw where the kernels run: ${outcome.message}`);
  } else {
    // where it runs, the report says so (the fuzz tests assert codegenErrors 0)
    assert.is(outcome.codegenErrors, 3);
  }
});

test('kernelCheck: verify returns the interpreter check\'s error where kernels run, records them elsewhere; finish decodes them', async () => {
  const s = Schedule.parse(parseProblem('add 5x40'), 'i:5 j:40');
  const wrong = Schedule.parse(parseProblem('mul 5x40'), 'i:5 j:40');
  for (const target of ['avx512', 'avx2']) {
    const check = kernelCheck(target, workerRunner(pool));
    assert.is(check.runs, hostRunsTarget(target));
    const kernel = backend(target).compile(s);
    assert.is(await check.verify(kernel, s, { guard: true }), undefined);
    // an add kernel checked as a mul differs from the interpreter (where it runs)
    const error = await check.verify(kernel, wrong, { guard: true });
    if (check.runs) assert.match(error ?? '', /output differs from the interpreter/);
    else assert.is(error, undefined);
    const { printed } = await printedBy(() => check.finish());
    assert.equal(printed, target === 'avx512' ? notRunLines(2) : []);
  }
});

test.run();
