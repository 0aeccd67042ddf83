/**
 * Redis restarts mid-search (same port, no persistence: every job and event is lost). ioredis
 * reconnects the caller and the workers; the caller queues again what Redis forgot, and the search
 * completes with each measurement recorded once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Queue } from 'bullmq';
import { runSearch } from '../../../agent/search/run.ts';
import { evaluatorFor } from '../../../env/evaluator-for.ts';
import type { MeasuredEvaluator } from '../../../env/evaluator.ts';
import { farmConnection } from '../../../targets/farm/connection.ts';
import { queueName } from '../../../targets/farm/hardware-key.ts';
import type { RemoteDevice } from '../../../targets/farm/remote-device.ts';
import { hostTarget } from '../../../targets/runtime/host.ts';
import { RedisServer, startWorker, type WorkerProcess } from '../../../targets/farm/local-farm.ts';

test('Redis restarted mid-search: callers and workers reconnect, the search completes', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-farm-'));
  const redis = await RedisServer.start();
  const workers: WorkerProcess[] = [];
  try {
    workers.push(...await Promise.all([0, 1].map(() => startWorker(redis.url))));
    const records = path.join(dir, 'records.jsonl');
    // jobs of at least 50 ms: a job seen running is still running when Redis goes (a 10 ms job
    // could finish in the moment between the check and the kill, and nothing would be lost)
    const evaluator = await evaluatorFor(hostTarget(), { farm: { url: redis.url, concurrency: 2 }, records, minSeconds: 0.05 }) as MeasuredEvaluator;
    const device = evaluator.device as RemoteDevice;
    const probe = farmConnection(redis.url);
    const queue = new Queue(queueName(device.key), { connection: probe });
    queue.on('error', () => {}); // Redis is away for a moment: expected
    let restart: Promise<void> | undefined;
    let measuredAtRestart = 0;
    let restartedWithJobInFlight = false;
    /** Restarts Redis while a worker runs one of the search's jobs (so that Redis forgets it). */
    const restartMidJob = async (): Promise<void> => {
      for (let i = 0; i < 400 && !restartedWithJobInFlight; i++) {
        if ((await queue.getActive()).length > 0) restartedWithJobInFlight = true;
        else await new Promise((r) => setTimeout(r, 2));
      }
      await redis.restart();
    };
    try {
      const r = await runSearch('matmul 48x40x32', {
        evaluator, searcher: 'random', budget: { measurements: 60 }, seed: 5,
        onProgress: (p) => {
          if (!restart && p.measurements >= 20) {
            measuredAtRestart = p.measurements;
            restart = restartMidJob();
          }
        },
      });
      await restart;
      assert.ok(restartedWithJobInFlight, 'Redis was restarted while a job ran');
      // the job Redis forgot was queued again, under its id, and answered once
      assert.ok(device.requeued >= 1, `jobs queued again: ${device.requeued}`);
      assert.is(device.duplicates, 0);
      assert.is(r.measurements, 60);
      const lines = readFileSync(records, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { hash: string });
      assert.is(new Set(lines.map((l) => l.hash)).size, lines.length);
      assert.is(lines.length, evaluator.stats.measured - evaluator.stats.failed);
      // the measurements after the restart were answered by the reconnected workers
      const after = device.settlements.filter((s) => s.kind === 'time').slice(measuredAtRestart + 5);
      assert.ok(after.length > 0 && after.every((s) => s.ok), 'measurements after the restart succeeded');
    } finally {
      await queue.close();
      probe.disconnect();
      await evaluator.close();
    }
    // the workers are alive and still serve
    assert.ok(workers.every((w) => w.child.exitCode === null));
  } finally {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
