/**
 * An experiment file's `farm:` section: validated with the rest of the file, and the training
 * rewards (measured, hybrid) and evaluations of `train` come from the farm's workers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { measuresKernels } from '../../../env/evaluator-for.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { measuringEvaluator, rewardEvaluator } from '../../../experiments/runner.ts';
import { ExperimentError, parseExperiment } from '../../../experiments/schema.ts';
import type { RemoteDevice } from '../../../targets/farm/remote-device.ts';
import { hostTarget } from '../../../targets/runtime/host.ts';
import { RedisServer, startWorker, type WorkerProcess } from '../../../targets/farm/local-farm.ts';

function experiment(target: string, farm: string, output: string): string {
  return [
    'name: farm-exp', `target: ${target}`, 'dataset: { name: mm64-256 }', 'iterations: 1',
    'reward: { source: measured, min_seconds: 0.002 }', farm, `output: ${output}`,
  ].join('\n');
}

test('a bad farm section is one line naming its field; a farm on a model target is refused', async () => {
  assert.throws(() => parseExperiment(experiment('avx512', 'farm: { url: "http://10.0.0.5" }', 'runs/x'), 'exp.yaml'),
    (e: unknown) => e instanceof ExperimentError && /exp\.yaml:6.*farm\.url.*Redis URL/.test(e.message));
  assert.throws(() => parseExperiment(experiment('avx512', 'farm: { url: "redis://h:1", workers: 3 }', 'runs/x'), 'exp.yaml'),
    (e: unknown) => e instanceof ExperimentError && /unknown field 'workers'/.test(e.message));
  const saved = process.env.LOOPTUNE_FARM;
  delete process.env.LOOPTUNE_FARM;
  const noUrl = parseExperiment(experiment('avx512', 'farm: { concurrency: 2 }', 'runs/x'), 'exp.yaml');
  const refused = await measuringEvaluator(noUrl).then(() => 'opened', (e: unknown) => String(e));
  assert.match(refused, /exp\.yaml: farm: has no url and LOOPTUNE_FARM is not set/);
  if (saved !== undefined) process.env.LOOPTUNE_FARM = saved;
  assert.throws(() => parseExperiment(experiment('synthetic', 'farm: { url: "redis://h:1" }', 'runs/x').replace('source: measured', 'source: synthetic'), 'exp.yaml'),
    (e: unknown) => e instanceof ExperimentError && /farm.*not timings/.test(e.message));
});

test('train measures through the farm: rewards and evaluations come from its workers', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-farm-exp-'));
  const redis = await RedisServer.start();
  let worker: WorkerProcess | undefined;
  try {
    worker = await startWorker(redis.url);
    const x = parseExperiment(experiment(hostTarget(), `farm: { url: "${redis.url}", concurrency: 2 }`, dir), 'exp.yaml');
    // without a url the farm is $LOOPTUNE_FARM's (the password stays out of the file)
    const fromEnv = parseExperiment(experiment(hostTarget(), 'farm: { concurrency: 2 }', dir), 'exp.yaml');
    process.env.LOOPTUNE_FARM = redis.url;
    const makers = [() => rewardEvaluator(x, x.variants[0]!), () => measuringEvaluator(fromEnv)];
    for (const [i, make] of makers.entries()) {
      const e = await make();
      try {
        assert.ok(measuresKernels(e));
        const device = (e as unknown as { device: RemoteDevice }).device;
        assert.is(device.key, worker.key);
        const r = await e.evaluate(Schedule.parse(parseProblem('matmul 32x32x32'), ['m:4 n:2 k:32 m:8 n:16', 'm:2 n:2 k:32 m:16 n:16'][i]!));
        assert.is(r.source, 'measured');
        assert.ok(r.gflops > 0, r.error);
        assert.ok(device.settlements.some((s) => s.kind === 'time' && s.ok && s.worker === `${os.hostname()} pid ${worker!.pid}`));
      } finally {
        await e.close?.();
      }
    }
  } finally {
    delete process.env.LOOPTUNE_FARM;
    await worker?.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
