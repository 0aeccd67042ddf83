/**
 * PTX printer: one `.entry` per GpuProgram (`.version 8.0`, `.target sm_80`, which the driver also
 * JIT-compiles for sm_90). Every decision (grid, block, bound loops, register tile, staging layout
 * and copy plans, split reductions, register cap) is the GPU lowering's (loopnest/gpu.ts); this
 * file only writes it as PTX. Deterministic text: the same program always gives the same kernel.
 *
 * Per thread, the printer walks the schedule's loops in order with, for every variable, the range
 * the enclosing loops leave it (a constant, or a register when it depends on a block/thread index):
 *  - a bound loop takes its index from %ctaid/%tid (decoded once at entry) and narrows the range of
 *    its variable: min(step, range - index*step); a thread whose range becomes empty skips the
 *    subtree (or, under a barrier, keeps going with every store predicated off);
 *  - a serial loop with a constant range is instantiated like the CPU lowering does: its full
 *    iterations as a counted loop, its tail as a second copy with constant trip counts; with a
 *    register range it becomes a loop with a run-time trip count;
 *  - the register tile keeps its accumulators in registers across its reduction loops and is fully
 *    unrolled below `unrollFrom`. Its output points are enumerated at compile time; each point's
 *    validity is a compile-time fact or a few predicates (`setp` on per-thread sums of bound-loop
 *    offsets), which guard the global loads and the final read-modify-write of the output. They
 *    are emitted where first needed: with staging only the store needs them, so they are made
 *    after the reduction loops; the store skips a row of points whose tuple is invalid by a branch
 *    and predicates the points of a row by the other variables only;
 *  - edge tiles (GpuProgram.edges, rule 9 of loopnest/gpu.ts): one uniform branch on the block
 *    indices at entry; interior blocks run the walk with the listed block loops taken as whole (no
 *    predicates, unchecked copies, constant trip counts: the aligned code), the others the general
 *    walk. Each body sets up its own pointers, so only the decoded indices live across the branch;
 *  - the staged loop copies, per iteration, each input's box into its shared region by the
 *    program's copy plan, double-buffered (when the program says so) with a register prefetch of
 *    the next box (the loop unrolled by two, one copy per buffer); looped plans copy by a loop.
 *    Where a box may reach past its tensor, each item's pointer is clamped to the tensor's last
 *    item (min.u64): no predicate, and the positions read that way only feed unstored points;
 *  - split reductions: after the tile's loops, the partial accumulators go through shared memory
 *    and the threads with reduction index 0 add them in a fixed order and write the output;
 *  - operands loaded for one point of the unrolled reductions stay in registers for the next ones
 *    (a window of the most recent 48), so a convolution's overlapping windows load each input once;
 *  - vector accesses: runs of 4 (or 2) consecutive elements whose address is provably 16-byte (8)
 *    aligned become ld/st .v4 (.v2), for global and shared memory alike.
 *
 * Kernel parameters: one .u64 global pointer per tensor, output first, then the inputs and the
 * epilogue's tensors (targets/kernel.ts ABI order). Every access starts at its static offset
 * (Access.offset: an output inside its padding border). Accumulating combines (fma, sum, max) add
 * into the output's contents (beta = 1). `.reqntid` gives ptxas the block size; `.maxnreg` the
 * program's register cap, if any.
 *
 * Epilogue (GpuProgram.epilogue): at the tile's final store each value (output + accumulator, or
 * the accumulator) goes through the ops in registers before it is stored; bias and residual
 * operands are loaded like compute operands (predicated per point, .v4/.v2 when consecutive and
 * aligned, each loaded once per tile). Where the lowering says 'pass', the first walk stores the
 * plain sums and a second walk over the same thread's output points (reduction loops skipped, no
 * barriers) loads each output, applies the ops and stores it. sigmoid is 1 / (1 + 2^(-x log2 e))
 * with ex2.approx.ftz (2 ulps; sigmoid's slope is at most 1/4) and an IEEE reciprocal; gelu's erf
 * is a rational x P(x^2) / Q(x^2) on [-4, 4] (erf is 1 to fp32 precision beyond), in fma and an
 * IEEE division: erf within 3.3e-7, gelu within 8 ulps of max(1, |gelu|) (the oracle allows 16).
 */
import { ACCUMULATES, elementCount, isReduction, problemAccesses, type EpilogueOp, type Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import {
  loopIterations, stagedInstanceKey, type CopyPlan, type GpuMapping, type GpuProgram, type GpuStaging, type SharedTensor,
} from '../../loopnest/gpu.ts';
import { PtxBuilder, addr, f32Hex, gcd } from './ptx-builder.ts';

export const PTX_VERSION = '8.0';
export const PTX_TARGET = 'sm_80';

export interface CudaLaunch {
  entry: string;
  grid: [number, number, number];
  block: [number, number, number];
  /** static shared memory of the kernel, bytes */
  sharedBytes: number;
  /** the `.maxnreg` cap written into the kernel, if any */
  maxRegisters: number | null;
  /** dynamic shared memory the launch passes (`.extern .shared`; tensor-core pipelines), bytes */
  dynamicSharedBytes?: number;
}

export interface PrintedPtx {
  ptx: string;
  launch: CudaLaunch;
}

type Range = { kind: 'const'; value: number } | { kind: 'reg'; reg: string; max: number };

/** Where a tensor's elements come from: a global pointer (u64) or a shared address (u32). */
interface Src {
  space: 'global' | 'shared';
  reg: string;
  /** static element offset folded into address immediates */
  off: number;
  /** gcd, in elements, of everything added to the register at run time (0: nothing) */
  align: number;
  /** element stride of each variable */
  strides: number[];
}

interface Ctx {
  range: Range[];
  /** per tensor: output (global) first, then inputs */
  srcs: Src[];
  /** whether a thread with an empty range may branch over the rest (no barrier below) */
  canSkip: boolean;
}

/**
 * One condition of an output point's validity: `make` emits the `setp` (and what it needs) the
 * first time a predicate register is asked for; `key` names it in the tile's cache.
 */
interface PointCond {
  key: string;
  make: () => string;
}

interface Acc {
  reg: string;
  /** static offset of each variable (0 for reductions) */
  offs: number[];
  /** per variable: the conditions of its tuple (none: always valid) */
  varConds: PointCond[][];
  /** per input tensor (index t - 1): predicate guarding its global loads, once materialized (tiles without staging) */
  loadPreds: (string | null)[];
}

interface TileState {
  accs: Acc[];
  /** predicate registers already emitted in this tile, by key */
  predCache: Map<string, string>;
}

const ZERO = f32Hex(0);
const ONE = f32Hex(1);
/** erf(x) ~ x P(x^2) / Q(x^2) on [-4, 4]: the numerator's coefficients from x^12 down, the denominator's from x^8 */
const ERF_P = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02];
const ERF_Q = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03, -1.42647390514189e-02];

/** How a tile's final store treats each value: as summed, through the epilogue, or (the second pass) reloaded and through the epilogue. */
type StoreMode = 'plain' | 'epilogue' | 'fixup';
/** operands kept in registers across the groups of an unrolled body (most recently used) */
const OPERAND_WINDOW = 48;
const NEG_INF = '0fFF800000';

