/**
 * MobileNetV2 (Sandler et al. 2018, Table 2) as torchvision builds and exports it: a 3x3/2 stem
 * conv to 32 channels, then inverted residual blocks (1x1 expansion by t, depthwise 3x3 with
 * group = channels and the block's stride, linear 1x1 projection; BN after each conv, ReLU6 as
 * Clip(0, 6) after the first two; the input added back where the stride is 1 and the width
 * unchanged), a 1x1 conv to 1280, global average pool, Flatten and a Gemm classifier (torchvision's
 * dropout is gone in an inference export). Node names are torchvision's module names.
 */
import type { Dim } from './builder.ts';
import { ConvNetBuilder, type FeatureMap } from './conv-net.ts';

/** One row of the paper's table: expansion t, output channels c, n blocks, first stride s. */
export interface InvertedResidualStage {
  readonly expansion: number;
  readonly channels: number;
  readonly blocks: number;
  readonly stride: number;
}

export interface MobileNetV2Architecture {
  readonly name: string;
  readonly stemChannels: number;
  readonly stages: readonly InvertedResidualStage[];
  readonly lastChannels: number;
  readonly imageSize: number;
  readonly classes: number;
}

/** Table 2 of the paper: t, c, n, s. */
const TABLE: readonly (readonly [number, number, number, number])[] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/** The table's stages, channels divided by `widthDivisor`, at most `maxBlocks` blocks per stage. */
function stages(widthDivisor: number, maxBlocks: number): InvertedResidualStage[] {
  return TABLE.map(([expansion, channels, blocks, stride]) => ({
    expansion, channels: channels / widthDivisor, blocks: Math.min(blocks, maxBlocks), stride,
  }));
}

export const MOBILENETV2: MobileNetV2Architecture = {
  name: 'mobilenetv2', stemChannels: 32, stages: stages(1, Infinity), lastChannels: 1280, imageSize: 224, classes: 1000,
};
/**
 * Widths / 8 (channel counts keep their order, so the same blocks have residuals), at most 2 blocks
 * per stage (every kind stays: no expansion, stride 2, stride 1 widening, stride 1 residual), 64x64
 * images, 10 classes.
 */
export const MOBILENETV2_TINY: MobileNetV2Architecture = {
  name: 'mobilenetv2-tiny', stemChannels: 4, stages: stages(8, 2), lastChannels: 160, imageSize: 64, classes: 10,
};

/** Input `input` [N, 3, size, size], output `logits` [N, classes], N symbolic. */
export function buildMobileNetV2(arch: MobileNetV2Architecture, seed: number): Uint8Array {
  const batch: Dim = 'N';
  const net = new ConvNetBuilder(arch.name, seed);
  let x = net.input('input', [batch, 3, arch.imageSize, arch.imageSize]);
  x = convBnRelu6(net, x, 'features.0', { out: arch.stemChannels, kernel: 3, stride: 2 });
  let feature = 1;
  for (const stage of arch.stages) {
    for (let b = 0; b < stage.blocks; b++) {
      x = invertedResidual(net, x, `features.${feature++}`, stage.expansion, stage.channels, b === 0 ? stage.stride : 1);
    }
  }
  x = convBnRelu6(net, x, `features.${feature}`, { out: arch.lastChannels, kernel: 1, stride: 1 });
  net.classifier(x, { pool: 'avgpool', flatten: 'flatten', fc: 'classifier.1' }, arch.classes, 'logits', batch);
  return net.graph.encode();
}

/** torchvision's Conv2dNormActivation: conv (`prefix.0`), BN (`prefix.1`), ReLU6 (`prefix.2`); pad keeps the size at stride 1. */
function convBnRelu6(net: ConvNetBuilder, x: FeatureMap, prefix: string, conv: { out: number; kernel: number; stride: number; groups?: number }): FeatureMap {
  const y = net.conv(x, `${prefix}.0`, { ...conv, pad: (conv.kernel - 1) / 2 });
  return net.relu6(net.batchNorm(y, `${prefix}.1`), `${prefix}.2`);
}

/** One inverted residual block, `prefix` its module name (`features.3`); its layers are `prefix.conv.i`. */
function invertedResidual(net: ConvNetBuilder, x: FeatureMap, prefix: string, expansion: number, out: number, stride: number): FeatureMap {
  const hidden = x.channels * expansion;
  let layer = 0;
  let y = x;
  if (expansion !== 1) y = convBnRelu6(net, y, `${prefix}.conv.${layer++}`, { out: hidden, kernel: 1, stride: 1 });
  y = convBnRelu6(net, y, `${prefix}.conv.${layer++}`, { out: hidden, kernel: 3, stride, groups: hidden });
  y = net.conv(y, `${prefix}.conv.${layer++}`, { out, kernel: 1 });
  y = net.batchNorm(y, `${prefix}.conv.${layer}`);
  return stride === 1 && x.channels === out ? net.add(x, y, `${prefix}.add`) : y;
}
