/**
 * Layout propagation: the graph a model runs when some of its convs and pools run in the blocked
 * NCHWc layout (ir/layout.ts). Each such node becomes its blocked twin (blockedVariant) reading
 * and writing blocked values, with its weights packed once here; a value passes between two
 * blocked nodes as it is (no conversion), and conversion nodes (the toBlocked / fromBlocked copy
 * problems, compiled like any kernel) appear only at the edges of a blocked region:
 *   - toBlocked before the first blocked consumer of a value that is not produced blocked (a
 *     graph input, the output of a plain kernel or a host op);
 *   - fromBlocked right after a blocked producer whose value is also read in NCHW (a plain
 *     kernel, a host op, a graph output).
 * The memory plan (memory-plan.ts) then treats twins and conversions as ordinary kernel nodes: a
 * producer writes straight inside the border of the next padded conv's blocked input, a residual
 * reads the interior, and buffers are reused by lifetime, so between blocked layers a run makes
 * no copy at all (where each blocked node used to convert its input, residual and output).
 *
 * A blocked value is named `<value>@nchw<B>c`, its conversion nodes `<value>@nchw<B>c` (to) and
 * `<value>` + ' from nchw<B>c' (from); a twin keeps its node's name and sources, and `task` names
 * the layer's own spec (the tuned task whose schedule, of the twin, runs it).
 */
import { fail } from '../errors.ts';
import { blockedVariant, fromBlocked, packBlockedWeights, residualTensor, toBlocked, whyNotBlocked } from '../layout.ts';
import { dataShape, type Problem } from '../problem.ts';
import { isConvOp } from '../spec.ts';
import { nodeInputs, type KernelNode, type ModelGraph, type ModelNode, type ModelValue, type ModelWeight } from './graph.ts';

/** The operands of a twin that are activations in the blocked layout: the input, and a +residual. */
function blockedOperands(problem: Problem): number[] {
  const residual = residualTensor(problem);
  return residual === null ? [0] : [0, residual - 1];
}

function blockedName(value: string, B: number): string {
  return `${value}@nchw${B}c`;
}

/** The conversions a blocked assignment costs: what propagateLayout inserts, before it does. */
export interface LayoutConversions {
  /** values converted into the blocked layout, each once, for its first blocked reader (`operand` of node `reader`) */
  readonly to: readonly { readonly value: string; readonly reader: string; readonly operand: number }[];
  /** values a blocked node writes that are also read in NCHW: converted back right after `producer` */
  readonly from: readonly { readonly value: string; readonly producer: string }[];
}

/** The conversions propagateLayout(g, blocked) inserts (see the top of this file); `blocked` is not checked here. */
export function layoutConversions(g: ModelGraph, blocked: ReadonlyMap<string, number>): LayoutConversions {
  const producer = new Map<string, ModelNode>(g.nodes.map((n) => [n.output, n]));
  const producedBlocked = (v: string): number | undefined => {
    const p = producer.get(v);
    return p === undefined ? undefined : blocked.get(p.name);
  };
  const readNchw = new Set<string>(g.outputs.map((o) => o.name));
  const to: { value: string; reader: string; operand: number }[] = [];
  const converted = new Set<string>();
  for (const n of g.nodes) {
    const B = blocked.get(n.name);
    const asBlocked = n.kind === 'kernel' && B !== undefined ? new Set(blockedOperands(n.problem)) : new Set<number>();
    nodeInputs(n).forEach((v, i) => {
      const from = producedBlocked(v);
      // read in NCHW: by a plain node, or by a blocked one of another block (through NCHW)
      if (!asBlocked.has(i) || (from !== undefined && from !== B)) readNchw.add(v);
      if (asBlocked.has(i) && from !== B && !converted.has(blockedName(v, B!))) {
        converted.add(blockedName(v, B!));
        to.push({ value: v, reader: n.name, operand: i });
      }
    });
  }
  const from = g.nodes.filter((n) => blocked.has(n.name) && readNchw.has(n.output)).map((n) => ({ value: n.output, producer: n.name }));
  return { to, from };
}

