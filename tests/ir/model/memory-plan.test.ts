import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { LoopTuneError } from '../../../ir/errors.ts';
import { randomArray, interpret } from '../../../ir/interpret.ts';
import { type HostOp, type ModelGraph, type ModelNode, type ModelValue, type ModelWeight } from '../../../ir/model/graph.ts';
import {
  planArena, planModelMemory, storageTensor, withStorages, type ArenaRequest, type ModelMemoryPlan,
} from '../../../ir/model/memory-plan.ts';
import { evaluateHostOp, runReference } from '../../../ir/model/reference.ts';
import { importOnnx } from '../../../ir/model/onnx-import.ts';
import { zooModel } from '../../../ir/model/zoo/index.ts';
import { copyFromStorage, copyIntoStorage, fillInterior, isPadded, padded } from '../../../ir/padding.ts';
import { dataShape, elementCount, type Problem } from '../../../ir/problem.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------- hand-built graphs

interface NodeSpec {
  name: string;
  /** a problem spec (kernel) or a host op */
  run: string | HostOp;
  inputs: string[];
  output: string;
  /** host nodes: the output's shape */
  shape?: number[];
}

/** A graph from inputs, node specs and the graph outputs; weights (any operand that is not a value) are random. */
function buildGraph(inputs: Record<string, number[]>, specs: NodeSpec[], outputs: string[]): ModelGraph {
  const values = new Map<string, ModelValue>(Object.entries(inputs).map(([name, shape]) => [name, { name, shape }]));
  const weights = new Map<string, ModelWeight>();
  const nodes: ModelNode[] = specs.map((s, i) => {
    if (typeof s.run === 'string') {
      const problem = parseProblem(s.run);
      s.inputs.forEach((name, k) => {
        if (values.has(name) || weights.has(name)) return;
        const shape = dataShape(problem.tensors[k + 1]!);
        weights.set(name, { name, shape, data: randomArray(product(shape), 100 + i * 10 + k) });
      });
      values.set(s.output, { name: s.output, shape: dataShape(problem.tensors[0]!) });
      return { kind: 'kernel', name: s.name, problem, output: s.output, operands: s.inputs, sources: [s.name] };
    }
    values.set(s.output, { name: s.output, shape: s.shape! });
    return { kind: 'host', name: s.name, op: s.run, inputs: s.inputs, output: s.output, sources: [s.name] };
  });
  return {
    name: 'hand-built', inputs: Object.keys(inputs).map((n) => values.get(n)!), outputs: outputs.map((n) => values.get(n)!),
    values, weights, nodes,
  };
}

const IDENTITY: Partial<Record<Problem['combine'], number>> = { fma: 0, sum: 0, max: -Infinity };

/**
 * Runs `g` as the plan says, in float64: one arena of views at the planned offsets (so a buffer
 * sharing memory with a live one would corrupt the result), borders filled once, each kernel's
 * rewritten problem by the interpreter on the planned storages, host ops on dense buffers, and the
 * plan's copies. Returns the graph outputs.
 */
