/**
 * A schedule: the loops of a problem, outermost first, plus a cursor. Each variable's loops, read
 * outer to inner, cover its extent exactly: a loop of `size` full iterations of `step` elements
 * (step = extent of the next inner loop of the same variable, 1 for the innermost) plus a tail of
 * `tail` < step elements, so extent = size * step + tail. Tails propagate: inside the tail of an outer
 * loop, the inner loops of that variable cover only the remainder. Schedules are immutable values.
 */
import { fail } from './errors.ts';
import { type Problem, varIndex } from './problem.ts';

/** GPU mapping of a loop (read by the cuda target only; CPU targets ignore it). */
export type LoopBinding = 'block' | 'thread';

export interface Loop {
  readonly var: number;
  readonly size: number;
  readonly tail: number;
  readonly bind?: LoopBinding;
  /** cuda: stage the inputs this loop's body reads into shared memory, once per iteration (text suffix `s`). */
  readonly shared?: boolean;
  /**
   * cuda tensor cores: the staged loop's pipeline depth, the shared buffers its k-tiles cycle
   * through (text `s3`: 3 stages); absent = the lowering's choice (as many as fit, at most 4).
   */
  readonly stages?: number;
  /** CPU: the loop's iterations are split among threads (text suffix `p`); see parallelBandError. */
  readonly parallel?: boolean;
}

/**
 * Most loops a schedule may have. Lowering and code generation recurse once per loop, so a
 * schedule of thousands of loops would overflow the stack; 64 is far past any useful nest (every
 * target's search keeps to 10-20).
 */
export const MAX_SCHEDULE_LOOPS = 64;

/** Deepest cp.async pipeline a staged loop may ask for (the tensor-core lowering's own limit). */
export const MAX_PIPELINE_STAGES = 8;

export class Schedule {
  readonly problem: Problem;
  readonly loops: readonly Loop[];
  readonly cursor: number;
  /** elements of the loop's variable one full iteration covers */
  readonly steps: readonly number[];

  constructor(problem: Problem, loops: readonly Loop[], cursor = 0) {
    if (loops.length > MAX_SCHEDULE_LOOPS) fail(tooManyLoops(loops.length));
    this.problem = problem;
    this.loops = Object.freeze(loops.map((l) => Object.freeze({ ...l })));
    this.steps = Object.freeze(computeSteps(problem, this.loops));
    const band = parallelBandError(problem, this.loops);
    if (band) fail(band);
    if (!Number.isInteger(cursor) || cursor < 0 || cursor >= loops.length) {
      fail(`cursor ${cursor} is outside the ${loops.length} loops`);
    }
    this.cursor = cursor;
    Object.freeze(this);
  }

  /** LoopTune's default: one loop per variable, output variables outer, reductions inner, in declaration order. */
  static initial(problem: Problem): Schedule {
    const outVars = new Set(problem.output.index.flatMap((ix) => ix.terms.map((t) => t.var)));
    const order = [
      ...problem.vars.map((_, i) => i).filter((i) => outVars.has(i)),
      ...problem.vars.map((_, i) => i).filter((i) => !outVars.has(i)),
    ];
    return new Schedule(problem, order.map((v) => ({ var: v, size: problem.vars[v]!.extent, tail: 0 })));
  }

  /** Parses the textual form, e.g. "m:6r4 n:60 k:70 m:16" (outermost first, var:size or var:sizerTAIL). */
  static parse(problem: Problem, text: string, cursor = 0): Schedule {
    const tokens = text.trim().split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) fail('empty schedule (expected loops such as "m:64 n:4 k:256 m:4 n:64")');
    if (tokens.length > MAX_SCHEDULE_LOOPS) fail(tooManyLoops(tokens.length));
    const loops = tokens.map((tok): Loop => {
      const m = /^([A-Za-z_]\w*):(\d+)(?:r(\d+))?([bt])?(s(\d+)?)?(p)?$/.exec(tok);
      if (!m) fail(`cannot read loop '${tok}' (expected var:size or var:sizerTAIL, e.g. m:6r4, with a suffix p for a parallel loop)`);
      const size = Number(m[2]);
      if (size < 1) fail(`loop '${tok}' must have a size of at least 1`);
      const bind = m[4] === 'b' ? 'block' : m[4] === 't' ? 'thread' : undefined;
      const stages = m[6] === undefined ? undefined : Number(m[6]);
      if (stages !== undefined && (stages < 2 || stages > MAX_PIPELINE_STAGES)) fail(`loop '${tok}': a pipeline has 2 to ${MAX_PIPELINE_STAGES} stages`);
      return {
        var: varIndex(problem, m[1]!), size, tail: m[3] === undefined ? 0 : Number(m[3]),
        ...(bind ? { bind } : {}), ...(m[5] ? { shared: true } : {}), ...(stages !== undefined ? { stages } : {}), ...(m[7] ? { parallel: true } : {}),
      };
    });
    return new Schedule(problem, loops, Math.min(cursor, loops.length - 1));
  }

  /** Loops outermost first as "var:size" or "var:sizerTAIL" (+ "b"/"t" for GPU bindings, "s" for shared staging, "p" for parallel). */
  text(): string {
    return this.loops.map((l) => loopText(this.problem, l)).join(' ');
  }

  toString(): string {
    return this.text();
  }

  /** Stable structural hash of the loops (not the cursor: it does not change the code). */
  hash(): string {
    return fnv1a64(this.text());
  }

  extent(i: number): number {
    const l = this.loops[i]!;
    return l.size * this.steps[i]! + l.tail;
  }

  withCursor(cursor: number): Schedule {
    return new Schedule(this.problem, this.loops, cursor);
  }

  withLoops(loops: readonly Loop[], cursor: number): Schedule {
    return new Schedule(this.problem, loops, cursor);
  }

  equals(other: Schedule): boolean {
    return this.text() === other.text();
  }
}

