/**
 * Lowering a Schedule to a LoopProgram, LoopNest-style:
 *  1. the vector variable is the one indexing the output's last (unit-stride) dimension, when every
 *     input moves along it with stride 0 (broadcast), 1 (vector load) or another stride the target
 *     lists in `caps.vectorStrides` (a strided vector read: a stride-2 convolution's input);
 *  2. the unrolled region is the longest suffix of the loops whose output tile fits in the
 *     registers (accumulators + 2 operand registers) and whose unrolled body fits the unroll
 *     budget; it must contain the vector variable's innermost loop, else the scalar path is used;
 *  3. reduction loops directly above the unrolled region join the register tile, so accumulators
 *     stay in registers across them;
 *  4. every loop with a tail is instantiated twice (full iterations, then the remainder), so all
 *     trip counts and tails are compile-time constants;
 *  5. packing (targets whose caps have a PackingRule, see decidePacking): an input whose rows are a
 *     multiple of 4 KB apart is copied, at the outermost loop where its box fits the rule, into a
 *     dense buffer that the loops below read instead;
 *  6. the parallel band (targets with `caps.threads`): the schedule's adjacent `p` loops become one
 *     ParallelNode whose chunks the threads share; the register tile and packing stay below it (a
 *     pack inside the band is per thread: each thread copies only the box its own chunks read, into
 *     its own frame).
 */
import { ACCUMULATES, elementCount, isReduction, problemAccesses, tensorStrides, type Problem } from '../ir/problem.ts';
import { parallelBand, type Schedule } from '../ir/schedule.ts';
import type { TargetCaps } from './caps.ts';
import type {
  Accumulator, ComputeNode, ComputeOp, LoopNode, LoopProgram, Operand, PackNode, ParallelDim, ParallelNode, ProgramNode, TileDecision, TileNode,
} from './program.ts';

/**
 * The scalar path unrolls at most 1/8 of the budget: its accumulator chains are latency-bound
 * whether unrolled or looped, so a long unrolled scalar body only costs code size and codegen time.
 */
const SCALAR_UNROLL_DIVISOR = 8;

/** Registers the tile leaves free for operands: one streamed operand and one reused operand. */
const OPERAND_RESERVE = 2;

/** Vectors per tile of the separate epilogue pass (loads, ops and stores of independent vectors overlap). */
const PASS_VECTORS = 4;

/** Registers a tile sets aside, beyond the operand registers, for the printer's epilogue scratch. */
export function epilogueReserve(problem: Problem, caps: TargetCaps): number {
  const need = Math.max(0, ...(problem.epilogue ?? []).map((e) => caps.epilogueScratch?.[e.kind] ?? 0));
  return Math.max(0, need - OPERAND_RESERVE);
}

/** Whether every tile of the schedule holds its outputs' whole reduction (no reduction loop above the tile). */
function tileHoldsReduction(schedule: Schedule, decision: TileDecision): boolean {
  return !schedule.loops.slice(0, decision.tileFrom).some((l) => isReduction(schedule.problem, l.var));
}

export interface LowerOptions {
  /**
   * Ask for a kernel that writes output = result rather than output += result (accumulating
   * combines). Granted (LoopProgram.overwrites) for fma and sum when the target can zero its tiles
   * and every tile holds its outputs' whole reduction (no reduction loop above the tile); otherwise
   * the kernel accumulates and the caller clears the output first.
   */
  overwrite?: boolean;
}

