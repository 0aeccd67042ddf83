/**
 * 64-byte aligned native memory for what a model's kernels read and write in place: the arena and
 * the weights. V8's ArrayBuffers are only 16-byte aligned, and a generated AVX-512 kernel then
 * splits a cache line on every vector load: on Intel cores that cost a third more time on
 * ResNet-18's convolutions in a model than the same kernels took when tuned (tuning times them on
 * aligned buffers, targets/runtime/buffers.ts). One block holds every weight (each at an aligned
 * offset) so that the weights' JS copies can go; both blocks are freed by dispose().
 */
import { BUFFER_ALIGNMENT, NativeFloat32Buffer } from '../targets/runtime/buffers.ts';
import type { ModelGraph, ModelWeight } from '../ir/model/graph.ts';

const LANES = BUFFER_ALIGNMENT / 4;

function roundUp(n: number): number {
  return Math.ceil(n / LANES) * LANES;
}

/** Native memory views at aligned offsets of one block; `free` releases the block (views die with it). */
export class AlignedBlock {
  readonly #buffer: NativeFloat32Buffer | undefined;

  /** `elements` floats (0: nothing is allocated, every view is empty). */
  constructor(elements: number) {
    this.#buffer = elements > 0 ? NativeFloat32Buffer.alloc(roundUp(elements)) : undefined;
  }

  /** the `elements` floats from `offset` (a multiple of 16 floats keeps the view 64-byte aligned) */
  view(offset: number, elements: number): Float32Array {
    if (!this.#buffer) return new Float32Array(0);
    return this.#buffer.array.subarray(offset, offset + elements);
  }

  free(): void {
    this.#buffer?.free();
  }
}

/**
 * `g` with every weight's data moved into one aligned block (the JS arrays are dropped with the
 * old map), and the block to free when the model is disposed.
 */
export function alignWeights(g: ModelGraph): { graph: ModelGraph; block: AlignedBlock } {
  let total = 0;
  for (const w of g.weights.values()) total += roundUp(w.data.length);
  const block = new AlignedBlock(total);
  const weights = new Map<string, ModelWeight>();
  let offset = 0;
  for (const [name, w] of g.weights) {
    const data = block.view(offset, w.data.length);
    data.set(w.data);
    weights.set(name, { ...w, data });
    offset += roundUp(w.data.length);
  }
  return { graph: { ...g, weights }, block };
}
