import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseLayouts, type LayoutOption } from '../../agent/choose-layouts.ts';
import { whyNotBlocked } from '../../ir/layout.ts';
import { modelTasks, type ModelGraph } from '../../ir/model/graph.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';
import { zooModel, zooSignature } from '../../ir/model/zoo/index.ts';

const B = 16;

function resnet(): ModelGraph {
  const { input } = zooSignature('resnet18-tiny');
  return importOnnx(zooModel('resnet18-tiny'), { inputShapes: { [input.name]: input.dims.map((d) => (typeof d === 'string' ? 1 : d)) } });
}

const g = resnet();
const blockable = modelTasks(g).filter((t) => whyNotBlocked(t.problem, B) === null);
const option = (nchw: number, blocked: number, conversion: number): LayoutOption => ({
  nchwSeconds: nchw, blockedSeconds: blocked, block: B, conversions: { input: conversion, residual: conversion, output: conversion },
});

test('a task a little slower blocked stays blocked between blocked neighbours: the conversions it saves count', () => {
  assert.ok(blockable.length >= 3, `${blockable.length} blockable tasks`);
  const middle = blockable[Math.floor(blockable.length / 2)]!.problem.spec;
  const options = new Map(blockable.map((t) => [t.problem.spec, t.problem.spec === middle ? option(1, 1.05, 0.5) : option(1, 0.9, 0.5)]));
  const d = chooseLayouts(g, options);
  assert.ok(d.blocked.has(middle), 'the slower twin is kept for the conversions around it');
  assert.is(d.blocked.size, blockable.length);
  // the standalone rule (kernel + its own conversions) would have refused every one of them
  assert.ok([...options.values()].every((o) => o.blockedSeconds + 2 * o.conversions.input > o.nchwSeconds));
});

test('an isolated task whose conversions outweigh its faster twin stays NCHW; the charged conversions are in the total', () => {
  const one = blockable[0]!.problem.spec;
  const cheap = chooseLayouts(g, new Map([[one, option(1, 0.5, 0.01)]]));
  assert.ok(cheap.blocked.has(one));
  const charged = cheap.conversionSeconds.get(one)!;
  assert.ok(charged > 0, 'its edges are charged to it');
  const nodes = blockable[0]!.count;
  assert.ok(Math.abs(cheap.seconds - nodes * (0.5 + charged)) < 1e-9, `${cheap.seconds} = ${nodes} x (0.5 + ${charged})`);
  const dear = chooseLayouts(g, new Map([[one, option(1, 0.9, 10)]]));
  assert.not.ok(dear.blocked.has(one));
  assert.is(dear.seconds, nodes * 1);
});

test('no options: nothing blocked', () => {
  const d = chooseLayouts(g, new Map());
  assert.is(d.blocked.size, 0);
  assert.is(d.seconds, 0);
});

test.run();
