import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseProblem, Schedule, applyActions } from '../../ir/index.ts';
import { RecordStore, type TuningRecord } from '../../env/records.ts';
import { CachingEvaluator } from '../../env/evaluator.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'looptune-records-'));
const rec = (i: number, extra: Partial<TuningRecord> = {}): TuningRecord => ({
  problem: 'matmul 64x64x64', target: 'avx512', schedule: `m:64 n:64 k:64 #${i}`, hash: `h${i}`, gflops: i,
  bestSeconds: 1e-3, medianSeconds: 1.1e-3, timestamp: '2026-11-01T00:00:00.000Z', host: 'cpu', ...extra,
});

test('records persist as one JSON object per line and reload', () => {
  const file = path.join(dir, 'a.jsonl');
  const store = RecordStore.open(file);
  for (let i = 1; i <= 3; i++) store.add(rec(i));
  const lines = readFileSync(file, 'utf8').split('\n');
  assert.is(lines.length, 4);
  assert.is(lines[3], '');
  assert.equal(JSON.parse(lines[0]!), rec(1));
  const again = RecordStore.open(file);
  assert.is(again.size, 3);
  assert.equal(again.loadStats, { records: 3, tornLastLine: false, badLines: 0 });
  assert.is(again.get('matmul 64x64x64', 'avx512', 'h2')!.gflops, 2);
  assert.is(again.get('matmul 64x64x64', 'avx2', 'h2'), undefined);
  assert.is(again.best('matmul 64x64x64', 'avx512')!.hash, 'h3');
});

test('a kill during a write (torn last line) loses only that record; appends continue cleanly', () => {
  const file = path.join(dir, 'torn.jsonl');
  const store = RecordStore.open(file);
  store.add(rec(1));
  store.add(rec(2));
  // simulate a process killed in the middle of writing record 3
  const line = JSON.stringify(rec(3));
  appendFileSync(file, line.slice(0, Math.floor(line.length / 2)));
  const reloaded = RecordStore.open(file);
  assert.is(reloaded.size, 2);
  assert.is(reloaded.loadStats.tornLastLine, true);
  assert.is(reloaded.loadStats.badLines, 0);
  reloaded.add(rec(4));
  const third = RecordStore.open(file);
  assert.equal(third.records().map((r) => r.hash), ['h1', 'h2', 'h4']);
  assert.is(third.loadStats.tornLastLine, false);
  assert.is(third.loadStats.badLines, 1, 'the old fragment is now a bad middle line, skipped');
});

test('malformed lines are skipped and counted; an empty or missing file is fine', () => {
  const file = path.join(dir, 'bad.jsonl');
  writeFileSync(file, `${JSON.stringify(rec(1))}\nnot json\n{"problem":"x"}\n\n${JSON.stringify(rec(2))}\n`);
  const s = RecordStore.open(file);
  assert.is(s.size, 2);
  assert.is(s.loadStats.badLines, 2);
  assert.is(RecordStore.open(path.join(dir, 'missing.jsonl')).size, 0);
  writeFileSync(path.join(dir, 'empty.jsonl'), '');
  assert.is(RecordStore.open(path.join(dir, 'empty.jsonl')).size, 0);
  assert.throws(() => s.add({ problem: 'x' } as unknown as TuningRecord), /not a tuning record/);
});

test('get returns the best record of a key, optionally of one host', () => {
  const s = RecordStore.open(null);
  s.add(rec(5, { hash: 'k', host: 'a' }));
  s.add(rec(9, { hash: 'k', host: 'b' }));
  assert.is(s.get('matmul 64x64x64', 'avx512', 'k')!.gflops, 9);
  assert.is(s.get('matmul 64x64x64', 'avx512', 'k', 'a')!.gflops, 5);
  assert.is(s.get('matmul 64x64x64', 'avx512', 'k', 'c'), undefined);
});

test('the evaluator writes records and answers later runs from them (cache hits are not measurements)', async () => {
  const file = path.join(dir, 'eval.jsonl');
  const p = parseProblem('matmul 64x64x64');
  const a = Schedule.initial(p);
  const b = applyActions(a, ['split_16']);
  let calls = 0;
  const measure = async (s: Schedule) => {
    calls++;
    return { gflops: s.loops.length, bestSeconds: 1, medianSeconds: 2 };
  };
  const e1 = new CachingEvaluator({ target: 'avx512', peakGflops: 10, measure, records: RecordStore.open(file), host: 'cpu' });
  assert.is((await e1.evaluate(a)).source, 'measured');
  assert.is((await e1.evaluate(a.withCursor(2))).source, 'cached', 'the cursor is not part of the key');
  assert.is((await e1.evaluate(b)).gflops, 4);
  assert.equal(e1.stats, { measured: 2, cached: 1, failed: 0 });
  const e2 = new CachingEvaluator({ target: 'avx512', peakGflops: 10, measure, records: RecordStore.open(file), host: 'cpu' });
  const hit = await e2.evaluate(b);
  assert.equal({ source: hit.source, gflops: hit.gflops, best: hit.bestSeconds }, { source: 'cached', gflops: 4, best: 1 });
  assert.is(calls, 2);
  // another host's records are not used as timings of this one
  const e3 = new CachingEvaluator({ target: 'avx512', peakGflops: 10, measure, records: RecordStore.open(file), host: 'other' });
  assert.is((await e3.evaluate(b)).source, 'measured');
  const line = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!) as TuningRecord;
  assert.equal(Object.keys(line).sort(), ['bestSeconds', 'gflops', 'hash', 'host', 'medianSeconds', 'problem', 'schedule', 'target', 'timestamp']);
  assert.is(line.schedule, 'm:64 n:64 k:64');
  assert.is(line.hash, a.hash());
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
