/**
 * PPO on the cuda target without a GPU: experiments/ppo-cuda.yaml trains on the cuda cost model's
 * reward; its policy reads the GPU observation (bindings included) and acts with the cuda actions,
 * episodes start from GPU sketches, and the saved policy remembers all that.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setBackendLogging } from '../../agent/backend.ts';
import { loadPolicy } from '../../agent/policy/index.ts';
import { trainExperiment } from '../../experiments/runner.ts';
import { loadExperiment } from '../../experiments/schema.ts';
import { CUDA_ACTIONS } from '../../ir/transforms.ts';
import { GPU_MAX_LOOPS, LOOP_FEATURES, GPU_LOOP_FEATURES, vectorEncoding } from '../../ir/graph.ts';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';

setBackendLogging(false);
const FILE = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'experiments', 'ppo-cuda.yaml');

test('ppo-cuda.yaml: one PPO iteration on the cuda cost model, a GPU policy saved', async () => {
  const x = loadExperiment(FILE);
  assert.is(x.spec.target, 'cuda');
  assert.is(x.variants[0]!.env.start, 'sketch');
  for (const a of CUDA_ACTIONS) assert.ok(x.variants[0]!.env.actions.includes(a), a);
  const out = mkdtempSync(path.join(os.tmpdir(), 'looptune-ppo-cuda-'));
  // the same file, checkpointing after every iteration
  const file = path.join(out, 'ppo-cuda.yaml');
  writeFileSync(file, readFileSync(FILE, 'utf8').replace(/every: \d+/, 'every: 1'));
  // the run folder is a new one beside the file (a folder holding other files is not adopted)
  const run = path.join(out, 'run');
  const r = await trainExperiment(file, { output: run, stopAfter: 1, resume: false, log: () => {} });
  const v = r.variants[0]!;
  assert.is(v.iteration, 1);
  assert.ok(v.globalStep > 0);
  const metrics = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { meanInitialGflops: number });
  assert.ok(metrics[0]!.meanInitialGflops > 0, 'episodes started from sketches the model rates above zero');
  const { policy } = loadPolicy(v.checkpoint!);
  assert.ok(policy.spec.gpu);
  assert.equal(policy.spec.actions, x.variants[0]!.env.actions);
  // it reads the 16-loop GPU observation, and acts on a mapped schedule
  const s = Schedule.parse(parseProblem('matmul 512x512x512'), 'm:8b n:8b k:64s m:16t n:16t k:8 m:4 n:4');
  const obs = vectorEncoding(s, true);
  assert.is(obs.length, GPU_MAX_LOOPS * (LOOP_FEATURES + GPU_LOOP_FEATURES));
  const inputs = policy.inputs([obs]);
  const o = policy.apply(inputs);
  assert.equal(o.logits.shape, [1, x.variants[0]!.env.actions.length]);
  inputs.forEach((t) => t.dispose());
  o.logits.dispose(); o.value.dispose(); o.aux.dispose();
  policy.dispose();
});

test.run();
