/**
 * Named problem sets with deterministic train/test splits.
 *
 * Split rule (every dataset): the entries' indices are shuffled by Fisher-Yates with ir's Rng seeded
 * by SPLIT_SEED (j = rng.int(0, i) for i = N-1 down to 1); the first round(N * 0.1) shuffled indices
 * (at least 1) form `test`, the rest `train`; both are returned in the dataset's own order. The split
 * depends only on N and SPLIT_SEED, so it never changes between runs or machines. For mm64-256
 * (N = 2,197) that is 220 test and 1,977 train problems.
 *
 * The *-conv2d sets predate padding in the IR: their spatial sizes are those of the PADDED input (a
 * 56x56 3x3 pad-1 layer is h58 w58), and they keep those specs so that the records and policies
 * trained on them stay valid. The *-layers sets are the real layers: unpadded sizes with `pad`,
 * and the bias, activation and residual add that follow each conv fused as epilogues (batch norm
 * folded into the conv's weights and bias, as an exported inference graph has it).
 */
import { fail } from '../ir/errors.ts';
import type { Problem } from '../ir/problem.ts';
import { Rng } from '../ir/random.ts';
import { parseProblem } from '../ir/spec.ts';

export type SplitName = 'train' | 'test' | 'all';

export interface DatasetEntry {
  /** short name, e.g. 'layer2.0.conv1' or 'm64n80k96'. */
  name: string;
  spec: string;
  /** how many times the shape occurs in the network (for weighted totals); 1 if absent. */
  count?: number;
  note?: string;
}

export interface Dataset {
  name: string;
  description: string;
  entries: readonly DatasetEntry[];
}

export interface DatasetSummary {
  name: string;
  description: string;
  size: number;
  train: number;
  test: number;
}

export const SPLIT_SEED = 20240605;
export const TEST_FRACTION = 0.1;

function mm64to256(): DatasetEntry[] {
  const sizes = Array.from({ length: 13 }, (_, i) => 64 + 16 * i);
  const out: DatasetEntry[] = [];
  for (const m of sizes) for (const n of sizes) for (const k of sizes) out.push({ name: `m${m}n${n}k${k}`, spec: `matmul ${m}x${n}x${k}` });
  return out;
}

/** ResNet-18 (torchvision), batch 1, 224x224 input: every distinct conv2d shape, with its count. */
const RESNET18: DatasetEntry[] = [
  { name: 'conv1', spec: 'conv2d n1 c3 h230 w230 k64 r7 s7 stride2', count: 1, note: '7x7/2 pad 3, 224 -> 112' },
  { name: 'layer1.conv3x3', spec: 'conv2d n1 c64 h58 w58 k64 r3 s3 stride1', count: 4, note: '3x3 pad 1, 56x56' },
  { name: 'layer2.0.conv1', spec: 'conv2d n1 c64 h58 w58 k128 r3 s3 stride2', count: 1, note: '3x3/2 pad 1, 56 -> 28' },
  { name: 'layer2.0.downsample', spec: 'conv2d n1 c64 h56 w56 k128 r1 s1 stride2', count: 1, note: '1x1/2, 56 -> 28' },
  { name: 'layer2.conv3x3', spec: 'conv2d n1 c128 h30 w30 k128 r3 s3 stride1', count: 3, note: '3x3 pad 1, 28x28' },
  { name: 'layer3.0.conv1', spec: 'conv2d n1 c128 h30 w30 k256 r3 s3 stride2', count: 1, note: '3x3/2 pad 1, 28 -> 14' },
  { name: 'layer3.0.downsample', spec: 'conv2d n1 c128 h28 w28 k256 r1 s1 stride2', count: 1, note: '1x1/2, 28 -> 14' },
  { name: 'layer3.conv3x3', spec: 'conv2d n1 c256 h16 w16 k256 r3 s3 stride1', count: 3, note: '3x3 pad 1, 14x14' },
  { name: 'layer4.0.conv1', spec: 'conv2d n1 c256 h16 w16 k512 r3 s3 stride2', count: 1, note: '3x3/2 pad 1, 14 -> 7' },
  { name: 'layer4.0.downsample', spec: 'conv2d n1 c256 h14 w14 k512 r1 s1 stride2', count: 1, note: '1x1/2, 14 -> 7' },
  { name: 'layer4.conv3x3', spec: 'conv2d n1 c512 h9 w9 k512 r3 s3 stride1', count: 3, note: '3x3 pad 1, 7x7' },
];