/** One epilogue op on register x (in place); `operand` is the bias / residual value's register (also used by mma-ptx.ts). */
export function emitEpilogueOp(b: PtxBuilder, e: EpilogueOp, x: string, operand: string): void {
  switch (e.kind) {
    case 'bias': case 'residual': b.emit(`add.rn.f32 ${x}, ${x}, ${operand}`); return;
    case 'scale': b.emit(`mul.rn.f32 ${x}, ${x}, ${f32Hex(e.value)}`); return;
    case 'relu': b.emit(`max.f32 ${x}, ${x}, ${ZERO}`); return;
    case 'clip':
      b.emit(`max.f32 ${x}, ${x}, ${f32Hex(e.min)}`);
      b.emit(`min.f32 ${x}, ${x}, ${f32Hex(e.max)}`);
      return;
    case 'sigmoid': {
      // 1 / (1 + 2^(-x log2 e)): 2^t overflows to +Inf (giving 0) or flushes to 0 (giving 1), the right limits
      const t = b.f();
      b.emit(`mul.rn.f32 ${t}, ${x}, ${f32Hex(-Math.LOG2E)}`);
      b.emit(`ex2.approx.ftz.f32 ${t}, ${t}`);
      b.emit(`add.rn.f32 ${t}, ${t}, ${ONE}`);
      b.emit(`rcp.rn.f32 ${x}, ${t}`);
      return;
    }
    case 'gelu': {
      // x/2 (1 + erf(x / sqrt 2)) as h + h erf with h = x/2: one rounding where 1 + erf would cancel
      const u = b.f();
      const u2 = b.f();
      const num = b.f();
      const den = b.f();
      b.emit(`mul.rn.f32 ${u}, ${x}, ${f32Hex(Math.SQRT1_2)}`);
      b.emit(`max.f32 ${u}, ${u}, ${f32Hex(-4)}`);
      b.emit(`min.f32 ${u}, ${u}, ${f32Hex(4)}`);
      b.emit(`mul.rn.f32 ${u2}, ${u}, ${u}`);
      b.emit(`fma.rn.f32 ${num}, ${u2}, ${f32Hex(ERF_P[0]!)}, ${f32Hex(ERF_P[1]!)}`);
      for (const c of ERF_P.slice(2)) b.emit(`fma.rn.f32 ${num}, ${u2}, ${num}, ${f32Hex(c)}`);
      b.emit(`mul.rn.f32 ${num}, ${num}, ${u}`);
      b.emit(`fma.rn.f32 ${den}, ${u2}, ${f32Hex(ERF_Q[0]!)}, ${f32Hex(ERF_Q[1]!)}`);
      for (const c of ERF_Q.slice(2)) b.emit(`fma.rn.f32 ${den}, ${u2}, ${den}, ${f32Hex(c)}`);
      b.emit(`div.rn.f32 ${num}, ${num}, ${den}`);
      b.emit(`mul.rn.f32 ${u}, ${x}, ${f32Hex(0.5)}`);
      b.emit(`fma.rn.f32 ${x}, ${u}, ${num}, ${u}`);
      return;
    }
  }
}

/** Prints a GpuProgram as a PTX module, with the launch it needs. */
export function printPtx(program: GpuProgram): PrintedPtx {
  return new Printer(program).run();
}

/** Kernel entry name: deterministic per schedule. */
export function entryName(s: Schedule): string {
  return `looptune_${s.problem.op}_${s.hash()}`;
}

class Printer {
  private readonly b = new PtxBuilder();
  private readonly m: GpuMapping;
  private readonly s: Schedule;
  private readonly p: Problem;
  private readonly strides: number[][];
  private readonly n: number;
  private readonly idx = new Map<number, string>();
  /** special registers read in the current body */
  private readonly specials = new Map<string, string>();
  private readonly stage: GpuStaging | null;
  /** per tensor: byte offset of the thread-loop contributions (u64), when staging */
  private threadOff64: string[] = [];
  /** per input tensor: shared byte address of the thread's origin in its region (u32) */
  private sThread: string[] = [];
  private sAlign: number[] = [];
  private tensorBase: string[] = [];
  private tidLinear = '';
  private tile: TileState | null = null;
  /** the second walk of an epilogue 'pass': visits each output point of the thread once, computes nothing */
  private fixup = false;
  /** while printing the interior body (GpuProgram.edges): the block loops taken as whole, with their full counts */
  private interior: Map<number, number> | null = null;
  /** split reductions: the program's plan, and the registers of who adds the partial sums */
  private readonly split: { areaOffset: number; chunk: number; siblings: number[]; rho0: string; slot: string } | null;

  constructor(private readonly program: GpuProgram) {
    this.m = program.mapping;
    this.s = program.schedule;
    this.p = program.problem;
    this.strides = program.strides;
    this.n = this.s.loops.length;
    this.stage = program.staging;
    this.split = program.split ? { ...program.split, rho0: '', slot: '' } : null;
  }

  private get loops() { return this.s.loops; }
  private get steps() { return this.s.steps; }

  run(): PrintedPtx {
    const b = this.b;
    const entry = entryName(this.s);
    this.decodeIndices();
    // each body sets up its own pointers: only the indices are live across the branch of rule 9
    const body = (): void => {
      this.setup();
      const ctx: Ctx = {
        range: this.p.vars.map((v) => ({ kind: 'const', value: v.extent })),
        srcs: this.p.tensors.map((_, t) => this.threadPointer(t)),
        canSkip: this.m.staged === null && this.m.reductionThreads === 1,
      };
      this.walk(0, ctx);
      if (this.program.epilogue?.place === 'pass') {
        // the first walk's pointers were copied by every loop, so the entry ones still hold; no barrier follows
        this.fixup = true;
        this.walk(0, { ...ctx, canSkip: true });
        this.fixup = false;
      }
    };
    const edges = this.program.edges;
    if (edges) {
      // rule 9 (loopnest/gpu.ts): blocks inside the tensors run a body without tails; the branch is uniform per block
      const edge = b.label('EDGE');
      b.emit(`@!${this.interiorPredicate(edges.loops)} bra ${edge}`);
      this.interior = new Map(edges.loops.map((x) => [x.loop, x.whole]));
      body();
      this.interior = null;
      b.emit('bra $EXIT');
      b.place(edge);
    }
    body();
    b.place('$EXIT');
    b.emit('ret');
    const sharedBytes = this.program.sharedBytes;
    const maxnreg = this.program.registerCap;
    const launch: CudaLaunch = { entry, grid: this.m.grid, block: this.m.block, sharedBytes, maxRegisters: maxnreg };
    const header = [
      '//',
      `// looptune cuda kernel for ${this.p.spec}`,
      `// schedule: ${this.s.text()}`,
      `// launch: grid=(${launch.grid.join(',')}) block=(${launch.block.join(',')}) shared=${sharedBytes}`,
      '//',
      `.version ${PTX_VERSION}`,
      `.target ${PTX_TARGET}`,
      '.address_size 64',
      '',
      `.visible .entry ${entry}(`,
      this.p.tensors.map((_, t) => `\t.param .u64 ${entry}_param_${t}`).join(',\n'),
      ')',
      `.reqntid ${launch.block.join(', ')}`,
      ...(maxnreg ? [`.maxnreg ${maxnreg}`] : []),
      '{',
      ...b.declarations(),
      ...(sharedBytes > 0 ? [`\t.shared .align 16 .b8 smem[${sharedBytes}];`] : []),
    ];
    const ptx = [...header, ...b.lines, '}', ''].join('\n');
    return { ptx, launch };
  }

  // ---------------------------------------------------------------- entry: indices and pointers

  /** A special register (%tid.x ...) read once per body. */
  private special(name: string): string {
    let r = this.specials.get(name);
    if (!r) {
      r = this.b.r();
      this.b.emit(`mov.u32 ${r}, ${name}`);
      this.specials.set(name, r);
    }
    return r;
  }

  /** Entry: every bound loop's index, from the special registers (the only values both bodies of rule 9 share). */
  private decodeIndices(): void {
    const b = this.b;
    const special = (name: string) => this.special(name);
    for (const ix of this.m.indices) {
      let r = special(`%${ix.source}.${ix.dim}`);
      if (ix.div > 1) {
        const q = b.r();
        b.emit(`div.u32 ${q}, ${r}, ${ix.div}`);
        r = q;
      }
      if (ix.mod > 0) {
        const q = b.r();
        b.emit(`rem.u32 ${q}, ${r}, ${ix.mod}`);
        r = q;
      }
      this.idx.set(ix.loop, r);
    }
  }

  /** A body's set-up: tensor pointers, the linear thread id, the split reduction's and the staging's shared addresses. */
  private setup(): void {
    const b = this.b;
    const special = (name: string) => this.special(name);
    this.specials.clear();
    this.tensorBase = [];
    this.threadOff64 = [];
    this.sThread = [];
    this.sAlign = [];
    const entry = entryName(this.s);
    this.p.tensors.forEach((_, t) => {
      const raw = b.rd();
      const g = b.rd();
      b.emit(`ld.param.u64 ${raw}, [${entry}_param_${t}]`);
      b.emit(`cvta.to.global.u64 ${g}, ${raw}`);
      this.tensorBase.push(g);
    });
    if (this.stage || this.split) {
      const [bx, by] = this.m.block;
      let lin = special('%tid.x');
      if (this.m.block[1] > 1 || this.m.block[2] > 1) {
        const yz = b.r();
        const l2 = b.r();
        if (this.m.block[2] > 1) {
          b.emit(`mad.lo.u32 ${yz}, ${special('%tid.z')}, ${by}, ${special('%tid.y')}`);
        } else {
          b.emit(`mov.u32 ${yz}, ${special('%tid.y')}`);
        }
        b.emit(`mad.lo.u32 ${l2}, ${yz}, ${bx}, ${lin}`);
        lin = l2;
      }
      this.tidLinear = lin;
    }
    if (this.split) {
      const base = b.r();
      b.emit(`mov.u32 ${base}, smem`);
      const slot = b.r();
      b.emit(`mad.lo.u32 ${slot}, ${this.tidLinear}, 4, ${base}`);
      if (this.split.areaOffset) b.emit(`add.u32 ${slot}, ${slot}, ${this.split.areaOffset}`);
      let rho0 = '';
      for (const j of this.m.reductionThreadLoops) {
        const q = b.p();
        b.emit(`setp.eq.u32 ${q}, ${this.idx.get(j)!}, 0`);
        if (rho0) {
          const a = b.p();
          b.emit(`and.pred ${a}, ${rho0}, ${q}`);
          rho0 = a;
        } else rho0 = q;
      }
      this.split.rho0 = rho0;
      this.split.slot = slot;
    }
    if (this.stage) {
      const base = b.r();
      b.emit(`mov.u32 ${base}, smem`);
      for (const tl of this.stage.tensors) {
        const terms = this.m.threadLoops.map((j) => ({ j, c: this.steps[j]! * tl.sv[this.loops[j]!.var]! })).filter((x) => x.c !== 0);
        let r = base;
        let al = 4;
        if (tl.regionOffset > 0 || terms.length > 0) {
          r = b.r();
          b.emit(`add.u32 ${r}, ${base}, ${tl.regionOffset}`);
          for (const { j, c } of terms) {
            b.emit(`mad.lo.u32 ${r}, ${this.idx.get(j)!}, ${c * 4}, ${r}`);
            al = gcd(al, c);
          }
        }
        this.sThread[tl.tensor] = r;
        this.sAlign[tl.tensor] = al;
      }
    }
  }