export function lower(schedule: Schedule, caps: TargetCaps, options: LowerOptions = {}): LoopProgram {
  const problem = schedule.problem;
  const strides = tensorStrides(problem);
  const decision = decideTile(schedule, caps, strides);
  const whole = tileHoldsReduction(schedule, decision);
  const overwrites = Boolean(options.overwrite) && caps.zeroInitTiles === true && (problem.combine === 'fma' || problem.combine === 'sum') && whole;
  const epilogue = problem.epilogue ?? [];
  const epiloguePlace = epilogue.length === 0 ? 'none' : whole ? 'tile' : 'pass';
  const builder = new Builder(
    schedule, strides, decision, decidePacking(schedule, caps, strides, decision), loweredBand(schedule, caps), overwrites, epiloguePlace,
  );
  const range = problem.vars.map((v) => v.extent);
  // accesses with a constant offset (an output inside its padding) start there
  const start = problemAccesses(problem).map((a) => a.offset ?? 0);
  const body = builder.nodes(0, range, start);
  if (epiloguePlace === 'pass' && !builder.passInBand) body.push(...builder.epiloguePass(range, start));
  return {
    problem,
    schedule: schedule.text(),
    combine: problem.combine,
    tensors: problem.tensors.map((t) => ({ name: t.name, elements: elementCount(t) })),
    decision,
    ...(overwrites ? { overwrites: true } : {}),
    ...(epilogue.length > 0 ? { epilogue } : {}),
    body,
  };
}

/**
 * The input strides that callers planning without a target (the search's sketches) assume can be
 * vector reads: the x86 targets' (loopnest lowers with each target's own caps.vectorStrides).
 */
export const PLANNING_VECTOR_STRIDES: readonly number[] = [1, 2];

/** The variable of the output's unit-stride dimension, if every input can follow it (moving by 0 or a stride in `vectorStrides`). */
export function vectorVariable(
  problem: Problem, strides: number[][], vectorStrides: readonly number[] = PLANNING_VECTOR_STRIDES,
): { var: number | null; reason?: string } {
  const last = problem.output.index[problem.output.index.length - 1]!;
  if (last.terms.length !== 1 || last.terms[0]!.coef !== 1) return { var: null, reason: 'the output has no unit-stride variable' };
  const v = last.terms[0]!.var;
  for (let t = 1; t < strides.length; t++) {
    const s = strides[t]![v]!;
    if (s !== 0 && !vectorStrides.includes(s)) {
      return { var: null, reason: `${problem.tensors[t]!.name} moves by ${s} elements along ${problem.vars[v]!.name}` };
    }
  }
  return { var: v };
}

/** The register tile the lowering chooses for a schedule (exported for the cost model, which needs it without lowering). */
export function decideTile(schedule: Schedule, caps: TargetCaps, strides: number[][] = tensorStrides(schedule.problem)): TileDecision {
  const problem = schedule.problem;
  const loops = schedule.loops;
  const vv = vectorVariable(problem, strides, caps.vectorStrides ?? [1]);
  const zeroRegister = problem.combine === 'relu' && caps.zeroRegisterForRelu;
  // the register tile lives below the parallel band
  const bandEnd = lastBandLoop(schedule, caps);
  const pick = (lanes: number, vecVar: number | null, registers: number, budget: number) =>
    fittingSuffix(loops.length, (u) => tileSize(schedule, u, lanes, vecVar), { accumulators: registers - OPERAND_RESERVE, ops: budget }, bandEnd);
  let lanes = caps.vectorLanes;
  let vectorVar = vv.var;
  let scalarReason = vv.reason;
  let maskRegister = caps.maskRegisterForTails && vectorVar !== null && hasPartialVectors(schedule, vectorVar, lanes);
  let indexRegister = caps.indexRegisterForStrides === true && vectorVar !== null && hasStridedInput(strides, vectorVar);
  const reserve = epilogueReserve(problem, caps);
  const vectorRegisters = caps.vectorRegisters - reserve - (zeroRegister ? 1 : 0) - (maskRegister ? 1 : 0) - (indexRegister ? 1 : 0);
  let chosen = vectorVar === null ? undefined : pick(lanes, vectorVar, vectorRegisters, caps.unrollBudget);
  if (chosen && vectorVar !== null && lanes > 1) {
    const innermost = innermostLoopOf(schedule, vectorVar);
    if (innermost < chosen.unrollFrom) {
      scalarReason = `the innermost loop of ${problem.vars[vectorVar]!.name} is outside the unrolled register tile`;
      chosen = undefined;
    }
  }
  if (!chosen || lanes === 1) {
    lanes = 1;
    vectorVar = null;
    maskRegister = false;
    indexRegister = false;
    chosen = pick(1, null, caps.scalarRegisters - reserve - (zeroRegister ? 1 : 0), Math.max(16, caps.unrollBudget / SCALAR_UNROLL_DIVISOR));
  } else {
    scalarReason = undefined;
  }
  const tileFrom = tileStart(chosen.unrollFrom, (i) => i > bandEnd && isReduction(problem, loops[i]!.var));
  return {
    lanes, vectorVar, unrollFrom: chosen.unrollFrom, tileFrom,
    accumulators: chosen.size.accumulators, unrolledOps: chosen.size.ops, zeroRegister, maskRegister,
    ...(indexRegister ? { indexRegister } : {}),
    ...(scalarReason ? { scalarReason } : {}),
  };
}

