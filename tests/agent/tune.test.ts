import { availableParallelism } from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setBackendLogging, initBackend } from '../../agent/backend.ts';
import { createPolicy } from '../../agent/policy/index.ts';
import { pretrainedPolicyDir, tune, type LoadedPolicy } from '../../agent/tune.ts';
import { LOOPTUNE_ACTIONS } from '../../env/loopnest-env.ts';
import { RecordStore } from '../../env/records.ts';
import { parseProblem, Schedule } from '../../ir/index.ts';
import { RUN_TARGET } from '../host.ts';

setBackendLogging(false);
// the host's best ISA: avx512 or avx2, each with its shipped policy (agent/pretrained/<target>)
const target = RUN_TARGET;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'looptune-tune-'));

async function randomPolicy(): Promise<LoadedPolicy> {
  await initBackend();
  const policy = createPolicy({ network: { kind: 'mlp', hidden: [16], activation: 'tanh' }, actions: [...LOOPTUNE_ACTIONS], observation: 'vector', maxLoops: 10 }, 4);
  return { policy, metadata: { episodeSteps: 6 }, path: '(random test policy)' };
}

test('tune returns a verified kernel, measured, faster than the default', async () => {
  const r = await tune('matmul 64x48x80', { target, policy: await randomPolicy(), noRecords: true, budgetSeconds: 1.5, maxMeasurements: 12 });
  assert.ok(r.verified, `not verified: ${r.schedule}`);
  assert.ok(r.kernel.code.length > 0);
  assert.ok(r.gflops > 0 && r.gflops >= r.defaultGflops, `${r.gflops} vs default ${r.defaultGflops}`);
  assert.ok(r.speedupOverDefault >= 1);
  assert.ok(r.measurements >= 1 && r.measurements <= 12);
  assert.ok(r.proposals > 1);
  assert.is(Schedule.parse(parseProblem(r.problem), r.schedule).text(), r.schedule);
  assert.ok(Math.abs(r.percentOfPeak - 100 * r.fractionOfPeak) < 1e-9);
  assert.ok(r.seconds >= r.searchSeconds);
});

test('tune starts from the tuning records and reuses their measurements', async () => {
  const file = path.join(tmp, 'records.jsonl');
  const policy = await randomPolicy();
  const first = await tune('matmul 64x64x64', { target, policy, records: file, budgetSeconds: 1, maxMeasurements: 8, verify: false });
  assert.ok(existsSync(file));
  const store = RecordStore.open(file);
  assert.ok(store.size >= first.timed);
  const second = await tune('matmul 64x64x64', { target, policy, records: file, budgetSeconds: 1, maxMeasurements: 8 });
  assert.is(second.recordSchedule, store.best('matmul 64x64x64', target)!.schedule);
  assert.ok(second.recordsRemeasured >= 1, 'a recorded figure is timed again before it is reported');
  assert.ok(second.verified);
});

test('tune with no arguments uses the shipped policy of the host', async () => {
  assert.ok(existsSync(path.join(pretrainedPolicyDir(target), 'model.json')), 'the shipped policy is missing');
  const r = await tune('matmul 96x80x112', { noRecords: true, compareBaseline: true });
  assert.ok(r.verified);
  assert.is(r.target, target);
  assert.ok(r.policy.endsWith(path.join('pretrained', target)));
  assert.ok(r.openblasGflops === undefined || r.openblasRatio! > 0);
  // the baseline names the library that ran (version and kernel set), and the old fields alias it
  if (r.baseline) {
    assert.match(r.baseline.library, /^OpenBLAS \d+\.\d+\.\d+ \(\w+\)$/);
    assert.is(r.openblasGflops, r.baseline.gflops);
    assert.is(r.openblasRatio, r.baseline.ratio);
    // tune uses every core by default, and the baseline runs on as many
    assert.is(r.baseline.threads, availableParallelism());
  } else assert.ok(r.baselineError, 'no baseline and no reason');
  assert.is(r.deviceThreads, availableParallelism());
  assert.ok(r.threads === 1 || r.threads === r.deviceThreads);
  assert.ok(r.native);
  assert.is(r.ranking, 'costmodel');
});

test('tune --threads 1 runs on one thread; on 2 threads the winner has a parallel band or was faster on one thread', async () => {
  const one = await tune('matmul 256x256x256', { target, noRecords: true, budgetSeconds: 1, maxMeasurements: 8, threads: 1 });
  assert.ok(one.verified);
  assert.is(one.deviceThreads, 1);
  assert.is(one.threads, 1);
  const two = await tune('matmul 256x256x256', { target, noRecords: true, budgetSeconds: 1, maxMeasurements: 8, threads: 2 });
  assert.ok(two.verified);
  assert.is(two.deviceThreads, 2);
  if (two.threads === 2) {
    assert.match(two.schedule, /p( |$)/, 'a kernel on two threads has a band');
    assert.ok(two.kernel.abi.parallel);
  } else {
    assert.ok(two.singleThreadGflops !== undefined, 'one thread was chosen by measurement');
  }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
