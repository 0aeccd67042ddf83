import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setBackendLogging } from '../../agent/backend.ts';
import { compareExperiment, evalExperiment, exportPolicy, trainExperiment, type TrainProgress } from '../../experiments/runner.ts';
import { ExperimentError, loadExperiment, parseExperiment } from '../../experiments/schema.ts';

setBackendLogging(false);
const SMOKE = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'experiments', 'smoke.yaml');
const quiet = { log: () => {} };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'looptune-smoke-'));

function errorOf(text: string): ExperimentError {
  try {
    parseExperiment(text, 'exp.yaml');
  } catch (e) {
    if (e instanceof ExperimentError) return e;
    throw e;
  }
  throw new Error('expected an ExperimentError');
}

test('schema errors name the file, the line and the field', () => {
  const e = errorOf(['name: t', 'target: avx512', 'dataset:', '  name: mm64-256', 'ppo:', '  num_envs: 0', '  lerning_rate: 0.1', 'iterations: 3', 'env:', '  actions: [up, jump]'].join('\n'));
  const lines = e.message.split('\n');
  assert.ok(lines.includes('exp.yaml:6: ppo.num_envs: Too small: expected number to be >0'), e.message);
  assert.ok(lines.some((l) => l.startsWith('exp.yaml:7: ppo.lerning_rate: unknown field \'lerning_rate\'')), e.message);
  assert.ok(lines.some((l) => l.startsWith('exp.yaml:10: env.actions[1]: unknown action')), e.message);
  const missing = errorOf('name: t\ntarget: avx512\ndataset: { name: nope }\n');
  assert.match(missing.message, /exp\.yaml:3: dataset\.name: unknown dataset/);
  assert.match(missing.message, /exp\.yaml:1: iterations: /);
  const rule = errorOf('name: t\ntarget: synthetic\ndataset: { name: mm64-256 }\nreward: { source: synthetic }\nppo:\n  num_steps: 15\niterations: 2\n');
  assert.match(rule.message, /exp\.yaml:6: ppo\.num_steps: must be a multiple of env\.episode_steps/);
  assert.match(errorOf('name: t\n  bad: [').message, /^exp\.yaml:\d+: YAML: /);
});

test('every shipped experiment file validates', () => {
  const dir = path.dirname(SMOKE);
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    const x = loadExperiment(path.join(dir, f));
    assert.ok(x.variants.length >= 1, f);
  }
  const gvm = loadExperiment(path.join(dir, 'ppo-graph-vs-mlp.yaml'));
  assert.equal(gvm.variants.map((v) => v.network.kind).sort(), ['gnn', 'mlp']);
});

test('smoke.yaml: train (killed, then resumed) equals an uninterrupted run; eval, compare, export', async () => {
  const a = path.join(tmp, 'a');
  const b = path.join(tmp, 'b');
  const seen: TrainProgress[] = [];
  // "killed" after 3 iterations: the last checkpoint is iteration 2 (checkpoint.every = 2)
  const first = await trainExperiment(SMOKE, { ...quiet, output: a, resume: false, stopAfter: 3, onProgress: (p) => seen.push(p) });
  assert.is(first.variants[0]!.iteration, 3);
  assert.is(seen.length, 3);
  assert.ok(Number.isFinite(seen[2]!.stats.meanEpisodeReturn));
  const resumed = await trainExperiment(SMOKE, { ...quiet, output: a });
  assert.is(resumed.variants[0]!.resumedFrom, 2);
  assert.is(resumed.variants[0]!.iteration, 6);
  const straight = await trainExperiment(SMOKE, { ...quiet, output: b, resume: false });
  const bytes = (dir: string, f: string) => readFileSync(path.join(dir, 'checkpoints', 'iter-000006', f));
  assert.ok(bytes(a, 'weights.bin').equals(bytes(b, 'weights.bin')), 'same weights after resuming');
  assert.ok(bytes(a, 'optimizer.bin').equals(bytes(b, 'optimizer.bin')), 'same optimizer state after resuming');
  const metrics = (dir: string) => readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(metrics(a).map((m) => [m.iteration, m.meanEpisodeReturn]), metrics(b).map((m) => [m.iteration, m.meanEpisodeReturn]));
  assert.ok(existsSync(path.join(straight.variants[0]!.policyDir!, 'model.json')));

  const ev = await evalExperiment(SMOKE, { ...quiet, output: a });
  assert.is(ev[0]!.problems.length, 3);
  for (const p of ev[0]!.problems) {
    assert.ok(p.bestGflops >= p.defaultGflops);
    assert.ok(p.measurements <= 12);
  }
  const cmp = await compareExperiment(SMOKE, { ...quiet, output: a });
  assert.equal(cmp.data.searchers, ['ppo', 'random', 'greedy2']);
  const html = readFileSync(cmp.html, 'utf8');
  assert.match(html, /mean episode return/);
  assert.match(html, /<svg/);
  const ex = await exportPolicy(SMOKE, { ...quiet, output: a, to: path.join(tmp, 'shipped') });
  assert.is(ex.manifest.trainingSteps, 6 * 4 * 12);
  assert.ok(ex.manifest.testSplit !== null);
  assert.ok(existsSync(path.join(ex.dir, 'weights.bin')));
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
