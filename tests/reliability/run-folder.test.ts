/**
 * The experiment run folder (issue 13, defects 1, 7, 9, 10, 12): train refuses a folder that is not
 * looptune's and deletes nothing there; one train per folder (a live lock refuses, a stale one is
 * taken over, the lock goes on exit and on SIGTERM); a damaged newest checkpoint is skipped with
 * one warning; a damaged checkpoint given to eval is one line; stopAfter and reward/target
 * mismatches are refused before anything is written; file-system failures are one line.
 */
import { AS_NOBODY, letNobodyReach } from '../helpers/as-nobody.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setBackendLogging } from '../../agent/backend.ts';
import { checkpointDamage, folderDamage, sealFolder } from '../../agent/ppo/checkpoint.ts';
import { LoopTuneError } from '../../ir/errors.ts';
import { evalExperiment, trainExperiment, type TrainOptions } from '../../experiments/runner.ts';
import { ExperimentError } from '../../experiments/schema.ts';
import { RUN_MARKER } from '../../experiments/run-folder.ts';
import { RUN_LOCK, pidAlive } from '../../experiments/run-lock.ts';
import { fsFailure } from '../../ir/fs-errors.ts';

setBackendLogging(false);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SMOKE = path.join(ROOT, 'experiments', 'smoke.yaml');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'looptune-run-folder-'));

/** trainExperiment with its log lines collected. */
async function train(output: string, opts: TrainOptions = {}, file = SMOKE): Promise<{ lines: string[] } & Awaited<ReturnType<typeof trainExperiment>>> {
  const lines: string[] = [];
  const r = await trainExperiment(file, { log: (l) => lines.push(l), ...opts, output });
  return { ...r, lines };
}

/** The LoopTuneError `fn` throws (its message must be one line). */
async function refusal(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof LoopTuneError)) throw e;
    assert.not.match(e.message, /\n/, 'one line');
    return e.message;
  }
  throw new Error('expected a LoopTuneError');
}