  /** True in blocks whose index along each listed block loop is below its full count (rule 9). */
  private interiorPredicate(loops: readonly { loop: number; whole: number }[]): string {
    const b = this.b;
    let acc = '';
    for (const { loop, whole } of loops) {
      const q = b.p();
      b.emit(`setp.lt.u32 ${q}, ${this.idx.get(loop)!}, ${whole}`);
      if (acc) {
        const a = b.p();
        b.emit(`and.pred ${a}, ${acc}, ${q}`);
        acc = a;
      } else acc = q;
    }
    return acc;
  }

  /** The largest index a bound loop takes in this body: the interior body stops before a whole loop's tail. */
  private lastIndex(j: number): number {
    const whole = this.interior?.get(j);
    return whole !== undefined ? whole - 1 : loopIterations(this.loops[j]!) - 1;
  }

  /** The thread's global pointer for tensor t: base + every bound loop's offset. */
  private threadPointer(t: number): Src {
    const b = this.b;
    const st = this.strides[t]!;
    const contrib = (loops: number[]) => loops
      .map((j) => ({ j, c: this.steps[j]! * st[this.loops[j]!.var]! }))
      .filter((x) => x.c !== 0);
    const blockTerms = contrib(this.m.blockLoops);
    const threadTerms = contrib(this.m.threadLoops);
    let align = 0;
    const sum32 = (terms: { j: number; c: number }[]): string | null => {
      if (terms.length === 0) return null;
      const r = b.r();
      terms.forEach(({ j, c }, k) => {
        align = gcd(align, c);
        if (k === 0) b.emit(`mul.lo.u32 ${r}, ${this.idx.get(j)!}, ${c * 4}`);
        else b.emit(`mad.lo.u32 ${r}, ${this.idx.get(j)!}, ${c * 4}, ${r}`);
      });
      return r;
    };
    let ptr = this.tensorBase[t]!;
    const blockOff = sum32(blockTerms);
    const threadOff = sum32(threadTerms);
    for (const off of [blockOff, threadOff]) {
      if (!off) continue;
      const w = b.rd();
      const q = b.rd();
      b.emit(`cvt.u64.u32 ${w}, ${off}`);
      b.emit(`add.s64 ${q}, ${ptr}, ${w}`);
      ptr = q;
    }
    if (this.stage) {
      if (threadOff) {
        const w = b.rd();
        b.emit(`cvt.u64.u32 ${w}, ${threadOff}`);
        this.threadOff64[t] = w;
      } else {
        this.threadOff64[t] = '';
      }
    }
    return { space: 'global', reg: ptr, off: problemAccesses(this.p)[t]!.offset ?? 0, align, strides: st };
  }

  // ---------------------------------------------------------------- the walk

  private walk(d: number, ctx: Ctx): void {
    if (d === this.m.tileFrom) return this.fixup ? this.fixupTile(ctx) : this.emitTile(ctx);
    const l = this.loops[d]!;
    if (l.bind) return this.boundLevel(d, ctx, (c) => this.walk(d + 1, c));
    // the second pass visits each output once: serial reduction loops (the staged one too) do not repeat it
    if (this.fixup && isReduction(this.p, l.var)) return this.walk(d + 1, ctx);
    if (d === this.m.staged) return this.stagedLevel(d, ctx, (dd, c) => this.walk(dd, c));
    return this.serialLevel(d, ctx, (c) => this.walk(d + 1, c));
  }

  private withRange(ctx: Ctx, v: number, r: Range): Ctx {
    const range = ctx.range.slice();
    range[v] = r;
    return { ...ctx, range };
  }

  /** A bound loop: its index is fixed per thread; it narrows its variable's range. */
  private boundLevel(d: number, ctx: Ctx, cont: (c: Ctx) => void): void {
    const b = this.b;
    const l = this.loops[d]!;
    const v = l.var;
    const st = this.steps[d]!;
    const c = loopIterations(l);
    const i = this.idx.get(d)!;
    const r = ctx.range[v]!;
    let next: Range;
    let mayBeEmpty: boolean;
    if (r.kind === 'const') {
      const full = Math.floor(r.value / st);
      // the interior body: this block's index is below the loop's full count (checked at entry)
      if (c <= full || this.interior?.get(d) === full) {
        cont(this.withRange(ctx, v, { kind: 'const', value: st }));
        return;
      }
      const t = b.r();
      const u = b.r();
      b.emit(`mul.lo.s32 ${t}, ${i}, ${st}`);
      b.emit(`sub.s32 ${u}, ${r.value}, ${t}`);
      b.emit(`min.s32 ${u}, ${u}, ${st}`);
      next = { kind: 'reg', reg: u, max: st };
      mayBeEmpty = (c - 1) * st >= r.value;
    } else {
      const t = b.r();
      const u = b.r();
      b.emit(`mul.lo.s32 ${t}, ${i}, ${st}`);
      b.emit(`sub.s32 ${u}, ${r.reg}, ${t}`);
      b.emit(`min.s32 ${u}, ${u}, ${st}`);
      next = { kind: 'reg', reg: u, max: Math.min(st, r.max) };
      mayBeEmpty = true;
    }
    if (mayBeEmpty && ctx.canSkip) {
      const skip = b.label('SKIP');
      const p = b.p();
      b.emit(`setp.le.s32 ${p}, ${next.reg}, 0`);
      b.emit(`@${p} bra ${skip}`);
      cont(this.withRange(ctx, v, next));
      b.place(skip);
    } else {
      cont(this.withRange(ctx, v, next));
    }
  }

  private advanceSrcs(ctx: Ctx, v: number, st: number, times: number): Src[] {
    return ctx.srcs.map((s) => ({ ...s, off: s.off + s.strides[v]! * st * times }));
  }

  /** A serial loop: constant range -> counted loop + constant tail; register range -> run-time loop. */
  private serialLevel(d: number, ctx: Ctx, cont: (c: Ctx) => void): void {
    const l = this.loops[d]!;
    const v = l.var;
    const st = this.steps[d]!;
    const r = ctx.range[v]!;
    if (r.kind === 'const') {
      const full = Math.floor(r.value / st);
      const rem = r.value % st;
      const inner = this.withRange(ctx, v, { kind: 'const', value: st });
      if (full === 1) cont(inner);
      else if (full > 1) this.countedLoop(v, st, full, inner, cont);
      if (rem > 0) {
        cont({ ...this.withRange(ctx, v, { kind: 'const', value: rem }), srcs: this.advanceSrcs(ctx, v, st, full) });
      }
      return;
    }
    this.runtimeLoop(v, st, r, ctx, cont);
  }

  /** Registers that walk with a loop: one per tensor that moves along v. */
  private loopPointers(ctx: Ctx, v: number, st: number): { srcs: Src[]; moves: { t: number; bytes: number }[] } {
    const b = this.b;
    const moves: { t: number; bytes: number }[] = [];
    const srcs = ctx.srcs.map((s, t) => {
      const delta = s.strides[v]! * st;
      if (delta === 0) return s;
      const reg = s.space === 'global' ? b.rd() : b.r();
      b.emit(`mov.${s.space === 'global' ? 'b64' : 'b32'} ${reg}, ${s.reg}`);
      moves.push({ t, bytes: delta * 4 });
      return { ...s, reg, align: gcd(s.align, delta) };
    });
    return { srcs, moves };
  }

