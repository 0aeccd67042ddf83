/**
 * The ONNX file format: an ONNX model is a protobuf `ModelProto`. The wire format is protobufjs's
 * (a maintained library); this file declares the ONNX messages we read and write, their TypeScript
 * shapes, and encode/decode. Field names are the ONNX ones in camelCase (`op_type` → `opType`).
 *
 * Only the fields a dense inference graph needs are declared; others in a file (training info,
 * local functions, sparse initializers, sequence and map types) are skipped when decoding.
 */
import protobuf from 'protobufjs';
import { fail } from '../errors.ts';

/** ONNX message definitions, field numbers as in the ONNX specification (onnx.proto, IR version 8). */
const SCHEMA = `
syntax = "proto3";
package onnx;

message StringStringEntryProto { string key = 1; string value = 2; }
message OperatorSetIdProto { string domain = 1; int64 version = 2; }

message ModelProto {
  int64 ir_version = 1;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  string doc_string = 6;
  GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  repeated AttributeProto attribute = 5;
  string doc_string = 6;
  string domain = 7;
}

message AttributeProto {
  string name = 1;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  string doc_string = 13;
  int32 type = 20;
  string ref_attr_name = 21;
}

message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  repeated float float_data = 4;
  repeated int32 int32_data = 5;
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7;
  string name = 8;
  bytes raw_data = 9;
  repeated double double_data = 10;
  repeated uint64 uint64_data = 11;
  string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  int32 data_location = 14;
}

message ValueInfoProto { string name = 1; TypeProto type = 2; string doc_string = 3; }

message TypeProto {
  message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; }
  string denotation = 6;
}

message TensorShapeProto {
  message Dimension {
    oneof value { int64 dim_value = 1; string dim_param = 2; }
    string denotation = 3;
  }
  repeated Dimension dim = 1;
}
`;

/** TensorProto.data_type and TypeProto.Tensor.elem_type values. */
export const TENSOR_DATA_TYPE = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8,
  BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
} as const;

/** AttributeProto.type values: which of the value fields is in use. */
export const ATTRIBUTE_TYPE = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12,
} as const;

/** TensorProto.data_location: DEFAULT (in the file) or EXTERNAL (see externalData). */
export const DATA_LOCATION = { DEFAULT: 0, EXTERNAL: 1 } as const;

// Decoded messages carry every scalar and repeated field (proto3 defaults when absent); message
// fields are present only when the file has them. int64 fields read as numbers: exact up to 2^53,
// larger values (INT64_MAX sentinels, e.g. Slice ends) round to the nearest double.

export interface StringStringEntryProto { key: string; value: string }
export interface OperatorSetIdProto { domain: string; version: number }

export interface ModelProto {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph?: GraphProto;
  opsetImport: OperatorSetIdProto[];
  metadataProps: StringStringEntryProto[];
}

export interface GraphProto {
  node: NodeProto[];
  name: string;
  initializer: TensorProto[];
  docString: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  attribute: AttributeProto[];
  docString: string;
  domain: string;
}

export interface AttributeProto {
  name: string;
  f: number;
  i: number;
  s: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats: number[];
  ints: number[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  docString: string;
  /** an ATTRIBUTE_TYPE value */
  type: number;
  refAttrName: string;
}

export interface TensorProto {
  dims: number[];
  /** a TENSOR_DATA_TYPE value */
  dataType: number;
  floatData: number[];
  int32Data: number[];
  stringData: Uint8Array[];
  int64Data: number[];
  name: string;
  /** little-endian elements; when decoded, a view into the file's bytes (copy it, e.g. Uint8Array.from, before viewing it as floats: it may be unaligned, and a Buffer's slice() does not copy) */
  rawData: Uint8Array;
  doubleData: number[];
  uint64Data: number[];
  docString: string;
  externalData: StringStringEntryProto[];
  /** a DATA_LOCATION value */
  dataLocation: number;
}

export interface ValueInfoProto { name: string; type?: TypeProto; docString: string }

export interface TypeProto {
  tensorType?: { elemType: number; shape?: TensorShapeProto };
  denotation: string;
}

export interface TensorShapeProto { dim: TensorShapeDimension[] }
/** A dimension is a number (`dimValue`), a symbolic name (`dimParam`, e.g. "batch") or unknown (neither). */
export interface TensorShapeDimension { dimValue?: number; dimParam?: string; denotation: string }

/** A message as written: any field may be left out, and then encodes as its default. */
export type MessageInit<T> = T extends Uint8Array
  ? T
  : T extends readonly (infer E)[]
    ? readonly MessageInit<E>[]
    : T extends object
      ? { [K in keyof T]?: MessageInit<T[K]> }
      : T;

const root = protobuf.parse(SCHEMA).root;
const MODEL = root.lookupType('onnx.ModelProto');

/** The bytes of an .onnx file holding `model`. */
export function encodeModel(model: MessageInit<ModelProto>): Uint8Array {
  const message = MODEL.fromObject(model as Record<string, unknown>);
  return MODEL.encode(message).finish();
}

/** Reads the bytes of an .onnx file; bytes that are not a ModelProto fail with one line. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  let message: protobuf.Message;
  try {
    message = MODEL.decode(bytes);
  } catch (e) {
    fail(`not an ONNX model: the protobuf does not decode (${e instanceof Error ? e.message : String(e)})`);
  }
  const object = MODEL.toObject(message, { longs: Number, defaults: true, arrays: true });
  return withoutNulls(object) as ModelProto;
}

/** toObject's defaults set absent message fields to null; the interfaces above leave them out. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (const item of value) withoutNulls(item);
  } else if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (record[key] === null) delete record[key];
      else withoutNulls(record[key]);
    }
  }
  return value;
}

/** The element types a tensor's values are read in: fp32 data, or the integers of shapes, axes and indices. */
export type TensorValueType = 'float32' | 'int64';

/** A TensorProto's values, decoded: float32 values in a Float32Array, integers (exact up to 2^53) in a Float64Array. */
export interface TensorValues {
  readonly type: TensorValueType;
  readonly dims: readonly number[];
  readonly data: Float32Array | Float64Array;
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TENSOR_DATA_TYPE).map(([name, code]) => [code, name.toLowerCase()]));

