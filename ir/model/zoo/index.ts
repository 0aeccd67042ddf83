/**
 * The test models the project writes itself (random weights, no downloads): ResNet-18, ResNet-50,
 * MobileNetV2 and one BERT-base encoder layer at full size, and a tiny variant of each that keeps
 * every structural feature (op kinds, strides, groups, residuals, downsamples, the shape-folding
 * chain, the symbolic batch) but runs in milliseconds.
 */
import { fail } from '../../errors.ts';
import { BERT_BASE_LAYER, BERT_LAYER_TINY, buildBertLayer } from './bert.ts';
import type { Dim } from './builder.ts';
import { buildMobileNetV2, MOBILENETV2, MOBILENETV2_TINY } from './mobilenetv2.ts';
import { buildResNet, RESNET18, RESNET18_TINY, RESNET50, RESNET50_TINY } from './resnet.ts';

export const ZOO_NAMES = [
  'resnet18', 'resnet50', 'mobilenetv2', 'bert-layer',
  'resnet18-tiny', 'resnet50-tiny', 'mobilenetv2-tiny', 'bert-layer-tiny',
] as const;
export type ZooName = (typeof ZOO_NAMES)[number];

export interface ZooOptions {
  /** seed of the random weights (an integer in [0, 2^32): the generator's state); default 1 */
  readonly seed?: number;
}

/** A graph input or output: its name and dims (a string is a symbolic dim, fixed at load). */
export interface ZooTensor {
  readonly name: string;
  readonly dims: readonly Dim[];
}

export interface ZooSignature {
  readonly input: ZooTensor;
  readonly output: ZooTensor;
}

interface ZooEntry {
  readonly signature: ZooSignature;
  readonly build: (seed: number) => Uint8Array;
}

const image = (size: number, classes: number): ZooSignature => ({
  input: { name: 'input', dims: ['N', 3, size, size] },
  output: { name: 'logits', dims: ['N', classes] },
});
const sequence = (arch: { batch: number; sequence: number; hidden: number }): ZooSignature => {
  const dims = [arch.batch, arch.sequence, arch.hidden];
  return { input: { name: 'hidden_states', dims }, output: { name: 'output', dims } };
};

const ZOO: Record<ZooName, ZooEntry> = {
  'resnet18': { signature: image(RESNET18.imageSize, RESNET18.classes), build: (seed) => buildResNet(RESNET18, seed) },
  'resnet50': { signature: image(RESNET50.imageSize, RESNET50.classes), build: (seed) => buildResNet(RESNET50, seed) },
  'mobilenetv2': { signature: image(MOBILENETV2.imageSize, MOBILENETV2.classes), build: (seed) => buildMobileNetV2(MOBILENETV2, seed) },
  'bert-layer': { signature: sequence(BERT_BASE_LAYER), build: (seed) => buildBertLayer(BERT_BASE_LAYER, seed) },
  'resnet18-tiny': { signature: image(RESNET18_TINY.imageSize, RESNET18_TINY.classes), build: (seed) => buildResNet(RESNET18_TINY, seed) },
  'resnet50-tiny': { signature: image(RESNET50_TINY.imageSize, RESNET50_TINY.classes), build: (seed) => buildResNet(RESNET50_TINY, seed) },
  'mobilenetv2-tiny': { signature: image(MOBILENETV2_TINY.imageSize, MOBILENETV2_TINY.classes), build: (seed) => buildMobileNetV2(MOBILENETV2_TINY, seed) },
  'bert-layer-tiny': { signature: sequence(BERT_LAYER_TINY), build: (seed) => buildBertLayer(BERT_LAYER_TINY, seed) },
};

export function isZooName(name: string): name is ZooName {
  return (ZOO_NAMES as readonly string[]).includes(name);
}

/** The name as a ZooName, or one line naming it and the accepted names. */
export function zooName(name: string): ZooName {
  if (!isZooName(name)) fail(`unknown zoo model "${name}" (expected one of: ${ZOO_NAMES.join(', ')})`);
  return name;
}

/** The model's graph input and output, as its file declares them. */
export function zooSignature(name: ZooName): ZooSignature {
  return ZOO[zooName(name)].signature;
}

/** The bytes of the model's .onnx file; the same name and seed give the same bytes. */
export function zooModel(name: ZooName, options: ZooOptions = {}): Uint8Array {
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`zoo model ${name}: seed must be an integer in [0, 2^32), got ${seed}`);
  return ZOO[zooName(name)].build(seed);
}
