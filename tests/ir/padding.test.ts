import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFromStorage, copyIntoStorage, fillBorder, fillInterior } from '../../ir/padding.ts';
import type { Tensor } from '../../ir/problem.ts';

/** Whether storage index i (row-major over t.shape) lies in the data, by brute force over coordinates. */
function insideData(t: Tensor, i: number): boolean {
  let rest = i;
  for (let d = t.shape.length - 1; d >= 0; d--) {
    const x = rest % t.shape[d]!;
    rest = Math.floor(rest / t.shape[d]!);
    const before = t.pad?.before[d] ?? 0, after = t.pad?.after[d] ?? 0;
    if (x < before || x >= t.shape[d]! - after) return false;
  }
  return true;
}

/** A blocked [N, C/B, H, W, B] activation padded on H and W (unevenly), a plain NCHW one, and one padded innermost. */
const TENSORS: Tensor[] = [
  { name: 'blocked', shape: [1, 2, 5 + 1 + 2, 4 + 2 + 1, 16], pad: { before: [0, 0, 1, 2, 0], after: [0, 0, 2, 1, 0], value: -Infinity } },
  { name: 'nchw', shape: [2, 3, 6, 7], pad: { before: [0, 0, 1, 1], after: [0, 0, 1, 1], value: 0 } },
  { name: 'channels', shape: [1, 4 + 2, 3, 3], pad: { before: [0, 2, 0, 0], after: [0, 0, 0, 0], value: 0 } },
];

for (const t of TENSORS) {
  const storageLength = t.shape.reduce((a, b) => a * b, 1);
  const dataLength = t.shape.reduce((a, n, d) => a * (n - (t.pad!.before[d]! + t.pad!.after[d]!)), 1);

  test(`${t.name}: data copied into the interior comes back out, the border untouched`, () => {
    const data = Float32Array.from({ length: dataLength }, (_, i) => i + 1);
    const storage = new Float32Array(storageLength).fill(-7);
    copyIntoStorage(t, data, storage);
    const interior = [...storage].filter((_, i) => insideData(t, i));
    assert.equal(interior, [...data], 'the interior holds the data in order');
    assert.ok([...storage].every((v, i) => insideData(t, i) || v === -7), 'the border is untouched');
    const back = new Float32Array(dataLength);
    copyFromStorage(t, storage, back);
    assert.equal([...back], [...data]);
  });

  test(`${t.name}: fillBorder writes exactly the border, fillInterior exactly the interior`, () => {
    const storage = Float32Array.from({ length: storageLength }, (_, i) => i);
    fillBorder(t, storage, 42);
    storage.forEach((v, i) => assert.is(v, insideData(t, i) ? i : 42, `element ${i}`));
    fillInterior(t, storage, 5);
    storage.forEach((v, i) => assert.is(v, insideData(t, i) ? 5 : 42, `element ${i}`));
  });
}

test('fillBorder leaves an unpadded tensor alone', () => {
  const storage = new Float32Array(12).fill(3);
  fillBorder({ name: 'x', shape: [3, 4] }, storage, 9);
  assert.ok(storage.every((v) => v === 3));
});

test.run();
