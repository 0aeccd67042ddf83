/**
 * compileKernel's layouts (issue 16 item 4): a conv or pool compiled in its blocked NCHWc twin
 * (the block = the host target's vector lanes: 16 with AVX-512, 8 without) gives, on the layer's
 * NCHW tensors, what the NCHW kernel and the interpreter give; through run (NCHW in and out, the
 * weights packed per call), through prepared weights, and through runBlocked on NCHWc tensors.
 * Channel counts are multiples of 16, so every case has a twin on both kinds of host.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileKernel, type CompiledKernel } from '../../agent/compile-kernel.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { interpret, randomArray } from '../../ir/interpret.ts';
import { blockActivations, blockDepthwiseWeights, blockedConversions, blockedVariant, blockWeights, toBlocked, unblockActivations } from '../../ir/layout.ts';
import { copyFromStorage, fillInterior, padded } from '../../ir/padding.ts';
import { dataShape, elementCount, type Problem, type Tensor } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import { convAttributes, isConvOp, parseProblem } from '../../ir/spec.ts';
import { backend } from '../../targets/registry.ts';
import { RUN_TARGET } from '../host.ts';

const target = RUN_TARGET;
const B = backend(target).caps.vectorLanes;
const BLOCKED = `nchw${B}c`;

const dataLength = (t: Tensor) => elementCount({ name: t.name, shape: dataShape(t) });

/** Seeded data for every operand of `p` (its NCHW data, unpadded); `shift` moves the input's values. */
function operandsOf(p: Problem, seed: number, shift = 0): Float32Array[] {
  return p.tensors.slice(1).map((t, i) => randomArray(dataLength(t), seed + i).map((x) => (i === 0 ? x + shift : x)));
}

/** The interpreter's output data of `p` on operand data (the input padded as the problem stores it). */
function oracle(p: Problem, operands: readonly Float32Array[]): Float64Array {
  const storage = operands.map((x, i) => padded(p.tensors[i + 1]!, x));
  const out = p.tensors[0]!;
  const init = new Float64Array(elementCount(out));
  if (p.combine === 'max') fillInterior(out, init, -Infinity);
  const result = interpret(Schedule.initial(p), storage, init);
  const data = new Float64Array(dataLength(out));
  copyFromStorage(out, result, data);
  return data;
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-4): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * Math.max(1, Math.abs(want[i]!)))) assert.unreachable(`${what} [${i}]: ${got[i]} vs ${want[i]}`);
  }
}

/** Whether operand `i` of `p` is an activation (the input or a residual), which a blocked kernel converts on every run. */
function isActivation(p: Problem, i: number): boolean {
  return i === 0 || (p.epilogue ?? []).some((e) => e.kind === 'residual' && e.access.tensor === i + 1);
}

/** `p`'s NCHW operand data in the twin's form: activations blocked, weights packed, a bias as it is. */
function blockedOperands(p: Problem, operands: readonly Float32Array[]): Float32Array[] {
  return operands.map((x, i) => {
    const t = p.tensors[i + 1]!;
    if (isActivation(p, i)) return blockActivations(x, dataShape(t), B);
    if (i === 1 && isConvOp(p.op)) {
      const [K, Cg, r, s] = t.shape as [number, number, number, number];
      return convAttributes(p).groups > 1 ? blockDepthwiseWeights(x, K, r, s, B) : blockWeights(x, K, Cg, r, s, B);
    }
    return x;
  });
}

/** The NCHW kernel and the blocked one of `spec` on their initial schedules, on one thread. */
async function bothLayouts(spec: string): Promise<{ p: Problem; nchw: CompiledKernel; blocked: CompiledKernel }> {
  const p = parseProblem(spec);
  const twin = blockedVariant(p, B)!;
  const nchw = await compileKernel(p, { target, schedule: Schedule.initial(p).text(), threads: 1 });
  const blocked = await compileKernel(p, { target, schedule: Schedule.initial(twin).text(), threads: 1, layout: 'blocked' });
  assert.is(nchw.layout, 'nchw');
  assert.is(blocked.layout, BLOCKED);
  assert.is(blocked.blockedProblem?.spec, twin.spec);
  assert.is(blocked.problem, p);
  return { p, nchw, blocked };
}

