import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCommand } from '../helpers/run-command.ts';
import {
  compareOutputs, formatRunModel, MODEL_TOLERANCE, readNpy, registerRunModel, runModelCommand, type RunModelReport,
} from '../../cli/run-model.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { randomArray } from '../../ir/interpret.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';
import { zooModel } from '../../ir/model/zoo/index.ts';

function isOneLine(e: unknown, pattern: RegExp): boolean {
  return e instanceof LoopTuneError && !e.message.includes('\n') && pattern.test(e.message);
}

async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  assert.ok(isOneLine(error, pattern), `expected one line matching ${pattern}, got ${error instanceof Error ? error.message : String(error)}`);
}

/** A .npy file's bytes as numpy writes them: magic, version, header padded to 64 bytes, data. */
function npy(data: Float32Array, shape: number[], options: { version?: number; descr?: string; fortran?: boolean } = {}): Uint8Array {
  const version = options.version ?? 1;
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${options.descr ?? '<f4'}', 'fortran_order': ${options.fortran ? 'True' : 'False'}, 'shape': (${dims}), }`;
  const prefix = version === 1 ? 10 : 12;
  header = header.padEnd(Math.ceil((prefix + header.length + 1) / 64) * 64 - prefix - 1, ' ') + '\n';
  const out = new Uint8Array(prefix + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), prefix);
  data.forEach((v, i) => view.setFloat32(prefix + header.length + 4 * i, v, true));
  return out;
}

test('readNpy reads float32 C-order arrays of versions 1 and 2', () => {
  const data = randomArray(24, 3);
  for (const version of [1, 2]) {
    const r = readNpy(npy(data, [2, 3, 4], { version }), 'x.npy');
    assert.equal(r.shape, [2, 3, 4]);
    assert.equal(r.data, data);
  }
  assert.equal(readNpy(npy(data.slice(0, 5), [5]), 'v.npy').shape, [5]);
  // data at an odd offset in a larger buffer (how Node's readFile may hand it over)
  const bytes = npy(data, [24]);
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  assert.equal(readNpy(shifted.subarray(1), 's.npy').data, data);
});

test('readNpy refuses what it cannot read, in one line naming the file', () => {
  const data = randomArray(6, 1);
  assert.throws(() => readNpy(new TextEncoder().encode('not numpy at all'), 'a.npy'), (e: unknown) => isOneLine(e, /^a\.npy: not a \.npy file/));
  assert.throws(() => readNpy(npy(data, [6], { descr: '<f8' }), 'b.npy'), (e: unknown) => isOneLine(e, /b\.npy: dtype <f8 is not supported/));
  assert.throws(() => readNpy(npy(data, [2, 3], { fortran: true }), 'c.npy'), (e: unknown) => isOneLine(e, /Fortran-order/));
  const full = npy(data, [2, 3]);
  assert.throws(() => readNpy(full.subarray(0, full.length - 4), 'd.npy'), (e: unknown) => isOneLine(e, /d\.npy: \.npy data holds 20 bytes, shape \(2, 3\) needs 24/));
  assert.throws(() => readNpy(full.subarray(0, 40), 'e.npy'), (e: unknown) => isOneLine(e, /truncated \.npy header/));
});

test('compareOutputs: the error relative to the reference output\'s largest magnitude', () => {
  const c = compareOutputs('y', Float32Array.from([1, 2.001, -4]), [1, 2, -4]);
  assert.ok(Math.abs(c.maxAbsError - 0.001) < 1e-6);
  assert.ok(Math.abs(c.maxRelError - 0.001 / 4) < 1e-6);
  assert.is(c.withinTolerance, c.maxRelError <= MODEL_TOLERANCE);
  assert.is(compareOutputs('y', Float32Array.from([NaN]), [1]).withinTolerance, false);
  assert.is(compareOutputs('y', Float32Array.from([1]), [1, 2]).withinTolerance, false);
});

test('run-model on the tiny BERT layer: an input from .npy, latency, outputs within tolerance of ONNX Runtime', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'looptune-run-model-'));
  try {
    const model = path.join(dir, 'bert.onnx');
    writeFileSync(model, zooModel('bert-layer-tiny'));
    const input = path.join(dir, 'hidden.npy');
    writeFileSync(input, npy(randomArray(16 * 64, 9), [1, 16, 64]));
    const r = await runModelCommand(model, { input: [`hidden_states=${input}`], compare: 'onnxruntime', repeat: 3, threads: 1 });
    assert.equal(r.inputs, [{ name: 'hidden_states', shape: [1, 16, 64], source: input }]);
    assert.equal(r.outputs, [{ name: 'output', shape: [1, 16, 64] }]);
    assert.is(r.repeat, 3);
    assert.ok(r.bestSeconds > 0 && r.bestSeconds <= r.medianSeconds);
    assert.is(r.copiesPerRun, 0);
    assert.ok(r.compare && /^onnxruntime-node /.test(r.compare.library));
    assert.ok(r.compare!.outputs.every((o) => o.withinTolerance), JSON.stringify(r.compare));
    const text = formatRunModel(r);
    assert.match(text, /latency over 3 runs: best [\d.]+ ms, median [\d.]+ ms/);
    assert.match(text, /output: max abs error .* ok/);

    // the registered command with --json: random input, the report as JSON on stdout
    const printed = await runCommand(registerRunModel, ['run-model', model, '--threads', '1', '--repeat', '2', '--input', 'hidden_states=random', '--json']);
    const json = JSON.parse(printed.join('\n')) as RunModelReport;
    assert.is(json.repeat, 2);
    assert.is(json.inputs[0]!.source, 'random');
    assert.is(json.compare, undefined);
    assert.is(json.profile, undefined);

    // --profile: every node of the graph appears once, in run order, with positive seconds
    const p = await runModelCommand(model, { repeat: 2, threads: 1, profile: true });
    const nodes = importOnnx(zooModel('bert-layer-tiny')).nodes.map((n) => n.name);
    assert.equal(p.profile!.map((e) => e.step).filter((s) => !s.startsWith('copy ')), nodes);
    assert.ok(p.profile!.every((e) => e.seconds >= 0 && e.what.length > 0));
    assert.match(formatRunModel(p), /profile \(best per step over 2 runs; sum [\d.]+ ms\):/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run-model refuses bad options in one line before loading anything', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'looptune-run-model-'));
  try {
    const model = path.join(dir, 'bert.onnx');
    writeFileSync(model, zooModel('bert-layer-tiny'));
    await rejects(runModelCommand(model, { compare: 'tensorflow' }), /--compare: unknown runtime 'tensorflow' \(expected onnxruntime\)/);
    await rejects(runModelCommand(model, { shape: ['hidden_states'] }), /--shape needs name=value/);
    await rejects(runModelCommand(model, { shape: ['hidden_states=1x16xten'] }), /--shape: cannot read shape '1x16xten'/);
    await rejects(runModelCommand(model, { shape: ['hidden_states=1x8x64'] }), /hidden_states/);
    await rejects(runModelCommand(model, { input: [`hidden_states=${path.join(dir, 'none.npy')}`] }), /none\.npy: no such file/);
    await rejects(runModelCommand(model, { repeat: 0 }), /--repeat must be a whole number >= 1/);
    await rejects(runModelCommand(path.join(dir, 'missing.onnx')), /missing\.onnx: no such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