function simulate(g: ModelGraph, plan: ModelMemoryPlan, runs: Record<string, Float32Array>[]): Record<string, Float64Array>[] {
  const arena = new ArrayBuffer(plan.arenaElements * 8);
  const arrays = plan.buffers.map((b) => {
    if (b.place === 'arena') {
      const v = new Float64Array(arena, b.offset * 8, b.elements);
      if (isPadded(storageTensor(b))) v.fill(b.storage.pad!.value);
      return v;
    }
    if (b.place === 'weight') return Float64Array.from(g.weights.get(b.binding!)!.data);
    if (b.place === 'constant') return Float64Array.from(padded(storageTensor(b), g.weights.get(b.binding!)!.data));
    return new Float64Array(b.elements);
  });
  const copy = (c: ModelMemoryPlan['copies'][number]) => {
    const from = storageTensor(plan.buffers[c.from]!), to = storageTensor(plan.buffers[c.to]!);
    const data = new Float64Array(product(dataShape(from)));
    copyFromStorage(from, arrays[c.from]!, data);
    copyIntoStorage(to, data, arrays[c.to]!);
  };
  return runs.map((inputs) => {
    for (const b of plan.buffers) if (b.place === 'input') arrays[b.id]!.set(inputs[b.binding!]!);
    for (const c of plan.copies.filter((c) => c.after === -1)) copy(c);
    g.nodes.forEach((n, i) => {
      const p = plan.nodes[i]!;
      if (n.kind === 'kernel') {
        const problem = p.problem!;
        const out = arrays[p.writes]!;
        fillInterior(problem.tensors[0]!, out, IDENTITY[problem.combine] ?? 0);
        out.set(interpret(Schedule.initial(problem), p.reads.map((b) => arrays[b]!), out));
      } else if (!p.alias) {
        const shapeOf = (name: string) => (g.values.get(name) ?? g.weights.get(name))!.shape;
        const result = evaluateHostOp(n.op, n.inputs.map((name, k) => ({ shape: shapeOf(name), data: arrays[p.reads[k]!]! })), shapeOf(n.output));
        arrays[p.writes]!.set(result);
      }
      for (const c of plan.copies.filter((c) => c.after === i)) copy(c);
    });
    const outputs: Record<string, Float64Array> = {};
    for (const [name, b] of plan.outputs) outputs[name] = arrays[b]!.slice();
    return outputs;
  });
}

/** Checks the plan against the reference run on two random inputs (the arena reused between them). */
function assertPlanComputesTheGraph(g: ModelGraph, plan: ModelMemoryPlan, tolerance = 1e-5): void {
  const runs = [3, 4].map((seed) => Object.fromEntries(g.inputs.map((v, k) => [v.name, randomArray(product(v.shape), seed * 10 + k)])));
  const got = simulate(g, plan, runs);
  runs.forEach((inputs, r) => {
    const want = runReference(g, inputs).outputs;
    for (const o of g.outputs) {
      const a = got[r]![o.name]!, b = want[o.name]!;
      assert.is(a.length, b.length, `${o.name} length`);
      let err = 0, scale = 0;
      for (let i = 0; i < a.length; i++) {
        err = Math.max(err, Math.abs(a[i]! - b[i]!));
        scale = Math.max(scale, Math.abs(b[i]!));
      }
      assert.ok(err <= tolerance * Math.max(1, scale), `${o.name} (run ${r}): error ${err} against the reference (scale ${scale})`);
    }
  });
}

/** No two arena buffers live at one step overlap in memory; bordered ones share only with their own storage. */
function assertArenaSound(plan: ModelMemoryPlan): void {
  const arena = plan.buffers.filter((b) => b.place === 'arena');
  for (const a of arena) {
    assert.ok(a.offset + a.elements <= plan.arenaElements, `buffer ${a.id} ends inside the arena`);
    for (const b of arena) {
      if (a.id >= b.id) continue;
      const memory = a.offset < b.offset + b.elements && b.offset < a.offset + a.elements;
      if (!memory) continue;
      const bordered = isPadded(storageTensor(a)) || isPadded(storageTensor(b));
      if (bordered) {
        assert.equal([a.offset, a.storage], [b.offset, b.storage], `bordered buffers ${a.value} and ${b.value} share memory only as one slot of one storage`);
        assert.ok(a.last < b.first || b.last < a.first, `${a.value} and ${b.value} share a slot while both live`);
      } else {
        assert.ok(a.last < b.first || b.last < a.first, `${a.value} (${a.first}..${a.last}) and ${b.value} (${b.first}..${b.last}) overlap in memory while both live`);
      }
    }
  }
}

// ---------------------------------------------------------------- planArena

test('planArena: buffers live at different steps share memory, buffers live together do not', () => {
  const disjoint = planArena([{ elements: 100, first: 0, last: 1 }, { elements: 100, first: 2, last: 3 }], 1);
  assert.is(disjoint.elements, 100);
  assert.equal(disjoint.offsets, [0, 0]);
  // a node's input (last read at 1) and its output (written at 1) are both live at step 1
  const touching = planArena([{ elements: 100, first: 0, last: 1 }, { elements: 60, first: 1, last: 2 }], 1);
  assert.is(touching.elements, 160);
});

