/**
 * The AArch64 harness under qemu-aarch64, driven by kernels built with our own encoder: results,
 * reps, crashes, hangs, ABI violations, guard pages, batches, and the job file given by path.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { A64Assembler, d, post, pre, s, sp, v, w, x } from '../../../targets/arm64/encoder.ts';
import { encodeJobFile, harnessHash, harnessPath, parseResultRecord, RESULT } from '../../../targets/arm64/harness.ts';
import { arm64Available, runArm64Batch, runArm64Kernel, type Arm64RunResult } from '../../../targets/arm64/qemu-runner.ts';
import { NATIVE_ARM64 } from '../../../targets/arm64/tools.ts';

const avail = arm64Available();
const requireArm64 = () => {
  if (!avail.ok) assert.unreachable(avail.reason); // names the Debian packages to install
};

/**
 * out[i] = a[i] + b[i] (op 'add') or out[i] += a[i] * b[i] (op 'fma') over n floats (n % 4 == 0),
 * the whole loop repeated reps times: kernel(out, a, b, reps).
 */
function vectorKernel(n: number, op: 'add' | 'fma'): Uint8Array {
  const a = new A64Assembler();
  const done = a.newLabel();
  a.cbz(x(3), done);
  const rep = a.here();
  a.mov(x(9), x(0));
  a.mov(x(10), x(1));
  a.mov(x(11), x(2));
  a.mov(x(12), n / 4);
  const loop = a.here();
  a.ld1(v(0).s4, post(x(10), 16));
  a.ld1(v(1).s4, post(x(11), 16));
  if (op === 'add') {
    a.fadd(v(2).s4, v(0).s4, v(1).s4);
  } else {
    a.ldrQ(v(2), x(9));
    a.fmla(v(2).s4, v(0).s4, v(1).s4);
  }
  a.st1(v(2).s4, post(x(9), 16));
  a.subs(x(12), x(12), 1);
  a.bne(loop);
  a.subs(x(3), x(3), 1);
  a.bne(rep);
  a.bind(done);
  a.ret();
  return a.finish();
}

const iota = (n: number, k = 1) => Float32Array.from({ length: n }, (_, i) => k * i);
const expectOk = (r: Arm64RunResult): Float32Array => {
  if (!r.ok) assert.unreachable(`expected success, got ${r.kind}: ${r.error}`);
  return (r as { output: Float32Array }).output;
};
const expectFail = (r: Arm64RunResult, kind: string, pattern: RegExp) => {
  if (r.ok) assert.unreachable(`expected a ${kind} error, got success`);
  const f = r as { error: string; kind: string };
  assert.is(f.kind, kind, f.error);
  assert.match(f.error, pattern);
};

/** A kernel that stores s0 at x0 + offset bytes: a single-lane store never touches more. */
function storeAt(offset: number): Uint8Array {
  const a = new A64Assembler();
  a.fmov(s(0), 1);
  a.add(x(9), x(0), offset);
  a.st1(v(0).s(0), x(9));
  a.ret();
  return a.finish();
}

test('harness binary is cached by source hash', () => {
  requireArm64();
  const p = harnessPath();
  assert.ok(p.includes(`looptune-arm64-harness-${harnessHash()}`));
  assert.is(harnessPath(), p);
});

test('out[i] = a[i] + b[i] over 16 floats (NEON), with reps', async () => {
  requireArm64();
  const out = new Float32Array(16).fill(-1);
  const r = await runArm64Kernel(vectorKernel(16, 'add'), [out, iota(16), iota(16, 100)], { reps: 3 });
  assert.equal(Array.from(expectOk(r)), Array.from(iota(16, 101)));
  assert.ok((r as { seconds: number }).seconds > 0);
  assert.equal(Array.from(out), new Array(16).fill(-1), 'the caller\'s arrays are not modified');
});

test('accumulating kernel sees reps (out += a*b, 5 times), guard mode', async () => {
  requireArm64();
  const out = iota(32, 0.5);
  const r = await runArm64Kernel(vectorKernel(32, 'fma'), [out, iota(32), iota(32, 2)], { reps: 5, guard: true });
  assert.equal(Array.from(expectOk(r)), Array.from(out, (o, i) => o + 5 * i * 2 * i));
});

test('a crashing kernel gives an error result, and the next run works', async () => {
  requireArm64();
  const segv = new A64Assembler();
  segv.movz(x(9), 0x10);
  segv.ldr(x(1), x(9)); // load from address 0x10
  segv.ret();
  expectFail(await runArm64Kernel(segv.finish(), [new Float32Array(4)]), 'crash', /SIGSEGV at code\+0x4, fault address 0x10/);
  const ill = new A64Assembler();
  ill.nop();
  ill.udf(7);
  expectFail(await runArm64Kernel(ill.finish(), [new Float32Array(4)]), 'crash', /SIGILL at code\+0x4/);
  const out = expectOk(await runArm64Kernel(vectorKernel(16, 'add'), [new Float32Array(16), iota(16), iota(16)]));
  assert.is(out[15], 30);
});

