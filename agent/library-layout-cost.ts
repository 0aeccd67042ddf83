/**
 * What choosing the library for a task costs outside its own call: OpenBLAS reads and writes its
 * tensors dense, as the problem has them, so the memory plan cannot fold a row-moving transpose
 * into it (ir/model/memory-plan.ts folds BERT's head split and merge into the generated bmm's
 * accesses). Each such transpose then runs as a JavaScript host op on every run: on the BERT
 * layer at 2 threads, four of them (0.25-0.35 ms each) beside two bmm calls of 0.27-0.53 ms.
 * tuneModel adds these seconds to the library's side of the comparison.
 */
import { randomArray } from '../ir/interpret.ts';
import type { HostNode, ModelGraph } from '../ir/model/graph.ts';
import { planModelMemory } from '../ir/model/memory-plan.ts';
import { prepareHostOp } from '../targets/runtime/host-ops.ts';

const REPS = 5;

/** The transposes the plan folds when every kernel may be rewritten, but not when the nodes of `library` may not. */
export function transposesLeftByLibrary(g: ModelGraph, library: ReadonlySet<string>): HostNode[] {
  // only a transpose next to one of the nodes can be at stake: most tasks have none, and need no plan
  const touched = new Set(g.nodes.filter((n) => n.kind === 'kernel' && library.has(n.name)).flatMap((n) => (n.kind === 'kernel' ? [...n.operands, n.output] : [])));
  if (!g.nodes.some((n) => n.kind === 'host' && n.op.kind === 'transpose' && (touched.has(n.output) || touched.has(n.inputs[0]!)))) return [];
  const all = planModelMemory(g, {});
  const without = planModelMemory(g, { rewritable: (n) => !library.has(n.name) });
  return g.nodes.filter((n, i): n is HostNode => n.kind === 'host' && n.op.kind === 'transpose' && all.nodes[i]!.alias && !without.nodes[i]!.alias);
}

/** Seconds per run of those transposes as host ops (best of a few runs each, on random data). */
export function libraryLayoutSeconds(g: ModelGraph, library: ReadonlySet<string>): number {
  const shapeOf = (name: string): readonly number[] => (g.values.get(name) ?? g.weights.get(name))!.shape;
  let total = 0;
  for (const n of transposesLeftByLibrary(g, library)) {
    const input = shapeOf(n.inputs[0]!), output = shapeOf(n.output);
    const run = prepareHostOp(n.op, [input], output);
    const x = randomArray(input.reduce((a, b) => a * b, 1), 3);
    const y = new Float32Array(output.reduce((a, b) => a * b, 1));
    let best = Infinity;
    for (let r = 0; r < REPS; r++) {
      const t0 = performance.now();
      run([x], y);
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    total += best;
  }
  return total;
}
