/**
 * The blocked NCHWc layout (ir/spec.ts `layout<B>`) at the edges of a network that runs blocked:
 *   - toBlocked / fromBlocked: the activation conversions as problems (a 'copy' through affine
 *     accesses), so any target compiles, tunes and verifies them like every other kernel;
 *   - blockWeights / blockDepthwiseWeights (packBlockedWeights picks one): weights pre-packed
 *     once, in JS, when a model loads;
 *   - blockActivations / unblockActivations: the JS references of the two conversions;
 *   - blockedVariant: the same conv or pool in the blocked layout (whyNotBlocked: why there is none);
 *   - blockedConversions: the conversions a blocked twin needs to run on NCHW tensors.
 * Shapes are NC<spatial> with one to three spatial dimensions; B is 4, 8 or 16 and divides C.
 * Tensors move between blocked layers without conversion (a conv's `outpad` border feeds the next
 * padded conv directly); only the network's input and output, and ops that have no blocked form,
 * pay for a conversion.
 */
import { fail } from './errors.ts';
import { Schedule } from './schedule.ts';
import { dataShape, makeProblem, type AffineIndex, type Padding, type Problem, type Tensor } from './problem.ts';
import { convAttributes, isConvOp, isPoolOp, LAYOUT_BLOCKS, layoutBlock, parseSpecText, problemFromObject } from './spec.ts';

type FloatArray = Float32Array | Float64Array;

const SPATIAL_NAMES: Record<number, readonly string[]> = { 1: ['w'], 2: ['h', 'w'], 3: ['d', 'h', 'w'] };

/** Fails with one line unless `shape` is N C <1-3 spatial> of positive integers and B a block that divides C. */
function checkActivations(what: string, shape: readonly number[], B: number): void {
  if (shape.length < 3 || shape.length > 5 || shape.some((x) => !Number.isInteger(x) || x < 1)) {
    fail(`${what}: shape must be N C and one to three spatial sizes, positive integers, got [${shape.join(', ')}]`);
  }
  if (!LAYOUT_BLOCKS.includes(B)) fail(`${what}: block must be 4, 8 or 16, got ${B}`);
  if (shape[1]! % B !== 0) fail(`${what}: channels C=${shape[1]} are not divisible by the block ${B}`);
}

/** The spec words of an activation shape: "n1 c64 h56 w56". */
function sizeWords(shape: readonly number[]): string {
  const spatial = SPATIAL_NAMES[shape.length - 2]!;
  return [`n${shape[0]}`, `c${shape[1]}`, ...spatial.map((d, i) => `${d}${shape[2 + i]}`)].join(' ');
}

function term(v: number, coef = 1): AffineIndex {
  return { terms: [{ var: v, coef }] };
}

/**
 * NC<spatial> to blocked: O[n, cb, h, w, ci] = I[n, cb*B + ci, h, w], variables n cb <spatial> ci
 * (the output's order, so the output is written contiguously; the input is read B planes apart
 * per lane, so the vector code reads it strided or takes the scalar path: a conversion runs once
 * per network edge, not per layer). Spec "copy n1 c64 h56 w56 tolayout16" (not readable by
 * parseProblem: these problems come from here).
 * `border`: the blocked output is stored inside this border (a blocked padded layer's input
 * Padding, in the blocked rank: spatial dimensions only) and only its interior is written, so the
 * conversion fills a padded conv's input storage directly (spec "... tolayout16 border1,1,1,1").
 */
export function toBlocked(shape: readonly number[], B: number, border?: Padding): Problem {
  checkActivations('toBlocked', shape, B);
  const [N, C, ...spatial] = shape as [number, number, ...number[]];
  const names = ['n', 'cb', ...SPATIAL_NAMES[spatial.length]!, 'ci'];
  const extents = [N, C / B, ...spatial, B];
  const sp = spatial.map((_, i) => 2 + i);
  const ci = names.length - 1;
  const out = borderedTensor('toBlocked', 'O', [N, C / B, ...spatial, B], border);
  return makeProblem({
    op: 'copy', spec: `copy ${sizeWords(shape)} tolayout${B}${borderWords(border)}`,
    vars: names.map((name, i) => ({ name, extent: extents[i]! })),
    tensors: [out.tensor, { name: 'I', shape: [N, C, ...spatial] }],
    output: { tensor: 0, index: [term(0), term(1), ...sp.map((v) => term(v)), term(ci)], ...(out.offset > 0 ? { offset: out.offset } : {}) },
    inputs: [{ tensor: 1, index: [term(0), { terms: [{ var: 1, coef: B }, { var: ci, coef: 1 }] }, ...sp.map((v) => term(v))] }],
    combine: 'copy',
  });
}

