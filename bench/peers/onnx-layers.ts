/**
 * One looptune Problem as the ONNX graph a deployed model has for the same layer, so that a peer
 * runtime is timed on exactly the computation looptune tunes, with the chance to fuse what its
 * graph optimizer fuses:
 *   matmul MxNxK   → MatMul(A[M,K], B[K,N])
 *   conv1d/2d/3d   → Conv(I, W[, bias]) with the problem's pads, strides, dilations and groups
 *                    (weights [K, C/G, kernel...], the layout ONNX and looptune share)
 *   maxpool1d/2d/3d → MaxPool(I) with the window, pads, strides and dilations
 *   avgpool1d/2d/3d → AveragePool(I), count_include_pad=1 (looptune divides by the whole window),
 *                    or GlobalAveragePool(I) when the window is the whole unpadded input
 * then the epilogue, op by op: bias → the Conv's third input (first op of a conv) or an Add of the
 * bias initializer, broadcast along the channel; residual → Add of a second graph input; scale →
 * Mul by a constant (an average pool's own 1/window is AveragePool's division, not emitted); relu →
 * Relu; clip → Clip(min, max initializers); sigmoid → Sigmoid; gelu → the erf form BERT exports,
 * Div(x, sqrt 2) → Erf → Add(1) → Mul(x) → Mul(0.5), which ONNX Runtime fuses into one Gelu.
 *
 * Graph inputs have the tensors' DATA shapes (ONNX pads inside the op; looptune stores the border),
 * and so does the graph output (an outpad border is looptune's storage, not the layer's result).
 * Weights, bias and constants are initializers, as in a deployed model, where the runtime may
 * pre-pack them; the input (and a residual) are fed every run.
 */
import { fail } from '../../ir/errors.ts';
import { dataShape, elementCount, type Problem, type Tensor } from '../../ir/problem.ts';
import { convAttributes, isConvOp, isPoolOp, poolAttributes } from '../../ir/spec.ts';
import {
  ATTRIBUTE_TYPE, encodeModel, TENSOR_DATA_TYPE,
  type AttributeProto, type MessageInit, type ModelProto, type TensorProto, type ValueInfoProto,
} from '../../ir/model/onnx-proto.ts';

/** ONNX IR version and default-domain opset the models declare (ONNX Runtime 1.30 reads both). */
const IR_VERSION = 8;
const OPSET = 17;
/** AveragePool takes dilations from opset 19 on: only a dilated average pool declares it. */
const DILATED_AVERAGE_POOL_OPSET = 19;

export interface OnnxTensorName {
  readonly name: string;
  readonly dims: readonly number[];
}

/** A graph input and the problem tensor it carries. */
export interface OnnxGraphInput extends OnnxTensorName {
  /** index into problem.tensors (kernel ABI order): 1 for the layer's input, later for a residual */
  readonly tensor: number;
}

export interface OnnxLayer {
  readonly model: MessageInit<ModelProto>;
  /** the encoded model, what an InferenceSession loads */
  readonly bytes: Uint8Array;
  /** the graph inputs, fed every run: the problem's first input, then the residual if there is one */
  readonly inputs: readonly OnnxGraphInput[];
  /** the graph output: the problem's output tensor, its data shape */
  readonly output: OnnxTensorName;
}

/** The initializers a layer bakes in, unpadded and row-major. */
export interface OnnxLayerConstants {
  /** the second input of a matmul or conv */
  readonly weights?: Float32Array;
  /** the +bias tensor */
  readonly bias?: Float32Array;
}

/** Index into problem.tensors of each epilogue op's tensor (ABI order), -1 for ops without one. */
export function epilogueTensorIndices(problem: Problem): number[] {
  let next = 1 + problem.inputs.length;
  return (problem.epilogue ?? []).map((e) => (e.kind === 'bias' || e.kind === 'residual' ? next++ : -1));
}

/**
 * The constants of onnxLayerFor picked out of the problem's inputs: one data array per tensor
 * after the output, in ABI order (inputs, then epilogue tensors), as onnxRuntimeInputs makes them.
 */
export function onnxLayerConstants(problem: Problem, inputs: readonly Float32Array[]): OnnxLayerConstants {
  const hasWeights = problem.op === 'matmul' || isConvOp(problem.op);
  const biasAt = epilogueTensorIndices(problem).find((t, i) => t >= 0 && problem.epilogue![i]!.kind === 'bias');
  return {
    ...(hasWeights && inputs[1] ? { weights: inputs[1] } : {}),
    ...(biasAt !== undefined && inputs[biasAt - 1] ? { bias: inputs[biasAt - 1] } : {}),
  };
}