  private bump(srcs: Src[], moves: { t: number; bytes: number }[]): void {
    for (const { t, bytes } of moves) {
      const s = srcs[t]!;
      this.b.emit(`add.${s.space === 'global' ? 's64' : 'u32'} ${s.reg}, ${s.reg}, ${bytes}`);
    }
  }

  private countedLoop(v: number, st: number, count: number, ctx: Ctx, cont: (c: Ctx) => void): void {
    const b = this.b;
    const { srcs, moves } = this.loopPointers(ctx, v, st);
    const cnt = b.r();
    const p = b.p();
    const top = b.label('LOOP');
    b.emit(`mov.u32 ${cnt}, 0`);
    b.place(top);
    cont({ ...ctx, srcs });
    this.bump(srcs, moves);
    b.emit(`add.u32 ${cnt}, ${cnt}, 1`);
    b.emit(`setp.lt.u32 ${p}, ${cnt}, ${count}`);
    b.emit(`@${p} bra ${top}`);
  }

  private runtimeLoop(v: number, st: number, r: { reg: string; max: number }, ctx: Ctx, cont: (c: Ctx) => void): void {
    const b = this.b;
    const { srcs, moves } = this.loopPointers(ctx, v, st);
    const x = b.r();
    const p = b.p();
    const q = b.p();
    const top = b.label('LOOP');
    const end = b.label('END');
    b.emit(`mov.u32 ${x}, 0`);
    b.emit(`setp.le.s32 ${p}, ${r.reg}, 0`);
    b.emit(`@${p} bra ${end}`);
    b.place(top);
    const inner = b.r();
    b.emit(`sub.s32 ${inner}, ${r.reg}, ${x}`);
    b.emit(`min.s32 ${inner}, ${inner}, ${st}`);
    cont({ ...this.withRange(ctx, v, { kind: 'reg', reg: inner, max: Math.min(st, r.max) }), srcs });
    this.bump(srcs, moves);
    b.emit(`add.s32 ${x}, ${x}, ${st}`);
    b.emit(`setp.lt.s32 ${q}, ${x}, ${r.reg}`);
    b.emit(`@${q} bra ${top}`);
    b.place(end);
  }

  // ---------------------------------------------------------------- the register tile

  private emitTile(ctx: Ctx): void {
    const tile = this.tileAccumulators(ctx, true);
    if (!tile) return;
    const saved = this.tile;
    this.tile = tile;
    this.tileWalk(this.m.tileFrom, ctx);
    if (this.split) this.combinePartials(tile.accs);
    this.storeTile(ctx, tile, this.program.epilogue?.place === 'store' ? 'epilogue' : 'plain');
    this.tile = saved;
  }

  /** The epilogue pass over one tile's output points: load, apply the ops, store (predicated like the tile's store). */
  private fixupTile(ctx: Ctx): void {
    const tile = this.tileAccumulators(ctx, false);
    if (tile) this.storeTile(ctx, tile, 'fixup');
  }

  /**
   * The tile's accumulators (one per output point, with its validity conditions); started at the
   * combine's identity when `init`. Predicates are emitted where first needed: without staging the
   * compute loads global memory under them, so the load predicates are made here; with staging
   * every operand comes from shared memory and only the store needs them, so they are made there,
   * after the reduction loops, and hold no registers across them.
   */
  private tileAccumulators(ctx: Ctx, init: boolean): TileState | null {
    const b = this.b;
    const p = this.p;
    const predCache = new Map<string, string>();
    const dCache = new Map<string, string>();
    // per output variable: its tuples (static offset + conditions)
    const perVar: { v: number; tuples: { off: number; conds: PointCond[] }[] }[] = [];
    for (let v = 0; v < p.vars.length; v++) {
      if (isReduction(p, v)) continue;
      perVar.push({ v, tuples: this.outputTuples(v, ctx.range[v]!, dCache) });
    }
    // accumulators: the product of the tuples, the first variable outermost
    let combos: { offs: number[]; conds: PointCond[][] }[] = [{ offs: p.vars.map(() => 0), conds: p.vars.map(() => []) }];
    for (const { v, tuples } of perVar) {
      const next: typeof combos = [];
      for (const c of combos) {
        for (const t of tuples) {
          const offs = c.offs.slice();
          const conds = c.conds.slice();
          offs[v] = t.off;
          conds[v] = t.conds;
          next.push({ offs, conds });
        }
      }
      combos = next;
    }
    if (combos.length === 0) return null;
    const start = p.combine === 'max' ? NEG_INF : ZERO;
    const tile: TileState = { accs: [], predCache };
    tile.accs = combos.map((c) => {
      const reg = b.f();
      if (init && ACCUMULATES[p.combine]) b.emit(`mov.f32 ${reg}, ${start}`);
      return { reg, offs: c.offs, varConds: c.conds, loadPreds: [] };
    });
    if (init && !this.stage) {
      for (const acc of tile.accs) {
        acc.loadPreds = p.inputs.map((_, i) => this.andPreds(p.vars.map((__, v) => (this.strides[i + 1]![v] !== 0 ? this.varPred(tile, acc, v) : null)), predCache));
      }
    }
    return tile;
  }

  /** The predicate of an accumulator's tuple along variable v (null: always valid), emitted on first use. */
  private varPred(tile: TileState, acc: Acc, v: number): string | null {
    const regs = acc.varConds[v]!.map((c) => {
      let r = tile.predCache.get(c.key);
      if (!r) {
        r = c.make();
        tile.predCache.set(c.key, r);
      }
      return r;
    });
    return this.andPreds(regs, tile.predCache);
  }

  /**
   * Split reduction: every thread writes its partial accumulators to shared memory (a round of
   * `chunk` accumulators at a time), then the threads whose reduction indices are all 0 add their
   * siblings' partials in a fixed order. Two barriers per round.
   */
  private combinePartials(accs: Acc[]): void {
    const b = this.b;
    const sp = this.split!;
    const T = this.m.threads;
    for (let a0 = 0; a0 < accs.length; a0 += sp.chunk) {
      const round = accs.slice(a0, a0 + sp.chunk);
      round.forEach((acc, k) => b.emit(`st.shared.f32 ${addr(sp.slot, k * T * 4)}, ${acc.reg}`));
      b.emit('bar.sync 0');
      const skip = b.label('PARTIALS');
      b.emit(`@!${sp.rho0} bra ${skip}`);
      round.forEach((acc, k) => {
        for (const o of sp.siblings) {
          const x = b.f();
          b.emit(`ld.shared.f32 ${x}, ${addr(sp.slot, (k * T + o) * 4)}`);
          if (this.p.combine === 'max') b.emit(`max.f32 ${acc.reg}, ${acc.reg}, ${x}`);
          else b.emit(`add.rn.f32 ${acc.reg}, ${acc.reg}, ${x}`);
        }
      });
      b.place(skip);
      b.emit('bar.sync 0');
    }
  }

  private andPreds(preds: (string | null)[], cache: Map<string, string>): string | null {
    const list = [...new Set(preds.filter((x): x is string => x !== null))];
    if (list.length === 0) return null;
    if (list.length === 1) return list[0]!;
    const key = `and:${list.join(',')}`;
    let r = cache.get(key);
    if (!r) {
      let acc = list[0]!;
      for (let k = 1; k < list.length; k++) {
        const q = this.b.p();
        this.b.emit(`and.pred ${q}, ${acc}, ${list[k]!}`);
        acc = q;
      }
      r = acc;
      cache.set(key, r);
    }
    return r;
  }

