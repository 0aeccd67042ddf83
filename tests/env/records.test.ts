import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseProblem, Schedule, applyActions } from '../../ir/index.ts';
import { RecordStore, type TuningRecord } from '../../env/records.ts';
import { CachingEvaluator } from '../../env/evaluator.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'looptune-records-'));
const problem = parseProblem('matmul 64x64x64');
// distinct real schedules of the problem: a record must parse and hash as its problem's schedule
const schedules = ['m:64 n:64 k:64', 'm:2 m:32 n:64 k:64', 'm:4 m:16 n:64 k:64', 'm:8 m:8 n:64 k:64', 'm:16 m:4 n:64 k:64',
  'm:32 m:2 n:64 k:64', 'm:64 n:2 n:32 k:64', 'm:64 n:4 n:16 k:64', 'm:64 n:8 n:8 k:64', 'm:64 n:16 n:4 k:64', 'n:64 m:64 k:64']
  .map((t) => Schedule.parse(problem, t));
const hashOf = (i: number) => schedules[i]!.hash();
const rec = (i: number, extra: Partial<TuningRecord> = {}): TuningRecord => ({
  problem: 'matmul 64x64x64', target: 'avx512', schedule: schedules[i]!.text(), hash: hashOf(i), gflops: i,
  bestSeconds: 1e-3, medianSeconds: 1.1e-3, timestamp: '2026-11-01T00:00:00.000Z', host: 'cpu', ...extra,
});
/** opens a store whose warnings are collected instead of printed */
function openQuiet(file: string | null): { store: RecordStore; warnings: string[] } {
  const warnings: string[] = [];
  return { store: RecordStore.open(file, { warn: (w) => warnings.push(w) }), warnings };
}

test('records persist as one JSON object per line and reload', () => {
  const file = path.join(dir, 'a.jsonl');
  const store = RecordStore.open(file);
  for (let i = 1; i <= 3; i++) store.add(rec(i));
  const lines = readFileSync(file, 'utf8').split('\n');
  assert.is(lines.length, 4);
  assert.is(lines[3], '');
  assert.equal(JSON.parse(lines[0]!), rec(1));
  const { store: again, warnings } = openQuiet(file);
  assert.is(again.size, 3);
  assert.equal(again.loadStats, { lines: 3, records: 3, tornLastLine: false, badLines: 0, unparseable: 0, invalid: 0, abovePeak: 0 });
  assert.equal(warnings, []);
  assert.is(again.get('matmul 64x64x64', 'avx512', hashOf(2))!.gflops, 2);
  assert.is(again.get('matmul 64x64x64', 'avx2', hashOf(2)), undefined);
  assert.is(again.best('matmul 64x64x64', 'avx512')!.hash, hashOf(3));
});

test('a kill during a write (torn last line) loses only that record; appends continue cleanly', () => {
  const file = path.join(dir, 'torn.jsonl');
  const store = RecordStore.open(file);
  store.add(rec(1));
  store.add(rec(2));
  // simulate a process killed in the middle of writing record 3
  const line = JSON.stringify(rec(3));
  appendFileSync(file, line.slice(0, Math.floor(line.length / 2)));
  const { store: reloaded, warnings } = openQuiet(file);
  assert.is(reloaded.size, 2);
  assert.is(reloaded.loadStats.tornLastLine, true);
  assert.is(reloaded.loadStats.badLines, 0);
  assert.equal(warnings, [`looptune: warning: ${file}: skipped 1 of 3 lines (1 torn last line)`]);
  reloaded.add(rec(4));
  const third = openQuiet(file).store;
  assert.equal(third.records().map((r) => r.hash), [hashOf(1), hashOf(2), hashOf(4)]);
  assert.is(third.loadStats.tornLastLine, false);
  assert.is(third.loadStats.badLines, 1, 'the old fragment is now a bad middle line, skipped');
});

test('malformed lines are skipped and counted; an empty or missing file is fine', () => {
  const file = path.join(dir, 'bad.jsonl');
  writeFileSync(file, `${JSON.stringify(rec(1))}\nnot json\n{"problem":"x"}\n\n${JSON.stringify(rec(2))}\n`);
  const s = openQuiet(file).store;
  assert.is(s.size, 2);
  assert.is(s.loadStats.badLines, 2);
  assert.is(RecordStore.open(path.join(dir, 'missing.jsonl')).size, 0);
  writeFileSync(path.join(dir, 'empty.jsonl'), '');
  assert.is(RecordStore.open(path.join(dir, 'empty.jsonl')).size, 0);
  assert.throws(() => s.add({ problem: 'x' } as unknown as TuningRecord), /not a tuning record/);
});