function tooManyLoops(count: number): string {
  return `a schedule has at most ${MAX_SCHEDULE_LOOPS} loops, got ${count}`;
}

export function loopText(problem: Problem, l: Loop): string {
  const name = problem.vars[l.var]!.name;
  const bind = l.bind === 'block' ? 'b' : l.bind === 'thread' ? 't' : '';
  return `${name}:${l.size}${l.tail > 0 ? `r${l.tail}` : ''}${bind}${l.shared ? `s${l.stages ?? ''}` : ''}${l.parallel ? 'p' : ''}`;
}

/** Positions of the parallel loops (the band), outermost first; empty for a serial nest. */
export function parallelBand(loops: readonly Loop[]): number[] {
  return loops.flatMap((l, i) => (l.parallel ? [i] : []));
}

/**
 * Why these loops cannot carry their parallel annotations, or undefined when they can. Threads
 * must write disjoint outputs, so a parallel loop runs over an output variable (never a reduction);
 * the parallel loops form one band of adjacent loops (collapsed: their iterations, tails counted
 * as one, are numbered together and split into one contiguous range per thread), with at most one
 * loop per variable (so the band's iteration space is a rectangle); the innermost loop stays serial
 * (the register tile lives below the band); and a parallel loop is not bound to GPU blocks/threads.
 */
export function parallelBandError(problem: Problem, loops: readonly Loop[]): string | undefined {
  const band = parallelBand(loops);
  if (band.length === 0) return undefined;
  const outVars = new Set(problem.output.index.flatMap((ix) => ix.terms.map((t) => t.var)));
  for (const i of band) {
    const l = loops[i]!;
    const text = loopText(problem, l);
    if (!outVars.has(l.var)) return `loop '${text}' runs over the reduction variable ${problem.vars[l.var]!.name}; threads would add into the same outputs, so only output loops can be parallel`;
    if (l.bind || l.shared) return `loop '${text}' is mapped to the GPU and cannot also be parallel`;
  }
  if (band[band.length - 1]! - band[0]! !== band.length - 1) return 'the parallel loops must be adjacent (one band; got a serial loop between parallel ones)';
  const vars = band.map((i) => loops[i]!.var);
  if (new Set(vars).size !== vars.length) return `a parallel band has at most one loop per variable (${problem.vars[vars.find((v, j) => vars.indexOf(v) !== j)!]!.name} appears twice)`;
  if (band[band.length - 1] === loops.length - 1) return 'the innermost loop cannot be parallel (the register tile lives below the parallel band)';
  const above = loops.slice(0, band[0]).find((l) => !outVars.has(l.var));
  if (above && (problem.epilogue ?? []).length > 0) {
    return `loop '${loopText(problem, above)}' runs over the reduction variable ${problem.vars[above.var]!.name} above the parallel band; with an epilogue each thread finishes its outputs inside the band, so reductions must run inside it`;
  }
  return undefined;
}

function computeSteps(problem: Problem, loops: readonly Loop[]): number[] {
  const steps = new Array<number>(loops.length).fill(1);
  const innerExtent = new Map<number, number>();
  for (let i = loops.length - 1; i >= 0; i--) {
    const l = loops[i]!;
    if (!Number.isInteger(l.var) || l.var < 0 || l.var >= problem.vars.length) fail(`loop ${i} names no variable of ${problem.op}`);
    const step = innerExtent.get(l.var) ?? 1;
    const text = loopText(problem, l);
    if (!Number.isInteger(l.size) || l.size < 1) fail(`loop '${text}' must have a size of at least 1`);
    if (!Number.isInteger(l.tail) || l.tail < 0 || l.tail >= step) {
      fail(step === 1
        ? `loop '${text}' is the innermost loop of ${problem.vars[l.var]!.name} and cannot have a tail`
        : `tail ${l.tail} of loop '${text}' must be smaller than its step ${step}`);
    }
    steps[i] = step;
    innerExtent.set(l.var, l.size * step + l.tail);
  }
  problem.vars.forEach((v, i) => {
    const covered = innerExtent.get(i);
    if (covered === undefined) fail(`variable ${v.name} has no loop in the schedule`);
    if (covered !== v.extent) fail(`the loops of ${v.name} cover ${covered} elements but ${problem.spec} has ${v.name}=${v.extent}`);
  });
  return steps;
}

function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * prime) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}
