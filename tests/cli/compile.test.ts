/** `looptune compile` (cli/compile.ts): the table, the artifact next to the model, quiet off a terminal, one-line failures. */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { runCommand } from '../helpers/run-command.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setBackendLogging } from '../../agent/backend.ts';
import { readTunedModel, sha256Hex } from '../../agent/tuned-model.ts';
import { defaultTunedPath, parseShapeOption, registerCompile, runCompile } from '../../cli/compile.ts';
import { describeFailure } from '../../cli/errors.ts';
import { zooModel } from '../../ir/model/zoo/index.ts';

setBackendLogging(false);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'looptune-compile-'));
const records = path.join(tmp, 'records.jsonl');
const bytes = zooModel('bert-layer-tiny');
const model = path.join(tmp, 'bert-tiny.onnx');
writeFileSync(model, bytes);

/** A stderr stand-in that is not a terminal, recording what is written to it. */
function pipe(): { stream: PassThrough; written: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, written: () => text };
}

test('compile prints the per-task table and writes the artifact next to the model', async () => {
  const lines: string[] = [];
  const err = pipe();
  const r = await runCompile(model, { budget: 1, threads: 1, records }, { log: (l) => lines.push(l), progress: err.stream });
  assert.is(r.out, path.join(tmp, 'bert-tiny.tuned.json'));
  assert.ok(existsSync(r.out));
  const artifact = await readTunedModel(r.out);
  assert.is(artifact.model.name, 'bert-tiny');
  assert.is(artifact.model.sha256, sha256Hex(bytes));
  assert.equal(artifact.tasks.map((t) => t.spec), r.result.tasks.map((t) => t.spec));
  const text = lines.join('\n');
  const table = text.split('\n');
  assert.match(table[0]!, /^task\s+count\s+share\s+GFLOPS\s+% peak\s+tuning s\s+kernel$/);
  assert.match(table[1]!, /^-+( +-+){6}$/);
  for (const [i, t] of r.result.tasks.entries()) {
    const row = table[2 + i]!;
    assert.ok(row.startsWith(t.spec), row);
    assert.match(row, new RegExp(`\\s${t.count}\\s+${(100 * t.shareOfLatency).toFixed(1)}%\\s+${t.gflops.toFixed(1)}\\s+${t.percentOfPeak.toFixed(1)}\\s+${t.tuningSeconds.toFixed(2)}\\s+${t.implementation}$`));
  }
  // every BERT task is a matmul or bmm: each says which kernel won against OpenBLAS
  assert.match(text, /^generated kernel or OpenBLAS, timed side by side:$/m);
  for (const t of r.result.tasks) assert.ok(lines.includes(`  ${t.spec}: ${t.chosenBecause}`), t.spec);
  assert.match(text, /^6 tasks \(\d generated, \d library\), 1 thread, target \w+: estimated [\d.]+ ms per inference \(kernels only\), tuned in [\d.]+ s, \d+ schedules timed$/m);
  assert.ok(lines[lines.length - 1] === `wrote ${r.out}`);
  assert.is(err.written(), '', 'no progress bar when stderr is not a terminal');
});

test('--out names the artifact; options are read as the command line gives them', async () => {
  const out = path.join(tmp, 'elsewhere.json');
  const logged = await runCommand(registerCompile, ['compile', model, '--budget', '0.3s', '--threads', '1', '--records', records, '--out', out]);
  assert.ok(existsSync(out));
  assert.is((await readTunedModel(out)).threads, 1);
  assert.is(logged[logged.length - 1], `wrote ${out}`);
  assert.is(defaultTunedPath('/a/b/resnet18.onnx'), '/a/b/resnet18.tuned.json');
  assert.is(defaultTunedPath('model.bin'), 'model.bin.tuned.json');
  assert.equal(parseShapeOption('x=2x16', parseShapeOption('input=1x3x224x224')), { input: [1, 3, 224, 224], x: [2, 16] });
});

test('a missing file, a malformed ONNX file and bad options are one line each', async () => {
  const garbage = path.join(tmp, 'garbage.onnx');
  writeFileSync(garbage, Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff));
  const symbolic = path.join(tmp, 'resnet18-tiny.onnx');
  writeFileSync(symbolic, zooModel('resnet18-tiny'));
  const truncated = path.join(tmp, 'truncated.onnx');
  writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 3)));
  for (const [file, why] of [
    [path.join(tmp, 'missing.onnx'), /^cannot (open|read) .*missing\.onnx: no such file or folder$/],
    [garbage, /^.*garbage\.onnx: /],
    [truncated, /^.*truncated\.onnx: /],
    [symbolic, /resnet18-tiny\.onnx: input 'input' has symbolic dimension .* --shape input=<dims>/],
  ] as const) {
    try {
      await runCompile(file, { budget: 1, threads: 1, records }, { log: () => {} });
      assert.unreachable(`${file} was accepted`);
    } catch (e) {
      assert.is((e as Error).name, 'LoopTuneError', String(e));
      assert.match((e as Error).message, why);
      assert.not.match(describeFailure(e), /\n|internal error/);
    }
  }
  for (const [args, why] of [
    [['--budget', 'soon'], /--budget/],
    [['--budget', '-5'], /--budget/],
    [['--shape', 'input:1x3'], /cannot read shape 'input:1x3' \(expected name=dims/],
    [['--threads', 'many'], /--threads/],
  ] as const) {
    const errors: string[] = [];
    const program = new Command().exitOverride().configureOutput({ writeErr: (s) => errors.push(s), writeOut: () => {} });
    registerCompile(program);
    try {
      await program.parseAsync(['node', 'looptune', 'compile', model, ...args]);
      assert.unreachable(`${args.join(' ')} was accepted`);
    } catch (e) {
      assert.instance(e, CommanderError);
    }
    const text = errors.join('');
    assert.match(text, why);
    assert.is(text.trim().split('\n').length, 1, text);
  }
});

test.run();
