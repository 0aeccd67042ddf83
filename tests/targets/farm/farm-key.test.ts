/** The CLI's --farm-key: a caller measures for workers of another key (here: the same machine at another thread count); without --farm it is one line. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RedisServer, startWorker } from '../../../targets/farm/local-farm.ts';

const CLI = path.join(import.meta.dirname, '..', '..', '..', 'bin', 'looptune.js');

function looptune(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('search --farm URL --farm-key K measures on the workers of K; --farm-key alone is refused in one line', async () => {
  const alone = looptune(['search', 'matmul 32x32x32', '--farm-key', 'x']);
  assert.is(alone.status, 1);
  assert.equal(alone.stderr.trim().split('\n'), ['looptune: --farm-key needs --farm <url> (the farm whose workers serve that key)']);

  const redis = await RedisServer.start();
  try {
    const worker = await startWorker(redis.url, ['--threads', '2']);
    try {
      // the caller asks for one thread; the key it names is the 2-thread worker's
      const r = looptune(['search', 'matmul 32x32x32', '--searcher', 'random', '--budget', '6m', '--threads', '1',
        '--farm', redis.url, '--farm-key', worker.key, '--json']);
      assert.is(r.status, 0, r.stderr);
      const report = JSON.parse(r.stdout) as { measurements: number };
      assert.is(report.measurements, 6);
    } finally {
      await worker.stop();
    }
    const served = Number(/served (\d+) jobs/.exec(worker.output())?.[1]);
    assert.ok(served >= 6, worker.output());
  } finally {
    await redis.stop();
  }
});

test.run();