/** The band's loops as the lowering sees them: empty where the target runs one thread. */
export function loweredBand(schedule: Schedule, caps: TargetCaps): number[] {
  return caps.threads ? parallelBand(schedule.loops) : [];
}

/** The last loop of the parallel band, -1 without one. */
function lastBandLoop(schedule: Schedule, caps: TargetCaps): number {
  const band = loweredBand(schedule, caps);
  return band.length > 0 ? band[band.length - 1]! : -1;
}

/** Accumulators and unrolled operations of a register tile. */
export interface TileSize {
  accumulators: number;
  ops: number;
}

/**
 * The register-tile rule every lowering shares (this one, and loopnest/gpu.ts per thread): the
 * unrolled region is the longest suffix loops[u..], u > `above`, whose size fits both limits.
 */
export function fittingSuffix(n: number, size: (u: number) => TileSize, limits: TileSize, above = -1): { unrollFrom: number; size: TileSize } {
  let unrollFrom = n;
  let best: TileSize = { accumulators: 1, ops: 1 };
  for (let u = n - 1; u > above; u--) {
    const s = size(u);
    if (s.accumulators > limits.accumulators || s.ops > limits.ops) break;
    unrollFrom = u;
    best = s;
  }
  return { unrollFrom, size: best };
}

/** The tile starts where the loops directly above the unrolled region stop joining it (reductions: accumulators stay in registers). */
export function tileStart(unrollFrom: number, joins: (loop: number) => boolean): number {
  let tileFrom = unrollFrom;
  while (tileFrom > 0 && joins(tileFrom - 1)) tileFrom--;
  return tileFrom;
}

export interface PackDecision {
  /** the input tensor packed */
  tensor: number;
  /** the schedule loop whose body reads the packed box (the box is packed on each entry to it) */
  level: number;
}

/**
 * Whether and where to pack (BLIS-style, automatic): a vectorized input tensor with simple indices
 * (one variable per dimension) and a row stride that is a multiple of `rule.strideMultiple`
 * elements (rows that far apart fall into the same cache sets: a 1024-wide fp32 matmul ran at 56%
 * of peak on AVX2 where 1008 wide ran at 96%) is packed at the OUTERMOST loop above the register
 * tile where its box (the elements the loops below read) has at most `rule.maxElements` elements
 * and each element is read at least `rule.minReuse` times (by loops of variables that do not move
 * the tensor), so the copy costs a small fraction of the compute.
 */
