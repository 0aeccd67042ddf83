/**
 * Issue 13, defects 3, 5 and 11: tuning records that cannot be written or read, records that lie,
 * the host key, and where the cache folder is.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setBackendLogging, initBackend } from '../../agent/backend.ts';
import { AS_NOBODY, letNobodyReach } from '../helpers/as-nobody.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
import { createPolicy } from '../../agent/policy/index.ts';
import { runSearch } from '../../agent/search/run.ts';
import { tune, type LoadedPolicy } from '../../agent/tune.ts';
import { CachingEvaluator } from '../../env/evaluator.ts';
import { LOOPTUNE_ACTIONS } from '../../env/loopnest-env.ts';
import { defaultRecordsPath, RecordStore, type TuningRecord } from '../../env/records.ts';
import { syntheticGflops } from '../../env/synthetic.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { parseProblem, Schedule } from '../../ir/index.ts';
import { cacheDir } from '../../targets/runtime/cache-dir.ts';
import { hostIsa, hostKey } from '../../targets/runtime/host.ts';
import { RUN_TARGET } from '../host.ts';
import { defaultPeakCacheFile, peak } from '../../targets/runtime/peak.ts';

setBackendLogging(false);
const target = RUN_TARGET;
const root = mkdtempSync(path.join(os.tmpdir(), 'looptune-rel-records-'));
let n = 0;
const fresh = (name: string) => path.join(root, `${n++}-${name}`);

/** the `looptune: warning` lines `f` writes to stderr */
async function warningsOf<T>(f: () => Promise<T>): Promise<{ value: T; warnings: string[] }> {
  const chunks: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    const value = await f();
    return { value, warnings: chunks.join('').split('\n').filter((l) => l.startsWith('looptune: warning')) };
  } finally {
    process.stderr.write = write;
  }
}

function record(problem: string, schedule: Schedule, gflops: number, recordHost: string, t = 'synthetic'): TuningRecord {
  return { problem, target: t, schedule: schedule.text(), hash: schedule.hash(), gflops, bestSeconds: 1e-6, medianSeconds: 1e-6, timestamp: new Date().toISOString(), host: recordHost };
}

async function randomPolicy(): Promise<LoadedPolicy> {
  await initBackend();
  const policy = createPolicy({ network: { kind: 'mlp', hidden: [16], activation: 'tanh' }, actions: [...LOOPTUNE_ACTIONS], observation: 'vector', maxLoops: 10 }, 4);
  return { policy, metadata: { episodeSteps: 6 }, path: '(random test policy)' };
}

// ---- defect 3: an unusable records file is a warning, never the end of the job

test('search with a records path that is a folder: one warning, the search finishes in memory', async () => {
  const folder = fresh('records-folder');
  mkdirSync(folder);
  const { value: r, warnings } = await warningsOf(() => runSearch('matmul 32x32x32', { searcher: 'random', budget: { measurements: 6 }, target: 'synthetic', recordsPath: folder }));
  assert.is(r.measurements, 6);
  assert.equal(warnings, [`looptune: warning: cannot read tuning records from ${folder} (EISDIR: it is a folder); continuing with in-memory records`]);
  assert.equal(readdirSync(folder), []);
});

test('search whose records file cannot be created (a parent is a file): one warning, measurements kept in memory', async () => {
  const file = fresh('plain-file');
  writeFileSync(file, 'x');
  const recordsPath = path.join(file, 'records.jsonl');
  const { value: r, warnings } = await warningsOf(() => runSearch('matmul 32x32x32', { searcher: 'random', budget: { measurements: 6 }, target: 'synthetic', recordsPath }));
  assert.is(r.measurements, 6);
  assert.is(r.timed, 6);
  assert.is(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, new RegExp(`^looptune: warning: cannot write tuning records to ${recordsPath} \\((ENOTDIR|EEXIST): a parent is not a folder\\); continuing with in-memory records$`));
});