/** One conv2d layer of a network, batch 1, square input and window, padding folded into the input size. */
interface NetLayer {
  name: string;
  c: number;
  /** unpadded input size (height = width) */
  size: number;
  k: number;
  window: number;
  stride: number;
  pad: number;
  groups?: number;
  what: string;
  /** the fused epilogue tokens that follow it in the network, e.g. '+bias +relu' (the *-layers sets) */
  epilogue?: string;
}

/** The real layer's spec: unpadded sizes, `pad`, and its fused epilogue. */
function realLayerSpec(l: NetLayer): string {
  const groups = (l.groups ?? 1) > 1 ? ` groups${l.groups}` : '';
  const pad = l.pad > 0 ? ` pad${l.pad}` : '';
  return `conv2d n1 c${l.c} h${l.size} w${l.size} k${l.k} r${l.window} s${l.window} stride${l.stride}${groups}${pad}${l.epilogue ? ` ${l.epilogue}` : ''}`;
}

/** The canonical spec of a layer: input sizes padded by `pad` on each side, groups only when > 1. */
function layerSpec(l: NetLayer): string {
  const padded = l.size + 2 * l.pad;
  const groups = (l.groups ?? 1) > 1 ? ` groups${l.groups}` : '';
  return `conv2d n1 c${l.c} h${padded} w${padded} k${l.k} r${l.window} s${l.window} stride${l.stride}${groups}`;
}

/** A network's layers as its distinct shapes, each named by its first occurrence and counted. */
function distinctLayers(layers: readonly NetLayer[], specOf: (l: NetLayer) => string = layerSpec): DatasetEntry[] {
  const bySpec = new Map<string, DatasetEntry>();
  for (const l of layers) {
    const spec = specOf(l);
    const out = Math.floor((l.size + 2 * l.pad - l.window) / l.stride) + 1;
    const seen = bySpec.get(spec);
    if (seen) seen.count = (seen.count ?? 1) + 1;
    else bySpec.set(spec, { name: l.name, spec, count: 1, note: `${l.what}, ${l.c} -> ${l.k}, ${l.size} -> ${out}` });
  }
  return [...bySpec.values()];
}

/**
 * MobileNetV2 (torchvision, width 1.0), batch 1, 224x224: the 3x3/2 stem, then inverted residual
 * blocks (1x1 expand, 3x3 depthwise at stride 1 or 2, 1x1 project; the first block has no expand),
 * then the 1x1 conv to 1280 channels. Distinct conv2d shapes with counts, named as torchvision's
 * `features.<i>`; the classifier (a 1280 x 1000 matmul) is not included.
 */
function mobilenetV2(real = false): DatasetEntry[] {
  // (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2
  const settings: [number, number, number, number][] = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];
  const relu6 = '+bias +relu6';
  const layers: NetLayer[] = [{ name: 'features.0', c: 3, size: 224, k: 32, window: 3, stride: 2, pad: 1, what: '3x3/2 pad 1', epilogue: relu6 }];
  let channels = 32, size = 112, index = 1;
  for (const [t, c, n, s] of settings) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      const hidden = channels * t;
      const name = `features.${index++}`;
      if (t !== 1) layers.push({ name: `${name}.expand`, c: channels, size, k: hidden, window: 1, stride: 1, pad: 0, what: '1x1 expand', epilogue: relu6 });
      layers.push({ name: `${name}.dw`, c: hidden, size, k: hidden, window: 3, stride, pad: 1, groups: hidden, what: `depthwise 3x3${stride > 1 ? `/${stride}` : ''} pad 1`, epilogue: relu6 });
      size = Math.floor((size + 2 - 3) / stride) + 1;
      // the block's skip connection: stride 1 and as many channels out as in
      const skip = stride === 1 && channels === c;
      layers.push({ name: `${name}.project`, c: hidden, size, k: c, window: 1, stride: 1, pad: 0, what: '1x1 project', epilogue: skip ? '+bias +residual' : '+bias' });
      channels = c;
    }
  }
  layers.push({ name: `features.${index}`, c: channels, size, k: 1280, window: 1, stride: 1, pad: 0, what: '1x1', epilogue: relu6 });
  return distinctLayers(layers, real ? realLayerSpec : layerSpec);
}