/**
 * Every way into the blocked kernel against the NCHW kernel and the interpreter: run on NCHW data
 * (twice, with different inputs), the input as its padded NCHW storage, prepared weights, runBlocked.
 */
function checkLayer(p: Problem, nchw: CompiledKernel, blocked: CompiledKernel, shift = 0): void {
  const out = p.tensors[0]!;
  for (const seed of [1, 11]) {
    const ops = operandsOf(p, seed, shift);
    const want = oracle(p, ops);
    const viaNchw = new Float32Array(dataLength(out)).fill(9);
    nchw.run(ops, viaNchw);
    close(viaNchw, want, `${p.spec}: nchw kernel, seed ${seed}`);
    const viaBlocked = new Float32Array(dataLength(out)).fill(9);
    blocked.run(ops, viaBlocked);
    close(viaBlocked, want, `${p.spec}: ${BLOCKED} kernel through run, seed ${seed}`);
    close(viaBlocked, viaNchw, `${p.spec}: ${BLOCKED} vs nchw, seed ${seed}`);
  }
  const ops = operandsOf(p, 21, shift);
  const want = oracle(p, ops);
  const y = new Float32Array(dataLength(out));
  // the input as its padded NCHW storage, border included
  blocked.run([padded(p.tensors[1]!, ops[0]!), ...ops.slice(1)], y);
  close(y, want, `${p.spec}: input as padded NCHW storage`);
  // weights (a conv's) or any parameter prepared once, taken in their place on every run
  if (ops.length > 1) {
    const prepared = ops.map((x, i) => (isActivation(p, i) ? x : blocked.prepare(i, x)));
    y.fill(0);
    blocked.run(prepared, y);
    close(y, want, `${p.spec}: prepared weights`);
    const again = operandsOf(p, 31, shift);
    y.fill(0);
    const mixed = prepared.map((x, i) => (isActivation(p, i) ? again[i]! : x));
    blocked.run(mixed, y);
    close(y, oracle(p, ops.map((x, i) => (isActivation(p, i) ? again[i]! : x))), `${p.spec}: prepared weights, new activations`);
  }
  // runBlocked: the twin's tensors, the input as its blocked data and as its blocked padded storage
  const twin = blocked.blockedProblem!;
  const blockedOps = blockedOperands(p, ops);
  const outData = new Float32Array(dataLength(twin.tensors[0]!));
  blocked.runBlocked(blockedOps, outData);
  close(unblockActivations(outData, dataShape(out), B), want, `${p.spec}: runBlocked on blocked data`);
  const outStorage = new Float32Array(elementCount(twin.tensors[0]!));
  blocked.runBlocked([padded(twin.tensors[1]!, blockedOps[0]!), ...blockedOps.slice(1)], outStorage);
  const interior = new Float32Array(outData.length);
  copyFromStorage(twin.tensors[0]!, outStorage, interior);
  close(interior, outData, `${p.spec}: runBlocked on blocked padded storage`, 0);
}

test('a padded strided dense conv +bias +residual +relu: blocked = nchw = interpreter, every way in', async () => {
  const { p, nchw, blocked } = await bothLayouts('conv2d n1 c16 h9 w11 k32 r3 s3 stride2 pad1 +bias +residual +relu');
  checkLayer(p, nchw, blocked);
  nchw.dispose();
  blocked.dispose();
});

test('a depthwise conv with padding and an outpad output: as data the interior comes back, as storage the border is the caller\'s', async () => {
  const { p, nchw, blocked } = await bothLayouts('conv2d n1 c32 h10 w10 k32 r3 s3 stride1 groups32 pad1 outpad1 +bias +relu6');
  checkLayer(p, nchw, blocked);
  const ops = operandsOf(p, 41);
  const want = oracle(p, ops);
  const storage = new Float32Array(elementCount(p.tensors[0]!)).fill(5);
  blocked.run(ops, storage);
  const data = new Float32Array(want.length);
  copyFromStorage(p.tensors[0]!, storage, data);
  close(data, want, 'outpad storage interior');
  const border = storage.filter((_, i) => {
    const x = i % 12, yy = Math.floor(i / 12) % 12;
    return x === 0 || x === 11 || yy === 0 || yy === 11;
  });
  assert.ok(border.length > 0 && border.every((v) => v === 5), 'the outpad border is left alone');
  nchw.dispose();
  blocked.dispose();
});