/** Every file under `dir` with its content, to show nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}

function experimentFile(name: string, edit: (text: string) => string): string {
  const f = path.join(tmp, name);
  writeFileSync(f, edit(readFileSync(SMOKE, 'utf8')));
  return f;
}

// ------------------------------------------------------------------------------ defect 1: marker

test('a folder that is not looptune\'s is refused and nothing in it is removed (with or without fresh)', async () => {
  const mine = path.join(tmp, 'mine');
  mkdirSync(path.join(mine, 'policy'), { recursive: true });
  writeFileSync(path.join(mine, 'policy', 'model.json'), 'x');
  writeFileSync(path.join(mine, 'metrics.jsonl'), 'my own metrics\n');
  const before = snapshot(mine);
  for (const resume of [true, false]) {
    const msg = await refusal(() => train(mine, { stopAfter: 1, resume }));
    assert.match(msg, /is not a looptune run folder/);
    assert.ok(msg.includes(mine), msg);
    assert.equal(snapshot(mine), before);
  }
});

test('a new folder gets the marker first; an empty folder is adopted; a marked run resumes', async () => {
  const fresh = path.join(tmp, 'new', 'run');
  await train(fresh, { stopAfter: 1 });
  const marker = JSON.parse(readFileSync(path.join(fresh, RUN_MARKER), 'utf8')) as { format: string; experiment: string; created: string };
  assert.is(marker.format, 'looptune-run');
  assert.is(marker.experiment, SMOKE);
  assert.ok(!Number.isNaN(Date.parse(marker.created)));
  assert.ok(!existsSync(path.join(fresh, RUN_LOCK)), 'the lock is released after train');
  const empty = path.join(tmp, 'empty');
  mkdirSync(empty);
  const r = await train(empty, { stopAfter: 2 }); // checkpoint.every = 2
  assert.is(r.variants[0]!.iteration, 2);
  assert.ok(existsSync(path.join(empty, RUN_MARKER)));
  const again = await train(empty, { stopAfter: 1 });
  assert.is(again.variants[0]!.iteration, 3, 'the marked folder is resumed');
});

test('a file where the run folder (or its parent) should be is one line', async () => {
  const file = path.join(tmp, 'runs-file');
  writeFileSync(file, 'not a folder');
  assert.match(await refusal(() => train(path.join(file, 'smoke'), { stopAfter: 1 })), /cannot create run folder .*runs-file\/smoke: .*runs-file is a file, not a folder/);
  assert.match(await refusal(() => train(file, { stopAfter: 1 })), /runs-file as a run folder: it is a file/);
  assert.is(readFileSync(file, 'utf8'), 'not a folder');
});

test('file-system errors become one line naming the path and the reason', async () => {
  const eacces = Object.assign(new Error("EACCES: permission denied, mkdir 'runs/x'"), { code: 'EACCES', syscall: 'mkdir', path: 'runs/x' });
  const converted = fsFailure(eacces);
  assert.ok(converted instanceof LoopTuneError);
  assert.is((converted as LoopTuneError).message, 'cannot create runs/x: permission denied');
  const bug = new TypeError('x is undefined');
  assert.is(fsFailure(bug), bug, 'other errors keep their trace');
});

test('a read-only parent folder is one line (as another user when the tests run as root)', () => {
  // root ignores permission bits: the train then runs as 'nobody' in a child process
  const asNobody = AS_NOBODY ?? {};
  const base = mkdtempSync(path.join(os.tmpdir(), 'looptune-ro-'));
  const restore = letNobodyReach(ROOT);
  try {
    chmodSync(base, 0o755);
    const ro = path.join(base, 'runs');
    mkdirSync(ro, { mode: 0o555 });
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const runner = pathToFileURL(path.join(ROOT, 'experiments', 'runner.ts')).href;
    const script = `const { trainExperiment } = await import(${JSON.stringify(runner)});
      try { await trainExperiment(${JSON.stringify(SMOKE)}, { output: ${JSON.stringify(path.join(ro, 'x'))}, stopAfter: 1, log: () => {} }); process.stdout.write('trained'); }
      catch (e) { process.stdout.write(JSON.stringify({ name: e.name, message: e.message })); }`;
    const child = spawnSync(process.execPath, ['--import', tsx, '--input-type=module', '-e', script], { encoding: 'utf8', cwd: base, ...asNobody, timeout: 60_000 });
    const out = JSON.parse(child.stdout) as { name: string; message: string };
    assert.is(out.name, 'LoopTuneError', child.stderr);
    assert.match(out.message, /^cannot create run folder .*runs\/x: permission denied$/);
    assert.equal(readdirSync(ro), []);
  } finally {
    restore();
    rmSync(base, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------ defect 7 / 12: validation first

test('stopAfter that is not a positive whole number is refused and a finished run is untouched', async () => {
  const done = path.join(tmp, 'done');
  await train(done);
  const before = snapshot(done);
  for (const bad of [0, -1, Number.NaN, 1.5, Infinity]) {
    const msg = await refusal(() => train(done, { stopAfter: bad, resume: false }));
    assert.match(msg, /stopAfter must be a positive whole number/);
  }
  assert.equal(snapshot(done), before);
});

test('measured reward on the synthetic target is refused by the schema, before a folder exists', async () => {
  const file = experimentFile('measured.yaml', (t) => t.replace('source: synthetic', 'source: measured'));
  const out = path.join(tmp, 'measured-run');
  try {
    await trainExperiment(file, { output: out, log: () => {} });
    assert.unreachable('expected an ExperimentError');
  } catch (e) {
    assert.ok(e instanceof ExperimentError, String(e));
    assert.match((e as Error).message, /measured\.yaml:\d+: reward\.source: the synthetic target measures nothing/);
  }
  assert.ok(!existsSync(out));
});

// ------------------------------------------------------------------------------ defect 9: lock

function lockAs(dir: string, pid: number): void {
  writeFileSync(path.join(dir, RUN_LOCK), JSON.stringify({ pid, hostname: os.hostname(), started: '2026-01-01T00:00:00.000Z', token: 'other' }) + '\n');
}

test('a run folder locked by a live process is refused; the lock is ours while training', async () => {
  const dir = path.join(tmp, 'locked');
  await train(dir, { stopAfter: 1 });
  const before = snapshot(dir);
  assert.ok(pidAlive(process.ppid));
  lockAs(dir, process.ppid);
  const msg = await refusal(() => train(dir, { stopAfter: 1 }));
  assert.match(msg, new RegExp(`in use by another train \\(pid ${process.ppid}, since 2026-01-01`));
  assert.equal(snapshot(dir), { ...before, [RUN_LOCK]: snapshot(dir)[RUN_LOCK]! }, 'metrics and checkpoints untouched');
  assert.ok(existsSync(path.join(dir, RUN_LOCK)), 'another process\'s lock is left alone');
  rmSync(path.join(dir, RUN_LOCK));
  const owners: number[] = [];
  await train(dir, { stopAfter: 1, onProgress: () => owners.push((JSON.parse(readFileSync(path.join(dir, RUN_LOCK), 'utf8')) as { pid: number }).pid) });
  assert.equal(owners, [process.pid]);
  assert.ok(!existsSync(path.join(dir, RUN_LOCK)));
});

test('a stale lock (its pid is gone) is taken over with one warning', async () => {
  const dir = path.join(tmp, 'stale');
  await train(dir, { stopAfter: 2 });
  const gone = spawnSync(process.execPath, ['-e', '']).pid!;
  assert.ok(!pidAlive(gone));
  lockAs(dir, gone);
  const r = await train(dir, { stopAfter: 1 });
  assert.is(r.variants[0]!.iteration, 3);
  const warnings = r.lines.filter((l) => l.startsWith('warning:'));
  assert.is(warnings.length, 1, r.lines.join('\n'));
  assert.match(warnings[0]!, new RegExp(`stale lock of pid ${gone}`));
  assert.ok(!existsSync(path.join(dir, RUN_LOCK)));
});

test('a train stopped by SIGTERM mid-run releases its lock and still dies by the signal', async () => {
  const dir = path.join(tmp, 'signal');
  const file = experimentFile('long.yaml', (t) => t.replace(/^iterations: \d+/m, 'iterations: 100000'));
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const runner = pathToFileURL(path.join(ROOT, 'experiments', 'runner.ts')).href;
  const script = `const { trainExperiment } = await import(${JSON.stringify(runner)});
    let said = false;
    await trainExperiment(${JSON.stringify(file)}, { output: ${JSON.stringify(dir)}, log: () => {},
      onProgress: () => { if (!said) { said = true; process.stdout.write('training\\n'); } } });`;
  const child = spawn(process.execPath, ['--import', tsx, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('training')) resolve(); });
    void exit.then(() => reject(new Error(`child exited before training: ${stderr}`)));
  });
  const held = JSON.parse(readFileSync(path.join(dir, RUN_LOCK), 'utf8')) as { pid: number };
  assert.is(held.pid, child.pid);
  child.kill('SIGTERM');
  // a child that ignored the signal would train for minutes: end it, and fail
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const signal = await exit;
  clearTimeout(guard);
  assert.is(signal, 'SIGTERM', 'the signal ends the process');
  assert.ok(!existsSync(path.join(dir, RUN_LOCK)), 'the lock was released');
});

// ------------------------------------------------------------------------------ defect 10: checkpoints

test('a truncated or corrupt newest checkpoint is skipped with one warning; resume continues from the older one', async () => {
  const dir = path.join(tmp, 'damaged');
  await train(dir, { stopAfter: 4 }); // checkpoints at 2 and 4 (every: 2, keep: 2)
  const ck = (n: number) => path.join(dir, 'checkpoints', `iter-00000${n}`);
  assert.is(checkpointDamage(ck(4)), null);
  const size = statSync(path.join(ck(4), 'weights.bin')).size;
  truncateSync(path.join(ck(4), 'weights.bin'), 100);
  assert.is(checkpointDamage(ck(4)), `weights.bin has 100 of ${size} bytes`);
  const r = await train(dir);
  assert.is(r.variants[0]!.resumedFrom, 2);
  assert.is(r.variants[0]!.iteration, 6);
  const warnings = r.lines.filter((l) => l.startsWith('warning:'));
  assert.equal(warnings, [`warning: ppo: skipping damaged checkpoint iter-000004 (weights.bin has 100 of ${size} bytes); resuming from iter-000002`]);
  const metrics = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { iteration: number }).iteration);
  assert.equal(metrics, [1, 2, 3, 4, 5, 6], 'metrics cut back to the checkpoint, no duplicates');
  assert.is(checkpointDamage(ck(4)), null, 'iteration 4 was written again, complete');
  // same size, one byte changed: the checksum tells
  const state = path.join(ck(6), 'optimizer.bin');
  const bytes = readFileSync(state);
  bytes[10] = bytes[10]! ^ 0xff;
  writeFileSync(state, bytes);
  assert.is(checkpointDamage(ck(6)), 'optimizer.bin does not match its checksum');
});

test('resume with only damaged checkpoints is one line and deletes nothing', async () => {
  const dir = path.join(tmp, 'all-damaged');
  await train(dir, { stopAfter: 2 });
  writeFileSync(path.join(dir, 'checkpoints', 'iter-000002', 'state.json'), '{"trunc');
  const before = snapshot(dir);
  const msg = await refusal(() => train(dir));
  assert.match(msg, /no complete checkpoint in .*checkpoints: iter-000002 \(state\.json has \d+ of \d+ bytes\) damaged; train with resume off/);
  assert.equal(snapshot(dir), before);
});

test('eval of a truncated checkpoint is one line, not a decoder trace', async () => {
  const dir = path.join(tmp, 'eval-damaged');
  await train(dir, { stopAfter: 2 });
  const ck = path.join(dir, 'checkpoints', 'iter-000002');
  truncateSync(path.join(ck, 'weights.bin'), 10);
  const quiet = { log: () => {}, output: dir };
  assert.match(await refusal(() => evalExperiment(SMOKE, { ...quiet, checkpoint: ck })), /^checkpoint .*iter-000002 is damaged: weights\.bin has 10 of \d+ bytes$/);
  assert.match(await refusal(() => evalExperiment(SMOKE, { ...quiet, checkpoint: path.join(dir, 'checkpoints') })), /no complete checkpoint in .*iter-000002: weights\.bin has 10 of/);
  assert.match(await refusal(() => evalExperiment(SMOKE, quiet)), /variant 'ppo': no complete checkpoint/);
  assert.ok(!existsSync(path.join(dir, 'eval.json')));
});

test('folders without a manifest (older looptune) are checked by structure', () => {
  const dir = path.join(tmp, 'legacy');
  mkdirSync(dir);
  const spec = { name: 'w', shape: [4, 2], dtype: 'float32' };
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ format: 'looptune-policy', weightsManifest: [{ paths: ['weights.bin'], weights: [spec] }] }));
  writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(32));
  assert.is(folderDamage(dir), null);
  truncateSync(path.join(dir, 'weights.bin'), 31);
  assert.is(folderDamage(dir), 'weights.bin has 31 of 32 bytes');
  writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(32));
  sealFolder(dir);
  assert.is(folderDamage(dir), null);
  rmSync(path.join(dir, 'weights.bin'));
  assert.is(folderDamage(dir), 'weights.bin is missing');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
