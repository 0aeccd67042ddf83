/**
 * One-line problem specs ("matmul 256x256x256", "conv2d n1 c64 h56 w56 k64 r3 s3 stride1") and the
 * same problems as YAML/JSON objects ({ op: matmul, m: 256, n: 256, k: 256 }). Every bad input gets
 * one line saying what is wrong and what was expected.
 *
 * Convolutions (conv1d/2d/3d) take the sizes n c (d) (h) w k (t) (r) s, where c and k are the total
 * input and output channels and d, h, w the INPUT sizes (no padding), then optional `stride<S>`,
 * `groups<G>` and `dilation<D>` (each 1 when absent):
 *   "conv2d n1 c32 h114 w114 k32 r3 s3 stride1 groups32"   depthwise 3x3 (G = C = K)
 *   "conv2d n1 c64 h60 w60 k64 r3 s3 stride1 dilation2"    3x3 window with holes, spanning 5x5
 * c and k must be multiples of G; each output size is floor((in - D*(window-1) - 1) / S) + 1. The
 * canonical spec prints groups and dilation only when they are not 1, so ungrouped, undilated
 * problems keep the spec (and hashes and records) they always had.
 *
 * Max and average pooling (maxpool1d/2d/3d, avgpool1d/2d/3d) take n c (d) (h) w (t) (r) s, the
 * same INPUT sizes and window names as the convs, then optional `stride<S>` and `dilation<D>`:
 *   "maxpool2d n1 c64 h112 w112 r3 s3 stride2 pad1"   ResNet's 3x3/2 stem pool
 *   "globalavgpool n1 c512 h7 w7"                     reads as "avgpool2d n1 c512 h7 w7 r7 s7 stride1"
 * An average pool divides by its whole window (ONNX count_include_pad=1).
 *
 * Padding, on convolutions and pools: `pad<P>` on every side, or `pad<b1>,..,<bN>,<e1>,..,<eN>`
 * per spatial dimension (ONNX's order: all begins, then all ends). The input tensor is then stored
 * padded (a zero border, -Infinity for max pools: ir/problem.ts Padding) and the output sizes are
 * floor((in + begin + end - span) / S) + 1. `outpad<P>` stores the OUTPUT inside a P-wide border
 * instead, as the next padded layer reads it (the kernel writes only the interior).
 *
 * Epilogues, on every op: `+bias +relu` and the rest of ir/epilogue.ts, applied in order to each
 * finished output element: "conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 +bias +relu".
 *
 * Blocked layout (NCHWc, as NeoCPU and ONNX Runtime's MLAS run convolutions), on convs and pools:
 * `layout<B>` (B = 4, 8 or 16, dividing c and k) stores the channels in blocks of B, innermost:
 *   input I[n, C/B, (d,) h, w, B], output O[n, K/B, oh, ow, B] (pad and outpad on the spatial
 *   dimensions only), dense weights W[K/B, C/B, (t,) r, s, Bc, Bk], depthwise W[C/B, (t,) r, s, B].
 * The output channel splits into kb (block) and ki (lane in the block, the output's unit-stride
 * dimension), so vectors run along the channel block whatever the spatial size:
 *   "conv2d n1 c512 h7 w7 k512 r3 s3 stride1 pad1 layout16"  variables n kb h w ki cb ci r s
 * Dense (groups1) and depthwise (groups = c = k) convs only; ir/layout.ts converts tensors.
 *
 * Channels-last layout (NHWC, what tensor-core convolutions read: a pixel's channels are contiguous,
 * so one 16-byte copy moves 8 bf16 channels), on dense conv2d: `nhwc` stores the input N H W C,
 * the weights R S C K (row-major [R*S*C, K]: the implicit GEMM's B) and the output N H W K:
 *   "conv2d n32 c64 h56 w56 k64 r3 s3 stride1 pad1 nhwc bf16"  variables n h w k r s c
 *
 * Element types, on the multiply-accumulate ops (matmul, bmm, convs): a token `bf16`, `f16` or
 * `tf32` anywhere after the op ("matmul 4096x4096x4096 bf16"; `f32` is the default and is dropped
 * from the canonical spec, which prints the type after the sizes, before the epilogue). See
 * ir/dtype.ts for what each type means.
 */
import { fail } from './errors.ts';
import {
  makeProblem, OPS, type AffineIndex, type Combine, type Op, type Padding, type Problem, type Tensor,
} from './problem.ts';
import { EPILOGUE_HELP, parseEpilogueToken, withEpilogue, type BiasChannel, type EpilogueToken } from './epilogue.ts';
import { ELEMENT_TYPES, isElementType } from './dtype.ts';

/** A problem as an object: the op plus named sizes, or a shape for elementwise ops. */
export interface ProblemObject {
  op: string;
  shape?: number[];
  axis?: number;
  stride?: number;
  groups?: number;
  dilation?: number;
  /** padding of convs and pools: one number for every side, or per spatial dimension begins then ends */
  pad?: number | number[];
  /** the output stored inside a border this wide */
  outpad?: number;
  /** the blocked NCHWc layout: channels in blocks of this many, innermost (4, 8 or 16); or 'nhwc' (channels last) */
  layout?: number | 'nhwc';
  /** epilogue tokens without their '+', e.g. ['bias', 'relu'] */
  epilogue?: string[];
  /** the inputs' element type: f32 (default), bf16, f16 or tf32 */
  dtype?: string;
  [size: string]: unknown;
}

const EXAMPLES: Record<Op, string> = {
  matmul: 'matmul 256x256x256',
  bmm: 'bmm b8 m64 n64 k64',
  conv1d: 'conv1d n1 c64 w56 k64 s3 stride1',
  conv2d: 'conv2d n1 c64 h56 w56 k64 r3 s3 stride1',
  conv3d: 'conv3d n1 c16 d16 h16 w16 k16 t3 r3 s3 stride1',
  maxpool1d: 'maxpool1d n1 c64 w56 s3 stride2',
  maxpool2d: 'maxpool2d n1 c64 h114 w114 r3 s3 stride2',
  maxpool3d: 'maxpool3d n1 c16 d16 h16 w16 t2 r2 s2 stride2',
  avgpool1d: 'avgpool1d n1 c64 w56 s3 stride2',
  avgpool2d: 'avgpool2d n1 c64 h56 w56 r3 s3 stride2',
  avgpool3d: 'avgpool3d n1 c16 d16 h16 w16 t2 r2 s2 stride2',
  add: 'add 1024x1024',
  mul: 'mul 1024x1024',
  relu: 'relu 1024x1024',
  reduce: 'reduce 1024x1024 axis1',
  copy: 'copy 1024x1024',
  transpose: 'transpose 256x512',
};

