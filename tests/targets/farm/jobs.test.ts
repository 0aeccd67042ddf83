/** The farm's job and result schemas, keys and URLs, without a Redis. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkFarmUrl, redactUrl } from '../../../targets/farm/connection.ts';
import { hardwareKey, keyHost, queueName } from '../../../targets/farm/hardware-key.ts';
import { decodeTensor, encodeTensor, FarmJobSchema, parseResult } from '../../../targets/farm/jobs.ts';

test('a job names a problem and a schedule; anything else (code, unknown kinds, huge fields) is rejected', () => {
  const job = { kind: 'time', id: 'c-1', key: 'avx512 on X', problem: 'matmul 8x8x8', schedule: 'm:8 n:8 k:8', overwrite: false, threads: 1 };
  assert.ok(FarmJobSchema.safeParse(job).success);
  assert.is(FarmJobSchema.safeParse({ ...job, kind: 'exec', code: 'rm -rf /' }).success, false);
  assert.is(FarmJobSchema.safeParse({ ...job, threads: 0 }).success, false);
  assert.is(FarmJobSchema.safeParse({ ...job, schedule: 'm:8 '.repeat(2000) }).success, false);
  assert.is(FarmJobSchema.safeParse({ ...job, minSeconds: Infinity }).success, false);
});

test('a malformed result is a failure naming the field and the worker, never a figure', () => {
  const ok = { ok: true, worker: 'w pid 1', bestSeconds: 1e-3, medianSeconds: 2e-3, gflops: 1, reps: 1, samples: 3 };
  const parsed = parseResult('time', ok);
  assert.ok(parsed.ok);
  for (const bad of [{ ...ok, gflops: 'fast' }, { ...ok, bestSeconds: -1 }, { ...ok, medianSeconds: 1e-4 }, { ...ok, gflops: NaN }, 'text', null, { ...ok, worker: undefined }]) {
    const r = parseResult('time', bad);
    assert.is(r.ok, false);
    assert.match((r as { error: string }).error, /^malformed time result from /);
  }
  assert.match((parseResult('time', { ...ok, gflops: 'fast' }) as { error: string }).error, /w pid 1 \(gflops: /);
});

test('tensors survive base64; text that is not whole float32 values does not decode', () => {
  const t = new Float32Array([1.5, -2, 3e-8, Infinity]);
  assert.equal([...decodeTensor(encodeTensor(t))!], [...t]);
  assert.equal([...decodeTensor(encodeTensor(t.subarray(1, 3)))!], [-2, Float32Array.of(3e-8)[0]]);
  assert.is(decodeTensor(Buffer.from([1, 2, 3]).toString('base64')), undefined);
});

test('keys name the target and host; queue names are digests without colons', () => {
  const key = hardwareKey('avx512', 'AMD EPYC (AuthenticAMD family 26 model 2 stepping 1, avx2+fma, 2 cores) threads=2');
  assert.is(keyHost(key, 'avx512'), 'AMD EPYC (AuthenticAMD family 26 model 2 stepping 1, avx2+fma, 2 cores) threads=2');
  assert.throws(() => keyHost(key, 'cuda'), /not a key of the cuda target/);
  assert.match(queueName(key), /^looptune-measure-[0-9a-f]{20}$/);
  assert.is.not(queueName(key), queueName(hardwareKey('avx2', 'same')));
});

test('farm URLs: redis:// only, one line otherwise; passwords never printed', () => {
  assert.is(checkFarmUrl('redis://:pw@127.0.0.1:6379'), 'redis://:pw@127.0.0.1:6379');
  assert.throws(() => checkFarmUrl('http://127.0.0.1:6379'), /must start with redis:\/\/ or rediss:\/\//);
  assert.throws(() => checkFarmUrl('not a url'), /cannot read the farm URL/);
  assert.not.match(redactUrl('redis://:hunter2@10.0.0.5:6379'), /hunter2/);
});

test.run();
