/**
 * The agent's random generator: ir's seeded Rng (whose state a checkpoint stores) plus the draws
 * PPO needs: normals, permutations, masked categorical samples.
 */
import { Rng } from '../../ir/random.ts';

export class AgentRng extends Rng {
  /** standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i >= 1; i--) {
      const j = this.int(0, i);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }

  /**
   * Index drawn from the categorical distribution exp(logProbs) restricted to `mask` (renormalized
   * over the allowed entries, so an illegal action is never drawn, whatever its probability).
   */
  categorical(logProbs: ArrayLike<number>, mask?: readonly boolean[]): number {
    let total = 0;
    let last = -1;
    for (let i = 0; i < logProbs.length; i++) {
      if (mask && !mask[i]) continue;
      total += Math.exp(logProbs[i]!);
      last = i;
    }
    if (last < 0) throw new RangeError('categorical: the mask allows no action');
    let u = this.next() * total;
    for (let i = 0; i < logProbs.length; i++) {
      if (mask && !mask[i]) continue;
      u -= Math.exp(logProbs[i]!);
      if (u < 0) return i;
    }
    return last;
  }
}