/** Named sizes each op takes, in spec order; optionsOf(op) lists the optional ones after them. */
const NAMED_SIZES: Partial<Record<Op, string[]>> = {
  matmul: ['m', 'n', 'k'],
  bmm: ['b', 'm', 'n', 'k'],
  conv1d: ['n', 'c', 'w', 'k', 's'],
  conv2d: ['n', 'c', 'h', 'w', 'k', 'r', 's'],
  conv3d: ['n', 'c', 'd', 'h', 'w', 'k', 't', 'r', 's'],
  maxpool1d: ['n', 'c', 'w', 's'],
  maxpool2d: ['n', 'c', 'h', 'w', 'r', 's'],
  maxpool3d: ['n', 'c', 'd', 'h', 'w', 't', 'r', 's'],
  avgpool1d: ['n', 'c', 'w', 's'],
  avgpool2d: ['n', 'c', 'h', 'w', 'r', 's'],
  avgpool3d: ['n', 'c', 'd', 'h', 'w', 't', 'r', 's'],
};

/** Optional convolution sizes, each 1 when absent, in canonical spec order. */
const CONV_OPTIONS = ['stride', 'groups', 'dilation'] as const;
type WindowOption = typeof CONV_OPTIONS[number];
/** A pool has no weights, so no groups. */
const POOL_OPTIONS: readonly WindowOption[] = ['stride', 'dilation'];

type ConvOp = 'conv1d' | 'conv2d' | 'conv3d';
type PoolOp = 'maxpool1d' | 'maxpool2d' | 'maxpool3d' | 'avgpool1d' | 'avgpool2d' | 'avgpool3d';

export function isConvOp(op: Op): op is ConvOp {
  return op === 'conv1d' || op === 'conv2d' || op === 'conv3d';
}

export function isPoolOp(op: Op): op is PoolOp {
  return op.startsWith('maxpool') || op.startsWith('avgpool');
}

/**
 * What a +bias follows: a convolution's output channel (in the blocked layout kb*B + ki, over two
 * output dimensions), a matmul's column; null where there is none.
 */
function biasChannel(p: Problem): BiasChannel | null {
  if (isChannelsLast(p)) return 3;
  if (isConvOp(p.op)) {
    const B = layoutBlock(p);
    if (B === null) return 1;
    const kb = p.vars.findIndex((x) => x.name === 'kb'), ki = p.vars.findIndex((x) => x.name === 'ki');
    return { index: { terms: [{ var: kb, coef: B }, { var: ki, coef: 1 }] }, size: p.vars[kb]!.extent * B };
  }
  if (p.op === 'matmul' || p.op === 'bmm') return p.output.index.length - 1;
  return null;
}

/** Channel block sizes of the blocked layout (`layout<B>`): a 16-lane avx512 vector, two 8-lane avx2 ones, a 4-lane neon one. */
export const LAYOUT_BLOCKS: readonly number[] = [4, 8, 16];

/**
 * The channel block B of a conv or pool in the blocked layout (`layout<B>`), null for NCHW and
 * for every other op: the input then has one more dimension than NC<spatial>, the block, last.
 */
export function layoutBlock(p: Problem): number | null {
  if (!isConvOp(p.op) && !isPoolOp(p.op)) return null;
  const shape = p.tensors[1]!.shape;
  return shape.length === SPATIAL[p.op].length + 3 ? shape[shape.length - 1]! : null;
}

/** Whether a conv2d is in the channels-last layout (`nhwc`): input N H W C, weights R S C K, output N H W K. */
export function isChannelsLast(p: Problem): boolean {
  return p.op === 'conv2d' && / nhwc(?: |$)/.test(p.spec);
}

function optionsOf(op: Op): readonly WindowOption[] {
  return isConvOp(op) ? CONV_OPTIONS : isPoolOp(op) ? POOL_OPTIONS : [];
}

function isOp(s: string): s is Op {
  return (OPS as readonly string[]).includes(s);
}

/**
 * Largest size of one dimension: typed arrays, kernel loop counters and the ABI's element counts
 * are sized for it. (Whether a whole problem fits the machine is targets/runtime/memory-limit.ts's
 * question, asked before anything is allocated.)
 */
export const MAX_SIZE = 2 ** 31 - 1;

/** Longest piece of user input an error message repeats; longer input is cut with an ellipsis. */
const ECHO_CHARS = 40;

/** User input as an error message quotes it: strings in double quotes, cut to ECHO_CHARS. */
export function echoInput(raw: unknown): string {
  const text = typeof raw === 'string' ? raw : (JSON.stringify(raw) ?? String(raw));
  const cut = text.length > ECHO_CHARS ? `${text.slice(0, ECHO_CHARS)}…` : text;
  return typeof raw === 'string' ? `"${cut}"` : cut;
}

/** `text` cut to ECHO_CHARS, for quoting inside '…'. */
function clip(text: string): string {
  return text.length > ECHO_CHARS ? `${text.slice(0, ECHO_CHARS)}…` : text;
}

function positiveInt(op: string, name: string, raw: unknown): number {
  const n = typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n === 'number' && n > MAX_SIZE) fail(`${op}: size ${name} is too large, got ${echoInput(raw)} (at most ${MAX_SIZE})`);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    fail(`${op}: size ${name} must be a positive integer, got ${echoInput(raw)}`);
  }
  return n;
}

/** "64x32x16" (or "64X32X16") into its parts; an empty part reads as 'empty'. */
function sizeParts(token: string): string[] {
  return token.split(/x/i).map((p) => (p === '' ? 'empty' : p));
}

/** A token of sizes joined by x, e.g. 256x256x256 (positional form). */
function isPositional(token: string): boolean {
  return /^-?\d/.test(token) && /x/i.test(token);
}

