import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { flops, LoopTuneError, type Problem } from '../../ir/index.ts';
import { getDataset, listDatasets, resolveProblems, split, splitEntries, splitIndices, datasetNames } from '../../env/datasets.ts';

test('mm64-256: 2,197 matmuls with M, N, K in 64..256 step 16', () => {
  const all = split('mm64-256', 'all');
  assert.is(all.length, 2197);
  assert.is(new Set(all.map((p) => p.spec)).size, 2197);
  const extents = new Set(all.flatMap((p) => p.vars.map((v) => v.extent)));
  assert.equal([...extents].sort((a, b) => a - b), Array.from({ length: 13 }, (_, i) => 64 + 16 * i));
  assert.ok(all.every((p) => p.op === 'matmul'));
});

test('90/10 split: disjoint, covering, deterministic', () => {
  const train = split('mm64-256', 'train').map((p) => p.spec);
  const test_ = split('mm64-256', 'test').map((p) => p.spec);
  assert.is(train.length, 1977);
  assert.is(test_.length, 220);
  const t = new Set(test_);
  assert.ok(train.every((s) => !t.has(s)));
  assert.is(new Set([...train, ...test_]).size, 2197);
  // deterministic: recomputing the rule gives the same indices; documented examples stay put
  const again = splitIndices(2197);
  assert.equal(again.test.map((i) => getDataset('mm64-256').entries[i]!.spec), test_);
  assert.equal(splitIndices(2197), again);
  assert.not.equal(splitIndices(2197, 1).test, again.test);
  assert.equal(test_.slice(0, 3), splitEntries('mm64-256', 'test').slice(0, 3).map((e) => e.spec));
});

test('every dataset parses, has train and test parts, and documents its entries', () => {
  const sizes = Object.fromEntries(listDatasets().map((d) => [d.name, d.size]));
  assert.equal(sizes, {
    'mm64-256': 2197, 'resnet18-conv2d': 11, 'resnet50-conv2d': 23, 'mobilenetv2-conv2d': 30, 'bert-gemm': 24, 'conv3d-small': 9, 'tall-skinny': 7, 'gpu-mix': 87, 'pooling': 11,
    'resnet18-layers': 17, 'resnet50-layers': 26, 'mobilenetv2-layers': 31, 'bert-layers': 6, 'real-pools': 5, 'mixed': 643,
  });
  for (const d of listDatasets()) {
    assert.is(d.train + d.test, d.size, d.name);
    assert.ok(d.test >= 1 && d.train >= 1, d.name);
    const ps = split(d.name);
    assert.is(ps.length, d.size);
  }
});

test('the real-layer sets: padded convs with their fused epilogues give the same outputs as the pre-padded sets', () => {
  const real = split('resnet18-layers').filter((p) => p.op === 'conv2d');
  const old = new Set(split('resnet18-conv2d').map((p) => p.tensors[0]!.shape.join('x') + ' ' + p.tensors[1]!.shape.join('x')));
  // every real conv reads the same padded storage and writes the same output as an old pre-padded one
  for (const p of real) assert.ok(old.has(p.tensors[0]!.shape.join('x') + ' ' + p.tensors[1]!.shape.join('x')), p.spec);
  assert.ok(real.every((p) => p.epilogue?.[0]?.kind === 'bias'), 'every conv has its folded batch norm as +bias');
  assert.is(real.filter((p) => p.epilogue?.some((e) => e.kind === 'residual')).length, 4, "one residual conv per stage (the blocks' second conv)");
  const mixed = split('mixed');
  for (const op of ['matmul', 'conv2d', 'bmm']) assert.ok(mixed.some((p) => p.op === op), op);
  assert.ok(mixed.some((p) => p.vars.some((v) => v.name === 'g')), 'depthwise layers are in the mix');
});

test('ResNet-18 layers have the real output sizes (padded inputs)', () => {
  const ps = split('resnet18-conv2d');
  const out = ps.map((p) => {
    const v = Object.fromEntries(p.vars.map((x) => [x.name, x.extent]));
    return `${v.k}x${v.h}x${v.w}`;
  });
  assert.equal(out, ['64x112x112', '64x56x56', '128x28x28', '128x28x28', '128x28x28', '256x14x14', '256x14x14', '256x14x14', '512x7x7', '512x7x7', '512x7x7']);
  const total = splitEntries('resnet18-conv2d').reduce((a, e, i) => a + (e.count ?? 1) * flops(ps[i]!), 0);
  // ResNet-18 is about 1.8 GMACs = 3.6 GFLOP of convolutions
  assert.ok(total > 3.4e9 && total < 3.8e9, String(total));
});

/** Output channels x height x width of a conv problem, and its groups. */
function outputShape(p: Problem): string {
  const [, k, h, w] = p.tensors[0]!.shape;
  const g = p.vars.find((v) => v.name === 'g')?.extent ?? 1;
  return `${k}x${h}x${w}${g > 1 ? `/g${g}` : ''}`;
}

/** Convolutions and multiply-accumulates (flops / 2) of a network, counting repeated shapes. */
function totals(name: string): { convs: number; macs: number } {
  const ps = split(name);
  return splitEntries(name).reduce((a, e, i) => ({ convs: a.convs + (e.count ?? 1), macs: a.macs + (e.count ?? 1) * flops(ps[i]!) / 2 }), { convs: 0, macs: 0 });
}