/**
 * ResNet-50 (torchvision, v1.5: the stride of a stage's first block is on its 3x3 conv), batch 1,
 * 224x224: the 7x7/2 stem and the bottleneck blocks' 1x1 reduce, 3x3 and 1x1 expand convs plus each
 * stage's 1x1 downsample; distinct conv2d shapes with counts (53 convs, 23 shapes).
 */
function resnet50(real = false): DatasetEntry[] {
  const layers: NetLayer[] = [{ name: 'conv1', c: 3, size: 224, k: 64, window: 7, stride: 2, pad: 3, what: '7x7/2 pad 3', epilogue: '+bias +relu' }];
  // (width, blocks, first stride) per stage; a block's output is 4 x width channels
  const stages: [number, number, number][] = [[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]];
  let channels = 64, size = 56;
  stages.forEach(([width, blocks, firstStride], stage) => {
    for (let b = 0; b < blocks; b++) {
      const stride = b === 0 ? firstStride : 1;
      const name = `layer${stage + 1}.${b}`;
      const out = Math.floor((size - 1) / stride) + 1;
      layers.push(
        { name: `${name}.conv1`, c: channels, size, k: width, window: 1, stride: 1, pad: 0, what: '1x1 reduce', epilogue: '+bias +relu' },
        { name: `${name}.conv2`, c: width, size, k: width, window: 3, stride, pad: 1, what: `3x3${stride > 1 ? `/${stride}` : ''} pad 1`, epilogue: '+bias +relu' },
        { name: `${name}.conv3`, c: width, size: out, k: 4 * width, window: 1, stride: 1, pad: 0, what: '1x1 expand', epilogue: '+bias +residual +relu' },
      );
      if (b === 0) layers.push({ name: `${name}.downsample`, c: channels, size, k: 4 * width, window: 1, stride, pad: 0, what: `1x1${stride > 1 ? `/${stride}` : ''} downsample`, epilogue: '+bias' });
      channels = 4 * width;
      size = out;
    }
  });
  return distinctLayers(layers, real ? realLayerSpec : layerSpec);
}

/** ResNet-18's basic blocks as real layers: conv1 +bias +relu, conv2 +bias +residual +relu, downsample +bias; the stem and its pool. */
function resnet18Layers(): DatasetEntry[] {
  const layers: NetLayer[] = [{ name: 'conv1', c: 3, size: 224, k: 64, window: 7, stride: 2, pad: 3, what: '7x7/2 pad 3', epilogue: '+bias +relu' }];
  let channels = 64, size = 56;
  [64, 128, 256, 512].forEach((width, stage) => {
    for (let b = 0; b < 2; b++) {
      const stride = b === 0 && stage > 0 ? 2 : 1;
      const name = `layer${stage + 1}.${b}`;
      const out = Math.floor((size + 2 - 3) / stride) + 1;
      layers.push(
        { name: `${name}.conv1`, c: channels, size, k: width, window: 3, stride, pad: 1, what: `3x3${stride > 1 ? '/2' : ''} pad 1`, epilogue: '+bias +relu' },
        { name: `${name}.conv2`, c: width, size: out, k: width, window: 3, stride: 1, pad: 1, what: '3x3 pad 1, skip', epilogue: '+bias +residual +relu' },
      );
      if (stride > 1) layers.push({ name: `${name}.downsample`, c: channels, size, k: width, window: 1, stride, pad: 0, what: '1x1/2 downsample', epilogue: '+bias' });
      channels = width;
      size = out;
    }
  });
  return distinctLayers(layers, realLayerSpec);
}

/** The pools of ResNet-18/50 and MobileNetV2 as real layers: the stem's padded max pool and the global average pools. */
const REAL_POOLS: DatasetEntry[] = [
  { name: 'resnet.maxpool', spec: 'maxpool2d n1 c64 h112 w112 r3 s3 stride2 pad1', count: 1, note: 'ResNet-18/50 stem, 3x3/2 pad 1 (-Infinity), 112 -> 56' },
  { name: 'resnet18.avgpool', spec: 'globalavgpool n1 c512 h7 w7', count: 1, note: 'ResNet-18 head' },
  { name: 'resnet50.avgpool', spec: 'globalavgpool n1 c2048 h7 w7', count: 1, note: 'ResNet-50 head' },
  { name: 'mobilenetv2.avgpool', spec: 'globalavgpool n1 c1280 h7 w7', count: 1, note: 'MobileNetV2 head' },
  { name: 'avgpool3x3', spec: 'avgpool2d n1 c64 h56 w56 r3 s3 stride1 pad1', count: 1, note: "Inception-style 3x3/1 pad 1 (count_include_pad)" },
];