test('planArena: best fit puts a small buffer into the smallest gap that holds it', () => {
  // A [0, 4] big, B [0, 4] big at 100..., C live only at 0..1 leaves a gap when D comes later
  const requests: ArenaRequest[] = [
    { elements: 100, first: 0, last: 4 }, // A
    { elements: 50, first: 0, last: 1 }, // B: freed after step 1
    { elements: 100, first: 0, last: 4 }, // C
    { elements: 40, first: 2, last: 4 }, // D: fits where B was
  ];
  const p = planArena(requests, 1);
  assert.is(p.elements, 250);
  assert.is(p.offsets[3], p.offsets[1]);
});

test('planArena: offsets are aligned, and live buffers never overlap (random lifetimes)', () => {
  fc.assert(fc.property(
    fc.array(fc.record({ elements: fc.integer({ min: 0, max: 500 }), first: fc.integer({ min: 0, max: 20 }), span: fc.integer({ min: 0, max: 8 }) }), { maxLength: 40 }),
    fc.constantFrom(1, 4, 16),
    (raw, alignment) => {
      const requests = raw.map((r) => ({ elements: r.elements, first: r.first, last: r.first + r.span }));
      const p = planArena(requests, alignment);
      for (let i = 0; i < requests.length; i++) {
        assert.is(p.offsets[i]! % alignment, 0);
        assert.ok(p.offsets[i]! + requests[i]!.elements <= p.elements);
        for (let j = i + 1; j < requests.length; j++) {
          const a = requests[i]!, b = requests[j]!;
          const live = a.first <= b.last && b.first <= a.last;
          const memory = p.offsets[i]! < p.offsets[j]! + b.elements && p.offsets[j]! < p.offsets[i]! + a.elements;
          if (live && memory && a.elements > 0 && b.elements > 0) return false;
        }
      }
      // never more than placing everything side by side
      return p.elements <= requests.reduce((s, r) => s + Math.ceil(r.elements / alignment) * alignment, 0);
    },
  ), { numRuns: 200 });
});

test('planArena: a bad request is one line', () => {
  assert.throws(() => planArena([{ elements: 10, first: 3, last: 1 }]), (e: Error) => e instanceof LoopTuneError && /first must not be after last/.test(e.message));
  assert.throws(() => planArena([{ elements: 1.5, first: 0, last: 1 }]), (e: Error) => e instanceof LoopTuneError && /non-negative integer/.test(e.message));
});

// ---------------------------------------------------------------- problems in planned storages

test('withStorages: a conv reading a wider border and writing into a bordered output, with a residual read from its interior, computes the same values', () => {
  const p = parseProblem('conv2d n1 c3 h5 w6 k4 r3 s3 stride1 pad1 +bias +residual +relu');
  const x = randomArray(1 * 3 * 5 * 6, 1), w = randomArray(4 * 3 * 9, 2), bias = randomArray(4, 3), r = randomArray(4 * 5 * 6, 4);
  const plain = interpret(Schedule.initial(p), [padded(p.tensors[1]!, x), w, bias, r]);
  // the input inside a border of 2 (1 more than the conv pads), the output and the residual inside borders of their own
  const inBorder = { shape: [1, 3, 9, 10], pad: { before: [0, 0, 2, 2], after: [0, 0, 2, 2], value: 0 } };
  const outBorder = { shape: [1, 4, 7, 8], pad: { before: [0, 0, 1, 1], after: [0, 0, 1, 1], value: 0 } };
  const resBorder = { shape: [1, 4, 8, 7], pad: { before: [0, 0, 3, 0], after: [0, 0, 0, 1], value: 0 } };
  const moved = withStorages(p, [outBorder, inBorder, undefined, undefined, resBorder]);
  assert.ok(moved.spec.startsWith(p.spec) && moved.spec.includes('O in 1x4x7x8'), moved.spec);
  assert.equal(moved.tensors[1]!.shape, inBorder.shape);
  const tensorOf = (s: typeof inBorder) => ({ name: 't', ...s });
  const xs = padded(tensorOf(inBorder), x), rs = padded(tensorOf(resBorder), r);
  // the border of the output must stay as it was: fill it with a marker
  const out = new Float64Array(elementCount(moved.tensors[0]!)).fill(7);
  fillInterior(moved.tensors[0]!, out, 0);
  const result = interpret(Schedule.initial(moved), [xs, w, bias, rs], out);
  const data = new Float64Array(plain.length);
  copyFromStorage(moved.tensors[0]!, result, data);
  for (let i = 0; i < data.length; i++) assert.ok(Math.abs(data[i]! - plain[i]!) < 1e-12, `element ${i}: ${data[i]} vs ${plain[i]}`);
  const border = result.filter((_, i) => i < 8 || i >= result.length - 8);
  assert.ok(border.every((v) => v === 7), 'the border is never written');
});