  /**
   * The points of output variable v inside the tile: every combination of its serial loops in
   * [tileFrom, end), with the conditions that make a point valid (see loopnest/gpu.ts): for each loop
   * with a tail, the offset of the loops from it inwards must stay below the step of the loop of v
   * around it; and the whole offset below the range the tile starts with. Offsets of bound loops are
   * per-thread registers; conditions that do not involve them are decided here. A bound loop's
   * offset reaches its last index (lastIndex: in the interior body, before a whole loop's tail).
   */
  private outputTuples(v: number, entry: Range, dCache: Map<string, string>): { off: number; conds: PointCond[] }[] {
    const b = this.b;
    const chain: number[] = [];
    for (let j = this.m.tileFrom; j < this.n; j++) if (this.loops[j]!.var === v) chain.push(j);
    const serial = chain.filter((j) => !this.loops[j]!.bind);
    const counts = serial.map((j) => loopIterations(this.loops[j]!));
    // dynamic suffix sums and their maxima
    const dMax = (k: number) => chain.slice(k).reduce((a, j) => (this.loops[j]!.bind ? a + this.lastIndex(j) * this.steps[j]! : a), 0);
    const dReg = (k: number): string => {
      const key = `${v}:${k}`;
      let r = dCache.get(key);
      if (!r) {
        const bound = chain.slice(k).filter((j) => this.loops[j]!.bind);
        r = b.r();
        bound.forEach((j, n) => {
          if (n === 0) b.emit(`mul.lo.s32 ${r}, ${this.idx.get(j)!}, ${this.steps[j]!}`);
          else b.emit(`mad.lo.s32 ${r}, ${this.idx.get(j)!}, ${this.steps[j]!}, ${r}`);
        });
        dCache.set(key, r!);
      }
      return r!;
    };
    const out: { off: number; conds: PointCond[] }[] = [];
    const index = serial.map(() => 0);
    const total = counts.reduce((a, c) => a * c, 1);
    for (let it = 0; it < total; it++) {
      let rest = it;
      for (let k = serial.length - 1; k >= 0; k--) {
        index[k] = rest % counts[k]!;
        rest = Math.floor(rest / counts[k]!);
      }
      // static suffix sums per chain position
      const sSuffix = new Array<number>(chain.length + 1).fill(0);
      for (let k = chain.length - 1; k >= 0; k--) {
        const j = chain[k]!;
        const sk = serial.indexOf(j);
        sSuffix[k] = sSuffix[k + 1]! + (sk >= 0 ? index[sk]! * this.steps[j]! : 0);
      }
      const preds: PointCond[] = [];
      let valid = true;
      // (a) the whole offset stays below the entry range
      {
        const s0 = sSuffix[0]!;
        const dm = dMax(0);
        if (entry.kind === 'const') {
          if (s0 >= entry.value) valid = false;
          else if (s0 + dm >= entry.value) {
            const thr = entry.value - s0;
            preds.push({
              key: `a:${v}:${thr}`,
              make: () => {
                const q = b.p();
                b.emit(`setp.lt.s32 ${q}, ${dReg(0)}, ${thr}`);
                return q;
              },
            });
          }
        } else {
          if (s0 >= entry.max) valid = false;
          else {
            // what is left of the range past the bound loops' offset (one register per variable)
            const rr = (): string => {
              if (dm === 0) return entry.reg;
              let q = dCache.get(`rr:${v}`);
              if (!q) {
                q = b.r();
                b.emit(`sub.s32 ${q}, ${entry.reg}, ${dReg(0)}`);
                dCache.set(`rr:${v}`, q);
              }
              return q;
            };
            preds.push({
              key: `ad:${v}:${s0}`,
              make: () => {
                const q = b.p();
                b.emit(`setp.gt.s32 ${q}, ${rr()}, ${s0}`);
                return q;
              },
            });
          }
        }
      }
      // (b) loops with a tail inside the chain
      for (let k = 1; k < chain.length && valid; k++) {
        const j = chain[k]!;
        if (this.loops[j]!.tail === 0) continue;
        const bound = this.steps[chain[k - 1]!]!;
        const sk = sSuffix[k]!;
        const dm = dMax(k);
        if (sk >= bound) valid = false;
        else if (sk + dm >= bound) {
          const thr = bound - sk;
          preds.push({
            key: `b:${v}:${k}:${thr}`,
            make: () => {
              const q = b.p();
              b.emit(`setp.lt.s32 ${q}, ${dReg(k)}, ${thr}`);
              return q;
            },
          });
        }
      }
      if (!valid) continue;
      out.push({ off: sSuffix[0]!, conds: preds });
    }
    return out;
  }

  private tileWalk(d: number, ctx: Ctx): void {
    if (d === this.m.unrollFrom) return this.compute(ctx);
    const l = this.loops[d]!;
    if (l.bind) {
      // output loops: their points' validity is in the tile's predicates; a reduction loop bound to
      // threads has whole ranges (loopnest/gpu.ts), so inside it the range is its step
      if (!isReduction(this.p, l.var)) return this.tileWalk(d + 1, ctx);
      return this.tileWalk(d + 1, this.withRange(ctx, l.var, { kind: 'const', value: this.steps[d]! }));
    }
    if (d === this.m.staged) return this.stagedLevel(d, ctx, (dd, c) => this.tileWalk(dd, c));
    return this.serialLevel(d, ctx, (c) => this.tileWalk(d + 1, c));
  }

  /** Offsets of a reduction variable in the unrolled region for a constant range (exact, tails included). */
  private reductionOffsets(v: number, r: Range): number[] {
    if (r.kind !== 'const') throw new Error(`internal: reduction variable ${this.p.vars[v]!.name} has a run-time range`);
    const chain: number[] = [];
    for (let j = this.m.unrollFrom; j < this.n; j++) if (this.loops[j]!.var === v) chain.push(j);
    const out: number[] = [];
    const rec = (k: number, range: number, base: number) => {
      if (k === chain.length) {
        out.push(base);
        return;
      }
      const st = this.steps[chain[k]!]!;
      // a reduction loop bound to threads: whole ranges (loopnest/gpu.ts), its offset is in the pointers
      if (this.loops[chain[k]!]!.bind) return rec(k + 1, st, base);
      const full = Math.floor(range / st);
      const rem = range % st;
      for (let i = 0; i < full; i++) rec(k + 1, st, base + i * st);
      if (rem > 0) rec(k + 1, rem, base + full * st);
    };
    rec(0, r.value, 0);
    return out;
  }

  /** The fully unrolled body: one group per point of the reduction variables, each updating every accumulator. */
  private compute(ctx: Ctx): void {
    const p = this.p;
    const tile = this.tile!;
    const redVars = p.vars.map((_, v) => v).filter((v) => isReduction(p, v));
    let groups: number[][] = [p.vars.map(() => 0)];
    for (const v of redVars) {
      const offs = this.reductionOffsets(v, ctx.range[v]!);
      const next: number[][] = [];
      for (const g of groups) for (const o of offs) {
        const x = g.slice();
        x[v] = o;
        next.push(x);
      }
      groups = next;
    }
    const nIn = p.inputs.length;
    // operands loaded in earlier groups stay available (a sliding window of registers): a
    // convolution's neighbouring window points read overlapping inputs
    const cache = new Map<string, string>();
    for (const g of groups) {
      // operands: (tensor, element offset, predicate) -> register
      const need = new Map<string, { t: number; off: number; pred: string | null }>();
      const opKeys: string[][] = [];
      for (const acc of tile.accs) {
        const keys: string[] = [];
        for (let i = 0; i < nIn; i++) {
          const t = i + 1;
          const src = ctx.srcs[t]!;
          let off = src.off;
          for (let v = 0; v < p.vars.length; v++) off += src.strides[v]! * (isReduction(p, v) ? g[v]! : acc.offs[v]!);
          if (src.space === 'global' && acc.loadPreds.length === 0) throw new Error('internal: a global operand in a tile without load predicates');
          const pred = src.space === 'global' ? acc.loadPreds[i]! : null;
          const key = `${t}:${off}:${pred ?? ''}`;
          if (!need.has(key) && !cache.has(key)) need.set(key, { t, off, pred });
          keys.push(key);
        }
        opKeys.push(keys);
      }
      const loaded = this.loadOperands(ctx, [...need.entries()]);
      const regs = (k: string): string => {
        const r = loaded.get(k) ?? cache.get(k)!;
        cache.delete(k);
        cache.set(k, r);
        return r;
      };
      tile.accs.forEach((acc, a) => {
        const ops = opKeys[a]!.map(regs);
        this.combineOp(acc.reg, ops);
      });
      while (cache.size > OPERAND_WINDOW) cache.delete(cache.keys().next().value!);
    }
  }

  private combineOp(acc: string, ops: string[]): void {
    const b = this.b;
    switch (this.p.combine) {
      case 'fma': b.emit(`fma.rn.f32 ${acc}, ${ops[0]}, ${ops[1]}, ${acc}`); break;
      case 'sum': b.emit(`add.rn.f32 ${acc}, ${acc}, ${ops[0]}`); break;
      case 'max': b.emit(`max.f32 ${acc}, ${acc}, ${ops[0]}`); break;
      case 'add': b.emit(`add.rn.f32 ${acc}, ${ops[0]}, ${ops[1]}`); break;
      case 'mul': b.emit(`mul.rn.f32 ${acc}, ${ops[0]}, ${ops[1]}`); break;
      case 'relu': b.emit(`max.f32 ${acc}, ${ops[0]}, ${ZERO}`); break;
      case 'copy': b.emit(`mov.f32 ${acc}, ${ops[0]}`); break;
    }
  }

