/**
 * A graph network over ir/graph.ts's loop/tensor/statement graph.
 *
 * Batching: every graph is padded to `maxNodes` nodes (a nest has at most 10 loops, a problem at most
 * 3 tensors, plus the statement: 16 is plenty). Edges become one dense adjacency matrix per relation,
 * six relations: nest, access and compute edges in their own direction and reversed. Rows are
 * normalized by in-degree, so a message is the mean over a relation's neighbours.
 *
 * Layers (all nodes share weights):
 *   h0 = act(x W_in + b)
 *   h_{l+1} = h_l + act([h_l, A_1 h_l, ..., A_6 h_l] W_l + b_l)     (residual; padding nodes masked)
 * Readout: [mean over real nodes, the cursor loop's embedding] -> act(W_h . + b_h) -> heads.
 * The cursor's embedding matters: every action acts at the cursor.
 */
import { tf } from '../backend.ts';
import { NODE_FEATURES, NODE_KINDS, type LoopGraph } from '../../ir/graph.ts';
import {
  ParamStore, activate, applyDense, type Dense, type GnnConfig, type NetworkOutput, type Observation, type PolicyNetwork, type PolicySpec,
} from './network.ts';

export const RELATIONS = ['nest', 'nest_rev', 'access', 'access_rev', 'compute', 'compute_rev'] as const;
const EDGE_KINDS = ['nest', 'access', 'compute'] as const;

export interface EncodedGraphs {
  batch: number;
  nodes: number;
  /** [B, N, F] node features. */
  features: Float32Array;
  /** [B, R*N, N]: block r holds relation r, row = receiving node. */
  adjacency: Float32Array;
  /** [B, N, 1]: 1 for real nodes. */
  mask: Float32Array;
  /** [B, 1, N]: one-hot of the cursor's loop node. */
  cursor: Float32Array;
}

/** Pads and stacks graphs (see the header); throws if one has more than `maxNodes` nodes. */
export function encodeGraphs(graphs: readonly LoopGraph[], maxNodes: number): EncodedGraphs {
  const B = graphs.length, N = maxNodes, F = NODE_FEATURES, R = RELATIONS.length;
  const features = new Float32Array(B * N * F);
  const adjacency = new Float32Array(B * R * N * N);
  const mask = new Float32Array(B * N);
  const cursor = new Float32Array(B * N);
  graphs.forEach((g, b) => {
    if (g.nodes.length > N) throw new RangeError(`graph has ${g.nodes.length} nodes, the network takes at most ${N}`);
    g.nodes.forEach((node, i) => {
      if (node.features.length !== F) throw new RangeError(`node ${i} has ${node.features.length} features, expected ${F}`);
      features.set(node.features, (b * N + i) * F);
      mask[b * N + i] = 1;
      if (node.kind === 'loop' && node.features[NODE_KINDS] === 1) cursor[b * N + i] = 1;
    });
    const base = b * R * N * N;
    for (const e of g.edges) {
      const r = EDGE_KINDS.indexOf(e.kind) * 2;
      adjacency[base + (r * N + e.dst) * N + e.src] = 1;
      adjacency[base + ((r + 1) * N + e.src) * N + e.dst] = 1;
    }
    for (let row = 0; row < R * N; row++) {
      let deg = 0;
      for (let c = 0; c < N; c++) deg += adjacency[base + row * N + c]!;
      if (deg > 1) for (let c = 0; c < N; c++) adjacency[base + row * N + c]! /= deg;
    }
  });
  return { batch: B, nodes: N, features, adjacency, mask, cursor };
}

export class GnnPolicy implements PolicyNetwork {
  readonly spec: PolicySpec;
  readonly #store: ParamStore;
  readonly #config: GnnConfig;
  readonly #embed: Dense;
  readonly #layers: Dense[];
  readonly #head: Dense;
  readonly #pi: Dense;
  readonly #v: Dense;
  readonly #aux: Dense;

  constructor(spec: PolicySpec, seed: number | null) {
    if (spec.gpu) throw new TypeError('the GNN policy does not read GPU bindings yet: use the mlp network on cuda');
    if (spec.network.kind !== 'gnn') throw new TypeError('GnnPolicy needs a gnn network config');
    if (spec.observation !== 'graph') throw new TypeError(`the graph network reads the 'graph' observation, not '${spec.observation}'`);
    this.spec = spec;
    this.#config = spec.network;
    const D = this.#config.hidden;
    this.#store = new ParamStore(seed);
    this.#embed = this.#store.dense('embed', NODE_FEATURES, D, Math.SQRT2);
    this.#layers = Array.from({ length: this.#config.layers }, (_, l) =>
      this.#store.dense(`mp/${l}`, (RELATIONS.length + 1) * D, D, Math.SQRT2));
    this.#head = this.#store.dense('head', 2 * D, this.#config.headHidden, Math.SQRT2);
    this.#pi = this.#store.dense('policy', this.#config.headHidden, spec.actions.length, 0.01);
    this.#v = this.#store.dense('value', this.#config.headHidden, 1, 1);
    this.#aux = this.#store.dense('aux', this.#config.headHidden, 1, 1);
  }

  get params() {
    return this.#store.params;
  }

  inputs(observations: readonly Observation[]): tf.Tensor[] {
    const graphs = observations.map((o) => {
      if (o instanceof Float32Array) throw new TypeError("the graph network needs 'graph' observations");
      return o;
    });
    const e = encodeGraphs(graphs, this.#config.maxNodes);
    const B = e.batch, N = e.nodes;
    return [
      tf.tensor3d(e.features, [B, N, NODE_FEATURES]),
      tf.tensor3d(e.adjacency, [B, RELATIONS.length * N, N]),
      tf.tensor3d(e.mask, [B, N, 1]),
      tf.tensor3d(e.cursor, [B, 1, N]),
    ];
  }

  apply(inputs: readonly tf.Tensor[]): NetworkOutput {
    const [x, adj, mask, cursor] = inputs as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
    const [B, N] = x.shape;
    const D = this.#config.hidden, R = RELATIONS.length, act = this.#config.activation;
    const flat = (t: tf.Tensor, width: number) => tf.reshape(t, [B * N, width]) as tf.Tensor2D;
    let h = tf.mul(tf.reshape(activate(applyDense(this.#embed, flat(x, NODE_FEATURES)), act), [B, N, D]), mask) as tf.Tensor3D;
    for (const layer of this.#layers) {
      const m = tf.reshape(tf.transpose(tf.reshape(tf.matMul(adj, h), [B, R, N, D]), [0, 2, 1, 3]), [B * N, R * D]);
      const z = activate(applyDense(layer, tf.concat([flat(h, D), m], 1) as tf.Tensor2D), act);
      h = tf.mul(tf.add(h, tf.reshape(z, [B, N, D])), mask) as tf.Tensor3D;
    }
    const mean = tf.div(tf.sum(h, 1), tf.sum(mask, 1)) as tf.Tensor2D;
    const cur = tf.reshape(tf.matMul(cursor, h), [B, D]) as tf.Tensor2D;
    const t = activate(applyDense(this.#head, tf.concat([mean, cur], 1) as tf.Tensor2D), act);
    return {
      logits: applyDense(this.#pi, t),
      value: tf.reshape(applyDense(this.#v, t), [-1]) as tf.Tensor1D,
      aux: tf.reshape(applyDense(this.#aux, t), [-1]) as tf.Tensor1D,
    };
  }

  dispose(): void {
    this.#store.dispose();
  }
}
