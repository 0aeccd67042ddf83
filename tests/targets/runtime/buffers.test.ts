import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BUFFER_ALIGNMENT, NativeFloat32Buffer } from '../../../targets/runtime/buffers.ts';
import { pageSize } from '../../../targets/runtime/libc.ts';

test('buffers are 64-byte aligned, zeroed, and viewed without copies', () => {
  for (const n of [1, 3, 16, 1000, 65_537]) {
    const b = NativeFloat32Buffer.alloc(n);
    assert.is(b.address % BigInt(BUFFER_ALIGNMENT), 0n, `alignment of ${n}`);
    assert.is(b.array.length, n);
    assert.ok(b.array.every((x) => x === 0));
    b.array[n - 1] = 42;
    assert.is(b.array[n - 1], 42);
    b.free();
  }
});

test('a guarded buffer ends exactly at a page boundary', () => {
  const page = BigInt(pageSize());
  for (const n of [1, 10, 1024, 5000]) {
    const b = NativeFloat32Buffer.alloc(n, { guard: true });
    assert.ok(b.guarded);
    assert.is((b.address + BigInt(4 * n)) % page, 0n, `end of ${n}`);
    b.array.fill(7); // every element is writable
    assert.is(b.array[0], 7);
    b.free();
  }
  // A whole number of cache lines keeps the ABI's alignment even when guarded.
  const aligned = NativeFloat32Buffer.alloc(64, { guard: true });
  assert.is(aligned.address % 64n, 0n);
  aligned.free();
});

test('use after free is refused, free is idempotent, bad sizes throw', () => {
  const b = NativeFloat32Buffer.alloc(8);
  b.free();
  b.free();
  assert.ok(b.freed);
  assert.throws(() => b.array, /after free/);
  assert.throws(() => NativeFloat32Buffer.alloc(0), /positive integer/);
  assert.throws(() => NativeFloat32Buffer.alloc(2.5), /positive integer/);
});

test.run();