test('a read-only records folder: one warning, the search finishes (as nobody when the tests run as root)', () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'looptune-ro-records-'));
  const folder = path.join(base, 'read-only');
  mkdirSync(folder);
  if (AS_NOBODY) chownSync(base, AS_NOBODY.uid, AS_NOBODY.gid);
  chmodSync(base, 0o755);
  chmodSync(folder, 0o555);
  const restore = letNobodyReach(ROOT);
  try {
    const records = path.join(folder, 'records.jsonl');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'looptune.js'), 'search', 'matmul 16x16x16', '--target', 'synthetic', '--budget', '6m', '--records', records],
      { cwd: base, encoding: 'utf8', env: { ...process.env, HOME: base, XDG_CACHE_HOME: path.join(base, 'cache') }, timeout: 60_000, ...AS_NOBODY });
    assert.is(r.status, 0, r.stderr);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'));
    assert.is(warnings.length, 1, r.stderr);
    assert.match(warnings[0]!, /EACCES: permission denied\); continuing with in-memory records$/);
    assert.match(r.stdout, /6 schedules/);
    assert.equal(readdirSync(folder), []);
  } finally {
    restore();
    chmodSync(folder, 0o755);
    rmSync(base, { recursive: true, force: true });
  }
});

test('tune with a records path that is a folder finishes, verified, with one warning', async () => {
  const folder = fresh('tune-folder');
  mkdirSync(folder);
  const policy = await randomPolicy();
  const { value: r, warnings } = await warningsOf(() => tune('matmul 32x24x40', { target, policy, records: folder, budgetSeconds: 0.5, maxMeasurements: 4 }));
  assert.ok(r.verified);
  assert.ok(r.gflops > 0);
  assert.is(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /cannot read tuning records from .*EISDIR/);
});

// ---- defect 5: records are checked, impossible figures rejected, recorded figures timed again

test('search: a recorded figure is timed again before it is reported; one above the peak is rejected and counted', async () => {
  const spec = 'matmul 48x48x48';
  const p = parseProblem(spec);
  const initial = Schedule.initial(p);
  const file = fresh('doctored.jsonl');
  const other = Schedule.parse(p, 'm:2 m:24 n:48 k:48');
  writeFileSync(file, [
    JSON.stringify(record(spec, initial, 99, 'synthetic')), // plausible (peak 100) but false
    JSON.stringify(record(spec, other, 99999, 'synthetic')), // impossible
    '{"problem": "matmul 48x48x48", "gflops": 1e9', // unparseable, the top figure
  ].join('\n') + '\n');
  const { value: r, warnings } = await warningsOf(() => runSearch(spec, { searcher: 'random', budget: { measurements: 1 }, target: 'synthetic', recordsPath: file }));
  assert.is(r.schedule, initial.text());
  assert.ok(r.bestRemeasured);
  assert.is(r.gflops, syntheticGflops(initial, 100), 'the figure is this run\'s, not the record\'s 99');
  assert.is(r.defaultGflops, r.gflops);
  assert.equal(warnings, [`looptune: warning: ${file}: skipped 2 of 3 lines (1 unparseable, 1 above peak; first: line 3: not JSON)`]);
});