/**
 * `g` with the nodes of `blocked` (node name -> block B) running as their blocked twins and
 * conversions at the edges (see the top of this file). Fails in one line for a node that is not a
 * kernel of `g` or has no blocked twin with its B. The result's values include the blocked ones;
 * weights no node reads any more are dropped.
 */
export function propagateLayout(g: ModelGraph, blocked: ReadonlyMap<string, number>): ModelGraph {
  if (blocked.size === 0) return g;
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  for (const [name, B] of blocked) {
    const n = byName.get(name);
    if (n === undefined || n.kind !== 'kernel') fail(`propagateLayout: ${name} is not a kernel node of ${g.name}`);
    const why = whyNotBlocked(n.problem, B);
    if (why !== null) fail(`propagateLayout: node ${name} cannot run blocked: ${why}`);
  }
  const conversions = layoutConversions(g, blocked);
  const convertTo = new Set(conversions.to.map((c) => `${c.reader}|${c.operand}`));
  const convertFrom = new Set(conversions.from.map((c) => c.producer));

  const values = new Map<string, ModelValue>(g.values);
  const weights = new Map<string, ModelWeight>(g.weights);
  const nodes: ModelNode[] = [];
  const addValue = (name: string, shape: readonly number[]): void => {
    values.set(name, { name, shape });
  };
  const packedWeight = (n: KernelNode, twin: Problem, name: string, B: number): string => {
    const packed = blockedName(name, B);
    if (!weights.has(packed)) {
      const w = g.weights.get(name);
      if (w === undefined) fail(`propagateLayout: node ${n.name} reads weights '${name}', which are not a weight of ${g.name}`);
      weights.set(packed, { name: packed, shape: dataShape(twin.tensors[2]!), data: packBlockedWeights(n.problem, B, w.data) });
    }
    return packed;
  };

  for (const n of g.nodes) {
    const B = blocked.get(n.name);
    if (n.kind !== 'kernel' || B === undefined) {
      nodes.push(n);
      continue;
    }
    const twin = blockedVariant(n.problem, B)!;
    const activations = new Set(blockedOperands(n.problem));
    const operands = n.operands.map((v, i) => {
      if (i === 1 && isConvOp(n.problem.op)) return packedWeight(n, twin, v, B);
      if (!activations.has(i)) return v; // a bias: the same array in both layouts
      const name = blockedName(v, B);
      if (convertTo.has(`${n.name}|${i}`)) {
        // into the blocked layout once, just before its first blocked reader
        const shape = g.values.get(v)?.shape;
        if (shape === undefined) fail(`propagateLayout: node ${n.name} reads '${v}' in the blocked layout, but it is not a value of ${g.name}`);
        const problem = toBlocked(shape, B);
        addValue(name, dataShape(problem.tensors[0]!));
        nodes.push({ kind: 'kernel', name, problem, output: name, operands: [v], sources: [] });
      }
      return name;
    });
    const output = blockedName(n.output, B);
    addValue(output, dataShape(twin.tensors[0]!));
    nodes.push({ kind: 'kernel', name: n.name, problem: twin, output, operands, sources: n.sources, task: n.problem.spec });
    if (convertFrom.has(n.name)) {
      nodes.push({ kind: 'kernel', name: `${n.output} from nchw${B}c`, problem: fromBlocked(dataShape(n.problem.tensors[0]!), B), output: n.output, operands: [output], sources: [] });
    } else {
      values.delete(n.output);
    }
  }
  const read = new Set(nodes.flatMap((n) => [...nodeInputs(n)]));
  for (const name of [...weights.keys()]) if (!read.has(name)) weights.delete(name);
  return { ...g, values, weights, nodes };
}