/** One BERT-base encoder layer at sequence 128 with its fused epilogues: projections +bias, the FFN's GELU, the residual adds, the 1/sqrt(64) score scale. */
const BERT_LAYERS: DatasetEntry[] = [
  { name: 'qkv', spec: 'matmul 128x2304x768 +bias', count: 1 },
  { name: 'scores', spec: 'bmm b12 m128 n128 k64 +scale0.125', count: 1, note: 'Q.K^T / 8 per head' },
  { name: 'context', spec: 'bmm b12 m128 n64 k128', count: 1, note: 'P.V per head' },
  { name: 'attn-out', spec: 'matmul 128x768x768 +bias +residual', count: 1 },
  { name: 'ffn-up', spec: 'matmul 128x3072x768 +bias +gelu', count: 1 },
  { name: 'ffn-down', spec: 'matmul 128x768x3072 +bias +residual', count: 1 },
];

/**
 * What the shipped policies train on: matmul, conv, depthwise and attention together. Every
 * fourth mm64-256 shape, the real layers of ResNet-18 and MobileNetV2 (padding, depthwise,
 * epilogues; their 14x14 and 7x7 convs also in NCHW8c and NCHW16c) and BERT-base's layer.
 */
function mixed(): DatasetEntry[] {
  const real = [
    ...resnet18Layers().map((e) => ({ ...e, name: `resnet18.${e.name}` })),
    ...mobilenetV2(true).map((e) => ({ ...e, name: `mobilenetv2.${e.name}` })),
  ];
  // the small-spatial convs (14x14 and 7x7 outputs) also in the blocked NCHWc layouts of AVX2 and AVX-512
  const blocked = real.filter((e) => e.spec.startsWith('conv2d') && /\bh(7|14) /.test(e.spec)).flatMap((e) => [8, 16].flatMap((B) => {
    const spec = e.spec.replace(/ \+/, ` layout${B} +`);
    try {
      parseProblem(spec);
      return [{ ...e, name: `${e.name}.nchw${B}c`, spec }];
    } catch {
      return []; // channels the block does not divide
    }
  }));
  return [
    ...mm64to256().filter((_, i) => i % 4 === 0),
    ...real, ...blocked,
    ...BERT_LAYERS.map((e) => ({ ...e, name: `bert.${e.name}` })),
  ];
}

/**
 * BERT-base (hidden 768, 12 heads, FFN 3072, 12 layers) and BERT-large (1024, 16 heads, 4096, 24
 * layers), batch 1, sequence lengths 128 and 384. Per layer: fused QKV projection, attention output
 * projection, FFN up and down (matmul tokens x out x in), and per-head attention as bmm: scores
 * Q.K^T (K stored transposed, k = head dim 64) and context P.V.
 */
function bert(): DatasetEntry[] {
  const models = [
    { model: 'base', hidden: 768, heads: 12, ffn: 3072, layers: 12 },
    { model: 'large', hidden: 1024, heads: 16, ffn: 4096, layers: 24 },
  ];
  const out: DatasetEntry[] = [];
  for (const { model, hidden: h, heads, ffn, layers } of models) {
    for (const seq of [128, 384]) {
      const p = `bert-${model}-s${seq}`;
      out.push(
        { name: `${p}.qkv`, spec: `matmul ${seq}x${3 * h}x${h}`, count: layers },
        { name: `${p}.attn-out`, spec: `matmul ${seq}x${h}x${h}`, count: layers },
        { name: `${p}.ffn-up`, spec: `matmul ${seq}x${ffn}x${h}`, count: layers },
        { name: `${p}.ffn-down`, spec: `matmul ${seq}x${h}x${ffn}`, count: layers },
        { name: `${p}.scores`, spec: `bmm b${heads} m${seq} n${seq} k64`, count: layers, note: 'Q.K^T per head' },
        { name: `${p}.context`, spec: `bmm b${heads} m${seq} n64 k${seq}`, count: layers, note: 'P.V per head' },
      );
    }
  }
  return out;
}