/**
 * The ONNX model of `problem` with its constants baked in; a pool takes no weights. Ops other than
 * matmul, convolutions and pools, and constants of the wrong size, fail with one line.
 */
export function onnxLayerFor(problem: Problem, constants: OnnxLayerConstants = {}): OnnxLayer {
  const [out, input, weight] = problem.tensors;
  const isConv = isConvOp(problem.op);
  const isPool = isPoolOp(problem.op);
  if (problem.op !== 'matmul' && !isConv && !isPool) {
    fail(`ONNX Runtime peer: no ONNX model for ${problem.op} (only matmul, conv1d/2d/3d, maxpool1d/2d/3d and avgpool1d/2d/3d)`);
  }
  const g = new GraphBuilder(out!.name);
  if (!isPool) {
    checkSize(problem, weight!, constants.weights);
    g.initializer(weight!.name, weight!.shape, constants.weights!);
  }
  const inputs: OnnxGraphInput[] = [{ name: input!.name, dims: dataShape(input!), tensor: 1 }];
  const ops = problem.epilogue ?? [];
  const tensors = epilogueTensorIndices(problem);
  const isAverage = problem.op.startsWith('avgpool');
  // the average pool's own 1/window comes first (ir/spec.ts pool) and is AveragePool's division
  if (isAverage && ops[0]?.kind !== 'scale') fail(`ONNX Runtime peer: ${problem.spec} lacks its 1/window scale`);
  let first = isAverage ? 1 : 0;
  let x: string;
  if (problem.op === 'matmul') {
    x = g.node('MatMul', [input!.name, weight!.name]);
  } else if (isConv) {
    // a bias applied first is the Conv's own B input, as exporters write it
    const convBias = ops[0]?.kind === 'bias' ? problem.tensors[tensors[0]!]! : undefined;
    if (convBias) {
      checkSize(problem, convBias, constants.bias);
      g.initializer(convBias.name, convBias.shape, constants.bias!);
      first = 1;
    }
    x = g.node('Conv', [input!.name, weight!.name, ...(convBias ? [convBias.name] : [])], convAttributesOf(problem));
  } else {
    x = poolNode(g, problem);
  }
  ops.slice(first).forEach((e, j) => {
    const i = first + j;
    const c = `${e.kind}${i}`;
    switch (e.kind) {
      case 'bias': {
        const t = problem.tensors[tensors[i]!]!;
        checkSize(problem, t, constants.bias);
        // broadcast along the channel: [N] against [M, N]; [K, 1, ...] against [N, K, spatial...]
        const dims = isConv ? [t.shape[0]!, ...dataShape(out!).slice(2).map(() => 1)] : [...t.shape];
        x = g.node('Add', [x, g.initializer(t.name, dims, constants.bias!)]);
        break;
      }
      case 'residual': {
        const t = problem.tensors[tensors[i]!]!;
        inputs.push({ name: t.name, dims: dataShape(t), tensor: tensors[i]! });
        x = g.node('Add', [x, t.name]);
        break;
      }
      case 'scale': x = g.node('Mul', [x, g.scalar(c, e.value)]); break;
      case 'relu': x = g.node('Relu', [x]); break;
      case 'clip': x = g.node('Clip', [x, g.scalar(`${c}_min`, e.min), g.scalar(`${c}_max`, e.max)]); break;
      case 'sigmoid': x = g.node('Sigmoid', [x]); break;
      case 'gelu': {
        const erf = g.node('Erf', [g.node('Div', [x, g.scalar(`${c}_sqrt2`, Math.SQRT2)])]);
        const times = g.node('Mul', [x, g.node('Add', [erf, g.scalar(`${c}_one`, 1)])]);
        x = g.node('Mul', [times, g.scalar(`${c}_half`, 0.5)]);
        break;
      }
    }
  });
  g.finish(x);
  const output = { name: out!.name, dims: dataShape(out!) };
  const dilatedAverage = isAverage && poolAttributes(problem).dilation.some((d) => d !== 1);
  const model: MessageInit<ModelProto> = {
    irVersion: IR_VERSION,
    producerName: 'looptune',
    opsetImport: [{ domain: '', version: dilatedAverage ? DILATED_AVERAGE_POOL_OPSET : OPSET }],
    graph: {
      name: problem.spec,
      node: g.nodes,
      input: inputs.map(valueInfo),
      output: [valueInfo(output)],
      initializer: g.initializers,
    },
  };
  return { model, bytes: encodeModel(model), inputs, output };
}

