import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyKernel } from '../../../targets/verify.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { lower } from '../../../loopnest/lower.ts';
import { fuzzTarget } from '../../../targets/fuzz.ts';
import { llvmAvailable, llvmIr, llvmTarget } from '../../../targets/llvm/index.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { backend } from '../../../targets/registry.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import type { KernelRunner } from '../../../targets/verify.ts';
import { RANDOM_OPS } from '../../../ir/random.ts';
import { RUN_TARGET, assertCompilesCleanly, checkWithoutRunning, hostRunsTarget } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });
const availability = llvmAvailable();
const FUZZ_SEED = 20261108;
/** llvm-avx512 fuzz kernels checked without running on a host without AVX-512 (each costs a build) */
const UNRUN_FUZZ_CASES = 40;

function requireLlvm(): void {
  if (!availability.ok) assert.unreachable(`the LLVM targets must be available on the test machine: ${availability.reason}`);
}

/** a fresh parent folder for the pipeline's temporary folders, so leftovers are visible */
function withTmpRoot<T>(body: (root: string) => T): T {
  const root = mkdtempSync(join(tmpdir(), 'looptune-llvm-test-'));
  try {
    return body(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function program(spec: string, schedule: string, isaName: 'avx2' | 'avx512' = 'avx512') {
  const s = Schedule.parse(parseProblem(spec), schedule);
  return { schedule: s, program: lower(s, llvmTarget(isaName).caps) };
}

for (const target of ['llvm-avx512', 'llvm-avx2'] as const) {
  test(`differential fuzz ${target}: 100 random problems x schedules, guarded buffers, zero mismatches`, async () => {
    requireLlvm();
    if (!hostRunsTarget(target)) {
      // the first cases of the same fuzz (same seed, same problems and schedules), compiled and decoded
      const kernels: Kernel[] = [];
      const collect: KernelRunner = async (kernel) => {
        kernels.push(kernel);
        return { ok: false, error: 'not run: collected for checkWithoutRunning' };
      };
      const r = await fuzzTarget({ target, cases: UNRUN_FUZZ_CASES, seed: FUZZ_SEED, runner: collect });
      assert.is(r.codegenErrors, 0, JSON.stringify(r.failures.slice(0, 3)));
      assert.is(kernels.length, UNRUN_FUZZ_CASES);
      assert.is(Object.keys(r.perOp).length, RANDOM_OPS.length);
      checkWithoutRunning(target, kernels);
      return;
    }
    const r = await fuzzTarget({ target, cases: 100, seed: FUZZ_SEED, runner: workerRunner(pool) });
    assert.is(r.cases, 100);
    assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
    assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
    assert.is(Object.keys(r.perOp).length, RANDOM_OPS.length);
  });
}

/**
 * Per ISA: a schedule whose kernel needs no constants, and one whose kernel has a constant pool in
 * .rodata (AVX-512: the permute indices LLVM gathers odd tails with, 17 = 16 + 1 lanes and 3 rows;
 * the AVX2 kernel of that schedule has none, so there the gelu epilogue's coefficients).
 */
const CONSTANTS_CASES: Record<'avx2' | 'avx512', { plain: [string, string]; pooled: [string, string] }> = {
  // plain: a 4x64 tile with k inside it
  avx512: { plain: ['matmul 24x64x40', 'm:6 k:40 m:4 n:64'], pooled: ['matmul 35x17x26', 'm:2r3 m:1r7 m:3 m:3 n:17 k:26'] },
  avx2: { plain: ['matmul 24x64x40', 'm:6 k:40 m:4 n:64'], pooled: ['matmul 8x16x8 +gelu', 'm:8 n:16 k:8'] },
};

test(`both ways to the bytes run correctly (llvm-${RUN_TARGET}): the text section alone, and text linked with its constant pool`, async () => {
  requireLlvm();
  const t = llvmTarget(RUN_TARGET);
  const { plain: [plainSpec, plainText], pooled: [pooledSpec, pooledText] } = CONSTANTS_CASES[RUN_TARGET];
  const plain = program(plainSpec, plainText, RUN_TARGET);
  const pooled = program(pooledSpec, pooledText, RUN_TARGET);
  const a = t.compileDetailed(plain.program);
  const b = t.compileDetailed(pooled.program);
  assert.is(a.result.linked, false);
  assert.is(a.result.code.length, a.result.codeSize);
  assert.is(b.result.linked, true);
  assert.ok(b.result.code.length > b.result.codeSize, 'constants follow the code');
  for (const [k, s] of [[a.kernel, plain.schedule], [b.kernel, pooled.schedule]] as const) {
    const v = await verifyKernel(k, s, workerRunner(pool), { guard: true });
    assert.ok(v.verified, `${s.text()}: ${v.error}`);
  }
  // the listing stops decoding where the constants start: no constant bytes decoded as code
  assert.match(t.disassemble!(b.kernel), /vfmadd/);
  assertCompilesCleanly(`llvm-${RUN_TARGET}`, [b.kernel]);
});

test('the kernel runs with the same vector width as the direct emitter (zmm for avx512, ymm for avx2)', () => {
  requireLlvm();
  const p = 'matmul 24x64x40';
  const s = 'm:6 k:40 m:4 n:64';
  const zmm = llvmTarget('avx512');
  const ymm = llvmTarget('avx2');
  assert.match(zmm.disassemble!(zmm.compile(program(p, s, 'avx512').program)), /vfmadd\d+ps\s+zmm/);
  const avx2 = ymm.disassemble!(ymm.compile(program(p, 'm:6 k:40 m:4 n:8 n:8', 'avx2').program));
  assert.match(avx2, /vfmadd\d+ps\s+ymm/);
  assert.not.match(avx2, /zmm/);
});

test('temporary folders are removed after a compile', () => {
  requireLlvm();
  withTmpRoot((tmpRoot) => {
    llvmTarget('avx2', { tmpRoot }).compile(program('matmul 8x16x8', 'm:8 n:16 k:8', 'avx2').program);
    assert.equal(readdirSync(tmpRoot), []);
  });
});

test("a failing llc surfaces LLVM's message, and the temporary folder is still removed", () => {
  requireLlvm();
  withTmpRoot((tmpRoot) => {
    const t = llvmTarget('avx512', { tmpRoot, llcArgs: ['-no-such-llc-option'] });
    assert.throws(() => t.compile(program('matmul 8x16x8', 'm:8 n:16 k:8').program), (e: Error) =>
      /^llc-14 failed: exit 1: llc-14: Unknown command line argument '-no-such-llc-option'/.test(e.message));
    assert.equal(readdirSync(tmpRoot), []);
  });
});

test("a failing opt surfaces LLVM's message", () => {
  requireLlvm();
  withTmpRoot((tmpRoot) => {
    const t = llvmTarget('avx512', { tmpRoot, optPipeline: 'no-such-pass' });
    assert.throws(() => t.compile(program('matmul 8x16x8', 'm:8 n:16 k:8').program), (e: Error) =>
      /^opt-14 failed: exit 1: opt-14: unknown pass name 'no-such-pass'$/.test(e.message));
    assert.equal(readdirSync(tmpRoot), []);
  });
});

test('a missing tool makes the target unavailable with one line naming the package', () => {
  const tools = { lld: '/nonexistent/ld.lld-14' };
  const a = llvmAvailable({ tools });
  assert.is(a.ok, false);
  if (!a.ok) {
    assert.not.match(a.reason, /\n/);
    // when llvm-bindings itself is missing, that is the first thing reported
    assert.match(a.reason, availability.ok ? /\/nonexistent\/ld\.lld-14 not found \(install the Debian package lld-14/ : /llvm-14-dev/);
  }
  assert.throws(() => llvmTarget('avx512', { tools }).compile(program('matmul 8x16x8', 'm:8 n:16 k:8').program),
    /^target llvm-avx512 is unavailable: /);
});

test('llvmIr: scalar IR for the x86-64 triple, one kernel with the ABI signature', () => {
  requireLlvm();
  const ir = llvmIr(program('matmul 8x16x8', 'm:8 n:16 k:8').program);
  assert.match(ir, /target triple = "x86_64-pc-linux-gnu"/);
  assert.match(ir, /target datalayout = "e-m:e/);
  assert.match(ir, /define void @kernel\(float\* %0, float\* %1, float\* %2, i64 %3, i64 %4, i64 %5\)/);
  assert.match(ir, /call float @llvm\.fmuladd\.f32/);
  assert.not.match(ir, /<\d+ x float>/);
});

test('registered as llvm-avx2 and llvm-avx512', () => {
  assert.is(backend('llvm-avx512').name, 'llvm-avx512');
  assert.is(backend('llvm-avx2').caps.vectorLanes, 8);
});

test.after(async () => {
  await pool.close();
});

test.run();