function parseShape(op: string, token: string | undefined, expected: string): number[] {
  if (token === undefined) fail(`${op}: missing sizes (expected ${expected})`);
  return sizeParts(token).map((p, i) => positiveInt(op, `#${i + 1}`, p));
}

/** Parses a one-line spec into its object form. */
export function parseSpecText(text: string): ProblemObject {
  const tokens = text.trim().split(/\s+/).filter((t) => t.length > 0);
  const head = tokens[0];
  if (head === undefined) fail('empty problem spec (expected e.g. "matmul 256x256x256")');
  // op names, size names and the x separator are read case-insensitively ("MATMUL 8X8X8")
  const lower = head.toLowerCase();
  const op = lower === 'globalavgpool' ? 'avgpool2d' : lower;
  if (!isOp(op)) fail(`unknown op '${clip(head)}' (expected one of: ${OPS.join(', ')}, globalavgpool)`);
  // epilogue and element-type tokens may follow any form
  const epilogue = tokens.slice(1).filter((t) => t.startsWith('+')).map((t) => t.slice(1));
  const types = tokens.slice(1).filter((t) => isElementType(t.toLowerCase()));
  if (types.length > 1) fail(`${op}: element type given twice ('${clip(types[0]!)}' and '${clip(types[1]!)}')`);
  const rest = tokens.slice(1).filter((t) => !t.startsWith('+') && !isElementType(t.toLowerCase()));
  const withTokens = (o: ProblemObject): ProblemObject => {
    const typed = types.length > 0 ? { ...o, dtype: types[0]!.toLowerCase() } : o;
    return epilogue.length > 0 ? { ...typed, epilogue } : typed;
  };
  if (lower === 'globalavgpool') return withTokens(globalPool(rest));
  const named = NAMED_SIZES[op];
  const obj: ProblemObject = { op };
  if (named && rest.length >= 1 && isPositional(rest[0]!)) {
    // positional form: "matmul 256x128x64" is M x N x K; nothing may follow it
    const parts = sizeParts(rest[0]!);
    if (parts.length !== named.length) {
      fail(`${op} needs ${named.length} sizes ${named.map((n) => n.toUpperCase()).join('x')} (e.g. "${EXAMPLES[op]}"), got ${echoInput(rest[0])}`);
    }
    named.forEach((n, i) => (obj[n] = positiveInt(op, n, parts[i])));
    if (rest.length > 1) fail(`${op}: unexpected '${clip(rest[1]!)}' after the sizes (expected e.g. "${EXAMPLES[op]}")`);
    return withTokens(obj);
  }
  if (named) {
    for (const tok of rest) {
      const pads = /^pad(\d+(?:,\d+)+)$/i.exec(tok);
      if (pads) {
        if ('pad' in obj) fail(`${op}: size pad given twice`);
        obj.pad = pads[1]!.split(',').map(Number);
        continue;
      }
      if (tok.toLowerCase() === 'nhwc') {
        if ('layout' in obj) fail(`${op}: layout given twice`);
        obj.layout = 'nhwc';
        continue;
      }
      const m = /^([a-z]+)(-?\d+)$/i.exec(tok);
      if (!m) fail(`${op}: cannot read '${clip(tok)}' (expected a name and a positive integer, e.g. ${named[0]}64)`);
      const key = m[1]!.toLowerCase();
      if (key in obj) fail(`${op}: size ${key} given twice`);
      // a number past MAX_SIZE stays text, so that the error quotes the digits, not "Infinity"
      const value = Number(m[2]);
      obj[key] = value > MAX_SIZE ? m[2]! : value;
    }
    return withTokens(obj);
  }
  // elementwise, reduce, copy, transpose: a shape, then options
  obj.shape = parseShape(op, rest[0], `a shape such as 1024x1024, e.g. "${EXAMPLES[op]}"`);
  for (const tok of rest.slice(1)) {
    const m = /^axis(-?\d+)$/i.exec(tok);
    if (op === 'reduce' && m) obj.axis = Number(m[1]);
    else fail(`${op}: unexpected '${clip(tok)}' (expected e.g. "${EXAMPLES[op]}")`);
  }
  return withTokens(obj);
}

/** "globalavgpool n1 c512 h7 w7" (optionally "layout16"): an average pool whose window is the whole input. */
function globalPool(rest: string[]): ProblemObject {
  const obj: ProblemObject = { op: 'avgpool2d' };
  for (const tok of rest) {
    const m = /^([nchw]|layout)(-?\d+)$/i.exec(tok);
    if (!m) fail(`globalavgpool: cannot read '${clip(tok)}' (expected n c h w, e.g. "globalavgpool n1 c512 h7 w7")`);
    obj[m[1]!.toLowerCase()] = Number(m[2]);
  }
  for (const n of ['n', 'c', 'h', 'w']) if (obj[n] === undefined) fail(`globalavgpool: missing size ${n} (expected e.g. "globalavgpool n1 c512 h7 w7")`);
  obj.r = obj.h;
  obj.s = obj.w;
  return obj;
}

const ELEMENTWISE_VARS = ['i', 'j', 'l', 'p', 'q', 'u'];

function idx(...vars: number[]): AffineIndex[] {
  return vars.map((v) => ({ terms: [{ var: v, coef: 1 }] }));
}

function rowMajorVars(rank: number): number[] {
  return Array.from({ length: rank }, (_, i) => i);
}

/** Builds the Problem an object describes. */
export function problemFromObject(obj: ProblemObject): Problem {
  const op = String(obj.op ?? '').toLowerCase();
  if (!isOp(op)) fail(`unknown op '${clip(String(obj.op))}' (expected one of: ${OPS.join(', ')})`);
  const { epilogue, dtype, ...rest } = obj;
  if (epilogue !== undefined && (!Array.isArray(epilogue) || epilogue.some((t) => typeof t !== 'string'))) {
    fail(`${op}: epilogue must be a list of names such as [bias, relu] (expected ${EPILOGUE_HELP.replace(/\+/g, '')})`);
  }
  const tokens = (epilogue ?? []).map((t) => parseEpilogueToken(op, t.replace(/^\+/, '')));
  const base = withElementType(baseProblem(op, rest), dtype);
  return tokens.length === 0 ? base : makeProblem(withEpilogue(base, tokens, biasChannel(base)));
}

