/**
 * Float32 tensors in native memory, viewed as Float32Array (V8's own backing stores are only
 * 16-byte aligned; the kernel ABI promises 64).
 *
 * Guard mode (for fuzzing): the data ends exactly at a page boundary and is followed by a
 * PROT_NONE page, so touching even one element past the end faults; a PROT_NONE page also sits
 * before the first data page. Because the END is pinned, the start is 64-byte aligned only when
 * the byte size is a multiple of 64 (otherwise as aligned as the size allows, at least 4 bytes).
 */
import {
  PROT_NONE, PROT_READ, PROT_WRITE, alignedAlloc, libc, mapAnonymous, nativeView, pageSize, protect, roundUpToPage, unmap,
} from './libc.ts';

export const BUFFER_ALIGNMENT = 64;

export interface BufferOptions {
  /** end the data at a PROT_NONE page (see above). */
  guard?: boolean;
}

export class NativeFloat32Buffer {
  /** address of element 0. */
  readonly address: bigint;
  readonly length: number;
  readonly guarded: boolean;
  #array: Float32Array | undefined;
  /** how to release: heap block, or the whole guarded mapping. */
  readonly #release: () => void;

  private constructor(address: bigint, length: number, guarded: boolean, array: Float32Array, release: () => void) {
    this.address = address;
    this.length = length;
    this.guarded = guarded;
    this.#array = array;
    this.#release = release;
  }

  static alloc(length: number, options: BufferOptions = {}): NativeFloat32Buffer {
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`buffer length must be a positive integer, got ${length}`);
    const bytes = length * 4;
    if (options.guard) {
      const page = pageSize();
      const data = roundUpToPage(bytes);
      const total = data + 2 * page;
      // Map everything inaccessible, then open the data pages only.
      const base = mapAnonymous(total, PROT_NONE);
      try {
        protect(base + BigInt(page), data, PROT_READ | PROT_WRITE);
      } catch (e) {
        unmap(base, total);
        throw e;
      }
      const address = base + BigInt(page + data - bytes);
      const array = viewFloat32(address, length);
      return new NativeFloat32Buffer(address, length, true, array, () => unmap(base, total));
    }
    // Round the allocation up so a full last vector never leaves the block.
    const address = alignedAlloc(Math.ceil(bytes / BUFFER_ALIGNMENT) * BUFFER_ALIGNMENT, BUFFER_ALIGNMENT);
    const array = viewFloat32(address, length);
    array.fill(0);
    return new NativeFloat32Buffer(address, length, false, array, () => libc().free(address));
  }

  /** The elements, zero-copy; throws after free(). */
  get array(): Float32Array {
    if (!this.#array) throw new Error('NativeFloat32Buffer used after free()');
    return this.#array;
  }

  get freed(): boolean {
    return this.#array === undefined;
  }

  /** Release the memory. Views obtained earlier must not be touched afterwards. */
  free(): void {
    if (!this.#array) return;
    this.#array = undefined;
    this.#release();
  }
}

function viewFloat32(address: bigint, length: number): Float32Array {
  return new Float32Array(nativeView(address, length * 4));
}