export function decidePacking(schedule: Schedule, caps: TargetCaps, strides: number[][], decision: TileDecision): PackDecision | null {
  const rule = caps.packing;
  if (!rule || decision.vectorVar === null) return null;
  const p = schedule.problem;
  const loops = schedule.loops;
  const rangeAt = (d: number): number[] => p.vars.map((v, vi) => {
    let r = v.extent;
    for (let i = 0; i < d; i++) if (loops[i]!.var === vi) r = schedule.steps[i]!;
    return r;
  });
  for (let t = 1; t <= p.inputs.length; t++) {
    const access = p.inputs[t - 1]!;
    const simple = access.index.every((ix) => ix.terms.length === 1 && ix.terms[0]!.coef === 1);
    const st = strides[t]!;
    const vars = st.map((s, v) => (s !== 0 ? v : -1)).filter((v) => v >= 0);
    if (!simple || st[decision.vectorVar] !== 1 || vars.length > 3) continue;
    if (!vars.some((v) => st[v]! % rule.strideMultiple === 0)) continue;
    // inside the band each thread packs the box of its own chunks; above it every thread would copy all of it
    for (let d = lastBandLoop(schedule, caps) + 1; d <= decision.tileFrom; d++) {
      const r = rangeAt(d);
      const box = vars.reduce((a, v) => a * r[v]!, 1);
      const reuse = p.vars.reduce((a, _, v) => (st[v] === 0 ? a * r[v]! : a), 1);
      if (box <= rule.maxElements && reuse >= rule.minReuse) return { tensor: t, level: d };
    }
  }
  return null;
}

/** Whether any instance of the vector variable's innermost loop covers a count that is not a multiple of the lanes. */
function hasPartialVectors(schedule: Schedule, v: number, lanes: number): boolean {
  const chain = schedule.loops.flatMap((l, i) => (l.var === v ? [i] : []));
  const partial = (level: number, range: number): boolean => {
    const step = schedule.steps[chain[level]!]!;
    if (step === 1) return range % lanes !== 0;
    const rem = range % step;
    return (range >= step && partial(level + 1, step)) || (rem > 0 && partial(level + 1, rem));
  };
  return partial(0, schedule.problem.vars[v]!.extent);
}

/** Whether some input moves along the vector variable by more than one element (a strided vector read). */
function hasStridedInput(strides: number[][], v: number): boolean {
  return strides.some((st, t) => t > 0 && st[v]! !== 0 && st[v]! !== 1);
}

function innermostLoopOf(schedule: Schedule, v: number): number {
  for (let i = schedule.loops.length - 1; i >= 0; i--) if (schedule.loops[i]!.var === v) return i;
  return -1;
}

/** Accumulators and vector operations of the unrolled region loops[u..] in a full iteration. */
function tileSize(schedule: Schedule, u: number, lanes: number, vecVar: number | null): { accumulators: number; ops: number } {
  const problem = schedule.problem;
  // the region's loops of each variable, outer to inner, with their steps
  const chains = new Map<number, number[]>();
  for (let i = u; i < schedule.loops.length; i++) {
    const v = schedule.loops[i]!.var;
    if (!chains.has(v)) chains.set(v, []);
    chains.get(v)!.push(i);
  }
  // registers needed along one variable: elements, or for the vector variable, vectors (a tail at
  // any level starts a new, possibly partial, vector)
  const count = (chain: number[], level: number, range: number, vector: boolean): number => {
    const step = schedule.steps[chain[level]!]!;
    if (step === 1) return vector ? Math.ceil(range / lanes) : range;
    const full = Math.floor(range / step);
    const rem = range - full * step;
    return full * count(chain, level + 1, step, vector) + (rem > 0 ? count(chain, level + 1, rem, vector) : 0);
  };
  let accumulators = 1;
  let reductionPoints = 1;
  for (const [v, chain] of chains) {
    const n = count(chain, 0, schedule.extent(chain[0]!), v === vecVar && lanes > 1);
    if (isReduction(problem, v)) reductionPoints *= n;
    else accumulators *= n;
  }
  return { accumulators, ops: accumulators * reductionPoints };
}

/** Instantiates the loop tree for concrete ranges, so every trip count is a constant. */
class Builder {
  private readonly loops;
  private readonly steps;
  private readonly problem: Problem;
  private readonly accumulate: boolean;

