/**
 * Builds the zoo's ONNX models (opset 17, IR version 8) the way an exporter writes them: graph
 * inputs and outputs with static or symbolic dims, weights as initializers, nodes with typed
 * attributes.
 *
 * - `OnnxGraphBuilder`: values, initializers (fp32 and int64), Constant nodes and nodes, with
 *   unique node and value names checked as they are added (an importer's errors name them).
 * - conv-net.ts builds convolutional networks' layers on top of it.
 */
import { fail } from '../../errors.ts';
import { Rng } from '../../random.ts';
import {
  ATTRIBUTE_TYPE, encodeModel, TENSOR_DATA_TYPE,
  type AttributeProto, type MessageInit, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto,
} from '../onnx-proto.ts';

/** ONNX IR version and default-domain opset of every zoo model (LayerNormalization needs 17). */
export const ZOO_IR_VERSION = 8;
export const ZOO_OPSET = 17;

/** A tensor dimension: a size, or a symbolic name (`dim_param`, e.g. "N") fixed when the model is loaded. */
export type Dim = number | string;

/** An attribute's value and type; the name is the key it is given under in `node`. */
export type AttributeValue = Omit<MessageInit<AttributeProto>, 'name'>;

export const int = (i: number): AttributeValue => ({ type: ATTRIBUTE_TYPE.INT, i });
export const ints = (values: readonly number[]): AttributeValue => ({ type: ATTRIBUTE_TYPE.INTS, ints: [...values] });
export const float = (f: number): AttributeValue => ({ type: ATTRIBUTE_TYPE.FLOAT, f });

/** Normal and uniform weights from one mulberry32 stream: the same seed gives the same model. */
export class WeightRandom {
  private readonly rng: Rng;
  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  /** `n` draws of N(mean, std^2) (Box-Muller, two per pair of uniforms). */
  normal(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      // 1 - next() is in (0, 1]: the logarithm stays finite
      const radius = std * Math.sqrt(-2 * Math.log(1 - this.rng.next()));
      const angle = 2 * Math.PI * this.rng.next();
      out[i] = mean + radius * Math.cos(angle);
      if (i + 1 < n) out[i + 1] = mean + radius * Math.sin(angle);
    }
    return out;
  }

  /** `n` draws of U[lo, hi). */
  uniform(n: number, lo: number, hi: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.rng.next();
    return out;
  }
}

type NodeInit = MessageInit<NodeProto>;

/** One graph, built in topological order: every node's inputs must exist when it is added. */
export class OnnxGraphBuilder {
  private readonly nodes: NodeInit[] = [];
  private readonly initializers: MessageInit<TensorProto>[] = [];
  private readonly inputs: MessageInit<ValueInfoProto>[] = [];
  private readonly outputs: MessageInit<ValueInfoProto>[] = [];
  /** graph inputs, initializers and node outputs: one namespace in ONNX */
  private readonly values = new Set<string>();
  private readonly nodeNames = new Set<string>();

  constructor(readonly name: string) {}

  /** A graph input fed at every run. */
  input(name: string, dims: readonly Dim[]): string {
    this.define(name);
    this.inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Declares an existing value (a node's output) a graph output. */
  output(name: string, dims: readonly Dim[]): void {
    if (!this.values.has(name)) fail(`zoo model ${this.name}: graph output ${name} is not a value of the graph`);
    this.outputs.push(valueInfo(name, dims));
  }

  /** An fp32 initializer (a weight); returns its name. */
  initializer(name: string, dims: readonly number[], values: Float32Array): string {
    this.define(name);
    this.initializers.push(floatTensor(name, dims, values, this.name));
    return name;
  }

  /** A rank-0 fp32 initializer (Clip's bounds, a divisor). */
  scalar(name: string, value: number): string {
    return this.initializer(name, [], Float32Array.of(value));
  }

  /** A Constant node holding an int64 tensor (shape pieces, gather indices, unsqueeze axes), as torch exports them. */
  int64Constant(name: string, dims: readonly number[], values: readonly number[]): string {
    const tensor = int64Tensor(`${name}.value`, dims, values, this.name);
    return this.node('Constant', name, [], { value: { type: ATTRIBUTE_TYPE.TENSOR, t: tensor } });
  }

  /**
   * Appends a node whose one output is named `output` (by default the node's own name); returns
   * that name. Unknown inputs and names used twice fail, naming the node.
   */
  node(opType: string, name: string, inputs: readonly string[], attributes: Readonly<Record<string, AttributeValue>> = {}, output = name): string {
    if (this.nodeNames.has(name)) fail(`zoo model ${this.name}: two nodes are named ${name}`);
    const missing = inputs.filter((i) => !this.values.has(i));
    if (missing.length) fail(`zoo model ${this.name}: node ${name} (${opType}) reads ${missing.join(', ')}, which no earlier node, input or initializer defines`);
    this.define(output);
    this.nodeNames.add(name);
    this.nodes.push({
      name, opType, input: [...inputs], output: [output],
      attribute: Object.entries(attributes).map(([key, value]) => ({ name: key, ...value })),
    });
    return output;
  }

  model(): MessageInit<ModelProto> {
    if (!this.outputs.length) fail(`zoo model ${this.name}: the graph has no output`);
    return {
      irVersion: ZOO_IR_VERSION,
      producerName: 'looptune zoo',
      opsetImport: [{ domain: '', version: ZOO_OPSET }],
      graph: { name: this.name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
    };
  }

  /** The bytes of the .onnx file. */
  encode(): Uint8Array {
    return encodeModel(this.model());
  }

  private define(name: string): void {
    if (!name) fail(`zoo model ${this.name}: a value needs a non-empty name`);
    if (this.values.has(name)) fail(`zoo model ${this.name}: the value ${name} is defined twice`);
    this.values.add(name);
  }
}

function valueInfo(name: string, dims: readonly Dim[]): MessageInit<ValueInfoProto> {
  return {
    name,
    type: {
      tensorType: {
        elemType: TENSOR_DATA_TYPE.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

function floatTensor(name: string, dims: readonly number[], values: Float32Array, graph: string): MessageInit<TensorProto> {
  if (values.length !== product(dims)) fail(`zoo model ${graph}: initializer ${name} has ${values.length} values for dims [${dims.join(', ')}]`);
  return {
    name, dims: [...dims], dataType: TENSOR_DATA_TYPE.FLOAT,
    // raw_data is little-endian fp32, as a Float32Array is on every host we target
    rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  };
}

function int64Tensor(name: string, dims: readonly number[], values: readonly number[], graph: string): MessageInit<TensorProto> {
  if (values.length !== product(dims)) fail(`zoo model ${graph}: constant ${name} has ${values.length} values for dims [${dims.join(', ')}]`);
  const data = BigInt64Array.from(values, (v) => BigInt(v));
  return { name, dims: [...dims], dataType: TENSOR_DATA_TYPE.INT64, rawData: new Uint8Array(data.buffer) };
}
