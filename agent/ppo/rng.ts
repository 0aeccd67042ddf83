/**
 * The agent's random generator: mulberry32 (the same generator as ir's Rng) with its state exposed,
 * so that a checkpoint can store it and a resumed run draws exactly the numbers the uninterrupted
 * run would have drawn.
 */
export class AgentRng {
  state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** uniform in [0, 1) */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

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