test('withStorages: no storage given, or the tensor\'s own, keeps the problem', () => {
  const p = parseProblem('conv2d n1 c3 h5 w6 k4 r3 s3 stride1 pad1');
  assert.is(withStorages(p, [undefined, undefined, undefined]), p);
  assert.is(withStorages(p, [undefined, { shape: p.tensors[1]!.shape, pad: p.tensors[1]!.pad! }, undefined]), p);
});

// ---------------------------------------------------------------- planModelMemory

test('planModelMemory: padded consumers read their producer\'s bordered output with no copy; the graph input is copied once', () => {
  const conv = 'conv2d n1 c4 h6 w6 k4 r3 s3 stride1 pad1 +bias +relu';
  const g = buildGraph({ x: [1, 4, 6, 6] }, [
    { name: 'c1', run: conv, inputs: ['x', 'w1', 'b1'], output: 'y1' },
    { name: 'c2', run: 'conv2d n1 c4 h6 w6 k4 r3 s3 stride1 pad1 +bias +residual +relu', inputs: ['y1', 'w2', 'b2', 'y1'], output: 'y2' },
    { name: 'c3', run: conv, inputs: ['y2', 'w3', 'b3'], output: 'y3' },
    { name: 'c4', run: conv, inputs: ['y3', 'w4', 'b4'], output: 'y4' },
    { name: 'down', run: 'conv2d n1 c4 h6 w6 k8 r1 s1 stride2 +bias', inputs: ['y2', 'w5', 'b5'], output: 'y5' },
  ], ['y4', 'y5']);
  const plan = planModelMemory(g);
  assert.equal(plan.copies.map((c) => [c.value, c.after]), [['x', -1]]);
  const bufferOf = (value: string) => plan.buffers.find((b) => b.values.includes(value) && b.place !== 'input')!;
  for (const v of ['y1', 'y2', 'y3']) assert.equal(bufferOf(v).storage.pad?.before, [0, 0, 1, 1], `${v} is stored inside a border of 1`);
  // c2 reads y1 padded and as its residual from the same storage; the 1x1 conv reads y2's interior
  assert.is(plan.nodes[1]!.reads[0], plan.nodes[1]!.reads[3]);
  assert.ok(plan.nodes[1]!.problem!.spec.includes('R in 1x4x8x8'), plan.nodes[1]!.problem!.spec);
  assert.ok(plan.nodes[4]!.problem!.spec.includes('I in 1x4x8x8 at 9'), plan.nodes[4]!.problem!.spec);
  // the graph outputs are the caller's arrays, written by their producers
  for (const [o, node] of [['y4', 3], ['y5', 4]] as const) {
    assert.is(plan.buffers[plan.outputs.get(o)!]!.place, 'output');
    assert.is(plan.outputs.get(o), plan.nodes[node]!.writes);
  }
  // y1 and y3 have one storage and disjoint lifetimes: one slot
  assert.is(bufferOf('y1').offset, bufferOf('y3').offset);
  assertArenaSound(plan);
  assertPlanComputesTheGraph(g, plan);
});

