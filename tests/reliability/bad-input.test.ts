/**
 * The bad-input table: every case is a command a new user might type, run as a real process in an
 * empty folder with its own HOME and cache. Each must print one `looptune: …` line (no stack
 * trace, no library source), exit with code 1, and leave every file outside the run folder as it
 * was: nothing is created, changed or removed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AS_NOBODY, letNobodyReach } from '../helpers/as-nobody.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin', 'looptune.js');
const SMOKE = readFileSync(path.join(ROOT, 'experiments', 'smoke.yaml'), 'utf8');

interface Case {
  /** what a reader sees in a failure */
  name: string;
  args: string[];
  /** the one line must match this */
  expect: RegExp;
  env?: Record<string, string>;
  /** files created in the case's folder before the command runs (paths relative to it) */
  files?: Record<string, string>;
  /** folders created before the command runs; a trailing ':ro' makes it read-only */
  dirs?: string[];
}

// when the tests run as root, commands run as 'nobody' in a folder it owns (tests/helpers/as-nobody.ts)

const yaml = (edit: (text: string) => string): string => edit(SMOKE);

const CASES: Case[] = [
  // specs
  { name: 'unknown op', args: ['show', 'fft 8x8'], expect: /unknown op 'fft'/ },
  { name: 'empty spec', args: ['show', ''], expect: /spec|empty/i },
  { name: 'too few sizes', args: ['show', 'matmul 8x8'], expect: /matmul/ },
  { name: 'zero size', args: ['show', 'matmul 0x8x8'], expect: /0|size|positive/i },
  { name: 'negative size', args: ['show', 'matmul -4x8x8'], expect: /-4|size/i },
  { name: 'trailing word is named', args: ['show', 'matmul 64x64x64 extra'], expect: /'extra'/ },
  { name: 'a 5000-digit size is not echoed in full', args: ['show', `matmul ${'9'.repeat(5000)}x8x8`], expect: /…|size|large/i },
  { name: 'conv without its kernel size', args: ['show', 'conv2d n1 c8 h8 w8 k8 r3'], expect: /conv2d|s/ },
  { name: 'huge matmul refused before allocating', args: ['run', 'matmul 100000x100000x100000'], expect: /needs|memory|large|limit/i },
  { name: '30000^3 refused before allocating', args: ['run', 'matmul 30000x30000x30000'], expect: /needs|memory|GB|limit/i },
  // schedules
  { name: 'unknown loop variable', args: ['show', 'matmul 8x8x8', '--schedule', 'z:8'], expect: /'z'/ },
  { name: 'schedule that does not cover the extent', args: ['show', 'matmul 8x8x8', '--schedule', 'm:3 n:8 k:8'], expect: /m/ },
  { name: 'unreadable loop', args: ['show', 'matmul 8x8x8', '--schedule', 'm:abc n:8 k:8'], expect: /m:abc|read|size/i },
  { name: 'empty schedule', args: ['show', 'matmul 8x8x8', '--schedule', ''], expect: /empty schedule/ },
  { name: 'schedule of 5000 loops', args: ['show', 'matmul 1x8x8', '--schedule', `${'m:1 '.repeat(5000)}n:8 k:8`], expect: /loops|deep|limit|at most/i },
  { name: 'parallel reduction loop', args: ['show', 'matmul 8x8x8', '--schedule', 'k:8p m:8 n:8'], expect: /reduction variable k/ },
  { name: 'two parallel bands', args: ['show', 'matmul 8x8x8', '--schedule', 'm:8p k:8 n:4p n:2'], expect: /adjacent/ },
  { name: 'parallel loop on a one-thread target', args: ['run', 'matmul 8x8x8', '--schedule', 'm:8p n:8 k:8', '--target', 'neon'], expect: /one thread/ },
  { name: 'zero threads', args: ['run', 'matmul 8x8x8', '--threads', '0'], expect: /thread count/ },
  { name: 'threads not a number', args: ['tune', 'matmul 8x8x8', '--threads', 'all'], expect: /thread count/ },
  { name: 'too many threads', args: ['peak', '--threads', '5000'], expect: /thread count from 1 to 1024/ },
  // actions
  { name: 'unknown action', args: ['show', 'matmul 8x8x8', '--actions', 'fly'], expect: /'fly'/ },
  { name: 'split by zero', args: ['show', 'matmul 8x8x8', '--actions', 'split_0'], expect: /split_0/ },
  { name: 'cuda action on a CPU target', args: ['search', 'matmul 16x16x16', '--target', 'synthetic', '--searcher', 'nope'], expect: /nope/ },
  { name: 'empty action list', args: ['show', 'matmul 8x8x8', '--actions', ''], expect: /empty action list/ },
  // targets
  { name: 'unknown target (run)', args: ['run', 'matmul 8x8x8', '--target', 'z80'], expect: /z80/ },
  { name: 'unknown target (search)', args: ['search', 'matmul 8x8x8', '--target', 'z80', '--budget', '2m'], expect: /z80/ },
  { name: 'unknown target (tune)', args: ['tune', 'matmul 8x8x8', '--target', 'z80'], expect: /z80/ },
  { name: 'unknown target (show --asm)', args: ['show', 'matmul 8x8x8', '--asm', '--target', 'z80'], expect: /z80/ },
  { name: 'peak of a target it cannot measure', args: ['peak', '--target', 'neon'], expect: /neon/ },
  { name: 'unknown baseline', args: ['run', 'matmul 8x8x8', '--compare', 'mkl'], expect: /mkl/ },
  // budgets and numbers
  { name: 'zero budget', args: ['search', 'matmul 8x8x8', '--budget', '0s'], expect: /budget/ },
  { name: 'unreadable budget', args: ['search', 'matmul 8x8x8', '--budget', 'abc'], expect: /budget 'abc'/ },
  { name: 'empty budget', args: ['search', 'matmul 8x8x8', '--budget', ''], expect: /budget/ },
  { name: 'negative tune budget', args: ['tune', 'matmul 8x8x8', '--budget', '-1'], expect: /budget|positive/ },
  { name: 'seed that is not a number', args: ['search', 'matmul 8x8x8', '--seed', 'abc'], expect: /--seed.*abc/ },
  { name: 'negative seed', args: ['tune', 'matmul 8x8x8', '--seed', '-1'], expect: /--seed/ },
  { name: 'stop after zero iterations', args: ['train', 'exp.yaml', '--stop-after', '0'], expect: /--stop-after/, files: { 'exp.yaml': SMOKE } },
  { name: 'stop after -1 iterations', args: ['train', 'exp.yaml', '--stop-after', '-1', '--fresh'], expect: /--stop-after/, files: { 'exp.yaml': SMOKE } },
  { name: 'stop after abc', args: ['train', 'exp.yaml', '--stop-after', 'abc'], expect: /--stop-after/, files: { 'exp.yaml': SMOKE } },
  { name: 'problems that is not a number', args: ['eval', 'exp.yaml', '--problems', 'abc'], expect: /--problems/, files: { 'exp.yaml': SMOKE } },
  { name: 'zero limit', args: ['compare', 'mm64-256:test', '--limit', '0'], expect: /--limit/ },
  { name: 'zero minimum time', args: ['run', 'matmul 8x8x8', '--min-seconds', '0'], expect: /--min-seconds/ },
  { name: 'empty records path', args: ['search', 'matmul 8x8x8', '--records', ''], expect: /empty records path/ },
  { name: 'empty LOOPTUNE_RECORDS', args: ['tune', 'matmul 8x8x8'], env: { LOOPTUNE_RECORDS: '' }, expect: /LOOPTUNE_RECORDS/ },
  // experiment files
  { name: 'missing experiment file', args: ['train', 'nope.yaml'], expect: /nope\.yaml/ },
  { name: 'experiment file is a folder', args: ['train', 'exp.yaml'], dirs: ['exp.yaml'], expect: /exp\.yaml/ },
  { name: 'malformed YAML', args: ['train', 'exp.yaml'], files: { 'exp.yaml': 'name: t\n  bad: [' }, expect: /exp\.yaml:\d+/ },
  { name: 'misspelt field', args: ['train', 'exp.yaml'], files: { 'exp.yaml': yaml((t) => t.replace('iterations: 6', 'iteratons: 6')) }, expect: /iteratons/ },
  { name: 'wrong type', args: ['train', 'exp.yaml'], files: { 'exp.yaml': yaml((t) => t.replace('iterations: 6', 'iterations: many')) }, expect: /iterations/ },
  { name: 'measured reward on the synthetic target', args: ['train', 'exp.yaml'], files: { 'exp.yaml': yaml((t) => t.replace('source: synthetic', 'source: measured')) }, expect: /measured|synthetic/ },
  { name: 'unknown dataset', args: ['train', 'exp.yaml'], files: { 'exp.yaml': yaml((t) => t.replace('name: mm64-256', 'name: nope')) }, expect: /nope/ },
  // run folders
  { name: 'output names a folder that is not a looptune run', args: ['train', 'exp.yaml', '--stop-after', '1'], files: { 'exp.yaml': yaml((t) => t.replace('output: runs/smoke', 'output: mine')), 'mine/policy/model.json': 'x' }, expect: /mine/ },
  { name: 'runs/ is a file', args: ['train', 'exp.yaml', '--stop-after', '1'], files: { 'exp.yaml': SMOKE, runs: 'not a folder' }, expect: /runs/ },
  { name: 'runs/ is read-only', args: ['train', 'exp.yaml', '--stop-after', '1'], files: { 'exp.yaml': SMOKE }, dirs: ['runs:ro'], expect: /runs/ },
  // records and models
  { name: 'cost model eval on a missing records file', args: ['costmodel', 'eval', 'default', '/nonexistent.jsonl'], expect: /nonexistent\.jsonl/ },
  { name: 'cost model eval of a missing model', args: ['costmodel', 'eval', '/nonexistent-model', 'r.jsonl'], files: { 'r.jsonl': '' }, expect: /nonexistent-model/ },
  { name: 'cost model train on no usable records', args: ['costmodel', 'train', 'r.jsonl', '--out', 'cm'], files: { 'r.jsonl': '{"nonsense": true}\n' }, expect: /r\.jsonl/ },
  // the command line itself
  { name: 'unknown command', args: ['fly'], expect: /unknown command 'fly'/ },
  { name: 'unknown option', args: ['show', 'matmul 8x8x8', '--bogus'], expect: /unknown option '--bogus'/ },
  { name: 'missing argument', args: ['run'], expect: /missing required argument/ },
];

