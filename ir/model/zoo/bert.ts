/**
 * One BERT encoder layer (Devlin et al. 2019; HuggingFace's BertLayer, no attention mask) as torch
 * exports it:
 *
 *   Q, K, V = x W + b                       MatMul + Add each (W stored [in, out], as the export transposes it)
 *   split heads: Reshape to [B, S, heads, d] with the shape computed by Shape -> Gather -> Unsqueeze
 *                -> Concat on the tensor itself (an importer must fold it to a constant), then
 *                Transpose to [B, heads, S, d] (K straight to [B, heads, d, S])
 *   P = Softmax(Q K^T / sqrt(d), axis -1)   MatMul, Div, Softmax
 *   context = P V, Transpose back, Reshape to [B, S, hidden] (shape chain again)
 *   a = LayerNorm(context W_o + b_o + x)    MatMul, Add, residual Add, LayerNormalization (eps 1e-12)
 *   h = GELU(a W_1 + b_1)                   GELU as x * 0.5 * (1 + erf(x / sqrt 2)): Div, Erf, Add, Mul, Mul
 *   out = LayerNorm(h W_2 + b_2 + a)
 *
 * Weights LeCun-normal (std 1/sqrt(fan_in)), so attention scores have unit scale and the softmax
 * is neither uniform nor one-hot; biases N(0, 0.02^2); LayerNorm gamma in [0.8, 1.2), beta N(0, 0.05^2).
 */
import { fail } from '../../errors.ts';
import { float, int, ints, OnnxGraphBuilder, WeightRandom } from './builder.ts';

export interface BertLayerArchitecture {
  readonly name: string;
  readonly batch: number;
  readonly sequence: number;
  readonly hidden: number;
  readonly heads: number;
  readonly intermediate: number;
}

export const BERT_BASE_LAYER: BertLayerArchitecture = {
  name: 'bert-layer', batch: 1, sequence: 128, hidden: 768, heads: 12, intermediate: 3072,
};
export const BERT_LAYER_TINY: BertLayerArchitecture = {
  name: 'bert-layer-tiny', batch: 1, sequence: 16, hidden: 64, heads: 4, intermediate: 256,
};

const LAYER_NORM_EPSILON = 1e-12;

/** Input `hidden_states` [batch, sequence, hidden], output `output` of the same dims, all static. */
export function buildBertLayer(arch: BertLayerArchitecture, seed: number): Uint8Array {
  const { hidden, heads, intermediate } = arch;
  if (hidden % heads) fail(`zoo model ${arch.name}: hidden ${hidden} is not a multiple of ${heads} heads`);
  const headSize = hidden / heads;
  const g = new OnnxGraphBuilder(arch.name);
  const random = new WeightRandom(seed);
  const dims = [arch.batch, arch.sequence, hidden];

  const linear = (x: string, name: string, inputs: number, outputs: number): string => {
    const w = g.initializer(`${name}.weight`, [inputs, outputs], random.normal(inputs * outputs, 1 / Math.sqrt(inputs)));
    const b = g.initializer(`${name}.bias`, [outputs], random.normal(outputs, 0.02));
    return g.node('Add', `${name}.add`, [g.node('MatMul', `${name}.matmul`, [x, w]), b]);
  };
  const layerNorm = (x: string, name: string, output?: string): string => {
    const gamma = g.initializer(`${name}.weight`, [hidden], random.uniform(hidden, 0.8, 1.2));
    const beta = g.initializer(`${name}.bias`, [hidden], random.normal(hidden, 0.05));
    return g.node('LayerNormalization', name, [x, gamma, beta], { axis: int(-1), epsilon: float(LAYER_NORM_EPSILON) }, output);
  };

  // the shape chain's constants, as torch's export has them (Constant nodes)
  const index0 = g.int64Constant('shape.index0', [], [0]);
  const index1 = g.int64Constant('shape.index1', [], [1]);
  const axis0 = g.int64Constant('shape.axes0', [1], [0]);
  const headsDims = g.int64Constant('shape.heads', [1], [heads]);
  const headSizeDims = g.int64Constant('shape.head_size', [1], [headSize]);
  const hiddenDims = g.int64Constant('shape.hidden', [1], [hidden]);
  /** Reshape of `x` to [x.shape[0], x.shape[1], ...tail], the leading dims read from x at run time. */
  const reshapeKeepingTwo = (x: string, name: string, tail: readonly string[]): string => {
    const shape = g.node('Shape', `${name}.shape`, [x]);
    const lead = [index0, index1].map((index, i) =>
      g.node('Unsqueeze', `${name}.unsqueeze${i}`, [g.node('Gather', `${name}.gather${i}`, [shape, index], { axis: int(0) }), axis0]));
    const target = g.node('Concat', `${name}.concat`, [...lead, ...tail], { axis: int(0) });
    return g.node('Reshape', `${name}.reshape`, [x, target]);
  };
  const splitHeads = (x: string, name: string, perm: readonly number[]): string =>
    g.node('Transpose', `${name}.transpose`, [reshapeKeepingTwo(x, name, [headsDims, headSizeDims])], { perm: ints(perm) });

  const x = g.input('hidden_states', dims);
  const query = splitHeads(linear(x, 'attention.self.query', hidden, hidden), 'attention.self.query', [0, 2, 1, 3]);
  const keyT = splitHeads(linear(x, 'attention.self.key', hidden, hidden), 'attention.self.key', [0, 2, 3, 1]);
  const value = splitHeads(linear(x, 'attention.self.value', hidden, hidden), 'attention.self.value', [0, 2, 1, 3]);
  const scores = g.node('Div', 'attention.self.scale', [
    g.node('MatMul', 'attention.self.scores', [query, keyT]), g.scalar('attention.self.sqrt_head_size', Math.sqrt(headSize)),
  ]);
  const probs = g.node('Softmax', 'attention.self.softmax', [scores], { axis: int(-1) });
  const context = g.node('Transpose', 'attention.self.context.transpose', [g.node('MatMul', 'attention.self.context', [probs, value])], { perm: ints([0, 2, 1, 3]) });
  const merged = reshapeKeepingTwo(context, 'attention.self.context', [hiddenDims]);
  const attended = layerNorm(
    g.node('Add', 'attention.output.residual', [linear(merged, 'attention.output.dense', hidden, hidden), x]),
    'attention.output.LayerNorm',
  );

  const h = linear(attended, 'intermediate.dense', hidden, intermediate);
  const erf = g.node('Erf', 'intermediate.gelu.erf', [g.node('Div', 'intermediate.gelu.div', [h, g.scalar('intermediate.gelu.sqrt2', 1.4142135)])]);
  const onePlus = g.node('Add', 'intermediate.gelu.add', [erf, g.scalar('intermediate.gelu.one', 1)]);
  const gelu = g.node('Mul', 'intermediate.gelu.mul_half', [
    g.node('Mul', 'intermediate.gelu.mul', [h, onePlus]), g.scalar('intermediate.gelu.half', 0.5),
  ]);

  const out = g.node('Add', 'output.residual', [linear(gelu, 'output.dense', intermediate, hidden), attended]);
  g.output(layerNorm(out, 'output.LayerNorm', 'output'), dims);
  return g.encode();
}
