import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../../ir/errors.ts';
import { randomArray } from '../../../ir/interpret.ts';
import { whyNotBlocked } from '../../../ir/layout.ts';
import { type KernelNode, type ModelGraph } from '../../../ir/model/graph.ts';
import { importOnnx } from '../../../ir/model/onnx-import.ts';
import { propagateLayout } from '../../../ir/model/propagate-layout.ts';
import { runReference } from '../../../ir/model/reference.ts';
import { zooModel, zooSignature, type ZooName } from '../../../ir/model/zoo/index.ts';

const B = 16;

function graphOf(name: ZooName): ModelGraph {
  const { input } = zooSignature(name);
  return importOnnx(zooModel(name), { inputShapes: { [input.name]: input.dims.map((d) => (typeof d === 'string' ? 1 : d)) } });
}

/** Every conv and pool of `g` that has a blocked twin with block B. */
function blockable(g: ModelGraph): Map<string, number> {
  return new Map(g.nodes.filter((n): n is KernelNode => n.kind === 'kernel' && whyNotBlocked(n.problem, B) === null).map((n) => [n.name, B]));
}

const isConversion = (n: { kind: string; name: string }, to: boolean) => n.kind === 'kernel' && (to ? /@nchw\d+c$/.test(n.name) : / from nchw\d+c$/.test(n.name));

for (const name of ['resnet18-tiny', 'mobilenetv2-tiny'] as const) {
  test(`${name}: the propagated graph computes what the original does`, () => {
    const g = graphOf(name);
    const blocked = blockable(g);
    assert.ok(blocked.size >= 3, `${blocked.size} blockable nodes`);
    const p = propagateLayout(g, blocked);
    const inputs = Object.fromEntries(g.inputs.map((v, i) => [v.name, randomArray(v.shape.reduce((a, b) => a * b, 1), 11 + i)]));
    const want = runReference(g, inputs).outputs, got = runReference(p, inputs).outputs;
    for (const o of g.outputs) {
      const w = want[o.name]!, x = got[o.name]!;
      const scale = Math.max(...w.map(Math.abs));
      const err = Math.max(...w.map((v, i) => Math.abs(v - x[i]!)));
      assert.ok(err <= 1e-5 * scale, `${o.name}: ${err} of ${scale}`);
    }
  });

  test(`${name}: blocked layers feed each other with no conversion between them`, () => {
    const g = graphOf(name);
    const blocked = blockable(g);
    const p = propagateLayout(g, blocked);
    const producer = new Map(p.nodes.map((n) => [n.output, n]));
    const twins = p.nodes.filter((n): n is KernelNode => n.kind === 'kernel' && blocked.has(n.name));
    assert.is(twins.length, blocked.size);
    for (const t of twins) {
      assert.ok(/ layout16/.test(t.problem.spec), t.problem.spec);
      assert.is(t.task, g.nodes.find((n) => n.name === t.name)!.kind === 'kernel' ? (g.nodes.find((n) => n.name === t.name) as KernelNode).problem.spec : undefined);
      // its input comes from another twin or from a conversion into the layout, never from a fromBlocked
      const from = producer.get(t.operands[0]!)!;
      assert.ok(from && (blocked.has(from.name) || isConversion(from, true)), `${t.name} reads ${t.operands[0]} from ${from?.name}`);
      if (blocked.has(from.name)) assert.is(t.operands[0], from.output);
    }
    // a value goes into the layout at most once, and out of it at most once
    const tos = p.nodes.filter((n) => isConversion(n, true)), froms = p.nodes.filter((n) => isConversion(n, false));
    assert.is(new Set(tos.map((n) => n.output)).size, tos.length);
    assert.is(new Set(froms.map((n) => n.output)).size, froms.length);
    // ResNet's blocked region is long (every conv after the stem); MobileNetV2-tiny's blockable layers are isolated
    if (name === 'resnet18-tiny') assert.ok(tos.length + froms.length < twins.length, `${tos.length} + ${froms.length} conversions around ${twins.length} blocked layers`);
    else assert.ok(tos.length <= twins.length && froms.length <= twins.length);
    // every graph output is still produced in NCHW under its own name
    for (const o of g.outputs) assert.equal(p.values.get(o.name)?.shape, o.shape);
  });

  test(`${name}: blocked convs read packed weights, and weights nobody reads are dropped`, () => {
    const g = graphOf(name);
    const blocked = blockable(g);
    const p = propagateLayout(g, blocked);
    const convTwins = p.nodes.filter((n): n is KernelNode => n.kind === 'kernel' && blocked.has(n.name) && n.problem.op === 'conv2d');
    assert.ok(convTwins.length > 0);
    for (const t of convTwins) {
      const w = p.weights.get(t.operands[1]!)!;
      assert.ok(t.operands[1]!.endsWith('@nchw16c') && w !== undefined, t.operands[1]);
      assert.is(w.data.length, t.problem.tensors[2]!.shape.reduce((a, b) => a * b, 1));
    }
    const read = new Set(p.nodes.flatMap((n) => (n.kind === 'kernel' ? n.operands : n.inputs)));
    for (const name of p.weights.keys()) assert.ok(read.has(name), `weight ${name} is read`);
  });
}

test('nothing blocked: the same graph', () => {
  const g = graphOf('resnet18-tiny');
  assert.is(propagateLayout(g, new Map()), g);
});

test('a node that is not a kernel of the graph, or has no blocked twin, is one line', () => {
  const g = graphOf('resnet18-tiny');
  const oneLine = (re: RegExp) => (e: unknown) => e instanceof LoopTuneError && re.test(e.message) && !e.message.includes('\n');
  assert.throws(() => propagateLayout(g, new Map([['no-such-node', B]])), oneLine(/no-such-node is not a kernel node/));
  const first = g.nodes.find((n): n is KernelNode => n.kind === 'kernel' && whyNotBlocked(n.problem, B) !== null)!;
  assert.throws(() => propagateLayout(g, new Map([[first.name, B]])), oneLine(new RegExp(`node ${first.name.replace(/\./g, '\\.')} cannot run blocked`)));
});

test.run();