  constructor(
    private readonly schedule: Schedule, private readonly strides: number[][], private readonly decision: TileDecision,
    private readonly pack: PackDecision | null = null, private readonly band: readonly number[] = [],
    private readonly overwrites = false, private readonly epiloguePlace: 'none' | 'tile' | 'pass' = 'none',
  ) {
    this.loops = schedule.loops;
    this.steps = schedule.steps;
    this.problem = schedule.problem;
    this.accumulate = ACCUMULATES[schedule.problem.combine];
  }

  /** Whether the epilogue pass runs inside the parallel band's bodies (each thread over its own chunks) rather than after the program. */
  get passInBand(): boolean {
    return this.epiloguePlace === 'pass' && this.band.length > 0;
  }

  /**
   * The separate epilogue pass over the output box `range` (reduction variables ignored): loops
   * over the output variables, largest output stride outermost, then tiles of PASS_VECTORS
   * vectors (or scalars) along the innermost, each loading its outputs, applying the epilogue and
   * storing them.
   */
  epiloguePass(range: number[], offsets: number[]): ProgramNode[] {
    const p = this.problem;
    const out = this.strides[0]!;
    const vars = p.vars.map((_, v) => v).filter((v) => !isReduction(p, v) && range[v]! > 1).sort((a, b) => out[b]! - out[a]!);
    const vectorVar = this.decision.vectorVar;
    const inner = vectorVar !== null && vars.includes(vectorVar) ? vectorVar : vars[vars.length - 1];
    const outer = vars.filter((v) => v !== inner);
    const lanes = inner === vectorVar ? this.decision.lanes : 1;
    const firstEpilogueTensor = 1 + p.inputs.length;
    const tile = (o: number[], count: number): TileNode => {
      const accumulators: Accumulator[] = [];
      for (let x = 0; x < count; x += lanes) {
        const n = Math.min(lanes, count - x);
        const operands: Operand[] = [];
        for (let t = firstEpilogueTensor; t < this.strides.length; t++) {
          const st = inner === undefined ? 0 : this.strides[t]![inner]!;
          operands.push(operandAt(t, o[t]! + x * st, lanes > 1 ? st : 0, n));
        }
        accumulators.push({ offset: o[0]! + x * (inner === undefined ? 0 : out[inner]!), count: n, ...(operands.length > 0 ? { operands } : {}) });
      }
      return { kind: 'tile', accumulators, loadOutput: true, epilogue: true, body: [] };
    };
    const tiles = (o: number[]): ProgramNode[] => {
      if (inner === undefined) return [tile(o, 1)];
      const n = range[inner]!;
      const chunk = Math.min(n, lanes * PASS_VECTORS);
      const full = Math.floor(n / chunk), rem = n % chunk;
      const advance = this.strides.map((s) => s[inner]! * chunk);
      const nodes: ProgramNode[] = [];
      if (full === 1) nodes.push(tile(o, chunk));
      else nodes.push({ kind: 'loop', var: inner, count: full, offsets: o, advance, body: [tile(o.map(() => 0), chunk)] });
      if (rem > 0) nodes.push(tile(o.map((x, t) => x + advance[t]! * full), rem));
      return nodes;
    };
    const level = (i: number, o: number[]): ProgramNode[] => {
      if (i === outer.length) return tiles(o);
      const v = outer[i]!;
      return [{ kind: 'loop', var: v, count: range[v]!, offsets: o, advance: this.strides.map((s) => s[v]!), body: level(i + 1, o.map(() => 0)) }];
    };
    return level(0, offsets);
  }