/** Every file under `dir` with its size, mode and modification time: what "untouched" means. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const s = statSync(p);
      out.set(path.relative(dir, p), `${s.isDirectory() ? 'd' : s.size}:${s.mode}:${s.mtimeMs}`);
      if (s.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

function prepare(c: Case): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'looptune-bad-'));
  mkdirSync(path.join(dir, 'home'));
  for (const [rel, text] of Object.entries(c.files ?? {})) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  for (const spec of c.dirs ?? []) {
    const [rel] = spec.split(':');
    mkdirSync(path.join(dir, rel!), { recursive: true });
  }
  if (AS_NOBODY) chownTree(dir, AS_NOBODY.uid, AS_NOBODY.gid);
  for (const spec of c.dirs ?? []) {
    const [rel, mode] = spec.split(':');
    if (mode === 'ro') chmodSync(path.join(dir, rel!), 0o555);
  }
  return dir;
}

function chownTree(p: string, uid: number, gid: number): void {
  chownSync(p, uid, gid);
  if (statSync(p).isDirectory()) for (const name of readdirSync(p)) chownTree(path.join(p, name), uid, gid);
}

function runCase(c: Case, dir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: path.join(dir, 'home'), XDG_CACHE_HOME: path.join(dir, 'home', '.cache'), ...c.env };
    delete env.LOOPTUNE_DEBUG;
    if (!c.env || !('LOOPTUNE_RECORDS' in c.env)) delete env.LOOPTUNE_RECORDS;
    const child = spawn(process.execPath, [BIN, ...c.args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], ...AS_NOBODY });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs the table two at a time (the machine has two cores), each case checked on its own. */
