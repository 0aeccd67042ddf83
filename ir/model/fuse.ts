/**
 * Graph rewrites that move work into kernels' epilogues (ir/epilogue.ts), so a conv + batch norm
 * + bias + residual + ReLU is ONE kernel and its intermediates never reach memory. Each rewrite
 * fires only where the intermediate value has exactly one consumer (one read, counting a node
 * that reads it twice as two) and is not a graph output, so no value anyone else reads disappears:
 *
 *   GELU chain  x*0.5*(1+erf(x/sqrt2)) in any operand order (Div by sqrt 2 or Mul by 1/sqrt 2,
 *               the 0.5 applied first or last) → one host gelu node, which then fuses as below
 *   kernel → Mul by a per-channel (or scalar) constant, where the kernel is a conv, or a matmul with
 *               constant B, and its epilogue is at most a bias: folded into the weights and bias
 *               (batch norm's scale after a conv); a scalar Mul or Div after anything else → +scale
 *   kernel → Add (Sub) of a per-output-channel constant → +bias (summed into an existing lone bias)
 *   kernel → Add of another tensor of the output's shape → +residual
 *   kernel → Relu, Clip (0,6 → +relu6; other constant bounds → +clip), Sigmoid, gelu → that op
 *
 * The fused kernel keeps the producer's name, writes the consumer's output and takes the
 * consumer's place in the node order (its inputs all come earlier); `sources` lists every ONNX
 * node absorbed. Weights nothing reads any more are dropped.
 */
import { LoopTuneError } from '../errors.ts';
import type { Problem } from '../problem.ts';
import { isConvOp, parseProblem } from '../spec.ts';
import { nodeInputs, type BinaryOp, type HostNode, type KernelNode, type ModelGraph, type ModelNode, type ModelValue, type ModelWeight } from './graph.ts';

/** A constant equal to `want` up to exporters' rounding (1.41421 for sqrt 2 is common). */
const CONSTANT_TOLERANCE = 1e-5;

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The graph with every rewrite above applied until none fires. */
export function fuseGraph(g: ModelGraph): ModelGraph {
  const work = new Rewriter(g);
  work.geluChains();
  while (work.fuseEpilogues()) { /* each pass may enable more (a bias, then a ReLU) */ }
  return work.graph();
}

class Rewriter {
  /** null marks a node a rewrite removed */
  private nodes: (ModelNode | null)[];
  private readonly weights: Map<string, ModelWeight>;
  private readonly outputs: Set<string>;

  constructor(private readonly g: ModelGraph) {
    this.nodes = [...g.nodes];
    this.weights = new Map(g.weights);
    this.outputs = new Set(g.outputs.map((o) => o.name));
  }

  graph(): ModelGraph {
    const nodes = this.nodes.filter((n): n is ModelNode => n !== null);
    const read = new Set(nodes.flatMap((n) => nodeInputs(n)));
    const weights = new Map([...this.weights].filter(([name]) => read.has(name)));
    const values = new Map<string, ModelValue>(this.g.inputs.map((v) => [v.name, v]));
    for (const n of nodes) values.set(n.output, this.g.values.get(n.output)!);
    return { ...this.g, nodes, weights, values };
  }

  /** name → the (node index, input position) of every read, over the live nodes */
  private reads(): Map<string, { node: number; at: number }[]> {
    const reads = new Map<string, { node: number; at: number }[]>();
    this.nodes.forEach((n, i) => {
      if (n === null) return;
      nodeInputs(n).forEach((name, at) => {
        const list = reads.get(name) ?? [];
        list.push({ node: i, at });
        reads.set(name, list);
      });
    });
    return reads;
  }

  /** The one node reading `name`, or null when it is read more than once, never, or is a graph output. */
  private soleConsumer(reads: Map<string, { node: number; at: number }[]>, name: string): number | null {
    const r = reads.get(name);
    return r?.length === 1 && !this.outputs.has(name) ? r[0]!.node : null;
  }

  private shapeOf(name: string): readonly number[] {
    return (this.g.values.get(name) ?? this.weights.get(name))!.shape;
  }