  /** Nodes for loops[d..] with `range[v]` elements of each variable left and static pointer offsets. */
  nodes(d: number, range: number[], offsets: number[]): ProgramNode[] {
    if (this.band.length > 0 && d === this.band[0]) return [this.parallel(range, offsets)];
    if (this.pack && d === this.pack.level) {
      const packed = this.packNode(this.pack.tensor, d, range, offsets);
      if (packed) return [packed];
    }
    if (d === this.decision.tileFrom) return [this.tile(range, offsets)];
    return this.loopLevel(d, range, offsets, (dd, r, o) => this.nodes(dd, r, o));
  }

  /** One schedule loop: its full iterations (a LoopNode, or inline when there is one) then its tail. */
  private loopLevel(
    d: number, range: number[], offsets: number[],
    inner: (d: number, range: number[], offsets: number[]) => ProgramNode[],
  ): ProgramNode[] {
    const l = this.loops[d]!;
    const step = this.steps[d]!;
    const r = range[l.var]!;
    const full = Math.floor(r / step);
    const rem = r % step;
    const out: ProgramNode[] = [];
    const advance = this.strides.map((s) => s[l.var]! * step);
    if (full > 0) {
      const innerRange = withValue(range, l.var, step);
      if (full === 1) {
        out.push(...inner(d + 1, innerRange, offsets));
      } else {
        const node: LoopNode = {
          kind: 'loop', var: l.var, count: full, offsets, advance,
          body: inner(d + 1, innerRange, offsets.map(() => 0)),
        };
        out.push(node);
      }
    }
    if (rem > 0) {
      out.push(...inner(d + 1, withValue(range, l.var, rem), offsets.map((o, t) => o + advance[t]! * full)));
    }
    return out;
  }

  /** The band for these ranges: its dims and one body per tail mask that occurs. */
  private parallel(range: number[], offsets: number[]): ParallelNode {
    const dims: ParallelDim[] = [];
    const remainders: number[] = [];
    for (const i of this.band) {
      const l = this.loops[i]!;
      const step = this.steps[i]!;
      const r = range[l.var]!;
      dims.push({ var: l.var, count: Math.floor(r / step), tail: r % step > 0, advance: this.strides.map((s) => s[l.var]! * step) });
      remainders.push(r % step);
    }
    const after = this.band[this.band.length - 1]! + 1;
    const bodies: (ProgramNode[] | null)[] = [];
    for (let mask = 0; mask < 1 << dims.length; mask++) {
      const occurs = dims.every((dim, j) => ((mask >> j) & 1 ? dim.tail : dim.count > 0));
      if (!occurs) {
        bodies.push(null);
        continue;
      }
      let inner = range;
      dims.forEach((dim, j) => (inner = withValue(inner, dim.var, (mask >> j) & 1 ? remainders[j]! : this.steps[this.band[j]!]!)));
      const zero = offsets.map(() => 0);
      const body = this.nodes(after, inner, zero);
      // each thread finishes the outputs of its own chunks (the band runs over output variables only)
      if (this.passInBand) body.push(...this.epiloguePass(inner, zero));
      bodies.push(body);
    }
    return { kind: 'parallel', offsets, dims, bodies };
  }

  /**
   * The box of tensor t that loops[d..] read, for these ranges, copied dense (row-major over the
   * tensor's variables, largest stride first); the loops below are built with the packed strides.
   * Null when this instance's box does not suit the emitter (at most two dimensions of more than
   * one element, the innermost a whole number of vectors).
   */
  private packNode(t: number, d: number, range: number[], offsets: number[]): PackNode | null {
    const st = this.strides[t]!;
    const vars = st.map((s, v) => (s !== 0 && range[v]! > 1 ? v : -1)).filter((v) => v >= 0).sort((a, b) => st[b]! - st[a]!);
    const inner = vars[vars.length - 1];
    if (inner === undefined || st[inner] !== 1 || vars.length > 2 || range[inner]! % this.decision.lanes !== 0) return null;
    const packedStrides = st.map(() => 0);
    let s = 1;
    for (let i = vars.length - 1; i >= 0; i--) {
      packedStrides[vars[i]!] = s;
      s *= range[vars[i]!]!;
    }
    const strides = this.strides.map((row, u) => (u === t ? packedStrides : row));
    const inside = new Builder(this.schedule, strides, this.decision, null, [], this.overwrites, this.epiloguePlace);
    return {
      kind: 'pack', tensor: t, offset: offsets[t]!,
      dims: vars.map((v) => ({ count: range[v]!, stride: st[v]! })),
      body: inside.nodes(d, range, offsets.map((o, u) => (u === t ? 0 : o))),
    };
  }

