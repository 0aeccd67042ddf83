import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { libraryLayoutSeconds, transposesLeftByLibrary } from '../../agent/library-layout-cost.ts';
import { modelTasks } from '../../ir/model/graph.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';
import { zooModel } from '../../ir/model/zoo/index.ts';

const g = importOnnx(zooModel('bert-layer-tiny'));
const bmm = modelTasks(g).filter((t) => t.problem.op === 'bmm').flatMap((t) => t.nodes);

test('the attention bmm nodes on the library leave the head split and merge transposes as host ops', () => {
  assert.ok(bmm.length >= 2, `${bmm.length} bmm nodes`);
  const left = transposesLeftByLibrary(g, new Set(bmm));
  assert.ok(left.length >= 2, `${left.map((n) => n.name).join(', ')}`);
  for (const n of left) assert.is(n.op.kind, 'transpose');
  // each of them touches a bmm: it feeds one, or reads one's output
  const touching = new Set(g.nodes.filter((n) => n.kind === 'kernel' && bmm.includes(n.name)).flatMap((n) => [...(n.kind === 'kernel' ? n.operands : []), n.output]));
  for (const n of left) assert.ok(touching.has(n.output) || touching.has(n.inputs[0]!), `${n.name} is next to a bmm`);
  assert.ok(libraryLayoutSeconds(g, new Set(bmm)) > 0);
});

test('no library node, or one that folds no transpose (the FFN matmul): nothing left, nothing charged', () => {
  assert.equal(transposesLeftByLibrary(g, new Set()), []);
  assert.is(libraryLayoutSeconds(g, new Set()), 0);
  const ffn = modelTasks(g).filter((t) => t.problem.op === 'matmul' && /gelu/.test(t.problem.spec)).flatMap((t) => t.nodes);
  assert.ok(ffn.length === 1);
  assert.equal(transposesLeftByLibrary(g, new Set(ffn)), []);
});

test.run();