  /** Loads operands, grouping runs of consecutive aligned elements into .v4/.v2 accesses. */
  private loadOperands(ctx: Ctx, need: [string, { t: number; off: number; pred: string | null }][]): Map<string, string> {
    const b = this.b;
    const regs = new Map<string, string>();
    // bucket by tensor and predicate, keep first-seen order of buckets
    const buckets = new Map<string, { t: number; pred: string | null; offs: Map<number, string> }>();
    for (const [key, x] of need) {
      const bk = `${x.t}:${x.pred ?? ''}`;
      let bucket = buckets.get(bk);
      if (!bucket) buckets.set(bk, (bucket = { t: x.t, pred: x.pred, offs: new Map() }));
      bucket.offs.set(x.off, key);
    }
    for (const { t, pred, offs } of buckets.values()) {
      const src = ctx.srcs[t]!;
      const sorted = [...offs.keys()].sort((a, c) => a - c);
      const done = new Set<number>();
      for (const o of sorted) {
        if (done.has(o)) continue;
        let width = 1;
        for (const w of [4, 2]) {
          if (o % w !== 0 || (src.align !== 0 && src.align % w !== 0)) continue;
          let all = true;
          for (let k = 1; k < w; k++) if (!offs.has(o + k) || done.has(o + k)) all = false;
          if (all) { width = w; break; }
        }
        const rs = Array.from({ length: width }, () => b.f());
        for (let k = 0; k < width; k++) {
          done.add(o + k);
          regs.set(offs.get(o + k)!, rs[k]!);
        }
        const space = src.space === 'global' ? 'global.nc' : 'shared';
        const vec = width === 1 ? '' : `.v${width}`;
        const dst = width === 1 ? rs[0]! : `{${rs.join(', ')}}`;
        if (pred) for (const r of rs) b.emit(`mov.f32 ${r}, ${ZERO}`);
        b.emit(`${pred ? `@${pred} ` : ''}ld.${space}${vec}.f32 ${dst}, ${addr(src.reg, o * 4)}`);
      }
    }
    return regs;
  }

  /**
   * The tile's store, predicated per point, four consecutive aligned points as one .v4 access:
   * out = out (+|max) acc for accumulating combines, out = acc otherwise ('plain'); the same with
   * the epilogue applied to the value before it is stored ('epilogue'); or out = epilogue(out), the
   * accumulators unused ('fixup', the second pass).
   */
  private storeTile(ctx: Ctx, tile: TileState, mode: StoreMode): void {
    const p = this.p;
    // rows: runs of accumulators that share the outermost predicated variable's tuple. A row whose
    // tuple may be invalid is skipped by a branch, so each store carries the other variables'
    // predicates only (no and.pred per point, and full rows of an edge tile still store .v4)
    const rowVar = p.vars.findIndex((_, v) => tile.accs.some((a) => a.varConds[v]!.length > 0));
    const rows: Acc[][] = [];
    for (const a of tile.accs) {
      const last = rows[rows.length - 1];
      if (last && rowVar >= 0 && last[0]!.offs[rowVar] === a.offs[rowVar]) last.push(a);
      else if (last && rowVar < 0) last.push(a);
      else rows.push([a]);
    }
    // every predicate a store uses is made before the first branch (a register made in a skipped row would be undefined)
    const storePreds = new Map<Acc, string | null>();
    for (const a of tile.accs) {
      const preds = p.vars.map((_, v) => (v === rowVar ? null : this.varPred(tile, a, v)));
      storePreds.set(a, this.andPreds(this.split ? [...preds, this.split.rho0] : preds, tile.predCache));
    }
    // epilogue operands already loaded in this tile (a bias is shared by the rows of a tile), outside skipped rows
    const operands = new Map<string, string>();
    for (const row of rows) {
      const rowPred = rowVar >= 0 ? this.varPred(tile, row[0]!, rowVar) : null;
      if (!rowPred) {
        this.storeRow(ctx, row, storePreds, mode, operands);
        continue;
      }
      const skip = this.b.label('ROW');
      this.b.emit(`@!${rowPred} bra ${skip}`);
      this.storeRow(ctx, row, storePreds, mode, new Map());
      this.b.place(skip);
    }
  }

  /** One row of the tile's store: four consecutive aligned points with the same predicate as one .v4 access. */
  private storeRow(ctx: Ctx, row: Acc[], preds: Map<Acc, string | null>, mode: StoreMode, operands: Map<string, string>): void {
    const b = this.b;
    const p = this.p;
    const out = ctx.srcs[0]!;
    const accumulate = ACCUMULATES[p.combine];
    const ops = mode === 'plain' ? [] : this.program.epilogue!.ops;
    const items = row.map((a) => {
      let off = out.off;
      for (let v = 0; v < p.vars.length; v++) off += out.strides[v]! * a.offs[v]!;
      return { a, off, pred: preds.get(a)! };
    });
    const byOff = new Map<number, typeof items[number]>();
    for (const it of items) {
      if (byOff.has(it.off)) throw new Error(`internal: two accumulators share output offset ${it.off}`);
      byOff.set(it.off, it);
    }
    const done = new Set<number>();
    for (const it of items) {
      if (done.has(it.off)) continue;
      const o = it.off;
      let width = 1;
      const pureSplit = this.split && it.pred === this.split.rho0;
      if ((it.pred === null || pureSplit) && o % 4 === 0 && (out.align === 0 || out.align % 4 === 0)) {
        let all = true;
        for (let k = 1; k < 4; k++) {
          const x = byOff.get(o + k);
          if (!x || x.pred !== it.pred || done.has(o + k)) all = false;
        }
        if (all) width = 4;
      }
      const group = Array.from({ length: width }, (_, k) => byOff.get(o + k)!);
      group.forEach((g) => done.add(g.off));
      const pred = it.pred;
      const at = pred ? `@${pred} ` : '';
      const a = addr(out.reg, o * 4);
      const vec = width === 1 ? '' : '.v4';
      const list = (regs: string[]) => (regs.length === 1 ? regs[0]! : `{${regs.join(', ')}}`);
      if (this.m.gridReductionLoops.length > 0) {
        // rule 10: this block's share of the reduction, added where other blocks add theirs (one
        // scalar red per point: the vector form needs sm_90, and fp32 kernels target sm_80)
        if (mode !== 'plain') throw new Error('internal: a grid reduction has no epilogue');
        group.forEach((g, k) => b.emit(`${at}red.global.add.f32 ${addr(out.reg, (o + k) * 4)}, ${g.a.reg}`));
        continue;
      }
      let vals: string[];
      if (mode === 'fixup' || accumulate) {
        vals = group.map(() => b.f());
        b.emit(`${at}ld.global${vec}.f32 ${list(vals)}, ${a}`);
        if (mode !== 'fixup') {
          group.forEach((g, k) => {
            if (p.combine === 'max') b.emit(`max.f32 ${vals[k]}, ${vals[k]}, ${g.a.reg}`);
            else b.emit(`add.rn.f32 ${vals[k]}, ${vals[k]}, ${g.a.reg}`);
          });
        }
      } else {
        vals = group.map((g) => g.a.reg);
      }
      if (ops.length > 0) this.applyEpilogue(ctx, ops, group.map((g) => g.a), vals, pred, operands);
      b.emit(`${at}st.global${vec}.f32 ${a}, ${list(vals)}`);
    }
  }

  /**
   * The epilogue on the values of a store group (in place): the bias / residual operands of every
   * lane first (one load each per tile, predicated like the store), then the ops in order.
   */
  private applyEpilogue(ctx: Ctx, ops: readonly EpilogueOp[], accs: Acc[], vals: string[], pred: string | null, loaded: Map<string, string>): void {
    const p = this.p;
    const need = new Map<string, { t: number; off: number; pred: string | null }>();
    const keys: string[][] = [];
    let t = 1 + p.inputs.length;
    for (const e of ops) {
      if (e.kind !== 'bias' && e.kind !== 'residual') continue;
      const src = ctx.srcs[t]!;
      const tensor = t++;
      keys.push(accs.map((a) => {
        let off = src.off;
        for (let v = 0; v < p.vars.length; v++) off += src.strides[v]! * a.offs[v]!;
        const key = `${tensor}:${off}:${pred ?? ''}`;
        if (!loaded.has(key)) need.set(key, { t: tensor, off, pred });
        return key;
      }));
    }
    for (const [key, reg] of this.loadOperands(ctx, [...need.entries()])) loaded.set(key, reg);
    let k = 0;
    for (const e of ops) {
      const operand = e.kind === 'bias' || e.kind === 'residual' ? keys[k++]! : null;
      vals.forEach((x, lane) => this.epilogueOp(e, x, operand ? loaded.get(operand[lane]!)! : ''));
    }
  }