test('a padded max pool (all-negative input: the -Infinity border must not leak) and a padded average pool', async () => {
  const max = await bothLayouts('maxpool2d n1 c16 h9 w9 r3 s3 stride2 pad1');
  checkLayer(max.p, max.nchw, max.blocked, -3);
  max.nchw.dispose();
  max.blocked.dispose();
  const avg = await bothLayouts('avgpool2d n1 c16 h8 w8 r3 s3 stride2 pad1');
  checkLayer(avg.p, avg.nchw, avg.blocked);
  avg.nchw.dispose();
  avg.blocked.dispose();
});

test('layout auto: tuneLayouts picks one of the two layouts, with the conversions charged, and the kernel computes the layer', async () => {
  const p = parseProblem('conv2d n1 c16 h8 w8 k16 r3 s3 stride1 pad1 +bias +residual +relu');
  const k = await compileKernel(p, { target, threads: 1, layout: 'auto', tune: { budgetSeconds: 0.5, noRecords: true, maxMeasurements: 6 } });
  const choice = k.layoutChoice!;
  assert.ok(choice.blocked !== undefined && choice.conversionSeconds! > 0 && Number.isFinite(choice.conversionSeconds!));
  assert.is(k.layout, choice.layout);
  assert.ok(k.layout === 'nchw' || k.layout === BLOCKED, k.layout);
  assert.is(k.tuned, k.layout === 'nchw' ? choice.nchw : choice.blocked);
  assert.is(k.schedule.problem.spec, k.layout === 'nchw' ? p.spec : choice.blockedSpec);
  const ops = operandsOf(p, 51);
  const y = new Float32Array(dataLength(p.tensors[0]!));
  k.run(ops, y);
  close(y, oracle(p, ops), `auto (${k.layout})`);
  y.fill(0);
  k.run([ops[0]!, k.prepare(1, ops[1]!), ops[2]!, ops[3]!], y);
  close(y, oracle(p, ops), `auto (${k.layout}), prepared weights`);
  k.dispose();
});

test('the conversions a blocked kernel runs write the twin\'s padded input and read its outpad output in place', () => {
  const p = parseProblem('maxpool2d n1 c16 h6 w7 r3 s3 stride1 pad1,2,0,1 outpad1');
  const twin = blockedVariant(p, B)!;
  const c = blockedConversions(p, twin);
  const storageOf = (t: Tensor) => ({ shape: t.shape, pad: t.pad });
  assert.equal(storageOf(c.input.tensors[0]!), storageOf(twin.tensors[1]!), 'toBlocked writes the twin input\'s storage, -Infinity border and all');
  assert.equal(storageOf(c.output.tensors[1]!), storageOf(twin.tensors[0]!), 'fromBlocked reads the twin output\'s storage');
  assert.is(c.residual, undefined);
  const x = randomArray(dataLength(p.tensors[1]!), 71);
  const storage = new Float32Array(elementCount(twin.tensors[1]!)).fill(-Infinity);
  const converted = interpret(Schedule.initial(c.input), [x], storage);
  const interior = new Float32Array(x.length);
  copyFromStorage(twin.tensors[1]!, converted, interior);
  assert.equal(Array.from(interior), Array.from(blockActivations(x, dataShape(p.tensors[1]!), B)));
  assert.is(converted.filter((v) => v === -Infinity).length, storage.length - x.length, 'the border is not written');
  const r = blockedConversions(parseProblem('conv2d n1 c16 h5 w5 k16 r3 s3 stride1 +residual'), blockedVariant(parseProblem('conv2d n1 c16 h5 w5 k16 r3 s3 stride1 +residual'), B)!);
  assert.ok(r.residual !== undefined && r.residual.spec.endsWith(`tolayout${B}`));
  try {
    toBlocked([1, 16, 4, 4], B, { before: [0, 1, 0, 0, 0], after: [0, 0, 0, 0, 0], value: 0 });
    assert.unreachable('a border on the channel block');
  } catch (e) {
    assert.instance(e, LoopTuneError);
    assert.match((e as Error).message, /^toBlocked: border must give 5 begins and 5 ends, non-negative integers, zero except on the spatial dimensions/);
  }
});