/**
 * Small volumetric layers (10-150 MFLOP each; spatial sizes are padded inputs): a 3D U-Net for
 * electron-microscopy segmentation on a 16x32x32 anisotropic patch (isotropic and 1x3x3 in-plane
 * convolutions, a 2x2x2 strided downsampling, the 1x1x1 affinity head) and an SSCNet-style
 * semantic scene completion network at reduced resolution (7x7x7/2 stem, 3x3x3 body, 1x1x1
 * classifier).
 */
const CONV3D_SMALL: DatasetEntry[] = [
  { name: 'unet-em.l1.in', spec: 'conv3d n1 c1 d18 h34 w34 k12 t3 r3 s3 stride1', note: '1 -> 12, 3x3x3, out 16x32x32' },
  { name: 'unet-em.l1.aniso', spec: 'conv3d n1 c12 d16 h34 w34 k12 t1 r3 s3 stride1', note: '12 -> 12, 1x3x3, out 16x32x32' },
  { name: 'unet-em.down1', spec: 'conv3d n1 c12 d16 h32 w32 k24 t2 r2 s2 stride2', note: '12 -> 24, 2x2x2/2, out 8x16x16' },
  { name: 'unet-em.l2', spec: 'conv3d n1 c24 d10 h18 w18 k24 t3 r3 s3 stride1', note: '24 -> 24, 3x3x3, out 8x16x16' },
  { name: 'unet-em.l3', spec: 'conv3d n1 c48 d6 h10 w10 k48 t3 r3 s3 stride1', note: '48 -> 48, 3x3x3, out 4x8x8' },
  { name: 'unet-em.head', spec: 'conv3d n1 c12 d16 h32 w32 k3 t1 r1 s1 stride1', note: '12 -> 3 affinities, 1x1x1' },
  { name: 'ssc.stem', spec: 'conv3d n1 c1 d37 h37 w37 k16 t7 r7 s7 stride2', note: '1 -> 16, 7x7x7/2, out 16x16x16' },
  { name: 'ssc.body', spec: 'conv3d n1 c32 d18 h12 w18 k32 t3 r3 s3 stride1', note: '32 -> 32, 3x3x3, out 16x10x16' },
  { name: 'ssc.head', spec: 'conv3d n1 c64 d16 h10 w16 k12 t1 r1 s1 stride1', note: '64 -> 12 classes, 1x1x1' },
];

/**
 * Max pooling layers of image classifiers, batch 1 (the IR has no padding: a padded pool takes the
 * padded input size). ResNet-18 and ResNet-50 share their one pool, the stem's 3x3/2 pad 1 on
 * 112x112 (its input comes out of a ReLU, so zero padding gives what ONNX's -Infinity padding
 * gives). The others are unpadded: VGG-16's 2x2/2 pools, AlexNet's and Inception-v3's 3x3/2.
 */
const POOLING: DatasetEntry[] = [
  { name: 'resnet.maxpool', spec: 'maxpool2d n1 c64 h114 w114 r3 s3 stride2', count: 1, note: 'ResNet-18/50 stem, 3x3/2 pad 1, 112 -> 56' },
  { name: 'vgg16.pool1', spec: 'maxpool2d n1 c64 h224 w224 r2 s2 stride2', count: 1, note: '2x2/2, 224 -> 112' },
  { name: 'vgg16.pool2', spec: 'maxpool2d n1 c128 h112 w112 r2 s2 stride2', count: 1, note: '2x2/2, 112 -> 56' },
  { name: 'vgg16.pool3', spec: 'maxpool2d n1 c256 h56 w56 r2 s2 stride2', count: 1, note: '2x2/2, 56 -> 28' },
  { name: 'vgg16.pool4', spec: 'maxpool2d n1 c512 h28 w28 r2 s2 stride2', count: 1, note: '2x2/2, 28 -> 14' },
  { name: 'vgg16.pool5', spec: 'maxpool2d n1 c512 h14 w14 r2 s2 stride2', count: 1, note: '2x2/2, 14 -> 7' },
  { name: 'alexnet.pool1', spec: 'maxpool2d n1 c64 h55 w55 r3 s3 stride2', count: 1, note: '3x3/2, 55 -> 27' },
  { name: 'alexnet.pool2', spec: 'maxpool2d n1 c192 h27 w27 r3 s3 stride2', count: 1, note: '3x3/2, 27 -> 13' },
  { name: 'alexnet.pool5', spec: 'maxpool2d n1 c256 h13 w13 r3 s3 stride2', count: 1, note: '3x3/2, 13 -> 6' },
  { name: 'inception3.pool1', spec: 'maxpool2d n1 c64 h147 w147 r3 s3 stride2', count: 1, note: '3x3/2, 147 -> 73' },
  { name: 'inception3.pool2', spec: 'maxpool2d n1 c192 h71 w71 r3 s3 stride2', count: 1, note: '3x3/2, 71 -> 35' },
];

