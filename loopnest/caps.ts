/**
 * What the lowering asks of a target: register counts, vector width, tail handling, FMA latency,
 * and the packing rule. Declared here, in loopnest, so the lowering depends on no target; each
 * target (targets/x86, arm64, llvm, cuda) implements it.
 */
import type { EpilogueKind } from '../ir/problem.ts';

export interface TargetCaps {
  /** fp32 lanes of one vector register (1 for a scalar-only target). */
  vectorLanes: number;
  /** vector registers of the ISA the tile may use (accumulators, operands, and the ones below). */
  vectorRegisters: number;
  /** registers available when the nest cannot be vectorized and runs one element per register. */
  scalarRegisters: number;
  /** relu keeps a zero vector in a register of its own */
  zeroRegisterForRelu: boolean;
  /** partial vectors need a lane-mask vector register (AVX2's vmaskmovps; AVX-512 uses opmasks) */
  maskRegisterForTails: boolean;
  /** whether partial vectors can be loaded/stored without touching memory past the tail. */
  hasMaskedTails: boolean;
  /** FMA latency in cycles and FMA pipes: at least latency x ports accumulators hide latency. */
  fmaLatency: number;
  fmaPorts: number;
  /** most vector operations the lowering may fully unroll into one micro-kernel body. */
  unrollBudget: number;
  /** element strides along the vector variable at which an input can still be read as a vector
   *  (lane i at offset + stride*i): 1 is a plain load; 2 is every other element, as a stride-2
   *  convolution reads its input. Default [1]; a stride not listed makes the nest scalar. */
  vectorStrides?: readonly number[];
  /** strided vector reads keep a permutation index vector in a register of its own (AVX-512's vpermt2ps) */
  indexRegisterForStrides?: boolean;
  /** whether the printer emits parallel bands (kernels that run on several threads); without it, a
   *  schedule with parallel loops is refused by the backend */
  threads?: boolean;
  /** the printer can start a tile's accumulators at zero (TileNode.zeroOutput): overwriting kernels */
  zeroInitTiles?: boolean;
  /** vector registers the printer needs as scratch to apply each epilogue op to one accumulator
   *  (its constants included); the tile leaves the most any op of the problem needs free (at least
   *  the operand registers). Absent: the printer has no epilogue (the backend refuses such problems). */
  epilogueScratch?: Partial<Record<EpilogueKind, number>>;
  /** when the emitter can pack an input's box into a dense buffer, the rule for doing it (loopnest/lower.ts). */
  packing?: PackingRule;
}

/** When the lowering packs (see decidePacking in loopnest/lower.ts). */
export interface PackingRule {
  /** pack only tensors with a row stride that is a multiple of this many elements (cache-set conflicts) */
  strideMultiple: number;
  /** largest box packed, elements (it should stay in L2) */
  maxElements: number;
  /** fewest reads of each packed element (uses of the box by loops that do not move it) */
  minReuse: number;
}
