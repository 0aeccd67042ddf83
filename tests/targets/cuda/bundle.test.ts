/**
 * `npm run bundle` end to end, as the GPU machine sees it: the folder stays under 40 MB, and copied
 * away from the repository (no node_modules, no tsx) its CLI still starts, emits PTX, loads the
 * cuda cost model, and without a GPU says so in one line.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hasCudaDriver } from '../../../targets/cuda/driver.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..');

function size(p: string): number {
  const st = statSync(p);
  return st.isDirectory() ? readdirSync(p).reduce((a, e) => a + size(path.join(p, e)), 0) : st.size;
}

test('the device bundle runs the CLI away from the repository', () => {
  const built = spawnSync(process.execPath, ['--import', 'tsx', 'targets/cuda/bundle.ts'], { cwd: root, encoding: 'utf8' });
  assert.is(built.status, 0, built.stderr);
  const bundle = path.join(root, '.device', 'looptune');
  assert.ok(size(bundle) < 40 * 2 ** 20);
  const away = mkdtempSync(path.join(os.tmpdir(), 'looptune-bundle-'));
  cpSync(bundle, path.join(away, 'looptune'), { recursive: true });
  const run = (...args: string[]) => spawnSync('sh', [path.join(away, 'looptune', 'run.sh'), ...args], {
    cwd: away, encoding: 'utf8', env: { ...process.env, LOOPTUNE_NODE: process.execPath },
  });
  const ptx = run('show', 'matmul 64x64x64', '--target', 'cuda', '--ptx');
  assert.is(ptx.status, 0, ptx.stderr);
  assert.match(ptx.stdout, /^\.version 8\.0$/m);
  assert.match(ptx.stdout, /^\.target sm_80$/m);
  const search = run('search', 'matmul 64x64x64', '--target', 'cuda', '--budget', '4m');
  if (hasCudaDriver()) {
    assert.is(search.status, 0, search.stderr);
  } else {
    assert.is(search.status, 1);
    assert.match(search.stderr, /^looptune: cuda: no CUDA driver \(libcuda\.so\.1 not found\)$/m);
  }
  // tune loads the shipped cuda cost model from the bundle before it needs the GPU
  const tune = run('tune', 'matmul 64x64x64', '--target', 'cuda');
  assert.not.match(tune.stderr, /searching without a cost model/);
});

test.run();
