/** Whole models: the ModelGraph, the ONNX importer and its rewrites, the reference run. */
export * from './graph.ts';
export * from './onnx-import.ts';
export * from './fuse.ts';
export * from './reference.ts';
export { foldGraph, SUPPORTED_OPS, type ConstantTensor, type FoldedGraph, type FoldedNode } from './shape-fold.ts';
export {
  decodeModel, encodeModel, TENSOR_DATA_TYPE, ATTRIBUTE_TYPE,
  type ModelProto, type GraphProto, type NodeProto, type TensorProto, type AttributeProto, type ValueInfoProto, type MessageInit,
} from './onnx-proto.ts';