test('bad input: one line, exit 1, nothing outside the run folder touched', async () => {
  const failures: string[] = [];
  const queue = [...CASES];
  const restore = letNobodyReach(ROOT);
  const worker = async (): Promise<void> => {
    for (let c = queue.shift(); c; c = queue.shift()) {
      const dir = prepare(c);
      const before = snapshot(dir);
      const r = await runCase(c, dir);
      const after = snapshot(dir);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      const problems: string[] = [];
      if (r.code !== 1) problems.push(`exit code ${r.code}`);
      if (lines.length === 0) problems.push('no message');
      if (lines.some((l) => !l.startsWith('looptune: '))) problems.push(`a line without 'looptune: ' (${lines.find((l) => !l.startsWith('looptune: '))!.slice(0, 120)})`);
      if (/\n\s+at /.test(r.stderr)) problems.push('a stack trace');
      if (r.stderr.length > 600) problems.push(`${r.stderr.length} characters on stderr`);
      if (!lines.some((l) => c.expect.test(l))) problems.push(`no line matches ${c.expect}: ${JSON.stringify(lines.join(' | ').slice(0, 300))}`);
      const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
      if (changed.length) problems.push(`touched ${changed.slice(0, 5).join(', ')}`);
      if (problems.length) failures.push(`${c.name} (looptune ${c.args.map((a) => (a.length > 40 ? `${a.slice(0, 40)}…` : a)).join(' ')}): ${problems.join('; ')}`);
      chmodSync(dir, 0o755);
      for (const spec of c.dirs ?? []) chmodSync(path.join(dir, spec.split(':')[0]!), 0o755);
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    await Promise.all([worker(), worker()]);
  } finally {
    restore();
  }
  // one line per failing case (assert.equal on arrays would print a diff of every character)
  if (failures.length) assert.unreachable(`${failures.length} of ${CASES.length} cases failed:\n${failures.join('\n')}`);
});

test.run();