function checkSize(problem: Problem, t: Tensor, values: Float32Array | undefined): void {
  if (values?.length !== elementCount(t)) {
    fail(`ONNX Runtime peer: ${t.name} of ${problem.spec} has ${elementCount(t)} elements, got ${values?.length ?? 'none'}`);
  }
}

function valueInfo(t: OnnxTensorName): MessageInit<ValueInfoProto> {
  return {
    name: t.name,
    type: { tensorType: { elemType: TENSOR_DATA_TYPE.FLOAT, shape: { dim: t.dims.map((d) => ({ dimValue: d })) } } },
  };
}

/** Nodes in order, each output a fresh value; the last one is renamed to the graph output. */
class GraphBuilder {
  readonly nodes: { opType: string; input: string[]; output: string[]; attribute: MessageInit<AttributeProto>[] }[] = [];
  readonly initializers: MessageInit<TensorProto>[] = [];

  constructor(private readonly outputName: string) {}

  /** Appends a node; returns the name of its output. */
  node(opType: string, input: string[], attribute: MessageInit<AttributeProto>[] = []): string {
    const output = `${this.outputName}_${this.nodes.length}`;
    this.nodes.push({ opType, input, output: [output], attribute });
    return output;
  }

  /** A float initializer; returns its name. */
  initializer(name: string, dims: readonly number[], values: Float32Array): string {
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: TENSOR_DATA_TYPE.FLOAT,
      // raw_data is little-endian fp32, as a Float32Array is on every host we target
      rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
    });
    return name;
  }

  /** A rank-0 float initializer (what Clip's min and max must be). */
  scalar(name: string, value: number): string {
    return this.initializer(name, [], Float32Array.of(value));
  }

  /** Makes `last` (the last node's output) the graph output. */
  finish(last: string): void {
    const node = this.nodes[this.nodes.length - 1]!;
    if (node.output[0] !== last) fail('ONNX Runtime peer: the graph output is not its last node');
    node.output[0] = this.outputName;
  }
}

const ints = (name: string, values: readonly number[]): MessageInit<AttributeProto> => ({ name, type: ATTRIBUTE_TYPE.INTS, ints: [...values] });
const int = (name: string, i: number): MessageInit<AttributeProto> => ({ name, type: ATTRIBUTE_TYPE.INT, i });

/**
 * The pool's node over the graph input:
 * O[n, c, oh, ow] = max (or sum / window) over r, s of I[n, c, oh*stride + r*dilation - pad, ow*stride + s*dilation - pad],
 * the border -Infinity for MaxPool and zero, counted in the divisor, for AveragePool. ceil_mode 0
 * (floor), ONNX's default, written out.
 */
function poolNode(g: GraphBuilder, problem: Problem): string {
  const input = problem.tensors[1]!;
  const { window, stride, dilation, pads } = poolAttributes(problem);
  if (problem.op.startsWith('maxpool')) {
    return g.node('MaxPool', [input.name], [
      ints('kernel_shape', window), ints('strides', stride), ints('pads', pads), ints('dilations', dilation), int('ceil_mode', 0),
    ]);
  }
  const spatial = dataShape(input).slice(2);
  const undilated = dilation.every((d) => d === 1);
  if (undilated && pads.every((p) => p === 0) && window.every((w, i) => w === spatial[i])) return g.node('GlobalAveragePool', [input.name]);
  return g.node('AveragePool', [input.name], [
    ints('kernel_shape', window), ints('strides', stride), ints('pads', pads),
    ...(undilated ? [] : [ints('dilations', dilation)]),
    int('count_include_pad', 1), int('ceil_mode', 0),
  ]);
}

/**
 * Conv's attributes for looptune's convolutions:
 * O[n, g*Kg+k, oh, ow] += I[n, g*Cg+c, oh*stride + r*dilation - pad, ow*stride + s*dilation - pad] * W[g*Kg+k, c, r, s].
 */
function convAttributesOf(problem: Problem): MessageInit<AttributeProto>[] {
  const { stride, dilation, groups, pads } = convAttributes(problem);
  return [
    ints('kernel_shape', problem.tensors[2]!.shape.slice(2)),
    ints('strides', stride),
    // the begins, then the ends, of every spatial axis
    ints('pads', pads),
    ints('dilations', dilation),
    int('group', groups),
  ];
}
