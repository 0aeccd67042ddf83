import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../../ir/errors.ts';
import { checkAgainstOracle, randomArray } from '../../../ir/interpret.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { backend } from '../../../targets/registry.ts';
import { NativeFloat32Buffer } from '../../../targets/runtime/buffers.ts';
import { ExecutableCode, assertRunnableKernel, type NativeKernel } from '../../../targets/runtime/executable-memory.ts';
import { hostIsaError, type HostIsa } from '../../../targets/runtime/host.ts';
import { InProcessKernel } from '../../../targets/runtime/in-process-kernel.ts';
import { runInProcess } from '../../../targets/runtime/in-process.ts';
import { multiplyAccumulate, storeOne } from './fixtures.ts';

test('a hand-assembled kernel stores 1.0f through its pointer', () => {
  const out = NativeFloat32Buffer.alloc(4);
  out.array.fill(-5);
  runInProcess(storeOne, [out]);
  assert.equal(Array.from(out.array), [1, -5, -5, -5]);
  out.free();
});

test('pointers arrive in ABI order and reps repeats the nest', () => {
  const [c, a, b] = [1, 1, 1].map(() => NativeFloat32Buffer.alloc(1));
  c!.array[0] = 1;
  a!.array[0] = 2;
  b!.array[0] = 3;
  runInProcess(multiplyAccumulate, [c!, a!, b!], 4);
  assert.is(c!.array[0], 1 + 4 * 2 * 3);
  for (const x of [a, b, c]) x!.free();
});

test('the decoded function is reused and accepts Float32Array arguments', () => {
  const code = new ExecutableCode(storeOne.code, 1);
  const fn = code.fn;
  assert.is(code.fn, fn);
  const js = new Float32Array(2);
  fn(js, 1, 0, 1);
  assert.equal(Array.from(js), [1, 0]);
  code.free();
  code.free(); // idempotent
  assert.ok(code.freed);
  assert.throws(() => code.fn, /after free/);
});

test('pointer count is checked', () => {
  assert.throws(() => new ExecutableCode(storeOne.code, 0), /1 to 5/);
  assert.throws(() => new ExecutableCode(storeOne.code, 6), /1 to 5/);
  assert.throws(() => new ExecutableCode(new Uint8Array(0), 1), /empty/);
});

test('W^X: code is readable but writing it after mprotect faults (in a child process)', () => {
  const module = new URL('../../../targets/runtime/executable-memory.ts', import.meta.url).href;
  const views = new URL('../../../targets/runtime/libc.ts', import.meta.url).href;
  const script = `
    const { ExecutableCode } = await import(${JSON.stringify(module)});
    const { nativeView } = await import(${JSON.stringify(views)});
    const code = new ExecutableCode(new Uint8Array([0xc7, 0x07, 0, 0, 0x80, 0x3f, 0xc3]), 1);
    const bytes = new Uint8Array(nativeView(code.address, 7));
    process.stdout.write('read ' + bytes[0] + ';');
    bytes[0] = 0xc3;
    process.stdout.write('wrote;');
  `;
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const child = spawnSync(process.execPath, ['--import', tsx, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.is(child.stdout, 'read 199;', child.stderr);
  assert.is(child.signal, 'SIGSEGV');
});

const ZEN3: HostIsa = { arch: 'x64', avx2: true, fma: true, avx512: false, model: 'AMD EPYC', signature: 'AMD EPYC (zen 3)' };
const ZEN5: HostIsa = { ...ZEN3, avx512: true, signature: 'AMD EPYC (zen 5)' };
const SSE_ONLY: HostIsa = { ...ZEN3, avx2: false, fma: false, model: 'Old Xeon', signature: 'Old Xeon' };

/** fn throws a LoopTuneError whose message is exactly `line` */
function refuses(fn: () => unknown, line: string): void {
  assert.throws(fn, (e: unknown) => e instanceof LoopTuneError && e.message === line && !line.includes('\n'));
}

test('assertRunnableKernel refuses, in one line, a kernel of an ISA the CPU lacks (by its target, both printers)', () => {
  const as = (target: string | undefined): NativeKernel => ({ ...storeOne, ...(target === undefined ? {} : { target }) });
  for (const target of ['avx512', 'llvm-avx512']) {
    refuses(() => assertRunnableKernel(as(target), ZEN3), hostIsaError('avx512', ZEN3)!);
    assertRunnableKernel(as(target), ZEN5);
  }
  for (const target of ['avx2', 'llvm-avx2']) {
    assertRunnableKernel(as(target), ZEN3);
    refuses(() => assertRunnableKernel(as(target), SSE_ONLY), hostIsaError('avx2', SSE_ONLY)!);
  }
  // hand-assembled code names no target: plain x86-64, runnable anywhere
  assertRunnableKernel(as(undefined), SSE_ONLY);
  assert.match(hostIsaError('avx512', ZEN3)!, /^this CPU \(AMD EPYC\) cannot run avx512 code: \/proc\/cpuinfo lacks avx512f \(its target is avx2\)$/);
});

test('an avx512 kernel: runInProcess and InProcessKernel refuse it where the CPU lacks AVX-512 (no SIGILL), run it where it has it', () => {
  const schedule = Schedule.parse(parseProblem('add 5x40'), 'i:5 j:40');
  const kernel = backend('avx512').compile(schedule);
  const inputs = [randomArray(200, 1), randomArray(200, 2)];
  const buffers = [new Float32Array(200), ...inputs].map((a) => {
    const b = NativeFloat32Buffer.alloc(a.length);
    b.array.set(a);
    return b;
  });
  try {
    const why = hostIsaError('avx512');
    if (why) {
      refuses(() => runInProcess(kernel, buffers), why);
      refuses(() => new InProcessKernel(kernel), why);
      return;
    }
    runInProcess(kernel, buffers);
    const c = checkAgainstOracle(schedule, inputs, new Float32Array(200), buffers[0]!.array);
    assert.ok(c.ok, `error ${c.maxError}`);
  } finally {
    for (const b of buffers) b.free();
  }
});

test.run();
