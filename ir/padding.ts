/**
 * Moving data in and out of a padded tensor's storage (ir/problem.ts Padding): what a caller with
 * plain, unpadded arrays needs around a kernel that reads padded inputs or writes a padded
 * output. Rows of the innermost dimension move with one `set` each.
 */
import { dataShape, elementCount, type Tensor } from './problem.ts';

type FloatArray = Float32Array | Float64Array;

/**
 * Calls `row(dataStart, storageStart, length)` for every contiguous row of the tensor's data, in
 * order: the row's first element in the unpadded array and in the padded storage. A row spans the
 * innermost padded dimension and every unpadded one inside it (a blocked [N, C/B, H, W, B]
 * tensor padded on H and W moves W*B elements per row, not B).
 */
function forEachRow(t: Tensor, row: (data: number, storage: number, length: number) => void): void {
  const { shape, before, storageStrides } = rowGeometry(t);
  const rank = shape.length;
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

/** The tensor seen with its unpadded innermost dimensions folded into the innermost padded one. */
function rowGeometry(t: Tensor): { shape: number[]; storageShape: number[]; before: number[]; storageStrides: number[] } {
  const data = dataShape(t);
  const full = data.length;
  const pad = (d: number) => (t.pad?.before[d] ?? 0) + (t.pad?.after[d] ?? 0);
  let last = full - 1;
  while (last > 0 && pad(last) === 0) last--;
  const inner = data.slice(last + 1).reduce((a, b) => a * b, 1);
  const rank = last + 1;
  const shape = data.slice(0, rank);
  const storageShape = t.shape.slice(0, rank);
  shape[rank - 1] = shape[rank - 1]! * inner;
  storageShape[rank - 1] = storageShape[rank - 1]! * inner;
  const before = (t.pad?.before ?? new Array<number>(full).fill(0)).slice(0, rank);
  before[rank - 1] = before[rank - 1]! * inner;
  const storageStrides = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) storageStrides[d] = storageStrides[d + 1]! * storageShape[d + 1]!;
  return { shape, storageShape, before, storageStrides };
}

/**
 * Fills the border of `storage` (everything outside the data) with `value`, the interior left as
 * it is: with a fill of the whole storage first, what clears an interior fast when the border
 * holds another value (a max pool's -Infinity around a conv's zeroed output).
 */
export function fillBorder(t: Tensor, storage: FloatArray, value: number): void {
  if (!isPadded(t)) return;
  const { shape, storageShape, before, storageStrides } = rowGeometry(t);
  const rank = shape.length;
  const width = storageShape[rank - 1]!, lead = before[rank - 1]!, data = shape[rank - 1]!;
  const rows = elementCount({ name: t.name, shape: storageShape }) / Math.max(1, width);
  const at = new Array<number>(Math.max(0, rank - 1)).fill(0);
  const fill = (from: number, to: number): void => {
    for (let i = from; i < to; i++) storage[i] = value;
  };
  for (let r = 0; r < rows; r++) {
    let base = 0, inside = true;
    for (let d = 0; d < rank - 1; d++) {
      base += at[d]! * storageStrides[d]!;
      inside &&= at[d]! >= before[d]! && at[d]! < before[d]! + shape[d]!;
    }
    if (!inside) storage.fill(value, base, base + width);
    else {
      fill(base, base + lead);
      fill(base + lead + data, base + width);
    }
    for (let d = rank - 2; d >= 0; d--) {
      if (++at[d]! < storageShape[d]!) break;
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
const SET_ROW = 64;

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
