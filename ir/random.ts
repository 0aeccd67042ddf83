/**
 * Seeded random problems and schedules, for property tests, the differential fuzz and random
 * search. Sizes are small so that the interpreter stays fast, and include 1s and odd numbers.
 */
import { parseProblem } from './spec.ts';
import type { Problem } from './problem.ts';
import { parallelBandError, Schedule } from './schedule.ts';
import { applyAction } from './transforms.ts';

/**
 * mulberry32: small, fast, good enough for test cases and search. `state` is public so that a
 * checkpoint can store it and a resumed run draws exactly the numbers it would have drawn.
 */
export class Rng {
  state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** uniform in [0, 1) */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

export const RANDOM_OPS = [
  'matmul', 'bmm', 'conv1d', 'conv2d', 'conv3d', 'maxpool1d', 'maxpool2d', 'maxpool3d', 'add', 'mul', 'relu', 'reduce', 'copy', 'transpose',
] as const;

/** A random small problem of the given op (or any op); `scale` bounds its sizes. */
export function randomProblem(rng: Rng, op: string = rng.pick(RANDOM_OPS), scale = 1): Problem {
  const size = (max: number) => (rng.next() < 0.1 ? 1 : rng.int(1, Math.max(1, Math.round(max * scale))));
  const shape = (rank: number, max: number) => Array.from({ length: rank }, () => size(max)).join('x');
  const stride = rng.next() < 0.7 ? 1 : rng.int(2, 3);
  switch (op) {
    case 'matmul': return parseProblem(`matmul ${size(40)}x${size(40)}x${size(40)}`);
    case 'bmm': return parseProblem(`bmm b${size(3)} m${size(20)} n${size(20)} k${size(20)}`);
    case 'conv1d': {
      const s = size(5);
      const g = convGroups(rng, size, 6, 6);
      return parseProblem(`conv1d n${size(2)} c${g.c} w${g.span(s) + size(20)} k${g.k} s${s} stride${stride}${g.options}`);
    }
    case 'conv2d': {
      const r = size(3), s = size(3);
      const g = convGroups(rng, size, 5, 5);
      return parseProblem(`conv2d n${size(2)} c${g.c} h${g.span(r) + size(8)} w${g.span(s) + size(12)} k${g.k} r${r} s${s} stride${stride}${g.options}`);
    }
    case 'conv3d': {
      const t = size(2), r = size(2), s = size(3);
      const g = convGroups(rng, size, 3, 3);
      return parseProblem(`conv3d n1 c${g.c} d${g.span(t) + size(4)} h${g.span(r) + size(4)} w${g.span(s) + size(6)} k${g.k} t${t} r${r} s${s} stride${stride}${g.options}`);
    }
    // pools: strides 1-3 equally often (real pools mostly stride as far as their window), a quarter dilated
    case 'maxpool1d': {
      const s = size(5);
      const p = poolOptions(rng);
      return parseProblem(`maxpool1d n${size(2)} c${size(6)} w${p.span(s) + size(20)} s${s}${p.options}`);
    }
    case 'maxpool2d': {
      const r = size(3), s = size(3);
      const p = poolOptions(rng);
      return parseProblem(`maxpool2d n${size(2)} c${size(6)} h${p.span(r) + size(8)} w${p.span(s) + size(12)} r${r} s${s}${p.options}`);
    }
    case 'maxpool3d': {
      const t = size(2), r = size(3), s = size(3);
      const p = poolOptions(rng);
      return parseProblem(`maxpool3d n1 c${size(4)} d${p.span(t) + size(4)} h${p.span(r) + size(5)} w${p.span(s) + size(7)} t${t} r${r} s${s}${p.options}`);
    }
    case 'reduce': {
      const rank = rng.int(1, 3);
      return parseProblem(`reduce ${shape(rank, 24)} axis${rng.int(0, rank - 1)}`);
    }
    case 'transpose': return parseProblem(`transpose ${shape(2, 40)}`);
    default: return parseProblem(`${op} ${shape(rng.int(1, 3), 30)}`);
  }
}

/**
 * Channels, groups and dilation of a random convolution: a third are grouped (2-4 groups, 2 in 5 of
 * those depthwise, with a channel multiplier of 1 or 2), a quarter dilated by 2, the rest plain with
 * c up to cMax and k up to kMax. `span` is the input extent a window of that size covers.
 */
function convGroups(rng: Rng, size: (max: number) => number, cMax: number, kMax: number) {
  const groups = rng.next() < 1 / 3 ? rng.int(2, 4) : 1;
  const depthwise = groups > 1 && rng.next() < 0.4;
  const dilation = rng.next() < 0.25 ? 2 : 1;
  const c = groups === 1 ? size(cMax) : depthwise ? groups : groups * size(3);
  const k = groups === 1 ? size(kMax) : depthwise ? groups * rng.int(1, 2) : groups * size(3);
  return {
    c, k,
    span: (window: number) => dilation * (window - 1) + 1,
    options: `${groups > 1 ? ` groups${groups}` : ''}${dilation > 1 ? ` dilation${dilation}` : ''}`,
  };
}

/** Stride (1-3) and dilation (2 in a quarter of the draws) of a random max pool, as spec options. */
function poolOptions(rng: Rng) {
  const stride = rng.int(1, 3);
  const dilation = rng.next() < 0.25 ? 2 : 1;
  return {
    span: (window: number) => dilation * (window - 1) + 1,
    options: ` stride${stride}${dilation > 1 ? ` dilation${dilation}` : ''}`,
  };
}

/** Ops of the layer fuzz: every op, plus average pools (padding and epilogues drawn on top). */
export const LAYER_OPS = [...RANDOM_OPS, 'avgpool1d', 'avgpool2d', 'avgpool3d'] as const;

/** Epilogue tokens a random layer draws from (bias only where the op has channels). */
const RANDOM_EPILOGUES = ['bias', 'relu', 'relu6', 'clip-0.5,0.75', 'sigmoid', 'gelu', 'residual', 'scale0.5'];

/**
 * A random small layer: randomProblem's problem of `op` with, for convs and pools, random padding
 * (each side below the window span, in 3 of 5 draws) and an output border (1 in 5), and for
 * every op a random epilogue chain of 1-3 ops (in 4 of 5 draws; bias where the op has channels).
 */
export function randomLayer(rng: Rng, op: string = rng.pick(LAYER_OPS), scale = 1): Problem {
  const avg = op.startsWith('avgpool');
  const base = randomProblem(rng, avg ? op.replace('avg', 'max') : op, scale);
  let spec = avg ? base.spec.replace('maxpool', 'avgpool') : base.spec;
  const sliding = base.op.startsWith('conv') || base.op.startsWith('maxpool');
  if (sliding) {
    // the input's spatial index is out*stride + window*dilation: the window variable's coefficient
    const spans = base.inputs[0]!.index.slice(2).map((ix) => {
      const w = ix.terms[ix.terms.length - 1]!;
      return w.coef * (base.vars[w.var]!.extent - 1) + 1;
    });
    if (rng.next() < 0.6) {
      const pads = [...spans, ...spans].map((span) => rng.int(0, Math.min(span - 1, 2)));
      spec += ` pad${pads.join(',')}`;
    }
    if (rng.next() < 0.2) spec += ` outpad${rng.int(1, 2)}`;
  }
  if (rng.next() < 0.8) {
    const channels = base.op.startsWith('conv') || base.op === 'matmul' || base.op === 'bmm';
    const pool = RANDOM_EPILOGUES.filter((e) => e !== 'bias' || channels);
    const chain: string[] = [];
    for (let n = rng.int(1, 3); chain.length < n;) {
      const e = rng.pick(pool);
      if ((e === 'bias' || e === 'residual') && chain.includes(e)) continue;
      chain.push(e);
    }
    spec += chain.map((e) => ` +${e}`).join('');
  }
  return parseProblem(spec);
}

export const DEFAULT_ACTIONS = ['up', 'down', 'swap_up', 'swap_down', 'split_2', 'split_3', 'split_4', 'split_8', 'split_16', 'merge'] as const;

/** A schedule reached by `steps` random legal actions from the default (illegal picks are skipped). */
export function randomSchedule(problem: Problem, rng: Rng, steps = 12, actions: readonly string[] = DEFAULT_ACTIONS, maxLoops = 10): Schedule {
  let s = Schedule.initial(problem);
  for (let i = 0; i < steps; i++) {
    const a = rng.pick(actions);
    if (a.startsWith('split') && s.loops.length >= maxLoops) continue;
    const r = applyAction(s, a);
    if (r.ok) s = r.schedule;
  }
  return s;
}

/**
 * `s` with a random parallel band (1-3 adjacent loops wherever the band rules allow, collapsed
 * bands and tails included), or `s` unchanged when a few draws find no legal band.
 */
export function randomBand(s: Schedule, rng: Rng): Schedule {
  for (let attempt = 0; attempt < 8; attempt++) {
    const start = rng.int(0, Math.max(0, s.loops.length - 2));
    const length = rng.int(1, 3);
    const loops = s.loops.map((l, i) => (i >= start && i < start + length ? { ...l, parallel: true } : l));
    if (!parallelBandError(s.problem, loops)) return s.withLoops(loops, s.cursor);
  }
  return s;
}
