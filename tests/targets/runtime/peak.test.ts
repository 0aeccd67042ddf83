import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RUN_TARGET } from '../../host.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { oversubscribed, peak, peakRecord } from '../../../targets/runtime/peak.ts';
import { availableParallelism } from 'node:os';
import { avx2FmaChains } from './fixtures.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-peak-'));
const cacheFile = path.join(dir, 'peak.json');
const quick = { kernel: avx2FmaChains, itersPerRep: 100, minSeconds: 0.005, cacheFile };

test.after(() => rmSync(dir, { recursive: true, force: true }));

test("a probe is disturbed when other processes' threads are runnable on the cores it uses", () => {
  const n = availableParallelism();
  const stat = (running: number) => `cpu  1 2 3 4\nctxt 99\nprocs_running ${running}\nprocs_blocked 0\n`;
  // one thread: the other cores are free for others
  assert.is(oversubscribed(stat(n), 1, 1), false);
  assert.is(oversubscribed(stat(n + 1), 1, 1), true);
  // all cores: our own spinning workers do not count, anyone else does
  assert.is(oversubscribed(stat(n + 1), n + 1, n), false, 'our own libgomp workers spinning after the region');
  assert.is(oversubscribed(stat(n + 2), n + 1, n), true);
  assert.is(oversubscribed('', 1, 1), false, 'no /proc/stat: cannot tell, not disturbed');
});

test('peak keeps the best chain count, skips counts the generator rejects, and caches', async () => {
  const first = await peakRecord('avx2', { ...quick, chains: [4, 8, 30] });
  assert.not.ok(first.cached);
  assert.equal(first.perChains.map((p) => p.chains), [4, 8]);
  assert.ok(first.gflops > 0);
  assert.is(first.gflops, Math.max(...first.perChains.map((p) => p.gflops)));
  assert.ok(existsSync(cacheFile));

  const again = await peakRecord('avx2', { ...quick, chains: [4, 8] });
  assert.ok(again.cached);
  assert.is(again.gflops, first.gflops);
  assert.is(await peak('avx2', quick), first.gflops);

  const fresh = await peakRecord('avx2', { ...quick, chains: [8], fresh: true });
  assert.not.ok(fresh.cached);
  assert.equal(fresh.perChains.map((p) => p.chains), [8]);
});

test('peak without any usable chain count throws', async () => {
  try {
    await peakRecord('avx2', { ...quick, chains: [30], cacheFile: null });
    assert.unreachable();
  } catch (e) {
    assert.match(String(e), /none of the chain counts/);
  }
});

test('peak measured in a worker: same kernels, and a broken generator fails cleanly', async () => {
  const pool = new MeasurementPool();
  try {
    const r = await peakRecord('avx2', { ...quick, chains: [8], cacheFile: null, pool });
    assert.ok(r.gflops > 0);
    const ud2 = () => Uint8Array.of(0x0f, 0x0b);
    await peakRecord('avx2', { ...quick, kernel: ud2, chains: [8], cacheFile: null, pool }).then(
      () => assert.unreachable(),
      (e: unknown) => assert.match(String(e), /kernel crashed \(SIGILL\)/),
    );
  } finally {
    await pool.close();
  }
});

test('peak with the x86 emitter peakKernel', async () => {
  const generator = new URL('../../../targets/x86/peak-kernel.ts', import.meta.url);
  assert.ok(existsSync(generator), 'targets/x86/peak-kernel.ts is missing');
  const r = await peakRecord(RUN_TARGET, { chains: [12], itersPerRep: 100, minSeconds: 0.01, cacheFile: null });
  assert.ok(r.gflops > 0);
});

test.run();