/** The one-line LoopTuneError `f` throws, matching `pattern`. */
async function failsWith(f: () => unknown, pattern: RegExp): Promise<void> {
  try {
    await f();
  } catch (e) {
    assert.instance(e, LoopTuneError, `${pattern}: ${String(e)}`);
    const message = (e as Error).message;
    assert.match(message, pattern);
    assert.not.match(message, /\n/, 'one line');
    return;
  }
  assert.unreachable(`no error, expected ${pattern}`);
}

test('bad use is one line: lengths, foreign or misplaced handles, activations prepared, layouts that do not apply', async () => {
  const spec = 'conv2d n1 c16 h6 w6 k16 r3 s3 stride1 pad1 +bias';
  const { p, nchw, blocked } = await bothLayouts(spec);
  const ops = operandsOf(p, 61);
  const y = new Float32Array(dataLength(p.tensors[0]!));
  await failsWith(() => blocked.run([new Float32Array(5), ops[1]!, ops[2]!], y), /run: I must have 576 elements \(its NCHW data\) or 1024 \(its padded NCHW storage\), got 5/);
  await failsWith(() => blocked.run([ops[0]!, new Float32Array(7), ops[2]!], y), /run: W must have 2304 elements \(NCHW\), got 7/);
  await failsWith(() => blocked.run(ops, new Float32Array(3)), /run: O must have 576 elements \(NCHW\), got 3/);
  await failsWith(() => blocked.run(ops.slice(0, 2), y), /run: conv2d .* takes 3 tensors after the output \(I, W, bias\), got 2/);
  await failsWith(() => blocked.runBlocked([ops[0]!, ops[1]!, new Float32Array(3)], y), /bias must have 16 elements, got 3/);
  const foreign = nchw.prepare(1, ops[1]!);
  await failsWith(() => blocked.run([ops[0]!, foreign, ops[2]!], y), /run: operand 1 was prepared by another kernel/);
  const bias = blocked.prepare(2, ops[2]!);
  await failsWith(() => blocked.run([ops[0]!, bias, ops[2]!], y), /run: operand 1 is a prepared operand 2/);
  await failsWith(() => blocked.prepare(0, ops[0]!), /prepare: operand 0 \(I\) is an activation, converted to nchw\d+c on every run; prepare takes 1 \(W\) or 2 \(bias\)/);
  await failsWith(() => blocked.prepare(3, ops[0]!), /prepare: operand must be 0\.\.2 \(0 I, 1 W, 2 bias\), got 3/);
  await failsWith(() => nchw.runBlocked(ops, y), /runBlocked: this kernel runs conv2d .* as given \(nchw\), not a blocked twin: call run/);
  nchw.dispose();
  blocked.dispose();
  await failsWith(() => compileKernel('matmul 32x32x32', { target, schedule: 'm:32 n:32 k:32', layout: 'blocked' }), /layout 'blocked' \(block \d+, .*\): matmul has no blocked layout \(convolutions and pools have\)/);
  await failsWith(() => compileKernel('conv2d n1 c16 h6 w6 k16 r3 s3 stride1 groups4', { target, schedule: 'n:1', layout: 'blocked' }), /groups4 is neither dense \(groups1\) nor depthwise/);
  await failsWith(() => compileKernel(spec, { target, schedule: Schedule.initial(p).text(), layout: 'auto' }), /layout 'auto' chooses by measurement: give \{ tune/);
  await failsWith(() => compileKernel(spec, { target, schedule: 'n:1', layout: 'blocked', accumulate: true }), /accumulate needs layout 'nchw'/);
  await failsWith(() => compileKernel(spec, { target, schedule: 'n:1', layout: 'nhwc' as 'nchw' }), /layout must be 'nchw', 'blocked', 'auto', got "nhwc"/);
  // a schedule of the NCHW problem is not one of the twin
  await failsWith(() => compileKernel(spec, { target, schedule: Schedule.initial(p), layout: 'blocked' }), /the schedule is of conv2d n1 c16 h6 w6 k16 r3 s3 stride1 pad1 \+bias, not conv2d .* layout\d+ \+bias/);
});

test.run();
