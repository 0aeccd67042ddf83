/**
 * A measurement that fails is a failed command: `looptune run` whose measurement worker is killed
 * while it times the kernel reports the crash in one line and exits 1 (it used to exit 0).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/looptune.js');

/** The pids of `pid`'s children (the measurement worker is one). */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter((l) => l).map(Number);
  } catch {
    return [];
  }
}

test('run: a worker killed while timing is a crash line and exit code 1', async () => {
  // 20 s of timing: verification is long over when the worker is killed 3 s after it started
  const child = spawn(process.execPath, [BIN, 'run', 'matmul 256x256x256', '--min-seconds', '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let killed: number | undefined;
  for (let waited = 0; waited < 30_000 && killed === undefined; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    const workers = childrenOf(child.pid!);
    if (workers.length > 0 && waited >= 3000) {
      for (const w of workers) process.kill(w, 'SIGKILL');
      killed = workers[0];
    }
  }
  assert.ok(killed !== undefined, 'no measurement worker appeared');
  const code = await exited;
  assert.is(code, 1, out);
  assert.match(out, /crashed|SIGKILL|killed/i);
  assert.not.match(out, /\n\s+at /, 'no stack trace');
});

test.run();