test('tune: a recorded figure (plausible but false) is timed again; never reported as the result', async () => {
  const spec = 'matmul 64x48x80';
  const p = parseProblem(spec);
  const file = fresh('tune-doctored.jsonl');
  const peakGflops = await peak(target);
  const planted = 1.05 * peakGflops; // within the peak margin: only a new timing exposes it
  const initial = Schedule.initial(p);
  writeFileSync(file, [
    JSON.stringify(record(spec, initial, planted, hostKey(), target)),
    JSON.stringify(record(spec, Schedule.parse(p, 'm:2 m:32 n:48 k:80'), 99999, hostKey(), target)),
  ].join('\n') + '\n');
  const policy = await randomPolicy();
  // one thread: the planted records carry the one-thread host key (on more threads tune's records are another key's)
  const { value: r, warnings } = await warningsOf(() => tune(spec, { target, policy, records: file, budgetSeconds: 0.5, maxMeasurements: 4, threads: 1 }));
  assert.ok(r.recordsRemeasured >= 1);
  assert.is.not(r.gflops, planted);
  assert.is.not(r.defaultGflops, planted);
  assert.ok(r.gflops < 99999);
  assert.is(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /skipped 1 of 2 lines \(1 above peak; first: line 2: gflops: 99999 is above 1.25 x the peak of/);
});

test('records of the old coarse host key (the bare CPU model) are another host\'s: not used as timings here', async () => {
  const p = parseProblem('matmul 16x16x16');
  const s = Schedule.initial(p);
  const store = RecordStore.open(null);
  store.add(record(p.spec, s, 42, hostIsa().model, 'avx2'));
  let measured = 0;
  const e = new CachingEvaluator({ target: 'avx2', peakGflops: 100, records: store, measure: async () => ({ gflops: 7 + measured++ }) });
  assert.is(e.host, hostKey());
  const ev = await e.evaluate(s);
  assert.equal([ev.source, ev.gflops, measured], ['measured', 7, 1]);
});

// ---- defect 11: the cache folder follows the OS rules, never the current folder

test('the cache folder: XDG_CACHE_HOME if absolute, else HOME/.cache if absolute, else a private temp folder', () => {
  const xdg = fresh('xdg');
  const home = fresh('home');
  assert.is(cacheDir({ XDG_CACHE_HOME: xdg, HOME: home }), path.join(xdg, 'looptune'));
  assert.is(cacheDir({ XDG_CACHE_HOME: 'relative/cache', HOME: home }), path.join(home, '.cache', 'looptune'));
  assert.is(cacheDir({ XDG_CACHE_HOME: '', HOME: home }), path.join(home, '.cache', 'looptune'));
  const notAFolder = fresh('home-is-a-file');
  writeFileSync(notAFolder, '');
  for (const env of [{ HOME: '' }, { HOME: 'relative-home' }, { HOME: notAFolder }]) {
    const dir = cacheDir(env);
    assert.ok(path.isAbsolute(dir), dir);
    assert.ok(dir.startsWith(path.join(os.tmpdir(), 'looptune-')), `${JSON.stringify(env)} -> ${dir}`);
    assert.ok(existsSync(dir));
  }
});

test('HOME="": the peak cache and the default records file are not in the current folder', () => {
  const saved = { HOME: process.env.HOME, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, LOOPTUNE_RECORDS: process.env.LOOPTUNE_RECORDS };
  try {
    process.env.HOME = '';
    delete process.env.XDG_CACHE_HOME;
    delete process.env.LOOPTUNE_RECORDS;
    for (const file of [defaultPeakCacheFile(), defaultRecordsPath()]) {
      assert.ok(path.isAbsolute(file), file);
      assert.not.ok(path.resolve(file).startsWith(process.cwd() + path.sep), file);
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('LOOPTUNE_RECORDS set but empty is one clear error', () => {
  const saved = process.env.LOOPTUNE_RECORDS;
  try {
    process.env.LOOPTUNE_RECORDS = '';
    assert.throws(() => defaultRecordsPath(), (e: unknown) => e instanceof LoopTuneError && /LOOPTUNE_RECORDS is set but empty/.test(e.message));
    process.env.LOOPTUNE_RECORDS = '/some/records.jsonl';
    assert.is(defaultRecordsPath(), '/some/records.jsonl');
  } finally {
    if (saved === undefined) delete process.env.LOOPTUNE_RECORDS;
    else process.env.LOOPTUNE_RECORDS = saved;
  }
});

test.after(() => rmSync(root, { recursive: true, force: true }));
test.run();