/** The problem with its inputs typed `raw` (absent or f32: unchanged); only multiply-accumulate ops take a type. */
function withElementType(p: Problem, raw: unknown): Problem {
  if (raw === undefined) return p;
  const t = typeof raw === 'string' ? raw.toLowerCase() : '';
  if (!isElementType(t)) fail(`${p.op}: unknown element type ${echoInput(raw)} (expected one of ${ELEMENT_TYPES.join(', ')})`);
  if (t === 'f32') return p;
  if (p.combine !== 'fma') fail(`${p.op}: element type ${t} is for multiply-accumulate ops (matmul, bmm, conv); ${p.op} runs in f32`);
  return { ...p, spec: `${p.spec} ${t}`, dtype: t };
}

/** The problem without its epilogue. */
function baseProblem(op: Op, obj: ProblemObject): Problem {
  const named = NAMED_SIZES[op];
  if (named) {
    const options = optionsOf(op);
    const allowed = [...named, ...options, ...(options.length > 0 ? ['pad', 'outpad'] : [])];
    // layout is accepted by the same ops, left out of the hint (which names the usual options)
    const accepted = options.length > 0 ? [...allowed, 'layout'] : allowed;
    for (const key of Object.keys(obj)) {
      if (key !== 'op' && !accepted.includes(key)) {
        fail(`${op}: unknown size '${clip(key)}' (expected ${allowed.join(' ')}, e.g. "${EXAMPLES[op]}")`);
      }
    }
    // the missing-size hint names what a spec usually carries (groups and dilation are rare)
    const usual = options.length > 0 ? [...named, 'stride'] : named;
    const s: Record<string, number> = {};
    for (const n of named) {
      if (obj[n] === undefined) fail(`${op}: missing size ${n} (expected ${usual.join(' ')}, e.g. "${EXAMPLES[op]}")`);
      s[n] = positiveInt(op, n, obj[n]);
    }
    const option = (name: WindowOption) => (obj[name] === undefined ? 1 : positiveInt(op, name, obj[name]));
    if (op === 'matmul') return matmul(s.m!, s.n!, s.k!);
    if (op === 'bmm') return bmm(s.b!, s.m!, s.n!, s.k!);
    if (isPoolOp(op) || isConvOp(op)) {
      const pad = paddingOf(op, obj.pad);
      const outpad = obj.outpad === undefined ? 0 : nonNegativeInt(op, 'outpad', obj.outpad);
      if (obj.layout === 'nhwc') {
        if (op !== 'conv2d') fail(`${op}: the nhwc layout is for conv2d`);
        if (outpad > 0) fail(`${op}: nhwc convolutions write their output without a border (outpad)`);
        return channelsLastConv(s, { stride: option('stride'), dilation: option('dilation'), pad, outpad, layout: null, groups: option('groups') });
      }
      const layout = obj.layout === undefined ? null : layoutOf(op, obj.layout);
      const window = { stride: option('stride'), dilation: option('dilation'), pad, outpad, layout };
      return isPoolOp(op) ? pool(op, s, window) : conv(op, s, { ...window, groups: option('groups') });
    }
    fail(`${op}: no builder for its named sizes`);
  }
  const shape = obj.shape;
  if (!Array.isArray(shape) || shape.length === 0) fail(`${op}: missing shape (expected e.g. "${EXAMPLES[op]}")`);
  shape.forEach((n, i) => positiveInt(op, `#${i + 1}`, n));
  if (shape.length > ELEMENTWISE_VARS.length) fail(`${op}: at most ${ELEMENTWISE_VARS.length} dimensions, got ${shape.length}`);
  if (op === 'reduce') {
    const axis = obj.axis === undefined ? shape.length - 1 : obj.axis;
    if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < 0 || axis >= shape.length) {
      fail(`reduce: axis ${String(axis)} out of range for a ${shape.length}-d tensor (expected 0..${shape.length - 1})`);
    }
    return reduce(shape, axis);
  }
  if (op === 'transpose' && shape.length !== 2) fail(`transpose: needs a 2-d shape such as 256x512, got ${shape.join('x')}`);
  return elementwise(op as 'add' | 'mul' | 'relu' | 'copy' | 'transpose', shape);
}

/** Parses a spec string or object into a validated Problem. */
export function parseProblem(spec: string | ProblemObject): Problem {
  return problemFromObject(typeof spec === 'string' ? parseSpecText(spec) : spec);
}

function matmul(m: number, n: number, k: number): Problem {
  return makeProblem({
    op: 'matmul', spec: `matmul ${m}x${n}x${k}`,
    vars: [{ name: 'm', extent: m }, { name: 'n', extent: n }, { name: 'k', extent: k }],
    tensors: [{ name: 'C', shape: [m, n] }, { name: 'A', shape: [m, k] }, { name: 'B', shape: [k, n] }],
    output: { tensor: 0, index: idx(0, 1) },
    inputs: [{ tensor: 1, index: idx(0, 2) }, { tensor: 2, index: idx(2, 1) }],
    combine: 'fma',
  });
}

function bmm(b: number, m: number, n: number, k: number): Problem {
  return makeProblem({
    op: 'bmm', spec: `bmm b${b} m${m} n${n} k${k}`,
    vars: [{ name: 'b', extent: b }, { name: 'm', extent: m }, { name: 'n', extent: n }, { name: 'k', extent: k }],
    tensors: [{ name: 'C', shape: [b, m, n] }, { name: 'A', shape: [b, m, k] }, { name: 'B', shape: [b, k, n] }],
    output: { tensor: 0, index: idx(0, 1, 2) },
    inputs: [{ tensor: 1, index: idx(0, 1, 3) }, { tensor: 2, index: idx(0, 3, 2) }],
    combine: 'fma',
  });
}

/** A convolution's stride, dilation (per spatial dimension) and group count. */
export interface ConvAttributes {
  readonly stride: readonly number[];
  readonly dilation: readonly number[];
  readonly groups: number;
  /** ONNX's pads: the begins, then the ends, per spatial dimension */
  readonly pads: readonly number[];
}