  private tile(range: number[], offsets: number[]): ProgramNode {
    const accIndex = new Map<number, number>();
    const accumulators: Accumulator[] = [];
    const accFor = (offset: number, count: number, operands?: Operand[]): number => {
      let i = accIndex.get(offset);
      if (i === undefined) {
        i = accumulators.length;
        accIndex.set(offset, i);
        accumulators.push({ offset, count, ...(operands ? { operands } : {}) });
      }
      return i;
    };
    // the output pointer stays at the tile; the offsets of output accesses are folded into accumulators
    const outBase = offsets[0]!;
    // epilogue operands are read after the body, at the tile's pointers: their offsets are taken
    // from the tile's (loops inside it move and restore pointers, so the compute's frame differs)
    const tileOffsets = offsets;
    const inTile = (d: number, r: number[], o: number[]): ProgramNode[] => {
      if (d === this.decision.unrollFrom) return [this.compute(r, o, outBase, accFor, tileOffsets)];
      return this.loopLevel(d, r, o, inTile);
    };
    const body = inTile(this.decision.tileFrom, range, offsets.map((o, t) => (t === 0 ? 0 : o)));
    const epilogue = this.epiloguePlace === 'tile' ? { epilogue: true } : {};
    if (this.overwrites) return { kind: 'tile', accumulators, loadOutput: false, zeroOutput: true, ...epilogue, body };
    return { kind: 'tile', accumulators, loadOutput: this.accumulate, ...epilogue, body };
  }

  /** The fully unrolled region for concrete ranges: one group per point of its reduction loops. */
  private compute(range: number[], offsets: number[], outBase: number, accFor: AccumulatorFor, tileOffsets: number[]): ComputeNode {
    const w = new UnrolledWalk(
      this.problem, this.loops, this.steps, this.strides, this.decision, offsets, outBase, accFor, this.epiloguePlace === 'tile' ? tileOffsets : null,
    );
    w.walk(this.decision.unrollFrom, range.slice());
    return { kind: 'compute', groups: [...w.groups.values()].map((g) => orderGroup(g)) };
  }
}

/**
 * Enumerates the points of the unrolled loops (the vectorized loop a register at a time) and
 * turns each into one op. Methods rather than closures: this runs for every kernel generated.
 */
class UnrolledWalk {
  readonly groups = new Map<number, ComputeOp[]>();
  private readonly values: number[];
  private readonly reductionVars: number[];
  private readonly nInputs: number;

  constructor(
    private readonly problem: Problem,
    private readonly loops: Schedule['loops'],
    private readonly steps: readonly number[],
    private readonly strides: number[][],
    private readonly decision: TileDecision,
    private readonly offsets: number[],
    private readonly outBase: number,
    private readonly accFor: AccumulatorFor,
    /** the tile's pointer offsets, when accumulators carry epilogue operands (null: they do not) */
    private readonly tileOffsets: number[] | null = null,
  ) {
    this.values = problem.vars.map(() => 0);
    this.reductionVars = problem.vars.map((_, v) => v).filter((v) => isReduction(problem, v));
    this.nInputs = problem.inputs.length;
  }

  private offset(t: number): number {
    const st = this.strides[t]!;
    let o = this.offsets[t]!;
    for (let v = 0; v < st.length; v++) o += st[v]! * this.values[v]!;
    return o;
  }

