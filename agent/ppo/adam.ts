/**
 * Adam (Kingma & Ba; PyTorch's update rule) over a fixed list of variables, with its whole state
 * (step count, first and second moments) readable and writable, so that a checkpoint restores the
 * optimizer exactly. The learning rate is an argument of every step (PPO anneals it).
 */
import { tf } from '../backend.ts';

export interface AdamState {
  step: number;
  /** first moments, one per variable, in variable order. */
  m: Float32Array[];
  /** second moments. */
  v: Float32Array[];
}

export class Adam {
  step = 0;
  readonly #vars: readonly tf.Variable[];
  readonly #m: tf.Variable[];
  readonly #v: tf.Variable[];

  constructor(vars: readonly tf.Variable[], readonly beta1 = 0.9, readonly beta2 = 0.999, readonly eps = 1e-5) {
    this.#vars = vars;
    this.#m = vars.map((x) => tf.variable(tf.zerosLike(x), false));
    this.#v = vars.map((x) => tf.variable(tf.zerosLike(x), false));
  }

  /** one update: x -= lr * m_hat / (sqrt(v_hat) + eps). `grads` in variable order. */
  apply(grads: readonly tf.Tensor[], lr: number): void {
    if (grads.length !== this.#vars.length) throw new RangeError(`Adam: ${grads.length} gradients for ${this.#vars.length} variables`);
    this.step++;
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2 = 1 - this.beta2 ** this.step;
    tf.tidy(() => {
      grads.forEach((g, i) => {
        const m = tf.add(tf.mul(this.beta1, this.#m[i]!), tf.mul(1 - this.beta1, g));
        const v = tf.add(tf.mul(this.beta2, this.#v[i]!), tf.mul(1 - this.beta2, tf.square(g)));
        this.#m[i]!.assign(m);
        this.#v[i]!.assign(v);
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), this.eps));
        this.#vars[i]!.assign(tf.sub(this.#vars[i]!, tf.mul(lr, update)));
      });
    });
  }

  getState(): AdamState {
    return {
      step: this.step,
      m: this.#m.map((t) => t.dataSync() as Float32Array).map((a) => a.slice()),
      v: this.#v.map((t) => t.dataSync() as Float32Array).map((a) => a.slice()),
    };
  }

  setState(s: AdamState): void {
    if (s.m.length !== this.#m.length || s.v.length !== this.#v.length) throw new RangeError('Adam state does not match the variables');
    this.step = s.step;
    const put = (dst: tf.Variable[], src: Float32Array[]) => dst.forEach((d, i) => {
      if (src[i]!.length !== d.size) throw new RangeError(`Adam state entry ${i} has ${src[i]!.length} values, expected ${d.size}`);
      d.assign(tf.tensor(src[i]!, d.shape));
    });
    tf.tidy(() => {
      put(this.#m, s.m);
      put(this.#v, s.v);
    });
  }

  dispose(): void {
    tf.dispose([...this.#m, ...this.#v]);
  }
}