/**
 * Blocked to NC<spatial> (`shape` is the NC<spatial> shape): O[n, cb*B + ci, h, w] = I[n, cb, h, w, ci],
 * variables n cb ci <spatial> (the output's order again; the input is read B elements apart
 * along w). Spec "copy n1 c64 h56 w56 fromlayout16".
 * `border`: the blocked input is stored inside this border (a blocked layer's `outpad` output
 * Padding, in the blocked rank) and only its interior is read (spec "... fromlayout16 border1,1,1,1").
 */
export function fromBlocked(shape: readonly number[], B: number, border?: Padding): Problem {
  checkActivations('fromBlocked', shape, B);
  const [N, C, ...spatial] = shape as [number, number, ...number[]];
  const names = ['n', 'cb', 'ci', ...SPATIAL_NAMES[spatial.length]!];
  const extents = [N, C / B, B, ...spatial];
  const sp = spatial.map((_, i) => 3 + i);
  const input = borderedTensor('fromBlocked', 'I', [N, C / B, ...spatial, B], border);
  return makeProblem({
    op: 'copy', spec: `copy ${sizeWords(shape)} fromlayout${B}${borderWords(border)}`,
    vars: names.map((name, i) => ({ name, extent: extents[i]! })),
    tensors: [{ name: 'O', shape: [N, C, ...spatial] }, input.tensor],
    output: { tensor: 0, index: [term(0), { terms: [{ var: 1, coef: B }, { var: 2, coef: 1 }] }, ...sp.map((v) => term(v))] },
    inputs: [{ tensor: 1, index: [term(0), term(1), ...sp.map((v) => term(v)), term(2)], ...(input.offset > 0 ? { offset: input.offset } : {}) }],
    combine: 'copy',
  });
}

/** Whether a border has any width (an absent one has none). */
function hasBorder(border: Padding | undefined): border is Padding {
  return border !== undefined && [...border.before, ...border.after].some((x) => x > 0);
}

/** " border<spatial begins>,<spatial ends>" (and " fill<v>" for a non-zero border value), or "" without a border. */
function borderWords(border: Padding | undefined): string {
  if (!hasBorder(border)) return '';
  const spatial = (xs: readonly number[]) => xs.slice(2, -1);
  const fill = border.value !== 0 ? ` fill${border.value}` : '';
  return ` border${[...spatial(border.before), ...spatial(border.after)].join(',')}${fill}`;
}

/**
 * A blocked tensor of data shape `data` stored inside `border` (checked: one begin and one end per
 * dimension, non-negative integers, zero on N, the channel block and the lane), and the element
 * offset of its interior.
 */
function borderedTensor(what: string, name: string, data: readonly number[], border: Padding | undefined): { tensor: Tensor; offset: number } {
  if (border === undefined) return { tensor: { name, shape: data }, offset: 0 };
  const rank = data.length;
  const ok = (xs: readonly number[]) => xs.length === rank && xs.every((x, d) => Number.isInteger(x) && x >= 0 && (x === 0 || (d >= 2 && d < rank - 1)));
  if (!ok(border.before) || !ok(border.after)) {
    fail(`${what}: border must give ${rank} begins and ${rank} ends, non-negative integers, zero except on the spatial dimensions, got [${border.before.join(', ')}] [${border.after.join(', ')}]`);
  }
  if (!hasBorder(border)) return { tensor: { name, shape: data }, offset: 0 };
  const shape = data.map((n, d) => n + border.before[d]! + border.after[d]!);
  let offset = 0, stride = 1;
  for (let d = rank - 1; d >= 0; d--) {
    offset += border.before[d]! * stride;
    stride *= shape[d]!;
  }
  return { tensor: { name, shape, pad: { before: [...border.before], after: [...border.after], value: border.value } }, offset };
}