test('ResNet-50: 53 convs in 23 shapes, 4.09 GMACs (torchvision), the real output sizes', () => {
  const ps = split('resnet50-conv2d');
  const { convs, macs } = totals('resnet50-conv2d');
  assert.is(convs, 53);
  // torchvision lists 4.09 G multiply-adds for ResNet-50, of which the fc layer is 2 M
  assert.ok(Math.abs(macs - 4.087e9) < 0.01e9, String(macs));
  const byName = Object.fromEntries(splitEntries('resnet50-conv2d').map((e, i) => [e.name, outputShape(ps[i]!)]));
  assert.is(byName.conv1, '64x112x112');
  assert.is(byName['layer2.0.conv2'], '128x28x28'); // v1.5: the stride is on the 3x3
  assert.is(byName['layer2.0.downsample'], '512x28x28');
  assert.is(byName['layer4.1.conv2'], '512x7x7');
  assert.is(byName['layer4.0.conv3'], '2048x7x7');
  // layer1's first expand and its downsample are one shape: 3 expands + 1 downsample
  assert.is(splitEntries('resnet50-conv2d').find((e) => e.name === 'layer1.0.conv3')!.count, 4);
});

test('MobileNetV2: 52 convs, 300 M MACs; depthwise 3x3 at stride 1 and 2, pointwise 1x1', () => {
  const ps = split('mobilenetv2-conv2d');
  const { convs, macs } = totals('mobilenetv2-conv2d');
  assert.is(convs, 52);
  // torchvision lists 0.30 G multiply-adds (the 1.28 M of the classifier included)
  assert.ok(Math.abs(macs - 0.2995e9) < 0.003e9, String(macs));
  const entries = splitEntries('mobilenetv2-conv2d');
  const depthwise = ps.filter((p) => outputShape(p).includes('/g'));
  assert.is(depthwise.length, 10); // 6 at stride 1, 4 at stride 2
  assert.is(depthwise.filter((p) => p.spec.includes('stride2')).length, 4);
  for (const p of depthwise) {
    // one input channel per group, and as many groups as channels
    assert.is(p.tensors[2]!.shape[1], 1, p.spec);
    assert.is(p.vars.find((v) => v.name === 'g')!.extent, p.tensors[1]!.shape[1], p.spec);
  }
  const shapeOf = (name: string) => outputShape(ps[entries.findIndex((e) => e.name === name)]!);
  assert.is(shapeOf('features.0'), '32x112x112');
  assert.is(shapeOf('features.1.dw'), '32x112x112/g32');
  assert.is(shapeOf('features.2.dw'), '96x56x56/g96'); // stride 2
  assert.is(shapeOf('features.14.dw'), '576x7x7/g576');
  assert.is(shapeOf('features.18'), '1280x7x7');
  const pointwise = entries.filter((e) => / r1 s1 /.test(e.spec));
  assert.is(pointwise.length, 19);
  assert.ok(pointwise.every((e) => !e.spec.includes('groups')));
  assert.is(entries.find((e) => e.name === 'features.15.dw')!.spec, 'conv2d n1 c960 h9 w9 k960 r3 s3 stride1 groups960');
});

test('conv3d-small layers are small (well under a second even untuned)', () => {
  for (const p of split('conv3d-small')) assert.ok(flops(p) < 2e8, p.spec);
});

test('BERT GEMM shapes', () => {
  const specs = splitEntries('bert-gemm').map((e) => `${e.name}=${e.spec}`);
  assert.ok(specs.includes('bert-base-s128.qkv=matmul 128x2304x768'));
  assert.ok(specs.includes('bert-large-s384.ffn-down=matmul 384x1024x4096'));
  assert.ok(specs.includes('bert-base-s384.scores=bmm b12 m384 n384 k64'));
  assert.ok(specs.includes('bert-large-s128.context=bmm b16 m128 n64 k128'));
});

test('unknown dataset or split: one clear line', () => {
  assert.throws(() => getDataset('imagenet'), (e: unknown) => e instanceof LoopTuneError
    && e.message === `unknown dataset 'imagenet' (expected one of: ${datasetNames().join(', ')})`);
  assert.throws(() => split('mm64-256', 'val' as 'train'), /unknown split 'val'/);
  assert.throws(() => resolveProblems('mm64-256:val'), /unknown split 'val'/);
  assert.throws(() => resolveProblems('imagenet:test'), /unknown dataset 'imagenet'/);
  assert.throws(() => resolveProblems('resnet50'), /neither a dataset/);
});

test('resolveProblems: dataset refs, specs and lists', () => {
  assert.is(resolveProblems('mm64-256:test').length, 220);
  assert.is(resolveProblems('tall-skinny').length, 7);
  assert.equal(resolveProblems('matmul 64x64x64').map((p) => p.spec), ['matmul 64x64x64']);
  assert.equal(resolveProblems(['matmul 8x8x8', 'bmm b2 m4 n4 k4']).map((p) => p.op), ['matmul', 'bmm']);
});

test.run();