/** Tall-skinny and long-reduction matmuls (M x N x K): panels, embeddings, projections onto few features. */
const TALL_SKINNY: DatasetEntry[] = [
  { name: 'wide-n32k', spec: 'matmul 256x32768x64' },
  { name: 'wide-n16k', spec: 'matmul 128x16384x32' },
  { name: 'tall-m32k', spec: 'matmul 32768x256x64' },
  { name: 'tall-m16k', spec: 'matmul 16384x128x32' },
  { name: 'skinny-n16', spec: 'matmul 8192x16x512' },
  { name: 'long-k16k', spec: 'matmul 64x64x16384' },
  { name: 'long-k64k', spec: 'matmul 32x32x65536' },
];

/**
 * GPU-sized problems for the cuda target: square-ish matmuls of 256-2048 (every m, n, k in
 * {256, 512, 1024, 2048}), BERT-base's GEMMs and attention bmm at sequence 128 and 384, and the
 * ResNet-18 conv layers. Problems of mm64-256's size leave most of a GPU idle.
 */
function gpuMix(): DatasetEntry[] {
  const sizes = [256, 512, 1024, 2048];
  const out: DatasetEntry[] = [];
  for (const m of sizes) for (const n of sizes) for (const k of sizes) out.push({ name: `m${m}n${n}k${k}`, spec: `matmul ${m}x${n}x${k}` });
  out.push(...bert().filter((e) => e.name.startsWith('bert-base')));
  out.push(...RESNET18);
  return out;
}

const DEFINITIONS: Record<string, { description: string; entries: () => DatasetEntry[] }> = {
  'gpu-mix': { description: 'cuda-sized problems: matmul 256-2048 (64 shapes), BERT-base GEMMs and attention bmm, ResNet-18 conv2d', entries: gpuMix },
  'mm64-256': { description: "LoopTune's matmul set: M, N, K each in 64..256 step 16 (13^3 = 2,197 problems)", entries: mm64to256 },
  'resnet18-conv2d': { description: 'ResNet-18 conv2d layers, batch 1, 224x224 input (padded input sizes; 11 distinct shapes)', entries: () => RESNET18 },
  'resnet50-conv2d': { description: 'ResNet-50 (v1.5) conv2d layers, batch 1, 224x224 input (padded input sizes; 23 distinct shapes of 53 convs)', entries: () => resnet50() },
  'mobilenetv2-conv2d': { description: 'MobileNetV2 conv2d layers, batch 1, 224x224: depthwise 3x3 (stride 1, 2) and pointwise 1x1 (padded input sizes)', entries: () => mobilenetV2() },
  'bert-gemm': { description: 'BERT-base/large GEMMs at sequence 128/384: QKV, attention out, FFN up/down, attention bmm', entries: bert },
  'conv3d-small': { description: 'small 3D convolutions: 3D U-Net (EM segmentation) and SSCNet-style scene completion', entries: () => CONV3D_SMALL },
  'tall-skinny': { description: 'tall-skinny and long-reduction matmuls', entries: () => TALL_SKINNY },
  'resnet18-layers': { description: 'ResNet-18 as real layers: unpadded sizes with pad, folded batch norm as +bias, +relu and +residual fused; the stem pool and head', entries: () => [...resnet18Layers(), REAL_POOLS[0]!, REAL_POOLS[1]!] },
  'resnet50-layers': { description: 'ResNet-50 (v1.5) as real layers: pad, +bias, +relu, +residual fused (23 conv tasks), the stem pool and head', entries: () => [...resnet50(true), REAL_POOLS[0]!, REAL_POOLS[2]!] },
  'mobilenetv2-layers': { description: 'MobileNetV2 as real layers: depthwise and pointwise with pad, +bias +relu6, the projections\' +residual, the head pool', entries: () => [...mobilenetV2(true), REAL_POOLS[3]!] },
  'bert-layers': { description: 'one BERT-base encoder layer (sequence 128) with fused +bias, +gelu, +residual and the score scale', entries: () => BERT_LAYERS },
  'real-pools': { description: 'padded max pool (ResNet stem), global average pools (ResNet-18/50, MobileNetV2 heads), a padded 3x3 average pool', entries: () => REAL_POOLS },
  'mixed': { description: 'the shipped policies\' training set: every 4th mm64-256 shape, ResNet-18 and MobileNetV2 real layers, BERT-base layer', entries: mixed },
  'pooling': { description: 'max pooling layers: ResNet-18/50 stem (padded input), VGG-16, AlexNet, Inception-v3 (11 shapes)', entries: () => POOLING },
};

