/**
 * Which tasks of a model run in the blocked NCHWc layout, decided on the whole graph: the
 * executor keeps the layout between blocked layers (ir/model/propagate-layout.ts), so a layer's
 * conversions depend on its neighbours' layouts, not on the layer alone. The cost of an
 * assignment is every node's kernel seconds (its task's NCHW or blocked kernel) plus the seconds
 * of the conversions propagateLayout would insert for it (layoutConversions), each charged what
 * the measured conversion of that edge costs (agent/tune-layout.ts timeConversionParts: a blocked
 * node's input, residual or output). A local search from "blocked wherever the twin's kernel alone
 * is faster" flips one task at a time while that lowers the total (a documented simplification
 * of an exact search over 2^tasks assignments; a few passes settle ResNet-50's 20 tasks).
 */
import type { KernelNode, ModelGraph } from '../ir/model/graph.ts';
import { layoutConversions } from '../ir/model/propagate-layout.ts';
import type { ConversionTimes } from './tune-layout.ts';

/** What a task's two layouts cost per call, from its round-0 tunes. */
export interface LayoutOption {
  readonly nchwSeconds: number;
  readonly blockedSeconds: number;
  /** the conversions around one of its nodes: its input into the layout, a +residual into it, its output out of it */
  readonly conversions: ConversionTimes;
  readonly block: number;
}

export interface LayoutDecision {
  /** the specs of the tasks that run blocked */
  readonly blocked: ReadonlySet<string>;
  /** per blocked task: the conversions charged to it, seconds per call of one of its nodes (an average over them) */
  readonly conversionSeconds: ReadonlyMap<string, number>;
  /** kernels and conversions of the tasks with options, one run of the graph */
  readonly seconds: number;
}

const MAX_PASSES = 8;

/** The assignment of `options` (task spec -> its two layouts) with the lowest total seconds found on `g`. */
export function chooseLayouts(g: ModelGraph, options: ReadonlyMap<string, LayoutOption>): LayoutDecision {
  const kernels = g.nodes.filter((n): n is KernelNode => n.kind === 'kernel' && options.has(n.problem.spec));
  const specOf = new Map(kernels.map((n) => [n.name, n.problem.spec]));
  const count = new Map<string, number>();
  for (const n of kernels) count.set(n.problem.spec, (count.get(n.problem.spec) ?? 0) + 1);

  const evaluate = (blocked: ReadonlySet<string>): { seconds: number; charged: Map<string, number> } => {
    const nodes = new Map<string, number>();
    for (const n of kernels) if (blocked.has(n.problem.spec)) nodes.set(n.name, options.get(n.problem.spec)!.block);
    let seconds = 0;
    for (const n of kernels) {
      const o = options.get(n.problem.spec)!;
      seconds += blocked.has(n.problem.spec) ? o.blockedSeconds : o.nchwSeconds;
    }
    const charged = new Map<string, number>();
    const charge = (node: string, s: number): void => {
      const spec = specOf.get(node)!;
      charged.set(spec, (charged.get(spec) ?? 0) + s);
      seconds += s;
    };
    const c = layoutConversions(g, nodes);
    for (const t of c.to) {
      const o = options.get(specOf.get(t.reader)!)!;
      charge(t.reader, t.operand === 0 ? o.conversions.input : o.conversions.residual ?? o.conversions.input);
    }
    for (const f of c.from) charge(f.producer, options.get(specOf.get(f.producer)!)!.conversions.output);
    return { seconds, charged };
  };

  let blocked = new Set([...options].filter(([, o]) => o.blockedSeconds < o.nchwSeconds).map(([spec]) => spec));
  let best = evaluate(blocked);
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    let improved = false;
    for (const spec of options.keys()) {
      const flipped = new Set(blocked);
      if (flipped.has(spec)) flipped.delete(spec);
      else flipped.add(spec);
      const e = evaluate(flipped);
      if (e.seconds < best.seconds - 1e-12) {
        blocked = flipped;
        best = e;
        improved = true;
      }
    }
    if (!improved) break;
  }
  const conversionSeconds = new Map([...blocked].map((spec) => [spec, (best.charged.get(spec) ?? 0) / count.get(spec)!]));
  return { blocked, conversionSeconds, seconds: best.seconds };
}