/** ONNX's pads of a conv or pool's input: begins then ends per spatial dimension (zeros without padding). */
function onnxPads(p: Problem, op: ConvOp | PoolOp): number[] {
  const t = p.tensors[1]!;
  // the spatial dimensions follow n and c (and precede the blocked layout's channel block); n alone in nhwc
  const rank = SPATIAL[op].length;
  const first = isChannelsLast(p) ? 1 : 2;
  const before = t.pad?.before.slice(first, first + rank) ?? new Array<number>(rank).fill(0);
  const after = t.pad?.after.slice(first, first + rank) ?? new Array<number>(rank).fill(0);
  return [...before, ...after];
}

const SPATIAL: Record<ConvOp | PoolOp, string[]> = {
  conv1d: ['w'], conv2d: ['h', 'w'], conv3d: ['d', 'h', 'w'],
  maxpool1d: ['w'], maxpool2d: ['h', 'w'], maxpool3d: ['d', 'h', 'w'],
  avgpool1d: ['w'], avgpool2d: ['h', 'w'], avgpool3d: ['d', 'h', 'w'],
};
const WINDOW: Record<ConvOp | PoolOp, string[]> = {
  conv1d: ['s'], conv2d: ['r', 's'], conv3d: ['t', 'r', 's'],
  maxpool1d: ['s'], maxpool2d: ['r', 's'], maxpool3d: ['t', 'r', 's'],
  avgpool1d: ['s'], avgpool2d: ['r', 's'], avgpool3d: ['t', 'r', 's'],
};

/** Padding per spatial dimension, before and after. */
interface SpatialPadding {
  before: number[];
  after: number[];
}

/** Options every sliding window (conv or pool) takes. */
interface WindowOptions {
  stride: number;
  dilation: number;
  pad: SpatialPadding;
  outpad: number;
  /** channel block of the blocked layout; null: NCHW */
  layout: number | null;
}

/** `layout<B>` as given: one of LAYOUT_BLOCKS. */
function layoutOf(op: ConvOp | PoolOp, raw: unknown): number {
  if (typeof raw === 'number' && LAYOUT_BLOCKS.includes(raw)) return raw;
  fail(`${op}: layout must be a channel block of 4, 8 or 16 (e.g. layout16), got ${echoInput(raw)}`);
}

/** Fails unless block B divides every named channel count. */
function checkBlock(op: ConvOp | PoolOp, B: number, channels: Record<string, number>): void {
  const bad = Object.entries(channels).filter(([, n]) => n % B !== 0);
  if (bad.length > 0) {
    fail(`${op}: layout${B} needs channels divisible by ${B}, got ${bad.map(([name, n]) => `${name}=${n}`).join(' ')}`);
  }
}

function nonNegativeInt(op: string, name: string, raw: unknown): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0 || raw > MAX_SIZE) {
    fail(`${op}: ${name} must be a non-negative integer, got ${echoInput(raw)}`);
  }
  return raw;
}

/** `pad` as given (absent, one number, or begins then ends per spatial dimension) into per-dimension padding. */
function paddingOf(op: ConvOp | PoolOp, raw: unknown): SpatialPadding {
  const rank = SPATIAL[op].length;
  if (raw === undefined) return { before: new Array(rank).fill(0), after: new Array(rank).fill(0) };
  if (typeof raw === 'number') {
    const p = nonNegativeInt(op, 'pad', raw);
    return { before: new Array(rank).fill(p), after: new Array(rank).fill(p) };
  }
  if (!Array.isArray(raw) || raw.length !== 2 * rank) {
    fail(`${op}: pad needs one number or ${2 * rank} (the begins, then the ends, of ${SPATIAL[op].join(' ')}), got ${echoInput(raw)}`);
  }
  const all = raw.map((x) => nonNegativeInt(op, 'pad', x));
  return { before: all.slice(0, rank), after: all.slice(rank) };
}

/** The spec's pad token: `pad1` when every side is the same, else the begins then the ends; '' without padding. */
function padText(pad: SpatialPadding): string {
  const all = [...pad.before, ...pad.after];
  if (all.every((x) => x === 0)) return '';
  return all.every((x) => x === all[0]) ? `pad${all[0]}` : `pad${all.join(',')}`;
}

/**
 * Output size of each spatial dimension of a sliding window (conv or pool): floor((in + pads - span) / stride) + 1
 * with span = dilation*(window-1) + 1; fails when the window spans more than the padded input.
 */
function slidingOutputSizes(op: ConvOp | PoolOp, s: Record<string, number>, o: WindowOptions): number[] {
  const window = WINDOW[op];
  const noun = isPoolOp(op) ? 'window' : 'kernel';
  return SPATIAL[op].map((dim, i) => {
    const inSize = s[dim]! + o.pad.before[i]! + o.pad.after[i]!;
    const k = s[window[i]!]!;
    const span = o.dilation * (k - 1) + 1;
    const padded = o.pad.before[i]! + o.pad.after[i]! > 0 ? ` padded to ${inSize}` : '';
    if (span > inSize) {
      fail(o.dilation === 1
        ? `${op}: ${noun} size ${window[i]}=${k} is larger than input size ${dim}=${s[dim]}${padded}`
        : `${op}: ${noun} size ${window[i]}=${k} at dilation ${o.dilation} spans ${span}, larger than input size ${dim}=${s[dim]}${padded}`);
    }
    if (o.pad.before[i]! >= span || o.pad.after[i]! >= span) {
      fail(`${op}: padding of ${dim} (${o.pad.before[i]}, ${o.pad.after[i]}) must be smaller than the ${noun} span ${span}`);
    }
    return Math.floor((inSize - span) / o.stride) + 1;
  });
}

/**
 * The input tensor, stored with its padding (value `value`), and the output tensor with its
 * outpad border, plus the output access's offset into that border. NC<spatial>, or in the blocked
 * layout N C/B <spatial> B (padding on the spatial dimensions only).
 */
