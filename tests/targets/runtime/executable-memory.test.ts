import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NativeFloat32Buffer } from '../../../targets/runtime/buffers.ts';
import { ExecutableCode } from '../../../targets/runtime/executable-memory.ts';
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

test.run();
