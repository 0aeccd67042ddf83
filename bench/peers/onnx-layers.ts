/**
 * One looptune Problem as a one-node ONNX model, so that a peer runtime can be timed on exactly
 * the computation looptune tunes: `matmul MxNxK` → MatMul(A[M,K], B[K,N]); `conv1d/2d/3d` → Conv(I, W)
 * with no padding (looptune's input is already padded), no bias, the problem's strides, dilations
 * and group count (weights [K, C/G, kernel...], the layout ONNX and looptune share);
 * `maxpool1d/2d/3d` → MaxPool(I) with the problem's window, strides and dilations, no padding.
 * The first input tensor is the graph's input; the second (the weights) is a constant initializer,
 * as in a deployed model, where the runtime may pre-pack it. Pools have no weights.
 */
import { fail } from '../../ir/errors.ts';
import { elementCount, type Problem } from '../../ir/problem.ts';
import { convAttributes, isPoolOp, poolAttributes } from '../../ir/spec.ts';
import {
  ATTRIBUTE_TYPE, encodeModel, TENSOR_DATA_TYPE,
  type AttributeProto, type MessageInit, type ModelProto, type NodeProto,
} from '../../ir/model/onnx-proto.ts';

/** ONNX IR version and default-domain opset the models declare (ONNX Runtime 1.30 reads both). */
const IR_VERSION = 8;
const OPSET = 17;

export interface OnnxTensorName {
  readonly name: string;
  readonly dims: readonly number[];
}

export interface OnnxLayer {
  readonly model: MessageInit<ModelProto>;
  /** the encoded model, what an InferenceSession loads */
  readonly bytes: Uint8Array;
  /** the graph input: the problem's first input tensor */
  readonly input: OnnxTensorName;
  /** the graph output: the problem's output tensor */
  readonly output: OnnxTensorName;
}

/**
 * The ONNX model of `problem` with `weights` (the problem's second input, row-major) baked in;
 * a max pool takes none. Ops other than matmul, convolutions and max pools fail with one line.
 */
export function onnxLayerFor(problem: Problem, weights?: Float32Array): OnnxLayer {
  const [out, input, weight] = problem.tensors;
  const isConv = problem.op === 'conv1d' || problem.op === 'conv2d' || problem.op === 'conv3d';
  const isPool = isPoolOp(problem.op);
  if (problem.op !== 'matmul' && !isConv && !isPool) {
    fail(`ONNX Runtime peer: no ONNX model for ${problem.op} (only matmul, conv1d/2d/3d and maxpool1d/2d/3d)`);
  }
  if (weight && weights?.length !== elementCount(weight)) {
    fail(`ONNX Runtime peer: ${weight.name} of ${problem.spec} has ${elementCount(weight)} elements, got ${weights?.length ?? 'none'}`);
  }
  const node = problem.op === 'matmul'
    ? { opType: 'MatMul', input: [input!.name, weight!.name], output: [out!.name] }
    : isPool ? maxPoolNode(problem) : convNode(problem);
  const valueInfo = (t: { name: string; shape: readonly number[] }) => ({
    name: t.name,
    type: { tensorType: { elemType: TENSOR_DATA_TYPE.FLOAT, shape: { dim: t.shape.map((d) => ({ dimValue: d })) } } },
  });
  const model: MessageInit<ModelProto> = {
    irVersion: IR_VERSION,
    producerName: 'looptune',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: problem.spec,
      node: [node],
      input: [valueInfo(input!)],
      output: [valueInfo(out!)],
      initializer: weight && weights ? [{
        name: weight.name,
        dims: [...weight.shape],
        dataType: TENSOR_DATA_TYPE.FLOAT,
        // raw_data is little-endian fp32, as a Float32Array is on every host we target
        rawData: new Uint8Array(weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength)),
      }] : [],
    },
  };
  return {
    model,
    bytes: encodeModel(model),
    input: { name: input!.name, dims: [...input!.shape] },
    output: { name: out!.name, dims: [...out!.shape] },
  };
}

const ints = (name: string, values: readonly number[]): MessageInit<AttributeProto> => ({ name, type: ATTRIBUTE_TYPE.INTS, ints: [...values] });

/**
 * MaxPool(I) for looptune's max pools: O[n, c, oh, ow] = max over r, s of I[n, c, oh*stride + r*dilation, ow*stride + s*dilation].
 * No pads (the input is already padded) and ceil_mode 0 (floor), ONNX's defaults, written out.
 */
function maxPoolNode(problem: Problem): MessageInit<NodeProto> {
  const [out, input] = problem.tensors;
  const { window, stride, dilation } = poolAttributes(problem);
  return {
    opType: 'MaxPool',
    input: [input!.name],
    output: [out!.name],
    attribute: [
      ints('kernel_shape', window),
      ints('strides', stride),
      ints('pads', [...window, ...window].map(() => 0)),
      ints('dilations', dilation),
      { name: 'ceil_mode', type: ATTRIBUTE_TYPE.INT, i: 0 },
    ],
  };
}

/**
 * Conv(I, W) for looptune's convolutions:
 * O[n, g*Kg+k, oh, ow] += I[n, g*Cg+c, oh*stride + r*dilation, ow*stride + s*dilation] * W[g*Kg+k, c, r, s].
 */
function convNode(problem: Problem): MessageInit<NodeProto> {
  const [out, input, weight] = problem.tensors;
  const { stride, dilation, groups } = convAttributes(problem);
  const kernelShape = weight!.shape.slice(2);
  return {
    opType: 'Conv',
    input: [input!.name, weight!.name],
    output: [out!.name],
    attribute: [
      ints('kernel_shape', kernelShape),
      ints('strides', stride),
      // begin and end of every spatial axis
      ints('pads', [...kernelShape, ...kernelShape].map(() => 0)),
      ints('dilations', dilation),
      { name: 'group', type: ATTRIBUTE_TYPE.INT, i: groups },
    ],
  };
}
