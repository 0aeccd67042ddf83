/**
 * Moving data in and out of a padded tensor's storage (ir/problem.ts Padding): what a caller with
 * plain, unpadded arrays needs around a kernel that reads padded inputs or writes a padded
 * output. Rows of the innermost dimension move with one `set` each.
 */
import { dataShape, elementCount, type Tensor } from './problem.ts';

type FloatArray = Float32Array | Float64Array;

/**
 * Calls `row(dataStart, storageStart, length)` for every innermost row of the tensor's data, in
 * order: the row's first element in the unpadded array and in the padded storage.
 */
function forEachRow(t: Tensor, row: (data: number, storage: number, length: number) => void): void {
  const shape = dataShape(t);
  const rank = shape.length;
  const before = t.pad?.before ?? new Array<number>(rank).fill(0);
  const storageStrides = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) storageStrides[d] = storageStrides[d + 1]! * t.shape[d + 1]!;
  const width = shape[rank - 1]!;
  const rows = elementCount({ name: t.name, shape }) / Math.max(1, width);
  const at = new Array<number>(Math.max(0, rank - 1)).fill(0);
  for (let r = 0; r < rows; r++) {
    let storage = before[rank - 1]!;
    for (let d = 0; d < rank - 1; d++) storage += (at[d]! + before[d]!) * storageStrides[d]!;
    row(r * width, storage, width);
    for (let d = rank - 2; d >= 0; d--) {
      if (++at[d]! < shape[d]!) break;
      at[d] = 0;
    }
  }
}

/** Whether the tensor's storage is larger than its data (it has a border). */
export function isPadded(t: Tensor): boolean {
  return elementCount(t) !== elementCount({ name: t.name, shape: dataShape(t) });
}

/** A new storage array for `t`, its border filled with the padding value and the data copied in. */
export function padded(t: Tensor, data: FloatArray): Float32Array {
  const storage = new Float32Array(elementCount(t)).fill(t.pad?.value ?? 0);
  copyIntoStorage(t, data, storage);
  return storage;
}

/** Rows shorter than this are copied element by element: a subarray view per row costs more than the copy. */
const SET_ROW = 256;

function copyRow(from: FloatArray, f: number, to: FloatArray, t: number, n: number): void {
  if (n >= SET_ROW) {
    to.set(from.subarray(f, f + n), t);
    return;
  }
  for (let i = 0; i < n; i++) to[t + i] = from[f + i]!;
}

/** Copies unpadded `data` into the interior of `storage` (the border is left as it is). */
export function copyIntoStorage(t: Tensor, data: FloatArray, storage: FloatArray): void {
  forEachRow(t, (d, s, n) => copyRow(data, d, storage, s, n));
}

/** Copies the interior of `storage` out into unpadded `data`. */
export function copyFromStorage(t: Tensor, storage: FloatArray, data: FloatArray): void {
  forEachRow(t, (d, s, n) => copyRow(storage, s, data, d, n));
}

/** Fills the interior of `storage` with `value` (the border is left as it is). */
export function fillInterior(t: Tensor, storage: FloatArray, value: number): void {
  forEachRow(t, (_, s, n) => storage.fill(value, s, s + n));
}