  /** One epilogue op on register x (in place); `operand` is the bias / residual value's register. */
  private epilogueOp(e: EpilogueOp, x: string, operand: string): void {
    emitEpilogueOp(this.b, e, x, operand);
  }

  // ---------------------------------------------------------------- shared-memory staging

  /**
   * The staged loop: per iteration, every input's box is copied to shared memory by all threads
   * (the copy plans of this entry state), then the body reads it there. Double-buffered: the loop
   * is unrolled by two, one copy per buffer; each half loads the next box into registers before its
   * body and stores it to the other buffer after it, with one barrier per iteration.
   */
  private stagedLevel(d: number, ctx: Ctx, cont: (d: number, c: Ctx) => void): void {
    const b = this.b;
    const layout = this.stage!;
    const l = this.loops[d]!;
    const v = l.var;
    const st = this.steps[d]!;
    const r = ctx.range[v]!;
    if (r.kind !== 'const') throw new Error('internal: the staged loop has a run-time range');
    const full = Math.floor(r.value / st);
    const rem = r.value % st;
    const inputs = layout.tensors;
    const key = stagedInstanceKey(this.p.vars.flatMap((_, x) => (isReduction(this.p, x) ? [this.constRange(ctx.range[x]!)] : [])), inputs.map((tl) => ctx.srcs[tl.tensor]!.off));
    const instance = (this.interior ? layout.interior! : layout.instances).find((x) => x.key === key);
    if (!instance) throw new Error(`internal: no copy plans for the staged loop's entry state ${key}`);
    // block origin pointers
    const origin = inputs.map((tl) => {
      const src = ctx.srcs[tl.tensor]!;
      let reg = src.reg;
      const toff = this.threadOff64[tl.tensor];
      if (toff) {
        const q = b.rd();
        b.emit(`sub.s64 ${q}, ${reg}, ${toff}`);
        reg = q;
      }
      return { reg, off: src.off };
    });
    const advance = inputs.map((tl) => st * this.strides[tl.tensor]![v]! * 4);
    const inner = (range: number, buffer: number): Ctx => {
      const srcs = ctx.srcs.map((s, t): Src => {
        const tl = inputs.find((x) => x.tensor === t);
        if (!tl) return s;
        return { space: 'shared', reg: this.sThread[t]!, off: (buffer * layout.bufferBytes) / 4, align: this.sAlign[t]!, strides: tl.sv };
      });
      return { range: this.withRange(ctx, v, { kind: 'const', value: range }).range, srcs, canSkip: this.m.reductionThreads === 1 };
    };
    const bufBytes = layout.bufferBytes;
    if (full > 0) {
      const plans = instance.full!.map((pl) => this.copyItems(pl));
      const copy = this.copyStart(plans, origin.map((o) => o.reg), origin.map((o) => o.off));
      this.copyLoad(copy);
      this.copyStore(copy, 0);
      b.emit('bar.sync 0');
      if (full === 1) {
        cont(d + 1, inner(st, 0));
        b.emit('bar.sync 0');
      } else if (!layout.double) {
        // single buffer: barrier, load, store, barrier, body
        const cnt = b.r();
        const pr = b.p();
        const top = b.label('STAGE');
        const done = b.label('STAGED');
        b.emit(`mov.u32 ${cnt}, 0`);
        b.place(top);
        cont(d + 1, inner(st, 0));
        b.emit('bar.sync 0');
        b.emit(`add.u32 ${cnt}, ${cnt}, 1`);
        b.emit(`setp.lt.u32 ${pr}, ${cnt}, ${full}`);
        b.emit(`@!${pr} bra ${done}`);
        this.copyAdvance(copy, advance);
        this.copyLoad(copy);
        this.copyStore(copy, 0);
        b.emit('bar.sync 0');
        b.emit(`bra ${top}`);
        b.place(done);
      } else {
        const cnt = b.r();
        const top = b.label('STAGE');
        const done = b.label('STAGED');
        b.emit(`mov.u32 ${cnt}, 0`);
        b.place(top);
        for (const half of [0, 1]) {
          const next = b.r();
          const more = b.p();
          const noLoad = b.label('NOLOAD');
          const noStore = b.label('NOSTORE');
          b.emit(`add.u32 ${next}, ${cnt}, ${half + 1}`);
          b.emit(`setp.lt.u32 ${more}, ${next}, ${full}`);
          b.emit(`@!${more} bra ${noLoad}`);
          this.copyAdvance(copy, advance);
          this.copyLoad(copy);
          b.place(noLoad);
          cont(d + 1, inner(st, half));
          b.emit(`@!${more} bra ${noStore}`);
          this.copyStore(copy, (1 - half) * bufBytes);
          b.place(noStore);
          b.emit('bar.sync 0');
          if (half === 0) b.emit(`@!${more} bra ${done}`);
          else {
            b.emit(`mov.u32 ${cnt}, ${next}`);
            b.emit(`@${more} bra ${top}`);
          }
        }
        b.place(done);
      }
    }
    if (rem > 0) {
      const offs = origin.map((o, k) => o.off + full * st * this.strides[inputs[k]!.tensor]![v]!);
      const plans = instance.tail!.map((pl) => this.copyItems(pl));
      const copy = this.copyStart(plans, origin.map((o) => o.reg), offs);
      this.copyLoad(copy);
      this.copyStore(copy, 0);
      b.emit('bar.sync 0');
      cont(d + 1, inner(rem, 0));
      b.emit('bar.sync 0');
    }
  }

  /** A range the walk knows to be constant (NaN otherwise: no entry state has it). */
  private constRange(r: Range): number {
    return r.kind === 'const' ? r.value : NaN;
  }

  /** A copy plan's per-thread items: each item's global and shared offsets, computed once before the loop. */
  private copyItems(plan: CopyPlan): CopyRegs {
    const b = this.b;
    const tl = this.stage!.tensors[plan.region]!;
    if (plan.looped) return { plan, tl, items: [] };
    const { box, gstride, width, perRow, items: nv } = plan;
    const nd = box.length;
    const T = this.m.threads;
    const items: CopyItem[] = [];
    const smemBase = b.r();
    b.emit(`mov.u32 ${smemBase}, smem`);
    for (let k = 0; k < plan.perThread; k++) {
      const q = b.r();
      b.emit(`add.u32 ${q}, ${this.tidLinear}, ${k * T}`);
      let valid: string | null = null;
      if ((k + 1) * T > nv) {
        valid = b.p();
        b.emit(`setp.lt.u32 ${valid}, ${q}, ${nv}`);
      }
      // coordinates, innermost first
      const coords: string[] = new Array(nd);
      let rest = q;
      for (let d = nd - 1; d >= 0; d--) {
        const n = d === nd - 1 ? perRow : box[d]!;
        if (d === 0) {
          coords[d] = rest;
          break;
        }
        const c = b.r();
        const r2 = b.r();
        b.emit(`rem.u32 ${c}, ${rest}, ${n}`);
        b.emit(`div.u32 ${r2}, ${rest}, ${n}`);
        coords[d] = c;
        rest = r2;
      }
      const g = b.r();
      const s = b.r();
      b.emit(`mul.lo.u32 ${g}, ${coords[nd - 1]!}, ${width * 4}`);
      b.emit(`mul.lo.u32 ${s}, ${coords[nd - 1]!}, ${width * tl.sstride[nd - 1]! * 4}`);
      for (let d = nd - 2; d >= 0; d--) {
        b.emit(`mad.lo.u32 ${g}, ${coords[d]!}, ${gstride[d]! * 4}, ${g}`);
        b.emit(`mad.lo.u32 ${s}, ${coords[d]!}, ${tl.sstride[d]! * 4}, ${s}`);
      }
      const g64 = b.rd();
      b.emit(`cvt.u64.u32 ${g64}, ${g}`);
      const sAbs = b.r();
      b.emit(`add.u32 ${sAbs}, ${s}, ${tl.regionOffset}`);
      b.emit(`add.u32 ${sAbs}, ${sAbs}, ${smemBase}`);
      items.push({ g64, sAbs, valid });
    }
    return { plan, tl, items };
  }

