/**
 * One-line problem specs ("matmul 256x256x256", "conv2d n1 c64 h56 w56 k64 r3 s3 stride1") and the
 * same problems as YAML/JSON objects ({ op: matmul, m: 256, n: 256, k: 256 }). Every bad input gets
 * one line saying what is wrong and what was expected.
 */
import { fail } from './errors.ts';
import {
  makeProblem, OPS, type AffineIndex, type Combine, type Op, type Problem, type Tensor,
} from './problem.ts';

/** A problem as an object: the op plus named sizes, or a shape for elementwise ops. */
export interface ProblemObject {
  op: string;
  shape?: number[];
  axis?: number;
  stride?: number;
  [size: string]: unknown;
}

const EXAMPLES: Record<Op, string> = {
  matmul: 'matmul 256x256x256',
  bmm: 'bmm b8 m64 n64 k64',
  conv1d: 'conv1d n1 c64 w56 k64 s3 stride1',
  conv2d: 'conv2d n1 c64 h56 w56 k64 r3 s3 stride1',
  conv3d: 'conv3d n1 c16 d16 h16 w16 k16 t3 r3 s3 stride1',
  add: 'add 1024x1024',
  mul: 'mul 1024x1024',
  relu: 'relu 1024x1024',
  reduce: 'reduce 1024x1024 axis1',
  copy: 'copy 1024x1024',
  transpose: 'transpose 256x512',
};

/** Named sizes each op takes, in spec order; `stride` is optional for convolutions. */
const NAMED_SIZES: Partial<Record<Op, string[]>> = {
  matmul: ['m', 'n', 'k'],
  bmm: ['b', 'm', 'n', 'k'],
  conv1d: ['n', 'c', 'w', 'k', 's'],
  conv2d: ['n', 'c', 'h', 'w', 'k', 'r', 's'],
  conv3d: ['n', 'c', 'd', 'h', 'w', 'k', 't', 'r', 's'],
};

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
  const op = head.toLowerCase();
  if (!isOp(op)) fail(`unknown op '${clip(head)}' (expected one of: ${OPS.join(', ')})`);
  const rest = tokens.slice(1);
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
    return obj;
  }
  if (named) {
    for (const tok of rest) {
      const m = /^([a-z]+)(-?\d+)$/i.exec(tok);
      if (!m) fail(`${op}: cannot read '${clip(tok)}' (expected a name and a positive integer, e.g. ${named[0]}64)`);
      const key = m[1]!.toLowerCase();
      if (key in obj) fail(`${op}: size ${key} given twice`);
      // a number past MAX_SIZE stays text, so that the error quotes the digits, not "Infinity"
      const value = Number(m[2]);
      obj[key] = value > MAX_SIZE ? m[2]! : value;
    }
    return obj;
  }
  // elementwise, reduce, copy, transpose: a shape, then options
  obj.shape = parseShape(op, rest[0], `a shape such as 1024x1024, e.g. "${EXAMPLES[op]}"`);
  for (const tok of rest.slice(1)) {
    const m = /^axis(-?\d+)$/i.exec(tok);
    if (op === 'reduce' && m) obj.axis = Number(m[1]);
    else fail(`${op}: unexpected '${clip(tok)}' (expected e.g. "${EXAMPLES[op]}")`);
  }
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
  const named = NAMED_SIZES[op];
  if (named) {
    const allowed = op.startsWith('conv') ? [...named, 'stride'] : named;
    for (const key of Object.keys(obj)) {
      if (key !== 'op' && !allowed.includes(key)) {
        fail(`${op}: unknown size '${clip(key)}' (expected ${allowed.join(' ')}, e.g. "${EXAMPLES[op]}")`);
      }
    }
    const s: Record<string, number> = {};
    for (const n of named) {
      if (obj[n] === undefined) fail(`${op}: missing size ${n} (expected ${allowed.join(' ')}, e.g. "${EXAMPLES[op]}")`);
      s[n] = positiveInt(op, n, obj[n]);
    }
    const stride = obj.stride === undefined ? 1 : positiveInt(op, 'stride', obj.stride);
    switch (op) {
      case 'matmul': return matmul(s.m!, s.n!, s.k!);
      case 'bmm': return bmm(s.b!, s.m!, s.n!, s.k!);
      default: return conv(op as 'conv1d' | 'conv2d' | 'conv3d', s, stride);
    }
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

/**
 * conv{1,2,3}d, NC(D)HW input, K C (T)RS weights, no padding:
 * O[n, k, oh, ow] += I[n, c, oh*stride + r, ow*stride + s] * W[k, c, r, s].
 * The loop variables h, w (and d) run over OUTPUT positions.
 */
function conv(op: 'conv1d' | 'conv2d' | 'conv3d', s: Record<string, number>, stride: number): Problem {
  const spatial = op === 'conv1d' ? ['w'] : op === 'conv2d' ? ['h', 'w'] : ['d', 'h', 'w'];
  const window = op === 'conv1d' ? ['s'] : op === 'conv2d' ? ['r', 's'] : ['t', 'r', 's'];
  const outSize = spatial.map((dim, i) => {
    const inSize = s[dim]!;
    const k = s[window[i]!]!;
    if (k > inSize) fail(`${op}: kernel size ${window[i]}=${k} is larger than input size ${dim}=${inSize}`);
    return Math.floor((inSize - k) / stride) + 1;
  });
  // variables: n k <spatial outputs> c <window>
  const names = ['n', 'k', ...spatial, 'c', ...window];
  const extents = [s.n!, s.k!, ...outSize, s.c!, ...window.map((w) => s[w]!)];
  const vars = names.map((name, i) => ({ name, extent: extents[i]! }));
  const v = (name: string) => names.indexOf(name);
  const tensors: Tensor[] = [
    { name: 'O', shape: [s.n!, s.k!, ...outSize] },
    { name: 'I', shape: [s.n!, s.c!, ...spatial.map((d) => s[d]!)] },
    { name: 'W', shape: [s.k!, s.c!, ...window.map((w) => s[w]!)] },
  ];
  const inputSpatial: AffineIndex[] = spatial.map((d, i) => ({
    terms: [{ var: v(d), coef: stride }, { var: v(window[i]!), coef: 1 }],
  }));
  const sizes = [`n${s.n}`, `c${s.c}`, ...spatial.map((d) => `${d}${s[d]}`), `k${s.k}`, ...window.map((w) => `${w}${s[w]}`), `stride${stride}`];
  return makeProblem({
    op, spec: `${op} ${sizes.join(' ')}`,
    vars, tensors,
    output: { tensor: 0, index: idx(v('n'), v('k'), ...spatial.map(v)) },
    inputs: [
      { tensor: 1, index: [...idx(v('n'), v('c')), ...inputSpatial] },
      { tensor: 2, index: idx(v('k'), v('c'), ...window.map(v)) },
    ],
    combine: 'fma',
  });
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