  /** The value of a one-element weight, else null. */
  private scalar(name: string): number | null {
    const w = this.weights.get(name);
    return w !== undefined && w.data.length === 1 ? w.data[0]! : null;
  }

  private newWeight(base: string, shape: readonly number[], data: Float32Array): string {
    let name = base;
    for (let i = 1; this.weights.has(name) || this.g.values.has(name); i++) name = `${base}_${i}`;
    this.weights.set(name, { name, shape: [...shape], data });
    return name;
  }

  /** Replaces every x*0.5*(1+erf(x/sqrt2)) chain of host nodes by one host gelu node. */
  geluChains(): void {
    const near = (v: number | null, want: number) => v !== null && Math.abs(v - want) <= CONSTANT_TOLERANCE * Math.abs(want);
    /** the host binary node at i as its op, its other input and the scalar constant, when one input is a one-element weight (second for sub and div) */
    const withScalar = (i: number | null): { node: HostNode; op: BinaryOp; x: string; c: number } | null => {
      const n = i === null ? null : this.nodes[i];
      if (n?.kind !== 'host' || n.op.kind !== 'binary') return null;
      const [p, q] = n.inputs as [string, string];
      const cq = this.scalar(q), cp = this.scalar(p);
      if (cq !== null) return { node: n, op: n.op.op, x: p, c: cq };
      if (cp !== null && (n.op.op === 'add' || n.op.op === 'mul')) return { node: n, op: n.op.op, x: q, c: cp };
      return null;
    };
    const mulAt = (i: number | null): HostNode | null => {
      const n = i === null ? null : this.nodes[i];
      return n?.kind === 'host' && n.op.kind === 'binary' && n.op.op === 'mul' ? n : null;
    };
    for (let i = 0; i < this.nodes.length; i++) {
      const d = withScalar(i);
      if (d === null || this.weights.has(d.x)) continue;
      if (!((d.op === 'div' && near(d.c, Math.SQRT2)) || (d.op === 'mul' && near(d.c, Math.SQRT1_2)))) continue;
      const x = d.x;
      const reads = this.reads();
      const one = (name: string) => this.soleConsumer(reads, name);
      const erfAt = one(d.node.output);
      const erfNode = erfAt === null ? null : this.nodes[erfAt];
      if (erfNode?.kind !== 'host' || erfNode.op.kind !== 'unary' || erfNode.op.op !== 'erf') continue;
      const addAt = one(erfNode.output);
      const add = withScalar(addAt);
      if (add === null || add.op !== 'add' || add.x !== erfNode.output || !near(add.c, 1)) continue;
      // now 0.5 * x * (1 + erf): two Muls, in one of three associations
      const m1At = one(add.node.output);
      const m1 = mulAt(m1At);
      if (m1 === null) continue;
      const other = m1.inputs[0] === add.node.output ? m1.inputs[1]! : m1.inputs[0]!;
      const chain: number[] = [i, erfAt!, addAt!, m1At!];
      let last: HostNode | null = null;
      if (other === x) {
        // (x * (1 + erf)) * 0.5
        const m2At = one(m1.output);
        const m2 = withScalar(m2At);
        if (m2 !== null && m2.op === 'mul' && m2.x === m1.output && near(m2.c, 0.5)) {
          last = m2.node;
          chain.push(m2At!);
        }
      } else if (near(this.scalar(other), 0.5)) {
        // x * ((1 + erf) * 0.5)
        const m2At = one(m1.output);
        const m2 = mulAt(m2At);
        if (m2 !== null && m2.inputs.includes(x) && m2.inputs.includes(m1.output)) {
          last = m2;
          chain.push(m2At!);
        }
      } else {
        // (x * 0.5) * (1 + erf)
        const hAt = this.nodes.findIndex((n) => n?.output === other);
        const h = withScalar(hAt < 0 ? null : hAt);
        if (h !== null && h.op === 'mul' && h.x === x && near(h.c, 0.5) && one(other) === m1At) {
          last = m1;
          chain.push(hAt!);
        }
      }
      // the constants must not broadcast x to a larger shape
      if (last === null || this.shapeOf(last.output).join() !== this.shapeOf(x).join()) continue;
      const at = Math.max(...chain);
      const sources = mergeSources(...chain.sort((p, q) => p - q).map((c) => this.nodes[c]!.sources));
      for (const c of chain) this.nodes[c] = null;
      this.nodes[at] = { kind: 'host', name: last.name, op: { kind: 'unary', op: 'gelu' }, inputs: [x], output: last.output, sources };
    }
  }

