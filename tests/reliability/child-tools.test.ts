/**
 * Issue 13, defect 8: every external tool (opt, llc, ld.lld, llvm-mc) runs under a time limit and
 * fails with one line: a hung llc no longer hangs `run --target llvm-avx512` (llvm-avx2 on a host
 * without AVX-512: the CLI runs what it compiles), and LLVM_OPT=/bin/false is one line, not a stack trace.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoopTuneError } from '../../ir/errors.ts';
import { Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';
import { lower } from '../../loopnest/lower.ts';
import { llvmAvailable, llvmTarget } from '../../targets/llvm/index.ts';
import { runTool, toolTimeoutSeconds } from '../../targets/runtime/child-tool.ts';
import { runLlvmMc } from '../../targets/x86/disassemble.ts';
import { x86Caps } from '../../targets/x86/target.ts';
import { RUN_TARGET } from '../host.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(path.join(tmpdir(), 'looptune-child-tools-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** An executable shell script in the test folder. */
function script(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

/** answers --version like a real tool, then hangs on real work (exec: the kill reaches the sleep itself) */
const hangingTool = script('hanging-llc', 'if [ "$1" = "--version" ]; then echo fake; exit 0; fi\nexec sleep 60');
const noisyFailure = script('failing-llc', 'if [ "$1" = "--version" ]; then exit 0; fi\necho "llc: error: first problem" >&2\necho "second line" >&2\nexit 3');

const llvm = llvmAvailable();
const matmul = () => lower(Schedule.parse(parseProblem('matmul 8x16x8'), 'm:8 n:16 k:8'), x86Caps('avx512'));

function oneLineError(fn: () => unknown): LoopTuneError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, LoopTuneError);
    assert.not.match((e as Error).message, /\n/);
    return e as LoopTuneError;
  }
  throw new Error('expected a LoopTuneError');
}

test('runTool: a hung tool is killed at the limit and reported in one line', () => {
  const e = oneLineError(() => runTool(hangingTool, ['work'], { timeoutSeconds: 1 }));
  assert.is(e.message, `${hangingTool} timed out after 1 s (LOOPTUNE_TOOL_TIMEOUT sets the limit)`);
});

test('runTool: exit status and the first line of stderr; a missing tool names what to install', () => {
  assert.is(oneLineError(() => runTool(noisyFailure, ['x'])).message, `${noisyFailure} failed: exit 3: llc: error: first problem`);
  assert.is(oneLineError(() => runTool('/bin/false', [])).message, '/bin/false failed: exit 1');
  assert.is(oneLineError(() => runTool('/nonexistent/llc-14', [], { installHint: 'install the Debian package llvm-14' })).message,
    '/nonexistent/llc-14 not found (install the Debian package llvm-14)');
  assert.is(runTool('/bin/sh', ['-c', 'echo out; exit 1'], { okStatuses: [0, 1] }).stdout, 'out\n');
});

test('LOOPTUNE_TOOL_TIMEOUT sets the limit (default 30 s); a bad value is one line', () => {
  assert.is(toolTimeoutSeconds({}), 30);
  assert.is(toolTimeoutSeconds({ LOOPTUNE_TOOL_TIMEOUT: '2.5' }), 2.5);
  for (const bad of ['0', '-1', 'abc']) {
    assert.throws(() => toolTimeoutSeconds({ LOOPTUNE_TOOL_TIMEOUT: bad }), (e: Error) => e instanceof LoopTuneError && e.message.startsWith('LOOPTUNE_TOOL_TIMEOUT: expected a positive number'));
  }
});

test('llvm target: a hung llc times out in one line, and is not started again in this process', () => {
  assert.ok(llvm.ok, `the LLVM tools are missing (npm test's pretest installs them): ${llvm.ok ? '' : llvm.reason}`);
  const target = llvmTarget('avx512', { tools: { llc: hangingTool }, toolTimeoutSeconds: 1 });
  const first = oneLineError(() => target.compile(matmul()));
  assert.is(first.message, `${hangingTool} timed out after 1 s (LOOPTUNE_TOOL_TIMEOUT sets the limit)`);
  const again = oneLineError(() => target.compile(matmul()));
  assert.is(again.message, `${first.message} (earlier in this run; not started again)`);
});

test('llvm target: a tool that hangs on --version makes the target unavailable, in one line', () => {
  assert.ok(llvm.ok, `the LLVM tools are missing (npm test's pretest installs them): ${llvm.ok ? '' : llvm.reason}`);
  const mute = script('mute-opt', 'exec sleep 60');
  const e = oneLineError(() => llvmTarget('avx2', { tools: { opt: mute }, toolTimeoutSeconds: 1 }).compile(matmul()));
  assert.is(e.message, `target llvm-avx2 is unavailable: ${mute} --version timed out after 1 s (LOOPTUNE_TOOL_TIMEOUT sets the limit)`);
});

test('llvm target: a failing opt or llc is one line with the first line of its stderr', () => {
  assert.ok(llvm.ok, `the LLVM tools are missing (npm test's pretest installs them): ${llvm.ok ? '' : llvm.reason}`);
  assert.is(oneLineError(() => llvmTarget('avx512', { tools: { opt: '/bin/false' } }).compile(matmul())).message, '/bin/false failed: exit 1');
  assert.is(oneLineError(() => llvmTarget('avx512', { tools: { llc: noisyFailure } }).compile(matmul())).message,
    `${noisyFailure} failed: exit 3: llc: error: first problem`);
});

test('llvm-mc (x86 disassembly) runs under the limit too', () => {
  const old = process.env.LOOPTUNE_TOOL_TIMEOUT;
  process.env.LOOPTUNE_TOOL_TIMEOUT = '1';
  try {
    assert.is(oneLineError(() => runLlvmMc('0xc3\n', ['--disassemble'], hangingTool)).message,
      `${hangingTool} timed out after 1 s (LOOPTUNE_TOOL_TIMEOUT sets the limit)`);
  } finally {
    if (old === undefined) delete process.env.LOOPTUNE_TOOL_TIMEOUT;
    else process.env.LOOPTUNE_TOOL_TIMEOUT = old;
  }
});

test('CLI: LLVM_OPT=/bin/false and a hung LLVM_LLC are one looptune line and exit 1', () => {
  assert.ok(llvm.ok, `the LLVM tools are missing (npm test's pretest installs them): ${llvm.ok ? '' : llvm.reason}`);
  const cli = (env: Record<string, string>) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 'looptune.js'), 'run', 'matmul 8x16x8', '--target', `llvm-${RUN_TARGET}`], {
    cwd: dir, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000,
  });
  const failing = cli({ LLVM_OPT: '/bin/false' });
  assert.is(failing.status, 1);
  assert.is(failing.stderr, 'looptune: /bin/false failed: exit 1\n');
  const hung = cli({ LLVM_LLC: hangingTool, LOOPTUNE_TOOL_TIMEOUT: '1' });
  assert.is(hung.status, 1);
  assert.is(hung.stderr, `looptune: ${hangingTool} timed out after 1 s (LOOPTUNE_TOOL_TIMEOUT sets the limit)\n`);
});

test.run();