function windowTensors(
  op: ConvOp | PoolOp, s: Record<string, number>, o: WindowOptions, outSize: number[], channels: { in: number; out: number }, value: number,
): { input: Tensor; output: Tensor; outputOffset: number } {
  const spatial = SPATIAL[op];
  const B = o.layout;
  const block = B === null ? [] : [B];
  const noBorder = block.map(() => 0);
  const padded = [...o.pad.before, ...o.pad.after].some((x) => x > 0);
  const pad: Padding = { before: [0, 0, ...o.pad.before, ...noBorder], after: [0, 0, ...o.pad.after, ...noBorder], value };
  const input: Tensor = {
    name: 'I', shape: [s.n!, channels.in / (B ?? 1), ...spatial.map((d, i) => s[d]! + o.pad.before[i]! + o.pad.after[i]!), ...block],
    ...(padded ? { pad } : {}),
  };
  const P = o.outpad;
  const outShape = [s.n!, channels.out / (B ?? 1), ...outSize.map((x) => x + 2 * P), ...block];
  // the interior starts P elements into every spatial dimension (dimensions 2 .. 2+rank-1)
  let outputOffset = 0, stride = 1;
  for (let d = outShape.length - 1; d >= 2; d--) {
    if (d < 2 + spatial.length) outputOffset += P * stride;
    stride *= outShape[d]!;
  }
  const border = spatial.map(() => P);
  const output: Tensor = {
    name: 'O', shape: outShape,
    ...(P > 0 ? { pad: { before: [0, 0, ...border, ...noBorder], after: [0, 0, ...border, ...noBorder], value: 0 } } : {}),
  };
  return { input, output, outputOffset };
}

/** The spec's window options after the sizes: stride, then groups/dilation/pad/outpad where not default. */
function windowSpecOptions(o: WindowOptions & { groups?: number }): string[] {
  const out = [`stride${o.stride}`];
  if (o.groups !== undefined && o.groups !== 1) out.push(`groups${o.groups}`);
  if (o.dilation !== 1) out.push(`dilation${o.dilation}`);
  const pad = padText(o.pad);
  if (pad) out.push(pad);
  if (o.outpad > 0) out.push(`outpad${o.outpad}`);
  if (o.layout !== null) out.push(`layout${o.layout}`);
  return out;
}

/**
 * conv{1,2,3}d, NC(D)HW input, K C/G (T)RS weights. With G groups of Kg = K/G output and Cg = C/G
 * input channels, over the padded input I (its border zero):
 *   O[n, g*Kg + k, oh, ow] += I[n, g*Cg + c, oh*stride + r*dilation, ow*stride + s*dilation] * W[g*Kg + k, c, r, s]
 * The loop variables h, w (and d) run over OUTPUT positions; k and c over the channels of one
 * group. The group variable g (an output variable, after n) exists only when G > 1, so ungrouped
 * problems have the variables n k <spatial> c <window> they always had.
 */
function conv(op: ConvOp, s: Record<string, number>, o: WindowOptions & { groups: number }): Problem {
  const { stride, groups: G, dilation } = o;
  const spatial = SPATIAL[op];
  const window = WINDOW[op];
  if (s.c! % G !== 0) fail(`${op}: input channels c=${s.c} are not divisible by groups=${G}`);
  if (s.k! % G !== 0) fail(`${op}: output channels k=${s.k} are not divisible by groups=${G}`);
  const Cg = s.c! / G, Kg = s.k! / G;
  const outSize = slidingOutputSizes(op, s, o);
  const sizes = [`n${s.n}`, `c${s.c}`, ...spatial.map((d) => `${d}${s[d]}`), `k${s.k}`, ...window.map((w) => `${w}${s[w]}`), ...windowSpecOptions(o)];
  if (o.layout !== null) return blockedConv(op, s, o, o.layout, outSize, `${op} ${sizes.join(' ')}`);
  const grouped = G > 1;
  // variables: n [g] k <spatial outputs> c <window>
  const names = ['n', ...(grouped ? ['g'] : []), 'k', ...spatial, 'c', ...window];
  const extents = [s.n!, ...(grouped ? [G] : []), Kg, ...outSize, Cg, ...window.map((w) => s[w]!)];
  const vars = names.map((name, i) => ({ name, extent: extents[i]! }));
  const v = (name: string) => names.indexOf(name);
  /** g*perGroup + ch, or just ch without groups */
  const channel = (ch: string, perGroup: number): AffineIndex => ({
    terms: grouped ? [{ var: v('g'), coef: perGroup }, { var: v(ch), coef: 1 }] : [{ var: v(ch), coef: 1 }],
  });
  const { input, output, outputOffset } = windowTensors(op, s, o, outSize, { in: s.c!, out: s.k! }, 0);
  const tensors: Tensor[] = [output, input, { name: 'W', shape: [s.k!, Cg, ...window.map((w) => s[w]!)] }];
  const inputSpatial: AffineIndex[] = spatial.map((d, i) => ({
    terms: [{ var: v(d), coef: stride }, { var: v(window[i]!), coef: dilation }],
  }));
  return makeProblem({
    op, spec: `${op} ${sizes.join(' ')}`,
    vars, tensors,
    output: { tensor: 0, index: [...idx(v('n')), channel('k', Kg), ...idx(...spatial.map(v))], ...(outputOffset > 0 ? { offset: outputOffset } : {}) },
    inputs: [
      { tensor: 1, index: [...idx(v('n')), channel('c', Cg), ...inputSpatial] },
      { tensor: 2, index: [channel('k', Kg), ...idx(v('c'), ...window.map(v))] },
    ],
    combine: 'fma',
  });
}

/**
 * A convolution in the blocked layout (channel block B innermost; dense or depthwise):
 *   dense:     O[n, kb, oh, ow, ki] += I[n, cb, oh*stride + r*dilation, ow*stride + s*dilation, ci] * W[kb, cb, r, s, ci, ki]
 *   depthwise: O[n, kb, oh, ow, ki] += I[n, kb, oh*stride + r*dilation, ow*stride + s*dilation, ki] * W[kb, r, s, ki]
 * Variables n kb <spatial outputs> ki [cb ci] <window>: ki moves the output, the dense weights
 * and the depthwise input by one element (vector loads) and the dense input not at all (one
 * element broadcast to every lane, MLAS's NCHWc kernel).
 */