/** Calls `move(nchw, blocked)` with the element offsets of every element in both layouts. */
function forEachActivation(shape: readonly number[], B: number, move: (nchw: number, blocked: number) => void): void {
  const [N, C] = shape as [number, number];
  const plane = shape.slice(2).reduce((a, b) => a * b, 1);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const cb = Math.floor(c / B), ci = c % B;
      const src = (n * C + c) * plane;
      const dst = (n * C + cb * B) * plane + ci;
      for (let q = 0; q < plane; q++) move(src + q, dst + q * B);
    }
  }
}

function checkLength(what: string, data: FloatArray, length: number): void {
  if (data.length !== length) fail(`${what}: expected ${length} elements, got ${data.length}`);
}

/** JS reference of toBlocked: `x` in NC<spatial> (`shape`) as N C/B <spatial> B. */
export function blockActivations(x: FloatArray, shape: readonly number[], B: number): Float32Array {
  checkActivations('blockActivations', shape, B);
  checkLength('blockActivations', x, shape.reduce((a, b) => a * b, 1));
  const out = new Float32Array(x.length);
  forEachActivation(shape, B, (nchw, blocked) => (out[blocked] = x[nchw]!));
  return out;
}

/** JS reference of fromBlocked: `x` in N C/B <spatial> B back to NC<spatial> (`shape`). */
export function unblockActivations(x: FloatArray, shape: readonly number[], B: number): Float32Array {
  checkActivations('unblockActivations', shape, B);
  checkLength('unblockActivations', x, shape.reduce((a, b) => a * b, 1));
  const out = new Float32Array(x.length);
  forEachActivation(shape, B, (nchw, blocked) => (out[nchw] = x[blocked]!));
  return out;
}

function checkWeights(what: string, channels: Record<string, number>, window: number, B: number): void {
  if (!LAYOUT_BLOCKS.includes(B)) fail(`${what}: block must be 4, 8 or 16, got ${B}`);
  for (const [name, n] of [...Object.entries(channels), ['window', window] as const]) {
    if (!Number.isInteger(n) || n < 1) fail(`${what}: ${name} must be a positive integer, got ${n}`);
  }
  const bad = Object.entries(channels).filter(([, n]) => n % B !== 0);
  if (bad.length > 0) fail(`${what}: ${bad.map(([name, n]) => `${name}=${n}`).join(' ')} not divisible by the block ${B}`);
}

/**
 * Dense conv weights W[K, C, r, s] (ONNX's order) as the blocked conv reads them:
 * W[K/B, C/B, r, s, Bc, Bk], the output channel innermost (a vector of the k-block is contiguous).
 * Only the window's size r*s matters: a conv1d passes r = 1, a conv3d r = t*r.
 */
export function blockWeights(w: FloatArray, K: number, C: number, r: number, s: number, B: number): Float32Array {
  const R = r * s;
  checkWeights('blockWeights', { K, C }, R, B);
  checkLength('blockWeights', w, K * C * R);
  const out = new Float32Array(w.length);
  const CB = C / B;
  for (let k = 0; k < K; k++) {
    const kb = Math.floor(k / B), ki = k % B;
    for (let c = 0; c < C; c++) {
      const cb = Math.floor(c / B), ci = c % B;
      for (let q = 0; q < R; q++) out[(((kb * CB + cb) * R + q) * B + ci) * B + ki] = w[(k * C + c) * R + q]!;
    }
  }
  return out;
}

/** Depthwise conv weights W[C, 1, r, s] as the blocked depthwise conv reads them: W[C/B, r, s, B] (r*s as in blockWeights). */
export function blockDepthwiseWeights(w: FloatArray, C: number, r: number, s: number, B: number): Float32Array {
  const R = r * s;
  checkWeights('blockDepthwiseWeights', { C }, R, B);
  checkLength('blockDepthwiseWeights', w, C * R);
  const out = new Float32Array(w.length);
  for (let c = 0; c < C; c++) {
    const cb = Math.floor(c / B), ci = c % B;
    for (let q = 0; q < R; q++) out[(cb * R + q) * B + ci] = w[c * R + q]!;
  }
  return out;
}