  private emit(count: number): void {
    // group key: the point of the reduction variables (mixed radix over their extents)
    let key = 0;
    for (const v of this.reductionVars) key = key * (this.problem.vars[v]!.extent + 1) + this.values[v]!;
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = []));
    const vectorVar = this.decision.vectorVar;
    let operands: Operand[] | undefined;
    if (this.tileOffsets) {
      operands = [];
      for (let t = 1 + this.nInputs; t < this.strides.length; t++) {
        // epilogue tensors follow output variables only, which vary in the unrolled region alone
        const st = this.strides[t]!;
        let o = this.tileOffsets[t]!;
        for (let v = 0; v < st.length; v++) o += st[v]! * this.values[v]!;
        operands.push(operandAt(t, o, vectorVar === null ? 0 : st[vectorVar]!, count));
      }
    }
    const acc = this.accFor(this.outBase + this.offset(0), count, operands);
    const inputs: Operand[] = [];
    for (let i = 0; i < this.nInputs; i++) {
      const t = i + 1;
      inputs.push(operandAt(t, this.offset(t), vectorVar === null ? 0 : this.strides[t]![vectorVar]!, count));
    }
    g.push({ acc, inputs });
  }

  /** `count` = lanes of the current vector once the vectorized loop has been passed, else 0. */
  walk(d: number, range: number[], count = 0): void {
    if (d === this.loops.length) {
      this.emit(count === 0 ? 1 : count);
      return;
    }
    const l = this.loops[d]!;
    const step = this.steps[d]!;
    const n = range[l.var]!;
    const base = this.values[l.var]!;
    const lanes = this.decision.lanes;
    if (count === 0 && l.var === this.decision.vectorVar && step === 1) {
      // the vectorized loop advances a whole register at a time
      for (let x = 0; x < n; x += lanes) {
        this.values[l.var] = base + x;
        this.walk(d + 1, range, Math.min(lanes, n - x));
      }
    } else {
      // the range of this variable below this loop: a full step, then the remainder (restored after)
      const full = Math.floor(n / step);
      const rem = n - full * step;
      range[l.var] = step;
      for (let it = 0; it < full; it++) {
        this.values[l.var] = base + it * step;
        this.walk(d + 1, range, count);
      }
      if (rem > 0) {
        this.values[l.var] = base + full * step;
        range[l.var] = rem;
        this.walk(d + 1, range, count);
      }
      range[l.var] = n;
    }
    this.values[l.var] = base;
  }
}

/**
 * Orders a group in runs that share the operand of the input with MORE distinct operands: the
 * emitter loads that operand once per run, while the other input's few operands stay in registers.
 */
function orderGroup(ops: ComputeOp[]): ComputeOp[] {
  if (ops.length < 2 || ops[0]!.inputs.length < 2) return ops;
  const distinct = ops[0]!.inputs.map((_, i) => new Set(ops.map((o) => o.inputs[i]!.offset)).size);
  const runKey = distinct[0]! >= distinct[1]! ? 0 : 1;
  return ops
    .map((op, i) => ({ op, i }))
    .sort((a, b) => a.op.inputs[runKey]!.offset - b.op.inputs[runKey]!.offset || a.i - b.i)
    .map((x) => x.op);
}

type AccumulatorFor = (offset: number, count: number, operands?: Operand[]) => number;

/** The operand of tensor t at `offset` for a vector of `count` lanes whose elements are `stride` apart in t (0: one element broadcast). */
function operandAt(t: number, offset: number, stride: number, count: number): Operand {
  if (stride === 0) return { tensor: t, offset, mode: 'broadcast', count: 1 };
  if (stride === 1) return { tensor: t, offset, mode: 'vector', count };
  return { tensor: t, offset, mode: 'vector', count, stride };
}

function withValue(range: number[], v: number, value: number): number[] {
  const r = range.slice();
  r[v] = value;
  return r;
}