function blockedConv(op: ConvOp, s: Record<string, number>, o: WindowOptions & { groups: number }, B: number, outSize: number[], spec: string): Problem {
  const spatial = SPATIAL[op];
  const window = WINDOW[op];
  const G = o.groups;
  const depthwise = G > 1;
  if (depthwise && !(G === s.c && G === s.k)) {
    fail(`${op}: layout${B} takes dense (groups1) or depthwise (groups = c = k) convolutions, got groups${G} with c=${s.c} k=${s.k}`);
  }
  checkBlock(op, B, { c: s.c!, k: s.k! });
  const names = ['n', 'kb', ...spatial, 'ki', ...(depthwise ? [] : ['cb', 'ci']), ...window];
  const extents = [s.n!, s.k! / B, ...outSize, B, ...(depthwise ? [] : [s.c! / B, B]), ...window.map((w) => s[w]!)];
  const v = (name: string) => names.indexOf(name);
  const { input, output, outputOffset } = windowTensors(op, s, o, outSize, { in: s.c!, out: s.k! }, 0);
  const inputSpatial: AffineIndex[] = spatial.map((d, i) => ({
    terms: [{ var: v(d), coef: o.stride }, { var: v(window[i]!), coef: o.dilation }],
  }));
  // a depthwise output channel reads its own input channel
  const [inBlock, inLane] = depthwise ? ['kb', 'ki'] : ['cb', 'ci'];
  const weights: Tensor = depthwise
    ? { name: 'W', shape: [s.k! / B, ...window.map((w) => s[w]!), B] }
    : { name: 'W', shape: [s.k! / B, s.c! / B, ...window.map((w) => s[w]!), B, B] };
  return makeProblem({
    op, spec,
    vars: names.map((name, i) => ({ name, extent: extents[i]! })),
    tensors: [output, input, weights],
    output: { tensor: 0, index: idx(v('n'), v('kb'), ...spatial.map(v), v('ki')), ...(outputOffset > 0 ? { offset: outputOffset } : {}) },
    inputs: [
      { tensor: 1, index: [...idx(v('n'), v(inBlock)), ...inputSpatial, ...idx(v(inLane))] },
      { tensor: 2, index: depthwise ? idx(v('kb'), ...window.map(v), v('ki')) : idx(v('kb'), v('cb'), ...window.map(v), v('ci'), v('ki')) },
    ],
    combine: 'fma',
  });
}

/**
 * A dense conv2d in the channels-last layout (`nhwc`), over the padded input I (its border zero):
 *   O[n, oh, ow, k] += I[n, oh*stride + r*dilation, ow*stride + s*dilation, c] * W[r, s, c, k]
 * Variables n h w k r s c: the output's order, then the reduction in the order of W's rows, so
 * (r, s, c) is the implicit GEMM's k and c moves the input by one element.
 */
function channelsLastConv(s: Record<string, number>, o: WindowOptions & { groups: number }): Problem {
  const op = 'conv2d';
  if (o.groups !== 1) fail(`${op}: the nhwc layout takes dense convolutions (groups1), got groups${o.groups}`);
  const outSize = slidingOutputSizes(op, s, o);
  const sizes = [`n${s.n}`, `c${s.c}`, `h${s.h}`, `w${s.w}`, `k${s.k}`, `r${s.r}`, `s${s.s}`, ...windowSpecOptions(o), 'nhwc'];
  const names = ['n', 'h', 'w', 'k', 'r', 's', 'c'];
  const extents = [s.n!, outSize[0]!, outSize[1]!, s.k!, s.r!, s.s!, s.c!];
  const v = (name: string) => names.indexOf(name);
  const padded = [...o.pad.before, ...o.pad.after].some((x) => x > 0);
  const input: Tensor = {
    name: 'I', shape: [s.n!, s.h! + o.pad.before[0]! + o.pad.after[0]!, s.w! + o.pad.before[1]! + o.pad.after[1]!, s.c!],
    ...(padded ? { pad: { before: [0, ...o.pad.before, 0], after: [0, ...o.pad.after, 0], value: 0 } } : {}),
  };
  const spatialIndex = (d: string, w: string): AffineIndex => ({ terms: [{ var: v(d), coef: o.stride }, { var: v(w), coef: o.dilation }] });
  return makeProblem({
    op, spec: `${op} ${sizes.join(' ')}`,
    vars: names.map((name, i) => ({ name, extent: extents[i]! })),
    tensors: [{ name: 'O', shape: [s.n!, outSize[0]!, outSize[1]!, s.k!] }, input, { name: 'W', shape: [s.r!, s.s!, s.c!, s.k!] }],
    output: { tensor: 0, index: idx(v('n'), v('h'), v('w'), v('k')) },
    inputs: [
      { tensor: 1, index: [...idx(v('n')), spatialIndex('h', 'r'), spatialIndex('w', 's'), ...idx(v('c'))] },
      { tensor: 2, index: idx(v('r'), v('s'), v('c'), v('k')) },
    ],
    combine: 'fma',
  });
}

/**
 * maxpool/avgpool{1,2,3}d, NC(D)HW input, no weights, over the padded input (its border -Infinity
 * for max, zero for average):
 *   max: O[n, c, oh, ow] = max(O[n, c, oh, ow], I[n, c, oh*stride + r*dilation, ow*stride + s*dilation])
 *   avg: O[n, c, oh, ow] += I[...], then the epilogue scales by 1/window (ONNX count_include_pad=1)
 * over the window variables r, s (the reductions). Like every accumulating combine it starts from
 * the output's contents: a fresh max pool starts from -Infinity (compileKernel clears to it), an
 * average pool from zero. Variables: n c <spatial outputs> <window>; in the blocked layout
 * n cb <spatial outputs> ci <window>, over I[n, cb, ..., ci] and O[n, cb, oh, ow, ci].
 */
