/**
 * The fuzz configuration that exercises packing on small problems: the x86 target with its packing
 * rule forced on (every row stride counts as conflicting, boxes up to 4,096 elements, reuse >= 2),
 * matmuls and bmms whose n is a whole number of vectors, and register-tiled schedules (Ansor-style
 * sketches, else random ones), so that most kernels vectorize and pack. Real sizes only pack
 * 4 KB-strided rows; these make the copy loops, tails, offsets and pointer restores frequent.
 */
import { sampleSketch, sketchTargetFor } from '../agent/search/sketch.ts';
import { randomSchedule } from '../ir/random.ts';
import { parseProblem } from '../ir/spec.ts';
import type { FuzzOptions } from '../targets/fuzz.ts';
import type { X86Isa } from '../targets/x86/emit.ts';
import { x86Target } from '../targets/x86/target.ts';

export function forcedPackingFuzz(isa: X86Isa): Pick<FuzzOptions, 'target' | 'ops' | 'problemFor' | 'scheduleFor'> {
  const t = x86Target(isa);
  const lanes = t.caps.vectorLanes;
  return {
    target: { ...t, caps: { ...t.caps, packing: { strideMultiple: 1, maxElements: 4096, minReuse: 2 } } },
    ops: ['matmul', 'bmm'],
    problemFor: (rng, op) => parseProblem(op === 'matmul'
      ? `matmul ${rng.int(1, 70)}x${lanes * rng.int(1, 6)}x${rng.int(1, 70)}`
      : `bmm b${rng.int(1, 3)} m${rng.int(1, 30)} n${lanes * rng.int(1, 3)} k${rng.int(1, 40)}`),
    scheduleFor: (p, rng) => (rng.next() < 0.8 ? sampleSketch(p, rng, sketchTargetFor(isa)) : undefined) ?? randomSchedule(p, rng, rng.int(0, 16)),
  };
}