const datasets = new Map<string, Dataset>();
const splitCache = new Map<string, { train: number[]; test: number[] }>();
const problemCache = new Map<string, Problem>();

export function datasetNames(): string[] {
  return Object.keys(DEFINITIONS);
}

export function getDataset(name: string): Dataset {
  const cached = datasets.get(name);
  if (cached) return cached;
  const def = DEFINITIONS[name];
  if (!def) fail(`unknown dataset '${name}' (expected one of: ${datasetNames().join(', ')})`);
  const d: Dataset = { name, description: def.description, entries: Object.freeze(def.entries()) };
  datasets.set(name, d);
  return d;
}

/** Indices of the train and test parts, each ascending (see the header for the rule). */
export function splitIndices(size: number, seed = SPLIT_SEED, testFraction = TEST_FRACTION): { train: number[]; test: number[] } {
  const order = Array.from({ length: size }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = size - 1; i >= 1; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const testCount = size <= 1 ? size : Math.max(1, Math.round(size * testFraction));
  const test = order.slice(0, testCount).sort((a, b) => a - b);
  const train = order.slice(testCount).sort((a, b) => a - b);
  return { train, test };
}

function indicesOf(name: string, which: SplitName): number[] {
  const d = getDataset(name);
  if (which === 'all') return d.entries.map((_, i) => i);
  if (which !== 'train' && which !== 'test') fail(`unknown split '${String(which)}' (expected train, test or all)`);
  let s = splitCache.get(name);
  if (!s) {
    s = splitIndices(d.entries.length);
    splitCache.set(name, s);
  }
  return s[which];
}

export function splitEntries(name: string, which: SplitName = 'all'): DatasetEntry[] {
  const d = getDataset(name);
  return indicesOf(name, which).map((i) => d.entries[i]!);
}

function problemOf(spec: string): Problem {
  let p = problemCache.get(spec);
  if (!p) {
    p = parseProblem(spec);
    problemCache.set(spec, p);
  }
  return p;
}

/** The problems of a dataset split (parsed once, then shared). */
export function split(name: string, which: SplitName = 'all'): Problem[] {
  return splitEntries(name, which).map((e) => problemOf(e.spec));
}

export function listDatasets(): DatasetSummary[] {
  return datasetNames().map((name) => {
    const d = getDataset(name);
    return { name, description: d.description, size: d.entries.length, train: indicesOf(name, 'train').length, test: indicesOf(name, 'test').length };
  });
}

/**
 * Problems from a reference: a dataset name with an optional split ("mm64-256:test",
 * "resnet18-conv2d"), a problem spec ("matmul 64x64x64"), or a list of specs/problems.
 */
export function resolveProblems(ref: string | readonly (string | Problem)[]): Problem[] {
  if (typeof ref !== 'string') return ref.map((r) => (typeof r === 'string' ? resolveOne(r) : r));
  return [...resolveDatasetOrSpec(ref)];
}

function resolveOne(spec: string): Problem {
  return problemOf(spec);
}

function resolveDatasetOrSpec(ref: string): Problem[] {
  const t = ref.trim();
  const m = /^([A-Za-z0-9][\w-]*)(?::(\w+))?$/.exec(t);
  if (m) {
    // one word: a dataset name, with an optional split (no problem spec is a single word)
    if (m[2] !== undefined || DEFINITIONS[m[1]!]) {
      getDataset(m[1]!);
      return split(m[1]!, (m[2] ?? 'all') as SplitName);
    }
    fail(`'${t}' is neither a dataset (${datasetNames().join(', ')}) nor a problem spec such as "matmul 64x64x64"`);
  }
  return [problemOf(t)];
}