function pool(op: PoolOp, s: Record<string, number>, o: WindowOptions): Problem {
  const { stride, dilation } = o;
  const spatial = SPATIAL[op];
  const window = WINDOW[op];
  const isMax = op.startsWith('maxpool');
  const outSize = slidingOutputSizes(op, s, o);
  const B = o.layout;
  if (B !== null) checkBlock(op, B, { c: s.c! });
  // blocked: the channel splits into its block cb and its lane ci (the unit-stride dimension)
  const names = B === null ? ['n', 'c', ...spatial, ...window] : ['n', 'cb', ...spatial, 'ci', ...window];
  const extents = B === null
    ? [s.n!, s.c!, ...outSize, ...window.map((w) => s[w]!)]
    : [s.n!, s.c! / B, ...outSize, B, ...window.map((w) => s[w]!)];
  const v = (name: string) => names.indexOf(name);
  const [block, lane] = B === null ? [idx(v('c')), []] : [idx(v('cb')), idx(v('ci'))];
  const sizes = [`n${s.n}`, `c${s.c}`, ...spatial.map((d) => `${d}${s[d]}`), ...window.map((w) => `${w}${s[w]}`), ...windowSpecOptions(o)];
  const { input, output, outputOffset } = windowTensors(op, s, o, outSize, { in: s.c!, out: s.c! }, isMax ? -Infinity : 0);
  const p = makeProblem({
    op, spec: `${op} ${sizes.join(' ')}`,
    vars: names.map((name, i) => ({ name, extent: extents[i]! })),
    tensors: [output, input],
    output: { tensor: 0, index: [...idx(v('n')), ...block, ...idx(...spatial.map(v)), ...lane], ...(outputOffset > 0 ? { offset: outputOffset } : {}) },
    inputs: [{
      tensor: 1,
      index: [
        ...idx(v('n')), ...block,
        ...spatial.map((d, i) => ({ terms: [{ var: v(d), coef: stride }, { var: v(window[i]!), coef: dilation }] })),
        ...lane,
      ],
    }],
    combine: isMax ? 'max' : 'sum',
  });
  if (isMax) return p;
  const windowPoints = window.reduce((a, w) => a * s[w]!, 1);
  return makeProblem(withEpilogue(p, [{ kind: 'scale', value: 1 / windowPoints }], null, false));
}

/** Window sizes, stride, dilation and pads (per spatial dimension) of a pool, read back from its accesses. Fails for other ops. */
export function poolAttributes(p: Problem): {
  readonly window: readonly number[]; readonly stride: readonly number[]; readonly dilation: readonly number[]; readonly pads: readonly number[];
} {
  if (!isPoolOp(p.op)) fail(`${p.spec} is not a pooling`);
  const spatial = SPATIAL[p.op], window = WINDOW[p.op];
  const coefOf = (dim: number, name: string): number =>
    p.inputs[0]!.index[dim]!.terms.find((t) => p.vars[t.var]!.name === name)?.coef ?? 1;
  return {
    window: window.map((w) => p.vars.find((x) => x.name === w)!.extent),
    stride: spatial.map((d, i) => coefOf(2 + i, d)),
    dilation: window.map((w, i) => coefOf(2 + i, w)),
    pads: onnxPads(p, p.op),
  };
}

/**
 * Stride, dilation and groups of a convolution, read back from its accesses (the input's spatial
 * index is out*stride + window*dilation; G is the extent of g, 1 without it). Fails for other ops.
 */
export function convAttributes(p: Problem): ConvAttributes {
  if (!isConvOp(p.op)) fail(`${p.spec} is not a convolution`);
  const coefOf = (dim: number, name: string): number =>
    p.inputs[0]!.index[dim]!.terms.find((t) => p.vars[t.var]!.name === name)?.coef ?? 1;
  const spatial = SPATIAL[p.op], window = WINDOW[p.op];
  // a blocked depthwise conv has no g (its channel is kb*B + ki) and no input-channel variables
  const blockedDepthwise = layoutBlock(p) !== null && !p.vars.some((x) => x.name === 'cb');
  const first = isChannelsLast(p) ? 1 : 2;
  return {
    stride: spatial.map((d, i) => coefOf(first + i, d)),
    dilation: window.map((w, i) => coefOf(first + i, w)),
    groups: p.vars.find((x) => x.name === 'g')?.extent ?? (blockedDepthwise ? p.tensors[2]!.shape[0]! * layoutBlock(p)! : 1),
    pads: onnxPads(p, p.op),
  };
}

function elementwise(op: 'add' | 'mul' | 'relu' | 'copy' | 'transpose', shape: number[]): Problem {
  const vars = shape.map((extent, i) => ({ name: ELEMENTWISE_VARS[i]!, extent }));
  const all = rowMajorVars(shape.length);
  const spec = `${op} ${shape.join('x')}`;
  if (op === 'transpose') {
    return makeProblem({
      op, spec, vars,
      tensors: [{ name: 'O', shape: [shape[1]!, shape[0]!] }, { name: 'A', shape }],
      output: { tensor: 0, index: idx(1, 0) },
      inputs: [{ tensor: 1, index: idx(0, 1) }],
      combine: 'copy',
    });
  }
  const binary = op === 'add' || op === 'mul';
  const combine: Combine = op === 'copy' ? 'copy' : op;
  const tensors: Tensor[] = [{ name: 'O', shape }, { name: 'A', shape }];
  if (binary) tensors.push({ name: 'B', shape });
  return makeProblem({
    op, spec, vars, tensors,
    output: { tensor: 0, index: idx(...all) },
    inputs: binary ? [{ tensor: 1, index: idx(...all) }, { tensor: 2, index: idx(...all) }] : [{ tensor: 1, index: idx(...all) }],
    combine,
  });
}

function reduce(shape: number[], axis: number): Problem {
  const vars = shape.map((extent, i) => ({ name: ELEMENTWISE_VARS[i]!, extent }));
  const kept = rowMajorVars(shape.length).filter((d) => d !== axis);
  const outShape = kept.length === 0 ? [1] : kept.map((d) => shape[d]!);
  return makeProblem({
    op: 'reduce', spec: `reduce ${shape.join('x')} axis${axis}`,
    vars,
    tensors: [{ name: 'O', shape: outShape }, { name: 'A', shape }],
    output: { tensor: 0, index: kept.length === 0 ? [{ terms: [] }] : idx(...kept) },
    inputs: [{ tensor: 1, index: idx(...rowMajorVars(shape.length)) }],
    combine: 'sum',
  });
}