  /** One pass over the kernels, fusing each one's sole consumer where a rule applies; whether any fired. */
  fuseEpilogues(): boolean {
    let fired = false;
    const reads = this.reads();
    for (let i = 0; i < this.nodes.length; i++) {
      const k = this.nodes[i];
      if (k?.kind !== 'kernel') continue;
      const at = this.soleConsumer(reads, k.output);
      const c = at === null ? null : this.nodes[at];
      if (c?.kind !== 'host') continue;
      const fused = this.fuse(k, c);
      if (fused === null) continue;
      this.nodes[i] = null;
      this.nodes[at!] = fused;
      fired = true;
    }
    return fired;
  }

  /** The kernel with host node c folded in, or null when no rule applies. */
  private fuse(k: KernelNode, c: HostNode): KernelNode | null {
    const y = k.output;
    const op = c.op;
    const into = (problem: Problem | null, operands: readonly string[]): KernelNode | null =>
      problem === null ? null : { ...k, problem, operands, output: c.output, sources: mergeSources(k.sources, c.sources) };
    if (op.kind === 'unary') {
      return op.op === 'relu' || op.op === 'sigmoid' || op.op === 'gelu' ? into(withToken(k.problem, op.op), k.operands) : null;
    }
    if (op.kind === 'clip') {
      const token = op.min === 0 && op.max === 6 ? 'relu6' : op.min === 0 && op.max === Infinity ? 'relu' : `clip${op.min},${op.max}`;
      return Number.isFinite(op.min) || token === 'relu' ? into(withToken(k.problem, token), k.operands) : null;
    }
    if (op.kind !== 'binary') return null;
    const [p, q] = c.inputs as [string, string];
    if (p === q) return null;
    const yFirst = p === y;
    const other = yFirst ? q : p;
    // the consumer must not broadcast the kernel's output to a larger shape
    if (this.shapeOf(c.output).join() !== this.shapeOf(y).join()) return null;
    const perChannel = this.weights.has(other) ? this.channelVector(k, other) : null;
    const scalar = this.scalar(other);
    const epilogue = k.problem.epilogue ?? [];
    const onlyBias = epilogue.length === 0 || (epilogue.length === 1 && epilogue[0]!.kind === 'bias');
    switch (op.op) {
      case 'add': case 'sub': {
        if (op.op === 'sub' && !yFirst) return null;
        if (perChannel !== null) return this.addBias(k, c, op.op === 'sub' ? perChannel.map((v) => -v) : perChannel);
        if (op.op === 'add' && !epilogue.some((e) => e.kind === 'residual') && this.shapeOf(other).join() === this.shapeOf(y).join()) {
          return into(withToken(k.problem, 'residual'), [...k.operands, other]);
        }
        return null;
      }
      case 'mul': case 'div': {
        if (op.op === 'div' && !yFirst) return null;
        const invert = (v: Float32Array) => (op.op === 'div' ? v.map((x) => 1 / x) : v);
        const foldable = onlyBias && perChannel !== null && this.foldsIntoWeights(k, scalar !== null);
        if (foldable) return this.scaleWeights(k, c, invert(perChannel));
        if (scalar !== null) return into(withToken(k.problem, `scale${op.op === 'div' ? 1 / scalar : scalar}`), k.operands);
        return null;
      }
      default:
        return null;
    }
  }

  /**
   * Whether a channel scale folds into k's constant weights: a conv's, or (not for a scalar,
   * which a matmul takes as +scale) a matmul's constant B.
   */
  private foldsIntoWeights(k: KernelNode, isScalar: boolean): boolean {
    if (isConvOp(k.problem.op)) return this.weights.has(k.operands[1]!);
    return k.problem.op === 'matmul' && !isScalar && this.weights.has(k.operands[1]!);
  }