test('planModelMemory: a value read dense and bordered, and by consumers wanting different border values, is copied once per other layout', () => {
  const g = buildGraph({ x: [1, 4, 6, 6] }, [
    { name: 'c1', run: 'conv2d n1 c4 h6 w6 k4 r1 s1 stride1 +bias', inputs: ['x', 'w1', 'b1'], output: 'y1' },
    // y1: a max pool pads it with -Infinity, a conv with zeros, a host op reads it dense
    { name: 'pool', run: 'maxpool2d n1 c4 h6 w6 r3 s3 stride1 pad1', inputs: ['y1'], output: 'p' },
    { name: 'c2', run: 'conv2d n1 c4 h6 w6 k4 r3 s3 stride1 pad1', inputs: ['y1', 'w2'], output: 'q' },
    { name: 'sig', run: { kind: 'unary', op: 'sigmoid' }, inputs: ['y1'], output: 's', shape: [1, 4, 6, 6] },
    { name: 'sum', run: { kind: 'binary', op: 'add' }, inputs: ['p', 'q'], output: 't', shape: [1, 4, 6, 6] },
    { name: 'mul', run: { kind: 'binary', op: 'mul' }, inputs: ['t', 's'], output: 'out', shape: [1, 4, 6, 6] },
  ], ['out']);
  const plan = planModelMemory(g);
  const y1 = plan.copies.filter((c) => c.value === 'y1');
  assert.is(y1.length, 2, JSON.stringify(plan.copies));
  assert.ok(y1.every((c) => c.after === 0), 'copies are made right after the producer');
  const storages = y1.map((c) => plan.buffers[c.to]!.storage.pad?.value ?? 'dense');
  assert.ok(storages.includes('dense'), JSON.stringify(storages));
  assert.ok(storages.includes(0) || storages.includes(-Infinity), JSON.stringify(storages));
  assertArenaSound(plan);
  assertPlanComputesTheGraph(g, plan);
});

test('planModelMemory: a reshape is its input\'s buffer; an output aliasing an input or a second output of one buffer is copied at the end', () => {
  const g = buildGraph({ x: [2, 3, 4] }, [
    { name: 'flat', run: { kind: 'reshape' }, inputs: ['x'], output: 'xf', shape: [6, 4] },
    { name: 'mm', run: 'matmul 6x5x4 +bias', inputs: ['xf', 'w', 'b'], output: 'y' },
    { name: 'r1', run: { kind: 'reshape' }, inputs: ['y'], output: 'y3', shape: [2, 3, 5] },
    { name: 'soft', run: { kind: 'softmax', axis: 2 }, inputs: ['y3'], output: 'z', shape: [2, 3, 5] },
  ], ['z', 'y3', 'y', 'xf']);
  const plan = planModelMemory(g);
  assert.ok(plan.nodes[0]!.alias && plan.nodes[2]!.alias);
  assert.is(plan.nodes[2]!.writes, plan.nodes[1]!.writes, 'the reshape of y is y\'s buffer');
  assert.is(plan.buffers[plan.nodes[0]!.writes]!.place, 'input');
  // y3 is bound to the caller's array (the first output of the buffer); y gets a copy; xf (an input) a copy
  assert.is(plan.outputs.get('y3'), plan.nodes[1]!.writes);
  assert.equal(plan.copies.map((c) => c.value).sort(), ['xf', 'y']);
  assert.ok(plan.copies.every((c) => c.after === g.nodes.length - 1));
  assertPlanComputesTheGraph(g, plan);
});

test('planModelMemory: a kernel that may not be rewritten reads and writes dense data', () => {
  const g = buildGraph({ x: [1, 4, 6, 6] }, [
    { name: 'c1', run: 'conv2d n1 c4 h6 w6 k4 r3 s3 stride1 pad1 +bias', inputs: ['x', 'w1', 'b1'], output: 'y1' },
    { name: 'c2', run: 'conv2d n1 c4 h6 w6 k4 r3 s3 stride1 pad1 +bias', inputs: ['y1', 'w2', 'b2'], output: 'y2' },
  ], ['y2']);
  const plan = planModelMemory(g, { rewritable: (n) => n.name !== 'c2' });
  assert.is(plan.nodes[1]!.problem, g.nodes[1]!.kind === 'kernel' ? g.nodes[1]!.problem : undefined);
  assert.is(plan.buffers[plan.nodes[1]!.reads[0]!]!.storage.pad, undefined, 'c2 reads y1 dense (compileKernel stages it)');
  assert.equal(plan.copies.map((c) => c.value), ['x']);
});