test('get returns the best record of a key, optionally of one host', () => {
  const s = RecordStore.open(null);
  s.add(rec(5, { host: 'a' }));
  s.add(rec(5, { gflops: 9, host: 'b' }));
  assert.is(s.get('matmul 64x64x64', 'avx512', hashOf(5))!.gflops, 9);
  assert.is(s.get('matmul 64x64x64', 'avx512', hashOf(5), 'a')!.gflops, 5);
  assert.is(s.get('matmul 64x64x64', 'avx512', hashOf(5), 'c'), undefined);
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

test('a record must validate against its problem; what is skipped is counted in ONE warning line', () => {
  const file = path.join(dir, 'distrust.jsonl');
  const line = (r: TuningRecord) => JSON.stringify(r);
  writeFileSync(file, [
    line(rec(1)),
    'not json',
    line(rec(2)).replace('"gflops":2', '"gflops":1e999'), // JSON for Infinity
    line(rec(3, { gflops: -5 })),
    line(rec(4, { schedule: 'm:64 n:64 k:32' })), // does not cover k
    line(rec(5, { hash: 'deadbeefdeadbeef' })), // not the schedule's hash
    line(rec(6, { problem: 'matmul 64x64' })),
    line(rec(7, { gflops: 99999 })), // this host, above the peak
    line(rec(8, { gflops: 99999, host: 'other' })), // another host's: not a timing of this one, kept
    line(rec(9, { gflops: 0, error: 'crashed' })), // a failure record is valid
    line(rec(10, { gflops: 0 })), // 0 GFLOPS without an error
    '{"problem":"matmul 64x64x64","gflops":1e6',
  ].join('\n') + '\n');
  const { store, warnings } = openQuiet(file);
  assert.is(store.rejectAbovePeak('avx512', 'cpu', 100), 1);
  assert.equal(store.records().map((r) => r.hash), [hashOf(1), hashOf(8), hashOf(9)]);
  assert.equal(warnings, [`looptune: warning: ${file}: skipped 9 of 12 lines (2 unparseable, 6 invalid, 1 above peak; first: line 2: not JSON)`]);
  assert.is(store.size, 3);
  assert.is(warnings.length, 1, 'one line per file, not one per use');
  assert.is(store.best('matmul 64x64x64', 'avx512', 'cpu')!.hash, hashOf(1), 'the valid best is not hidden');
  const { loadStats } = store;
  assert.equal([loadStats.unparseable, loadStats.invalid, loadStats.abovePeak, loadStats.records], [2, 6, 1, 3]);
});

test('the first invalid line is named with its reason', () => {
  const file = path.join(dir, 'reason.jsonl');
  writeFileSync(file, `${JSON.stringify(rec(1))}\n${JSON.stringify(rec(5, { hash: 'deadbeefdeadbeef' }))}\n`);
  const { store, warnings } = openQuiet(file);
  assert.is(store.size, 1);
  assert.match(warnings[0]!, /skipped 1 of 2 lines \(1 invalid; first: line 2: hash: deadbeefdeadbeef is not the schedule's/);
});

test('rejectAbovePeak drops only the file\'s records of that host and target; fromEarlierRun tells them from new ones', () => {
  const file = path.join(dir, 'peak.jsonl');
  writeFileSync(file, [rec(1, { gflops: 130 }), rec(2, { gflops: 130, target: 'avx2' }), rec(3, { gflops: 124 })].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const { store, warnings } = openQuiet(file);
  assert.is(store.rejectAbovePeak('avx512', 'cpu', 100), 1, '130 > 1.25 x 100; 124 is within the margin');
  assert.is(store.rejectAbovePeak('avx512', 'cpu', Number.NaN), 0, 'an unknown peak rejects nothing');
  const kept = store.records();
  assert.equal(kept.map((r) => r.hash), [hashOf(2), hashOf(3)]);
  assert.ok(kept.every((r) => store.fromEarlierRun(r)));
  const fresh = rec(4, { gflops: 500 });
  store.add(fresh);
  assert.not.ok(store.fromEarlierRun(fresh));
  assert.is(store.get('matmul 64x64x64', 'avx512', hashOf(4))!.gflops, 500, 'a measurement of this run is not second-guessed');
  assert.match(warnings[0]!, /skipped 1 of 3 lines \(1 above peak; first: line 1: gflops: 130 is above 1.25 x the peak of avx512 \(100.0\)\)/);
});

test('measureNow times a schedule past the records and leaves them alone', async () => {
  const store = RecordStore.open(null);
  const a = Schedule.initial(problem);
  store.add(rec(0, { gflops: 77 }));
  let calls = 0;
  const e = new CachingEvaluator({ target: 'avx512', peakGflops: 100, records: store, host: 'cpu', measure: async () => ({ gflops: 5 + calls++ }) });
  assert.is((await e.evaluate(a)).gflops, 77);
  const now = await e.measureNow(a);
  assert.equal([now.gflops, now.source, calls], [5, 'measured', 1]);
  assert.is(store.size, 1);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
