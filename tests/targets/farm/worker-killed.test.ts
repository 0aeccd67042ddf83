/**
 * Three worker processes serve a 200-measurement search; one is killed with SIGKILL while it runs a
 * job and a fourth is started. The search completes, the killed worker's job is retried on another
 * worker, and every measurement is in the records exactly once.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
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

test('a worker killed mid-job: the search completes, each measurement recorded once', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-farm-'));
  const redis = await RedisServer.start();
  const workers: WorkerProcess[] = [];
  const probe = farmConnection(redis.url);
  try {
    workers.push(...await Promise.all([0, 1, 2].map(() => startWorker(redis.url))));
    const key = workers[0]!.key;
    const records = path.join(dir, 'records.jsonl');
    const evaluator = await evaluatorFor(hostTarget(), { farm: { url: redis.url, concurrency: 3 }, records, minSeconds: 0.01 }) as MeasuredEvaluator;
    const device = evaluator.device as RemoteDevice;
    assert.is(device.key, key);
    const queue = new Queue(queueName(key), { connection: probe });
    let killed: { worker: WorkerProcess; jobId: string } | undefined;
    let killing = false;
    /**
     * SIGKILLs a worker that holds an active job, and starts another. A job may still finish in the
     * moment between the look and the kill: then the next active job's worker is killed (3 tries).
     */
    const killActive = async (): Promise<void> => {
      for (let tries = 0; tries < 3 && !killed; tries++) {
        let victim: { worker: WorkerProcess; jobId: string; bullId: string } | undefined;
        for (let i = 0; i < 400 && !victim; i++) {
          for (const job of await queue.getActive()) {
            const w = workers.find((x) => x.child.exitCode === null && job.processedBy === `${os.hostname()} pid ${x.pid}`);
            if (w && job.id) victim = { worker: w, jobId: job.data.id as string, bullId: job.id };
          }
          if (!victim) await new Promise((r) => setTimeout(r, 2));
        }
        if (!victim) return;
        await victim.worker.stop('SIGKILL');
        workers.push(await startWorker(redis.url));
        const job = await queue.getJob(victim.bullId);
        const finishedBeforeTheKill = job?.finishedOn !== undefined && job.processedBy === `${os.hostname()} pid ${victim.worker.pid}`;
        if (!finishedBeforeTheKill) killed = { worker: victim.worker, jobId: victim.jobId };
      }
    };
    let killing$: Promise<void> | undefined;
    try {
      const r = await runSearch('matmul 48x40x32', {
        evaluator, searcher: 'random', budget: { measurements: 200 }, seed: 3,
        onProgress: (p) => {
          if (!killing && p.measurements >= 40) {
            killing = true;
            killing$ = killActive();
          }
        },
      });
      await killing$;
      assert.is(r.measurements, 200);
      assert.ok(killed, 'a worker was killed while it held a job');
      // the killed worker's job was answered by another worker
      const retried = device.settlements.find((s) => s.id === killed!.jobId);
      assert.ok(retried, 'the killed job was settled');
      assert.ok(retried!.ok, `the killed job succeeded elsewhere: ${retried!.error}`);
      assert.is.not(retried!.worker, `${os.hostname()} pid ${killed!.worker.pid}`);
      // exactly once: one record per measured schedule, no hash twice, no duplicate answers
      const lines = readFileSync(records, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { hash: string; host: string; servedBy?: string; error?: string });
      const hashes = new Set(lines.map((l) => l.hash));
      assert.is(hashes.size, lines.length);
      assert.is(lines.length, evaluator.stats.measured - evaluator.stats.failed);
      assert.ok(evaluator.stats.measured >= 200);
      // at-least-once execution, exactly-once recording: a job whose lock lapsed on a loaded machine
      // may run twice (BullMQ's stalled-job check; CI saw one such answer once), so device.duplicates
      // is not asserted zero: a second answer is dropped and counted, never recorded or settled
      // twice, which the record and settlement checks around this line assert
      assert.ok(lines.every((l) => l.host === device.host));
      const timeJobs = device.settlements.filter((s) => s.kind === 'time');
      assert.is(timeJobs.length, evaluator.stats.measured);
      assert.is(new Set(timeJobs.map((s) => s.id)).size, timeJobs.length);
      const servedBy = new Set(timeJobs.map((s) => s.worker));
      // each record names the worker that timed it, one of those that answered
      assert.ok(lines.filter((l) => !l.error).every((l) => l.servedBy !== undefined && servedBy.has(l.servedBy)), 'records name their worker');
      assert.ok(servedBy.size >= 2, `served by ${[...servedBy].join(', ')}`);
    } finally {
      await queue.close();
      await evaluator.close();
    }
  } finally {
    await Promise.allSettled(workers.map((w) => w.stop()));
    probe.disconnect();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