test('a hanging kernel times out, and the next run works', async () => {
  requireArm64();
  const hang = new A64Assembler();
  const self = hang.here();
  hang.b(self);
  const t0 = performance.now();
  expectFail(await runArm64Kernel(hang.finish(), [new Float32Array(4)], { timeoutMs: 300 }), 'timeout', /timed out after 300 ms/);
  assert.ok(performance.now() - t0 < 3000);
  expectOk(await runArm64Kernel(vectorKernel(16, 'add'), [new Float32Array(16), iota(16), iota(16)]));
});

test('guard mode: the last element is writable, one past the end faults', async () => {
  requireArm64();
  // 13 floats: not a multiple of 16, so the tensor ends mid-line, right at the guard page
  const ok = await runArm64Kernel(storeAt(12 * 4), [new Float32Array(13)], { guard: true });
  assert.is(expectOk(ok)[12], 1);
  const past = await runArm64Kernel(storeAt(13 * 4), [new Float32Array(13)], { guard: true });
  expectFail(past, 'crash', /SIGSEGV at code\+0x8, .*tensor 0 \+ 52 bytes: 0 bytes past its end/);
  // without guard the same overrun lands in the mapping's slack (not detected)
  expectOk(await runArm64Kernel(storeAt(13 * 4), [new Float32Array(13)], { guard: false }));
  // a guarded input tensor: reading one past the end of tensor 1 faults too
  const rd = new A64Assembler();
  rd.ldr(s(0), x(1), 64);
  rd.ret();
  expectFail(await runArm64Kernel(rd.finish(), [new Float32Array(4), new Float32Array(16)], { guard: true }), 'crash', /tensor 1 \+ 64 bytes: 0 bytes past its end/);
});

test('callee-saved registers and sp are checked (AAPCS64)', async () => {
  requireArm64();
  const bad = new A64Assembler();
  bad.mov(x(19), 1);
  bad.fmov(d(9), 1);
  bad.ret();
  expectFail(await runArm64Kernel(bad.finish(), [new Float32Array(4)]), 'abi', /x19, d9 not preserved/);
  // saving and restoring them (and using the stack) is fine
  const good = new A64Assembler();
  good.stp(d(8), d(9), pre(sp, -32));
  good.str(x(19), sp, 16);
  good.mov(x(19), 5);
  good.fmov(d(9), 2);
  good.ldr(x(19), sp, 16);
  good.ldp(d(8), d(9), post(sp, 32));
  good.ret();
  expectOk(await runArm64Kernel(good.finish(), [new Float32Array(4)]));
});

test('batch: results in order, a crash in the middle does not lose the others', async () => {
  requireArm64();
  const crash = new A64Assembler();
  crash.ldr(w(0), x(1), 0); // x1 = reps = 1: address 1 faults
  crash.ret();
  const add = vectorKernel(16, 'add');
  const jobs = [
    { code: add, tensors: [new Float32Array(16), iota(16), iota(16)] },
    { code: crash.finish(), tensors: [new Float32Array(4)] },
    { code: add, tensors: [new Float32Array(16), iota(16, 2), iota(16)], reps: 2 },
    { code: add, tensors: Array.from({ length: 8 }, () => new Float32Array(4)) }, // 8 tensors: invalid
    { code: add, tensors: [new Float32Array(16), iota(16, 3), iota(16)], guard: true },
  ];
  const rs = await runArm64Batch(jobs);
  assert.is(rs.length, 5);
  assert.is(expectOk(rs[0]!)[1], 2);
  expectFail(rs[1]!, 'crash', /SIGSEGV/);
  assert.is(expectOk(rs[2]!)[1], 3);
  expectFail(rs[3]!, 'invalid', /8 tensors/);
  assert.is(expectOk(rs[4]!)[1], 4);
});

test('the harness reads a job file given as argv[1]', () => {
  requireArm64();
  const dir = mkdtempSync(join(tmpdir(), 'looptune-arm64-test-'));
  try {
    const file = join(dir, 'job.bin');
    writeFileSync(file, encodeJobFile([{ code: vectorKernel(16, 'add'), tensors: [new Float32Array(16), iota(16), iota(16, 2)], reps: 1, guard: false }]));
    const [cmd, args] = NATIVE_ARM64 ? [harnessPath(), [file]] : ['qemu-aarch64', [harnessPath(), file]];
    const r = spawnSync(cmd, args);
    assert.is(r.status, 0, r.stderr.toString());
    const rec = parseResultRecord(new Uint8Array(r.stdout), 0);
    assert.ok(rec);
    assert.is(rec!.record.status, RESULT.status.ok);
    assert.is(rec!.next, r.stdout.length);
    assert.equal(Array.from(rec!.record.output), Array.from(iota(16, 3)));
    const bad = spawnSync(cmd, [...args.slice(0, -1), join(dir, 'missing')]);
    assert.is(bad.status, 10);
    assert.match(bad.stderr.toString(), /cannot open the job file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