/** The lower-case name of a TENSOR_DATA_TYPE value ("float", "int64", "float16"...). */
export function tensorTypeName(dataType: number): string {
  return TYPE_NAMES[dataType] ?? `type ${dataType}`;
}

/**
 * The values of a tensor in the file: float32 (raw_data or float_data), int64 or int32 (read as
 * integers), bool (0/1, read as integers). Other element types and external data fail with one
 * line naming the tensor (`what`, e.g. "initializer 'w'").
 */
export function tensorValues(t: TensorProto, what: string): TensorValues {
  if (t.dataLocation === DATA_LOCATION.EXTERNAL) fail(`${what} keeps its data in an external file; only tensors stored inside the .onnx file are supported`);
  const dims = t.dims.map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  // a copy (new Uint8Array of a typed array copies its bytes): aligned, and not a view of the file
  const raw = t.rawData.length > 0 ? new Uint8Array(t.rawData) : null;
  const view = raw ? new DataView(raw.buffer) : null;
  let data: Float32Array | Float64Array;
  let type: TensorValueType = 'int64';
  const sized = (bytes: number): DataView => {
    if (view!.byteLength !== count * bytes) fail(`${what} has ${view!.byteLength} bytes of raw data, ${count * bytes} expected for dims [${dims.join(', ')}]`);
    return view!;
  };
  switch (t.dataType) {
    case TENSOR_DATA_TYPE.FLOAT: {
      type = 'float32';
      // raw_data is little-endian, as a Float32Array is on every host we target; `raw` is an aligned copy
      if (view) data = new Float32Array(sized(4).buffer, 0, count);
      else data = Float32Array.from(t.floatData);
      break;
    }
    case TENSOR_DATA_TYPE.INT64: {
      if (view) data = Float64Array.from(new BigInt64Array(sized(8).buffer, 0, count), Number);
      else data = Float64Array.from(t.int64Data.map(Number));
      break;
    }
    case TENSOR_DATA_TYPE.INT32: case TENSOR_DATA_TYPE.BOOL: {
      if (view) {
        const bytes = t.dataType === TENSOR_DATA_TYPE.BOOL ? 1 : 4;
        const v = sized(bytes);
        data = Float64Array.from({ length: count }, (_, i) => (bytes === 1 ? v.getUint8(i) : v.getInt32(4 * i, true)));
      } else data = Float64Array.from(t.int32Data);
      break;
    }
    default:
      fail(`${what} has element type ${tensorTypeName(t.dataType)}; supported: float (float32), and int64, int32 or bool for shapes and indices`);
  }
  if (data.length !== count) fail(`${what} has ${data.length} values, ${count} expected for dims [${dims.join(', ')}]`);
  return { type, dims, data };
}

/**
 * A node's attributes by name, with typed readers that fail with one line naming the op, the node
 * and the attribute when the file holds another kind of value.
 */
export class NodeAttributes {
  private readonly byName = new Map<string, AttributeProto>();

  constructor(private readonly node: NodeProto) {
    for (const a of node.attribute) this.byName.set(a.name, a);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Every attribute name the node carries. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  int(name: string, fallback: number): number {
    return this.read(name, ATTRIBUTE_TYPE.INT, 'an integer', (a) => Number(a.i)) ?? fallback;
  }

  float(name: string, fallback: number): number {
    return this.read(name, ATTRIBUTE_TYPE.FLOAT, 'a float', (a) => a.f) ?? fallback;
  }

  ints(name: string): number[] | undefined {
    return this.read(name, ATTRIBUTE_TYPE.INTS, 'a list of integers', (a) => a.ints.map(Number));
  }

  floats(name: string): number[] | undefined {
    return this.read(name, ATTRIBUTE_TYPE.FLOATS, 'a list of floats', (a) => a.floats);
  }

  string(name: string, fallback: string): string {
    return this.read(name, ATTRIBUTE_TYPE.STRING, 'a string', (a) => new TextDecoder().decode(a.s)) ?? fallback;
  }

  tensor(name: string): TensorProto | undefined {
    return this.read(name, ATTRIBUTE_TYPE.TENSOR, 'a tensor', (a) => a.t);
  }

  private read<T>(name: string, type: number, noun: string, value: (a: AttributeProto) => T | undefined): T | undefined {
    const a = this.byName.get(name);
    if (a === undefined) return undefined;
    // files written without the type field (old exporters) are read by the field that is set
    if (a.type !== type && a.type !== ATTRIBUTE_TYPE.UNDEFINED) {
      fail(`${this.node.opType} node '${this.node.name}': attribute ${name} must be ${noun}`);
    }
    const v = value(a);
    if (v === undefined) fail(`${this.node.opType} node '${this.node.name}': attribute ${name} must be ${noun}`);
    return v;
  }
}
