/**
 * ResNet-18 and ResNet-50 (He et al. 2016) as torchvision builds and exports them: a 7x7/2 stem
 * conv, BN, ReLU and 3x3/2 max pool; four stages of basic (two 3x3) or bottleneck (1x1, 3x3, 1x1
 * with 4x expansion, the stride on the 3x3: "ResNet v1.5") blocks; a 1x1 conv + BN downsample on
 * the shortcut where the stride or the width changes; residual Add then ReLU; global average pool,
 * Flatten and a Gemm classifier. Node names are torchvision's module names.
 */
import type { Dim } from './builder.ts';
import { ConvNetBuilder, type FeatureMap } from './conv-net.ts';

export type ResNetBlock = 'basic' | 'bottleneck';

export interface ResNetStage {
  /** the block's inner width (planes); a bottleneck outputs 4x as many channels */
  readonly planes: number;
  readonly blocks: number;
  /** stride of the stage's first block */
  readonly stride: number;
}

export interface ResNetArchitecture {
  readonly name: string;
  readonly block: ResNetBlock;
  readonly stemChannels: number;
  readonly stages: readonly ResNetStage[];
  readonly imageSize: number;
  readonly classes: number;
}

/** Output channels of a block per inner channel. */
const EXPANSION: Record<ResNetBlock, number> = { basic: 1, bottleneck: 4 };

/** The stages of torchvision's resnet18 / resnet50 ("layer1" .. "layer4"), widths divided by `widthDivisor`. */
function stages(blocks: readonly number[], widthDivisor: number): ResNetStage[] {
  return [
    { planes: 64 / widthDivisor, blocks: blocks[0]!, stride: 1 },
    { planes: 128 / widthDivisor, blocks: blocks[1]!, stride: 2 },
    { planes: 256 / widthDivisor, blocks: blocks[2]!, stride: 2 },
    { planes: 512 / widthDivisor, blocks: blocks[3]!, stride: 2 },
  ];
}

export const RESNET18: ResNetArchitecture = {
  name: 'resnet18', block: 'basic', stemChannels: 64, stages: stages([2, 2, 2, 2], 1), imageSize: 224, classes: 1000,
};
export const RESNET50: ResNetArchitecture = {
  name: 'resnet50', block: 'bottleneck', stemChannels: 64, stages: stages([3, 4, 6, 3], 1), imageSize: 224, classes: 1000,
};
/** Widths / 8, 56x56 images, 2 blocks per stage (the first with its downsample), 10 classes. */
export const RESNET18_TINY: ResNetArchitecture = {
  name: 'resnet18-tiny', block: 'basic', stemChannels: 8, stages: stages([2, 2, 2, 2], 8), imageSize: 56, classes: 10,
};
export const RESNET50_TINY: ResNetArchitecture = {
  name: 'resnet50-tiny', block: 'bottleneck', stemChannels: 8, stages: stages([2, 2, 2, 2], 8), imageSize: 56, classes: 10,
};

/** Input `input` [N, 3, size, size], output `logits` [N, classes], N symbolic. */
export function buildResNet(arch: ResNetArchitecture, seed: number): Uint8Array {
  const batch: Dim = 'N';
  const net = new ConvNetBuilder(arch.name, seed);
  let x = net.input('input', [batch, 3, arch.imageSize, arch.imageSize]);
  x = net.relu(net.batchNorm(net.conv(x, 'conv1', { out: arch.stemChannels, kernel: 7, stride: 2, pad: 3 }), 'bn1'), 'relu');
  x = net.maxPool(x, 'maxpool', { kernel: 3, stride: 2, pad: 1 });
  arch.stages.forEach((stage, s) => {
    for (let b = 0; b < stage.blocks; b++) {
      x = residualBlock(net, x, `layer${s + 1}.${b}`, arch.block, stage.planes, b === 0 ? stage.stride : 1);
    }
  });
  net.classifier(x, { pool: 'avgpool', flatten: 'flatten', fc: 'fc' }, arch.classes, 'logits', batch);
  return net.graph.encode();
}

/** One basic or bottleneck block, `prefix` its module name (`layer2.0`). */
function residualBlock(net: ConvNetBuilder, x: FeatureMap, prefix: string, block: ResNetBlock, planes: number, stride: number): FeatureMap {
  const out = planes * EXPANSION[block];
  const convBn = (input: FeatureMap, i: number, kernel: number, channels: number, convStride: number) =>
    net.batchNorm(net.conv(input, `${prefix}.conv${i}`, { out: channels, kernel, stride: convStride, pad: (kernel - 1) / 2 }), `${prefix}.bn${i}`);
  let y: FeatureMap;
  if (block === 'basic') {
    y = net.relu(convBn(x, 1, 3, planes, stride), `${prefix}.relu1`);
    y = convBn(y, 2, 3, planes, 1);
  } else {
    y = net.relu(convBn(x, 1, 1, planes, 1), `${prefix}.relu1`);
    y = net.relu(convBn(y, 2, 3, planes, stride), `${prefix}.relu2`);
    y = convBn(y, 3, 1, out, 1);
  }
  const shortcut = stride !== 1 || x.channels !== out
    ? net.batchNorm(net.conv(x, `${prefix}.downsample.0`, { out, kernel: 1, stride }), `${prefix}.downsample.1`)
    : x;
  return net.relu(net.add(y, shortcut, `${prefix}.add`), `${prefix}.relu`);
}