/** A conv's weights W[K, C/G, <window>] as its blocked twin (block B) reads them; fails for a problem without weights. */
export function packBlockedWeights(problem: Problem, B: number, w: FloatArray): Float32Array {
  if (!isConvOp(problem.op)) fail(`packBlockedWeights: ${problem.op} has no weights`);
  const [K, Cg, ...window] = problem.tensors[2]!.shape as [number, number, ...number[]];
  const R = window.reduce((a, b) => a * b, 1);
  // blockedVariant admits only dense or depthwise convs
  return convAttributes(problem).groups > 1 ? blockDepthwiseWeights(w, K, 1, R, B) : blockWeights(w, K, Cg, 1, R, B);
}

/**
 * Why `problem` has no blocked twin with block B (what blockedVariant returns null for), one line;
 * null when it has one.
 */
export function whyNotBlocked(problem: Problem, B: number): string | null {
  const op = problem.op;
  if (!isConvOp(op) && !isPoolOp(op)) return `${op} has no blocked layout (convolutions and pools have)`;
  if (layoutBlock(problem) !== null) return `${problem.spec} is already in a blocked layout`;
  if (!LAYOUT_BLOCKS.includes(B)) return `the block must be 4, 8 or 16, got ${B}`;
  const c = problem.tensors[1]!.shape[1]!, k = problem.tensors[0]!.shape[1]!;
  if (c % B !== 0 || k % B !== 0) return `channels c=${c} k=${k} are not divisible by the block ${B}`;
  if (isConvOp(op)) {
    const G = convAttributes(problem).groups;
    if (G !== 1 && !(G === c && G === k)) return `groups${G} is neither dense (groups1) nor depthwise (groups = c = k)`;
  }
  return null;
}

/**
 * The same conv or pool (sizes, options, epilogue) in the blocked layout with block B: its spec
 * plus `layout<B>`. Null where the layout does not apply: other ops, a problem already blocked,
 * a block other than 4, 8 or 16, channels B does not divide, grouped convs other than depthwise.
 */
export function blockedVariant(problem: Problem, B: number): Problem | null {
  if (whyNotBlocked(problem, B) !== null) return null;
  return problemFromObject({ ...parseSpecText(problem.spec), layout: B });
}

/** The conversions that run a blocked twin on a layer's NCHW tensors (blockedConversions). */
export interface BlockedConversions {
  /** the layer's input data into the twin's input storage (inside its padding border) */
  readonly input: Problem;
  /** a +residual operand's data into the twin's (unpadded) residual; absent without one */
  readonly residual?: Problem;
  /** the interior of the twin's output storage (inside its outpad border) out to the layer's output data */
  readonly output: Problem;
}

/**
 * The conversions around `twin` (blockedVariant of `problem`): the NCHW side of each is the
 * tensor's data, the blocked side the twin's storage, border included. Weights are not among them
 * (blockWeights packs them once); a bias reads the same array in both layouts.
 */
export function blockedConversions(problem: Problem, twin: Problem): BlockedConversions {
  const B = layoutBlock(twin);
  if (B === null || blockedVariant(problem, B)?.spec !== twin.spec) fail(`blockedConversions: ${twin.spec} is not the blocked twin of ${problem.spec}`);
  const residual = residualTensor(problem);
  return {
    input: toBlocked(dataShape(problem.tensors[1]!), B, twin.tensors[1]!.pad),
    ...(residual === null ? {} : { residual: toBlocked(problem.tensors[residual]!.shape, B) }),
    output: fromBlocked(dataShape(problem.tensors[0]!), B, twin.tensors[0]!.pad),
  };
}

/** The tensor index of a problem's +residual operand, null without one. */
export function residualTensor(problem: Problem): number | null {
  const r = (problem.epilogue ?? []).find((e) => e.kind === 'residual');
  return r !== undefined && r.kind === 'residual' ? r.access.tensor : null;
}

/** The schedules of the conversions around `twin` (ir/layout.ts blockedConversions) as tuneLayouts and tuneModel time them and compileKernel runs them: the nest as given, one thread. */
export interface ConversionSchedules {
  readonly input: Schedule;
  readonly residual?: Schedule;
  readonly output: Schedule;
}

export function conversionSchedules(problem: Problem, twin: Problem): ConversionSchedules {
  const c = blockedConversions(problem, twin);
  return {
    input: Schedule.initial(c.input),
    ...(c.residual ? { residual: Schedule.initial(c.residual) } : {}),
    output: Schedule.initial(c.output),
  };
}