  /**
   * Starts a copy: registers for the values, and the pointers it advances: each item keeps its own
   * global pointer (a looped plan keeps the box origin); with a bounds check, one pointer per plan
   * to the last item inside the tensor, where items past the end are clamped.
   */
  private copyStart(plans: CopyRegs[], origins: string[], offs: number[]): CopyState {
    const b = this.b;
    const vals = plans.map((pl) => pl.items.map(() => Array.from({ length: pl.plan.width }, () => b.f())));
    const cur: string[] = [];
    const itemPtrs: string[][] = [];
    const ends: string[] = [];
    plans.forEach((pl, k) => {
      if (pl.plan.looped) {
        const c = b.rd();
        b.emit(`mov.b64 ${c}, ${origins[k]!}`);
        cur.push(c);
        itemPtrs.push([]);
        ends.push('');
        return;
      }
      cur.push('');
      itemPtrs.push(pl.items.map((it) => {
        const a = b.rd();
        b.emit(`add.s64 ${a}, ${origins[k]!}, ${it.g64}`);
        return a;
      }));
      if (pl.plan.check) {
        // an item at pointer a reads elements (a - base) / 4 + off ..: the last one inside starts at base + 4 (elements - width - off)
        const e = b.rd();
        b.emit(`add.s64 ${e}, ${this.tensorBase[pl.tl.tensor]!}, ${4 * (pl.plan.elements - pl.plan.width - offs[k]!)}`);
        ends.push(e);
      } else ends.push('');
    });
    return { plans, vals, cur, itemPtrs, ends, offs };
  }

  private copyAdvance(c: CopyState, bytes: number[]): void {
    c.plans.forEach((pl, k) => {
      if (bytes[k] === 0) return;
      const regs = pl.plan.looped ? [c.cur[k]!] : c.itemPtrs[k]!;
      for (const r of regs) this.b.emit(`add.s64 ${r}, ${r}, ${bytes[k]}`);
    });
  }

  private copyLoad(c: CopyState): void {
    const b = this.b;
    c.plans.forEach((pl, k) => {
      if (pl.plan.looped) return;
      const off = c.offs[k]!;
      pl.items.forEach((it, i) => {
        const regs = c.vals[k]![i]!;
        const pred = it.valid;
        let a = c.itemPtrs[k]![i]!;
        if (pl.plan.check) {
          // past the tensor's end, read its last item instead: those box positions only feed output
          // points that are never stored (a predicate here costs registers across the whole loop)
          const q = b.rd();
          b.emit(`min.u64 ${q}, ${a}, ${c.ends[k]!}`);
          a = q;
        }
        if (pred) for (const r of regs) b.emit(`mov.f32 ${r}, ${ZERO}`);
        const dst = regs.length === 1 ? regs[0]! : `{${regs.join(', ')}}`;
        b.emit(`${pred ? `@${pred} ` : ''}ld.global.nc${regs.length === 1 ? '' : `.v${regs.length}`}.f32 ${dst}, ${addr(a, off * 4)}`);
      });
    });
  }

  /** Element offset of a box origin in its tensor: (ptr - base) / 4 + off. */
  private originElements(ptr: string, t: number, off: number): string {
    const b = this.b;
    const diff = b.rd();
    b.emit(`sub.s64 ${diff}, ${ptr}, ${this.tensorBase[t]!}`);
    const r = b.r();
    b.emit(`cvt.u32.u64 ${r}, ${diff}`);
    b.emit(`shr.u32 ${r}, ${r}, 2`);
    if (off) b.emit(`add.u32 ${r}, ${r}, ${off}`);
    return r;
  }

  /** A looped copy of a whole box: for (q = thread; q < items; q += threads) shared[q] = global[q]. */
  private copyLooped(pl: CopyRegs, ptr: string, off: number, bufBytes: number): void {
    const b = this.b;
    const L = pl.plan;
    const nd = L.box.length;
    const T = this.m.threads;
    const originElems = pl.plan.check ? this.originElements(ptr, pl.tl.tensor, off) : null;
    const smemBase = b.r();
    b.emit(`mov.u32 ${smemBase}, smem`);
    const q = b.r();
    const p = b.p();
    const top = b.label('COPY');
    const done = b.label('COPIED');
    b.emit(`mov.u32 ${q}, ${this.tidLinear}`);
    b.emit(`setp.ge.u32 ${p}, ${q}, ${L.items}`);
    b.emit(`@${p} bra ${done}`);
    b.place(top);
    const coords: string[] = new Array(nd);
    let rest = q;
    for (let d = nd - 1; d >= 0; d--) {
      if (d === 0) {
        coords[d] = rest;
        break;
      }
      const n = d === nd - 1 ? L.perRow : L.box[d]!;
      const c = b.r();
      const r2 = b.r();
      b.emit(`rem.u32 ${c}, ${rest}, ${n}`);
      b.emit(`div.u32 ${r2}, ${rest}, ${n}`);
      coords[d] = c;
      rest = r2;
    }
    const g = b.r();
    const sh = b.r();
    b.emit(`mul.lo.u32 ${g}, ${coords[nd - 1]!}, ${L.width * 4}`);
    b.emit(`mul.lo.u32 ${sh}, ${coords[nd - 1]!}, ${L.width * pl.tl.sstride[nd - 1]! * 4}`);
    for (let d = nd - 2; d >= 0; d--) {
      b.emit(`mad.lo.u32 ${g}, ${coords[d]!}, ${L.gstride[d]! * 4}, ${g}`);
      b.emit(`mad.lo.u32 ${sh}, ${coords[d]!}, ${pl.tl.sstride[d]! * 4}, ${sh}`);
    }
    b.emit(`add.u32 ${sh}, ${sh}, ${smemBase}`);
    const g64 = b.rd();
    const a = b.rd();
    b.emit(`cvt.u64.u32 ${g64}, ${g}`);
    b.emit(`add.s64 ${a}, ${ptr}, ${g64}`);
    const regs = Array.from({ length: pl.plan.width }, () => b.f());
    let pred: string | null = null;
    if (originElems) {
      const e = b.r();
      pred = b.p();
      b.emit(`shr.u32 ${e}, ${g}, 2`);
      b.emit(`add.u32 ${e}, ${e}, ${originElems}`);
      b.emit(`setp.lt.u32 ${pred}, ${e}, ${L.elements}`);
      for (const r of regs) b.emit(`mov.f32 ${r}, ${ZERO}`);
    }
    const dst = regs.length === 1 ? regs[0]! : `{${regs.join(', ')}}`;
    b.emit(`${pred ? `@${pred} ` : ''}ld.global.nc${regs.length === 1 ? '' : `.v${regs.length}`}.f32 ${dst}, ${addr(a, off * 4)}`);
    const imm = bufBytes + pl.tl.regionOffset;
    if (pl.plan.naturalInner) {
      b.emit(`st.shared${regs.length === 1 ? '' : `.v${regs.length}`}.f32 ${addr(sh, imm)}, ${dst}`);
    } else {
      regs.forEach((r, lane) => b.emit(`st.shared.f32 ${addr(sh, imm + lane * pl.plan.innerStride * 4)}, ${r}`));
    }
    b.emit(`add.u32 ${q}, ${q}, ${T}`);
    b.emit(`setp.lt.u32 ${p}, ${q}, ${L.items}`);
    b.emit(`@${p} bra ${top}`);
    b.place(done);
  }

  private copyStore(c: CopyState, bufBytes: number): void {
    const b = this.b;
    c.plans.forEach((pl, k) => {
      if (pl.plan.looped) {
        this.copyLooped(pl, c.cur[k]!, c.offs[k]!, bufBytes);
        return;
      }
      pl.items.forEach((it, i) => {
        const regs = c.vals[k]![i]!;
        const at = it.valid ? `@${it.valid} ` : '';
        if (pl.plan.naturalInner) {
          const src = regs.length === 1 ? regs[0]! : `{${regs.join(', ')}}`;
          b.emit(`${at}st.shared${regs.length === 1 ? '' : `.v${regs.length}`}.f32 ${addr(it.sAbs, bufBytes)}, ${src}`);
        } else {
          regs.forEach((r, lane) => b.emit(`${at}st.shared.f32 ${addr(it.sAbs, bufBytes + lane * pl.plan.innerStride * 4)}, ${r}`));
        }
      });
    });
  }
}

interface CopyState {
  plans: CopyRegs[];
  vals: string[][][];
  /** per plan: the box origin pointer (looped plans) */
  cur: string[];
  /** per plan, per item: the item's global pointer (plans copied from registers) */
  itemPtrs: string[][];
  /** per plan with a bounds check: the last pointer an item may start at (pointers past it are clamped to it) */
  ends: string[];
  /** per plan: static element offset of the origin */
  offs: number[];
}

interface CopyItem {
  /** byte offset of the item in the box, global (u64) */
  g64: string;
  /** shared byte address of the item in buffer 0 (u32) */
  sAbs: string;
  /** the item exists (the box does not divide among the threads evenly) */
  valid: string | null;
}

/** A copy plan with the registers of its per-thread items (none for looped plans). */
interface CopyRegs {
  plan: CopyPlan;
  tl: SharedTensor;
  items: CopyItem[];
}
