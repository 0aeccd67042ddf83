/**
 * A worker of another hardware key never serves a job; a bad job (a schedule the worker's checks
 * reject) and a forged or malformed result come back as failed measurements, the worker lives, and
 * nothing of them reaches the tuning records.
 */
import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'bullmq';
import { evaluatorFor } from '../../../env/evaluator-for.ts';
import { RecordStore } from '../../../env/records.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { farmConnection } from '../../../targets/farm/connection.ts';
import { hardwareKey, queueName } from '../../../targets/farm/hardware-key.ts';
import { openRemoteDevice } from '../../../targets/farm/remote-device.ts';
import { heartbeat, liveWorkers } from '../../../targets/farm/roster.ts';
import type { Backend } from '../../../targets/backend.ts';
import { backend } from '../../../targets/registry.ts';
import { hostTarget } from '../../../targets/runtime/host.ts';
import { RedisServer, startWorker, type WorkerProcess } from '../../../targets/farm/local-farm.ts';

const problem = parseProblem('matmul 32x32x32');

test('a worker of another key stays idle; a bad job fails as a measurement and the worker lives; forged results are no figures', async () => {
  const redis = await RedisServer.start();
  const workers: WorkerProcess[] = [];
  const probe = farmConnection(redis.url);
  try {
    // the same machine at another thread count is another key
    const [serving, other] = await Promise.all([startWorker(redis.url), startWorker(redis.url, ['--threads', '2'])]);
    workers.push(serving!, other!);
    assert.is.not(serving!.key, other!.key);
    const b = backend(hostTarget());
    const device = await openRemoteDevice(b, { url: redis.url, minSeconds: 0.002 });
    try {
      assert.is(device.key, serving!.key);
      const good = b.compile(Schedule.parse(problem, 'm:4 n:2 k:32 m:8 n:16'));
      for (let i = 0; i < 5; i++) {
        const r = await device.time(good);
        assert.ok(r.ok, r.ok ? '' : r.error);
      }
      // (3) jobs went to the matching worker only
      const served = device.settlements.filter((s) => s.kind === 'time').map((s) => s.worker);
      assert.ok(served.every((w) => w === `${os.hostname()} pid ${serving!.pid}`), served.join(', '));

      // (4) a schedule the worker's parser rejects: a failed measurement, and the worker goes on
      const bad = { ...good, program: { ...good.program, schedule: 'm:7 n:32 k:32' } };
      const r = await device.time(bad);
      assert.is(r.ok, false);
      assert.match(r.ok ? '' : r.error, /^the loops of m cover 7 elements but matmul 32x32x32 has m=32$/);
      const again = await device.time(good);
      assert.ok(again.ok, 'the worker still serves after a bad job');
      assert.is(serving!.child.exitCode, null);
    } finally {
      await device.close();
    }
    // the other key's worker took nothing (its roster entry counts what it served)
    await new Promise((r) => setTimeout(r, 2500));
    const roster = await liveWorkers(probe);
    const otherEntry = roster.find((w) => w.pid === other!.pid);
    const servingEntry = roster.find((w) => w.pid === serving!.pid);
    assert.ok(otherEntry && servingEntry);
    assert.is(otherEntry!.served, 0);
    assert.ok(servingEntry!.served >= 7);
    await other!.stop();
    assert.match(other!.output(), /served 0 jobs/);

    // forged results: a fake worker of a made-up key answers garbage and impossible figures
    const forgedKey = hardwareKey(b.name, 'forged host (1 cores)');
    await heartbeat(probe, { name: 'forger', hostname: 'forger', pid: 1, keys: [forgedKey], since: new Date().toISOString(), served: 0 });
    // a caller that cannot open the target itself (it only steers the farm) takes the one live key
    await serving!.stop();
    const steering: Backend = { ...b, open: async () => { throw new Error('no such hardware here'); } };
    const steered = await openRemoteDevice(steering, { url: redis.url, waitForWorkerSeconds: 1 });
    assert.is(steered.key, forgedKey);
    await steered.close();
    const answers: unknown[] = [
      { ok: true, worker: 'forger', gflops: 'fast', bestSeconds: 1, medianSeconds: 1, reps: 1, samples: 3 },
      // a figure consistent with its time but beyond any peak
      { ok: true, worker: 'forger', gflops: (2 * 32 ** 3) / 1e-9 / 1e9, bestSeconds: 1e-9, medianSeconds: 1e-9, reps: 1, samples: 3 },
      'not an object',
    ];
    let answered = 0;
    const forgerConnection = farmConnection(redis.url);
    const forger = new Worker(queueName(forgedKey), async (job) => {
      if (job.data.kind === 'peak') return { ok: true, worker: 'forger', gflops: 100, source: 'measured' };
      return answers[answered++ % answers.length];
    }, { connection: forgerConnection });
    try {
      const records = RecordStore.open(null);
      const evaluator = await evaluatorFor(b, { farm: { url: redis.url, key: forgedKey }, records, minSeconds: 0.002 });
      try {
        for (const text of ['m:4 n:2 k:32 m:8 n:16', 'm:2 n:2 k:32 m:16 n:16', 'm:32 n:2 k:32 n:16']) {
          const e = await evaluator.evaluate(Schedule.parse(problem, text));
          assert.is(e.gflops, 0);
          assert.ok(e.error, 'a forged result is a failed measurement');
        }
        assert.is(records.size, 0);
      } finally {
        await evaluator.close();
      }
      assert.is(answered, 3);
    } finally {
      await forger.close();
      forgerConnection.disconnect();
    }
  } finally {
    await Promise.allSettled(workers.map((w) => w.stop()));
    probe.disconnect();
    await redis.stop();
  }
});

test.run();