test('planModelMemory: a weight read padded is laid out once at load, not copied per run', () => {
  const g = buildGraph({ x: [1, 4, 6, 6] }, [
    { name: 'c1', run: 'conv2d n1 c4 h6 w6 k4 r3 s3 stride1 pad1', inputs: ['wx', 'w1'], output: 'y1' },
    { name: 'sum', run: { kind: 'binary', op: 'add' }, inputs: ['y1', 'x'], output: 'out', shape: [1, 4, 6, 6] },
  ], ['out']);
  const plan = planModelMemory(g);
  assert.is(plan.copies.length, 0);
  assert.is(plan.buffers[plan.nodes[0]!.reads[0]!]!.place, 'constant');
  assertPlanComputesTheGraph(g, plan);
});

test('planModelMemory: the arena of a chain reuses memory (peak below the sum of its buffers)', () => {
  const specs: NodeSpec[] = [];
  let prev = 'x';
  for (let i = 0; i < 6; i++) {
    specs.push({ name: `mm${i}`, run: 'matmul 8x8x8 +bias +relu', inputs: [prev, `w${i}`, `b${i}`], output: `h${i}` });
    prev = `h${i}`;
  }
  const g = buildGraph({ x: [8, 8] }, specs, [prev]);
  const plan = planModelMemory(g);
  assert.ok(plan.peakBytes < plan.unsharedBytes, `${plan.peakBytes} < ${plan.unsharedBytes}`);
  assert.is(plan.peakBytes, 2 * 64 * 4, 'two 8x8 activations live at a time');
  assertArenaSound(plan);
  assertPlanComputesTheGraph(g, plan);
});

test('planModelMemory: attention\'s head split and merge run as transposed accesses of the kernels; K^T (its rows move) stays a host transpose', () => {
  // S=6, H=2, D=4: q/k/v = x W; heads = transpose(reshape(q)); scores = Q K^T; context = scores V; merged back
  const g = buildGraph({ x: [1, 6, 8] }, [
    { name: 'q', run: 'matmul 6x8x8 +bias', inputs: ['x', 'wq', 'bq'], output: 'q' },
    { name: 'k', run: 'matmul 6x8x8 +bias', inputs: ['x', 'wk', 'bk'], output: 'k' },
    { name: 'v', run: 'matmul 6x8x8 +bias', inputs: ['x', 'wv', 'bv'], output: 'v' },
    { name: 'qr', run: { kind: 'reshape' }, inputs: ['q'], output: 'q4', shape: [1, 6, 2, 4] },
    { name: 'kr', run: { kind: 'reshape' }, inputs: ['k'], output: 'k4', shape: [1, 6, 2, 4] },
    { name: 'vr', run: { kind: 'reshape' }, inputs: ['v'], output: 'v4', shape: [1, 6, 2, 4] },
    { name: 'qt', run: { kind: 'transpose', perm: [0, 2, 1, 3] }, inputs: ['q4'], output: 'qh', shape: [1, 2, 6, 4] },
    { name: 'kt', run: { kind: 'transpose', perm: [0, 2, 3, 1] }, inputs: ['k4'], output: 'kh', shape: [1, 2, 4, 6] },
    { name: 'vt', run: { kind: 'transpose', perm: [0, 2, 1, 3] }, inputs: ['v4'], output: 'vh', shape: [1, 2, 6, 4] },
    { name: 'scores', run: 'bmm b2 m6 n6 k4 +scale0.5', inputs: ['qh', 'kh'], output: 's' },
    { name: 'soft', run: { kind: 'softmax', axis: 3 }, inputs: ['s'], output: 'p', shape: [1, 2, 6, 6] },
    { name: 'context', run: 'bmm b2 m6 n4 k6', inputs: ['p', 'vh'], output: 'c' },
    { name: 'ct', run: { kind: 'transpose', perm: [0, 2, 1, 3] }, inputs: ['c'], output: 'ct', shape: [1, 6, 2, 4] },
    { name: 'cr', run: { kind: 'reshape' }, inputs: ['ct'], output: 'm', shape: [1, 6, 8] },
    { name: 'out', run: 'matmul 6x8x8 +bias', inputs: ['m', 'wo', 'bo'], output: 'y' },
  ], ['y']);
  // the builder gave the softmax's values the shape of the bmm's data: relabel the 4-d ones the graph uses
  const values = new Map(g.values);
  values.set('s', { name: 's', shape: [1, 2, 6, 6] });
  values.set('c', { name: 'c', shape: [1, 2, 6, 4] });
  const graph: ModelGraph = { ...g, values };
  const plan = planModelMemory(graph);
  const at = (name: string) => graph.nodes.findIndex((n) => n.name === name);
  assert.ok(plan.nodes[at('qt')]!.alias && plan.nodes[at('vt')]!.alias && plan.nodes[at('ct')]!.alias, 'head split and merge run as nothing');
  assert.not.ok(plan.nodes[at('kt')]!.alias, 'K^T moves the rows: it stays a transpose');
  assert.match(plan.nodes[at('scores')]!.problem!.spec, /\[A as 6x2x4 by \(1,0,2\)\]/);
  assert.match(plan.nodes[at('context')]!.problem!.spec, /\[C as 6x2x4 by \(1,0,2\)\].*\[B as 6x2x4 by \(1,0,2\)\]/);
  // the scores read q's buffer; the context writes the merged layout where the reshape and the last matmul find it
  assert.is(plan.nodes[at('scores')]!.reads[0], plan.nodes[at('q')]!.writes);
  assert.is(plan.nodes[at('context')]!.writes, plan.nodes[at('out')]!.reads[0]);
  assert.equal(plan.nodes[at('context')]!.stored, { perm: [0, 2, 1, 3], shape: [1, 6, 2, 4] });
  assert.equal(plan.nodes[at('qt')]!.stored, { perm: [0, 2, 1, 3], shape: [1, 6, 2, 4] });
  assert.is(plan.copies.length, 0);
  assertArenaSound(plan);
  assertPlanComputesTheGraph(graph, plan);
});

