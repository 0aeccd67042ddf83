/** One-line descriptions of the plan a kernel came from (`looptune show`). */
import type { Kernel } from './kernel.ts';

/** The CPU lowering's register-tile decision. */
export function describeDecision(k: Kernel): string {
  const d = k.program.decision;
  const p = k.program.problem;
  const vec = d.vectorVar === null ? `scalar (${d.scalarReason ?? 'no unit-stride variable'})` : `${d.lanes} lanes along ${p.vars[d.vectorVar]!.name}`;
  return `${d.accumulators} accumulators, ${d.unrolledOps} unrolled ops per body, ${vec}; unrolled from loop ${d.unrollFrom}, registers held from loop ${d.tileFrom}`;
}
