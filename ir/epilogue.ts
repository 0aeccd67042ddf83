/**
 * Epilogue tokens of the spec syntax ("+bias +relu", "+clip0,6", "+gelu") and the ops they add to a
 * problem: each reads the complete output element and, for bias and residual, one more tensor.
 *
 *   +bias      out += bias[channel]  (a convolution's output channel; a matmul's column n)
 *   +residual  out += R[same position]  (R has the output's data shape: ResNet's skip connection)
 *   +relu      out = max(out, 0)
 *   +relu6     out = min(max(out, 0), 6)  (the same as +clip0,6)
 *   +clip<a>,<b>  out = min(max(out, a), b)
 *   +sigmoid   out = 1 / (1 + exp(-out))
 *   +gelu      out = out/2 * (1 + erf(out / sqrt 2))  (the erf form, as BERT's graph computes it)
 *   +scale<v>  out *= v  (what an average pool divides by; printed only when given by the user)
 * They apply in the order written.
 */
import { fail } from './errors.ts';
import { dataShape, type AffineIndex, type EpilogueOp, type Problem, type Tensor } from './problem.ts';

const NUMBER = '-?(?:\\d+\\.?\\d*|\\.\\d+)(?:e-?\\d+)?';
const CLIP = new RegExp(`^clip(${NUMBER}),(${NUMBER})$`, 'i');
const SCALE = new RegExp(`^scale(${NUMBER})$`, 'i');

/** An epilogue op before its tensor (if any) is placed: what a token says. */
export type EpilogueToken =
  | { kind: 'bias' } | { kind: 'residual' } | { kind: 'relu' } | { kind: 'sigmoid' } | { kind: 'gelu' }
  | { kind: 'clip'; min: number; max: number } | { kind: 'scale'; value: number };

export const EPILOGUE_HELP = '+bias, +residual, +relu, +relu6, +clip<min>,<max>, +sigmoid, +gelu, +scale<v>';

/** Reads one token, without its '+'. */
export function parseEpilogueToken(op: string, raw: string): EpilogueToken {
  const t = raw.toLowerCase();
  if (t === 'bias' || t === 'residual' || t === 'relu' || t === 'sigmoid' || t === 'gelu') return { kind: t };
  if (t === 'relu6') return { kind: 'clip', min: 0, max: 6 };
  const clip = CLIP.exec(t);
  if (clip) {
    const min = Number(clip[1]), max = Number(clip[2]);
    if (!(min <= max)) fail(`${op}: +clip needs min <= max, got ${min},${max}`);
    return { kind: 'clip', min, max };
  }
  const scale = SCALE.exec(t);
  if (scale && Number.isFinite(Number(scale[1]))) return { kind: 'scale', value: Number(scale[1]) };
  fail(`${op}: unknown epilogue '+${raw.slice(0, 40)}' (expected ${EPILOGUE_HELP})`);
}

/** The canonical token of an op (without '+'). */
export function epilogueTokenText(e: EpilogueToken | EpilogueOp): string {
  switch (e.kind) {
    case 'clip': return e.min === 0 && e.max === 6 ? 'relu6' : `clip${e.min},${e.max}`;
    case 'scale': return `scale${e.value}`;
    default: return e.kind;
  }
}

/**
 * Where a +bias reads: an output dimension (bias[i] follows that dimension's index), or an explicit
 * index expression over the output's variables and the bias length (a blocked layout's channel
 * kb*B + ki spans two dimensions).
 */
export type BiasChannel = number | { readonly index: AffineIndex; readonly size: number };

/**
 * The problem with these epilogue ops appended (after any it has). A bias follows `channel` (null:
 * the op has no channel, and +bias is refused); a residual has the output's data shape.
 * `printed`: whether the tokens join the canonical spec (an average pool's own scale does not).
 */
export function withEpilogue(p: Problem, tokens: readonly EpilogueToken[], channel: BiasChannel | null, printed = true): Problem {
  if (tokens.length === 0) return p;
  const tensors: Tensor[] = [...p.tensors];
  const ops: EpilogueOp[] = [...(p.epilogue ?? [])];
  const out = p.tensors[0]!;
  for (const tok of tokens) {
    if (tok.kind === 'bias') {
      if (channel === null) fail(`${p.op}: +bias needs a channel dimension (convolutions and matmuls have one)`);
      if (ops.some((o) => o.kind === 'bias')) fail(`${p.op}: +bias given twice`);
      const at = typeof channel === 'number' ? { index: p.output.index[channel]!, size: dataShape(out)[channel]! } : channel;
      tensors.push({ name: 'bias', shape: [at.size] });
      ops.push({ kind: 'bias', access: { tensor: tensors.length - 1, index: [at.index] } });
    } else if (tok.kind === 'residual') {
      if (ops.some((o) => o.kind === 'residual')) fail(`${p.op}: +residual given twice`);
      tensors.push({ name: 'R', shape: dataShape(out) });
      ops.push({ kind: 'residual', access: { tensor: tensors.length - 1, index: p.output.index } });
    } else {
      ops.push(tok);
    }
  }
  const spec = printed ? `${p.spec} ${tokens.map((t) => `+${epilogueTokenText(t)}`).join(' ')}` : p.spec;
  return { ...p, spec, tensors, epilogue: ops };
}