  /**
   * The per-output-channel values of weight `name` as a bias reads them, or null when it varies
   * along anything but the channel (a conv's dimension 1, a matmul's or bmm's last dimension).
   */
  private channelVector(k: KernelNode, name: string): Float32Array | null {
    if (!isConvOp(k.problem.op) && k.problem.op !== 'matmul' && k.problem.op !== 'bmm') return null;
    const y = this.shapeOf(k.output);
    const w = this.weights.get(name)!;
    const channelDim = isConvOp(k.problem.op) ? 1 : y.length - 1;
    const C = y[channelDim]!;
    if (w.shape.length > y.length) return null;
    const lead = y.length - w.shape.length;
    const varies = w.shape.some((d, j) => d !== 1 && !(j + lead === channelDim && d === C));
    if (varies) return null;
    return w.data.length === 1 ? new Float32Array(C).fill(w.data[0]!) : Float32Array.from(w.data);
  }

  /** k with `vector` added per channel: a new +bias, or summed into a lone existing bias. */
  private addBias(k: KernelNode, c: HostNode, vector: Float32Array): KernelNode | null {
    const epilogue = k.problem.epilogue ?? [];
    const fused = { ...k, output: c.output, sources: mergeSources(k.sources, c.sources) };
    if (epilogue.length === 1 && epilogue[0]!.kind === 'bias') {
      const biasAt = k.problem.inputs.length;
      const old = this.weights.get(k.operands[biasAt]!);
      if (old === undefined) return null;
      const sum = old.data.map((v, i) => v + vector[i]!);
      return { ...fused, operands: k.operands.map((o, i) => (i === biasAt ? this.newWeight(`${k.name}:bias`, old.shape, sum) : o)) };
    }
    if (epilogue.some((e) => e.kind === 'bias')) return null;
    const problem = withToken(k.problem, 'bias');
    return problem === null ? null : { ...fused, problem, operands: [...k.operands, this.newWeight(`${k.name}:bias`, [vector.length], vector)] };
  }

  /** k with its weights (and lone bias) multiplied per output channel: W[k, ...] *= s[k] for a conv, B[:, n] *= s[n] for a matmul. */
  private scaleWeights(k: KernelNode, c: HostNode, s: Float32Array): KernelNode {
    const w = this.weights.get(k.operands[1]!)!;
    const C = s.length;
    const scaled = new Float32Array(w.data.length);
    if (isConvOp(k.problem.op)) {
      // W [K, C/G, window...]: each output channel's filter is one contiguous block
      const inner = w.data.length / C;
      for (let ch = 0; ch < C; ch++) for (let i = ch * inner; i < (ch + 1) * inner; i++) scaled[i] = w.data[i]! * s[ch]!;
    } else {
      for (let i = 0; i < w.data.length; i++) scaled[i] = w.data[i]! * s[i % C]!;
    }
    const operands = [...k.operands];
    operands[1] = this.newWeight(`${k.name}:weights`, w.shape, scaled);
    if ((k.problem.epilogue ?? []).length === 1) {
      const at = k.problem.inputs.length;
      const bias = this.weights.get(operands[at]!);
      if (bias !== undefined) operands[at] = this.newWeight(`${k.name}:bias`, bias.shape, bias.data.map((v, i) => v * s[i]!));
    }
    return { ...k, operands, output: c.output, sources: mergeSources(k.sources, c.sources) };
  }
}

/** The problem with one more epilogue token, or null when its spec refuses it (a bound the spec cannot print, a second bias). */
function withToken(p: Problem, token: string): Problem | null {
  try {
    return parseProblem(`${p.spec} +${token}`);
  } catch (e) {
    if (e instanceof LoopTuneError) return null;
    throw e;
  }
}

/** Source lists joined in order, each ONNX node once (batch norm's scale and shift both name it). */
function mergeSources(...lists: (readonly string[])[]): string[] {
  return [...new Set(lists.flat())];
}