test('planModelMemory: a transposed value a host op reads is computed by its transpose', () => {
  const g = buildGraph({ x: [4, 6] }, [
    { name: 'mm', run: 'matmul 4x6x6', inputs: ['x', 'w'], output: 'y' },
    { name: 'r', run: { kind: 'reshape' }, inputs: ['y'], output: 'y3', shape: [4, 2, 3] },
    { name: 't', run: { kind: 'transpose', perm: [1, 0, 2] }, inputs: ['y3'], output: 'z', shape: [2, 4, 3] },
    { name: 'soft', run: { kind: 'softmax', axis: 2 }, inputs: ['z'], output: 'p', shape: [2, 4, 3] },
  ], ['p']);
  const plan = planModelMemory(g);
  assert.not.ok(plan.nodes[2]!.alias);
  assert.is(plan.nodes[2]!.stored, undefined);
  assertPlanComputesTheGraph(g, plan);
});

test('planModelMemory: the tiny ResNet-18 runs with one copy (its input into the stem\'s border) and computes the graph', () => {
  const g = importOnnx(zooModel('resnet18-tiny'), { inputShapes: { input: [1, 3, 56, 56] } });
  const plan = planModelMemory(g);
  assert.equal(plan.copies.map((c) => c.value), ['input']);
  // every padded conv and pool reads its input where its producer wrote it
  g.nodes.forEach((n, i) => {
    if (n.kind !== 'kernel') return;
    const t = plan.nodes[i]!.problem!.tensors[1]!;
    assert.is(plan.buffers[plan.nodes[i]!.reads[0]!]!.elements, elementCount(t), `${n.name} reads its input's storage as it is`);
  });
  assertArenaSound(plan);
  assertPlanComputesTheGraph(g, plan, 1e-4);
});

test('planModelMemory: one line for a graph whose values are written twice or read before written', () => {
  const g = buildGraph({ x: [8, 8] }, [
    { name: 'a', run: 'matmul 8x8x8', inputs: ['x', 'w'], output: 'y' },
  ], ['y']);
  const twice: ModelGraph = { ...g, nodes: [g.nodes[0]!, { ...g.nodes[0]!, name: 'b' } as ModelNode] };
  assert.throws(() => planModelMemory(twice), (e: Error) => e instanceof LoopTuneError && /written twice/.test(e.message));
  const early: ModelGraph = { ...g, nodes: [{ ...(g.nodes[0] as Extract<ModelNode, { kind: 'kernel' }>), operands: ['nothing', 'w'] }] };
  assert.throws(() => planModelMemory(early), (e: Error) => e instanceof LoopTuneError && /neither a value nor a weight|before it is written/.test(e.message));
});

test.run();
