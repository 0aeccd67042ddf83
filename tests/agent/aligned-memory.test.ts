import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AlignedBlock, alignWeights } from '../../agent/aligned-memory.ts';
import { randomArray } from '../../ir/interpret.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';
import { zooModel, zooSignature } from '../../ir/model/zoo/index.ts';

test('alignWeights: every weight keeps its values, each at a 64-byte aligned place of one block', () => {
  const { input } = zooSignature('resnet18-tiny');
  const g = importOnnx(zooModel('resnet18-tiny'), { inputShapes: { [input.name]: input.dims.map((d) => (typeof d === 'string' ? 1 : d)) } });
  const { graph, block } = alignWeights(g);
  try {
    assert.equal([...graph.weights.keys()], [...g.weights.keys()]);
    const buffers = new Set<ArrayBufferLike>();
    for (const [name, w] of graph.weights) {
      const before = g.weights.get(name)!;
      assert.equal(w.shape, before.shape);
      assert.ok(w.data.every((v, i) => Object.is(v, before.data[i])), `${name} keeps its values`);
      // the block's base is 64-byte aligned (NativeFloat32Buffer), so the offset tells the alignment
      assert.is(w.data.byteOffset % 64, 0, `${name} at byte ${w.data.byteOffset}`);
      buffers.add(w.data.buffer);
    }
    assert.is(buffers.size, 1, 'one block');
    assert.is(graph.nodes, g.nodes);
  } finally {
    block.free();
  }
});

test('AlignedBlock: views do not overlap where their offsets do not, and an empty block gives empty views', () => {
  const block = new AlignedBlock(64);
  const a = block.view(0, 16), b = block.view(16, 48);
  a.set(randomArray(16, 1));
  b.fill(3);
  assert.ok(a.every((v) => v !== 3) && b.every((v) => v === 3));
  block.free();
  const empty = new AlignedBlock(0);
  assert.is(empty.view(0, 0).length, 0);
  empty.free();
});

test.run();
